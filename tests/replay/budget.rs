//! The replay budget: `max_replays`, `max_sends`, and replay turned off.

use http::StatusCode;
use tower_token_auth::provider::TokenPolicy;

use crate::support::{
    bearer, paused_layer as new_layer, send, service, AuthServer, TestProvider, AUTH_DELAY,
};

#[tokio::test(start_paused = true)]
async fn max_replays_bounds_the_replays() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let mut policy = TokenPolicy::default();
    policy.max_replays = 3;
    policy.max_sends = 10;
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.set_upstream_rejects_all(true);
    let calls = server.upstream_calls();
    assert_eq!(send(&svc).await.unwrap(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.upstream_calls() - calls, 4);
    assert_eq!(layer.handle().metrics().replays, 3);
    assert_eq!(server.refreshes(), 3);
    assert_eq!(server.reused_refresh_tokens(), 0);
}

#[tokio::test(start_paused = true)]
async fn max_sends_caps_replays_of_every_kind() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let mut policy = TokenPolicy::default();
    policy.max_replays = 10;
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.set_upstream_rejects_all(true);
    let calls = server.upstream_calls();
    assert_eq!(send(&svc).await.unwrap(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        server.upstream_calls() - calls,
        3,
        "the default cap is 3 sends"
    );
    assert_eq!(layer.handle().metrics().replays, 2);
}

#[tokio::test(start_paused = true)]
async fn replay_disabled_returns_the_first_401() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let mut policy = TokenPolicy::default();
    policy.max_replays = 0;
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.revoke_access_tokens();
    assert_eq!(send(&svc).await.unwrap(), StatusCode::UNAUTHORIZED);
    assert_eq!(layer.handle().metrics().replays, 0);
    // The 401 still marked the token dead: one background refresh, and the next request (which
    // waits for it instead of sending the dead token) carries the new token.
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(server.refreshes(), 1);
    assert_eq!(server.upstream_headers().last().unwrap(), &bearer(2));
}
