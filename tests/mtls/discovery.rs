//! Discovery for an mTLS client: the endpoints come from `mtls_endpoint_aliases`, on the TLS
//! listener's port, not from the plain `token_endpoint`; a server that does not list the
//! method gets no call at all.

use http::StatusCode;
use tower::Layer;
use tower_token_auth::provider::oauth2::{Builder, ClientAuth};
use tower_token_auth::{AuthLayer, ErrorKind};
use tower_token_auth_emulation::{
    Api, ClientAuth as Registered, Config, Discovery, Emulation, OAuthExtensions,
};

use crate::certs::{self, Ca, CLIENT_NAME};
use crate::layer::get;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_takes_the_mtls_aliases_for_token_and_revocation_calls() {
    let ca = Ca::new("clients CA");
    let registered = Registered::TlsClientAuth {
        san_dns: CLIENT_NAME.to_owned(),
    };
    let config = Config {
        extensions: OAuthExtensions {
            discovery: Some(Discovery::default()),
            revocation: true,
            ..OAuthExtensions::default()
        },
        ..Config::default()
    };
    let emulation = certs::emulation(registered, Some(&ca), config).await;
    let client = certs::client(
        emulation.server_ca_pem().unwrap(),
        Some(&ca.client(CLIENT_NAME)),
    );
    let issuer = emulation.issuer();
    let provider = Builder::client_credentials_grant(&issuer)
        .discover(&issuer)
        .public_client(&emulation.config().client_id)
        .client_auth(ClientAuth::TlsClientAuth)
        .build()
        .unwrap();
    let layer = AuthLayer::new(provider, client.clone());
    let svc = layer.layer(client.clone());
    let url = emulation.mtls_resource_url().unwrap();
    for _ in 0..10 {
        assert_eq!(get(&svc, &url).await, StatusCode::OK);
    }
    let handle = layer.handle();
    handle.revoke().await.unwrap();
    assert_eq!(get(&svc, &url).await, StatusCode::OK);

    // A call to the plain endpoints would have come over plain TCP: a violation.
    let stats = emulation.stats();
    assert_eq!(stats.violations, 0, "{:?}", emulation.violation_reasons());
    assert_eq!(
        (
            stats.discovery_fetches,
            stats.logins,
            stats.client_certificates,
            stats.revocation_requests
        ),
        // Two logins and one revocation call (the access token only: no refresh token for
        // client credentials), each authenticated by the certificate.
        (1, 2, 3, 1),
        "{stats:?}"
    );
    let metrics = handle.metrics();
    assert_eq!(
        (
            metrics.discoveries,
            metrics.logins,
            metrics.revocations,
            metrics.auth_failures
        ),
        (1, 2, 1, 0),
        "{metrics:?}"
    );
}

/// Without its TLS listener the emulation lists no mTLS method: the login fails with a
/// `Config` error naming the method, and no token call is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_does_not_list_the_method_gets_no_token_call() {
    let config = Config {
        extensions: OAuthExtensions {
            discovery: Some(Discovery::default()),
            ..OAuthExtensions::default()
        },
        ..Config::default()
    };
    let emulation = Emulation::start(Api::OAuth2, config).await.unwrap();
    let issuer = emulation.issuer();
    let provider = Builder::client_credentials_grant(&issuer)
        .discover(&issuer)
        .public_client(&emulation.config().client_id)
        .client_auth(ClientAuth::SelfSignedTlsClientAuth)
        .build()
        .unwrap();
    let client = certs::client(&Ca::new("unused").pem, Some(&certs::self_signed("orders")));
    let layer = AuthLayer::new(provider, client);
    let error = layer.handle().token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config, "{error}");
    assert!(
        error.to_string().contains(
            "does not support the client authentication method `self_signed_tls_client_auth`"
        ),
        "{error}"
    );
    let stats = emulation.stats();
    assert_eq!(stats.discovery_fetches, 1, "{stats:?}");
    assert_eq!(
        (stats.logins, stats.rejected_logins, stats.violations),
        (0, 0, 0),
        "{stats:?}"
    );
}
