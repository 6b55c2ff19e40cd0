//! gRPC over [tonic](https://docs.rs/tonic) channels (feature `tonic`; needs Rust 1.88, as tonic
//! does, where the rest of the crate needs 1.85).
//!
//! [`GrpcAuthLayer`] wraps a tonic `Channel` (or any service that takes and gives what a channel
//! does) with an [`AuthLayer`](crate::AuthLayer): every call carries the layer's token, calls
//! whose token the server rejected are replayed when their messages could be buffered, and a
//! stream that ends `UNAUTHENTICATED` makes the next call get a new token. Auth calls go through
//! the `AuthLayer`'s own transport (an HTTP/1 client), never through the channel.
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tonic::transport::Channel;
//! use tonic_health::pb::health_client::HealthClient;
//! use tonic_health::pb::HealthCheckRequest;
//! use tower::ServiceBuilder;
//! use tower_token_auth::grpc::GrpcAuthLayer;
//! use tower_token_auth::AuthLayer;
//! use tower_token_auth::provider::oauth2;
//!
//! # async fn run() -> Result<(), tower::BoxError> {
//! let provider =
//!     oauth2::Builder::client_credentials("https://auth.example.com/oauth/token", "client", "secret")
//!         .build()?;
//! let auth_client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let layer = AuthLayer::new(provider, auth_client);
//!
//! let channel = Channel::from_static("http://127.0.0.1:50051").connect().await?;
//! let channel = ServiceBuilder::new()
//!     .layer(GrpcAuthLayer::new(layer))
//!     .service(channel);
//! let mut health = HealthClient::new(channel);
//! let reply = health.check(HealthCheckRequest { service: String::new() }).await?;
//! println!("{:?}", reply.into_inner().status());
//! # Ok(())
//! # }
//! ```
//!
//! # Keyed sessions
//!
//! [`GrpcAuthLayer::keyed`] puts a [`KeyedAuthLayer`](crate::KeyedAuthLayer)'s sessions over a
//! channel: each call carries the token of the session its key names (a tenant, a user), by the
//! keyed layer's rules: the key is a value of the layer's key type in the call's extensions,
//! or what the layer's [`key_from`](crate::KeyedAuthLayerBuilder::key_from) says of the call's
//! URI and headers, its metadata included; a call naming no session fails with
//! [`ErrorKind::Config`](crate::ErrorKind::Config) and is not sent. Everything below holds per
//! session: a call is replayed with its own session's next token, and a stream that ends
//! `UNAUTHENTICATED` invalidates its own session's token, never another's.
//!
//! ```no_run
//! use tonic::transport::Channel;
//! use tonic_health::pb::health_client::HealthClient;
//! use tonic_health::pb::HealthCheckRequest;
//! use tower::ServiceBuilder;
//! use tower_token_auth::grpc::{GrpcAuthLayer, GrpcAuthService};
//! use tower_token_auth::provider::oauth2;
//! use tower_token_auth::{AuthLayer, KeyedAuthLayer};
//!
//! /// The tenant whose token a call carries.
//! #[derive(Clone, Debug, PartialEq, Eq, Hash)]
//! struct Tenant(String);
//!
//! # async fn run(auth_client: tower::util::BoxCloneSyncService<http::Request<http_body_util::Full<bytes::Bytes>>, http::Response<http_body_util::Full<bytes::Bytes>>, tower::BoxError>) -> Result<(), tower::BoxError> {
//! let sessions = KeyedAuthLayer::builder(|tenant: &Tenant| {
//!     let provider = oauth2::Builder::client_credentials_grant("https://auth.example.com/oauth/token")
//!         .audience(&format!("https://api.example.com/{}", tenant.0))
//!         .build()?;
//!     Ok(AuthLayer::builder(provider))
//! })
//! .build(auth_client);
//!
//! let channel = Channel::from_static("http://127.0.0.1:50051").connect().await?;
//! let channel: GrpcAuthService<Channel, Tenant> = ServiceBuilder::new()
//!     .layer(GrpcAuthLayer::keyed(&sessions))
//!     .service(channel);
//! let mut health = HealthClient::new(channel);
//! let mut request = tonic::Request::new(HealthCheckRequest { service: String::new() });
//! request.extensions_mut().insert(Tenant("acme".into()));
//! let reply = health.check(request).await?;
//! # let _ = reply;
//! # Ok(())
//! # }
//! ```
//!
//! # What is replayed
//!
//! A gRPC server rejects a token with `UNAUTHENTICATED` (`grpc-status: 16`), under HTTP status
//! 200: in the head of a trailers-only response, or in the trailers at the end of a stream. The
//! adapter shows a trailers-only `UNAUTHENTICATED` to the layer's
//! [`Classifier`](crate::provider::Classifier) as the HTTP status gRPC maps it to, 401, so every
//! classifier that takes a 401 for a dead token (the default included) takes this one too, and
//! gives the caller back the response as the server sent it. Nothing needs configuring.
//!
//! When a call is made, the layer reads its encoded messages as far as they are ready, without
//! waiting, up to [`max_buffered`](GrpcAuthLayer::max_buffered) bytes (64 KiB by default). A
//! unary or server-streaming call's single message is ready at once; a client stream is ready
//! only if its messages all were when the call was made.
//!
//! | the server answers `UNAUTHENTICATED` | messages buffered whole | otherwise (over the cap, a live client stream) |
//! |---|---|---|
//! | in a trailers-only response (the head) | the token is marked dead and the call replayed with a new one, per [`TokenPolicy`](crate::provider::TokenPolicy)'s replay budget | the token is marked dead; the caller gets `UNAUTHENTICATED` |
//! | in the trailers at the end of a streamed response | the token is invalidated; the caller gets `UNAUTHENTICATED` | the same |
//!
//! A response already handed to the caller is never replayed: its messages may have been acted
//! on. Either way the next call gets a new token, with one refresh however many calls are
//! waiting. A call over the cap loses nothing but its replay: the part read ahead is sent
//! first, then the rest of the stream.
//!
//! A call with a DPoP-bound token (make the client `with_origin`, so that the call's URI, which
//! its proof names, is absolute) meets a resource server's nonce challenge as an HTTP request
//! does: a trailers-only `UNAUTHENTICATED` whose head carries `WWW-Authenticate: DPoP
//! error="use_dpop_nonce"` and the nonce in `DPoP-Nonce` (a tonic server puts them in the
//! `Status`'s metadata) is sent again with the nonce and the same token, free of the replay
//! budget, when its messages were buffered whole; the `DPoP-Nonce` in any answer's head is kept
//! for the call's origin.
//!
//! # Costs
//!
//! Over the [`AuthService`](crate::AuthService)'s own hot path (a token load, a header insert and,
//! with replay on, a copy of the request): reading a unary call's body ahead (one frame, no
//! copy) and boxing it again as tonic's body; for the response, a reference-counted handle and
//! header value, and one comparison per trailers frame. Replayed calls resend the same buffer.
//! A keyed layer's call adds the lookup of its session (one atomic load and a hash lookup, as
//! through the keyed layer's tower service) and two reference counts on that session: the
//! handle the channel watches it with, and the one its step holds.
//!
//! # Limitations
//!
//! - A classifier that does not take a 401 for a dead token ([`Classifier::none`], or
//!   statuses without 401) leaves trailers-only `UNAUTHENTICATED` alone too.
//!
//! [`Classifier::none`]: crate::provider::Classifier::none
//! - Client-streaming and bidirectional calls whose stream is still open when the call is made
//!   are never replayed, and neither are calls over the cap.
//! - A stream that ends `UNAUTHENTICATED` invalidates its token only if the token is still
//!   current and unexpired; a token already replaced is left alone.
//! - Only `UNAUTHENTICATED` (16) means a dead token; `PERMISSION_DENIED` (7) and every other
//!   code pass through as they are.

mod body;
mod buffer;
mod forward;
mod future;
mod layer;
mod service;

pub use self::layer::GrpcAuthLayer;
pub use self::service::GrpcAuthService;

use http::{HeaderMap, HeaderName};

/// The gRPC status header: in a stream's trailers, or in the head of a trailers-only response.
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// Whether `headers` (a trailers-only response's head, or a stream's trailers) carry gRPC
/// `UNAUTHENTICATED` (16).
#[inline]
fn grpc_unauthenticated(headers: &HeaderMap) -> bool {
    headers.get(&GRPC_STATUS).map(|v| v.as_bytes()) == Some(b"16")
}
