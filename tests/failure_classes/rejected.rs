//! Rejected credentials: a refused refresh falls back to a login, a refused login fails every
//! waiter and is backed off, and a refused refresh token is not sent again.

use std::time::Duration;

use http::StatusCode;
use tower_token_auth::provider::TokenPolicy;
use tower_token_auth::{AuthError, AuthLayer, AuthService, Clock, ErrorKind};

use crate::support::{
    auth_error, concurrent, paused_layer as new_layer, send, service, AuthServer, TestProvider,
    Upstream, AUTH_DELAY, MARK,
};

#[tokio::test(start_paused = true)]
async fn rejected_refresh_falls_back_to_login() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.set_reject_refreshes(true);
    tokio::time::advance(Duration::from_secs(61)).await;
    let results = concurrent(&svc, 20).await;
    assert!(results
        .iter()
        .all(|r| r.as_ref().is_ok_and(|r| r.status() == StatusCode::OK)));
    assert_eq!((server.refreshes(), server.logins()), (1, 2));
    assert_eq!(layer.handle().metrics().auth_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn rejected_refresh_without_fallback_fails_then_logs_in_after_backoff() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let mut policy = TokenPolicy::default();
    policy.login_on_refresh_rejected = false;
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.set_reject_refreshes(true);
    tokio::time::advance(Duration::from_secs(61)).await;
    let err = send(&svc).await.unwrap_err();
    assert!(
        auth_error(&err).kind() == ErrorKind::RefreshRejected,
        "{err}"
    );
    assert_eq!((server.refreshes(), server.logins()), (1, 1));
    // The rejection holds for its backoff: requests fail fast with it, nothing is sent.
    let err = send(&svc).await.unwrap_err();
    let err = auth_error(&err);
    assert!(
        err.kind() == ErrorKind::RefreshRejected && err.retry_in().is_some(),
        "{err}"
    );
    tokio::time::advance(err.retry_in().unwrap()).await;
    assert_eq!((server.refreshes(), server.logins()), (1, 1));
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    // The rejected refresh token is never sent again: the next attempt logs in.
    assert_eq!((server.refreshes(), server.logins()), (1, 2));
}

/// The fail-fast error after a rejection, and how long it says credentials wait.
pub(crate) async fn fails_fast(svc: &AuthService<Upstream>) -> (AuthError, Duration) {
    let err = send(svc).await.unwrap_err();
    let err = auth_error(&err).clone();
    assert!(err.retry_in().is_some(), "{err}");
    let wait = err.retry_in().unwrap();
    (err, wait)
}

#[tokio::test(start_paused = true)]
async fn rejected_login_fails_every_waiter_and_backs_off() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    server.set_reject_logins(true);
    // 2 s doubling to 8 s: the nominal delay after the first and the second rejection.
    let nominal = [Duration::from_secs(2), Duration::from_secs(4)];
    let layer = AuthLayer::builder(TestProvider::new())
        .clock(Clock::tokio())
        .rejection_backoff(Duration::from_secs(2), Duration::from_secs(8))
        .build(server.transport());
    let svc = service(&server, &layer);

    for result in concurrent(&svc, 50).await {
        let err = result.unwrap_err();
        let err = auth_error(&err);
        assert_eq!(err.kind(), ErrorKind::LoginRejected);
        assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
        assert!(
            err.retry_in().is_none(),
            "the waiters saw the login itself fail"
        );
    }
    assert_eq!(server.logins(), 1);

    // Within the backoff: fail fast with the rejection, send nothing. The jittered delay is
    // never shorter than the nominal one, nor longer than half as much again.
    let (err, wait) = fails_fast(&svc).await;
    assert!(err.kind() == ErrorKind::LoginRejected);
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
    assert!(wait >= nominal[0] && wait <= nominal[0] * 3 / 2, "{wait:?}");
    tokio::time::advance(wait - Duration::from_millis(1)).await;
    for result in concurrent(&svc, 10).await {
        assert!(auth_error(&result.unwrap_err()).retry_in().is_some());
    }
    assert_eq!(server.logins(), 1);

    // After it: one more attempt, which doubles the backoff.
    tokio::time::advance(Duration::from_millis(1)).await;
    let err = send(&svc).await.unwrap_err();
    assert!(
        auth_error(&err).kind() == ErrorKind::LoginRejected
            && auth_error(&err).retry_in().is_none()
    );
    assert_eq!(server.logins(), 2);
    let (_, wait) = fails_fast(&svc).await;
    assert!(wait >= nominal[1] && wait <= nominal[1] * 3 / 2, "{wait:?}");
    assert_eq!(server.logins(), 2);

    // Credentials accepted again: the next attempt after the backoff succeeds and resets it.
    server.set_reject_logins(false);
    tokio::time::advance(wait).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(server.logins(), 3);
}

#[tokio::test(start_paused = true)]
async fn rejected_refresh_token_is_not_resent_when_the_fallback_login_fails() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.set_reject_refreshes(true);
    server.set_reject_logins(true);
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(auth_error(&send(&svc).await.unwrap_err()).kind() == ErrorKind::LoginRejected);
    assert_eq!((server.refreshes(), server.logins()), (1, 2));

    server.set_reject_refreshes(false);
    server.set_reject_logins(false);
    let (_, wait) = fails_fast(&svc).await;
    tokio::time::advance(wait).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!((server.refreshes(), server.logins()), (1, 3));
    assert_eq!(server.refresh_tokens_seen(), [format!("rt-1-{MARK}")]);
}
