//! Runs one local API emulation until interrupted, printing its URLs and credentials, so that
//! the demo's external mode (or any client) can be pointed at it.
//!
//! ```text
//! cargo run --example emulate -- oauth2
//! ```

use std::process::ExitCode;
use std::time::Duration;

use tower_token_auth::emulation::{Api, Config, Emulation};

#[tokio::main]
async fn main() -> ExitCode {
    let name = std::env::args().nth(1).unwrap_or_default();
    let api = match name.as_str() {
        "union-service" => Api::UnionService,
        "simacan" => Api::Simacan,
        "oli" => Api::Oli,
        "tradecloud" => Api::Tradecloud,
        "intergiro" => Api::Intergiro,
        "oauth2" => Api::OAuth2,
        _ => {
            eprintln!("usage: emulate union-service|simacan|oli|tradecloud|intergiro|oauth2 [ACCESS_SECS]");
            return ExitCode::from(2);
        }
    };
    let access_secs = std::env::args()
        .nth(2)
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(300.0);
    let config = Config {
        access_lifetime: Duration::from_secs_f64(access_secs),
        ..Config::default()
    };
    let emulation = match Emulation::start(api, config).await {
        Ok(emulation) => emulation,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let c = emulation.config();
    println!("auth-url     {}", emulation.base_url());
    println!("api-url      {}", emulation.resource_url());
    println!("username     {}", c.username);
    println!("password     {}", c.password);
    println!("api-key      {}", c.api_key);
    println!("client-id    {}", c.client_id);
    println!("client-secret {}", c.client_secret);
    let _ = tokio::signal::ctrl_c().await;
    println!("{:?}", emulation.stats());
    ExitCode::SUCCESS
}
