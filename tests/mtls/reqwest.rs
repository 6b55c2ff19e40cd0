//! Mutual TLS through the reqwest adapter: [`ReqwestTransport`] built from a
//! `reqwest::ClientBuilder` with the client's `reqwest::Identity` (rustls) for the auth calls, and
//! [`AuthMiddleware`] on a reqwest client with the same identity for the requests, against the
//! emulation's TLS listener. A client that lacks the certificate, or presents another, is
//! refused and counted.
#![cfg(feature = "reqwest")]

use http::StatusCode;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tower_token_auth::provider::oauth2::{Builder, ClientAuth};
use tower_token_auth::reqwest::{AuthMiddleware, ReqwestTransport};
use tower_token_auth::{AuthError, AuthLayer, ErrorKind};
use tower_token_auth_emulation::{ClientAuth as Registered, Config, Emulation};

use crate::certs::{self, Ca, Identity, Registration, CLIENT_NAME};
use crate::layer::serves_and_binds;
use crate::support::reqwest_get as get;

/// A reqwest client builder that trusts `server_ca_pem` alone and presents `identity`, if any:
/// what the module docs of `tower_token_auth::reqwest` show.
pub(crate) fn builder(server_ca_pem: &str, identity: Option<&Identity>) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(server_ca_pem.as_bytes()).unwrap();
    let builder = reqwest::Client::builder().tls_certs_only([ca]);
    match identity {
        Some(identity) => {
            // `Identity::from_pem`: the certificate chain and the key in one PEM.
            let pem = format!("{}{}", identity.cert_pem, identity.key_pem);
            builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap())
        }
        None => builder,
    }
}

/// A layer for the emulation's TLS token endpoint, authenticating by `auth`, its auth calls sent
/// by a [`ReqwestTransport`] made from `transport`.
fn layer(emulation: &Emulation, auth: ClientAuth, transport: reqwest::ClientBuilder) -> AuthLayer {
    let provider = Builder::client_credentials_grant(&emulation.mtls_base_url().unwrap())
        .public_client(&emulation.config().client_id)
        .client_auth(auth)
        .build()
        .unwrap();
    AuthLayer::new(provider, ReqwestTransport::new(transport).unwrap())
}

/// A reqwest client from `builder` with the middleware on `layer`'s session.
fn client(layer: &AuthLayer, builder: reqwest::ClientBuilder) -> ClientWithMiddleware {
    ClientBuilder::new(builder.build().unwrap())
        .with(AuthMiddleware::new(layer.handle()))
        .build()
}

/// The [`AuthError`] in a middleware error.
fn auth_error(error: &reqwest_middleware::Error) -> Option<&AuthError> {
    match error {
        reqwest_middleware::Error::Middleware(inner) => inner.downcast_ref(),
        _ => None,
    }
}

/// The course of `layer::serves_and_binds` through reqwest: the logins by the certificate
/// through the reqwest transport, the requests over the middleware's connections, which present
/// it.
async fn logs_in_and_binds(registration: &Registration) {
    let emulation = registration.emulation(Config::default()).await;
    let server_ca = emulation.server_ca_pem().unwrap();
    let identity = &registration.identity;
    let layer = layer(
        &emulation,
        registration.auth,
        builder(server_ca, Some(identity)),
    );
    let client = client(&layer, builder(server_ca, Some(identity)));
    let url = emulation.mtls_resource_url().unwrap();
    serves_and_binds(&emulation, &layer, identity, || get(&client, &url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_tls_client_auth_logs_in_by_certificate_and_sends_bound_tokens() {
    logs_in_and_binds(&Registration::tls_client_auth()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_self_signed_tls_client_auth_logs_in_by_its_registered_certificate() {
    logs_in_and_binds(&Registration::self_signed()).await;
}

/// A reqwest transport without the certificate: the login is refused (401 `invalid_client`)
/// and the middleware's error is a typed `LoginRejected`. A session that logged in with the
/// certificate, its token sent by a reqwest client without it or with another: the resource
/// refuses the bound token, the middleware replays once with a new token (refused as well), and
/// the caller gets the 401; each refusal a violation the emulation names. The client with the
/// certificate carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_without_the_certificate_is_refused() {
    let ca = Ca::new("clients CA");
    let registered = Registered::TlsClientAuth {
        san_dns: CLIENT_NAME.to_owned(),
    };
    let emulation = certs::emulation(registered, Some(&ca), Config::default()).await;
    let server_ca = emulation.server_ca_pem().unwrap();
    let url = emulation.mtls_resource_url().unwrap();
    let identity = ca.client(CLIENT_NAME);

    let bare_transport = layer(
        &emulation,
        ClientAuth::TlsClientAuth,
        builder(server_ca, None),
    );
    let client_of_bare = client(&bare_transport, builder(server_ca, Some(&identity)));
    let error = client_of_bare.get(&url).send().await.unwrap_err();
    assert_eq!(
        auth_error(&error).map(AuthError::kind),
        Some(ErrorKind::LoginRejected),
        "{error}"
    );
    assert_eq!(
        emulation.violation_reasons(),
        [(
            "mutual TLS client authentication without a client certificate",
            1
        )]
    );
    assert_eq!(emulation.stats().logins, 0);

    let layer = layer(
        &emulation,
        ClientAuth::TlsClientAuth,
        builder(server_ca, Some(&identity)),
    );
    let good = client(&layer, builder(server_ca, Some(&identity)));
    assert_eq!(get(&good, &url).await, StatusCode::OK);
    let bare = client(&layer, builder(server_ca, None));
    assert_eq!(get(&bare, &url).await, StatusCode::UNAUTHORIZED);
    let stranger = ca.client("someone.else.example.test");
    let other = client(&layer, builder(server_ca, Some(&stranger)));
    assert_eq!(get(&other, &url).await, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&good, &url).await, StatusCode::OK);

    let stats = emulation.stats();
    assert_eq!(
        emulation.violation_reasons(),
        [
            (
                "mutual TLS client authentication without a client certificate",
                1
            ),
            (
                "certificate-bound token over a connection without its certificate",
                2
            ),
            (
                "certificate-bound token over a connection with another certificate",
                2
            ),
        ],
        "{stats:?}"
    );
    assert_eq!(
        (
            stats.violations,
            stats.logins,
            stats.client_certificates,
            stats.certificate_bound_uses
        ),
        (5, 5, 5, 2),
        "{stats:?}"
    );
    let metrics = layer.handle().metrics();
    assert_eq!(
        (metrics.logins, metrics.replays, metrics.auth_failures),
        (5, 2, 0),
        "{metrics:?}"
    );
}
