//! The response futures: the service's (the [`AuthService`](crate::AuthService)'s own state
//! machine) and the channel's, whose response body gets its watch.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tonic::body::Body;
use tower_service::Service;

use super::body::ResponseBody;
use super::buffer::{CopyBuffered, RequestBody};
use super::forward::{Forward, TrailersOnly};
use crate::error::BoxError;

pin_project! {
    /// Response future of [`GrpcAuthService`](super::GrpcAuthService): the
    /// [`AuthService`](crate::AuthService)'s, unboxed while the token is fresh.
    ///
    /// Generated clients await it for you; a raw call looks like this:
    ///
    /// ```no_run
    /// # use tower_token_auth::grpc::GrpcAuthService;
    /// # use tower_token_auth::provider::HttpProvider;
    /// use tower::ServiceExt;
    ///
    /// # async fn run(
    /// #     service: GrpcAuthService<tonic::transport::Channel>,
    /// # ) -> Result<(), tower::BoxError> {
    /// let request = http::Request::post("http://127.0.0.1:50051/grpc.health.v1.Health/Check")
    ///     .header("content-type", "application/grpc")
    ///     .header("te", "trailers")
    ///     // One empty message: the compression flag and a zero length.
    ///     .body(tonic::body::Body::new(http_body_util::Full::from(vec![0u8; 5])))?;
    /// let response = service.oneshot(request).await?;
    /// println!("{:?}", response.headers().get("grpc-status"));
    /// # Ok(())
    /// # }
    /// ```
    pub struct ResponseFuture<S, RB>
    where
        S: Service<Request<Body>, Response = Response<RB>>,
    {
        #[pin]
        inner: crate::future::ResponseFuture<Forward<S>, RequestBody, CopyBuffered>,
    }
}

impl<S, RB> ResponseFuture<S, RB>
where
    S: Service<Request<Body>, Response = Response<RB>>,
{
    pub(crate) fn new(
        inner: crate::future::ResponseFuture<Forward<S>, RequestBody, CopyBuffered>,
    ) -> Self {
        Self { inner }
    }
}

impl<S, RB> Future for ResponseFuture<S, RB>
where
    S: Service<Request<Body>, Response = Response<RB>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    RB: Send + 'static,
{
    type Output = Result<Response<ResponseBody<RB>>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map_ok(TrailersOnly::restore)
    }
}

impl<S, RB> fmt::Debug for ResponseFuture<S, RB>
where
    S: Service<Request<Body>, Response = Response<RB>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}
