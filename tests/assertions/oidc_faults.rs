//! The client authentication methods against the real provider (oidc-provider) under load and
//! faults, as `faults.rs` runs them against the emulation: each method's load run
//! (`support::oidc_runs::rides_out_faults`) through the tower layer, clean, then with 30 % of
//! the token endpoint's calls answered 503 and 0.2 % of the resource's answers followed by the
//! destruction of the token served, every live token destroyed every 25 requests in both runs.
//! A method is one [`Method`]: the client the provider registered for it and the layer.

use std::sync::Arc;

use tower::Layer;
use tower_token_auth::jose::{Algorithm, DpopKey, SigningKey};
use tower_token_auth::provider::oauth2::{Builder, ClientAssertion, ClientAuth};
use tower_token_auth::provider::Provider;
use tower_token_auth::AuthLayer;

use crate::oidc::get;
use crate::support::emulated::client;
use crate::support::oidc_runs::{rides_out_faults, FAULTS};
use crate::support::oidc_server::{OidcServer, Options};

/// How a method's client authenticates.
#[derive(Clone, Copy, Debug)]
enum Method {
    SecretBasic,
    SecretJwt,
    PrivateKeyJwt,
    /// `private_key_jwt` with DPoP-bound tokens (a generated EdDSA key), to the DPoP resource.
    Dpop,
}

impl Method {
    /// The client the provider registered for the method.
    fn client(self) -> &'static str {
        match self {
            Method::SecretBasic => "orders-basic",
            Method::SecretJwt => "orders-jwt",
            Method::PrivateKeyJwt | Method::Dpop => "orders",
        }
    }

    /// The layer for the method against `server`, its endpoints from the issuer's metadata.
    fn layer(self, server: &OidcServer) -> AuthLayer {
        let issuer = server.issuer();
        let client = self.client();
        let grant = Builder::client_credentials_grant(issuer)
            .discover(issuer)
            .scope("read");
        let private_key_jwt = || {
            let key = SigningKey::from_jwk(&crate::key_file("es256.jwk.json")).unwrap();
            let assertion = ClientAssertion::private_key_jwt(client, key).audience(issuer);
            grant.clone().build_with_assertion(assertion).unwrap()
        };
        match self {
            Method::SecretBasic => layer_on(
                Builder::client_credentials(issuer, client, server.secret(client))
                    .client_auth(ClientAuth::SecretBasic)
                    .discover(issuer)
                    .scope("read")
                    .build()
                    .unwrap(),
                None,
            ),
            Method::SecretJwt => {
                let assertion = ClientAssertion::client_secret_jwt(client, server.secret(client))
                    .audience(issuer);
                layer_on(grant.build_with_assertion(assertion).unwrap(), None)
            }
            Method::PrivateKeyJwt => layer_on(private_key_jwt(), None),
            Method::Dpop => {
                let dpop = DpopKey::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
                layer_on(private_key_jwt(), Some(dpop))
            }
        }
    }
}

/// A layer on `provider` over a plain HTTP client, its tokens bound to `dpop` if given.
fn layer_on(provider: impl Provider, dpop: Option<DpopKey>) -> AuthLayer {
    AuthLayer::builder(provider)
        .with_policy(move |p| p.dpop = dpop)
        .build(client())
}

/// One load run of `method` against a provider of its own, under faults or clean.
async fn run(method: Method, faults: bool) {
    let key = SigningKey::from_jwk(&crate::key_file("es256.jwk.json")).unwrap();
    let server = Arc::new(OidcServer::with(Options {
        jwks: Some(serde_json::json!({ "keys": [key.public_jwk()] })),
        faults: faults.then_some(FAULTS),
        ..Options::default()
    }));
    let layer = method.layer(&server);
    let svc = layer.layer(client());
    let (url, dpop) = match method {
        Method::Dpop => (server.dpop_resource(), true),
        _ => (server.bearer_resource(method.client()), false),
    };
    let get = move || {
        let (svc, url) = (svc.clone(), url.clone());
        async move { get(&svc, &url).await }
    };
    rides_out_faults(&server, method.client(), &layer.handle(), get, faults, dpop).await;
}

/// A clean run, then one under faults.
async fn clean_then_faults(method: Method) {
    run(method, false).await;
    run(method, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_basic_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::SecretBasic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_jwt_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::SecretJwt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::PrivateKeyJwt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::Dpop).await;
}
