//! reqwest with the middleware, over real HTTP against the union-service emulation: one session
//! with the tower layer, the replay rule, typed errors, no redirect followed.
#![cfg(feature = "reqwest")]

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tower::Layer;
use tower_token_auth::reqwest::{AuthMiddleware, ReqwestTransport};
use tower_token_auth::{AuthLayer, ErrorKind};
use tower_token_auth_emulation::{Api, Config, Emulation, Fault};

use crate::support::emulated::{client, get_concurrently, preset_with};

/// The [`AuthError`](tower_token_auth::AuthError) in a middleware error (the downcast the
/// module docs show).
fn auth_error(error: &reqwest_middleware::Error) -> Option<&tower_token_auth::AuthError> {
    match error {
        reqwest_middleware::Error::Middleware(inner) => inner.downcast_ref(),
        _ => None,
    }
}

const API: Api = Api::UnionService;

/// The emulation, with tokens that live an hour (nothing expires during a test).
async fn emulation(password: &str) -> (Emulation, Config) {
    let config = Config {
        access_lifetime: Duration::from_secs(3600),
        refresh_lifetime: Duration::from_secs(7200),
        ..Config::default()
    };
    let emulation = Emulation::start(API, config.clone())
        .await
        .expect("emulation starts");
    let credentials = Config {
        password: password.to_owned(),
        ..config
    };
    (emulation, credentials)
}

fn reqwest_client(layer: &AuthLayer) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::new(layer.handle()))
        .build()
}

/// `n` GETs of the resource through reqwest, at once; their statuses.
async fn reqwest_concurrently(
    client: &ClientWithMiddleware,
    url: &str,
    n: usize,
) -> Vec<StatusCode> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
        })
        .collect();
    let mut statuses = Vec::with_capacity(n);
    for task in tasks {
        statuses.push(task.await.expect("task").expect("request succeeds"));
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_and_the_tower_layer_share_one_session() {
    let (emulation, config) = emulation(&Config::default().password).await;
    let provider = preset_with(API, &emulation.base_url(), &config);
    let layer = AuthLayer::new(provider, client());
    let svc = layer.layer(client());
    let reqwest = reqwest_client(&layer);
    let url = emulation.resource_url();

    for round in 0..3 {
        let (tower, reqwest) = tokio::join!(
            get_concurrently(&svc, &emulation, 200),
            reqwest_concurrently(&reqwest, &url, 200)
        );
        assert!(tower.iter().chain(&reqwest).all(|s| *s == StatusCode::OK));
        let stats = emulation.stats();
        // One login, then one refresh per revocation, whoever saw the 401 first.
        assert_eq!((stats.logins, stats.refreshes), (1, round), "{stats:?}");
        assert_eq!(stats.violations, 0, "{stats:?}");
        emulation.revoke_access_tokens();
    }
    let tokens = emulation.resource_tokens();
    assert_eq!(tokens.len(), 3, "three tokens, each shared by both clients");
}

#[tokio::test]
async fn a_request_whose_body_cannot_be_copied_is_sent_once() {
    let (emulation, config) = emulation(&Config::default().password).await;
    let provider = preset_with(API, &emulation.base_url(), &config);
    let layer = AuthLayer::new(provider, client());
    let reqwest = reqwest_client(&layer);
    let url = emulation.resource_url();
    assert_eq!(
        reqwest.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );

    emulation.revoke_access_tokens();
    let streamed = reqwest::Body::wrap(Full::new(Bytes::from_static(b"a stream")));
    let response = reqwest.post(&url).body(streamed).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(layer.handle().metrics().replays, 0);

    // The rejected token was retired: the next request gets a new one, without a replay.
    assert_eq!(
        reqwest.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
    let stats = emulation.stats();
    assert_eq!(
        (stats.logins, stats.refreshes, stats.resource_unauthorized),
        (1, 1, 1)
    );
    assert_eq!(layer.handle().metrics().replays, 0);

    // A copyable body is replayed.
    emulation.revoke_access_tokens();
    let response = reqwest.post(&url).body("a copy").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(layer.handle().metrics().replays, 1);
    assert_eq!(emulation.stats().refreshes, 2);
}

/// Three tokens in a row die while one request is on its way with each, every one of them after
/// serving other requests through the middleware: the request goes out a fourth time (it ended
/// with the third 401 at `max_sends`) and succeeds. The emulation holds the request's answers so
/// that another request meets each token's death first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_meeting_three_revoked_tokens_is_replayed_with_a_fourth() {
    let (emulation, config) = emulation(&Config::default().password).await;
    let provider = preset_with(API, &emulation.base_url(), &config);
    let layer = AuthLayer::new(provider, client());
    let reqwest = reqwest_client(&layer);
    let url = emulation.resource_url();
    let get = |reqwest: &ClientWithMiddleware| {
        let (reqwest, url) = (reqwest.clone(), url.clone());
        tokio::spawn(async move { reqwest.get(url).send().await.map(|r| r.status()) })
    };
    let held =
        |n| tokio::time::timeout(Duration::from_secs(10), emulation.wait_for_held_requests(n));

    assert_eq!(get(&reqwest).await.unwrap().unwrap(), StatusCode::OK);
    emulation.revoke_access_tokens();
    emulation.hold_resource_requests(1);
    let request = get(&reqwest);
    held(1).await.expect("the request arrives with token 1");
    for token in 1..=3 {
        // Another request meets the dead token first (one refresh) and is served with the next.
        assert_eq!(get(&reqwest).await.unwrap().unwrap(), StatusCode::OK);
        if token < 3 {
            // The next token dies too; the held 401 goes out, and the request's replay, with the
            // next token, is held in turn.
            emulation.revoke_access_tokens();
            emulation.hold_resource_requests(1);
            held(1).await.expect("the replay arrives");
        } else {
            emulation.hold_resource_requests(0);
        }
    }
    assert_eq!(request.await.unwrap().unwrap(), StatusCode::OK);
    let stats = emulation.stats();
    assert_eq!((stats.logins, stats.refreshes), (1, 3), "{stats:?}");
    // The request's three 401s and the other requests' one each; sent 4 times.
    assert_eq!(
        (stats.resource_unauthorized, stats.resource_ok),
        (6, 5),
        "{stats:?}"
    );
    assert_eq!(layer.handle().metrics().replays, 3 + 3);
    assert_eq!(emulation.resource_tokens().len(), 4);
}

#[tokio::test]
async fn a_rejected_login_is_a_typed_error_and_is_backed_off() {
    let (emulation, config) = emulation("not the password").await;
    let provider = preset_with(API, &emulation.base_url(), &config);
    let transport = ReqwestTransport::new(reqwest::Client::builder()).unwrap();
    let layer = AuthLayer::new(provider, transport);
    let reqwest = reqwest_client(&layer);
    let url = emulation.resource_url();

    for _ in 0..3 {
        let error = reqwest.get(&url).send().await.unwrap_err();
        let auth = auth_error(&error).expect("an auth error");
        assert_eq!(auth.kind(), ErrorKind::LoginRejected);
        assert!(!format!("{error} {error:?}").contains("not the password"));
    }
    // union-service's JSON 500 is ambiguous: a rejection once it came three times in a row.
    let stats = emulation.stats();
    assert_eq!(
        (stats.rejected_logins, stats.resource_ok),
        (3, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn the_reqwest_transport_follows_no_redirect() {
    let (emulation, config) = emulation(&Config::default().password).await;
    emulation.set_fault(Some(Fault::Redirect(307)));
    let provider = preset_with(API, &emulation.base_url(), &config);
    let transport = ReqwestTransport::new(reqwest::Client::builder()).unwrap();
    let layer = AuthLayer::new(provider, transport);
    let reqwest = reqwest_client(&layer);

    let error = reqwest
        .get(emulation.resource_url())
        .send()
        .await
        .unwrap_err();
    assert!(auth_error(&error).is_some(), "{error:?}");
    let stats = emulation.stats();
    assert_eq!(
        (stats.faults, stats.redirects_followed, stats.logins),
        (1, 0, 0)
    );
}

/// reqwest's errors quote the URL; an auth URL whose query holds a secret (a spec's API key) must
/// not reach the error chain through them.
#[tokio::test]
async fn a_failing_auth_call_through_reqwest_does_not_quote_a_secret_query() {
    use tower_token_auth::provider::{Credentials, ProviderSpec};

    // Nothing listens here once the listener is gone.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spec = format!(
        r#"
        [login]
        url = "http://127.0.0.1:{port}/login"
        query = {{ key = "${{api_key}}" }}
        "#
    );
    let credentials = Credentials::new().api_key("key-SECRET-1234");
    let provider = ProviderSpec::from_toml(&spec)
        .and_then(|spec| spec.build(&credentials))
        .unwrap();
    let transport = ReqwestTransport::new(reqwest::Client::builder()).unwrap();
    let layer = AuthLayer::builder(provider)
        .max_wait(Duration::from_millis(300))
        .build(transport);
    let error = reqwest_client(&layer)
        .get(format!("http://127.0.0.1:{port}/resource"))
        .send()
        .await
        .unwrap_err();
    let auth = auth_error(&error).expect("an auth error");
    assert_eq!(auth.kind(), ErrorKind::Unavailable);
    let mut shown = format!("{error} {error:?} {auth:?}");
    let mut source = std::error::Error::source(auth);
    while let Some(cause) = source {
        shown.push_str(&format!(" {cause} {cause:?}"));
        source = cause.source();
    }
    assert!(
        shown.contains("127.0.0.1") || shown.contains("connect"),
        "{shown}"
    );
    assert!(!shown.contains("SECRET"), "{shown}");
}
