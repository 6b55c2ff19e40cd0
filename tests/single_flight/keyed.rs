//! One layer, many sessions (`KeyedAuthLayer`): against the OAuth2 emulation, each session a
//! tenant whose token is issued for its own audience, and each request to the resource at
//! `/resource/{audience}`, which refuses (and counts as a violation) a token issued for another
//! tenant. One login per session however many requests arrive at once, no token sent for
//! another session, the bound on live sessions kept.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::task::JoinSet;
use tower::{Layer, ServiceExt};
use tower_token_auth::provider::oauth2;
use tower_token_auth::{AuthLayer, ErrorKind, KeyedAuthLayer, KeyedAuthService};
use tower_token_auth_emulation::{Api, Config, Emulation, OAuthExtensions};

use crate::support::auth_error;
use crate::support::emulated::{client, HttpClient};

/// The request extension naming a request's session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Tenant(pub(super) u32);

pub(super) fn audience(tenant: u32) -> String {
    format!("tenant-{tenant}")
}

pub(super) async fn emulation() -> Emulation {
    let config = Config {
        extensions: OAuthExtensions {
            resource_indicators: true,
            audience_per_path: true,
            ..OAuthExtensions::default()
        },
        ..Config::default()
    };
    Emulation::start(Api::OAuth2, config).await.unwrap()
}

fn keyed(emulation: &Emulation, max_sessions: usize) -> KeyedAuthLayer<Tenant> {
    let (url, c) = (emulation.base_url(), emulation.config().clone());
    KeyedAuthLayer::builder(move |tenant: &Tenant| {
        let provider = oauth2::Builder::client_credentials(&url, &c.client_id, &*c.client_secret)
            .audience(&audience(tenant.0))
            .build()?;
        Ok(AuthLayer::builder(provider))
    })
    .max_sessions(max_sessions)
    .build(client())
}

pub(super) async fn get(
    svc: KeyedAuthService<HttpClient, Tenant>,
    base: String,
    tenant: u32,
) -> Result<StatusCode, tower::BoxError> {
    let mut request = Request::get(format!("{base}/resource/{}", audience(tenant)))
        .body(Full::<Bytes>::default())?;
    request.extensions_mut().insert(Tenant(tenant));
    let response = svc.oneshot(request).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status)
}

/// 1,000 sessions × 10 requests, all submitted at once: exactly one login per session, every
/// request served with its own session's token (the resource checks the audience of each), 0
/// violations. A session's ten requests are sent together, so that they all meet its first
/// login; at most 400 requests are in flight (10,000 connections at once would test the
/// machine's file descriptors and the server's accept queue, not the layer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sessions_log_in_once_each_and_never_share_a_token() {
    const SESSIONS: u32 = 1_000;
    const PER_SESSION: u32 = 10;
    let emulation = emulation().await;
    let layer = keyed(&emulation, SESSIONS as usize);
    let svc = layer.layer(client());
    let base = format!("http://{}", emulation.addr());
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(400));
    let mut requests = JoinSet::new();
    for tenant in 0..SESSIONS {
        for _ in 0..PER_SESSION {
            let (svc, base, in_flight) = (svc.clone(), base.clone(), in_flight.clone());
            requests.spawn(async move {
                let _permit = in_flight.acquire_owned().await;
                get(svc, base, tenant).await
            });
        }
    }
    let mut ok = 0;
    while let Some(done) = requests.join_next().await {
        ok += u32::from(done.unwrap().unwrap() == StatusCode::OK);
    }
    assert_eq!(ok, SESSIONS * PER_SESSION);
    let s = emulation.stats();
    assert_eq!(s.logins, u64::from(SESSIONS), "one login per session");
    assert_eq!(s.resource_ok, u64::from(SESSIONS * PER_SESSION));
    assert_eq!(emulation.violation_reasons(), Vec::new());
    assert_eq!(layer.sessions(), (SESSIONS as usize, 0));
    for tenant in [0, 499, 999] {
        let m = layer.handle(&Tenant(tenant)).unwrap().metrics();
        assert_eq!((m.logins, m.replays, m.auth_failures), (1, 0, 0));
    }
}

/// With at most 10 live sessions, 30 tenants one after another: 20 dropped, least recently used
/// first; a dropped tenant's next request builds its session again (a second login), and the
/// sessions in use are never the ones dropped.
#[tokio::test]
async fn the_bound_drops_the_least_recently_used() {
    let emulation = emulation().await;
    let layer = keyed(&emulation, 10);
    let svc = layer.layer(client());
    let base = format!("http://{}", emulation.addr());
    for tenant in 0..30 {
        assert_eq!(
            get(svc.clone(), base.clone(), tenant).await.unwrap(),
            StatusCode::OK
        );
        // Tenant 0 stays in use: never the least recently used. (Past the coarse clock's
        // resolution, a few milliseconds, so that the uses are told apart.)
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(
            get(svc.clone(), base.clone(), 0).await.unwrap(),
            StatusCode::OK
        );
    }
    assert_eq!(layer.sessions(), (10, 20));
    assert_eq!(emulation.stats().logins, 30, "tenant 0 logged in once");
    // Tenant 1 was dropped: its session is built again.
    assert_eq!(
        get(svc.clone(), base.clone(), 1).await.unwrap(),
        StatusCode::OK
    );
    assert_eq!(emulation.stats().logins, 31);
    assert_eq!(layer.sessions(), (10, 21));
    assert_eq!(emulation.violation_reasons(), Vec::new());
}

/// Sessions idle past the idle timeout are dropped by the requests of a session still in use,
/// with no new session inserted: three tenants, then only tenant 1 for well past 1.5 × the
/// timeout; tenants 2 and 3 are dropped, tenant 1 never (its own request marks it used before
/// it looks), and tenant 2's next request builds its session again.
#[tokio::test]
async fn idle_sessions_are_dropped_by_the_requests_of_others() {
    let emulation = emulation().await;
    let (url, c) = (emulation.base_url(), emulation.config().clone());
    let layer = KeyedAuthLayer::builder(move |tenant: &Tenant| {
        let provider = oauth2::Builder::client_credentials(&url, &c.client_id, &*c.client_secret)
            .audience(&audience(tenant.0))
            .build()?;
        Ok(AuthLayer::builder(provider))
    })
    .idle_timeout(Duration::from_millis(200))
    .build(client());
    let svc = layer.layer(client());
    let base = format!("http://{}", emulation.addr());
    for tenant in 1..=3 {
        let status = get(svc.clone(), base.clone(), tenant).await.unwrap();
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(layer.sessions(), (3, 0));
    // Eight rounds of at least 50 ms: at least 400 ms, so that a sweep (every 100 ms at most)
    // comes after the 200 ms tenants 2 and 3 have been idle.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let status = get(svc.clone(), base.clone(), 1).await.unwrap();
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(layer.sessions(), (1, 2));
    assert_eq!(emulation.stats().logins, 3, "tenant 1 was never dropped");
    let status = get(svc.clone(), base.clone(), 2).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(layer.sessions(), (2, 2));
    let s = emulation.stats();
    assert_eq!((s.logins, s.resource_ok), (4, 12));
    assert_eq!(emulation.violation_reasons(), Vec::new());
}

/// A request naming no session, and a session whose factory fails: typed errors, nothing sent,
/// and the layer serves other keys.
#[tokio::test]
async fn no_key_and_a_failing_factory_are_typed_errors() {
    let emulation = emulation().await;
    let (url, c) = (emulation.base_url(), emulation.config().clone());
    let layer = KeyedAuthLayer::builder(move |tenant: &Tenant| {
        if tenant.0 == 13 {
            return Err(tower_token_auth::AuthError::config(
                "no credentials for tenant 13",
            ));
        }
        let provider = oauth2::Builder::client_credentials(&url, &c.client_id, &*c.client_secret)
            .audience(&audience(tenant.0))
            .build()?;
        Ok(AuthLayer::builder(provider))
    })
    .build(client());
    let svc = layer.layer(client());
    let base = format!("http://{}", emulation.addr());
    let bare = Request::get(format!("{base}/resource/{}", audience(1)))
        .body(Full::<Bytes>::default())
        .unwrap();
    let err = svc.clone().oneshot(bare).await.unwrap_err();
    assert_eq!(auth_error(&err).kind(), ErrorKind::Config);
    let err = get(svc.clone(), base.clone(), 13).await.unwrap_err();
    assert_eq!(auth_error(&err).kind(), ErrorKind::Config);
    assert!(format!("{err}").contains("tenant 13"));
    assert_eq!(
        get(svc.clone(), base.clone(), 1).await.unwrap(),
        StatusCode::OK
    );
    assert_eq!(layer.sessions(), (1, 0));
    let s = emulation.stats();
    assert_eq!(
        (s.logins, s.resource_ok, s.resource_unauthorized),
        (1, 1, 0)
    );
}

/// The key from a function of the request (here a header), and a session's handle: the same
/// session either way.
#[tokio::test]
async fn a_key_from_a_header_and_the_sessions_handle() {
    let emulation = emulation().await;
    let (url, c) = (emulation.base_url(), emulation.config().clone());
    let layer = KeyedAuthLayer::builder(move |tenant: &String| {
        let provider = oauth2::Builder::client_credentials(&url, &c.client_id, &*c.client_secret)
            .audience(tenant)
            .build()?;
        Ok(AuthLayer::builder(provider))
    })
    .key_from(|_, headers| {
        headers
            .get("x-tenant")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    })
    .build(client());
    let handle = layer.handle(&"tenant-7".to_owned()).unwrap();
    let token = handle.token().await.unwrap();
    let svc = layer.layer(client());
    let request = Request::get(format!("http://{}/resource/tenant-7", emulation.addr()))
        .header("x-tenant", "tenant-7")
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = svc.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(handle.current().unwrap().generation(), token.generation());
    assert_eq!(emulation.stats().logins, 1);
}

/// The demo's `--sessions`: 50 sessions on one keyed layer, 1,000 requests spread over them,
/// each session's token asked for its own audience and sent only to its own resource path; the
/// report gives one login per session and none evicted, the emulation 0 violations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_spreads_requests_over_keyed_sessions() {
    use crate::support::demo;

    let emulation = emulation().await;
    let c = emulation.config().clone();
    let api_url = format!("http://{}/resource/{{session}}", emulation.addr());
    let args = [
        "--provider",
        "oauth2-client-credentials",
        "--auth-url",
        &emulation.base_url(),
        "--api-url",
        &api_url,
        "--client-id",
        &c.client_id,
        "--client-secret",
        &c.client_secret,
        "--sessions",
        "50",
        "--requests",
        "1000",
        "--json",
    ]
    .map(str::to_owned)
    .to_vec();
    let no_env: Vec<(String, String)> = Vec::new();
    let report = demo::report(&demo::run(args, no_env).await);
    assert_eq!(
        (report["requests"].as_u64(), report["failed"].as_u64()),
        (Some(1000), Some(0)),
        "{report}"
    );
    let sessions = &report["sessions"];
    assert_eq!(sessions["count"], 50, "{report}");
    assert_eq!(
        (
            sessions["logins_min"].as_u64(),
            sessions["logins_max"].as_u64()
        ),
        (Some(1), Some(1)),
        "{report}"
    );
    assert_eq!(sessions["evicted"], 0, "{report}");
    assert_eq!(report["logins"], 50, "{report}");
    let s = emulation.stats();
    assert_eq!((s.logins, s.resource_ok), (50, 1000));
    assert_eq!(emulation.violation_reasons(), Vec::new());
}

/// The reqwest middleware on a keyed layer: the key in the request's middleware extensions
/// picks the session, as through the tower service; one login per session, shared with the
/// tower side, and a request naming no session fails with a configuration error.
#[cfg(feature = "reqwest")]
#[tokio::test]
async fn the_reqwest_middleware_takes_the_key_from_its_extensions() {
    use tower_token_auth::reqwest::AuthMiddleware;

    let emulation = emulation().await;
    let layer = keyed(&emulation, 100);
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::keyed(&layer))
        .build();
    let base = format!("http://{}", emulation.addr());
    for round in 0..3 {
        for tenant in 0..5 {
            let response = http
                .get(format!("{base}/resource/{}", audience(tenant)))
                .with_extension(Tenant(tenant))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "round {round}");
        }
    }
    // The tower side shares the sessions.
    assert_eq!(
        get(layer.layer(client()), base.clone(), 3).await.unwrap(),
        StatusCode::OK
    );
    let s = emulation.stats();
    assert_eq!((s.logins, s.resource_ok), (5, 16));
    let err = http
        .get(format!("{base}/resource/{}", audience(1)))
        .send()
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Middleware(inner) = &err else {
        panic!("{err}")
    };
    let auth = inner.downcast_ref::<tower_token_auth::AuthError>().unwrap();
    assert_eq!(auth.kind(), ErrorKind::Config);
    assert_eq!(emulation.violation_reasons(), Vec::new());
}
