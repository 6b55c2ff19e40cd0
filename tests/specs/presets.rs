//! Conformance: each preset against its API's local emulation, over real HTTP, through the tower
//! layer on a hyper-util client and (feature `reqwest`) through reqwest with the middleware.

use std::time::Duration;

use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt};
use tower_token_auth::provider::oauth2;
use tower_token_auth::provider::HttpProvider;
use tower_token_auth::{AuthError, AuthLayer, ErrorKind};
use tower_token_auth_emulation::{Api, Config, Emulation, Fault};

use crate::support::emulated::{
    client, get, preset, preset_with, spec_provider, Authed, SpecFormat,
};

/// Where the provider comes from: the preset, or its spec file read by the test.
#[derive(Clone, Copy, Debug)]
enum Source {
    Preset,
    Spec(SpecFormat),
}

impl Source {
    fn provider(self, api: Api, emulation: &Emulation) -> HttpProvider {
        match self {
            Source::Preset => preset(api, emulation),
            Source::Spec(format) => spec_provider(api, emulation, format),
        }
    }
}

/// Which client sends the requests (and the auth calls).
#[derive(Clone, Copy, Debug)]
enum Via {
    /// The tower layer over hyper-util.
    Tower,
    /// reqwest with the middleware; auth calls through reqwest too.
    #[cfg(feature = "reqwest")]
    Reqwest,
}

/// A client with the layer's token on every request.
#[derive(Clone)]
enum Sender {
    Tower(Box<Authed>),
    #[cfg(feature = "reqwest")]
    Reqwest(reqwest_middleware::ClientWithMiddleware),
}

impl Sender {
    /// GETs `url` and reads the body to the end.
    async fn get(&self, url: &str) -> Result<StatusCode, tower::BoxError> {
        match self {
            Sender::Tower(svc) => {
                let request = Request::get(url).body(Full::default())?;
                let response = (**svc).clone().oneshot(request).await?;
                let status = response.status();
                response.into_body().collect().await?;
                Ok(status)
            }
            #[cfg(feature = "reqwest")]
            Sender::Reqwest(client) => {
                let response = client.get(url).send().await?;
                let status = response.status();
                response.bytes().await?;
                Ok(status)
            }
        }
    }
}

async fn start(api: Api, config: Config) -> (Emulation, AuthLayer, Authed) {
    start_from(api, config, Source::Preset).await
}

async fn start_from(api: Api, config: Config, source: Source) -> (Emulation, AuthLayer, Authed) {
    let emulation = Emulation::start(api, config)
        .await
        .expect("emulation starts");
    let client = client();
    let layer = AuthLayer::new(source.provider(api, &emulation), client.clone());
    let svc = layer.layer(client);
    (emulation, layer, svc)
}

async fn start_via(
    api: Api,
    config: Config,
    via: Via,
    source: Source,
) -> (Emulation, AuthLayer, Sender) {
    match via {
        Via::Tower => {
            let (emulation, layer, svc) = start_from(api, config, source).await;
            (emulation, layer, Sender::Tower(Box::new(svc)))
        }
        #[cfg(feature = "reqwest")]
        Via::Reqwest => {
            use tower_token_auth::reqwest::{AuthMiddleware, ReqwestTransport};
            let emulation = Emulation::start(api, config)
                .await
                .expect("emulation starts");
            let transport = ReqwestTransport::new(reqwest::Client::builder()).expect("client");
            let layer = AuthLayer::new(source.provider(api, &emulation), transport);
            let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(AuthMiddleware::new(layer.handle()))
                .build();
            (emulation, layer, Sender::Reqwest(client))
        }
    }
}

async fn all_ok(sender: &Sender, emulation: &Emulation, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (sender, url) = (sender.clone(), emulation.resource_url());
            tokio::spawn(async move { sender.get(&url).await })
        })
        .collect();
    for task in tasks {
        let status = task.await.expect("request task").expect("request succeeds");
        assert_eq!(status, StatusCode::OK);
    }
}

/// Login, refresh on a dead token with replay, rotation, fallback to login, no protocol violation.
async fn lifecycle(api: Api, via: Via, source: Source) {
    let (emulation, layer, sender) = start_via(api, Config::default(), via, source).await;
    let url = emulation.resource_url();

    all_ok(&sender, &emulation, 32).await;
    let stats = emulation.stats();
    assert_eq!(
        (stats.logins, stats.refreshes),
        (1, 0),
        "{api:?}: one login for 32 requests"
    );

    // Tokens die early: the 401 triggers one refresh, and the requests are replayed.
    emulation.revoke_access_tokens();
    all_ok(&sender, &emulation, 16).await;
    let stats = emulation.stats();
    assert_eq!((stats.logins, stats.refreshes), (1, 1), "{api:?}");
    assert!(layer.handle().metrics().replays >= 1, "{api:?}");

    // Again: the rotated refresh token is the one sent now (reuse would count a violation).
    emulation.revoke_access_tokens();
    assert_eq!(sender.get(&url).await.unwrap(), StatusCode::OK);
    assert_eq!(emulation.stats().refreshes, 2, "{api:?}");

    // The refresh token dies too: refresh rejected, fall back to login.
    emulation.revoke_refresh_tokens();
    emulation.revoke_access_tokens();
    assert_eq!(sender.get(&url).await.unwrap(), StatusCode::OK);
    let stats = emulation.stats();
    assert_eq!((stats.logins, stats.refreshes), (2, 2), "{api:?}");
    assert_eq!(
        (stats.rejected_refreshes, stats.rejected_logins),
        (1, 0),
        "{api:?}"
    );
    assert_eq!(stats.violations, 0, "{api:?}: {stats:?}");
    let metrics = layer.handle().metrics();
    assert_eq!(
        (metrics.logins, metrics.refreshes, metrics.auth_failures),
        (2, 3, 1)
    );
}

/// Short-lived tokens under steady concurrent load: renewed by expiry, never a failed request,
/// never a protocol violation (for intergiro: never a premature refresh).
async fn steady_load(api: Api, via: Via, source: Source) {
    let config = Config {
        access_lifetime: Duration::from_secs(2),
        ..Config::default()
    };
    let (emulation, layer, sender) = start_via(api, config, via, source).await;
    let until = tokio::time::Instant::now() + Duration::from_millis(4500);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (sender, url) = (sender.clone(), emulation.resource_url());
            tokio::spawn(async move {
                let mut sent = 0u32;
                while tokio::time::Instant::now() < until {
                    let status = sender.get(&url).await.expect("request succeeds");
                    assert_eq!(status, StatusCode::OK);
                    sent += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                sent
            })
        })
        .collect();
    let mut sent = 0;
    for worker in workers {
        sent += worker.await.expect("worker");
    }
    let stats = emulation.stats();
    assert!(sent > 100, "{api:?}: {sent}");
    assert_eq!(stats.logins, 1, "{api:?}: {stats:?}");
    assert!(stats.refreshes >= 2, "{api:?}: {stats:?}");
    assert_eq!(stats.violations, 0, "{api:?}: {stats:?}");
    assert_eq!(stats.resource_ok, u64::from(sent), "{api:?}");
    assert_eq!(layer.handle().metrics().refreshes, stats.refreshes);
}

macro_rules! conformance {
    ($($name:ident => $api:expr),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn lifecycle() {
                super::lifecycle($api, Via::Tower, Source::Preset).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn steady_load() {
                super::steady_load($api, Via::Tower, Source::Preset).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn lifecycle_from_toml_spec() {
                super::lifecycle($api, Via::Tower, Source::Spec(SpecFormat::Toml)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn lifecycle_from_json_spec() {
                super::lifecycle($api, Via::Tower, Source::Spec(SpecFormat::Json)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn steady_load_from_toml_spec() {
                super::steady_load($api, Via::Tower, Source::Spec(SpecFormat::Toml)).await;
            }

            #[cfg(feature = "reqwest")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn lifecycle_through_reqwest() {
                super::lifecycle($api, Via::Reqwest, Source::Preset).await;
            }

            #[cfg(feature = "reqwest")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn lifecycle_from_toml_spec_through_reqwest() {
                super::lifecycle($api, Via::Reqwest, Source::Spec(SpecFormat::Toml)).await;
            }

            #[cfg(feature = "reqwest")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn steady_load_through_reqwest() {
                super::steady_load($api, Via::Reqwest, Source::Preset).await;
            }
        }
    )*};
}

conformance! {
    union_service => Api::UnionService,
    simacan => Api::Simacan,
    oli => Api::Oli,
    tradecloud => Api::Tradecloud,
    intergiro => Api::Intergiro,
    oauth2_password => Api::OAuth2,
}

fn auth_error(err: &tower::BoxError) -> &AuthError {
    err.downcast_ref::<AuthError>().expect("an AuthError")
}

#[tokio::test]
async fn wrong_credentials_are_login_rejected_for_every_preset() {
    for api in Api::ALL {
        let config = Config {
            password: "not-the-password".into(),
            api_key: "not-the-key".into(),
            ..Config::default()
        };
        let emulation = Emulation::start(api, Config::default()).await.unwrap();
        let client = client();
        let provider = preset_with(api, &emulation.base_url(), &config);
        let layer = AuthLayer::new(provider, client.clone());
        let svc = layer.layer(client);
        let err = get(&svc, &emulation).await.unwrap_err();
        assert_eq!(
            auth_error(&err).kind(),
            ErrorKind::LoginRejected,
            "{api:?}: {err}"
        );
        // union-service answers a wrong password as it answers its own faults (a JSON 500): an
        // ambiguous answer, a rejection once it comes three times in a row.
        let sends = if api == Api::UnionService { 3 } else { 1 };
        if sends > 1 {
            assert!(
                err.to_string()
                    .ends_with("the same answer 3 times in a row"),
                "{err}"
            );
        }
        let err = get(&svc, &emulation).await.unwrap_err();
        assert!(auth_error(&err).retry_in().is_some(), "{api:?}");
        let stats = emulation.stats();
        assert_eq!(
            (stats.logins, stats.rejected_logins),
            (0, sends),
            "{api:?}: no hammering"
        );
        assert_eq!(emulation.stats().violations, 0, "{api:?}");
    }
}

#[tokio::test]
async fn tradecloud_success_without_tokens_is_an_error() {
    let emulation = Emulation::start(Api::Tradecloud, Config::default())
        .await
        .expect("emulation starts");
    let client = client();
    let layer = AuthLayer::builder(preset(Api::Tradecloud, &emulation))
        // Short enough for the test to wait out.
        .rejection_backoff(Duration::from_millis(300), Duration::from_millis(300))
        .build(client.clone());
    let svc = layer.layer(client);
    emulation.set_fault(Some(Fault::Status(200, "", "text/plain")));
    // Unusable: retried inside the flight, five times in a row, then backed off like a
    // rejection with the answer's own kind: no login every second for as long as it lasts.
    let err = get(&svc, &emulation).await.unwrap_err();
    let err = auth_error(&err);
    assert_eq!(err.kind(), ErrorKind::Malformed, "{err}");
    assert!(err.retry_in().is_none(), "{err}");
    assert_eq!(layer.handle().metrics().logins, 5);
    let again = get(&svc, &emulation).await.unwrap_err();
    assert!(auth_error(&again).retry_in().is_some(), "{again}");
    assert_eq!(layer.handle().metrics().logins, 5, "failing fast");
    // Once the API answers properly, the first request after the backoff is served.
    emulation.set_fault(None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);
    assert_eq!(layer.handle().metrics().logins, 6);
}

#[tokio::test]
async fn intergiro_never_refreshes_a_valid_token() {
    let config = Config {
        access_lifetime: Duration::from_secs(2),
        ..Config::default()
    };
    let (emulation, _layer, svc) = start(Api::Intergiro, config).await;
    for _ in 0..15 {
        assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 1.5 s into a 2 s token: nothing was sent to /auth/refresh.
    assert_eq!(emulation.stats().refreshes, 0);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);
    let stats = emulation.stats();
    assert_eq!((stats.logins, stats.refreshes, stats.violations), (1, 1, 0));
}

#[tokio::test]
async fn oauth2_client_credentials_logs_in_again_without_refresh_token() {
    for auth in [
        oauth2::ClientAuth::SecretBasic,
        oauth2::ClientAuth::SecretPost,
    ] {
        let emulation = Emulation::start(Api::OAuth2, Config::default())
            .await
            .unwrap();
        let c = emulation.config();
        let provider = oauth2::Builder::client_credentials(
            &emulation.base_url(),
            &c.client_id,
            c.client_secret.clone(),
        )
        .client_auth(auth)
        .scope("read write")
        .build()
        .unwrap();
        let client = client();
        let svc = AuthLayer::new(provider, client.clone()).layer(client);
        assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);
        emulation.revoke_access_tokens();
        assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);
        let stats = emulation.stats();
        assert_eq!(
            (stats.logins, stats.refreshes, stats.violations),
            (2, 0, 0),
            "{auth:?}"
        );
    }
}

#[tokio::test]
async fn oauth2_non_rotating_refresh_keeps_the_refresh_token() {
    let config = Config {
        rotate_refresh_tokens: false,
        ..Config::default()
    };
    let (emulation, _layer, svc) = start(Api::OAuth2, config).await;
    assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);
    for _ in 0..3 {
        emulation.revoke_access_tokens();
        assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);
    }
    let stats = emulation.stats();
    assert_eq!((stats.logins, stats.refreshes, stats.violations), (1, 3, 0));
}

#[tokio::test]
async fn oauth2_error_bodies_reach_the_error_message() {
    let (emulation, _layer, svc) = start(Api::Oli, Config::default()).await;
    emulation.set_fault(Some(Fault::Status(
        400,
        r#"{"error":"invalid_grant","error_description":"Account disabled"}"#,
        "application/json",
    )));
    let err = get(&svc, &emulation).await.unwrap_err();
    let err = auth_error(&err);
    assert!(err.kind() == ErrorKind::LoginRejected);
    assert!(
        err.to_string().contains("invalid_grant (Account disabled)"),
        "{err}"
    );
    assert!(
        !err.to_string().contains(&emulation.config().password),
        "{err}"
    );
}

/// RFC 8707: a token requested for a resource (and an audience) is one the resource, which
/// requires it, accepts, after a login and after refreshes alike; a token requested for nothing
/// is refused there.
#[tokio::test]
async fn oauth2_tokens_requested_for_a_resource_are_accepted_by_it() {
    const API: &str = "https://orders.example.com/";
    for (resource, accepted) in [(Some(API), true), (None, false)] {
        let config = Config {
            extensions: tower_token_auth_emulation::OAuthExtensions {
                resource_indicators: true,
                resource_audience: Some(API.to_owned()),
                ..Default::default()
            },
            ..Config::default()
        };
        let emulation = Emulation::start(Api::OAuth2, config).await.unwrap();
        let c = emulation.config();
        let mut builder =
            oauth2::Builder::password(&emulation.base_url(), &c.username, c.password.clone())
                .confidential_client(&c.client_id, c.client_secret.clone())
                .audience("orders");
        if let Some(resource) = resource {
            builder = builder.resource(resource);
        }
        let client = client();
        let layer = AuthLayer::new(builder.build().unwrap(), client.clone());
        let svc = layer.layer(client.clone());
        if !accepted {
            assert_eq!(
                get(&svc, &emulation).await.unwrap(),
                StatusCode::UNAUTHORIZED
            );
            continue;
        }
        assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);
        for _ in 0..2 {
            layer.handle().force_refresh().await.unwrap();
            assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);
        }
        let stats = emulation.stats();
        assert_eq!(
            (stats.logins, stats.refreshes, stats.violations),
            (1, 2, 0),
            "{:?}",
            emulation.violation_reasons()
        );
    }
}
