//! Tokens only where they belong (`TokenPolicy::origins`): over real HTTP, the emulation's API
//! and a second server on another port, through the tower layer and the reqwest middleware. A
//! request to the second server carries no token (or fails before it goes out, with
//! `refuse_others`), costs no auth call, and the API keeps getting its token.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tower::{Layer, ServiceExt};
use tower_token_auth::provider::Origins;
use tower_token_auth::{AuthLayer, ErrorKind};
use tower_token_auth_emulation::{Api, Config, Emulation};

use crate::support::auth_error;
use crate::support::emulated::{client, preset};

/// A server answering 200 to everything, recording each request's `Authorization` header.
async fn other_server() -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/elsewhere", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<_>| {
                    let header = request
                        .headers()
                        .get(http::header::AUTHORIZATION)
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                    log.lock().unwrap().push(header);
                    async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, seen)
}

async fn setup(
    refuse: bool,
) -> (
    Emulation,
    AuthLayer,
    String,
    Arc<Mutex<Vec<Option<String>>>>,
) {
    let emulation = Emulation::start(Api::OAuth2, Config::default())
        .await
        .unwrap();
    let (other, seen) = other_server().await;
    let api = format!("http://{}", emulation.addr());
    let mut origins = Origins::new([api.as_str()]).unwrap();
    if refuse {
        origins = origins.refuse_others();
    }
    let layer = AuthLayer::builder(preset(Api::OAuth2, &emulation))
        .with_policy(move |p| p.origins = Some(origins))
        .build(client());
    (emulation, layer, other, seen)
}

async fn send<S>(svc: &S, url: &str) -> Result<StatusCode, tower::BoxError>
where
    S: tower::Service<
            Request<Full<Bytes>>,
            Response = Response<hyper::body::Incoming>,
            Error = tower::BoxError,
        > + Clone,
{
    let request = Request::get(url).body(Full::default()).unwrap();
    let response = svc.clone().oneshot(request).await?;
    let status = response.status();
    response.into_body().collect().await.unwrap();
    Ok(status)
}

#[tokio::test]
async fn the_tower_layer_sends_the_token_only_to_its_origins() {
    let (emulation, layer, other, seen) = setup(false).await;
    let svc = layer.layer(client());
    assert_eq!(send(&svc, &other).await.unwrap(), StatusCode::OK);
    assert_eq!(
        layer.handle().metrics().logins,
        0,
        "no auth call for another origin"
    );
    assert_eq!(
        send(&svc, &emulation.resource_url()).await.unwrap(),
        StatusCode::OK
    );
    assert_eq!(send(&svc, &other).await.unwrap(), StatusCode::OK);
    assert_eq!(*seen.lock().unwrap(), vec![None, None]);
    let s = emulation.stats();
    assert_eq!((s.logins, s.resource_ok), (1, 1));
}

#[tokio::test]
async fn the_tower_layer_refuses_other_origins_when_told_to() {
    let (emulation, layer, other, seen) = setup(true).await;
    let svc = layer.layer(client());
    let err = send(&svc, &other).await.unwrap_err();
    assert_eq!(auth_error(&err).kind(), ErrorKind::Config);
    assert_eq!(
        send(&svc, &emulation.resource_url()).await.unwrap(),
        StatusCode::OK
    );
    assert!(seen.lock().unwrap().is_empty(), "nothing went out");
    assert_eq!(emulation.stats().logins, 1);
}

#[cfg(feature = "reqwest")]
#[tokio::test]
async fn the_reqwest_middleware_sends_the_token_only_to_its_origins() {
    use tower_token_auth::reqwest::AuthMiddleware;

    for refuse in [false, true] {
        let (emulation, layer, other, seen) = setup(refuse).await;
        let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(AuthMiddleware::new(layer.handle()))
            .build();
        let outside = http.get(&other).send().await;
        match refuse {
            false => assert_eq!(outside.unwrap().status(), StatusCode::OK),
            true => {
                let err = outside.unwrap_err();
                let reqwest_middleware::Error::Middleware(inner) = &err else {
                    panic!("{err}")
                };
                let auth = inner.downcast_ref::<tower_token_auth::AuthError>().unwrap();
                assert_eq!(auth.kind(), ErrorKind::Config);
            }
        }
        let response = http.get(emulation.resource_url()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let expected: Vec<Option<String>> = if refuse { vec![] } else { vec![None] };
        assert_eq!(*seen.lock().unwrap(), expected);
        assert_eq!(emulation.stats().logins, 1);
    }
}
