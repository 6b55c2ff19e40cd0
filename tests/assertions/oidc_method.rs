//! The client authentication methods the load runs against the real provider take, whatever
//! sends the requests (the tower layer, reqwest, tonic): a [`Method`] is the client the
//! provider registered for it, the layer's provider and DPoP key, and the resource its tokens go
//! to.

use std::future::Future;
use std::sync::Arc;

use tower_token_auth::jose::{Algorithm, DpopKey, SigningKey};
use tower_token_auth::provider::oauth2::{Builder, ClientAssertion, ClientAuth};
use tower_token_auth::provider::Provider;
use tower_token_auth::{AuthLayer, AuthLayerBuilder, Secret};

use crate::support::emulated::client;
use crate::support::oidc_runs::FAULTS;
use crate::support::oidc_server::{OidcServer, Options};

/// How a method's client authenticates.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Method {
    SecretBasic,
    SecretPost,
    SecretJwt,
    PrivateKeyJwt,
    /// `private_key_jwt` with DPoP-bound tokens (a generated EdDSA key), to the DPoP resource.
    Dpop,
    /// Token exchange (RFC 8693) by `orders-exchange` (`client_secret_basic`) of the subject
    /// token the provider minted at start, for an audience and a resource.
    Exchange,
}

impl Method {
    /// The client the provider registered for the method.
    pub(crate) fn client(self) -> &'static str {
        match self {
            Method::SecretBasic => "orders-basic",
            Method::SecretPost => "orders-post",
            Method::SecretJwt => "orders-jwt",
            Method::PrivateKeyJwt | Method::Dpop => "orders",
            Method::Exchange => "orders-exchange",
        }
    }

    /// Whether the method's tokens are DPoP-bound.
    pub(crate) fn dpop(self) -> bool {
        matches!(self, Method::Dpop)
    }

    /// The resource the method's tokens go to: the DPoP resource, or the bearer resource of
    /// the method's client.
    pub(crate) fn resource(self, server: &OidcServer) -> String {
        match self {
            Method::Dpop => server.dpop_resource(),
            _ => server.bearer_resource(self.client()),
        }
    }

    /// The layer for the method against `server`, its auth calls through a plain HTTP client.
    pub(crate) fn layer(self, server: &OidcServer) -> AuthLayer {
        self.builder(server).build(client())
    }

    /// The layer's builder for the method against `server`, its endpoints from the issuer's
    /// metadata; for the caller to give the transport of the auth calls.
    pub(crate) fn builder(self, server: &OidcServer) -> AuthLayerBuilder {
        let issuer = server.issuer();
        let client = self.client();
        let grant = Builder::client_credentials_grant(issuer)
            .discover(issuer)
            .scope("read");
        let private_key_jwt = || {
            let assertion = ClientAssertion::private_key_jwt(client, orders_key()).audience(issuer);
            grant.clone().build_with_assertion(assertion).unwrap()
        };
        let secret = |how| {
            Builder::client_credentials(issuer, client, server.secret(client))
                .client_auth(how)
                .discover(issuer)
                .scope("read")
                .build()
                .unwrap()
        };
        match self {
            Method::SecretBasic => builder_on(secret(ClientAuth::SecretBasic), None),
            Method::SecretPost => builder_on(secret(ClientAuth::SecretPost), None),
            Method::SecretJwt => {
                let assertion = ClientAssertion::client_secret_jwt(client, server.secret(client))
                    .audience(issuer);
                builder_on(grant.build_with_assertion(assertion).unwrap(), None)
            }
            Method::PrivateKeyJwt => builder_on(private_key_jwt(), None),
            Method::Dpop => {
                let dpop = DpopKey::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
                builder_on(private_key_jwt(), Some(dpop))
            }
            Method::Exchange => {
                let subject = Secret::from(server.subject());
                let exchange =
                    Builder::token_exchange(issuer, ACCESS_TOKEN, move || Ok(subject.clone()));
                let provider = exchange
                    .confidential_client(client, server.secret(client))
                    .discover(issuer)
                    .audience("billing")
                    .resource("https://billing.example.com/")
                    .build()
                    .unwrap();
                builder_on(provider, None)
            }
        }
    }
}

/// RFC 8693's type of the subject token: an access token.
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The key `orders` signs its assertions with (ES256).
fn orders_key() -> SigningKey {
    SigningKey::from_jwk(&crate::key_file("es256.jwk.json")).unwrap()
}

/// A builder on `provider`, its tokens bound to `dpop` if given.
fn builder_on(provider: impl Provider, dpop: Option<DpopKey>) -> AuthLayerBuilder {
    AuthLayer::builder(provider).with_policy(move |p| p.dpop = dpop)
}

/// A provider of its own for a load run, with every method's client, under
/// [`FAULTS`](crate::support::oidc_runs::FAULTS) when `faults`.
pub(crate) fn server(faults: bool) -> Arc<OidcServer> {
    Arc::new(OidcServer::with(Options {
        jwks: Some(serde_json::json!({ "keys": [orders_key().public_jwk()] })),
        faults: faults.then_some(FAULTS),
        subject: true,
        ..Options::default()
    }))
}

/// `run`'s load run of `method` clean (`run(method, false)`), then under faults.
pub(crate) async fn clean_then_faults<Fut>(method: Method, run: impl Fn(Method, bool) -> Fut)
where
    Fut: Future<Output = ()>,
{
    run(method, false).await;
    run(method, true).await;
}
