//! Soak: many requests through short-lived tokens with early revocations, over real HTTP.
//!
//! Ignored by default; `.ci/run` runs a bounded size. Size with `SOAK_REQUESTS` (default 200,000):
//!
//! ```text
//! SOAK_REQUESTS=200000 cargo test --release --all-features --test soak -- --ignored --nocapture
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_token_auth::provider::{oauth2, RefreshTiming};
use tower_token_auth::AuthLayer;
use tower_token_auth_emulation::{Api, Config, Emulation};

const LIFETIME: Duration = Duration::from_millis(50);
const CONCURRENCY: u64 = 64;

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak test: run with --ignored; size with SOAK_REQUESTS"]
async fn soak_short_lived_tokens_with_revocations() {
    let total: u64 = std::env::var("SOAK_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let config = Config {
        access_lifetime: LIFETIME,
        refresh_lifetime: Duration::from_secs(3600),
        ..Config::default()
    };
    let emulation = Arc::new(Emulation::start(Api::OAuth2, config).await.unwrap());
    let c = emulation.config();
    let provider =
        oauth2::Builder::password(&emulation.base_url(), &c.username, c.password.clone())
            .confidential_client(&c.client_id, c.client_secret.clone())
            .build()
            .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let layer = AuthLayer::builder(provider)
        .with_policy(|p| {
            // Renew just before expiry, so that refreshes ≈ duration / lifetime.
            p.refresh = RefreshTiming::Ahead {
                margin: Duration::from_millis(2),
            };
            // A revocation can also kill the token a request is replayed with (it was issued
            // just before the revocation): allow a second replay.
            p.max_replays = 2;
        })
        .build(client.clone());
    let svc = layer.layer(client);

    // Tokens also die early, once a second.
    let revoker = {
        let emulation = Arc::clone(&emulation);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                emulation.revoke_access_tokens();
            }
        })
    };

    let issued = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let monitor = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut half = None;
            while done.load(Ordering::Relaxed) < total {
                if half.is_none() && done.load(Ordering::Relaxed) >= total / 2 {
                    half = Some(rss());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            half.unwrap_or_else(rss)
        })
    };
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (svc, url) = (svc.clone(), emulation.resource_url());
            let (issued, done, failed) = (issued.clone(), done.clone(), failed.clone());
            tokio::spawn(async move {
                while issued.fetch_add(1, Ordering::Relaxed) < total {
                    let ok = match Request::get(&url).body(Full::default()) {
                        Ok(request) => match svc.clone().oneshot(request).await {
                            Ok(response) => {
                                let status = response.status();
                                response.into_body().collect().await.is_ok()
                                    && status == StatusCode::OK
                            }
                            Err(_) => false,
                        },
                        Err(_) => false,
                    };
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed();
    let rss_half = monitor.await.unwrap();
    let rss_end = rss();
    revoker.abort();

    let metrics = layer.handle().metrics();
    let stats = emulation.stats();
    let expected = elapsed.as_secs_f64() / LIFETIME.as_secs_f64();
    let ratio = metrics.refreshes as f64 / expected;
    println!(
        "soak: {total} requests in {elapsed:.1?}, {} failed; {} logins, {} refreshes \
         (expected ~{expected:.0}, ratio {ratio:.3}), {} replays; server violations {}; \
         rss {} KiB at half, {} KiB at end",
        failed.load(Ordering::Relaxed),
        metrics.logins,
        metrics.refreshes,
        metrics.replays,
        stats.violations,
        rss_half / 1024,
        rss_end / 1024,
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert_eq!(metrics.logins, 1);
    assert_eq!(stats.violations, 0);
    assert!(
        (0.9..=1.1).contains(&ratio),
        "refreshes {} vs {expected:.0}",
        metrics.refreshes
    );
    assert!(
        rss_end <= rss_half + 8 * 1024 * 1024,
        "resident memory grew from {rss_half} to {rss_end} bytes in the second half"
    );
}
