//! The common case, as the README's first example: OAuth2 client credentials over a hyper-util
//! client, against a local emulation of a token endpoint and its protected resource.
//!
//! ```text
//! cargo run --example hyper_client
//! ```

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};
use tower_token_auth::provider::{oauth2, Origins};
use tower_token_auth::AuthLayer;
use tower_token_auth_emulation::{Api, Config, Emulation};

#[tokio::main]
async fn main() -> Result<(), tower::BoxError> {
    let idp = Emulation::start(Api::OAuth2, Config::default()).await?;
    let config = idp.config();

    let provider = oauth2::Builder::client_credentials(
        &idp.base_url(), // the token URL
        &config.client_id,
        config.client_secret.clone(),
    )
    .build()?;
    // The token goes to the API's origin only.
    let origins = Origins::new([format!("http://{}", idp.addr()).as_str()])?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let layer = AuthLayer::builder(provider)
        .with_policy(|p| p.origins = Some(origins))
        .build(client.clone());
    let api = ServiceBuilder::new().layer(layer.clone()).service(client);

    for _ in 0..3 {
        let request = http::Request::get(idp.resource_url()).body(Full::default())?;
        let response = api.clone().oneshot(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        println!(
            "GET {} -> {status} ({} bytes)",
            idp.resource_url(),
            body.len()
        );
    }

    // The token died early: the 401 costs one login (client credentials issue no refresh
    // token), and the request is replayed.
    idp.revoke_access_tokens();
    let request = http::Request::get(idp.resource_url()).body(Full::default())?;
    println!(
        "after revocation -> {}",
        api.oneshot(request).await?.status()
    );
    println!("{:?}", layer.handle().metrics());
    Ok(())
}
