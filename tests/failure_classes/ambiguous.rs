//! Failure classes beyond transient and rejected (ARCHITECTURE.md invariants 6 and 10): answers
//! that cannot tell refused credentials from a server fault, lifetimes that cannot be right, and
//! an API with one error status under random faults over real HTTP.

use crate::support::emulated;

use std::sync::Arc;
use std::time::Duration;

use tower::Layer;
use tower_token_auth::provider::{Failure, Provider, TokenPolicy};
use tower_token_auth::{AuthCall, AuthError, AuthLayer, Clock, ErrorKind, Secret};
use tower_token_auth_emulation::{Api, Config, Emulation, FaultKind};

use crate::support::{paused_layer, AuthServer, Fault, TestProvider};

/// The test provider, for an API that answers every failure alike: ambiguous.
#[derive(Debug)]
struct OneErrorStatus(TestProvider);

impl Provider for OneErrorStatus {
    fn login_request(
        &self,
    ) -> Result<http::Request<http_body_util::Full<bytes::Bytes>>, AuthError> {
        self.0.login_request()
    }
    fn refresh_request(
        &self,
        refresh_token: &Secret,
    ) -> Result<http::Request<http_body_util::Full<bytes::Bytes>>, AuthError> {
        self.0.refresh_request(refresh_token)
    }
    fn classify_failure(&self, _: AuthCall, _: &http::Response<bytes::Bytes>) -> Failure {
        Failure::AMBIGUOUS
    }
    fn policy(&self) -> TokenPolicy {
        self.0.policy()
    }
}

fn one_error_status_layer(server: &AuthServer) -> AuthLayer {
    AuthLayer::builder(OneErrorStatus(TestProvider::new()))
        .clock(Clock::tokio())
        .build(server.transport())
}

#[tokio::test(start_paused = true)]
async fn an_ambiguous_answer_is_a_rejection_only_three_times_in_a_row() {
    // A wrong password: three logins, then `LoginRejected` and the backoff.
    let server = AuthServer::new(100, Duration::from_millis(10));
    server.set_reject_logins(true);
    let layer = one_error_status_layer(&server);
    let handle = layer.handle();
    let error = handle.token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LoginRejected, "{error}");
    assert!(
        error
            .to_string()
            .ends_with("the same answer 3 times in a row"),
        "{error}"
    );
    assert_eq!(server.logins(), 3);
    // Requests fail fast meanwhile: no credentials.
    let error = handle.token().await.unwrap_err();
    assert!(
        error.retry_in().is_some() && error.kind() == ErrorKind::LoginRejected,
        "{error}"
    );
    assert_eq!(server.logins(), 3);
    // Past the backoff (5 s, plus at most half again): three more, no more.
    tokio::time::sleep(Duration::from_millis(7_600)).await;
    let error = handle.token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LoginRejected, "{error}");
    assert_eq!(server.logins(), 6, "at most three per rejection period");

    // Two server faults answered alike, then a token: nobody sees a failure.
    let server = AuthServer::new(100, Duration::from_millis(10));
    server.set_fault(Some(Fault::Reply(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        "application/json",
        bytes::Bytes::from_static(br#"{"status":500,"title":"Internal Error"}"#),
    )));
    server.clear_fault_after(2);
    let layer = one_error_status_layer(&server);
    let token = layer
        .handle()
        .token()
        .await
        .expect("the third login succeeds");
    assert_eq!(token.generation(), 1);
    assert_eq!(server.logins(), 3);
    assert_eq!(layer.handle().metrics().auth_failures, 2);
}

/// `expires_in: 0` (or `0.001`, `1e-9`): not a token to renew on every request, but one of
/// unknown lifetime, assumed short, with the upstream's 401 as the backstop.
#[tokio::test(start_paused = true)]
async fn a_lifetime_under_a_second_is_unknown_not_an_auth_call_per_request() {
    let server = AuthServer::new(100, Duration::from_millis(10));
    server.set_fault(Some(Fault::Reply(
        http::StatusCode::OK,
        "application/json",
        bytes::Bytes::from_static(br#"{"access_token":"at-1","expires_in":0.001}"#),
    )));
    let layer = paused_layer(&server, TestProvider::new());
    let handle = layer.handle();
    for _ in 0..50 {
        let token = handle.token().await.expect("a token");
        assert_eq!(token.generation(), 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.call_times().len(), 1);
    // Assumed to live a minute (the default lifetime, capped): then renewed, once.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(handle.token().await.unwrap().generation(), 2);
    assert_eq!(server.call_times().len(), 2);
}

/// union-service answers a wrong password and its own faults with the same JSON 500. With 30 % of
/// auth calls failing (its JSON 500 among 503s, malformed JSON, no token, a CR/LF token and a
/// string expiry), 2 s tokens revoked every 100 requests (so that renewals, and faults, are
/// many) and 16 requests in flight, at least 99.9 % of requests succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn union_service_rides_out_faults_answered_like_rejections() {
    let _load = crate::support::one_load_at_a_time().await;
    let config = Config {
        access_lifetime: Duration::from_secs(2),
        fault_seed: Some(18),
        ..Config::default()
    };
    let emulation = Arc::new(Emulation::start(Api::UnionService, config).await.unwrap());
    emulation.set_fault_rate(
        0.3,
        &[
            FaultKind::ApiError,
            FaultKind::Unavailable,
            FaultKind::Malformed,
            FaultKind::NoToken,
            FaultKind::CrLfToken,
            FaultKind::StringExpiry,
        ],
    );
    let client = emulated::client();
    let layer = AuthLayer::new(
        emulated::preset(Api::UnionService, &emulation),
        client.clone(),
    );
    let svc = layer.layer(client);
    let revoker = Arc::clone(&emulation);
    let load = emulated::spawn_load(&svc, &emulation, 16, move |n| {
        if n % 100 == 99 {
            revoker.revoke_access_tokens();
        }
    });
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (ok, failed) = load.finish().await;
    let stats = emulation.stats();
    eprintln!(
        "union-service: {ok} ok, {failed} failed; {stats:?}; {:?}",
        layer.handle().metrics()
    );
    assert!(stats.faults >= 50, "faults were injected: {stats:?}");
    assert!(ok >= 1_000, "{ok} requests served");
    assert!(ok * 1000 >= (ok + failed) * 999, "{ok} ok, {failed} failed");
    assert_eq!(stats.violations, 0, "{stats:?}");
}
