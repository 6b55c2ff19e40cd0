//! The tests' gRPC servers and clients: a guard, a tower `Service` in front of a tonic server
//! that asks its [`Check`] about each call before the call goes on and answers a refused call
//! with the check's `Status` (a trailers-only response), as a server's auth interceptor does; a
//! guarded health server ([`serve_health`]); and a health client through a layer
//! ([`health_client`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{Request, Response};
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::Status;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::server::HealthReporter;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_token_auth::grpc::{GrpcAuthLayer, GrpcAuthService};
use tower_token_auth::AuthLayer;

/// A health client whose calls carry a layer's tokens.
pub type Health = HealthClient<GrpcAuthService<Channel>>;

/// A tonic health server on `listener`, every call guarded by `check`, served by a task: its
/// reporter (the service `""` is SERVING whether the reporter lives or not).
pub fn serve_health<C: Check>(listener: TcpListener, check: C) -> HealthReporter {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let server = Server::builder()
        .layer(tower::layer::layer_fn(move |inner| Guard {
            inner,
            check: check.clone(),
        }))
        .add_service(health_service)
        .serve_with_incoming(TcpIncoming::from(listener));
    tokio::spawn(server);
    reporter
}

/// `layer` on a channel to the health server at `origin`, the calls' URIs absolute (a DPoP
/// proof names the call's URL).
pub async fn health_client(layer: AuthLayer, origin: &str) -> Health {
    let channel = Channel::from_shared(origin.to_owned())
        .expect("an origin")
        .connect()
        .await
        .expect("the health server accepts");
    let channel = ServiceBuilder::new()
        .layer(GrpcAuthLayer::new(layer))
        .service(channel);
    HealthClient::with_origin(channel, origin.parse().expect("an origin"))
}

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
