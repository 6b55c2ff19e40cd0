//! When a token is renewed: ahead of expiry in the background, at half-life for short lifetimes, or
//! only after expiry when the policy says so.

use std::time::Duration;

use http::StatusCode;
use tower_token_auth::provider::{RefreshTiming, TokenPolicy};

use crate::support::{
    bearer, concurrent, paused_layer as new_layer, send, service, AuthServer, TestProvider,
    AUTH_DELAY,
};

#[tokio::test(start_paused = true)]
async fn after_expiry_policy_never_refreshes_a_valid_token() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let mut policy = TokenPolicy::default();
    policy.refresh = RefreshTiming::AfterExpiry;
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);

    tokio::time::advance(Duration::from_millis(59_500)).await;
    for result in concurrent(&svc, 10).await {
        assert_eq!(result.unwrap().status(), StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(server.refreshes(), 0);

    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(server.refreshes(), 1);
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_runs_in_the_background() {
    let server = AuthServer::new(100, AUTH_DELAY);
    let mut policy = TokenPolicy::default();
    policy.refresh = RefreshTiming::Ahead {
        margin: Duration::from_secs(30),
    };
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);

    // Before the margin (and its jitter, up to a fifth of it earlier): nothing.
    tokio::time::advance(Duration::from_secs(63)).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(server.refreshes(), 0);

    // Inside it: requests go out at once with the old token, one refresh starts behind them.
    tokio::time::advance(Duration::from_secs(8)).await;
    let results = concurrent(&svc, 20).await;
    assert!(results
        .iter()
        .all(|r| r.as_ref().is_ok_and(|r| r.status() == StatusCode::OK)));
    let headers = server.upstream_headers();
    assert!(headers[2..].iter().all(|h| *h == bearer(1)));
    assert_eq!(
        layer.handle().metrics().token_waits,
        1,
        "nobody waited for the refresh"
    );
    tokio::time::sleep(AUTH_DELAY).await;
    assert_eq!(server.refreshes(), 1);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(server.upstream_headers().last().unwrap(), &bearer(2));
    assert_eq!(server.refreshes(), 1);
}

#[tokio::test(start_paused = true)]
async fn short_lifetimes_refresh_at_half_life() {
    let server = AuthServer::new(10, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new()); // margin 30 s > lifetime
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    // Half the lifetime, brought forward by at most a fifth of that: refresh due in [4 s, 5 s].
    tokio::time::advance(Duration::from_millis(3900)).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    tokio::time::sleep(AUTH_DELAY).await;
    assert_eq!(server.refreshes(), 0);
    tokio::time::advance(Duration::from_millis(1100)).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    tokio::time::sleep(AUTH_DELAY).await;
    assert_eq!(server.refreshes(), 1);
}
