//! Tracing output never carries a secret. It shares its test binary only with `secrets`, whose
//! tests also capture tracing output: tracing caches each event's interest process-wide, and tests
//! running beside it on other threads without a subscriber could make it miss events.

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use tower::{Layer, ServiceExt};
use tower_token_auth::store::{FileStore, StoredSession};
use tower_token_auth::{AuthLayer, AuthService, Clock};

use crate::support::capture::Capture;
use crate::support::{get, AuthServer, Fault, TestProvider, Upstream, MARK, PASSWORD};

const AUTH_DELAY: Duration = Duration::from_millis(50);

async fn send(svc: &AuthService<Upstream>) -> Result<StatusCode, tower::BoxError> {
    svc.clone().oneshot(get()).await.map(|r| r.status())
}

/// Tracing output of login, refresh, replay, rejection and backoff never carries a secret.
#[tokio::test(start_paused = true)]
async fn tracing_output_has_no_secrets() {
    let (capture, _guard) = Capture::start();

    let server = AuthServer::new(60, AUTH_DELAY);
    let layer = AuthLayer::builder(TestProvider::new())
        .clock(Clock::tokio())
        .build(server.transport());
    let svc: AuthService<Upstream> = layer.layer(server.upstream());
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK); // login
    server.revoke_access_tokens();
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK); // 401, refresh, replay
    server.set_reject_refreshes(true);
    server.set_reject_logins(true);
    tokio::time::advance(Duration::from_secs(61)).await;
    let _ = send(&svc).await.unwrap_err(); // refresh rejected, login rejected
    let _ = send(&svc).await.unwrap_err(); // backing off
                                           // A server that echoes what it was sent, through a transient failure and its retry.
    let echo = format!(r#"{{"error":"temporarily_unavailable","error_description":"{PASSWORD}"}}"#);
    let fresh = AuthServer::new(60, AUTH_DELAY);
    fresh.set_fault(Some(Fault::Reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "application/json",
        Bytes::from(echo),
    )));
    fresh.clear_fault_after(1);
    let layer = AuthLayer::builder(TestProvider::new())
        .clock(Clock::tokio())
        .build(fresh.transport());
    let svc: AuthService<Upstream> = layer.layer(fresh.upstream());
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);

    // A store holding another key's entry (tokens and all): refused, logged, replaced by a
    // login; a second layer on the store adopts the session.
    let dir = std::env::temp_dir().join(format!("tower-token-auth-logs-{}", std::process::id()));
    let clock = Clock::tokio();
    let store = FileStore::new(&dir).clock(clock);
    let foreign = StoredSession::new(
        format!("at-x-{MARK}"),
        clock.wall() + Duration::from_secs(600),
    )
    .with_refresh_token(format!("rt-x-{MARK}"), None);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(store.path("k"), foreign.to_json("other")).unwrap();
    let stored = AuthServer::new(60, AUTH_DELAY);
    for _ in 0..2 {
        let layer = AuthLayer::builder(TestProvider::new())
            .clock(clock)
            .store(store.clone(), "k")
            .build(stored.transport());
        let svc: AuthService<Upstream> = layer.layer(stored.upstream());
        assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    }
    assert_eq!(stored.logins(), 1);
    let _ = std::fs::remove_dir_all(&dir);

    let logs = capture.text();
    for event in [
        "auth call succeeded",
        "replaying request",
        "refresh rejected",
        "backing off",
        "retrying",
        "temporarily_unavailable ([redacted])",
        "token store failed",
        "belongs to another session key",
        "session saved",
        "session adopted",
    ] {
        assert!(logs.contains(event), "missing {event:?} in:\n{logs}");
    }
    assert!(!logs.contains(MARK), "a secret reached the logs:\n{logs}");
}

/// A provider from a spec whose secrets come from the environment, one of them in the query:
/// through login, refresh, and a server echoing the query's key in its error, no secret is
/// logged.
#[tokio::test(start_paused = true)]
async fn spec_secrets_from_the_environment_stay_out_of_the_logs() {
    use tower_token_auth::provider::{Credentials, ProviderSpec};

    let (capture, _guard) = Capture::start();
    // Names unique to this test binary: the process environment is shared by its tests.
    std::env::set_var("TTA_LOGS_PASSWORD", PASSWORD);
    std::env::set_var("TTA_LOGS_KEY", format!("query-key-{MARK}"));
    let spec = r#"
        [login]
        url = "http://auth.test/login"
        query = { key = "${env:TTA_LOGS_KEY}" }
        json = { username = "user", password = "${env:TTA_LOGS_PASSWORD}" }

        [refresh]
        url = "http://auth.test/refresh"
        json = { refresh_token = "${refresh_token}" }
    "#;
    let provider = ProviderSpec::from_toml(spec)
        .and_then(|spec| spec.build(&Credentials::new()))
        .unwrap();
    let server = AuthServer::new(60, AUTH_DELAY);
    let echo = format!(
        r#"{{"error":"temporarily_unavailable","error_description":"bad key query-key-{MARK}"}}"#
    );
    server.set_fault(Some(Fault::Reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "application/json",
        Bytes::from(echo),
    )));
    server.clear_fault_after(1);
    let layer = AuthLayer::builder(provider)
        .clock(Clock::tokio())
        .build(server.transport());
    let svc: AuthService<Upstream> = layer.layer(server.upstream());
    let send = |svc: &AuthService<Upstream>| svc.clone().oneshot(get());
    assert_eq!(send(&svc).await.unwrap().status(), StatusCode::OK);
    server.revoke_access_tokens();
    assert_eq!(send(&svc).await.unwrap().status(), StatusCode::OK);
    // The echoing 503 counts as a login call, retried once.
    assert_eq!((server.logins(), server.refreshes()), (2, 1));

    let logs = capture.text();
    assert!(
        logs.contains("temporarily_unavailable (bad key [redacted])"),
        "{logs}"
    );
    assert!(logs.contains("replaying request"), "{logs}");
    assert!(!logs.contains(MARK), "a secret reached the logs:\n{logs}");
}
