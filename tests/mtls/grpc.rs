//! Mutual TLS through tonic: a `Channel` with `ClientTlsConfig` and the client's `Identity`,
//! wrapped by `GrpcAuthLayer`, calling a tonic health server that requires a client certificate
//! (`ServerTlsConfig::client_ca_root`) and takes a call only when its token is active (the
//! emulation's introspection, RFC 7662) and bound to the certificate of the call's own
//! connection (`cnf` `x5t#S256` against the connection's `peer_certs`, RFC 8705 3). The layer's
//! auth calls go through its own auth transport, a hyper-util client presenting the same
//! certificate to the emulation's TLS token endpoint. The same against the real provider
//! (oidc-provider, `oidc.rs`'s set-up), its introspection asked by the guard.
#![cfg(feature = "tonic")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::header::AUTHORIZATION;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TcpIncoming, TlsConnectInfo};
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Identity as TlsIdentity, Server, ServerTlsConfig,
};
use tonic::{Code, Status};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tower::filter::AsyncFilterLayer;
use tower::{BoxError, ServiceBuilder};
use tower_token_auth::grpc::{GrpcAuthLayer, GrpcAuthService};
use tower_token_auth::provider::oauth2::{Builder, ClientAuth};
use tower_token_auth::AuthLayer;
use tower_token_auth_emulation::{ClientAuth as Registered, Config, Emulation, OAuthExtensions};

use crate::certs::{self, bound_x5t, Ca, Identity, TlsClient, CLIENT_NAME};

type Health = HealthClient<GrpcAuthService<Channel>>;

/// What the server's guard decided, call by call.
#[derive(Default)]
struct Verdicts {
    /// Calls taken: an active token bound to the connection's certificate.
    ok: AtomicU64,
    /// Calls refused for an active token bound to another certificate than the connection's.
    violations: AtomicU64,
    /// Calls refused for a missing, unknown, expired or revoked token, or no client certificate.
    refused: AtomicU64,
    /// Each call taken: its token and the thumbprint of its connection's certificate.
    taken: Mutex<Vec<(String, String)>>,
}

impl Verdicts {
    /// Calls taken, refused as violations, and refused otherwise.
    fn counts(&self) -> (u64, u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.violations.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }
}

/// The resource server's check of one call: the bearer token introspected at the emulation,
/// its `cnf` `x5t#S256` compared with the certificate the call's TLS connection presented.
struct Binding {
    introspection: TlsClient,
    url: String,
    /// The `client_id` the introspection call sends, where the server authenticates it (by the
    /// certificate `introspection` presents).
    client_id: Option<&'static str>,
    verdicts: Verdicts,
}

impl Binding {
    async fn check(&self, request: Request<Body>) -> Result<Request<Body>, BoxError> {
        let refuse = |message: &str| {
            self.verdicts.refused.fetch_add(1, Ordering::Relaxed);
            Err(BoxError::from(Status::unauthenticated(message.to_owned())))
        };
        let peer = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(TlsConnectInfo::peer_certs);
        let Some(peer) = peer.as_deref().and_then(|chain| chain.first()) else {
            return refuse("no client certificate");
        };
        let peer_x5t = certs::thumbprint(peer);
        let token = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let Some(token) = token else {
            return refuse("no bearer token");
        };
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", &token);
            if let Some(client_id) = self.client_id {
                form.append_pair("client_id", client_id);
            }
            form.finish()
        };
        let introspect = Request::post(&self.url)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(Full::from(body))?;
        let response = self.introspection.request(introspect).await?;
        if response.status() != StatusCode::OK {
            return refuse("introspection failed");
        }
        let answer = response.into_body().collect().await?.to_bytes();
        let answer: serde_json::Value = serde_json::from_slice(&answer)?;
        if answer["active"] != true {
            return refuse("token not active");
        }
        if answer["cnf"]["x5t#S256"].as_str() != Some(peer_x5t.as_str()) {
            self.verdicts.violations.fetch_add(1, Ordering::Relaxed);
            return Err(Status::unauthenticated("token bound to another certificate").into());
        }
        self.verdicts.ok.fetch_add(1, Ordering::Relaxed);
        let taken = (token, peer_x5t);
        self.verdicts.taken.lock().unwrap().push(taken);
        Ok(request)
    }
}

/// The emulation (`tls_client_auth` by `clients`, introspection on), and [`grpc_server`] asking
/// it. Returns the server's address, its CA and the guard.
async fn servers(clients: &Ca) -> (Emulation, std::net::SocketAddr, Ca, Arc<Binding>) {
    let registered = Registered::TlsClientAuth {
        san_dns: CLIENT_NAME.to_owned(),
    };
    let config = Config {
        extensions: OAuthExtensions {
            introspection: true,
            ..OAuthExtensions::default()
        },
        ..Config::default()
    };
    let emulation = certs::emulation(registered, Some(clients), config).await;
    let binding = Arc::new(Binding {
        introspection: certs::client(emulation.server_ca_pem().unwrap(), None),
        url: format!("{}/oauth/introspect", emulation.issuer()),
        client_id: None,
        verdicts: Verdicts::default(),
    });
    let (addr, server_ca) = grpc_server(clients, Arc::clone(&binding)).await;
    (emulation, addr, server_ca, binding)
}

/// A tonic health server over TLS with its own CA that requires a certificate of `clients` and
/// guards every call by `binding`: its address and CA.
async fn grpc_server(clients: &Ca, binding: Arc<Binding>) -> (std::net::SocketAddr, Ca) {
    let guard = {
        let binding = Arc::clone(&binding);
        AsyncFilterLayer::new(move |request: Request<Body>| {
            let binding = Arc::clone(&binding);
            async move { binding.check(request).await }
        })
    };
    let server_ca = Ca::new("gRPC server CA");
    let server = server_ca.server();
    let tls = ServerTlsConfig::new()
        .identity(TlsIdentity::from_pem(&server.cert_pem, &server.key_pem))
        .client_ca_root(Certificate::from_pem(&clients.pem));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let router = Server::builder()
        .tls_config(tls)
        .unwrap()
        .layer(guard)
        .add_service(health);
    tokio::spawn(router.serve_with_incoming(TcpIncoming::from(listener)));
    (addr, server_ca)
}

/// The session: `tls_client_auth` at the emulation's TLS token endpoint, auth calls by a
/// hyper-util client presenting `identity`.
fn session(emulation: &Emulation, identity: &Identity) -> AuthLayer {
    let provider = Builder::client_credentials_grant(&emulation.mtls_base_url().unwrap())
        .public_client(&emulation.config().client_id)
        .client_auth(ClientAuth::TlsClientAuth)
        .build()
        .unwrap();
    let transport = certs::client(emulation.server_ca_pem().unwrap(), Some(identity));
    AuthLayer::new(provider, transport)
}

/// A health client over a TLS channel to `addr` trusting `server_ca` and presenting `identity`
/// (none: no certificate), through `layer`'s session.
fn health(
    addr: std::net::SocketAddr,
    server_ca: &Ca,
    identity: Option<&Identity>,
    layer: &AuthLayer,
) -> Health {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&server_ca.pem))
        .domain_name("localhost");
    let tls = match identity {
        Some(identity) => {
            tls.identity(TlsIdentity::from_pem(&identity.cert_pem, &identity.key_pem))
        }
        None => tls,
    };
    let channel = Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_lazy();
    HealthClient::new(
        ServiceBuilder::new()
            .layer(GrpcAuthLayer::new(layer.clone()))
            .service(channel),
    )
}

const CALLS: u64 = 20;
/// Tokens destroyed early in the run against the real provider.
const REVOCATIONS: u64 = 3;

/// One login by the certificate, twenty calls taken, each with the one token, bound to the
/// certificate of the connection it came over; no violation at either server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_carry_tokens_bound_to_the_channels_certificate() {
    let clients = Ca::new("clients CA");
    let (emulation, addr, server_ca, binding) = servers(&clients).await;
    let identity = clients.client(CLIENT_NAME);
    let layer = session(&emulation, &identity);
    let mut health = health(addr, &server_ca, Some(&identity), &layer);
    for _ in 0..CALLS {
        health.check(HealthCheckRequest::default()).await.unwrap();
    }

    let verdicts = &binding.verdicts;
    assert_eq!(verdicts.counts(), (CALLS, 0, 0));
    let token = layer.handle().token().await.unwrap();
    let token = token.access_token().expose().to_owned();
    assert_eq!(bound_x5t(&token), identity.x5t());
    let taken = verdicts.taken.lock().unwrap().clone();
    assert_eq!(taken.len() as u64, CALLS);
    assert!(
        taken.iter().all(|t| *t == (token.clone(), identity.x5t())),
        "a call went out with another token or over another certificate"
    );
    let stats = emulation.stats();
    assert_eq!(stats.violations, 0, "{:?}", emulation.violation_reasons());
    assert_eq!(
        (
            stats.logins,
            stats.client_certificates,
            stats.introspections
        ),
        (1, 1, CALLS),
        "{stats:?}"
    );
    let metrics = layer.handle().metrics();
    assert_eq!(
        (metrics.logins, metrics.replays, metrics.auth_failures),
        (1, 0, 0),
        "{metrics:?}"
    );
}

/// The session's token over a channel presenting another certificate of the same CA: the
/// server refuses it as bound to another certificate, the adapter replays once with a new
/// token (bound to the session's certificate, refused as well), and the caller gets
/// `UNAUTHENTICATED`. A channel presenting no certificate never reaches the guard: the TLS
/// handshake fails. The channel with the certificate carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_a_bound_token_over_another_certificate_is_refused() {
    let clients = Ca::new("clients CA");
    let (emulation, addr, server_ca, binding) = servers(&clients).await;
    let identity = clients.client(CLIENT_NAME);
    let layer = session(&emulation, &identity);
    let mut good = health(addr, &server_ca, Some(&identity), &layer);
    good.check(HealthCheckRequest::default()).await.unwrap();

    let stranger = clients.client("someone.else.example.test");
    let mut other = health(addr, &server_ca, Some(&stranger), &layer);
    let status = other
        .check(HealthCheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    let mut bare = health(addr, &server_ca, None, &layer);
    let status = bare.check(HealthCheckRequest::default()).await.unwrap_err();
    assert_ne!(status.code(), Code::Ok, "{status:?}");

    good.check(HealthCheckRequest::default()).await.unwrap();

    assert_eq!(binding.verdicts.counts(), (2, 2, 0));
    let stats = emulation.stats();
    assert_eq!(stats.violations, 0, "{:?}", emulation.violation_reasons());
    assert_eq!(
        (stats.logins, stats.client_certificates),
        (3, 3),
        "{stats:?}"
    );
    let metrics = layer.handle().metrics();
    assert_eq!(
        (metrics.logins, metrics.replays, metrics.auth_failures),
        (3, 1, 0),
        "{metrics:?}"
    );
}

/// Against the real provider over HTTPS (`oidc.rs`'s set-up), clean and then under faults (30 %
/// of the token endpoint's calls answered 503): the layer logs in by the certificate at the
/// provider's `mtls_endpoint_aliases`, and the guard introspects each call's token there
/// (authenticated as the same client, by the certificate) and compares its `cnf` `x5t#S256`
/// with the gRPC connection's certificate. Twenty calls on one token; then three times the token
/// destroyed early at the provider, so that the next call is refused once and replayed with a
/// new token, and five calls more. Four tokens issued, three replays, one auth failure per
/// fault (the seeded draws fault five of the token calls), no violation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_carry_tokens_bound_to_the_channels_certificate_against_oidc_provider() {
    use crate::oidc::Setup;

    for faults in [false, true] {
        let setup = Setup::start(faults);
        let client = setup.client(Some(&setup.mtls));
        let binding = Arc::new(Binding {
            introspection: client.clone(),
            url: format!("{}/token/introspection", setup.server.mtls_origin()),
            client_id: Some("orders-mtls"),
            verdicts: Verdicts::default(),
        });
        let (addr, server_ca) = grpc_server(&setup.clients_ca, Arc::clone(&binding)).await;
        let layer = setup.layer("orders-mtls", ClientAuth::TlsClientAuth, &client);
        let mut health = health(addr, &server_ca, Some(&setup.mtls), &layer);
        for _ in 0..CALLS {
            health.check(HealthCheckRequest::default()).await.unwrap();
        }
        for _ in 0..REVOCATIONS {
            assert_eq!(setup.server.revoke("orders-mtls").await, 1);
            for _ in 0..CALLS / 4 {
                health.check(HealthCheckRequest::default()).await.unwrap();
            }
        }

        let what = if faults { "under faults" } else { "clean" };
        assert_eq!(
            binding.verdicts.counts(),
            (CALLS + REVOCATIONS * CALLS / 4, 0, REVOCATIONS),
            "{what}"
        );
        let stats = setup.server.stats().await;
        assert!(stats.violations.is_empty(), "{what}: {stats:?}");
        assert!(stats.token_errors.is_empty(), "{what}: {stats:?}");
        assert_eq!(
            stats.logins("orders-mtls"),
            1 + REVOCATIONS,
            "{what}: {stats:?}"
        );
        assert_eq!(stats.token_faults > 0, faults, "{what}: {stats:?}");
        let m = layer.handle().metrics();
        assert_eq!(
            (m.logins, m.replays, m.auth_failures),
            (
                1 + REVOCATIONS + stats.token_faults,
                REVOCATIONS,
                stats.token_faults
            ),
            "{what}: {m:?}"
        );
    }
}
