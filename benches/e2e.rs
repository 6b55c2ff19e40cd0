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
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::runtime::{Builder, Runtime};
use tower::{Layer, Service, ServiceExt};
use tower_http::auth::AddAuthorizationLayer;
use tower_token_auth::provider::{AuthRequest, Provider};
use tower_token_auth::{AuthError, AuthLayer, Secret};

type Req = Request<Full<Bytes>>;
type HttpClient = Client<HttpConnector, Full<Bytes>>;

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.bench-access-token.c2lnbmF0dXJl";
const TOKEN_JSON: &[u8] = br#"{"access_token":"eyJhbGciOiJIUzI1NiJ9.bench-access-token.c2lnbmF0dXJl","refresh_token":"bench-refresh-token","token_type":"Bearer","expires_in":3600}"#;

/// A 1 KiB request body, as in `benches/auth.rs`.
static BODY: [u8; 1024] = [b'x'; 1024];

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

/// The request every stack sends: a POST with a 1 KiB JSON body and one header already set.
fn request(uri: &Uri) -> Req {
    let mut request = Request::new(Full::new(Bytes::from_static(&BODY)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri.clone();
    request
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    request
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A provider for the in-process auth server, which ignores what it is sent.
#[derive(Debug, Clone, Copy)]
struct BenchProvider;

fn post(body: &'static str) -> AuthRequest {
    let mut request = Request::new(Full::new(Bytes::from_static(body.as_bytes())));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = Uri::from_static("http://auth.test/token");
    request
}

impl Provider for BenchProvider {
    fn login_request(&self) -> Result<AuthRequest, AuthError> {
        Ok(post("grant_type=client_credentials"))
    }

    fn refresh_request(&self, _: &Secret) -> Result<AuthRequest, AuthError> {
        Ok(post("grant_type=refresh_token"))
    }
}

/// A layer whose in-process auth server answers every call at once with a token living an hour,
/// counting the calls; `max_replays = 0` turns replay off, as `hot_path/auth_layer` does.
fn auth_layer(calls: &Arc<AtomicUsize>, max_replays: Option<u32>) -> AuthLayer {
    let calls = Arc::clone(calls);
    let transport = tower::service_fn(move |_: AuthRequest| {
        calls.fetch_add(1, Ordering::SeqCst);
        let mut response = Response::new(Full::new(Bytes::from_static(TOKEN_JSON)));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        std::future::ready(Ok::<_, Infallible>(response))
    });
    let builder = AuthLayer::builder(BenchProvider);
    match max_replays {
        Some(max_replays) => builder.with_policy(|p| p.max_replays = max_replays),
        None => builder,
    }
    .build(transport)
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
    let calls = Arc::new(AtomicUsize::new(0));
    let primed = |max_replays| {
        let service = auth_layer(&calls, max_replays).layer(client());
        let before = calls.load(Ordering::SeqCst);
        let response = rt
            .block_on(service.clone().oneshot(request(&uri)))
            .expect("priming request");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            before + 1,
            "priming logs in once"
        );
        service
    };
    let bare = client();
    let static_header = AddAuthorizationLayer::bearer(TOKEN)
        .as_sensitive(true)
        .layer(client());
    let auth = primed(Some(0));
    let auth_replay = primed(None);
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
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "e2e: a measured request logged in again"
    );
    eprintln!(
        "e2e: the server answered {} requests over {} connections",
        served.requests.load(Ordering::Relaxed),
        served.connections.load(Ordering::Relaxed)
    );
}

criterion_group!(benches, e2e);
criterion_main!(benches);
