//! One auth call however many requests wait: shared by the services of a layer, not cancelled
//! when the requests that wait for it are dropped, and no call at all outside a runtime.

use http::StatusCode;
use tower::ServiceExt;
use tower_token_auth::ErrorKind;

use crate::support::{
    auth_error, bearer, concurrent, get, paused_layer as new_layer, send, service, AuthServer,
    TestProvider, AUTH_DELAY,
};

#[tokio::test(start_paused = true)]
async fn thousand_concurrent_requests_share_one_login() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = service(&server, &layer);
    let results = concurrent(&svc, 1000).await;
    assert!(results
        .iter()
        .all(|r| r.as_ref().is_ok_and(|r| r.status() == StatusCode::OK)));
    assert_eq!(server.logins(), 1);
    assert_eq!(server.refreshes(), 0);
    assert_eq!(layer.handle().metrics().logins, 1);
    assert_eq!(layer.handle().metrics().token_waits, 1000);
    assert!(server.upstream_headers().iter().all(|h| *h == bearer(1)));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_request_that_started_a_login_does_not_cancel_it() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = service(&server, &layer);

    let first = tokio::spawn(svc.clone().oneshot(get()));
    tokio::task::yield_now().await;
    let others: Vec<_> = (0..10)
        .map(|_| tokio::spawn(svc.clone().oneshot(get())))
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(layer.handle().metrics().logins, 1, "the login is in flight");
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    for other in others {
        assert_eq!(other.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    assert_eq!(server.logins(), 1);
}

#[tokio::test(start_paused = true)]
async fn login_completes_even_when_its_only_waiter_is_dropped() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = service(&server, &layer);
    let only = tokio::spawn(svc.clone().oneshot(get()));
    tokio::task::yield_now().await;
    only.abort();
    tokio::time::sleep(AUTH_DELAY * 2).await;
    // The token landed in the slot: the next request needs no auth call and no wait.
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(server.logins(), 1);
    assert_eq!(layer.handle().metrics().token_waits, 1);
}

#[tokio::test(start_paused = true)]
async fn services_from_one_layer_share_the_slot() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let a = service(&server, &layer);
    let b = service(&server, &layer.clone());
    let (ra, rb) = tokio::join!(send(&a), send(&b));
    assert_eq!((ra.unwrap(), rb.unwrap()), (StatusCode::OK, StatusCode::OK));
    assert_eq!(server.logins(), 1);
    // Both services count on the layer's one set of metrics: one login between them.
    assert_eq!(layer.handle().metrics().logins, 1);
}

/// Outside a tokio runtime the layer cannot run an auth call: the request fails with a typed
/// error instead of panicking.
#[test]
fn without_a_runtime_requests_fail_with_a_typed_error() {
    use std::future::Future;
    let server = AuthServer::new(60, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let mut svc = service(&server, &layer);
    let mut future = std::pin::pin!(tower::Service::call(&mut svc, get()));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Err(err)) => {
            assert_eq!(auth_error(&err).kind(), ErrorKind::Runtime)
        }
        other => panic!("expected a runtime error, got {other:?}"),
    }
    assert_eq!(server.logins(), 0);
}
