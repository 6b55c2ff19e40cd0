//! The guard of the tests' gRPC servers: a tower `Service` in front of a tonic server that asks
//! its [`Check`] about each call before the call goes on, and answers a refused call with the
//! check's `Status` (a trailers-only response), as a server's auth interceptor does.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{Request, Response};
use tonic::body::Body;
use tonic::Status;
use tower::{BoxError, Service, ServiceExt};

/// What becomes of the answer of a call that went on.
pub type Answered = Box<dyn FnOnce(Response<Body>) -> Response<Body> + Send>;

/// What a [`Guard`] asks about each call.
pub trait Check: Clone + Send + Sync + 'static {
    /// The call whose head is `call`: it goes on, its answer then made what the [`Answered`]
    /// says, or it is answered with the `Status`.
    fn check(&self, call: &Parts) -> impl Future<Output = Result<Answered, Status>> + Send;
}

/// The answer of a call that went on, as the inner service gave it.
pub fn unchanged() -> Answered {
    Box::new(|response| response)
}

/// A server's guard: `inner` serves the calls `check` lets through.
#[derive(Clone)]
pub struct Guard<S, C> {
    pub inner: S,
    pub check: C,
}

impl<S, C> Service<Request<Body>> for Guard<S, C>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    C: Check,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The inner service is readied in the call's future, after the check.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let (inner, check) = (self.inner.clone(), self.check.clone());
        Box::pin(async move {
            let (call, body) = request.into_parts();
            let answered = match check.check(&call).await {
                Ok(answered) => answered,
                Err(status) => return Ok(status.into_http()),
            };
            let request = Request::from_parts(call, body);
            let response = inner.oneshot(request).await.map_err(Into::into)?;
            Ok(answered(response))
        })
    }
}
