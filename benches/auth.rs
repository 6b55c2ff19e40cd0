//! What the layer costs per request, against a bare service, a static header and the two common
//! hand-rolled token caches; and how fast a storm of requests drains through one login.
//!
//! Every contender sits in the same group as its baselines, so the report reads as ratios. The
//! measured loop is the same for all of them: build the request, `ready().await`, `call`, await the
//! response, on a runtime created once per group. See `BENCHMARKS.md` for the targets.

use std::future::Future;
use std::hint::black_box;
use std::mem;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use http::header::AUTHORIZATION;
use http::{HeaderValue, StatusCode};
use tokio::runtime::{Builder, Runtime};
use tokio::sync::{watch, Notify};
use tower::{BoxError, Layer, Service, ServiceExt};
use tower_http::auth::{AddAuthorization, AddAuthorizationLayer};
use tower_token_auth::AuthService;

mod support;

use support::hot::{current_thread, inner, request, send, sequential, Res, Upstream};
use support::{auth_layer, AuthServer, Req, TOKEN};

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

const CONTENDED_TASKS: usize = 256;
const CONTENDED_PER_TASK: usize = 64;
const CONTENDED_BATCH: usize = CONTENDED_TASKS * CONTENDED_PER_TASK;

const STORM_REQUESTS: usize = 10_000;
const STORM_AUTH_DELAY: Duration = Duration::from_millis(5);

// ---------------------------------------------------------------------------------------------
// The request, the upstream and the auth server.

fn bearer() -> HeaderValue {
    let mut value = HeaderValue::from_str(&format!("Bearer {TOKEN}")).expect("valid token");
    value.set_sensitive(true);
    value
}

// ---------------------------------------------------------------------------------------------
// The common way: hand-rolled token caches.

/// x/oauth2 / yup-oauth2 style: the token behind an async mutex, the header built per request.
#[derive(Clone, Debug)]
struct MutexCache<S> {
    inner: S,
    token: Arc<tokio::sync::Mutex<Option<(String, Instant)>>>,
}

impl<S> MutexCache<S> {
    fn new(inner: S) -> Self {
        let token = Some((TOKEN.to_owned(), Instant::now() + Duration::from_secs(3600)));
        Self {
            inner,
            token: Arc::new(tokio::sync::Mutex::new(token)),
        }
    }
}

impl<S> Service<Req> for MutexCache<S>
where
    S: Service<Req, Response = Res> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    type Response = Res;
    type Error = BoxError;
    type Future = BoxFuture<Res>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Req) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = mem::replace(&mut self.inner, clone);
        let token = Arc::clone(&self.token);
        Box::pin(async move {
            let header = {
                let guard = token.lock().await;
                match guard.as_ref() {
                    Some((token, expires_at)) if Instant::now() < *expires_at => {
                        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))?;
                        value.set_sensitive(true);
                        value
                    }
                    _ => return Err("token expired".into()),
                }
            };
            request.headers_mut().insert(AUTHORIZATION, header);
            inner.call(request).await.map_err(Into::into)
        })
    }
}

/// gcp_auth / aws-smithy style: an `Arc` of a prebuilt header behind an async read-write lock.
#[derive(Debug)]
struct CachedToken {
    header: HeaderValue,
    expires_at: Instant,
}

#[derive(Clone, Debug)]
struct RwLockCache<S> {
    inner: S,
    token: Arc<tokio::sync::RwLock<Arc<CachedToken>>>,
}

impl<S> RwLockCache<S> {
    fn new(inner: S) -> Self {
        let token = CachedToken {
            header: bearer(),
            expires_at: Instant::now() + Duration::from_secs(3600),
        };
        Self {
            inner,
            token: Arc::new(tokio::sync::RwLock::new(Arc::new(token))),
        }
    }
}

impl<S> Service<Req> for RwLockCache<S>
where
    S: Service<Req, Response = Res> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    type Response = Res;
    type Error = BoxError;
    type Future = BoxFuture<Res>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Req) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = mem::replace(&mut self.inner, clone);
        let token = Arc::clone(&self.token);
        Box::pin(async move {
            let token = Arc::clone(&*token.read().await);
            if Instant::now() >= token.expires_at {
                return Err("token expired".into());
            }
            request
                .headers_mut()
                .insert(AUTHORIZATION, token.header.clone());
            inner.call(request).await.map_err(Into::into)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Drivers.

/// Times `iters` batches of [`CONTENDED_BATCH`] requests, each batch spread over
/// [`CONTENDED_TASKS`] tasks sharing (clones of) `service`.
fn contended_batches<S>(rt: &Runtime, service: &S, iters: u64) -> Duration
where
    S: Service<Req, Response = Res> + Clone + Send + 'static,
    S::Error: std::fmt::Debug,
    S::Future: Send,
{
    rt.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let start = Instant::now();
            let tasks: Vec<_> = (0..CONTENDED_TASKS)
                .map(|_| {
                    let mut service = service.clone();
                    tokio::spawn(async move { send(&mut service, CONTENDED_PER_TASK as u64).await })
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

/// One storm's bookkeeping: the release signal, and countdowns whose last tick wakes the driver
/// once (collecting 10,000 join handles would weigh on the measurement).
struct Storm {
    go: watch::Sender<bool>,
    parked: AtomicUsize,
    all_parked: Notify,
    remaining: AtomicUsize,
    failed: AtomicUsize,
    all_served: Notify,
}

impl Storm {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Self {
            go: watch::Sender::new(false),
            parked: AtomicUsize::new(n),
            all_parked: Notify::new(),
            remaining: AtomicUsize::new(n),
            failed: AtomicUsize::new(0),
            all_served: Notify::new(),
        })
    }

    fn tick(counter: &AtomicUsize, last: &Notify) {
        if counter.fetch_sub(1, Ordering::AcqRel) == 1 {
            last.notify_one();
        }
    }
}

/// Parks [`STORM_REQUESTS`] tasks, each holding one request future from `request` (not polled
/// yet), releases them at once and returns the time until the last one is served. The driver is
/// a task too, so requests start on the worker threads, as in a server; spawning is not timed.
fn storm<F, Fut>(rt: &Runtime, request: F) -> Duration
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let driver = rt.spawn(async move {
        let storm = Storm::new(STORM_REQUESTS);
        for _ in 0..STORM_REQUESTS {
            let storm = Arc::clone(&storm);
            let request = request();
            let mut go = storm.go.subscribe();
            tokio::spawn(async move {
                Storm::tick(&storm.parked, &storm.all_parked);
                let released = go.wait_for(|go| *go).await.is_ok();
                if !(released && request.await) {
                    storm.failed.fetch_add(1, Ordering::Relaxed);
                }
                Storm::tick(&storm.remaining, &storm.all_served);
            });
        }
        storm.all_parked.notified().await;
        let start = Instant::now();
        storm.go.send_replace(true);
        storm.all_served.notified().await;
        let elapsed = start.elapsed();
        let failed = storm.failed.load(Ordering::Relaxed);
        assert_eq!(failed, 0, "refresh_storm: {failed} requests failed");
        elapsed
    });
    rt.block_on(driver).expect("storm driver")
}

/// The floor's stand-in for a single-flight login: the first request to arrive starts one task
/// that opens the gate after the auth delay; every request waits for the gate.
struct Gate {
    started: AtomicBool,
    open: watch::Sender<bool>,
}

impl Gate {
    async fn pass(self: Arc<Self>) -> bool {
        let mut open = self.open.subscribe();
        if !self.started.swap(true, Ordering::AcqRel) {
            let gate = Arc::clone(&self);
            tokio::spawn(async move {
                tokio::time::sleep(STORM_AUTH_DELAY).await;
                gate.open.send_replace(true);
            });
        }
        // Bound first: the `Ref` that `wait_for` returns must be dropped before `open` is.
        let opened = open.wait_for(|open| *open).await.is_ok();
        opened
    }
}

fn served(response: Result<Res, BoxError>) -> bool {
    response.is_ok_and(|response| response.status() == StatusCode::OK)
}

fn two_workers() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// An auth stack over the upstream with a fresh, hour-long token already in its slot.
fn primed(rt: &Runtime, max_replays: u32) -> AuthService<Upstream> {
    let server = AuthServer::new(Duration::ZERO);
    let layer = auth_layer(&server, max_replays);
    let service = layer.layer(inner());
    rt.block_on(service.clone().oneshot(request()))
        .expect("priming request");
    assert_eq!(server.calls(), 1, "priming logs in once");
    service
}

fn static_header() -> AddAuthorization<Upstream> {
    AddAuthorizationLayer::bearer(TOKEN)
        .as_sensitive(true)
        .layer(inner())
}

// ---------------------------------------------------------------------------------------------
// Groups.

fn hot_path(c: &mut Criterion) {
    let rt = current_thread();
    let mut group = c.benchmark_group("hot_path");
    macro_rules! stack {
        ($name:literal, $service:expr) => {
            group.bench_function($name, |b| {
                let mut service = $service;
                b.iter_custom(|iters| sequential(&rt, &mut service, iters));
            });
        };
    }
    stack!("bare", inner());
    stack!("static_header", static_header());
    stack!("auth_layer", primed(&rt, 0));
    stack!("auth_layer_replay", primed(&rt, 1));
    stack!("mutex_cache", MutexCache::new(inner()));
    stack!("rwlock_cache", RwLockCache::new(inner()));
    group.bench_function("clone_request", |b| {
        // The copy a replay keeps: taken after the header went on.
        let mut prebuilt = request();
        prebuilt.headers_mut().insert(AUTHORIZATION, bearer());
        b.iter(|| black_box(&prebuilt).clone());
    });
    group.finish();
}

fn contended(c: &mut Criterion) {
    let rt = two_workers();
    let mut group = c.benchmark_group("contended");
    group
        .throughput(Throughput::Elements(CONTENDED_BATCH as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20);
    macro_rules! stack {
        ($name:literal, $service:expr) => {
            group.bench_function($name, |b| {
                let service = $service;
                b.iter_custom(|iters| contended_batches(&rt, &service, iters));
            });
        };
    }
    stack!("bare", inner());
    stack!("static_header", static_header());
    stack!("auth_layer", primed(&rt, 0));
    stack!("auth_layer_replay", primed(&rt, 1));
    stack!("mutex_cache", MutexCache::new(inner()));
    stack!("rwlock_cache", RwLockCache::new(inner()));
    group.finish();
}

fn refresh_storm(c: &mut Criterion) {
    let rt = two_workers();
    let mut group = c.benchmark_group("refresh_storm");
    group
        .throughput(Throughput::Elements(STORM_REQUESTS as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10);
    group.bench_function("auth_layer", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let server = AuthServer::new(STORM_AUTH_DELAY);
                let layer = auth_layer(&server, 1);
                let service = layer.layer(inner());
                // As in the floor, the request is built once the task runs, on the worker that
                // sends it.
                total += storm(&rt, move || {
                    let service = service.clone();
                    async move { served(service.oneshot(request()).await) }
                });
                let (calls, logins) = (server.calls(), layer.handle().metrics().logins);
                assert!(
                    calls == 1 && logins == 1,
                    "refresh_storm: {STORM_REQUESTS} requests made {calls} auth calls \
                     ({logins} logins); single flight must make exactly one"
                );
            }
            total
        });
    });
    // The floor: the same storm without the layer, the single flight done by hand.
    group.bench_function("bare_gate", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let gate = Arc::new(Gate {
                    started: AtomicBool::new(false),
                    open: watch::Sender::new(false),
                });
                total += storm(&rt, move || {
                    let gate = Arc::clone(&gate);
                    async move {
                        gate.pass().await
                            && served(inner().oneshot(request()).await.map_err(Into::into))
                    }
                });
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, hot_path, contended, refresh_storm);
criterion_main!(benches);
