//! End-to-end tests: a real hyper HTTP/1 auth + resource server on 127.0.0.1, a real
//! hyper-util client as both the wrapped service and the auth transport, and a JSON provider.
//!
//! Token expiry is never driven by the clock here: the server revokes tokens on demand, and
//! access tokens live for 3600 s so no proactive refresh can start during a test.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_token_auth::{
    AuthError, AuthLayer, AuthRequest, Backoff, ErrorKind, MetricsSnapshot, Provider, Secret,
};

const USERNAME: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";
/// Long enough that no proactive refresh (30 s margin) can start while a test runs.
const EXPIRES_IN: u64 = 3600;
/// Upper bound for a whole test; a hang is a failure, not a stuck CI job.
const TEST_DEADLINE: Duration = Duration::from_secs(30);

type HttpClient = Client<HttpConnector, Full<Bytes>>;

// ------------------------------------------------------------------------------------------------
// The server
// ------------------------------------------------------------------------------------------------

/// Which tokens the server currently honours.
#[derive(Default)]
struct TokenDb {
    /// Access tokens accepted by `GET /resource`.
    access: HashSet<String>,
    /// Refresh tokens that may be exchanged once.
    unused_refresh: HashSet<String>,
    /// Refresh tokens already exchanged; sending one again is a protocol violation.
    used_refresh: HashSet<String>,
}

/// A gate for `GET /resource`: once armed for `n`, the next `n` requests are numbered
/// 0..n in arrival order and request `i` is answered only once `released > i`.
struct Hold {
    armed: AtomicUsize,
    remaining: AtomicUsize,
    /// How many held requests have arrived.
    arrived: watch::Sender<usize>,
    /// How many held requests may be answered.
    released: watch::Sender<usize>,
}

struct ServerState {
    expires_in: u64,
    next_pair: AtomicU64,
    db: Mutex<TokenDb>,
    /// When set, `POST /auth/login` answers 302 to `/auth/login-elsewhere`.
    redirect_login: AtomicBool,
    hold: Hold,
    /// The bearer token of every `GET /resource` request, in arrival order.
    seen_tokens: Mutex<Vec<String>>,
    logins: AtomicU64,
    refreshes: AtomicU64,
    violations: AtomicU64,
    resource_hits: AtomicU64,
    resource_unauthorized: AtomicU64,
    redirect_target_hits: AtomicU64,
    unsupported_media: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ServerState {
    fn new(expires_in: u64) -> Self {
        Self {
            expires_in,
            next_pair: AtomicU64::new(1),
            db: Mutex::default(),
            redirect_login: AtomicBool::new(false),
            hold: Hold {
                armed: AtomicUsize::new(0),
                remaining: AtomicUsize::new(0),
                arrived: watch::Sender::new(0),
                released: watch::Sender::new(0),
            },
            seen_tokens: Mutex::default(),
            logins: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            violations: AtomicU64::new(0),
            resource_hits: AtomicU64::new(0),
            resource_unauthorized: AtomicU64::new(0),
            redirect_target_hits: AtomicU64::new(0),
            unsupported_media: AtomicU64::new(0),
        }
    }

    /// Issues `at-N` / `rt-N` and records both as valid.
    fn issue_pair(&self) -> Response<Full<Bytes>> {
        let n = self.next_pair.fetch_add(1, Ordering::SeqCst);
        let (access, refresh) = (format!("at-{n}"), format!("rt-{n}"));
        {
            let mut db = lock(&self.db);
            db.access.insert(access.clone());
            db.unused_refresh.insert(refresh.clone());
        }
        json(
            StatusCode::OK,
            serde_json::json!({
                "access_token": access,
                "refresh_token": refresh,
                "token_type": "Bearer",
                "expires_in": self.expires_in,
            }),
        )
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let path = req.uri().path().to_owned();
        let response = match (req.method().clone(), path.as_str()) {
            (Method::POST, "/auth/login") => self.login(req).await,
            (Method::POST, "/auth/login-elsewhere") => {
                // The redirect target: would hand out tokens to whoever follows the redirect.
                self.redirect_target_hits.fetch_add(1, Ordering::SeqCst);
                self.issue_pair()
            }
            (Method::POST, "/auth/refresh") => self.refresh(req).await,
            (Method::GET, "/resource") => self.resource(req).await,
            _ => text(StatusCode::NOT_FOUND, "not found"),
        };
        Ok(response)
    }

    async fn login(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        self.logins.fetch_add(1, Ordering::SeqCst);
        let body = match json_body(req).await {
            Ok(body) => body,
            Err(status) => return self.body_error(status),
        };
        if self.redirect_login.load(Ordering::SeqCst) {
            return Response::builder()
                .status(StatusCode::FOUND)
                .header(header::LOCATION, "/auth/login-elsewhere")
                .body(Full::new(Bytes::new()))
                .unwrap();
        }
        let user = body.get("username").and_then(|v| v.as_str());
        let pass = body.get("password").and_then(|v| v.as_str());
        if user == Some(USERNAME) && pass == Some(PASSWORD) {
            self.issue_pair()
        } else {
            invalid_grant()
        }
    }

    async fn refresh(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        let body = match json_body(req).await {
            Ok(body) => body,
            Err(status) => return self.body_error(status),
        };
        let Some(token) = body.get("refresh_token").and_then(|v| v.as_str()) else {
            return invalid_grant();
        };
        let accepted = {
            let mut db = lock(&self.db);
            if db.unused_refresh.remove(token) {
                db.used_refresh.insert(token.to_owned());
                true
            } else {
                if db.used_refresh.contains(token) {
                    self.violations.fetch_add(1, Ordering::SeqCst);
                }
                false
            }
        };
        if accepted {
            self.issue_pair()
        } else {
            invalid_grant()
        }
    }

    async fn resource(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        self.resource_hits.fetch_add(1, Ordering::SeqCst);
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_owned();
        // Validity is decided on arrival, before any hold.
        let valid = lock(&self.db).access.contains(&token);
        lock(&self.seen_tokens).push(token);
        let held = self
            .hold
            .remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if let Ok(remaining) = held {
            let index = self.hold.armed.load(Ordering::SeqCst) - remaining;
            let mut released = self.hold.released.subscribe();
            self.hold.arrived.send_modify(|n| *n += 1);
            // The sender lives as long as the server state, so this cannot fail.
            let _ = released.wait_for(|released| *released > index).await;
        }
        if valid {
            text(StatusCode::OK, "ok")
        } else {
            self.resource_unauthorized.fetch_add(1, Ordering::SeqCst);
            text(StatusCode::UNAUTHORIZED, "unauthorized")
        }
    }

    fn body_error(&self, status: StatusCode) -> Response<Full<Bytes>> {
        if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            self.unsupported_media.fetch_add(1, Ordering::SeqCst);
        }
        text(status, "bad request body")
    }

    // --- test controls ---

    /// Every access token issued so far stops working.
    fn revoke_access_tokens(&self) {
        lock(&self.db).access.clear();
    }

    /// Every unused refresh token becomes unknown (not "used": re-sending one is no violation).
    fn forget_refresh_tokens(&self) {
        lock(&self.db).unused_refresh.clear();
    }

    /// Holds the next `n` `GET /resource` requests until [`Self::release_held`] lets them go.
    fn hold_next_resource_requests(&self, n: usize) {
        self.hold.arrived.send_replace(0);
        self.hold.released.send_replace(0);
        self.hold.armed.store(n, Ordering::SeqCst);
        self.hold.remaining.store(n, Ordering::SeqCst);
    }

    /// Waits until `n` held requests have arrived.
    async fn held_arrived(&self, n: usize) {
        let mut arrived = self.hold.arrived.subscribe();
        arrived.wait_for(|arrived| *arrived >= n).await.unwrap();
    }

    /// Answers the first `n` held requests (in arrival order).
    fn release_held(&self, n: usize) {
        self.hold.released.send_replace(n);
    }

    /// Waits until some `GET /resource` request has carried `token`.
    async fn seen_token(&self, token: &str) {
        while !lock(&self.seen_tokens).iter().any(|t| t == token) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn seen_tokens(&self) -> Vec<String> {
        lock(&self.seen_tokens).clone()
    }

    fn count(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }
}

/// Reads a JSON request body, insisting on `Content-Type: application/json`.
async fn json_body(req: Request<Incoming>) -> Result<serde_json::Value, StatusCode> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let bytes = req
        .into_body()
        .collect()
        .await
        .map_err(|_| StatusCode::BAD_REQUEST)?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|_| StatusCode::BAD_REQUEST)
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .unwrap()
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

fn invalid_grant() -> Response<Full<Bytes>> {
    json(
        StatusCode::UNAUTHORIZED,
        serde_json::json!({ "error": "invalid_grant" }),
    )
}

struct TestServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
}

impl TestServer {
    async fn start(expires_in: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ServerState::new(expires_in));
        let accept_state = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&accept_state);
                tokio::spawn(async move {
                    let service = service_fn(move |req| Arc::clone(&state).handle(req));
                    // Connection errors (a client hanging up) are not test failures.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, state }
    }

    fn uri(&self, path: &str) -> Uri {
        format!("http://{}{}", self.addr, path).parse().unwrap()
    }

    fn provider(&self, password: &str) -> JsonProvider {
        JsonProvider {
            login_url: self.uri("/auth/login"),
            refresh_url: self.uri("/auth/refresh"),
            username: USERNAME.to_owned(),
            password: Secret::new(password),
        }
    }

    fn resource_request(&self) -> Request<Full<Bytes>> {
        Request::get(self.uri("/resource"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    }
}

// ------------------------------------------------------------------------------------------------
// The provider
// ------------------------------------------------------------------------------------------------

/// Logs in with a username and password and refreshes with a JSON body, both as JSON POSTs.
#[derive(Debug)]
struct JsonProvider {
    login_url: Uri,
    refresh_url: Uri,
    username: String,
    password: Secret,
}

fn post_json(uri: &Uri, body: serde_json::Value) -> AuthRequest {
    Request::post(uri.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

impl Provider for JsonProvider {
    fn login_request(&self) -> Result<AuthRequest, AuthError> {
        Ok(post_json(
            &self.login_url,
            serde_json::json!({ "username": self.username, "password": self.password.expose() }),
        ))
    }

    fn refresh_request(&self, refresh_token: &Secret) -> Result<AuthRequest, AuthError> {
        Ok(post_json(
            &self.refresh_url,
            serde_json::json!({ "refresh_token": refresh_token.expose() }),
        ))
    }
}

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A fresh layer (its own token slot and counters) whose auth calls go through a hyper client.
fn layer(server: &TestServer, password: &str) -> AuthLayer<JsonProvider> {
    AuthLayer::new(server.provider(password), http_client())
}

/// Sends `n` requests concurrently through clones of `service`; returns (status, body) of each.
async fn send_concurrently<S>(
    server: &TestServer,
    service: &S,
    n: usize,
) -> Vec<(StatusCode, Bytes)>
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<Incoming>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let service = service.clone();
        let request = server.resource_request();
        tasks.spawn(async move {
            let response = service.oneshot(request).await.expect("request failed");
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        });
    }
    let mut results = Vec::with_capacity(n);
    while let Some(result) = tasks.join_next().await {
        results.push(result.expect("request task panicked"));
    }
    results
}

fn auth_error(err: &BoxError) -> &AuthError {
    err.downcast_ref::<AuthError>()
        .unwrap_or_else(|| panic!("not an AuthError: {err:?}"))
}

fn assert_all_ok(results: &[(StatusCode, Bytes)]) {
    for (status, body) in results {
        assert_eq!(*status, StatusCode::OK);
        assert_eq!(body.as_ref(), b"ok");
    }
}

async fn with_deadline<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_DEADLINE, test)
        .await
        .expect("test did not finish in time (a hang)");
}

// ------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------

/// 50 concurrent requests on a cold layer share one login, and all carry its token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cold_start_logs_in_once() {
    with_deadline(async {
        let server = TestServer::start(EXPIRES_IN).await;
        let auth = layer(&server, PASSWORD);
        let service = ServiceBuilder::new()
            .layer(auth.clone())
            .service(http_client());

        let results = send_concurrently(&server, &service, 50).await;

        assert_eq!(results.len(), 50);
        assert_all_ok(&results);
        let s = &server.state;
        assert_eq!(ServerState::count(&s.logins), 1);
        assert_eq!(ServerState::count(&s.refreshes), 0);
        assert_eq!(ServerState::count(&s.resource_hits), 50);
        assert_eq!(ServerState::count(&s.resource_unauthorized), 0);
        assert_eq!(ServerState::count(&s.unsupported_media), 0);
        let seen = s.seen_tokens();
        assert_eq!(seen.len(), 50);
        assert!(seen.iter().all(|t| t == "at-1"), "{seen:?}");

        let m = auth.metrics();
        assert_eq!(m.logins, 1);
        assert_eq!(m.refreshes, 0);
        assert_eq!(m.replays, 0);
        assert_eq!(m.auth_failures, 0);
        assert_eq!(service.metrics(), m);
    })
    .await;
}

/// A revoked access token: 20 in-flight requests all get a 401, share one refresh and are
/// replayed with the new token. Half of the 401s are delivered only after the refresh has
/// completed, so a late 401 for the old token must not start a second refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoked_token_is_refreshed_once_and_requests_replayed() {
    with_deadline(async {
        let server = TestServer::start(EXPIRES_IN).await;
        let auth = layer(&server, PASSWORD);
        let service = ServiceBuilder::new()
            .layer(auth.clone())
            .service(http_client());

        // Warm up: log in and hold at-1.
        assert_all_ok(&send_concurrently(&server, &service, 1).await);
        assert_eq!(auth.metrics().logins, 1);

        // at-1 dies early; all 20 requests reach the server with it before any 401 comes back.
        server.state.revoke_access_tokens();
        server.state.hold_next_resource_requests(20);
        let control = async {
            server.state.held_arrived(20).await;
            // The first 10 get their 401 now: one refresh, then replays with at-2.
            server.state.release_held(10);
            server.state.seen_token("at-2").await;
            // The other 10 get their 401 for at-1 while at-2 is already in the slot.
            server.state.release_held(20);
        };
        let (results, ()) = tokio::join!(send_concurrently(&server, &service, 20), control);

        assert_eq!(results.len(), 20);
        assert_all_ok(&results);
        let s = &server.state;
        assert_eq!(ServerState::count(&s.logins), 1);
        assert_eq!(ServerState::count(&s.refreshes), 1);
        assert_eq!(ServerState::count(&s.violations), 0);
        assert_eq!(ServerState::count(&s.resource_unauthorized), 20);
        // 1 warm-up + 20 rejected + 20 replays.
        assert_eq!(ServerState::count(&s.resource_hits), 41);
        let seen = s.seen_tokens();
        assert_eq!(seen.iter().filter(|t| *t == "at-1").count(), 21, "{seen:?}");
        assert_eq!(seen.iter().filter(|t| *t == "at-2").count(), 20, "{seen:?}");

        let m = auth.metrics();
        assert_eq!(m.logins, 1);
        assert_eq!(m.refreshes, 1);
        assert_eq!(m.replays, 20);
        assert_eq!(m.replays, ServerState::count(&s.resource_unauthorized));
        assert_eq!(m.auth_failures, 0);
    })
    .await;
}

/// The refresh token is refused as well: the layer falls back to a fresh login.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rejected_refresh_falls_back_to_login() {
    with_deadline(async {
        let server = TestServer::start(EXPIRES_IN).await;
        let auth = layer(&server, PASSWORD);
        let service = ServiceBuilder::new()
            .layer(auth.clone())
            .service(http_client());

        assert_all_ok(&send_concurrently(&server, &service, 1).await);

        server.state.forget_refresh_tokens();
        server.state.revoke_access_tokens();
        let results = send_concurrently(&server, &service, 1).await;

        assert_all_ok(&results);
        let s = &server.state;
        assert_eq!(ServerState::count(&s.logins), 2);
        assert_eq!(ServerState::count(&s.refreshes), 1);
        // rt-1 was unknown (forgotten), not re-sent after use.
        assert_eq!(ServerState::count(&s.violations), 0);
        assert_eq!(ServerState::count(&s.resource_unauthorized), 1);
        // at-1 (warm-up), at-1 (rejected), at-2 (replay after the fallback login).
        assert_eq!(s.seen_tokens(), ["at-1", "at-1", "at-2"]);

        let m = auth.metrics();
        assert_eq!(m.logins, 2);
        assert_eq!(m.refreshes, 1);
        assert_eq!(m.replays, 1);
        assert_eq!(m.auth_failures, 1);
    })
    .await;
}

/// Wrong credentials: the request fails with a login rejection, and the next one fails fast
/// without sending the credentials again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_password_is_rejected_then_backs_off() {
    with_deadline(async {
        let server = TestServer::start(EXPIRES_IN).await;
        // A long backoff, so that "immediately" cannot be outrun by a slow machine.
        let auth = AuthLayer::builder(server.provider("wrong password"))
            .rejection_backoff(Backoff::new(
                Duration::from_secs(600),
                Duration::from_secs(600),
                2,
            ))
            .build(http_client());
        let service = ServiceBuilder::new()
            .layer(auth.clone())
            .service(http_client());

        let err = service
            .clone()
            .oneshot(server.resource_request())
            .await
            .expect_err("a wrong password must fail the request");
        let auth_err = auth_error(&err);
        assert!(auth_err.is_login_rejected(), "{auth_err:?}");
        assert_eq!(auth_err.status(), Some(StatusCode::UNAUTHORIZED));
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("wrong password"), "{shown}");

        let err = service
            .clone()
            .oneshot(server.resource_request())
            .await
            .expect_err("the second request must fail fast");
        let auth_err = auth_error(&err);
        assert!(auth_err.is_backing_off(), "{auth_err:?}");
        assert!(auth_err.retry_in().is_some());
        let cause = std::error::Error::source(auth_err)
            .and_then(|e| e.downcast_ref::<AuthError>())
            .expect("backing off names the last failure");
        assert!(cause.is_login_rejected());

        let s = &server.state;
        assert_eq!(ServerState::count(&s.logins), 1);
        assert_eq!(ServerState::count(&s.resource_hits), 0);
        let m = auth.metrics();
        assert_eq!(m.logins, 1);
        assert_eq!(m.auth_failures, 1);
    })
    .await;
}

/// A redirect from the login endpoint is not followed: the credentials never reach the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_redirect_is_not_followed() {
    with_deadline(async {
        let server = TestServer::start(EXPIRES_IN).await;
        server.state.redirect_login.store(true, Ordering::SeqCst);
        let auth = layer(&server, PASSWORD);
        let service = ServiceBuilder::new()
            .layer(auth.clone())
            .service(http_client());

        let err = service
            .oneshot(server.resource_request())
            .await
            .expect_err("a redirected login must fail the request");
        let auth_err = auth_error(&err);
        assert_eq!(auth_err.kind(), ErrorKind::Status, "{auth_err:?}");
        assert_eq!(auth_err.status(), Some(StatusCode::FOUND));

        let s = &server.state;
        assert_eq!(ServerState::count(&s.logins), 1);
        assert_eq!(ServerState::count(&s.redirect_target_hits), 0);
        assert_eq!(ServerState::count(&s.resource_hits), 0);
        let m: MetricsSnapshot = auth.metrics();
        assert_eq!(m.logins, 1);
        assert_eq!(m.auth_failures, 1);
    })
    .await;
}
