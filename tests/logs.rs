//! Tracing output never carries a secret. A test binary of its own: tracing caches each event's
//! interest process-wide, and tests running beside it on other threads without a subscriber
//! could make it miss events.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use tower::{Layer, ServiceExt};
use tower_token_auth::store::{FileStore, StoredSession};
use tower_token_auth::{AuthLayer, AuthService, Clock};

use support::{get, AuthServer, Fault, TestProvider, Upstream, MARK, PASSWORD};

const AUTH_DELAY: Duration = Duration::from_millis(50);

async fn send(svc: &AuthService<Upstream, TestProvider>) -> Result<StatusCode, tower::BoxError> {
    svc.clone().oneshot(get()).await.map(|r| r.status())
}

/// Tracing output of login, refresh, replay, rejection and backoff never carries a secret.
#[tokio::test(start_paused = true)]
async fn tracing_output_has_no_secrets() {
    #[derive(Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = AuthServer::new(60, AUTH_DELAY);
    let layer = AuthLayer::builder(TestProvider::new())
        .clock(Clock::tokio())
        .build(server.transport());
    let svc: AuthService<Upstream, _> = layer.layer(server.upstream());
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
    let svc: AuthService<Upstream, _> = layer.layer(fresh.upstream());
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
        let svc: AuthService<Upstream, _> = layer.layer(stored.upstream());
        assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    }
    assert_eq!(stored.logins(), 1);
    let _ = std::fs::remove_dir_all(&dir);

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
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
