//! `AuthService` as a tower service, with `tower-test` mocks as the inner service: readiness and
//! its errors pass through untouched, backpressure holds, and a request that waits for a token
//! keeps the readiness it was given.

use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_test::mock;
use tower_token_auth::{AuthLayer, Clock};

use crate::support::{bearer, get, AuthServer, TestProvider};

type Req = Request<Full<Bytes>>;
type Rsp = Response<Full<Bytes>>;

const AUTH_DELAY: Duration = Duration::from_millis(50);

/// A layer whose slot already holds token 1.
async fn primed(server: &AuthServer) -> AuthLayer {
    let layer = AuthLayer::builder(TestProvider::new())
        .clock(Clock::tokio())
        .build(server.transport());
    let status = layer
        .layer(server.upstream::<Full<Bytes>>())
        .oneshot(get())
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    layer
}

#[tokio::test(start_paused = true)]
async fn readiness_and_its_errors_are_the_inner_services() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Rsp, _>(primed(&server).await);

    handle.allow(0);
    assert!(
        svc.poll_ready().is_pending(),
        "not ready while the inner is not"
    );
    handle.allow(1);
    assert!(svc.is_woken(), "the inner's wake-up reaches the caller");
    assert!(matches!(svc.poll_ready(), Poll::Ready(Ok(()))));

    handle.send_error("inner failed to get ready");
    match svc.poll_ready() {
        Poll::Ready(Err(err)) => assert_eq!(err.to_string(), "inner failed to get ready"),
        other => panic!("expected the inner's error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn backpressure_holds_one_request_per_permit() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Rsp, _>(primed(&server).await);

    handle.allow(1);
    assert!(svc.poll_ready().is_ready());
    let first = svc.call(get());
    assert!(svc.poll_ready().is_pending(), "one permit, one request");

    let (request, respond) = handle.next_request().await.unwrap();
    assert_eq!(request.headers()["authorization"], bearer(1).as_str());
    respond.send_response(Response::new(Full::default()));
    assert_eq!(first.await.unwrap().status(), StatusCode::OK);

    handle.allow(1);
    assert!(svc.poll_ready().is_ready());
}

/// With no token in the slot, the request waits on the cold path with the service `poll_ready`
/// readied (tower's clone-and-swap), and goes out once the token arrives, on the one permit it
/// was given.
#[tokio::test(start_paused = true)]
async fn a_request_waiting_for_a_token_keeps_its_readiness() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = AuthLayer::builder(TestProvider::new())
        .clock(Clock::tokio())
        .build(server.transport());
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Rsp, _>(layer);

    handle.allow(1);
    assert!(svc.poll_ready().is_ready());
    let waiting = tokio::spawn(svc.call(get()));
    // The login takes 50 ms; the inner saw nothing yet.
    tokio::time::sleep(AUTH_DELAY / 2).await;
    assert_eq!(server.logins(), 0);
    let (request, respond) = handle.next_request().await.unwrap();
    assert_eq!(server.logins(), 1);
    assert_eq!(request.headers()["authorization"], bearer(1).as_str());
    respond.send_response(Response::new(Full::default()));
    assert_eq!(waiting.await.unwrap().unwrap().status(), StatusCode::OK);
}
