//! `private_key_jwt` end to end: an auth server on 127.0.0.1 that verifies every client
//! assertion with `jsonwebtoken` before it issues a token, and the layer logging in through it.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::{Layer, ServiceExt};
use tower_token_auth::jose::{Algorithm, SigningKey};
use tower_token_auth::provider::oauth2::{self, ClientAssertion};
use tower_token_auth::{AuthError, AuthLayer, ErrorKind};

use crate::signed::JWT_BEARER;

/// What the auth server saw.
#[derive(Default)]
struct Seen {
    calls: AtomicU32,
    jtis: Mutex<Vec<String>>,
}

/// Starts the auth server; its token URL. The first call is answered 503 (so that the layer
/// retries within its flight), every later one verifies the assertion: 200 with a token, or
/// 401 `invalid_client`.
async fn start(seen: Arc<Seen>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    let audience = url.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (seen, audience) = (Arc::clone(&seen), audience.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let (seen, audience) = (Arc::clone(&seen), audience.clone());
                    async move { Ok::<_, Infallible>(token(request, &seen, &audience).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

async fn token(request: Request<Incoming>, seen: &Seen, audience: &str) -> Response<Full<Bytes>> {
    let call = seen.calls.fetch_add(1, Ordering::SeqCst);
    let has_authorization = request.headers().contains_key(header::AUTHORIZATION);
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |name: &str| {
        form.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    // Every call, the failed first one too, carries its own assertion.
    if let Some(jws) = get("client_assertion") {
        let claims = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(jws).unwrap();
        let jti = claims.claims["jti"].as_str().unwrap().to_owned();
        seen.jtis.lock().unwrap().push(jti);
    }
    if call == 0 {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"error":"temporarily_unavailable"}"#,
        );
    }
    let public = crate::decoding_key(Algorithm::ES256, "es256.pub.pem");
    let verified = !has_authorization
        && get("grant_type") == Some("client_credentials")
        && get("client_id") == Some("my-app")
        && get("client_assertion_type") == Some(JWT_BEARER)
        && get("client_assertion").is_some_and(|jws| {
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
            validation.set_audience(&[audience]);
            validation.set_issuer(&["my-app"]);
            jsonwebtoken::decode::<serde_json::Value>(jws, &public, &validation).is_ok()
        });
    if !verified {
        return reply(StatusCode::UNAUTHORIZED, r#"{"error":"invalid_client"}"#);
    }
    let body = format!(r#"{{"access_token":"at-{call}","token_type":"Bearer","expires_in":3600}}"#);
    reply(StatusCode::OK, &body)
}

fn reply(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    response
}

/// An upstream that answers 200 to requests carrying a token the auth server issued.
fn upstream() -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(|request: Request<Full<Bytes>>| async move {
        let authorized = request
            .headers()
            .get(header::AUTHORIZATION)
            .is_some_and(|v| v.to_str().unwrap_or_default().starts_with("Bearer at-"));
        let status = if authorized {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        let mut response = Response::new(Full::default());
        *response.status_mut() = status;
        Ok::<_, Infallible>(response)
    })
}

async fn get(
    svc: &tower_token_auth::AuthService<
        impl tower::Service<
                Request<Full<Bytes>>,
                Response = Response<Full<Bytes>>,
                Error = Infallible,
                Future: Send,
            > + Clone
            + Send
            + 'static,
    >,
) -> Result<StatusCode, tower::BoxError> {
    let request = Request::get("http://api.test/orders")
        .body(Full::default())
        .unwrap();
    Ok(svc.clone().oneshot(request).await?.status())
}

#[tokio::test]
async fn private_key_jwt_over_http() {
    let seen = Arc::new(Seen::default());
    let url = start(Arc::clone(&seen)).await;
    let key = crate::pem_key(Algorithm::ES256).with_kid("e2e");
    let provider = oauth2::Builder::client_credentials_grant(&url)
        .build_with_assertion(ClientAssertion::private_key_jwt("my-app", key))
        .unwrap();
    let transport = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let layer = AuthLayer::new(provider, transport);
    let svc = layer.layer(upstream());
    // 503 first, retried within the flight: two calls, each with its own assertion.
    assert_eq!(get(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(seen.calls.load(Ordering::SeqCst), 2);
    // A forced renewal is another login, with another assertion.
    let token = layer.handle().force_refresh().await.unwrap();
    assert_eq!(token.access_token().expose(), "at-2");
    assert_eq!(get(&svc).await.unwrap(), StatusCode::OK);
    let jtis = seen.jtis.lock().unwrap().clone();
    assert_eq!(jtis.len(), 3);
    assert_eq!(jtis.iter().collect::<HashSet<_>>().len(), 3, "{jtis:?}");
}

#[tokio::test]
async fn an_assertion_from_another_key_is_rejected() {
    let seen = Arc::new(Seen::default());
    seen.calls.store(1, Ordering::SeqCst);
    let url = start(Arc::clone(&seen)).await;
    let provider = oauth2::Builder::client_credentials_grant(&url)
        .build_with_assertion(ClientAssertion::private_key_jwt(
            "my-app",
            SigningKey::generate(Algorithm::ES256).unwrap(),
        ))
        .unwrap();
    let transport = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let svc = AuthLayer::new(provider, transport).layer(upstream());
    let err = get(&svc).await.unwrap_err();
    let err = err.downcast_ref::<AuthError>().unwrap();
    assert_eq!(err.kind(), ErrorKind::LoginRejected);
    assert!(err.to_string().contains("invalid_client"), "{err}");
}
