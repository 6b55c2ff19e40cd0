//! Revocation (RFC 7009) through the handle: the session's tokens are retired at once, never sent
//! again, and revoked at the auth server refresh token first. Paused clock, in-process servers.

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_token_auth::provider::{Provider, TokenPolicy};
use tower_token_auth::{AuthCall, AuthError, ErrorKind, Secret};

use crate::support::{bearer, get, paused_layer, AuthServer, Fault, TestProvider};

const AUTH_DELAY: Duration = Duration::from_millis(50);
const LIFETIME: u64 = 600;

#[tokio::test(start_paused = true)]
async fn revoking_retires_the_session_and_revokes_the_refresh_token_first() {
    let server = AuthServer::new(LIFETIME, AUTH_DELAY);
    let layer = paused_layer(&server, TestProvider::new());
    let handle = layer.handle();
    let svc = layer.layer(server.upstream());
    assert_eq!(
        svc.clone().oneshot(get()).await.unwrap().status(),
        StatusCode::OK
    );

    handle.revoke().await.unwrap();
    assert_eq!(server.revocations(), ["refresh_token", "access_token"]);
    assert_eq!(handle.metrics().revocations, 2);
    // Retired: the handle has nothing to hand out, and the next request logs in (the refresh
    // token is gone with it) instead of sending the revoked token.
    assert!(handle.current().is_none());
    assert_eq!(
        svc.clone().oneshot(get()).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!((server.logins(), server.refreshes()), (2, 0));
    assert_eq!(server.upstream_headers(), [bearer(1), bearer(2)]);
}

#[tokio::test(start_paused = true)]
async fn revoking_a_cold_session_sends_nothing() {
    let server = AuthServer::new(LIFETIME, AUTH_DELAY);
    let layer = paused_layer(&server, TestProvider::new());
    layer.handle().revoke().await.unwrap();
    assert!(server.revocations().is_empty());
    assert_eq!(server.logins(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_revocation_is_a_typed_error_and_still_retires_the_tokens() {
    let server = AuthServer::new(LIFETIME, AUTH_DELAY);
    let layer = paused_layer(&server, TestProvider::new());
    let handle = layer.handle();
    let first = handle.token().await.unwrap();
    server.set_fault(Some(Fault::RetryAfter(
        StatusCode::SERVICE_UNAVAILABLE,
        "7",
    )));

    let error = handle.revoke().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Status);
    assert_eq!(error.call(), Some(AuthCall::Revoke));
    assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    // Both calls were tried, and the tokens are retired whatever the server said.
    assert_eq!(handle.metrics().revocations, 2);
    assert!(handle.current().is_none());
    server.set_fault(None);
    let next = handle.token().await.unwrap();
    assert!(next.generation() > first.generation());
    assert_eq!((server.logins(), server.refreshes()), (2, 0));
}

/// A provider with no revocation endpoint: the default `revocation_request`.
#[derive(Debug)]
struct NoRevocation(TestProvider);

impl Provider for NoRevocation {
    fn login_request(&self) -> Result<http::Request<Full<Bytes>>, AuthError> {
        self.0.login_request()
    }

    fn refresh_request(
        &self,
        refresh_token: &Secret,
    ) -> Result<http::Request<Full<Bytes>>, AuthError> {
        self.0.refresh_request(refresh_token)
    }

    fn policy(&self) -> TokenPolicy {
        self.0.policy()
    }
}

#[tokio::test(start_paused = true)]
async fn without_a_revocation_endpoint_revoking_is_a_config_error_and_retires_the_tokens() {
    let server = AuthServer::new(LIFETIME, AUTH_DELAY);
    let layer = tower_token_auth::AuthLayer::builder(NoRevocation(TestProvider::new()))
        .clock(tower_token_auth::Clock::tokio())
        .build(server.transport());
    let handle = layer.handle();
    handle.token().await.unwrap();

    let error = handle.revoke().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert_eq!(error.call(), Some(AuthCall::Revoke));
    assert_eq!(handle.metrics().revocations, 0);
    assert!(handle.current().is_none());
    assert!(server.revocations().is_empty());
}

/// Through an OAuth2 provider, against the emulation's strict revocation endpoint: both tokens
/// revoked with the client's authentication, the next request logs in, and the revoked access
/// token never reaches the resource again (the emulation counts any use as a violation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth2_session_is_revoked_at_the_server_and_never_sent_again() {
    use tower_token_auth::provider::oauth2;
    use tower_token_auth_emulation::{Api, Config, Emulation, OAuthExtensions};

    let config = Config {
        extensions: OAuthExtensions {
            revocation: true,
            ..OAuthExtensions::default()
        },
        ..Config::default()
    };
    let emulation = Emulation::start(Api::OAuth2, config).await.unwrap();
    let c = emulation.config();
    let provider =
        oauth2::Builder::password(&emulation.base_url(), &c.username, c.password.clone())
            .confidential_client(&c.client_id, c.client_secret.clone())
            .revocation_url(&format!("{}/oauth/revoke", emulation.issuer()))
            .build()
            .unwrap();
    let client = crate::support::emulated::client();
    let layer = tower_token_auth::AuthLayer::new(provider, client.clone());
    let svc = layer.layer(client);
    let get = || {
        http::Request::get(emulation.resource_url())
            .body(Full::default())
            .unwrap()
    };
    assert_eq!(
        svc.clone().oneshot(get()).await.unwrap().status(),
        StatusCode::OK
    );

    layer.handle().revoke().await.unwrap();
    let stats = emulation.stats();
    assert_eq!(stats.revocation_requests, 2, "{stats:?}");
    assert_eq!(
        svc.clone().oneshot(get()).await.unwrap().status(),
        StatusCode::OK
    );
    let stats = emulation.stats();
    assert_eq!((stats.logins, stats.refreshes), (2, 0), "{stats:?}");
    assert_eq!(
        (stats.revoked_token_uses, stats.violations),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!(layer.handle().metrics().revocations, 2);
}
