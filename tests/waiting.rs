//! What a request waiting for a token holds: the heap a waiting request's future keeps beyond the
//! request itself (the response future, the boxed replay state, the deadline), counted with dhat
//! (its own binary: one profiler per process).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tower::{Layer, Service};
use tower_token_auth::AuthLayer;

mod support;
use support::{AuthServer, TestProvider};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const N: usize = 1_000;

fn request() -> Request<Full<Bytes>> {
    Request::post("http://api.test/resource")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(&[b'x'; 1024])))
        .expect("static request parts are valid")
}

fn live_bytes() -> usize {
    dhat::HeapStats::get().curr_bytes
}

#[test]
fn a_waiting_request_holds_at_most_512_bytes_beyond_the_request() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(count());
}

async fn count() {
    // The login never answers while we count.
    let server = AuthServer::new(3600, Duration::from_secs(3600));
    let layer = AuthLayer::new(TestProvider::new(), server.transport());
    let mut svc = layer.layer(server.upstream::<Full<Bytes>>());
    let mut cx = Context::from_waker(Waker::noop());

    // Warm up: the flight (one for all waiters) and its first waiter.
    let mut first = Box::pin(svc.call(request()));
    assert!(first.as_mut().poll(&mut cx).is_pending());
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }

    // The requests alone, boxed as the futures will be.
    let before = live_bytes();
    let requests: Vec<_> = (0..N).map(|_| Box::new(request())).collect();
    let requests_bytes = live_bytes() - before;
    drop(requests);

    let before = live_bytes();
    let mut waiting: Vec<Pin<Box<_>>> = (0..N).map(|_| Box::pin(svc.call(request()))).collect();
    for future in &mut waiting {
        assert!(matches!(future.as_mut().poll(&mut cx), Poll::Pending));
    }
    let waiting_bytes = live_bytes() - before;
    assert_eq!(
        layer.handle().metrics().logins,
        1,
        "one flight for every waiter"
    );

    let per_request = waiting_bytes / N;
    let beyond_request = waiting_bytes.saturating_sub(requests_bytes) / N;
    println!(
        "per waiting request: {per_request} bytes held, {beyond_request} beyond the request itself \
         ({} bytes of request)",
        requests_bytes / N
    );
    // The request is the caller's: it would be held without the layer too.
    assert!(
        beyond_request <= 512,
        "{beyond_request} bytes per waiting request"
    );
    drop(waiting);
    drop(first);
}
