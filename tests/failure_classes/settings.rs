//! Layer settings at their extremes: whatever durations the builder is given, nothing panics and
//! the layer serves requests; a policy that cannot work is refused when the layer is built,
//! whoever built it.

use std::time::Duration;

use http::StatusCode;
use tower::{Layer, ServiceExt};
use tower_token_auth::provider::{RefreshTiming, TokenPolicy};
use tower_token_auth::store::MemoryStore;
use tower_token_auth::{AuthLayer, Clock};

use crate::support::{get, AuthServer, Fault, TestProvider};

const AUTH_DELAY: Duration = Duration::from_millis(50);

/// Every duration the builder and the policy take, at `Duration::MAX`.
fn extreme_layer(server: &AuthServer, store: bool) -> AuthLayer {
    let builder = AuthLayer::builder(TestProvider::new())
        .with_policy(|policy| {
            policy.refresh = RefreshTiming::Ahead {
                margin: Duration::MAX,
            };
            policy.default_lifetime = Duration::MAX;
        })
        .clock(Clock::tokio())
        .timeout(Duration::MAX)
        .max_wait(Duration::MAX)
        .retry_after_cap(Duration::MAX)
        .retry_backoff(Duration::MAX, Duration::MAX)
        .rejection_backoff(Duration::MAX, Duration::MAX)
        .lease_ttl(Duration::MAX);
    let builder = if store {
        builder.store(MemoryStore::default(), "extreme")
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
    // Expiry, refresh ahead and replay still work: the token dies upstream, one refresh.
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

/// A policy that cannot work (ARCHITECTURE.md invariant 9) is refused when its layer is built,
/// however it was made: changed on the builder, or stated by a provider's own `policy()`. The
/// panic names the setting; `TokenPolicy::check` gives the same words as a typed error.
#[test]
fn a_policy_that_cannot_work_is_refused_at_build() {
    let server = AuthServer::new(100, AUTH_DELAY);
    type Change = fn(&mut TokenPolicy);
    let cases: [(Change, &str); 2] = [
        (
            |p| p.max_sends = 0,
            "`max_sends` counts the first send: at least 1",
        ),
        (
            |p| p.default_lifetime = Duration::ZERO,
            "`default_lifetime` must be positive",
        ),
    ];
    for (change, says) in cases {
        let mut policy = TokenPolicy::default();
        change(&mut policy);
        let err = policy.check().unwrap_err();
        assert_eq!(err.kind(), tower_token_auth::ErrorKind::Config);
        assert!(err.to_string().ends_with(says), "{err}");

        let transport = server.transport();
        let on_builder = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            AuthLayer::builder(TestProvider::new())
                .with_policy(change)
                .build(transport)
        }));
        let transport = server.transport();
        let from_provider = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            AuthLayer::new(TestProvider::with_policy(policy), transport)
        }));
        for built in [on_builder, from_provider] {
            let panic = built.expect_err("an invalid policy is refused");
            let message = panic.downcast_ref::<String>().expect("a formatted message");
            assert!(message.starts_with("AuthLayerBuilder::build: invalid auth configuration"));
            assert!(message.ends_with(says), "{message}");
        }
    }
    assert!(TokenPolicy::default().check().is_ok());
}
