//! How long a token lasts: `expires_in`, else the JWT `exp` read on the layer's clock, else the
//! default, counted from when the auth request was sent.

use std::time::Duration;

use http::StatusCode;
use tower_token_auth::provider::{Classifier, RefreshTiming, TokenPolicy};
use tower_token_auth::{AuthLayer, Clock};

use crate::support::{
    concurrent, paused_layer as new_layer, send, service, AuthServer, Fault, TestProvider,
    AUTH_DELAY, MARK,
};

fn jwt(exp: u64) -> String {
    use base64::engine::{general_purpose::URL_SAFE_NO_PAD, Engine};
    format!(
        "{}.{}.sig-{MARK}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp}}}"#))
    )
}

#[tokio::test(start_paused = true)]
async fn expiry_falls_back_to_jwt_exp_then_default() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let server = AuthServer::new(0, AUTH_DELAY);
    server.set_expires_in(None);
    let mut policy = TokenPolicy::default();
    policy.refresh = RefreshTiming::AfterExpiry;
    policy.default_lifetime = Duration::from_secs(20);
    policy.classifier = Classifier::none(); // the upstream does not know the hand-made tokens
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    // First login: a JWT access token with `exp` 600 s ahead and no `expires_in`.
    let body = format!(
        r#"{{"access_token":"{}","refresh_token":"jwt-rt-{MARK}"}}"#,
        jwt(now + 600)
    );
    server.set_fault(Some(Fault::Reply(
        StatusCode::OK,
        "application/json",
        body.into(),
    )));
    send(&svc).await.unwrap();
    server.set_fault(None);
    assert_eq!((server.logins(), server.refreshes()), (1, 0));
    tokio::time::advance(Duration::from_secs(590)).await;
    send(&svc).await.unwrap();
    assert_eq!((server.logins(), server.refreshes()), (1, 0));

    // Expired at 600 s: the refresh token is unknown to the server, so it logs in again and gets
    // an opaque token without `expires_in`, which lives the default 20 s.
    tokio::time::advance(Duration::from_secs(11)).await;
    send(&svc).await.unwrap();
    assert_eq!((server.logins(), server.refreshes()), (2, 1));
    tokio::time::advance(Duration::from_secs(19)).await;
    send(&svc).await.unwrap();
    assert_eq!((server.logins(), server.refreshes()), (2, 1));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!((server.logins(), server.refreshes()), (2, 2));
}

/// A JWT `exp` is read on the layer's clock, wall time included: two paused hours after the
/// layer was built, an `exp` 600 s ahead of the clock lasts 600 s (by the system's wall clock it
/// would be two hours more).
#[tokio::test(start_paused = true)]
async fn jwt_exp_is_read_on_the_layers_clock() {
    let server = AuthServer::new(0, AUTH_DELAY);
    server.set_expires_in(None);
    let mut policy = TokenPolicy::default();
    policy.refresh = RefreshTiming::AfterExpiry;
    policy.classifier = Classifier::none();
    let clock = Clock::tokio();
    let layer = AuthLayer::builder(TestProvider::with_policy(policy))
        .clock(clock)
        .build(server.transport());
    let svc = service(&server, &layer);
    tokio::time::advance(Duration::from_secs(7200)).await;
    let exp = clock
        .wall()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let body = format!(r#"{{"access_token":"{}"}}"#, jwt(exp));
    server.set_fault(Some(Fault::Reply(
        StatusCode::OK,
        "application/json",
        body.into(),
    )));
    send(&svc).await.unwrap();
    server.set_fault(None);
    tokio::time::advance(Duration::from_secs(595)).await;
    send(&svc).await.unwrap();
    assert_eq!(server.logins(), 1);
    tokio::time::advance(Duration::from_secs(10)).await;
    send(&svc).await.unwrap();
    assert_eq!(server.logins(), 2);
}

/// A JWT whose `exp` has passed by the local clock (a skewed clock, no `iat`): the lifetime is
/// unknown, so the token is used for a short default, with a 401 as the backstop; never a login
/// loop.
#[tokio::test(start_paused = true)]
async fn jwt_already_expired_means_lifetime_unknown_not_a_login_loop() {
    let server = AuthServer::new(0, AUTH_DELAY);
    let token = jwt(1_000);
    let body = format!(r#"{{"access_token":"{token}"}}"#);
    server.set_fault(Some(Fault::Reply(
        StatusCode::OK,
        "application/json",
        body.into(),
    )));
    let mut policy = TokenPolicy::default();
    policy.classifier = Classifier::none(); // the upstream does not know the hand-made token
    policy.refresh = RefreshTiming::AfterExpiry;
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    for result in concurrent(&svc, 10).await {
        assert_eq!(result.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(server.logins(), 1);
    let sent = format!("Bearer {token}");
    assert!(server.upstream_headers().iter().all(|h| *h == sent));
    // Trusted for 60 s (the default lifetime is 5 minutes; an expired `exp` caps it).
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.logins(), 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.logins(), 2);
}

#[tokio::test(start_paused = true)]
async fn lifetime_counts_from_when_the_auth_request_was_sent() {
    // A slow auth server: the token was issued somewhere within the 10 s the answer took, so it is
    // only trusted for 60 s from the moment the request left.
    let server = AuthServer::new(60, Duration::from_secs(10));
    let mut policy = TokenPolicy::default();
    policy.refresh = RefreshTiming::AfterExpiry;
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK); // t = 10 s
    tokio::time::advance(Duration::from_secs(49)).await; // t = 59 s
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(server.refreshes(), 0);
    tokio::time::advance(Duration::from_millis(1100)).await; // t = 60.1 s
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(server.refreshes(), 1);
}
