//! gRPC through the layer: a local OAuth2 emulation issues the tokens, a local tonic health
//! server accepts only those its protected resource says are live, and a health client calls it
//! over a `Channel` wrapped in `GrpcAuthLayer`. Halfway, every token is revoked server-side.
//!
//! ```text
//! cargo run --example tonic --features tonic
//! ```

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tonic::body::Body;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::Status;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
use tower::filter::AsyncFilterLayer;
use tower::{BoxError, ServiceBuilder};
use tower_token_auth::grpc::GrpcAuthLayer;
use tower_token_auth::provider::oauth2;
use tower_token_auth::AuthLayer;
use tower_token_auth_emulation::{Api, Config, Emulation};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let emulation = Emulation::start(Api::OAuth2, Config::default()).await?;
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    // The server: UNAUTHENTICATED unless the emulation's resource accepts the call's token.
    let (client, resource) = (http.clone(), emulation.resource_url());
    let guard = AsyncFilterLayer::new(move |request: http::Request<Body>| {
        let (client, resource) = (client.clone(), resource.clone());
        async move {
            let token = request.headers().get(AUTHORIZATION).cloned();
            let check =
                http::Request::get(resource).header(AUTHORIZATION, token.ok_or("no token")?);
            match client.request(check.body(Full::default())?).await?.status() {
                http::StatusCode::OK => Ok(request),
                _ => Err(BoxError::from(Status::unauthenticated("token not live"))),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (_reporter, health) = tonic_health::server::health_reporter();
    let server = Server::builder().layer(guard).add_service(health);
    tokio::spawn(server.serve_with_incoming(TcpIncoming::from(listener)));

    // The client: auth calls over HTTP/1 to the emulation, gRPC over the channel.
    let config = emulation.config();
    let provider = oauth2::Builder::password(
        &emulation.base_url(),
        &config.username,
        config.password.as_str(),
    )
    .confidential_client(&config.client_id, config.client_secret.as_str())
    .build()?;
    let layer = AuthLayer::new(provider, http);
    let handle = layer.handle();
    let grpc = GrpcAuthLayer::new(layer);
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut health = HealthClient::new(ServiceBuilder::new().layer(grpc).service(channel));

    for round in ["first call", "after revocation"] {
        if round == "after revocation" {
            emulation.revoke_access_tokens();
        }
        let reply = health.check(HealthCheckRequest::default()).await?;
        let generation = handle.current().map(|t| t.generation());
        println!(
            "{round:>16}: {:?} with token generation {generation:?}",
            reply.into_inner().status()
        );
    }
    let (metrics, stats) = (handle.metrics(), emulation.stats());
    println!(
        "layer: {} login(s), {} refresh(es), {} replay(s); emulation: {} violation(s)",
        metrics.logins, metrics.refreshes, metrics.replays, stats.violations
    );
    Ok(())
}
