//! Shared helpers for the integration tests: an in-process auth server and upstream, and a
//! provider; the emulations over real HTTP (`emulated`), a capture of tracing output (`capture`),
//! a real OpenID provider (`oidc_server`) and the runs against it (`oidc_runs`), a Redis server
//! (`redis_server`), and the guard of the tests' gRPC servers (`grpc_guard`). Every test binary
//! (`tests/<feature>/main.rs`) includes it.
#![allow(dead_code, unreachable_pub)]

pub mod capture;
pub mod demo;
pub mod emulated;
#[cfg(feature = "tonic")]
pub mod grpc_guard;
pub mod oidc_runs;
pub mod oidc_server;
#[cfg(feature = "redis")]
pub mod redis_server;

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full};
use tower::util::BoxCloneSyncService;
use tower::BoxError;
use tower::{Layer, ServiceExt};
use tower_token_auth::provider::{Provider, TokenPolicy};
use tower_token_auth::{AuthError, AuthLayer, AuthService, Clock, Secret};

/// Every secret in the tests carries this marker, so leak checks can search for it.
pub const MARK: &str = "SECRET";

pub const LOGIN_URL: &str = "http://auth.test/login";
pub const REFRESH_URL: &str = "http://auth.test/refresh";
pub const REVOKE_URL: &str = "http://auth.test/revoke";
pub const PASSWORD: &str = "pw-SECRET";

/// The in-process upstream, as [`AuthServer::upstream`] makes it for the tests' requests.
pub type Upstream = BoxCloneSyncService<Request<Full<Bytes>>, Response<Full<Bytes>>, Infallible>;

/// A layer on `server` whose clock follows the paused tokio clock.
pub fn paused_layer(server: &AuthServer, provider: TestProvider) -> AuthLayer {
    AuthLayer::builder(provider)
        .clock(Clock::tokio())
        .build(server.transport())
}

/// A provider speaking JSON to the in-process [`AuthServer`].
#[derive(Debug, Clone)]
pub struct TestProvider {
    pub password: Secret,
    pub policy: TokenPolicy,
}

impl TestProvider {
    pub fn new() -> Self {
        Self {
            password: Secret::from(PASSWORD),
            policy: TokenPolicy::default(),
        }
    }

    pub fn with_policy(policy: TokenPolicy) -> Self {
        Self {
            policy,
            ..Self::new()
        }
    }
}

fn post_json(
    url: &str,
    body: serde_json::Value,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    Request::builder()
        .method(Method::POST)
        .uri(url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static request parts are valid")
}

impl Provider for TestProvider {
    fn login_request(
        &self,
    ) -> Result<http::Request<http_body_util::Full<bytes::Bytes>>, AuthError> {
        Ok(post_json(
            LOGIN_URL,
            serde_json::json!({ "username": "user", "password": self.password.expose() }),
        ))
    }

    fn refresh_request(
        &self,
        refresh_token: &Secret,
    ) -> Result<http::Request<http_body_util::Full<bytes::Bytes>>, AuthError> {
        Ok(post_json(
            REFRESH_URL,
            serde_json::json!({ "refresh_token": refresh_token.expose() }),
        ))
    }

    fn policy(&self) -> TokenPolicy {
        self.policy.clone()
    }

    fn revocation_request(
        &self,
        token: &Secret,
        hint: &str,
    ) -> Result<Option<http::Request<http_body_util::Full<bytes::Bytes>>>, AuthError> {
        Ok(Some(post_json(
            REVOKE_URL,
            serde_json::json!({ "token": token.expose(), "token_type_hint": hint }),
        )))
    }
}

/// What the auth server answers instead of issuing tokens.
#[derive(Clone)]
pub enum Fault {
    /// Answer with this status and body.
    Reply(StatusCode, &'static str, Bytes),
    /// Answer with this status, an empty body and `Retry-After: <value>`.
    RetryAfter(StatusCode, &'static str),
    /// Answer with this status and a body that breaks before its first byte (a reset).
    BrokenBody(StatusCode),
    /// Never answer.
    Hang,
}

#[derive(Default)]
struct State {
    issued: u32,
    logins: u32,
    refreshes: u32,
    /// Refresh tokens sent again after they were used: must stay 0.
    reused_refresh_tokens: u32,
    live_access: HashSet<String>,
    live_refresh: HashSet<String>,
    used_refresh: HashSet<String>,
    refresh_tokens_seen: Vec<String>,
    expires_in: Option<u64>,
    reject_logins: bool,
    reject_refreshes: bool,
    fault: Option<Fault>,
    /// The fault clears after this many more auth calls.
    fault_calls_left: Option<u32>,
    /// When each auth call arrived.
    call_times: Vec<tokio::time::Instant>,
    upstream_rejects_all: bool,
    upstream_calls: u32,
    upstream_headers: Vec<String>,
    /// The `token_type_hint` of each revocation, in order.
    revocations: Vec<String>,
}

/// An in-process auth server with single-use refresh tokens, and the upstream it protects.
#[derive(Clone)]
pub struct AuthServer {
    state: Arc<Mutex<State>>,
    delay: Duration,
    upstream_delay: Duration,
}

impl AuthServer {
    /// A server that issues tokens living `expires_in` seconds and answers after `delay`.
    pub fn new(expires_in: u64, delay: Duration) -> Self {
        let state = State {
            expires_in: Some(expires_in),
            ..State::default()
        };
        Self {
            state: Arc::new(Mutex::new(state)),
            delay,
            upstream_delay: Duration::from_millis(10),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("test state lock"))
    }

    pub fn logins(&self) -> u32 {
        self.with(|s| s.logins)
    }
    pub fn refreshes(&self) -> u32 {
        self.with(|s| s.refreshes)
    }
    pub fn reused_refresh_tokens(&self) -> u32 {
        self.with(|s| s.reused_refresh_tokens)
    }
    pub fn refresh_tokens_seen(&self) -> Vec<String> {
        self.with(|s| s.refresh_tokens_seen.clone())
    }
    pub fn upstream_calls(&self) -> u32 {
        self.with(|s| s.upstream_calls)
    }
    pub fn upstream_headers(&self) -> Vec<String> {
        self.with(|s| s.upstream_headers.clone())
    }
    pub fn set_reject_logins(&self, on: bool) {
        self.with(|s| s.reject_logins = on);
    }
    pub fn set_reject_refreshes(&self, on: bool) {
        self.with(|s| s.reject_refreshes = on);
    }
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.with(|s| {
            s.fault = fault;
            s.fault_calls_left = None;
        });
    }
    /// The fault set answers `calls` more auth calls, then clears.
    pub fn clear_fault_after(&self, calls: u32) {
        self.with(|s| s.fault_calls_left = Some(calls));
    }
    /// When each auth call (login or refresh) arrived.
    pub fn call_times(&self) -> Vec<tokio::time::Instant> {
        self.with(|s| s.call_times.clone())
    }
    pub fn set_upstream_rejects_all(&self, on: bool) {
        self.with(|s| s.upstream_rejects_all = on);
    }
    /// Omits `expires_in` from token responses.
    pub fn set_expires_in(&self, expires_in: Option<u64>) {
        self.with(|s| s.expires_in = expires_in);
    }
    /// The `token_type_hint` of each revocation call, in order.
    pub fn revocations(&self) -> Vec<String> {
        self.with(|s| s.revocations.clone())
    }
    /// Kills every issued access token early, as simacan's tokens may die.
    pub fn revoke_access_tokens(&self) {
        self.with(|s| s.live_access.clear());
    }

    fn handle(&self, path: &str, body: &[u8]) -> Result<Response<Full<Bytes>>, Fault> {
        self.with(|s| {
            let body: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
            if path == "/revoke" {
                if let Some(fault) = s.fault.clone() {
                    return Err(fault);
                }
                // RFC 7009: the token dies, whichever kind it is; unknown tokens are no error.
                let token = body["token"].as_str().unwrap_or_default();
                s.live_access.remove(token);
                s.live_refresh.remove(token);
                let hint = body["token_type_hint"].as_str().unwrap_or_default();
                s.revocations.push(hint.to_owned());
                return Ok(json(StatusCode::OK, "{}"));
            }
            let login = path == "/login";
            s.call_times.push(tokio::time::Instant::now());
            if login {
                s.logins += 1;
            } else {
                s.refreshes += 1;
            }
            let sent = body["refresh_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if !login {
                s.refresh_tokens_seen.push(sent.clone());
                if s.used_refresh.contains(&sent) {
                    s.reused_refresh_tokens += 1;
                }
            }
            if let Some(fault) = s.fault.clone() {
                match &mut s.fault_calls_left {
                    Some(0) => s.fault = None,
                    Some(left) => {
                        *left -= 1;
                        return Err(fault);
                    }
                    None => return Err(fault),
                }
            }
            if login {
                if s.reject_logins || body["password"] != PASSWORD {
                    return Ok(json(
                        StatusCode::UNAUTHORIZED,
                        r#"{"error":"invalid_grant"}"#,
                    ));
                }
            } else {
                if s.reject_refreshes || !s.live_refresh.remove(&sent) {
                    return Ok(json(
                        StatusCode::BAD_REQUEST,
                        r#"{"error":"invalid_grant"}"#,
                    ));
                }
                s.used_refresh.insert(sent);
            }
            s.issued += 1;
            let n = s.issued;
            let access = format!("at-{n}-{MARK}");
            let refresh = format!("rt-{n}-{MARK}");
            s.live_access.insert(access.clone());
            s.live_refresh.insert(refresh.clone());
            let mut answer = serde_json::json!({
                "access_token": access,
                "refresh_token": refresh,
                "token_type": "bearer",
            });
            if let Some(expires_in) = s.expires_in {
                answer["expires_in"] = expires_in.into();
            }
            Ok(json(StatusCode::OK, &answer.to_string()))
        })
    }

    /// The auth transport: an HTTP service as the layer expects one.
    pub fn transport(
        &self,
    ) -> BoxCloneSyncService<
        http::Request<http_body_util::Full<bytes::Bytes>>,
        Response<AuthBody>,
        BoxError,
    > {
        let server = self.clone();
        BoxCloneSyncService::new(tower::service_fn(
            move |req: http::Request<http_body_util::Full<bytes::Bytes>>| {
                let server = server.clone();
                async move {
                    let path = req.uri().path().to_owned();
                    let body = req.into_body().collect().await?.to_bytes();
                    tokio::time::sleep(server.delay).await;
                    let response = match server.handle(&path, &body) {
                        Ok(response) => response,
                        Err(Fault::Reply(status, content_type, body)) => Response::builder()
                            .status(status)
                            .header(header::CONTENT_TYPE, content_type)
                            .body(Full::new(body))?,
                        Err(Fault::RetryAfter(status, after)) => Response::builder()
                            .status(status)
                            .header(header::RETRY_AFTER, after)
                            .body(Full::default())?,
                        Err(Fault::BrokenBody(status)) => {
                            return Ok(Response::builder()
                                .status(status)
                                .body(Either::Right(Broken))?)
                        }
                        Err(Fault::Hang) => std::future::pending().await,
                    };
                    Ok(response.map(Either::Left))
                }
            },
        ))
    }

    /// The protected upstream: 200 for a live access token, 401 otherwise. Records every
    /// `Authorization` header it receives.
    pub fn upstream<B: Send + 'static>(
        &self,
    ) -> BoxCloneSyncService<Request<B>, Response<Full<Bytes>>, Infallible> {
        let server = self.clone();
        BoxCloneSyncService::new(tower::service_fn(move |req: Request<B>| {
            let server = server.clone();
            async move {
                let auth = req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .map(|v| v.to_str().unwrap_or("<binary>").to_owned())
                    .unwrap_or_default();
                server.with(|s| {
                    s.upstream_calls += 1;
                    s.upstream_headers.push(auth.clone());
                });
                // A request may ask to be held longer, to arrive after others.
                let delay = req
                    .headers()
                    .get("x-delay-ms")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .map_or(server.upstream_delay, Duration::from_millis);
                tokio::time::sleep(delay).await;
                let ok = server.with(|s| {
                    !s.upstream_rejects_all
                        && auth
                            .strip_prefix("Bearer ")
                            .is_some_and(|t| s.live_access.contains(t))
                });
                let status = if ok {
                    StatusCode::OK
                } else {
                    StatusCode::UNAUTHORIZED
                };
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(status)
                        .body(Full::new(Bytes::from_static(b"resource")))
                        .expect("static response parts are valid"),
                )
            }
        }))
    }
}

/// What the in-process auth server's answers are made of.
pub type AuthBody = Either<Full<Bytes>, Broken>;

/// A response body that fails at once, as a connection reset mid-answer does.
#[derive(Debug)]
pub struct Broken;

impl http_body::Body for Broken {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::ErrorKind::ConnectionReset.into())))
    }
}

fn json(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("static response parts are valid")
}

/// A GET request for the upstream.
/// The access and refresh tokens a stored session holds, read from its documented JSON encoding
/// (`StoredSession::to_json`).
pub fn stored_tokens(session: &tower_token_auth::store::StoredSession) -> (String, Option<String>) {
    let json: serde_json::Value =
        serde_json::from_slice(&session.to_json("any")).expect("a stored session is JSON");
    let token = |field: &str| json[field].as_str().map(str::to_owned);
    (
        token("access_token").expect("an access token"),
        token("refresh_token"),
    )
}

pub fn get() -> Request<Full<Bytes>> {
    Request::builder()
        .uri("http://api.test/resource")
        .body(Full::new(Bytes::new()))
        .expect("static request parts are valid")
}

/// Header value the upstream should see for access token number `n`.
pub fn bearer(n: u32) -> String {
    format!("Bearer at-{n}-{MARK}")
}

/// The `AuthError` inside a service error.
pub fn auth_error(err: &BoxError) -> &AuthError {
    err.downcast_ref::<AuthError>()
        .unwrap_or_else(|| panic!("not an AuthError: {err:?}"))
}

/// How long the in-process auth server takes to answer, in the tests on the paused clock.
pub const AUTH_DELAY: Duration = Duration::from_millis(50);

/// `layer` on the in-process upstream of `server`.
pub fn service(server: &AuthServer, layer: &AuthLayer) -> AuthService<Upstream> {
    layer.layer(server.upstream())
}

/// Sends `n` requests concurrently and returns their outcomes in order.
pub async fn concurrent(
    svc: &AuthService<Upstream>,
    n: usize,
) -> Vec<Result<Response<Full<Bytes>>, BoxError>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(svc.clone().oneshot(get())))
        .collect();
    let mut out = Vec::with_capacity(n);
    for task in tasks {
        out.push(task.await.expect("request task panicked"));
    }
    out
}

/// A GET of `url` through a reqwest client with middleware: its status, the body read.
#[cfg(feature = "reqwest")]
pub async fn reqwest_get(
    client: &reqwest_middleware::ClientWithMiddleware,
    url: &str,
) -> StatusCode {
    let response = client.get(url).send().await.expect("an answer");
    let status = response.status();
    response.bytes().await.expect("a body");
    status
}

/// Sends one GET through `svc` and returns the status it got.
pub async fn send(svc: &AuthService<Upstream>) -> Result<StatusCode, BoxError> {
    svc.clone().oneshot(get()).await.map(|r| r.status())
}

/// Load tests on the real clock that share a test binary run one at a time under this guard:
/// each measures recovery times and fault counts over seconds of wall time, which two of them
/// side by side on a small machine would distort.
pub async fn one_load_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOAD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOAD.lock().await
}
