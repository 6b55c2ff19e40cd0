//! The layer over real loopback HTTP: what it costs a hyper-util client sending to a hyper server
//! on the same machine, against the client alone and with a static header.
//!
//! One group, `e2e`, on a 2-worker runtime created once: a hyper 1 server on `127.0.0.1:0`
//! answering every request with an empty 200, and one keep-alive hyper-util legacy client. One
//! iteration sends 2,048 requests, 32 in flight at a time (32 tasks sending 64 each, one after
//! another), and awaits every answer. The request is the one the other groups send: a POST with
//! a 1 KiB body. See `BENCHMARKS.md` for the targets.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::runtime::{Builder, Runtime};
use tower::{Layer, Service, ServiceExt};
use tower_http::auth::AddAuthorizationLayer;

mod support;

use support::{auth_layer, request, AuthServer, Req, TOKEN};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

const IN_FLIGHT: usize = 32;
const PER_TASK: usize = 64;
const BATCH: usize = IN_FLIGHT * PER_TASK;

// ---------------------------------------------------------------------------------------------
// The upstream server, the request and the auth server.

/// The upstream: a hyper http1 server on loopback answering an empty 200 to every request, on
/// `rt`. Returns the URI to send to and its counts.
fn server(rt: &Runtime) -> (Uri, Arc<Served>) {
    let listener = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let served = Arc::new(Served::default());
    let counts = Arc::clone(&served);
    rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counts.connections.fetch_add(1, Ordering::Relaxed);
            let _ = stream.set_nodelay(true);
            let counts = Arc::clone(&counts);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_: Request<Incoming>| {
                    counts.requests.fetch_add(1, Ordering::Relaxed);
                    async { Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new())) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let uri = format!("http://{addr}/v1/items").parse().expect("uri");
    (uri, served)
}

/// What the server saw: a few connections for many requests shows keep-alive at work.
#[derive(Debug, Default)]
struct Served {
    connections: AtomicUsize,
    requests: AtomicUsize,
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

// ---------------------------------------------------------------------------------------------
// Driver.

/// Times `iters` batches of [`BATCH`] requests to `uri`, each batch sent by [`IN_FLIGHT`] tasks
/// sharing (clones of) `service`, each task sending [`PER_TASK`] one after another.
fn batches<S>(rt: &Runtime, service: &S, uri: &Uri, iters: u64) -> Duration
where
    S: Service<Req, Response = Response<Incoming>> + Clone + Send + 'static,
    S::Error: std::fmt::Debug,
    S::Future: Send,
{
    rt.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let start = Instant::now();
            let tasks: Vec<_> = (0..IN_FLIGHT)
                .map(|_| {
                    let mut service = service.clone();
                    let uri = uri.clone();
                    tokio::spawn(async move {
                        for _ in 0..PER_TASK {
                            let response = service
                                .ready()
                                .await
                                .expect("ready")
                                .call(request(&uri))
                                .await
                                .expect("response");
                            assert_eq!(response.status(), StatusCode::OK);
                            // An empty body: the connection goes back to the pool at once.
                            black_box(response);
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("request task");
            }
            total += start.elapsed();
        }
        total
    })
}

// ---------------------------------------------------------------------------------------------
// Group.

fn e2e(c: &mut Criterion) {
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (uri, served) = server(&rt);
    let mut group = c.benchmark_group("e2e");
    group
        .throughput(Throughput::Elements(BATCH as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20);
    // The services are built once, so every sample reuses the same kept-alive connections.
    // The layers log in once each before anything is measured: every measured request finds a
    // fresh token.
    let server = AuthServer::new(Duration::ZERO);
    let primed = |max_replays| {
        let service = auth_layer(&server, max_replays).layer(client());
        let before = server.calls();
        let response = rt
            .block_on(service.clone().oneshot(request(&uri)))
            .expect("priming request");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(server.calls(), before + 1, "priming logs in once");
        service
    };
    let bare = client();
    let static_header = AddAuthorizationLayer::bearer(TOKEN)
        .as_sensitive(true)
        .layer(client());
    // Replay off, as `hot_path/auth_layer`; then the default policy (one replay).
    let auth = primed(0);
    let auth_replay = primed(1);
    macro_rules! stack {
        ($name:literal, $service:expr) => {
            group.bench_function($name, |b| {
                b.iter_custom(|iters| batches(&rt, $service, &uri, iters));
            });
        };
    }
    stack!("bare", &bare);
    stack!("static_header", &static_header);
    stack!("auth_layer", &auth);
    stack!("auth_layer_replay", &auth_replay);
    group.finish();
    assert_eq!(server.calls(), 2, "e2e: a measured request logged in again");
    eprintln!(
        "e2e: the server answered {} requests over {} connections",
        served.requests.load(Ordering::Relaxed),
        served.connections.load(Ordering::Relaxed)
    );
}

criterion_group!(benches, e2e);
criterion_main!(benches);
