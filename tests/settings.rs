//! Layer settings at their extremes: whatever the builder is given, nothing panics and the layer
//! serves requests.

mod support;

use std::time::Duration;

use http::StatusCode;
use tower::{Layer, ServiceExt};
use tower_token_auth::provider::RefreshTiming;
use tower_token_auth::store::MemoryStore;
use tower_token_auth::{AuthLayer, Backoff, Clock};

use support::{get, AuthServer, Fault, TestProvider};

const AUTH_DELAY: Duration = Duration::from_millis(50);

/// Every duration the builder and the policy take, at `Duration::MAX`.
fn extreme_layer(server: &AuthServer, store: bool) -> AuthLayer {
    let huge = Backoff::new(Duration::MAX, Duration::MAX, u32::MAX);
    let builder = AuthLayer::builder(TestProvider::new())
        .with_policy(|policy| {
            policy.refresh = RefreshTiming::Proactive {
                margin: Duration::MAX,
            };
            policy.default_lifetime = Duration::MAX;
        })
        .clock(Clock::tokio())
        .timeout(Duration::MAX)
        .max_wait(Duration::MAX)
        .retry_after_cap(Duration::MAX)
        .retry_backoff(huge)
        .rejection_backoff(huge)
        .lease_ttl(Duration::MAX);
    let builder = if store {
        builder.store(MemoryStore::new(), "extreme")
    } else {
        builder
    };
    builder.build(server.transport())
}

async fn serves_with_extreme_settings(store: bool) {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = extreme_layer(&server, store);
    let svc = layer.layer(server.upstream());
    for _ in 0..3 {
        let response = svc.clone().oneshot(get()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!((server.logins(), server.refreshes()), (1, 0));
    // Expiry, proactive refresh and replay still work: the token dies upstream, one refresh.
    server.revoke_access_tokens();
    let response = svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!((server.logins(), server.refreshes()), (1, 1));
    // A transient failure is retried after the (clamped) backoff, not never.
    server.set_fault(Some(Fault::RetryAfter(
        StatusCode::SERVICE_UNAVAILABLE,
        "1",
    )));
    server.clear_fault_after(1);
    server.revoke_access_tokens();
    let response = svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.logins() + server.refreshes(), 4);
}

#[tokio::test(start_paused = true)]
async fn duration_max_everywhere_serves_requests() {
    serves_with_extreme_settings(false).await;
}

#[tokio::test(start_paused = true)]
async fn duration_max_everywhere_serves_requests_with_a_memory_store() {
    serves_with_extreme_settings(true).await;
}
