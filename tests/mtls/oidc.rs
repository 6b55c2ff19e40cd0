//! Mutual TLS against the real provider: panva's oidc-provider over HTTPS with its `mTLS`
//! feature (`tls_client_auth` by a SAN DNS name from a clients' authority,
//! `self_signed_tls_client_auth` by a registered certificate, access tokens bound to the
//! certificate by `x5t#S256`), the certificate read from the TLS connection Node.js accepted.
//! The issuer's listener asks for no certificate: its metadata names another as the
//! `mtls_endpoint_aliases` (RFC 8705 §5), and the layer, discovering its endpoints from the
//! issuer, must send its auth calls there (every login here would be `invalid_client`
//! otherwise). The layer's auth calls and requests go through a hyper-util client presenting
//! the client's certificate; the resource (`/mtls-resource/CLIENT`, on the listener asking for
//! certificates) takes a token only over a connection whose certificate it is bound to, as the
//! provider's store says.

use std::sync::Arc;

use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::Layer;
use tower_token_auth::provider::oauth2::{Builder, ClientAuth};
use tower_token_auth::provider::HttpProvider;
use tower_token_auth::{AuthLayer, ErrorKind, Secret};

use crate::certs::{self, Ca, Identity, TlsClient, CLIENT_NAME};
use crate::layer::get;
use crate::support::oidc_runs::{rides_out_faults, serves_and_survives_revocations, FAULTS};
use crate::support::oidc_server::{OidcServer, Options, Tls};

/// The provider over HTTPS, its certificate from a server authority, its `tls_client_auth`
/// client's from a clients' authority, and its self-signed client's.
pub(crate) struct Setup {
    pub(crate) server: Arc<OidcServer>,
    pub(crate) server_ca: Ca,
    pub(crate) clients_ca: Ca,
    /// `orders-mtls`'s certificate: the clients' authority's, for [`CLIENT_NAME`].
    pub(crate) mtls: Identity,
    /// `orders-self-signed`'s registered certificate.
    self_signed: Identity,
}

impl Setup {
    pub(crate) fn start(faults: bool) -> Self {
        let (server_ca, clients_ca) = (Ca::new("server CA"), Ca::new("clients CA"));
        let (mtls, self_signed) = (clients_ca.client(CLIENT_NAME), certs::self_signed("orders"));
        let identity = server_ca.server();
        let server = OidcServer::with(Options {
            tls: Some(Tls {
                cert_pem: identity.cert_pem,
                key_pem: identity.key_pem,
                client_ca_pem: clients_ca.pem.clone(),
                san_dns: CLIENT_NAME.to_owned(),
                self_signed_pem: self_signed.cert_pem.clone(),
            }),
            faults: faults.then_some(FAULTS),
            ..Options::default()
        });
        Self {
            server: Arc::new(server),
            server_ca,
            clients_ca,
            mtls,
            self_signed,
        }
    }

    /// A client trusting the server's authority and presenting `identity`, if any.
    pub(crate) fn client(&self, identity: Option<&Identity>) -> TlsClient {
        certs::client(&self.server_ca.pem, identity)
    }

    /// The provider for `client_id`, authenticating by `auth` with its endpoints from the
    /// issuer's metadata.
    fn provider(&self, client_id: &str, auth: ClientAuth) -> HttpProvider {
        let issuer = self.server.issuer();
        Builder::client_credentials_grant(issuer)
            .public_client(client_id)
            .client_auth(auth)
            .discover(issuer)
            .scope("read")
            .build()
            .unwrap()
    }

    /// A layer for `client_id` (as [`Setup::provider`]), its auth calls through `client`.
    pub(crate) fn layer(&self, client_id: &str, auth: ClientAuth, client: &TlsClient) -> AuthLayer {
        AuthLayer::new(self.provider(client_id, auth), client.clone())
    }

    /// Sends `token` as a bearer token to `client_id`'s resource through `client`.
    async fn present(&self, client: &TlsClient, client_id: &str, token: &Secret) -> StatusCode {
        let request = Request::get(self.server.mtls_resource(client_id))
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.expose()),
            )
            .body(Full::default())
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status();
        response.into_body().collect().await.unwrap();
        status
    }

    /// The provider's introspection of `token` (RFC 7662), asked by `client_id` over `client`:
    /// its `cnf` `x5t#S256`.
    async fn bound_to(&self, client: &TlsClient, client_id: &str, token: &Secret) -> String {
        let form = format!("token={}&client_id={client_id}", token.expose());
        let introspection = format!("{}/token/introspection", self.server.mtls_origin());
        let request = Request::post(introspection)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Full::from(form))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["active"], true, "{answer}");
        answer["cnf"]["x5t#S256"].as_str().unwrap().to_owned()
    }
}

/// The course of the secret methods (`tests/assertions/oidc.rs`) by the certificate: 35
/// requests served over the client's connections and 1 refused, 3 tokens issued, each by the
/// certificate (the auth calls carry `client_id` alone), revocation at the provider's endpoint
/// authenticated by the certificate too. The last token is bound to the certificate (the
/// provider's introspection says so); presented over a connection with another certificate, or
/// without one, it is refused, and the resource counts each.
async fn logs_in_and_binds(setup: &Setup, client_id: &str, auth: ClientAuth, identity: &Identity) {
    let client = setup.client(Some(identity));
    let layer = setup.layer(client_id, auth, &client);
    let svc = layer.layer(client.clone());
    let url = setup.server.mtls_resource(client_id);
    let handle = layer.handle();
    serves_and_survives_revocations(&setup.server, client_id, &handle, || get(&svc, &url)).await;

    let token = handle.token().await.unwrap();
    let token = token.access_token();
    assert_eq!(
        setup.bound_to(&client, client_id, token).await,
        identity.x5t()
    );
    let other = setup.client(Some(&setup.clients_ca.client("someone.else.example.test")));
    assert_eq!(
        setup.present(&other, client_id, token).await,
        StatusCode::UNAUTHORIZED
    );
    let bare = setup.client(None);
    assert_eq!(
        setup.present(&bare, client_id, token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        setup.present(&client, client_id, token).await,
        StatusCode::OK
    );
    let stats = setup.server.stats().await;
    assert_eq!(stats.served(client_id), 36, "{stats:?}");
    assert_eq!(
        stats.violations.into_iter().collect::<Vec<_>>(),
        [
            (
                "a certificate-bound token over a connection with another certificate".to_owned(),
                1
            ),
            (
                "a certificate-bound token over a connection without a certificate".to_owned(),
                1
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_auth_against_oidc_provider_binds_tokens_to_the_certificate() {
    let setup = Setup::start(false);
    let identity = &setup.mtls;
    logs_in_and_binds(&setup, "orders-mtls", ClientAuth::TlsClientAuth, identity).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_tls_client_auth_against_oidc_provider_binds_tokens_to_the_certificate() {
    let setup = Setup::start(false);
    let identity = &setup.self_signed;
    logs_in_and_binds(
        &setup,
        "orders-self-signed",
        ClientAuth::SelfSignedTlsClientAuth,
        identity,
    )
    .await;
}

/// Certificates the provider does not take for the client: none; one of the clients' authority
/// for another name; one for the registered name from another authority; a self-signed one that
/// is not the registered one. Each login is `invalid_client` (a typed `LoginRejected`), and no
/// token is issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_oidc_provider_does_not_take_are_refused() {
    let setup = Setup::start(false);
    let stranger = Ca::new("another CA");
    let cases = [
        ("orders-mtls", ClientAuth::TlsClientAuth, None),
        (
            "orders-mtls",
            ClientAuth::TlsClientAuth,
            Some(setup.clients_ca.client("someone.else.example.test")),
        ),
        (
            "orders-mtls",
            ClientAuth::TlsClientAuth,
            Some(stranger.client(CLIENT_NAME)),
        ),
        (
            "orders-self-signed",
            ClientAuth::SelfSignedTlsClientAuth,
            Some(certs::self_signed("orders")),
        ),
    ];
    for (client_id, auth, identity) in &cases {
        let client = setup.client(identity.as_ref());
        let layer = setup.layer(client_id, *auth, &client);
        let error = layer.handle().token().await.unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::LoginRejected,
            "{client_id}: {error}"
        );
    }
    let stats = setup.server.stats().await;
    assert!(stats.logins.is_empty(), "{stats:?}");
    assert_eq!(
        stats.token_errors("invalid_client"),
        cases.len() as u64,
        "{stats:?}"
    );
}

/// Load runs (`support::oidc_runs::rides_out_faults`): 400 requests, 16 in flight, clean and
/// then with 30 % of the token endpoint's calls answered 503 and 0.2 % of the answers followed
/// by the token's destruction; every request served over the certificate's connections, the
/// binding checked at each, and the counts of both sides equal.
async fn rides_out_faults_by_the_certificate(client_id: &'static str, auth: ClientAuth) {
    for faults in [false, true] {
        let setup = Setup::start(faults);
        let identity = match auth {
            ClientAuth::SelfSignedTlsClientAuth => &setup.self_signed,
            _ => &setup.mtls,
        };
        let client = setup.client(Some(identity));
        let layer = setup.layer(client_id, auth, &client);
        let svc = layer.layer(client);
        let url = setup.server.mtls_resource(client_id);
        let get = move || {
            let (svc, url) = (svc.clone(), url.clone());
            async move { get(&svc, &url).await }
        };
        let handle = layer.handle();
        rides_out_faults(&setup.server, client_id, &handle, get, faults, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_auth_rides_out_faults_against_oidc_provider() {
    rides_out_faults_by_the_certificate("orders-mtls", ClientAuth::TlsClientAuth).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_tls_client_auth_rides_out_faults_against_oidc_provider() {
    let auth = ClientAuth::SelfSignedTlsClientAuth;
    rides_out_faults_by_the_certificate("orders-self-signed", auth).await;
}

/// The same load runs through the reqwest adapter: the auth calls by a `ReqwestTransport` and the
/// requests by `AuthMiddleware`, each reqwest client presenting the certificate (rustls).
#[cfg(feature = "reqwest")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_auth_through_reqwest_rides_out_faults_against_oidc_provider() {
    use tower_token_auth::reqwest::{AuthMiddleware, ReqwestTransport};

    use crate::reqwest::builder;
    use crate::support::reqwest_get as get;

    for faults in [false, true] {
        let setup = Setup::start(faults);
        let identity = Some(&setup.mtls);
        let transport = ReqwestTransport::new(builder(&setup.server_ca.pem, identity)).unwrap();
        let layer = AuthLayer::new(
            setup.provider("orders-mtls", ClientAuth::TlsClientAuth),
            transport,
        );
        let client = builder(&setup.server_ca.pem, identity).build().unwrap();
        let client = reqwest_middleware::ClientBuilder::new(client)
            .with(AuthMiddleware::new(layer.handle()))
            .build();
        let url = setup.server.mtls_resource("orders-mtls");
        let get = move || {
            let (client, url) = (client.clone(), url.clone());
            async move { get(&client, &url).await }
        };
        let handle = layer.handle();
        rides_out_faults(&setup.server, "orders-mtls", &handle, get, faults, false).await;
    }
}
