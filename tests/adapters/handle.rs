//! The token handle: one single flight with the layer, whatever mix of requests and handle calls
//! needs a token; invalidation, forced refresh and rotations. Paused clock, in-process servers.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_token_auth::provider::{TokenHeader, TokenPolicy};
use tower_token_auth::{AuthLayer, Clock, ErrorKind, TokenHandle};

use crate::support::{auth_error, bearer, get, paused_layer, AuthServer, TestProvider, MARK};

const AUTH_DELAY: Duration = Duration::from_millis(50);
const LIFETIME: u64 = 600;

fn new_layer(server: &AuthServer, policy: TokenPolicy) -> AuthLayer {
    paused_layer(server, TestProvider::with_policy(policy))
}

/// `n` requests through the layer and `n` `token()` calls through the handle, all at once; the
/// generation each request's token and each handle token had.
async fn mixed_traffic(server: &AuthServer, layer: &AuthLayer, n: usize) -> Vec<u64> {
    let svc = layer.layer(server.upstream());
    let handle = layer.handle();
    let requests: Vec<_> = (0..n)
        .map(|_| tokio::spawn(svc.clone().oneshot(get())))
        .collect();
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let handle = handle.clone();
            tokio::spawn(async move { handle.token().await })
        })
        .collect();
    for request in requests {
        let response = request.await.expect("request task").expect("request");
        assert_eq!(response.status(), StatusCode::OK);
    }
    let mut generations = Vec::with_capacity(n);
    for call in calls {
        generations.push(call.await.expect("call task").expect("token").generation());
    }
    generations
}

#[tokio::test(start_paused = true)]
async fn handle_calls_and_requests_share_one_auth_call_per_renewal() {
    let server = AuthServer::new(LIFETIME, AUTH_DELAY);
    let mut policy = TokenPolicy::default();
    policy.refresh = tower_token_auth::provider::RefreshTiming::AfterExpiry;
    let layer = new_layer(&server, policy);

    // Cold: one login for 1,000 requests and 1,000 handle calls.
    let generations = mixed_traffic(&server, &layer, 1000).await;
    assert!(generations.iter().all(|&g| g == 1));
    assert_eq!((server.logins(), server.refreshes()), (1, 0));

    // Each expiry: exactly one refresh for the next 1,000 + 1,000.
    for renewal in 1..=3u64 {
        tokio::time::advance(Duration::from_secs(LIFETIME)).await;
        let generations = mixed_traffic(&server, &layer, 1000).await;
        assert!(generations.iter().all(|&g| g == renewal + 1), "{renewal}");
        assert_eq!((server.logins(), server.refreshes()), (1, renewal as u32));
    }
    assert_eq!(server.reused_refresh_tokens(), 0);
    let metrics = layer.handle().metrics();
    assert_eq!(
        (metrics.logins, metrics.refreshes, metrics.replays),
        (1, 3, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn current_never_waits_and_tells_the_expiry() {
    let server = AuthServer::new(LIFETIME, AUTH_DELAY);
    let layer = new_layer(&server, TokenPolicy::default());
    let handle = layer.handle();
    let clock = Clock::tokio();

    // Cold: nothing to hand out, and nothing started.
    assert!(handle.current().is_none());
    tokio::time::sleep(AUTH_DELAY * 4).await;
    assert_eq!(server.logins(), 0);

    let before = clock.wall();
    let token = handle.token().await.unwrap();
    let current = handle.current().expect("a valid token");
    assert_eq!(current.generation(), token.generation());
    assert_eq!(token.header_name(), "authorization");
    assert_eq!(token.header_value(), bearer(1).as_str());
    assert!(token.header_value().is_sensitive());
    assert_eq!(token.access_token().expose(), format!("at-1-{MARK}"));
    // Issued for 600 s (the paused clock's wall time runs a hair behind the system's).
    let lifetime = token.expires_at().duration_since(before).unwrap();
    let expected = Duration::from_secs(LIFETIME);
    assert!(
        lifetime <= expected && lifetime > expected - Duration::from_secs(1),
        "{lifetime:?}"
    );

    let mut headers = HeaderMap::new();
    let uri = http::Uri::from_static("http://api.test/x");
    token
        .apply_to(&http::Method::GET, &uri, &mut headers)
        .unwrap();
    assert!(!headers.contains_key("dpop"));
    assert_eq!(headers["authorization"], bearer(1).as_str());

    // Expired: `current` says so without waiting; `token` renews.
    tokio::time::advance(Duration::from_secs(LIFETIME)).await;
    assert!(handle.current().is_none());
    assert_eq!(handle.token().await.unwrap().generation(), 2);
    assert_eq!((server.logins(), server.refreshes()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn current_asks_for_the_refresh_ahead_once() {
    let server = AuthServer::new(LIFETIME, AUTH_DELAY);
    let layer = new_layer(&server, TokenPolicy::default());
    let handle = layer.handle();
    assert_eq!(handle.token().await.unwrap().generation(), 1);

    // Inside the 30 s margin (and its jitter): the token is still handed out, and one refresh
    // runs in the background however often `current` is called.
    tokio::time::advance(Duration::from_secs(LIFETIME - 20)).await;
    for _ in 0..100 {
        assert_eq!(handle.current().unwrap().generation(), 1);
    }
    tokio::time::sleep(AUTH_DELAY * 2).await;
    assert_eq!(server.refreshes(), 1);
    assert_eq!(handle.current().unwrap().generation(), 2);
}

#[tokio::test(start_paused = true)]
async fn invalidate_retires_the_current_token_only() {
    let server = AuthServer::new(LIFETIME, AUTH_DELAY);
    let layer = new_layer(&server, TokenPolicy::default());
    let handle = layer.handle();
    let first = handle.token().await.unwrap();

    handle.invalidate(&first);
    // Retired at once: no request sends it while its successor is on the way.
    assert!(handle.current().is_none());
    let second = handle.token().await.unwrap();
    assert_eq!(second.generation(), 2);
    assert_eq!(server.refreshes(), 1);

    // A superseded token is left alone: no auth call.
    handle.invalidate(&first);
    tokio::time::sleep(AUTH_DELAY * 4).await;
    assert_eq!(server.refreshes(), 1);
    assert_eq!(handle.current().unwrap().generation(), 2);

    // Requests through the layer carry the new token.
    let svc = layer.layer(server.upstream());
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), StatusCode::OK);
    assert_eq!(server.upstream_headers(), [bearer(2)]);
}

#[tokio::test(start_paused = true)]
async fn concurrent_forced_refreshes_share_one_auth_call() {
    let server = AuthServer::new(LIFETIME, AUTH_DELAY);
    let layer = new_layer(&server, TokenPolicy::default());
    let handle = layer.handle();

    // Cold: a forced refresh is a login.
    assert_eq!(handle.force_refresh().await.unwrap().generation(), 1);
    assert_eq!((server.logins(), server.refreshes()), (1, 0));

    // A valid token is replaced, once for 100 concurrent calls.
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let handle = handle.clone();
            tokio::spawn(async move { handle.force_refresh().await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().generation(), 2);
    }
    assert_eq!((server.logins(), server.refreshes()), (1, 1));
    assert_eq!(server.reused_refresh_tokens(), 0);
}

#[tokio::test(start_paused = true)]
async fn subscribers_hear_every_new_token_until_the_session_ends() {
    let server = AuthServer::new(LIFETIME, AUTH_DELAY);
    let layer = new_layer(&server, TokenPolicy::default());
    let handle = layer.handle();
    let mut rotations = handle.subscribe();
    assert!(rotations.borrow().is_none());

    let heard = tokio::spawn(async move {
        let mut generations = Vec::new();
        while rotations.changed().await.is_ok() {
            let token = rotations.borrow_and_update().clone().expect("a token");
            generations.push(token.generation());
            // Slow on purpose: it must not hold anything up.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        generations
    });
    handle.token().await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    handle.force_refresh().await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        handle.subscribe().borrow().as_ref().unwrap().generation(),
        2
    );

    // Layer, services and handles gone: the session ends, and so do the rotations.
    drop((layer, handle));
    assert_eq!(heard.await.unwrap(), [1, 2]);
}

#[tokio::test(start_paused = true)]
async fn handle_calls_fail_fast_like_requests_while_credentials_are_backed_off() {
    let server = AuthServer::new(LIFETIME, AUTH_DELAY);
    server.set_reject_logins(true);
    let layer = new_layer(&server, TokenPolicy::default());
    let handle = layer.handle();

    let error = handle.token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LoginRejected);
    let error = handle.force_refresh().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LoginRejected);
    let svc = layer.layer(server.upstream());
    let error = svc.oneshot(get()).await.unwrap_err();
    assert_eq!(auth_error(&error).kind(), ErrorKind::LoginRejected);
    assert_eq!(server.logins(), 1);
}

#[tokio::test(start_paused = true)]
async fn debug_output_shows_no_token() {
    let server = AuthServer::new(LIFETIME, AUTH_DELAY);
    let layer = new_layer(&server, TokenPolicy::default());
    let handle = layer.handle();
    let token = handle.token().await.unwrap();
    let shown = format!("{token:?} {handle:?} {:?}", handle.subscribe());
    assert!(!shown.contains(MARK), "{shown}");
    assert!(shown.contains("generation: 1"), "{shown}");
}

// ------------------------------------------------------------------------------------------------
// How the token is applied, and which answers reject it
// ------------------------------------------------------------------------------------------------

/// An upstream that records the headers of every request and answers with `respond`'s status
/// and headers for the token it got.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<HeaderMap>>>,
}

impl Recorder {
    fn service(
        &self,
        respond: impl Fn(&HeaderMap) -> (StatusCode, HeaderMap) + Clone + Send + Sync + 'static,
    ) -> tower::util::BoxCloneSyncService<Request<Full<Bytes>>, Response<Full<Bytes>>, Infallible>
    {
        let seen = Arc::clone(&self.seen);
        tower::util::BoxCloneSyncService::new(tower::service_fn(
            move |req: Request<Full<Bytes>>| {
                seen.lock().unwrap().push(req.headers().clone());
                let (status, headers) = respond(req.headers());
                let mut response = Response::new(Full::default());
                *response.status_mut() = status;
                *response.headers_mut() = headers;
                std::future::ready(Ok::<_, Infallible>(response))
            },
        ))
    }

    fn header(&self, name: &str) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .map(|h| h.get(name).map_or("", |v| v.to_str().unwrap()).to_owned())
            .collect()
    }
}

fn ok(_: &HeaderMap) -> (StatusCode, HeaderMap) {
    (StatusCode::OK, HeaderMap::new())
}

#[tokio::test(start_paused = true)]
async fn the_token_goes_in_the_header_and_scheme_the_policy_names() {
    let cases = [
        (
            TokenHeader::default(),
            "authorization",
            format!("Bearer at-1-{MARK}"),
        ),
        (
            TokenHeader::new(http::header::AUTHORIZATION).with_scheme("Token"),
            "authorization",
            format!("Token at-1-{MARK}"),
        ),
        (
            TokenHeader::new(HeaderName::from_static("x-api-token")),
            "x-api-token",
            format!("at-1-{MARK}"),
        ),
    ];
    for (header, name, expected) in cases {
        let server = AuthServer::new(LIFETIME, AUTH_DELAY);
        let mut policy = TokenPolicy::default();
        policy.header = header;
        let layer = new_layer(&server, policy);
        let recorder = Recorder::default();
        let svc = layer.layer(recorder.service(ok));
        svc.oneshot(get()).await.unwrap();
        assert_eq!(recorder.header(name), [expected]);
        let token = layer.handle().current().unwrap();
        assert_eq!(token.header_name(), name);
        assert!(token.header_value().is_sensitive());
        if name != "authorization" {
            assert_eq!(recorder.header("authorization"), [""]);
        }
        assert_eq!(server.logins(), 1);
    }
}

/// An upstream that rejects token 1 with `status` and `headers`, and accepts any other.
fn rejecting_first(
    status: StatusCode,
    headers: HeaderMap,
) -> impl Fn(&HeaderMap) -> (StatusCode, HeaderMap) + Clone + Send + Sync + 'static {
    move |request: &HeaderMap| {
        let first = request
            .get("authorization")
            .is_some_and(|v| v.as_bytes().ends_with(format!("at-1-{MARK}").as_bytes()));
        if first {
            (status, headers.clone())
        } else {
            (StatusCode::OK, HeaderMap::new())
        }
    }
}

fn challenge(value: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("www-authenticate", HeaderValue::from_static(value));
    headers
}

#[tokio::test(start_paused = true)]
async fn a_401_for_a_missing_permission_keeps_the_token() {
    let server = AuthServer::new(LIFETIME, AUTH_DELAY);
    let layer = new_layer(&server, TokenPolicy::default());
    let recorder = Recorder::default();
    let scope = challenge(r#"Bearer realm="api", error="insufficient_scope", scope="write""#);
    let svc = layer.layer(recorder.service(rejecting_first(StatusCode::UNAUTHORIZED, scope)));

    let response = svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    tokio::time::sleep(AUTH_DELAY * 4).await;
    assert_eq!((server.logins(), server.refreshes()), (1, 0));
    assert_eq!(layer.handle().metrics().replays, 0);
    assert_eq!(layer.handle().current().unwrap().generation(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_401_naming_invalid_token_is_refreshed_and_replayed() {
    let server = AuthServer::new(LIFETIME, AUTH_DELAY);
    let layer = new_layer(&server, TokenPolicy::default());
    let recorder = Recorder::default();
    let invalid = challenge(r#"Bearer error="invalid_token", error_description="expired""#);
    let svc = layer.layer(recorder.service(rejecting_first(StatusCode::UNAUTHORIZED, invalid)));

    let response = svc.oneshot(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!((server.logins(), server.refreshes()), (1, 1));
    assert_eq!(layer.handle().metrics().replays, 1);
    assert_eq!(recorder.header("authorization"), [bearer(1), bearer(2)]);
}

#[tokio::test(start_paused = true)]
async fn the_handle_outlives_the_layer_and_keeps_its_session() {
    let server = AuthServer::new(LIFETIME, AUTH_DELAY);
    let handle: TokenHandle = new_layer(&server, TokenPolicy::default()).handle();
    assert_eq!(handle.token().await.unwrap().generation(), 1);
    assert_eq!(handle.token().await.unwrap().generation(), 1);
    assert_eq!(server.logins(), 1);
}
