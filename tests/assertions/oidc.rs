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

/// DPoP against the same provider, which demands its nonce at the token endpoint, and its
/// protected resource (`/resource`, proofs verified by `jose`, tokens looked up in the
/// provider): the login is challenged once and sent again with a fresh assertion, the first
/// request once; 30 requests served with one DPoP-bound token; after a revocation, a new login
/// (its nonce already known) serves the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_with_nonces_against_oidc_provider() {
    use bytes::Bytes;
    use http::{Request, StatusCode};
    use http_body_util::{BodyExt, Full};
    use tower::{Layer, ServiceExt};
    use tower_token_auth::jose::{Algorithm, DpopKey, SigningKey};

    let key = SigningKey::from_jwk(&crate::key_file("es256.jwk.json")).unwrap();
    let server = OidcServer::start(&serde_json::json!({ "keys": [key.public_jwk()] }));
    let issuer = server.issuer();
    let provider = Builder::client_credentials_grant(issuer)
        .discover(issuer)
        .scope("read")
        .build_with_assertion(ClientAssertion::private_key_jwt("orders", key).audience(issuer))
        .unwrap();
    let dpop = DpopKey::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
    let layer = AuthLayer::builder(provider)
        .with_policy(move |p| p.dpop = Some(dpop))
        .build(client());
    let handle = layer.handle();
    let svc = layer.layer(client());
    let resource = format!("{issuer}/resource");
    let get = || async {
        let request = Request::get(&resource)
            .body(Full::<Bytes>::default())
            .unwrap();
        let response = svc.clone().oneshot(request).await.unwrap();
        let status = response.status();
        response.into_body().collect().await.unwrap();
        status
    };
    for _ in 0..30 {
        assert_eq!(get().await, StatusCode::OK);
    }
    let token = handle.current().unwrap();
    assert!(token.header_value().to_str().unwrap().starts_with("DPoP "));
    handle.revoke().await.unwrap();
    assert_eq!(get().await, StatusCode::OK);
    let m = handle.metrics();
    assert_eq!(
        (m.logins, m.discoveries, m.revocations, m.replays),
        (2, 1, 1, 0),
        "{m:?}"
    );
    // The first login's and the first request's challenges; the second login knew the nonce.
    assert_eq!(m.dpop_nonce_retries, 2, "{m:?}");
    assert_eq!(m.auth_failures, 0, "{m:?}");
}
