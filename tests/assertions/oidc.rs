//! Against a real OpenID provider (panva's oidc-provider, certified by the OpenID Foundation):
//! `private_key_jwt` client authentication, discovery from the issuer, revocation.

use tower_token_auth::provider::oauth2::{Builder, ClientAssertion};
use tower_token_auth::AuthLayer;

use crate::support::emulated::client;
use crate::support::oidc_server::OidcServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_discovery_and_revocation_against_oidc_provider() {
    let key =
        tower_token_auth::jose::SigningKey::from_jwk(&crate::key_file("es256.jwk.json")).unwrap();
    let server = OidcServer::start(&serde_json::json!({ "keys": [key.public_jwk()] }));
    let issuer = server.issuer();
    let provider = Builder::client_credentials_grant(issuer)
        .discover(issuer)
        .scope("read")
        .build_with_assertion(ClientAssertion::private_key_jwt("orders", key).audience(issuer))
        .unwrap();
    let layer = AuthLayer::new(provider, client());
    let handle = layer.handle();

    let first = handle.token().await.unwrap();
    // A second login: a second, fresh assertion (a replayed one would be refused).
    let second = handle.force_refresh().await.unwrap();
    assert!(second.generation() > first.generation());
    assert_ne!(
        second.access_token().expose(),
        first.access_token().expose()
    );
    // Revoked at the endpoint the metadata names; the next call logs in again.
    handle.revoke().await.unwrap();
    let third = handle.token().await.unwrap();
    assert!(third.generation() > second.generation());
    let metrics = handle.metrics();
    assert_eq!(
        (
            metrics.logins,
            metrics.refreshes,
            metrics.discoveries,
            metrics.revocations
        ),
        (3, 0, 1, 1),
        "{metrics:?}"
    );
    assert_eq!(metrics.auth_failures, 0, "{metrics:?}");
}
