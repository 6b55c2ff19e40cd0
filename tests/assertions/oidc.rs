//! Against a real OpenID provider (panva's oidc-provider, certified by the OpenID Foundation):
//! every secret and key method of client authentication (`client_secret_basic`,
//! `client_secret_post`, `client_secret_jwt`, `private_key_jwt`), discovery from the issuer,
//! revocation, and DPoP with nonces; the tokens taken by resources that look them up in the
//! provider. (Mutual TLS against the same provider: `tests/mtls/oidc.rs`; under faults:
//! `oidc_faults.rs`, and through the adapters `oidc_reqwest.rs` and `oidc_grpc.rs`.)

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt};
use tower_token_auth::provider::oauth2::{Builder, ClientAssertion, ClientAuth};
use tower_token_auth::provider::HttpProvider;
use tower_token_auth::{AuthLayer, AuthService};

use crate::oidc_method::{server, Method};
use crate::support::emulated::{client, HttpClient};
use crate::support::oidc_runs::serves_and_survives_revocations;
use crate::support::oidc_server::{OidcServer, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_discovery_and_revocation_against_oidc_provider() {
    let server = server(false);
    let layer = Method::PrivateKeyJwt.layer(&server);
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
    let server = server(false);
    let layer = Method::Dpop.layer(&server);
    let handle = layer.handle();
    let svc = layer.layer(client());
    let resource = server.dpop_resource();
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
    // The provider's side: the same challenges, every request served with a live bound token.
    let stats = server.stats().await;
    assert_eq!(
        (
            stats.logins("orders"),
            stats.token_errors("use_dpop_nonce"),
            stats.nonce_challenges
        ),
        (2, 1, 1),
        "{stats:?}"
    );
    assert_eq!(
        (stats.served("orders"), stats.refused),
        (31, 0),
        "{stats:?}"
    );
    assert!(stats.violations.is_empty(), "{stats:?}");
}

/// The provider for `client`, which authenticates with its secret as `auth` says, its endpoints
/// from the issuer's metadata (which must list the method).
fn secret_client(server: &OidcServer, client: &str, auth: ClientAuth) -> HttpProvider {
    let issuer = server.issuer();
    Builder::client_credentials(issuer, client, server.secret(client))
        .client_auth(auth)
        .discover(issuer)
        .scope("read")
        .build()
        .unwrap()
}

/// A GET of `url` through the tower service `svc`: its status, the body read.
pub(crate) async fn get(svc: &AuthService<HttpClient>, url: &str) -> StatusCode {
    let request = Request::get(url).body(Full::<Bytes>::default()).unwrap();
    let response = svc.clone().oneshot(request).await.unwrap();
    let status = response.status();
    response.into_body().collect().await.unwrap();
    status
}

/// A layer on `provider` and its tower service, run through the common course.
async fn through_the_tower_layer(server: &OidcServer, client_id: &str, provider: HttpProvider) {
    let layer = AuthLayer::new(provider, client());
    let svc = layer.layer(client());
    let url = server.bearer_resource(client_id);
    serves_and_survives_revocations(server, client_id, &layer.handle(), || get(&svc, &url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_basic_against_oidc_provider() {
    let server = OidcServer::with(Options::default());
    let provider = secret_client(&server, "orders-basic", ClientAuth::SecretBasic);
    through_the_tower_layer(&server, "orders-basic", provider).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_post_against_oidc_provider() {
    let server = OidcServer::with(Options::default());
    let provider = secret_client(&server, "orders-post", ClientAuth::SecretPost);
    through_the_tower_layer(&server, "orders-post", provider).await;
}

/// `private_key_jwt` (ES256, `aud` the issuer) through the same course as the secret methods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_against_oidc_provider() {
    let server = server(false);
    let layer = Method::PrivateKeyJwt.layer(&server);
    let svc = layer.layer(client());
    let url = server.bearer_resource("orders");
    serves_and_survives_revocations(&server, "orders", &layer.handle(), || get(&svc, &url)).await;
}

/// `client_secret_jwt`: HS256 assertions keyed with the secret (43 characters), whose `aud` is
/// the issuer, a fresh `jti` each (the provider refuses one seen before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_jwt_against_oidc_provider() {
    let server = OidcServer::with(Options::default());
    let issuer = server.issuer();
    let assertion = ClientAssertion::client_secret_jwt("orders-jwt", server.secret("orders-jwt"))
        .audience(issuer);
    let provider = Builder::client_credentials_grant(issuer)
        .discover(issuer)
        .scope("read")
        .build_with_assertion(assertion)
        .unwrap();
    let layer = AuthLayer::new(provider, client());
    let svc = layer.layer(client());
    let url = server.bearer_resource("orders-jwt");
    serves_and_survives_revocations(&server, "orders-jwt", &layer.handle(), || get(&svc, &url))
        .await;
}

/// Secrets the provider does not take: a wrong one, and the secret of a `client_secret_jwt`
/// client sent itself (in HTTP Basic) instead of keying an assertion. Each login is
/// `invalid_client`, a typed `LoginRejected`, and no token is issued. (oidc-provider takes a
/// `client_secret_basic` client's secret in the body as well, and a `client_secret_post`
/// client's in HTTP Basic: those two are one method to it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_oidc_provider_does_not_take_are_refused() {
    let server = OidcServer::with(Options::default());
    let issuer = server.issuer();
    let wrong = Builder::client_credentials(issuer, "orders-basic", "not-the-secret")
        .discover(issuer)
        .build()
        .unwrap();
    let unsigned = secret_client(&server, "orders-jwt", ClientAuth::SecretBasic);
    for provider in [wrong, unsigned] {
        let layer = AuthLayer::new(provider, client());
        let error = layer.handle().token().await.unwrap_err();
        assert_eq!(
            error.kind(),
            tower_token_auth::ErrorKind::LoginRejected,
            "{error}"
        );
    }
    let stats = server.stats().await;
    assert!(stats.logins.is_empty(), "{stats:?}");
    assert_eq!(stats.token_errors("invalid_client"), 2, "{stats:?}");
}

/// `client_secret_basic` through the reqwest adapter: the auth calls by a [`ReqwestTransport`],
/// the requests by [`AuthMiddleware`] on the layer's session, the same course as the tower
/// layer's.
///
/// [`ReqwestTransport`]: tower_token_auth::reqwest::ReqwestTransport
/// [`AuthMiddleware`]: tower_token_auth::reqwest::AuthMiddleware
#[cfg(feature = "reqwest")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_basic_through_reqwest_against_oidc_provider() {
    use crate::oidc_reqwest::middleware_client;
    use crate::support::reqwest_get as get;
    use tower_token_auth::reqwest::ReqwestTransport;

    let server = OidcServer::with(Options::default());
    let provider = secret_client(&server, "orders-basic", ClientAuth::SecretBasic);
    let transport = ReqwestTransport::new(reqwest::Client::builder()).unwrap();
    let layer = AuthLayer::new(provider, transport);
    let client = middleware_client(&layer);
    let url = server.bearer_resource("orders-basic");
    let get = || get(&client, &url);
    serves_and_survives_revocations(&server, "orders-basic", &layer.handle(), get).await;
}
