//! Bad input at the auth endpoint, over real HTTP: every fault gives the right error kind (or a
//! usable token where the input is legitimately usable), nothing panics, and the next request
//! after the fault clears succeeds.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_token_auth::provider::{Credentials, Preset};
use tower_token_auth::{AuthError, AuthLayer, AuthService, ErrorKind};
use tower_token_auth_emulation::{Api, Config, Emulation, Fault};

type Authed = AuthService<Client<HttpConnector, Full<Bytes>>>;

/// Fast retries, so that each case sees several attempts within the wait bound.
const RETRY: Duration = Duration::from_millis(20);

fn layer(emulation: &Emulation) -> (AuthLayer, Authed) {
    // The default rejection backoff: 5 s doubling to 5 minutes.
    layer_with(emulation, Duration::from_secs(5), Duration::from_secs(300))
}

/// With `rejection` to `rejection_max` as the backoff after a rejection (or an escalated
/// failure).
fn layer_with(
    emulation: &Emulation,
    rejection: Duration,
    rejection_max: Duration,
) -> (AuthLayer, Authed) {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let c = emulation.config();
    let provider = Preset::Oli
        .provider(
            &emulation.base_url(),
            &Credentials::new()
                .username(&c.username)
                .password(c.password.clone()),
        )
        .expect("preset builds");
    let layer = AuthLayer::builder(provider)
        .timeout(Duration::from_millis(300))
        .retry_backoff(RETRY, RETRY)
        .rejection_backoff(rejection, rejection_max)
        .max_wait(Duration::from_millis(800))
        .build(client.clone());
    let svc = layer.layer(client);
    (layer, svc)
}

async fn get(svc: &Authed, emulation: &Emulation) -> Result<StatusCode, tower::BoxError> {
    let request = Request::get(emulation.resource_url()).body(Full::default())?;
    let response = svc.clone().oneshot(request).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status)
}

fn body(json: &str) -> Fault {
    Fault::Body(json.as_bytes().to_vec())
}

fn jwt_like(payload: &str) -> String {
    use base64::engine::{general_purpose::URL_SAFE_NO_PAD, Engine};
    format!(
        "eyJhbGciOiJIUzI1NiJ9.{}.c2ln",
        URL_SAFE_NO_PAD.encode(payload)
    )
}

/// `None`: the input is usable and a token is obtained (the emulation does not know it, so the
/// resource answers 401 — a response, not an error).
fn cases() -> Vec<(&'static str, Fault, Option<ErrorKind>)> {
    const HTML: &str = "<html><body><h1>Internal Server Error</h1></body></html>";
    vec![
        (
            "500 html",
            Fault::Status(500, HTML, "text/html"),
            Some(ErrorKind::Status),
        ),
        (
            "503 html",
            Fault::Status(503, HTML, "text/html"),
            Some(ErrorKind::Status),
        ),
        (
            "truncated json",
            body(r#"{"access_token":"abc","expi"#),
            Some(ErrorKind::Malformed),
        ),
        (
            "missing access_token",
            body(r#"{"token_type":"bearer","expires_in":300}"#),
            Some(ErrorKind::Malformed),
        ),
        (
            "crlf in token",
            body(r#"{"access_token":"abc\r\nX-Injected: 1","expires_in":300}"#),
            Some(ErrorKind::InvalidToken),
        ),
        (
            "64 MiB body",
            Fault::Body(vec![b' '; 64 << 20]),
            Some(ErrorKind::ResponseTooLarge),
        ),
        ("no answer", Fault::Hang, Some(ErrorKind::Timeout)),
        (
            "expires_in string",
            body(r#"{"access_token":"abc","expires_in":"3600"}"#),
            None,
        ),
        (
            "expires_in negative",
            body(r#"{"access_token":"abc","expires_in":-5}"#),
            Some(ErrorKind::Malformed),
        ),
        (
            "expires_in zero",
            body(r#"{"access_token":"abc","expires_in":0}"#),
            Some(ErrorKind::Malformed),
        ),
        (
            "expires_in huge",
            body(r#"{"access_token":"abc","expires_in":1e300}"#),
            None,
        ),
        (
            "expires_in float",
            body(r#"{"access_token":"abc","expires_in":3600.5}"#),
            None,
        ),
        (
            "garbage jwt",
            body(r#"{"access_token":"eyJhbGciOi.!!not-base64!!.sig"}"#),
            None,
        ),
        (
            "jwt exp not a number",
            body(&format!(
                r#"{{"access_token":"{}"}}"#,
                jwt_like(r#"{"exp":"soon"}"#)
            )),
            None,
        ),
        (
            // Clock skew: lifetime unknown, the token is used (a 401 is the backstop).
            "jwt exp passed",
            body(&format!(
                r#"{{"access_token":"{}"}}"#,
                jwt_like(r#"{"exp":1000}"#)
            )),
            None,
        ),
        ("json array", body("[1,2,3]"), Some(ErrorKind::Malformed)),
        ("empty 200", body(""), Some(ErrorKind::Malformed)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_auth_fault_is_a_typed_error_and_clears() {
    let emulation = Emulation::start(Api::Oli, Config::default()).await.unwrap();
    // Short enough to wait out: five unusable 2xx answers in a row are backed off.
    let rejection = Duration::from_millis(50);
    for (name, fault, expected) in cases() {
        let (layer, svc) = layer_with(&emulation, rejection, rejection);
        emulation.set_fault(Some(fault));
        let outcome = get(&svc, &emulation).await;
        match (expected, outcome) {
            // A 2xx without a usable token, five times in a row while the request waits: no
            // server coming back but one answering uselessly, backed off with its own kind.
            (Some(kind), Err(err))
                if err
                    .downcast_ref::<AuthError>()
                    .is_some_and(|e| e.kind() == kind && kind != ErrorKind::Timeout) =>
            {
                let m = layer.handle().metrics();
                assert_eq!((m.logins, m.auth_failures), (5, 5), "{name}: {m:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // Transient: retried until the request's wait bound, then reported as the cause.
            (Some(kind), Err(err)) => {
                let err = err.downcast_ref::<AuthError>().expect("an AuthError");
                assert_eq!(err.kind(), ErrorKind::Unavailable, "{name}: {err}");
                let cause = std::error::Error::source(err)
                    .and_then(|e| e.downcast_ref::<AuthError>())
                    .unwrap_or_else(|| panic!("{name}: no cause: {err:?}"));
                assert_eq!(cause.kind(), kind, "{name}: {err}");
                let m = layer.handle().metrics();
                assert!(m.auth_failures >= 2, "{name}: retried: {m:?}");
                // Every login failed, but one may still be out when the request gives up.
                assert!(m.logins - m.auth_failures <= 1, "{name}: {m:?}");
            }
            (None, Ok(status)) => assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}"),
            (expected, outcome) => panic!("{name}: expected {expected:?}, got {outcome:?}"),
        }
        emulation.set_fault(None);
        assert_eq!(
            get(&svc, &emulation).await.unwrap(),
            StatusCode::OK,
            "{name}"
        );
    }
    assert_eq!(emulation.stats().violations, 0);
}

/// A token type the policy does not send is not a transient fault: the login is not repeated
/// while requests wait (each retry would send the credentials again); requests fail fast on the
/// backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_type_mismatch_is_backed_off_not_retried() {
    let emulation = Emulation::start(Api::Oli, Config::default()).await.unwrap();
    let (layer, svc) = layer(&emulation);
    emulation.set_fault(Some(Fault::Body(
        br#"{"access_token":"abc","token_type":"MAC"}"#.to_vec(),
    )));
    for _ in 0..5 {
        let err = get(&svc, &emulation).await.unwrap_err();
        let err = err.downcast_ref::<AuthError>().expect("an AuthError");
        assert_eq!(err.kind(), ErrorKind::TokenType, "{err}");
    }
    assert_eq!(
        emulation.stats().faults,
        1,
        "one auth call, then the backoff"
    );
    assert_eq!(layer.handle().metrics().auth_failures, 1);
}

/// While a refresh keeps failing, the still-valid token keeps being used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_refreshes_keep_the_valid_token_in_use() {
    let config = Config {
        access_lifetime: Duration::from_secs(4),
        ..Config::default()
    };
    let emulation = Emulation::start(Api::Oli, config).await.unwrap();
    let (layer, svc) = layer(&emulation);
    assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);
    // Past half-life the background refresh starts, and fails, again and again.
    emulation.set_fault(Some(Fault::Status(503, "down", "text/plain")));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for _ in 0..20 {
        assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = layer.handle().metrics();
    assert!(metrics.auth_failures >= 2, "{metrics:?}");
    assert_eq!(metrics.token_waits, 1, "no request waited: {metrics:?}");
    emulation.set_fault(None);
    tokio::time::sleep(RETRY * 2 + Duration::from_millis(100)).await;
    assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(emulation.stats().refreshes, 1);
}
