//! Runs one local API emulation until interrupted, printing its URLs and credentials, so that
//! the demo's external mode (or any client) can be pointed at it.
//!
//! ```text
//! cargo run --example emulate -- oauth2
//! cargo run --example emulate -- simacan 30 --faults 0.2
//! ```
//!
//! `--faults RATE` fails that fraction (0.0 to 1.0) of the auth calls with every fault kind.

use std::process::ExitCode;
use std::time::Duration;

use tower_token_auth_emulation::{Api, Config, Emulation, FaultKind};

const USAGE: &str = "usage: emulate union-service|simacan|oli|tradecloud|intergiro|oauth2 [ACCESS_SECS] [--faults RATE]";

#[tokio::main]
async fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut fault_rate = None;
    if let Some(at) = args.iter().position(|a| a == "--faults") {
        let rate = args
            .get(at + 1)
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|rate| (0.0..=1.0).contains(rate));
        let Some(rate) = rate else {
            eprintln!("--faults takes a rate from 0.0 to 1.0\n{USAGE}");
            return ExitCode::from(2);
        };
        fault_rate = Some(rate);
        args.drain(at..at + 2);
    }
    let name = args.first().cloned().unwrap_or_default();
    let api = match name.as_str() {
        "union-service" => Api::UnionService,
        "simacan" => Api::Simacan,
        "oli" => Api::Oli,
        "tradecloud" => Api::Tradecloud,
        "intergiro" => Api::Intergiro,
        "oauth2" => Api::OAuth2,
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let access_secs = args
        .get(1)
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
    if let Some(rate) = fault_rate {
        emulation.set_fault_rate(rate, &FaultKind::all());
    }
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
