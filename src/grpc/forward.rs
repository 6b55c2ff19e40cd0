//! Between the [`AuthService`](crate::AuthService) and the channel: the request goes to tonic
//! with tonic's body; a trailers-only `UNAUTHENTICATED` answer goes up as a 401, and a streamed
//! answer's body watches the trailers for the token the request carried.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{HeaderName, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tonic::body::Body;
use tower_service::Service;

use super::body::{ResponseBody, Watch};
use super::buffer::RequestBody;
use super::grpc_unauthenticated;
use crate::handle::TokenHandle;

/// The part below the [`AuthService`](crate::AuthService): hands the request to the channel with
/// tonic's body, and watches the response's trailers for the token the request carried.
pub(crate) struct Forward<S> {
    pub(super) inner: S,
    /// The session whose token the calls carry, and the header its tokens travel in: the
    /// layer's; in a keyed layer's service, the session of the call being made, set for that
    /// call only ([`for_session`](Self::for_session)), so that the copies a replay or a wait
    /// keeps of this service watch the call's own session.
    session: Option<(TokenHandle, HeaderName)>,
}

impl<S> Forward<S> {
    pub(crate) fn new(inner: S, handle: TokenHandle) -> Self {
        let header = handle.policy().header.name().clone();
        Self {
            inner,
            session: Some((handle, header)),
        }
    }

    /// A keyed layer's: no session until a call sets its own.
    pub(crate) fn keyed(inner: S) -> Self {
        Self {
            inner,
            session: None,
        }
    }

    /// Runs `call` (the call's step, which sends through this service or keeps a copy of it)
    /// with `handle`'s session watched; the service holds no session afterwards, so that it
    /// keeps none alive between calls.
    pub(crate) fn for_session<T>(
        &mut self,
        handle: TokenHandle,
        call: impl FnOnce(&mut Self) -> T,
    ) -> T {
        let header = handle.policy().header.name().clone();
        self.session = Some((handle, header));
        let out = call(self);
        self.session = None;
        out
    }
}

impl<S: Clone> Clone for Forward<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            session: self.session.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Forward<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forward")
            .field("inner", &self.inner)
            .field("header", &self.session.as_ref().map(|(_, header)| header))
            .finish_non_exhaustive()
    }
}

impl<S, RB> Service<Request<RequestBody>> for Forward<S>
where
    S: Service<Request<Body>, Response = Response<RB>>,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = S::Error;
    type Future = Forwarded<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        let watch = self.session.as_ref().and_then(|(handle, header)| {
            let sent = request.headers().get(header)?;
            Some(Watch::new(handle.clone(), sent.clone()))
        });
        Forwarded::new(self.inner.call(request.map(RequestBody::into_tonic)), watch)
    }
}

pin_project! {
    /// The channel's response future; its body gets the call's watch.
    pub(crate) struct Forwarded<F> {
        #[pin]
        future: F,
        watch: Option<Watch>,
    }
}

impl<F> Forwarded<F> {
    pub(crate) fn new(future: F, watch: Option<Watch>) -> Self {
        Self { future, watch }
    }
}

impl<F, RB, E> Future for Forwarded<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<ResponseBody<RB>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.future.poll(cx))?;
        if response.status() == StatusCode::OK && grpc_unauthenticated(response.headers()) {
            // NOTE: gRPC maps HTTP 401 to UNAUTHENTICATED; shown to the classifier as such, a
            // trailers-only rejection is judged like an HTTP one by every classifier.
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response.extensions_mut().insert(TrailersOnly);
        }
        let watch = this.watch.take();
        Poll::Ready(Ok(response.map(|body| ResponseBody::new(body, watch))))
    }
}

/// Marks a trailers-only `UNAUTHENTICATED` answer shown to the layer as a 401: the caller gets
/// it back as the server sent it, under status 200 ([`TrailersOnly::restore`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TrailersOnly;

impl TrailersOnly {
    /// The answer as the server sent it.
    #[inline]
    pub(crate) fn restore<B>(mut response: Response<B>) -> Response<B> {
        if response.extensions_mut().remove::<TrailersOnly>().is_some() {
            *response.status_mut() = StatusCode::OK;
        }
        response
    }
}
