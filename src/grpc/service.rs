//! The gRPC service: buffers what can be replayed, then sends through the [`AuthService`].

use std::fmt;
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic::body::Body;
use tower_service::Service;

use super::body::ResponseBody;
use super::buffer::{CopyBuffered, RequestBody};
use super::forward::Forward;
use super::future::ResponseFuture;
use crate::error::BoxError;
use crate::service::AuthService;

/// Attaches the layer's token to every gRPC call, replays a call whose token the server rejected
/// when its messages were buffered, and invalidates the token of a stream that ends
/// `UNAUTHENTICATED`.
///
/// Made by [`GrpcAuthLayer`](super::GrpcAuthLayer); takes and gives what a tonic
/// [`Channel`](https://docs.rs/tonic/latest/tonic/transport/struct.Channel.html) does, so a
/// generated client takes it in the channel's place. Errors are [`BoxError`](tower::BoxError): the channel's,
/// or an [`AuthError`](crate::AuthError) when no token could be had (tonic turns either into a
/// `Status`; see the [`AuthError`](crate::AuthError) docs for the downcast).
///
/// ```no_run
/// use tonic::transport::Channel;
/// use tonic_health::pb::health_client::HealthClient;
/// use tower::Layer;
/// use tower_token_auth::grpc::{GrpcAuthLayer, GrpcAuthService};
/// use tower_token_auth::provider::HttpProvider;
///
/// /// A health client whose calls carry the token.
/// type Health = HealthClient<GrpcAuthService<Channel>>;
///
/// # async fn run(layer: GrpcAuthLayer) -> Result<(), tower::BoxError> {
/// let channel = Channel::from_static("http://127.0.0.1:50051").connect().await?;
/// let service = layer.layer(channel);
/// let health: Health = HealthClient::new(service);
/// # let _ = health;
/// # Ok(())
/// # }
/// ```
pub struct GrpcAuthService<S> {
    auth: AuthService<Forward<S>, CopyBuffered>,
    max_buffered: usize,
}

impl<S> GrpcAuthService<S> {
    pub(crate) fn new(auth: AuthService<Forward<S>, CopyBuffered>, max_buffered: usize) -> Self {
        Self { auth, max_buffered }
    }
}

impl<S: Clone> Clone for GrpcAuthService<S> {
    fn clone(&self) -> Self {
        Self {
            auth: self.auth.clone(),
            max_buffered: self.max_buffered,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for GrpcAuthService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcAuthService")
            .field("auth", &self.auth)
            .field("max_buffered", &self.max_buffered)
            .finish()
    }
}

impl<S, RB> Service<Request<Body>> for GrpcAuthService<S>
where
    S: Service<Request<Body>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.auth.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let max = self.max_buffered;
        let request = request.map(|body| RequestBody::read_ahead(body, max));
        ResponseFuture::new(self.auth.call(request))
    }
}
