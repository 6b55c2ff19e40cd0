//! `token_type` other than bearer: an API answering `"token_type": "JWT"` works with the default
//! JSON parser once the policy sends `Authorization: JWT <token>`, and fails with a typed error
//! that names the fix while the policy sends `Bearer`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt};
use tower_token_auth::provider::TokenHeader;
use tower_token_auth::provider::{Credentials, HttpProvider, ProviderSpec};
use tower_token_auth::{AuthError, AuthLayer, Clock, ErrorKind};

/// A login answering `token_type` as given.
fn auth_server(
    token_type: &'static str,
) -> BoxCloneSyncService<
    http::Request<http_body_util::Full<bytes::Bytes>>,
    Response<Full<Bytes>>,
    Infallible,
> {
    counted_auth_server(token_type, Arc::default())
}

/// The same, counting its calls in `calls`.
fn counted_auth_server(
    token_type: &'static str,
    calls: Arc<AtomicUsize>,
) -> BoxCloneSyncService<
    http::Request<http_body_util::Full<bytes::Bytes>>,
    Response<Full<Bytes>>,
    Infallible,
> {
    BoxCloneSyncService::new(tower::service_fn(
        move |_: http::Request<http_body_util::Full<bytes::Bytes>>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                let body = format!(
                    r#"{{"access_token":"t-1","token_type":"{token_type}","expires_in":300}}"#
                );
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
            }
        },
    ))
}

fn provider() -> HttpProvider {
    let spec = r#"
        [login]
        url = "http://auth.test/login"
        json = { api_key = "${api_key}" }

        [refresh]
        url = "http://auth.test/refresh"
        json = { refresh_token = "${refresh_token}" }
    "#;
    ProviderSpec::from_toml(spec)
        .and_then(|spec| spec.build(&Credentials::new().api_key("k")))
        .expect("the spec builds")
}

/// Sends one request through `layer`; the upstream records the `Authorization` it saw.
async fn send(layer: &AuthLayer) -> (Result<StatusCode, tower::BoxError>, Option<String>) {
    let seen = Arc::new(Mutex::new(None));
    let record = Arc::clone(&seen);
    let upstream = tower::service_fn(move |req: Request<Full<Bytes>>| {
        let auth = req.headers().get(header::AUTHORIZATION).cloned();
        *record.lock().unwrap() = auth.map(|v| v.to_str().unwrap().to_owned());
        async { Ok::<_, Infallible>(Response::new(Full::<Bytes>::default())) }
    });
    let request = Request::get("http://api.test/x")
        .body(Full::default())
        .unwrap();
    let status = layer
        .layer(upstream)
        .oneshot(request)
        .await
        .map(|r| r.status());
    let seen = seen.lock().unwrap().clone();
    (status, seen)
}

#[tokio::test(start_paused = true)]
async fn a_jwt_token_type_is_sent_with_the_jwt_scheme() {
    let layer = AuthLayer::builder(provider())
        .clock(Clock::tokio())
        .with_policy(|p| p.header = TokenHeader::new(header::AUTHORIZATION).with_scheme("JWT"))
        .build(auth_server("JWT"));
    let (status, seen) = send(&layer).await;
    assert_eq!(status.unwrap(), StatusCode::OK);
    assert_eq!(seen.as_deref(), Some("JWT t-1"));

    // Bearer stays acceptable under another scheme; case does not matter.
    for token_type in ["jwt", "Bearer"] {
        let layer = AuthLayer::builder(provider())
            .clock(Clock::tokio())
            .with_policy(|p| p.header = TokenHeader::new(header::AUTHORIZATION).with_scheme("JWT"))
            .build(auth_server(token_type));
        assert_eq!(
            send(&layer).await.0.unwrap(),
            StatusCode::OK,
            "{token_type}"
        );
    }
}

/// A mismatch is a configuration error: never retried as transient (every retry would be a login,
/// the refresh token being spent), but backed off like a rejection.
#[tokio::test(start_paused = true)]
async fn a_jwt_token_type_under_the_bearer_scheme_names_the_fix_and_is_not_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = AuthLayer::builder(provider())
        .clock(Clock::tokio())
        .build(counted_auth_server("JWT", Arc::clone(&calls)));
    let (status, seen) = send(&layer).await;
    let err = status.unwrap_err();
    let err = err.downcast_ref::<AuthError>().expect("an AuthError");
    assert_eq!(err.kind(), ErrorKind::TokenType);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Requests in the next seconds fail fast on the backoff; no credentials go out.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (status, _) = send(&layer).await;
        assert!(status.is_err());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let shown = err.to_string();
    assert!(
        shown.contains("token type is neither bearer nor the token header's scheme")
            && shown.contains("tokens are sent as `Bearer <token>`")
            && shown.contains("TokenPolicy::header"),
        "{shown}"
    );
    assert!(!shown.contains("t-1"), "{shown}");
    assert_eq!(seen, None, "no request went out");
}
