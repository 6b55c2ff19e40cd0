//! The layer over a hyper-util client: Simacan's preset against a local emulation of its API.
//!
//! ```text
//! cargo run --example hyper_client
//! ```

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};
use tower_token_auth::{presets, AuthLayer};
use tower_token_auth_emulation::{Api, Config, Emulation};

#[tokio::main]
async fn main() -> Result<(), tower::BoxError> {
    let simacan = Emulation::start(Api::Simacan, Config::default()).await?;
    let config = simacan.config();

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let provider = presets::simacan(
        &simacan.base_url(),
        &config.username,
        config.password.clone(),
    )?;
    let layer = AuthLayer::new(provider, client.clone());
    let api = ServiceBuilder::new().layer(layer.clone()).service(client);

    for _ in 0..3 {
        let request = http::Request::get(simacan.resource_url()).body(Full::default())?;
        let response = api.clone().oneshot(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        println!(
            "GET {} -> {status} ({} bytes)",
            simacan.resource_url(),
            body.len()
        );
    }

    // The token died early: the 401 costs one refresh, and the request is replayed.
    simacan.revoke_access_tokens();
    let request = http::Request::get(simacan.resource_url()).body(Full::default())?;
    println!(
        "after revocation -> {}",
        api.oneshot(request).await?.status()
    );
    println!("{:?}", layer.metrics());
    Ok(())
}
