//! The middleware service: attaches the current token to each request.

use std::fmt;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::apply::Applied;
use crate::clock::Reading;
use crate::error::BoxError;
use crate::future::{Replay, ResponseFuture, Sending};
use crate::manager::Manager;
use crate::metrics::Counter;
use crate::provider::outside_origins;
use crate::replay::{CloneBody, CloneRequest};
use crate::slot::Generation;

/// Adds `Authorization: Bearer …` to every request, obtaining and renewing the token as needed.
///
/// Made by [`AuthLayer`](crate::AuthLayer); all clones share the layer's token and counters.
///
/// Errors are [`BoxError`](tower::BoxError): the inner service's own errors, or an
/// [`AuthError`](crate::AuthError) when no token could be obtained (see its docs for the downcast).
pub struct AuthService<S, R = CloneBody> {
    inner: S,
    shared: Arc<Manager>,
    replay: R,
}

impl<S, R> AuthService<S, R> {
    pub(crate) fn new(inner: S, shared: Arc<Manager>, replay: R) -> Self {
        Self {
            inner,
            shared,
            replay,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, R: Clone> Clone for AuthService<S, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            replay: self.replay.clone(),
        }
    }
}

impl<S: fmt::Debug, R: fmt::Debug> fmt::Debug for AuthService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService")
            .field("inner", &self.inner)
            .field("shared", &self.shared)
            .field("replay", &self.replay)
            .finish()
    }
}

impl<S, R, B, RB> Service<Request<B>> for AuthService<S, R>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Send + 'static,
    R: CloneRequest<B>,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let reading = self.shared.clock().read();
        let step = Step {
            manager: &self.shared,
            inner: &mut self.inner,
            replay: &self.replay,
        };
        // NOTE: the request stays here, and goes out from here: passing it by value through one
        // more function copied it (a `memcpy` of the whole request) on every request, inlined
        // or not. `KeyedAuthService::call` does the same.
        match step.prepare(&mut request, reading) {
            Ok(sending) => ResponseFuture::sent(step.inner.call(request), sending),
            Err(token) => step.cold(request, token, reading),
        }
    }
}

/// What the middleware does with one request of one session: the hot path's part before the
/// request goes out ([`prepare`](Self::prepare)), and everything else ([`cold`](Self::cold)).
/// [`AuthService`] takes its layer's session; a keyed layer's service
/// ([`KeyedAuthService`](crate::KeyedAuthService)) the request's.
pub(crate) struct Step<'a, S, R> {
    pub(crate) manager: &'a Arc<Manager>,
    pub(crate) inner: &'a mut S,
    pub(crate) replay: &'a R,
}

impl<S, R> Step<'_, S, R> {
    /// The whole step for `request`, the clock read at `reading`: for callers off the hot path
    /// (a session just built, a keyed gRPC call). The services' `call` write the same two arms
    /// out, so that the request is not moved through this function.
    pub(crate) fn call_at<B, RB>(
        self,
        mut request: Request<B>,
        reading: Reading,
    ) -> ResponseFuture<S, B, R>
    where
        S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
        R: CloneRequest<B>,
    {
        match self.prepare(&mut request, reading) {
            Ok(sending) => ResponseFuture::sent(self.inner.call(request), sending),
            Err(token) => self.cold(request, token, reading),
        }
    }

    /// The hot path up to the send: the token written into `request`, and a copy of the
    /// request kept for a replay when replay is on (`Ok`); or, when the request needs more than
    /// the token's header (a proof, an origin check) or there is no token, the request left as
    /// it is and the slot's token for [`cold`](Self::cold) (`Err`).
    #[inline(always)]
    pub(crate) fn prepare<B>(
        &self,
        request: &mut Request<B>,
        reading: Reading,
    ) -> Result<Sending<S, B, R>, Option<Arc<Applied>>>
    where
        S: Service<Request<B>> + Clone,
        R: CloneRequest<B>,
    {
        match Applied::current(self.manager, reading) {
            Some(token) if token.is_plain() => {
                // NOTE: the copy is made before the token goes on: a replay writes its own
                // token, so copying this one's header would be wasted.
                let replay = if self.manager.replays {
                    self.replay_for(request, token.generation(), reading)
                } else {
                    None
                };
                token.apply(request);
                Ok(Sending::new(token, replay))
            }
            token => Err(token),
        }
    }

    /// Every request the hot path does not take (a proof per request, an origin list, no token
    /// at all), and any request with `token`, the slot's token at `reading` as
    /// [`Applied::current`] gave it.
    #[cold]
    #[inline(never)]
    pub(crate) fn cold<B, RB>(
        self,
        request: Request<B>,
        token: Option<Arc<Applied>>,
        reading: Reading,
    ) -> ResponseFuture<S, B, R>
    where
        S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
        R: CloneRequest<B>,
    {
        if self.outside_origins(&request) {
            return self.outside(request);
        }
        match token {
            Some(token) if token.is_dpop() => self.signed(request, &token, reading),
            Some(token) => self.send(request, token, reading),
            None => self.wait(request, reading),
        }
    }

    /// A request that takes the token's header (an origin list allowed it), and a copy kept for
    /// a replay when replay is on and the request can be copied.
    fn send<B, RB>(
        self,
        mut request: Request<B>,
        token: Arc<Applied>,
        reading: Reading,
    ) -> ResponseFuture<S, B, R>
    where
        S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
        R: CloneRequest<B>,
    {
        let replay = self.replay_for(&request, token.generation(), reading);
        token.apply(&mut request);
        ResponseFuture::sent(self.inner.call(request), Sending::new(token, replay))
    }

    /// No usable token: the request waits for one.
    fn wait<B, RB>(self, request: Request<B>, reading: Reading) -> ResponseFuture<S, B, R>
    where
        S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
        R: CloneRequest<B>,
    {
        self.manager.metrics.incr(Counter::TokenWait);
        let inner = take_inner(self.inner);
        ResponseFuture::waiting(Box::pin(Replay::unsent(
            request,
            reading,
            inner,
            Arc::clone(self.manager),
            self.replay.clone(),
        )))
    }

    /// Whether the policy's origins leave out `request`'s.
    fn outside_origins<B>(&self, request: &Request<B>) -> bool {
        self.manager
            .policy
            .origins
            .as_ref()
            .is_some_and(|origins| !origins.allows(request.uri()))
    }

    /// A request to an origin the token may not go to: sent as it is, or refused.
    fn outside<B>(self, request: Request<B>) -> ResponseFuture<S, B, R>
    where
        S: Service<Request<B>>,
    {
        match self.manager.policy.origins.as_ref() {
            Some(origins) if origins.refuses_others() => ResponseFuture::refused(outside_origins()),
            _ => ResponseFuture::passed(self.inner.call(request)),
        }
    }

    /// A request with a DPoP-bound token: its proof is signed, and the server's nonce
    /// challenges answered, in the state a replay uses (see `Replay::with_token`).
    fn signed<B>(
        self,
        request: Request<B>,
        token: &Applied,
        reading: Reading,
    ) -> ResponseFuture<S, B, R>
    where
        S: Service<Request<B>> + Clone,
        R: CloneRequest<B>,
    {
        let inner = take_inner(self.inner);
        ResponseFuture::waiting(Box::pin(Replay::with_token(
            request,
            Arc::clone(&token.token),
            reading,
            inner,
            Arc::clone(self.manager),
            self.replay.clone(),
        )))
    }

    /// What a replay of `request`, sent with the token of `generation` at `now`, would need,
    /// when replay is on and the request can be copied.
    #[inline]
    fn replay_for<B>(
        &self,
        request: &Request<B>,
        generation: Generation,
        now: Reading,
    ) -> Option<Pin<Box<Replay<S, B, R>>>>
    where
        S: Service<Request<B>> + Clone,
        R: CloneRequest<B>,
    {
        if !self.manager.replays {
            return None;
        }
        let copy = self.replay.clone_request(request)?;
        Some(Box::pin(Replay::sent(
            copy,
            generation,
            now,
            self.inner.clone(),
            Arc::clone(self.manager),
            self.replay.clone(),
        )))
    }
}

/// The service that `poll_ready` readied, leaving a clone in its place (see tower's "Be careful
/// when cloning inner services" guidance): for a request sent from its future.
fn take_inner<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    mem::replace(inner, clone)
}
