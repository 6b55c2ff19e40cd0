//! ARCHITECTURE.md invariant 1, counted: with a fresh token, a request through the layer (replay
//! off) allocates exactly what a static header insert allocates, and with replay on only the copy
//! a replay needs plus its box. Counted with dhat's heap statistics, in one test (one profiler per
//! process).

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt};
use tower_token_auth::AuthLayer;

mod support;
use support::{AuthServer, TestProvider};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn request() -> Request<Full<Bytes>> {
    Request::post("http://api.test/resource")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(&[b'x'; 1024])))
        .expect("static request parts are valid")
}

/// Heap blocks allocated by `n` requests through `svc`, request construction included.
fn blocks<S>(rt: &tokio::runtime::Runtime, svc: &mut S, n: u64) -> u64
where
    S: Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    rt.block_on(async {
        // Warm up: first-use allocations (connection of the cache, promotion of shared bytes).
        for _ in 0..3 {
            svc.ready().await.unwrap().call(request()).await.unwrap();
        }
        let before = dhat::HeapStats::get().total_blocks;
        for _ in 0..n {
            svc.ready().await.unwrap().call(request()).await.unwrap();
        }
        dhat::HeapStats::get().total_blocks - before
    })
}

#[test]
fn hot_path_allocates_only_the_header_insert_and_the_replay_copy() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let inner = tower::service_fn(|_: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let server = AuthServer::new(3600, std::time::Duration::ZERO);
    const N: u64 = 100;

    let mut bare = inner;
    let bare = blocks(&rt, &mut bare, N);

    let mut value = http::HeaderValue::from_static("Bearer at-1");
    value.set_sensitive(true);
    let mut static_header =
        tower::util::MapRequest::new(inner, move |mut req: Request<Full<Bytes>>| {
            req.headers_mut()
                .insert(http::header::AUTHORIZATION, value.clone());
            req
        });
    let static_header = blocks(&rt, &mut static_header, N);

    let layer = AuthLayer::builder(TestProvider::new())
        .with_policy(|p| p.max_replays = 0)
        .build(server.transport());
    let mut auth = layer.layer(inner);
    let auth = blocks(&rt, &mut auth, N);

    let layer = AuthLayer::new(TestProvider::new(), server.transport());
    let mut auth_replay = layer.layer(inner);
    let auth_replay = blocks(&rt, &mut auth_replay, N);

    // The copy of a freshly built request (cloning also makes its URI's bytes shared).
    let count = |clone: bool| {
        let before = dhat::HeapStats::get().total_blocks;
        for _ in 0..N {
            let request = std::hint::black_box(request());
            if clone {
                drop(std::hint::black_box(request.clone()));
            }
        }
        dhat::HeapStats::get().total_blocks - before
    };
    let copy = count(true) - count(false);

    println!("blocks per {N} requests: bare {bare}, static header {static_header}, layer {auth}, layer with replay {auth_replay}, request copy {copy}");
    assert_eq!(
        auth, static_header,
        "replay off: only the header insert allocates"
    );
    // Replay on: the request copy, plus one box for the replay state.
    assert_eq!(auth_replay, static_header + copy + N);
}
