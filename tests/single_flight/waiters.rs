//! Waiters and the runtime a flight runs on (ARCHITECTURE.md invariant 6): each waiter keeps its
//! own deadline whatever happens to the flight, and a flight aborted by its runtime's shutdown
//! is no verdict on the credentials.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::Duration;

use tower_token_auth::{AuthLayer, Clock, ErrorKind};

use crate::support::{AuthServer, Fault, TestProvider};

/// Drops `runtime` on a thread of its own: a runtime cannot be dropped inside another's context.
fn shut_down(runtime: tokio::runtime::Runtime) {
    std::thread::spawn(move || drop(runtime))
        .join()
        .expect("the runtime shuts down");
}

/// A flight started from a runtime that then idles (a background thread's runtime, a test's)
/// never runs; a request waiting for it on another runtime still gives up at its own deadline.
#[tokio::test(start_paused = true)]
async fn a_waiter_keeps_its_deadline_when_the_flight_runtime_idles() {
    let server = AuthServer::new(100, Duration::from_millis(10));
    let layer = AuthLayer::builder(TestProvider::new())
        .clock(Clock::tokio())
        .max_wait(Duration::from_secs(3))
        .build(server.transport());
    let handle = layer.handle();
    let token = handle.token().await.expect("the first login");
    assert_eq!(server.call_times().len(), 1);

    // The renewal's flight goes to an idle current-thread runtime: nobody drives it.
    let idle = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    {
        let _entered = idle.enter();
        handle.invalidate(&token);
    }
    // A task of its own, polled only when woken: a waiter nothing wakes stays unfinished.
    let waiter = tokio::spawn({
        let handle = handle.clone();
        async move { handle.token().await }
    });
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        waiter.is_finished(),
        "the waiter gave up at its own deadline"
    );
    let error = waiter
        .await
        .unwrap()
        .expect_err("no token: the flight never ran");
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
    assert_eq!(server.call_times().len(), 1, "the flight never ran");
    shut_down(idle);
}

/// The runtime running a flight shuts down while a request on another runtime waits: the waiter
/// gets `Aborted`, and the next request starts a new flight at once, with no backoff.
#[tokio::test]
async fn a_flight_aborted_by_runtime_shutdown_locks_nobody_out() {
    let server = AuthServer::new(100, Duration::from_millis(1));
    server.set_fault(Some(Fault::Hang));
    server.clear_fault_after(1);
    let layer = AuthLayer::new(TestProvider::new(), server.transport());
    let handle = layer.handle();

    // The first login hangs, on a runtime of its own.
    let other = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let starter = handle.clone();
    other.spawn(async move { starter.token().await });
    while server.call_times().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    // A request here joins that flight (one poll joins it), then its runtime goes.
    let mut waiter = Box::pin(handle.token());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut waiter).poll(&mut cx).is_pending());
    shut_down(other);
    let error = waiter.await.expect_err("the flight was aborted");
    assert_eq!(error.kind(), ErrorKind::Aborted, "{error}");
    assert!(error.retry_in().is_none(), "{error}");

    // No verdict on the credentials: the next request logs in straight away.
    let token = handle.token().await.expect("a new flight, here");
    assert_eq!(token.generation(), 1);
    assert_eq!(
        server.call_times().len(),
        2,
        "the hung login, then one more"
    );
    assert_eq!(layer.handle().metrics().logins, 2);
}
