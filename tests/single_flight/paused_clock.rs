//! The default clock under paused tokio time: the layer behaves as it does with `Clock::tokio()`.

use std::sync::mpsc;
use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_token_auth::{AuthLayer, Clock};

use crate::support::{bearer, get, AuthServer, TestProvider};

/// How long the auth server takes to answer, in paused time.
const AUTH_DELAY: Duration = Duration::from_millis(1500);
/// How long the upstream takes to answer (the support server's default), in paused time.
const UPSTREAM_DELAY: Duration = Duration::from_millis(10);
const LIFETIME_SECS: u64 = 60;

/// What a run saw: paused time per request, auth calls, and the headers the upstream got.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    first_request: Duration,
    first_auth_calls: (u32, u32),
    after_expiry: Duration,
    auth_calls: (u32, u32),
    headers: Vec<String>,
}

/// The first request, after the program has run a while (tokio's clock is ahead of the system's,
/// as it is in any test that slept or advanced before), and one after its token expired.
async fn run(clock: Option<fn() -> Clock>) -> Seen {
    let server = AuthServer::new(LIFETIME_SECS, AUTH_DELAY);
    let builder = AuthLayer::builder(TestProvider::new());
    let builder = match clock {
        Some(clock) => builder.clock(clock()),
        None => builder,
    };
    let layer = builder.build(server.transport());
    let svc = layer.layer(server.upstream());
    tokio::time::sleep(Duration::from_secs(45)).await;

    let start = Instant::now();
    let response = svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let first_request = start.elapsed();
    let first_auth_calls = (server.logins(), server.refreshes());

    // Expiry by paused time is seen: the next request waits for one refresh.
    tokio::time::advance(Duration::from_secs(LIFETIME_SECS + 1)).await;
    let start = Instant::now();
    let response = svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    Seen {
        first_request,
        first_auth_calls,
        after_expiry: start.elapsed(),
        auth_calls: (server.logins(), server.refreshes()),
        headers: server.upstream_headers(),
    }
}

/// Runs `run(clock)` on a paused runtime of its own, failing if it has not finished after 20 s of
/// real time.
///
/// NOTE: the failure this guards against is a busy loop (the flight sleeping on tokio's timer
/// until a moment its clock never reaches, tokio jumping straight back to it), and a busy loop
/// has no count to assert on: it burns a core until the request's wait bound passes in real time
/// (30 s), then fails the request. Paused time costs no real time, so the run takes milliseconds
/// when the clock follows tokio's; the 20 s watchdog fails the test long before the spin ends,
/// and far above any scheduling noise. Tests assert nothing else about real time.
fn paused_run(clock: Option<fn() -> Clock>) -> Seen {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let _ = done.send(runtime.block_on(run(clock)));
    });
    result
        .recv_timeout(Duration::from_secs(20))
        .expect("the layer spun on the timer instead of following paused time")
}

#[test]
fn the_default_clock_follows_paused_time_as_the_tokio_clock_does() {
    let expected = Seen {
        first_request: AUTH_DELAY + UPSTREAM_DELAY,
        first_auth_calls: (1, 0),
        after_expiry: AUTH_DELAY + UPSTREAM_DELAY,
        auth_calls: (1, 1),
        headers: vec![bearer(1), bearer(2)],
    };
    assert_eq!(paused_run(None), expected);
    assert_eq!(paused_run(Some(Clock::tokio)), expected);
}
