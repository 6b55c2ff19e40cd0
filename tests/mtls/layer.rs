//! The layer with `tls_client_auth` and `self_signed_tls_client_auth` against the emulation's
//! TLS listener: logins, certificate-bound tokens, and a client without its certificate.

use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt};
use tower_token_auth::provider::oauth2::{Builder, ClientAuth};
use tower_token_auth::{AuthLayer, AuthService, ErrorKind};
use tower_token_auth_emulation::{ClientAuth as Registered, Config, Emulation};

use crate::certs::{self, bound_x5t, Ca, Identity, Registration, TlsClient, CLIENT_NAME};

/// A layer for the emulation's TLS token endpoint, authenticating by `auth`, whose auth calls
/// and requests go through `client`.
fn service(
    emulation: &Emulation,
    auth: ClientAuth,
    client: &TlsClient,
) -> (AuthLayer, AuthService<TlsClient>) {
    let token_url = emulation.mtls_base_url().unwrap();
    let provider = Builder::client_credentials_grant(&token_url)
        .public_client(&emulation.config().client_id)
        .client_auth(auth)
        .build()
        .unwrap();
    let layer = AuthLayer::new(provider, client.clone());
    let svc = layer.layer(client.clone());
    (layer, svc)
}

pub(crate) async fn get(svc: &AuthService<TlsClient>, url: &str) -> StatusCode {
    let request = Request::get(url).body(Full::default()).unwrap();
    let response = svc.clone().oneshot(request).await.unwrap();
    let status = response.status();
    response.into_body().collect().await.unwrap();
    status
}

/// Twenty requests, then every token revoked and ten more: two logins, each authenticated by
/// the certificate, every token bound to it and presented over it.
async fn logs_in_and_binds(registration: &Registration) {
    let emulation = registration.emulation(Config::default()).await;
    let identity = &registration.identity;
    let transport = certs::client(emulation.server_ca_pem().unwrap(), Some(identity));
    let (layer, svc) = service(&emulation, registration.auth, &transport);
    let url = emulation.mtls_resource_url().unwrap();
    serves_and_binds(&emulation, &layer, identity, || get(&svc, &url)).await;
}

/// The course of a session on `layer` authenticating by `identity`'s certificate, whatever
/// sends its requests to the emulation's mutual TLS resource (`get`): twenty requests, then
/// every token revoked and ten more. Two logins, each by the certificate; thirty requests
/// served with tokens bound to it, one refused and replayed; the last token bound to
/// `identity`; no violation.
pub(crate) async fn serves_and_binds<F, Fut>(
    emulation: &Emulation,
    layer: &AuthLayer,
    identity: &Identity,
    get: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = StatusCode>,
{
    for _ in 0..20 {
        assert_eq!(get().await, StatusCode::OK);
    }
    emulation.revoke_access_tokens();
    for _ in 0..10 {
        assert_eq!(get().await, StatusCode::OK);
    }
    let stats = emulation.stats();
    assert_eq!(stats.violations, 0, "{:?}", emulation.violation_reasons());
    assert_eq!(
        (
            stats.logins,
            stats.client_certificates,
            stats.certificate_bound_uses
        ),
        (2, 2, 30),
        "{stats:?}"
    );
    assert_eq!(stats.resource_unauthorized, 1, "{stats:?}");
    let metrics = layer.handle().metrics();
    assert_eq!(
        (metrics.logins, metrics.replays, metrics.auth_failures),
        (2, 1, 0),
        "{metrics:?}"
    );
    // The token is bound to the certificate: `cnf` `x5t#S256` in the JWT, its thumbprint.
    let token = layer.handle().token().await.unwrap();
    assert_eq!(bound_x5t(token.access_token().expose()), identity.x5t());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_auth_logs_in_with_its_certificate_and_uses_bound_tokens() {
    logs_in_and_binds(&Registration::tls_client_auth()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_tls_client_auth_logs_in_with_its_registered_certificate() {
    logs_in_and_binds(&Registration::self_signed()).await;
}

/// `tls_client_auth` registered by subject DN (RFC 8705 2.1.2 `tls_client_auth_subject_dn`,
/// RFC 4514 form): the certificate whose subject it names logs in and binds its tokens; a
/// certificate of the same CA with another subject is refused, as a violation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_auth_by_subject_dn_logs_in_and_another_subject_is_refused() {
    let ca = Ca::new("clients CA");
    let client = Registration {
        registered: Registered::TlsClientAuthSubjectDn {
            subject_dn: format!("cn={}", CLIENT_NAME.to_uppercase()),
        },
        identity: ca.client(CLIENT_NAME),
        ca: Some(ca),
        auth: ClientAuth::TlsClientAuth,
    };
    logs_in_and_binds(&client).await;

    let emulation = client.emulation(Config::default()).await;
    let server_ca = emulation.server_ca_pem().unwrap();
    let other = client
        .ca
        .as_ref()
        .unwrap()
        .client("someone.else.example.test");
    let stranger = certs::client(server_ca, Some(&other));
    let (layer, _) = service(&emulation, ClientAuth::TlsClientAuth, &stranger);
    let error = layer.handle().token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LoginRejected, "{error}");
    assert_eq!(
        emulation.violation_reasons(),
        [(
            "the client certificate is not the one registered for the client",
            1
        )]
    );
    assert_eq!(emulation.stats().logins, 0);
}

/// A client whose transport presents no certificate is refused by the token endpoint (401
/// `invalid_client`): a typed `LoginRejected`, and no secret to quote. A client with the
/// certificate, in the same process, carries on; so does the first once it has one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_its_certificate_is_refused_and_the_process_carries_on() {
    let ca = Ca::new("clients CA");
    let registered = Registered::TlsClientAuth {
        san_dns: CLIENT_NAME.to_owned(),
    };
    let emulation = certs::emulation(registered, Some(&ca), Config::default()).await;
    let server_ca = emulation.server_ca_pem().unwrap();
    let url = emulation.mtls_resource_url().unwrap();

    let bare = certs::client(server_ca, None);
    let (layer, _) = service(&emulation, ClientAuth::TlsClientAuth, &bare);
    let error = layer.handle().token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LoginRejected, "{error}");
    assert_eq!(
        emulation.violation_reasons(),
        [(
            "mutual TLS client authentication without a client certificate",
            1
        )]
    );

    // Another certificate of the same CA, for another name: refused as well.
    let stranger = certs::client(server_ca, Some(&ca.client("someone.else.example.test")));
    let (layer, _) = service(&emulation, ClientAuth::TlsClientAuth, &stranger);
    let error = layer.handle().token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LoginRejected, "{error}");

    let client = certs::client(server_ca, Some(&ca.client(CLIENT_NAME)));
    let (layer, svc) = service(&emulation, ClientAuth::TlsClientAuth, &client);
    for _ in 0..5 {
        assert_eq!(get(&svc, &url).await, StatusCode::OK);
    }
    let stats = emulation.stats();
    assert_eq!(
        (stats.logins, stats.client_certificates, stats.violations),
        (1, 1, 2),
        "{:?}",
        emulation.violation_reasons()
    );
    assert_eq!(
        emulation.violation_reasons()[1],
        (
            "the client certificate is not the one registered for the client",
            1
        )
    );
    assert_eq!(layer.handle().metrics().auth_failures, 0);
}

/// A token bound to one certificate, presented over a connection with another (or with none),
/// is refused by the resource and counted: the binding holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_over_another_connection_is_refused() {
    let identity = certs::self_signed("orders");
    let registered = Registered::SelfSignedTlsClientAuth {
        certificate_pem: identity.cert_pem.clone(),
    };
    let emulation = certs::emulation(registered, None, Config::default()).await;
    let server_ca = emulation.server_ca_pem().unwrap();
    let client = certs::client(server_ca, Some(&identity));
    let (layer, _) = service(&emulation, ClientAuth::SelfSignedTlsClientAuth, &client);
    let token = layer.handle().token().await.unwrap();
    let other = certs::client(server_ca, Some(&certs::self_signed("other")));
    let url = emulation.mtls_resource_url().unwrap();
    for (client, url) in [(&other, url.clone()), (&client, emulation.resource_url())] {
        let request = Request::get(url)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.access_token().expose()),
            )
            .body(Full::default())
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        emulation.violation_reasons(),
        [
            (
                "certificate-bound token over a connection with another certificate",
                1
            ),
            (
                "certificate-bound token over a connection without its certificate",
                1
            ),
        ]
    );
}
