//! The `tonic` feature end to end: a real tonic health server whose guard asks an emulation's
//! protected resource whether each call's token is live, a real `Channel` through
//! `GrpcAuthLayer`, and auth calls over HTTP/1 to the emulation; `keyed` for a keyed layer's
//! sessions over one channel.
#![cfg(feature = "tonic")]

mod keyed;

use crate::support;
use crate::support::emulated;
use crate::support::grpc_guard::{serve_health, unchanged, Answered, Check};

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use tokio::sync::{mpsc, Barrier, OnceCell};
use tonic::body::Body;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::server::HealthReporter;
use tower::{BoxError, Layer, ServiceBuilder, ServiceExt};
use tower_token_auth::grpc::{GrpcAuthLayer, GrpcAuthService};
use tower_token_auth::provider::{Classifier, RefreshTiming, TokenPolicy};
use tower_token_auth::{AuthLayer, TokenHandle};
use tower_token_auth_emulation::{Api, Config, Emulation, FaultKind};

type Health = HealthClient<GrpcAuthService<Channel>>;

const CHECK: &str = "/grpc.health.v1.Health/Check";
const WATCH: &str = "/grpc.health.v1.Health/Watch";

/// One token check the server made: the call's path, the tenant its metadata named
/// (`x-tenant`), the token it carried, the verdict.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    tenant: Option<String>,
    token: Option<HeaderValue>,
    live: bool,
}

/// Decides whether a token is live the honest way: by asking the emulation's protected resource
/// (200 = live); with `per_tenant`, the resource of the call's tenant (`{resource}/{x-tenant}`),
/// which refuses a token issued for another tenant. Calls that arrive while a lookup of their
/// token is in flight share it, as an introspecting server's cache would; a call never gets a
/// verdict from before it arrived. A token in `killed` is dead whatever the emulation says (the
/// server's own revocation list). Logs every verdict.
#[derive(Clone)]
struct Checker {
    client: emulated::HttpClient,
    resource: String,
    per_tenant: bool,
    in_flight: Arc<Mutex<HashMap<(String, HeaderValue), Lookup>>>,
    killed: Arc<Mutex<HashSet<HeaderValue>>>,
    log: Arc<Mutex<Vec<Seen>>>,
}

type Lookup = Arc<OnceCell<bool>>;

impl Checker {
    fn new(emulation: &Emulation, per_tenant: bool, log: &Arc<Mutex<Vec<Seen>>>) -> Self {
        Checker {
            client: emulated::client(),
            resource: emulation.resource_url(),
            per_tenant,
            in_flight: Arc::default(),
            killed: Arc::default(),
            log: Arc::clone(log),
        }
    }

    async fn live(&self, path: &str, tenant: Option<String>, token: Option<HeaderValue>) -> bool {
        let resource = match (&tenant, self.per_tenant) {
            (Some(tenant), true) => Some(format!("{}/{tenant}", self.resource)),
            (None, true) => None,
            (_, false) => Some(self.resource.clone()),
        };
        let live = match (&token, resource) {
            (Some(token), _) if self.killed.lock().unwrap().contains(token) => false,
            (Some(token), Some(resource)) => self.lookup(resource, token).await,
            _ => false,
        };
        let path = path.to_owned();
        self.log.lock().unwrap().push(Seen {
            path,
            tenant,
            token,
            live,
        });
        live
    }

    async fn lookup(&self, resource: String, token: &HeaderValue) -> bool {
        let key = (resource, token.clone());
        let lookup = Lookup::clone(
            self.in_flight
                .lock()
                .unwrap()
                .entry(key.clone())
                .or_default(),
        );
        let live = *lookup.get_or_init(|| self.ask(&key.0, token)).await;
        let mut in_flight = self.in_flight.lock().unwrap();
        if in_flight.get(&key).is_some_and(|l| Arc::ptr_eq(l, &lookup)) {
            in_flight.remove(&key);
        }
        live
    }

    async fn ask(&self, resource: &str, token: &HeaderValue) -> bool {
        let request = Request::get(resource)
            .header(AUTHORIZATION, token)
            .body(Full::default())
            .expect("resource request");
        let response = self
            .client
            .request(request)
            .await
            .expect("emulation answers");
        let status = response.status();
        response.into_body().collect().await.expect("resource body");
        status == StatusCode::OK
    }
}

/// The server's auth: a call whose token is not live is answered `UNAUTHENTICATED`
/// (trailers-only); a `Watch` stream re-checks its token before each message and ends
/// `UNAUTHENTICATED` in its trailers once the token died.
impl Check for Checker {
    async fn check(&self, call: &Parts) -> Result<Answered, Status> {
        let path = call.uri.path().to_owned();
        let token = call.headers.get(AUTHORIZATION).cloned();
        let tenant = call
            .headers
            .get("x-tenant")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if !self.live(&path, tenant.clone(), token.clone()).await {
            return Err(Status::unauthenticated("token rejected"));
        }
        if path != WATCH {
            return Ok(unchanged());
        }
        let checker = self.clone();
        Ok(Box::new(move |response: Response<Body>| {
            response.map(|body| rechecked(body, path, tenant, token, checker))
        }))
    }
}

/// `body`, each message passed on only while the token is still live; else the stream ends with
/// `grpc-status: 16` in its trailers.
fn rechecked(
    body: Body,
    path: String,
    tenant: Option<String>,
    token: Option<HeaderValue>,
    checker: Checker,
) -> Body {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut body = body;
        while let Some(frame) = body.frame().await {
            if let Ok(frame) = &frame {
                if frame.is_data() && !checker.live(&path, tenant.clone(), token.clone()).await {
                    let mut trailers = HeaderMap::new();
                    trailers.insert("grpc-status", HeaderValue::from_static("16"));
                    trailers.insert("grpc-message", HeaderValue::from_static("token expired"));
                    let _ = tx.send(Ok(Frame::trailers(trailers))).await;
                    return;
                }
            }
            if tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    Body::new(Piped(rx))
}

/// A response body fed by a task.
struct Piped(mpsc::Receiver<Result<Frame<Bytes>, Status>>);

impl http_body::Body for Piped {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.0.poll_recv(cx)
    }
}

struct Setup {
    emulation: Emulation,
    reporter: HealthReporter,
    log: Arc<Mutex<Vec<Seen>>>,
    handle: TokenHandle,
    health: Health,
}

impl Setup {
    /// An emulation (OAuth2 password grant), a guarded health server, and a health client over a
    /// channel through the layer.
    async fn start(config: Config, refresh: RefreshTiming, max_buffered: usize) -> Self {
        let emulation = Emulation::start(Api::OAuth2, config)
            .await
            .expect("emulation starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr, reporter) = serve(Checker::new(&emulation, false, &log)).await;

        let layer = AuthLayer::builder(emulated::preset(Api::OAuth2, &emulation))
            .with_policy(|p| {
                p.refresh = refresh;
            })
            .build(emulated::client());
        let handle = layer.handle();
        let grpc = GrpcAuthLayer::new(layer).max_buffered(max_buffered);
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("channel URI")
            .connect()
            .await
            .expect("channel connects");
        let health = HealthClient::new(ServiceBuilder::new().layer(grpc).service(channel));
        Setup {
            emulation,
            reporter,
            log,
            handle,
            health,
        }
    }

    /// Checks the server's overall health through the layer.
    async fn check(&self) -> Result<ServingStatus, Status> {
        let request = HealthCheckRequest {
            service: String::new(),
        };
        let reply = self.health.clone().check(request).await?;
        Ok(reply.into_inner().status())
    }

    /// The token checks the server made since the last call, taken out of the log.
    fn seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    /// The header value of the current token, and its generation.
    fn current(&self) -> (HeaderValue, u64) {
        let token = self.handle.current().expect("a valid token");
        (token.header_value().clone(), token.generation())
    }

    fn assert_auth_calls(&self, logins: u64, refreshes: u64) {
        let stats = self.emulation.stats();
        assert_eq!(
            (stats.logins, stats.refreshes),
            (logins, refreshes),
            "{stats:?}"
        );
        assert_eq!(stats.violations, 0, "{stats:?}");
        let metrics = self.handle.metrics();
        assert_eq!(
            (metrics.logins, metrics.refreshes, metrics.auth_failures),
            (logins, refreshes, 0),
            "{metrics:?}"
        );
    }
}

/// A guarded health server on `127.0.0.1:0`, checking calls with `checker`: its address and its
/// health reporter.
async fn serve(checker: Checker) -> (std::net::SocketAddr, HealthReporter) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    (addr, serve_health(listener, checker))
}

/// `(path, token, live)` of each check, for comparison.
fn verdicts(seen: &[Seen]) -> Vec<(&str, Option<&HeaderValue>, bool)> {
    seen.iter()
        .map(|s| (s.path.as_str(), s.token.as_ref(), s.live))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_call_whose_token_was_revoked_succeeds_after_one_refresh() {
    let setup = Setup::start(Config::default(), RefreshTiming::default(), 64 * 1024).await;
    assert_eq!(setup.check().await.unwrap(), ServingStatus::Serving);
    let (first, generation) = setup.current();
    assert_eq!(generation, 1);
    assert_eq!(verdicts(&setup.seen()), [(CHECK, Some(&first), true)]);
    setup.assert_auth_calls(1, 0);

    setup.emulation.revoke_access_tokens();
    assert_eq!(setup.check().await.unwrap(), ServingStatus::Serving);
    let (second, generation) = setup.current();
    assert_eq!(generation, 2);
    assert_ne!(first, second);
    assert_eq!(
        verdicts(&setup.seen()),
        [(CHECK, Some(&first), false), (CHECK, Some(&second), true)],
        "rejected once, replayed once with the new token"
    );
    setup.assert_auth_calls(1, 1);
    assert_eq!(setup.handle.metrics().replays, 1);

    let debug = format!("{:?} {:?}", setup.health, setup.handle);
    let token = second.to_str().unwrap().trim_start_matches("Bearer ");
    assert!(!debug.contains(token), "no token in Debug output");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_ends_unauthenticated_is_not_replayed_and_the_next_call_gets_a_new_token() {
    let setup = Setup::start(Config::default(), RefreshTiming::default(), 64 * 1024).await;
    let request = HealthCheckRequest {
        service: String::new(),
    };
    let mut stream = setup
        .health
        .clone()
        .watch(request)
        .await
        .unwrap()
        .into_inner();
    let message = stream.message().await.unwrap().expect("the current status");
    assert_eq!(message.status(), ServingStatus::Serving);
    let (first, _) = setup.current();

    // The token dies mid-stream: the server ends the stream at its next message.
    setup.emulation.revoke_access_tokens();
    setup
        .reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    let error = stream.message().await.unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated, "{error:?}");
    assert_eq!(
        verdicts(&setup.seen()),
        [
            (WATCH, Some(&first), true),
            (WATCH, Some(&first), true),
            (WATCH, Some(&first), false),
        ],
        "checked at the call, then before each message; no replay"
    );

    // The next call waits for a new token instead of being rejected with the dead one.
    assert_eq!(setup.check().await.unwrap(), ServingStatus::NotServing);
    let (second, generation) = setup.current();
    assert_eq!(generation, 2);
    assert_eq!(verdicts(&setup.seen()), [(CHECK, Some(&second), true)]);
    setup.assert_auth_calls(1, 1);
    assert_eq!(setup.handle.metrics().replays, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_at_an_expired_token_make_one_auth_call() {
    const CALLS: usize = 1000;
    let config = Config {
        access_lifetime: Duration::from_millis(2500),
        ..Config::default()
    };
    let setup = Setup::start(config, RefreshTiming::AfterExpiry, 64 * 1024).await;
    assert_eq!(setup.check().await.unwrap(), ServingStatus::Serving);
    setup.seen();
    // Until the layer holds the token expired (the server already does).
    while setup.handle.current().is_some() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waits = setup.handle.metrics().token_waits;
    // The refresh takes long enough for every call to arrive while the token is expired.
    let slow = FaultKind::Slow(Duration::from_millis(500));
    setup.emulation.set_fault_rate(1.0, &[slow]);

    let start = Arc::new(Barrier::new(CALLS));
    let calls: Vec<_> = (0..CALLS)
        .map(|_| {
            let (mut health, start) = (setup.health.clone(), Arc::clone(&start));
            tokio::spawn(async move {
                start.wait().await;
                let request = HealthCheckRequest {
                    service: String::new(),
                };
                health.check(request).await.map(|r| r.into_inner().status())
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), ServingStatus::Serving);
    }

    setup.assert_auth_calls(1, 1);
    let metrics = setup.handle.metrics();
    assert_eq!(
        (metrics.replays, metrics.token_waits - waits),
        (0, CALLS as u64),
        "every call waited for the one refresh, none was replayed"
    );
    let (second, generation) = setup.handle.subscribe().borrow().as_ref().map_or_else(
        || panic!("a token"),
        |t| (t.header_value().clone(), t.generation()),
    );
    assert_eq!(generation, 2);
    let seen = setup.seen();
    assert_eq!(seen.len(), CALLS);
    assert!(
        seen.iter()
            .all(|s| s.live && s.path == CHECK && s.token.as_ref() == Some(&second)),
        "every call carried the refreshed token, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_over_the_buffer_cap_is_sent_once_and_invalidates_its_token() {
    let setup = Setup::start(Config::default(), RefreshTiming::default(), 1024).await;
    assert_eq!(setup.check().await.unwrap(), ServingStatus::Serving);
    let (first, _) = setup.current();
    setup.seen();

    setup.emulation.revoke_access_tokens();
    let request = HealthCheckRequest {
        service: "s".repeat(4096),
    };
    let error = setup.health.clone().check(request).await.unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated, "{error:?}");
    assert_eq!(
        verdicts(&setup.seen()),
        [(CHECK, Some(&first), false)],
        "sent once"
    );
    assert_eq!(setup.handle.metrics().replays, 0);

    // The token was marked dead: the layer's next token is a new one.
    let token = setup.handle.token().await.unwrap();
    assert_eq!(token.generation(), 2);
    assert_eq!(setup.check().await.unwrap(), ServingStatus::Serving);
    assert_eq!(
        verdicts(&setup.seen()),
        [(CHECK, Some(token.header_value()), true)]
    );
    setup.assert_auth_calls(1, 1);
    assert_eq!(setup.handle.metrics().replays, 0);
}

/// A trailers-only `UNAUTHENTICATED` (status 200, `grpc-status: 16` in the head) reaches the
/// classifier as the 401 gRPC maps it to: with the default classifier, the call is replayed once
/// with a new token after one refresh; with a classifier that takes no 401, it is not. Either
/// way the caller gets the server's answer as sent, under status 200.
#[tokio::test(start_paused = true)]
async fn trailers_only_unauthenticated_is_a_dead_token_with_the_default_classifier() {
    use crate::support::{bearer, AuthServer, TestProvider};

    for (classifier, replays, refreshes) in [(Classifier::http(), 1, 1), (Classifier::none(), 0, 0)]
    {
        let server = AuthServer::new(600, Duration::from_millis(50));
        let mut policy = TokenPolicy::default();
        policy.classifier = classifier.clone();
        let layer = support::paused_layer(&server, TestProvider::with_policy(policy));
        let grpc = GrpcAuthLayer::new(layer.clone());
        let sent = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&sent);
        let first = bearer(1);
        let upstream = tower::service_fn(move |request: Request<Body>| {
            let token = request.headers()[AUTHORIZATION]
                .to_str()
                .unwrap()
                .to_owned();
            let code = if token == first { "16" } else { "0" };
            seen.lock().unwrap().push(token);
            let response = Response::builder()
                .header("content-type", "application/grpc")
                .header("grpc-status", code)
                .body(Full::new(Bytes::new()))
                .unwrap();
            std::future::ready(Ok::<_, BoxError>(response))
        });
        let call = Request::post(format!("http://api.test{CHECK}"))
            .header("content-type", "application/grpc")
            .body(Body::new(Full::new(Bytes::from_static(&[0; 5]))))
            .unwrap();

        let response = grpc.layer(upstream).oneshot(call).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{classifier:?}");
        let code = if replays == 0 { "16" } else { "0" };
        assert_eq!(response.headers()["grpc-status"], code, "{classifier:?}");
        let expected: Vec<String> = (1..=1 + replays).map(bearer).collect();
        assert_eq!(*sent.lock().unwrap(), expected, "{classifier:?}");
        assert_eq!(
            layer.handle().metrics().replays,
            u64::from(replays),
            "{classifier:?}"
        );
        assert_eq!(server.refreshes(), refreshes, "{classifier:?}");
        assert_eq!(server.logins(), 1, "{classifier:?}");
    }
}
