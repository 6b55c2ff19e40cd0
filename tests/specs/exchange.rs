//! Token exchange (RFC 8693) through the OAuth2 provider, against the emulation's strict token
//! endpoint and a resource that requires the audience the exchange asks for.

use http::StatusCode;
use tower::Layer;
use tower_token_auth::provider::oauth2;
use tower_token_auth::{AuthError, AuthLayer, ErrorKind, Secret};
use tower_token_auth_emulation::{Api, Config, Emulation, OAuthExtensions, TokenExchange};

use crate::support::emulated::{client, get};

const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const AUDIENCE: &str = "billing";

/// The emulation trusting two service-account tokens as subjects, its resource requiring
/// [`AUDIENCE`].
async fn start() -> Emulation {
    let trusted = ["sa-token-1", "sa-token-2"].map(|token| {
        (
            token.to_owned(),
            format!("system:serviceaccount:ns:{token}"),
        )
    });
    let config = Config {
        extensions: OAuthExtensions {
            token_exchange: Some(TokenExchange {
                trusted_subject_tokens: trusted.to_vec(),
            }),
            resource_audience: Some(AUDIENCE.to_owned()),
            ..OAuthExtensions::default()
        },
        ..Config::default()
    };
    Emulation::start(Api::OAuth2, config).await.unwrap()
}

fn exchanging(
    emulation: &Emulation,
    subject_type: &str,
    subject: impl Fn() -> Result<Secret, AuthError> + Send + Sync + 'static,
) -> AuthLayer {
    let c = emulation.config();
    let provider = oauth2::Builder::token_exchange(&emulation.base_url(), subject_type, subject)
        .confidential_client(&c.client_id, c.client_secret.clone())
        .audience(AUDIENCE)
        .build()
        .unwrap();
    AuthLayer::new(provider, client())
}

#[tokio::test]
async fn a_service_account_token_read_at_each_exchange_is_traded_for_an_audience() {
    let emulation = start().await;
    let dir =
        std::env::temp_dir().join(format!("tower-token-auth-exchange-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "sa-token-1\n").unwrap();
    let read = file.clone();
    let layer = exchanging(&emulation, JWT, move || {
        std::fs::read_to_string(&read)
            .map(|token| Secret::from(token.trim()))
            .map_err(|_| AuthError::config("the service-account token cannot be read"))
    });
    let svc = layer.layer(client());
    assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);

    // The token on disk rotates; renewal is another exchange, with the new one.
    std::fs::write(&file, "sa-token-2\n").unwrap();
    layer.handle().force_refresh().await.unwrap();
    assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);
    let stats = emulation.stats();
    assert_eq!(
        (stats.token_exchanges, stats.refreshes),
        (2, 0),
        "{stats:?}"
    );
    // The layer counts each exchange as a login.
    assert_eq!(layer.handle().metrics().logins, 2);
    assert_eq!(stats.violations, 0, "{:?}", emulation.violation_reasons());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn another_layers_token_is_traded_for_an_audience() {
    let emulation = start().await;
    let c = emulation.config();
    let user = oauth2::Builder::password(&emulation.base_url(), &c.username, c.password.clone())
        .confidential_client(&c.client_id, c.client_secret.clone())
        .build()
        .unwrap();
    let user = AuthLayer::new(user, client()).handle();
    user.token().await.unwrap();
    let subject = user.clone();
    let layer = exchanging(&emulation, ACCESS_TOKEN, move || {
        let token = subject.current();
        token
            .map(|token| token.access_token().clone())
            .ok_or_else(|| AuthError::config("the user's session has no token yet"))
    });
    let svc = layer.layer(client());
    assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);
    let stats = emulation.stats();
    assert_eq!(
        (stats.token_exchanges, stats.violations),
        (1, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn an_unknown_subject_token_is_a_rejected_login() {
    let emulation = start().await;
    let layer = exchanging(&emulation, JWT, || Ok(Secret::from("forged")));
    let error = layer.handle().token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LoginRejected, "{error}");
    assert!(!error.to_string().contains("forged"), "{error}");
    let stats = emulation.stats();
    assert_eq!(
        (stats.token_exchanges, stats.rejected_logins),
        (0, 1),
        "{stats:?}"
    );
}
