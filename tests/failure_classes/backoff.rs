//! Backoff after failures that retrying soon would not cure: unexpected statuses, a panicking
//! provider, and backoffs too long to add to an instant.

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_token_auth::token::TokenSet;
use tower_token_auth::{AuthLayer, Clock, ErrorKind};

use crate::bad_answers::reply;
use crate::rejected::fails_fast;
use crate::support::{
    auth_error, get, paused_layer as new_layer, send, service, AuthServer, TestProvider, AUTH_DELAY,
};

/// A redirect or a 404 from the auth endpoint is a configuration problem: retrying soon would
/// not help, so it is backed off like a rejection, and requests fail fast with it meanwhile.
#[tokio::test(start_paused = true)]
async fn an_unexpected_status_is_backed_off_not_retried() {
    for status in [StatusCode::FOUND, StatusCode::NOT_FOUND] {
        let server = AuthServer::new(100, AUTH_DELAY);
        server.set_fault(Some(reply(status, b"")));
        let layer = new_layer(&server, TestProvider::new());
        let svc = service(&server, &layer);
        let err = send(&svc).await.unwrap_err();
        let err = auth_error(&err);
        assert_eq!(
            (err.kind(), err.status()),
            (ErrorKind::Status, Some(status))
        );
        assert_eq!(err.retry_in(), None, "the first request made the call");
        let (err, _) = fails_fast(&svc).await;
        assert_eq!(err.status(), Some(status));
        assert_eq!(server.logins(), 1);
    }
}

/// A provider that panics while parsing: a bug in user code must not disable the backoff.
struct Panicky(TestProvider);

impl tower_token_auth::provider::Provider for Panicky {
    fn login_request(
        &self,
    ) -> Result<http::Request<http_body_util::Full<bytes::Bytes>>, tower_token_auth::AuthError>
    {
        self.0.login_request()
    }
    fn refresh_request(
        &self,
        refresh_token: &tower_token_auth::Secret,
    ) -> Result<http::Request<http_body_util::Full<bytes::Bytes>>, tower_token_auth::AuthError>
    {
        self.0.refresh_request(refresh_token)
    }
    fn parse_response(
        &self,
        _: tower_token_auth::AuthCall,
        _: &http::Response<bytes::Bytes>,
    ) -> Result<TokenSet, tower_token_auth::AuthError> {
        panic!("provider bug");
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_provider_still_backs_off() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let layer = AuthLayer::builder(Panicky(TestProvider::new()))
        .clock(Clock::tokio())
        .build(server.transport());
    let svc = layer.layer(server.upstream::<Full<Bytes>>());
    let err = svc.clone().oneshot(get()).await.unwrap_err();
    assert_eq!(auth_error(&err).kind(), ErrorKind::Aborted);
    for _ in 0..5 {
        let err = svc.clone().oneshot(get()).await.unwrap_err();
        let err = auth_error(&err);
        assert!(
            err.retry_in().is_some() && err.kind() == ErrorKind::Aborted,
            "{err}"
        );
    }
    assert_eq!(server.logins(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_enormous_backoff_does_not_overflow() {
    let server = AuthServer::new(60, AUTH_DELAY);
    server.set_reject_logins(true);
    let layer = AuthLayer::builder(TestProvider::new())
        .clock(Clock::tokio())
        .rejection_backoff(Duration::MAX, Duration::MAX)
        .build(server.transport());
    let svc = service(&server, &layer);
    assert!(auth_error(&send(&svc).await.unwrap_err()).kind() == ErrorKind::LoginRejected);
    for _ in 0..3 {
        assert!(auth_error(&send(&svc).await.unwrap_err())
            .retry_in()
            .is_some());
    }
    assert_eq!(server.logins(), 1);
}
