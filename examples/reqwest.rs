//! reqwest with the middleware: the OLI Systems preset against a local emulation of its API,
//! auth calls through reqwest too.
//!
//! ```text
//! cargo run --example reqwest --features reqwest
//! ```

use reqwest_middleware::ClientBuilder;
use tower_token_auth::provider::{Credentials, Preset};
use tower_token_auth::reqwest::{AuthMiddleware, ReqwestTransport};
use tower_token_auth::AuthLayer;
use tower_token_auth_emulation::{Api, Config, Emulation};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let oli = Emulation::start(Api::Oli, Config::default()).await?;
    let config = oli.config();
    let provider = Preset::Oli.provider(
        &oli.base_url(),
        &Credentials::new()
            .username(&config.username)
            .password(config.password.clone()),
    )?;

    let layer = AuthLayer::new(provider, ReqwestTransport::new(reqwest::Client::builder())?);
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::new(layer.handle()))
        .build();

    for _ in 0..3 {
        let response = client.get(oli.resource_url()).send().await?;
        println!("GET {} -> {}", oli.resource_url(), response.status());
    }
    oli.revoke_access_tokens();
    let response = client.get(oli.resource_url()).send().await?;
    println!("after revocation -> {}", response.status());
    println!("{:?}", layer.handle().metrics());
    Ok(())
}
