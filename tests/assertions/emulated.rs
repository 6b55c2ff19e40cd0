//! Client assertions against the OAuth2 emulation with its client authentication extension on:
//! a strict server that takes only the registered method and checks every claim.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_token_auth::jose::{Algorithm, SigningKey};
use tower_token_auth::provider::oauth2::{self, AssertionProvider, ClientAssertion};
use tower_token_auth::{AuthLayer, AuthService};
use tower_token_auth_emulation::{Api, ClientAuth, Config, Emulation, OAuthExtensions, SigningAlg};

use crate::{key_file, PEM_KEYS};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn start(client_auth: ClientAuth, client_secret: Option<&str>) -> Emulation {
    let mut config = Config {
        extensions: OAuthExtensions {
            client_auth,
            ..OAuthExtensions::default()
        },
        ..Config::default()
    };
    if let Some(secret) = client_secret {
        config.client_secret = secret.to_owned();
    }
    Emulation::start(Api::OAuth2, config).await.unwrap()
}

fn layer(provider: AssertionProvider) -> (AuthLayer, AuthService<HttpClient>) {
    let layer = AuthLayer::new(provider, client());
    let svc = layer.layer(client());
    (layer, svc)
}

async fn get(svc: &AuthService<HttpClient>, emulation: &Emulation) -> StatusCode {
    let request = Request::get(emulation.resource_url())
        .body(Full::default())
        .unwrap();
    let response = svc.clone().oneshot(request).await.unwrap();
    let status = response.status();
    response.into_body().collect().await.unwrap();
    status
}

pub(crate) fn signing_alg(alg: Algorithm) -> SigningAlg {
    match alg {
        Algorithm::ES256 => SigningAlg::ES256,
        Algorithm::RS256 => SigningAlg::RS256,
        Algorithm::PS256 => SigningAlg::PS256,
        _ => SigningAlg::EdDSA,
    }
}

/// `private_key_jwt` with every algorithm, the registered public JWK being the key's own
/// `public_jwk`: two logins, two assertions taken, no violation.
#[tokio::test]
async fn private_key_jwt_with_every_algorithm() {
    for (alg, file, _) in PEM_KEYS {
        let key = SigningKey::from_pkcs8_pem(&key_file(file), alg)
            .unwrap()
            .with_kid("emulated-1");
        let jwk = key.public_jwk();
        let emulation = start(
            ClientAuth::PrivateKeyJwt {
                jwk,
                alg: signing_alg(alg),
            },
            None,
        )
        .await;
        let client_id = emulation.config().client_id.clone();
        let provider = oauth2::Builder::client_credentials_grant(&emulation.base_url())
            .scope("read")
            .build_with_assertion(ClientAssertion::private_key_jwt(&client_id, key))
            .unwrap();
        let (_, svc) = layer(provider);
        assert_eq!(get(&svc, &emulation).await, StatusCode::OK, "{alg}");
        emulation.revoke_access_tokens();
        assert_eq!(get(&svc, &emulation).await, StatusCode::OK, "{alg}");
        let stats = emulation.stats();
        assert_eq!((stats.logins, stats.client_assertions), (2, 2), "{alg}");
        assert_eq!(
            stats.violations,
            0,
            "{alg}: {:?}",
            emulation.violation_reasons()
        );
    }
}

/// The password grant with `private_key_jwt` and the issuer as audience: the refresh carries an
/// assertion of its own.
#[tokio::test]
async fn refresh_with_an_assertion_for_the_issuer() {
    let key = SigningKey::from_jwk(&key_file("es256.jwk.json")).unwrap();
    let emulation = start(
        ClientAuth::PrivateKeyJwt {
            jwk: key.public_jwk(),
            alg: SigningAlg::ES256,
        },
        None,
    )
    .await;
    let c = emulation.config().clone();
    let provider =
        oauth2::Builder::password(&emulation.base_url(), &c.username, c.password.clone())
            .build_with_assertion(
                ClientAssertion::private_key_jwt(&c.client_id, key).audience(&emulation.issuer()),
            )
            .unwrap();
    let (layer, svc) = layer(provider);
    assert_eq!(get(&svc, &emulation).await, StatusCode::OK);
    layer.handle().force_refresh().await.unwrap();
    assert_eq!(get(&svc, &emulation).await, StatusCode::OK);
    let stats = emulation.stats();
    assert_eq!(
        (stats.logins, stats.refreshes, stats.client_assertions),
        (1, 1, 2)
    );
    assert_eq!(stats.violations, 0, "{:?}", emulation.violation_reasons());
}

/// `client_secret_jwt`: HS256 with the registered secret.
#[tokio::test]
async fn client_secret_jwt() {
    let secret = "an-emulated-client-secret-of-40-bytes-xx";
    let emulation = start(ClientAuth::SecretJwt, Some(secret)).await;
    let client_id = emulation.config().client_id.clone();
    let provider = oauth2::Builder::client_credentials_grant(&emulation.base_url())
        .build_with_assertion(ClientAssertion::client_secret_jwt(&client_id, secret))
        .unwrap();
    let (_, svc) = layer(provider);
    assert_eq!(get(&svc, &emulation).await, StatusCode::OK);
    let stats = emulation.stats();
    assert_eq!(stats.client_assertions, 1);
    assert_eq!(stats.violations, 0, "{:?}", emulation.violation_reasons());
}
