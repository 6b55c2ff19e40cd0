//! Mutual TLS (RFC 8705) with a plain rustls client: what the TLS listener and the token
//! endpoint take, what they count as violations, and what discovery says about them.

use std::sync::Arc;

use hyper_rustls::HttpsConnector;
use rcgen::{CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tower_token_auth_emulation::{ClientAuth, Discovery, Mtls, OAuthExtensions};

use crate::support::*;

type TlsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

const NAME: &str = "orders.clients.example.test";

struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    /// A certificate for `name` and its key, PEM.
    fn issue(&self, name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&key, &self.0)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn tls_client(server_ca: &str, identity: Option<&(String, String)>) -> TlsClient {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(server_ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

async fn tls_send(client: &TlsClient, request: Request<Full<Bytes>>) -> Result<Reply, String> {
    let response = tokio::time::timeout(DEADLINE, client.request(request))
        .await
        .expect("request timed out")
        .map_err(|e| format!("{e:?}"))?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body failed").to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

async fn start(ca: &Ca, extensions: OAuthExtensions) -> Emulation {
    let config = Config {
        extensions: OAuthExtensions {
            client_auth: ClientAuth::TlsClientAuth {
                san_dns: NAME.to_owned(),
            },
            mtls: Some(Mtls {
                client_ca_pem: Some(ca.0.pem()),
                ..Mtls::default()
            }),
            ..extensions
        },
        ..Config::default()
    };
    Emulation::start(Api::OAuth2, config).await.unwrap()
}

fn login(url: &str, extra: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut pairs = vec![
        ("grant_type", "client_credentials"),
        ("client_id", "apiclient"),
    ];
    pairs.extend_from_slice(extra);
    post_form(url, &pairs)
}

#[tokio::test]
async fn tls_client_auth_takes_the_registered_certificate_and_nothing_else() {
    let ca = Ca::new();
    let emulation = start(&ca, OAuthExtensions::default()).await;
    let server_ca = emulation.server_ca_pem().unwrap();
    let token_url = emulation.mtls_base_url().unwrap();
    let good = tls_client(server_ca, Some(&ca.issue(NAME)));

    let reply = tls_send(&good, login(&token_url, &[])).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert!(claims["cnf"]["x5t#S256"].is_string(), "{claims}");

    // The bound token: good over its certificate's connection only.
    let resource = emulation.mtls_resource_url().unwrap();
    let bearer = format!("Bearer {token}");
    let get = |url: &str| {
        request(
            Method::GET,
            url,
            &[("authorization", &bearer)],
            Bytes::new(),
        )
    };
    assert_eq!(
        tls_send(&good, get(&resource)).await.unwrap().status,
        StatusCode::OK
    );
    let plain = client();
    assert_eq!(
        send(&plain, get(&emulation.resource_url())).await.status,
        StatusCode::UNAUTHORIZED
    );

    // A secret beside the certificate; no client_id; plain TCP; no certificate; another name.
    let with_secret = tls_send(
        &good,
        login(&token_url, &[("client_secret", "client-secret")]),
    );
    assert_eq!(with_secret.await.unwrap().status, StatusCode::UNAUTHORIZED);
    let no_id = post_form(&token_url, &[("grant_type", "client_credentials")]);
    assert_eq!(
        tls_send(&good, no_id).await.unwrap().status,
        StatusCode::BAD_REQUEST
    );
    let plain_login = send(&plain, login(&emulation.base_url(), &[])).await;
    assert_eq!(plain_login.status, StatusCode::UNAUTHORIZED);
    let bare = tls_client(server_ca, None);
    let reply = tls_send(&bare, login(&token_url, &[])).await.unwrap();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_client");
    let other = tls_client(server_ca, Some(&ca.issue("other.example.test")));
    let reply = tls_send(&other, login(&token_url, &[])).await.unwrap();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // A certificate no registered CA issued fails the handshake.
    let stranger = tls_client(server_ca, Some(&Ca::new().issue(NAME)));
    assert!(tls_send(&stranger, login(&token_url, &[])).await.is_err());
    // The server counts it once its side of the handshake has ended, which the client's error
    // may precede.
    for _ in 0..500 {
        if emulation.stats().violations == 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let stats = emulation.stats();
    assert_eq!(
        (
            stats.logins,
            stats.client_certificates,
            stats.certificate_bound_uses
        ),
        (1, 1, 1),
        "{stats:?}"
    );
    assert_eq!(
        emulation.violation_reasons(),
        [
            (
                "certificate-bound token over a connection without its certificate",
                1
            ),
            (
                "a secret or assertion sent by a client registered for mutual TLS",
                1
            ),
            ("mutual TLS client authentication without client_id", 1),
            ("mutual TLS client authentication over plain TCP", 1),
            (
                "mutual TLS client authentication without a client certificate",
                1
            ),
            (
                "the client certificate is not the one registered for the client",
                1
            ),
            ("client certificate refused at the TLS handshake", 1),
        ]
    );
}

#[tokio::test]
async fn discovery_lists_the_methods_and_the_aliases() {
    let ca = Ca::new();
    let extensions = OAuthExtensions {
        discovery: Some(Discovery::default()),
        revocation: true,
        ..OAuthExtensions::default()
    };
    let emulation = start(&ca, extensions).await;
    let url = format!(
        "{}/.well-known/oauth-authorization-server",
        emulation.issuer()
    );
    let doc = send(&client(), request(Method::GET, &url, &[], Bytes::new()))
        .await
        .json();
    let tls = emulation.mtls_base_url().unwrap();
    let origin = tls.strip_suffix("/oauth/token").unwrap();
    assert_eq!(
        doc["token_endpoint"],
        format!("{}/oauth/token", emulation.issuer())
    );
    assert_eq!(
        doc["mtls_endpoint_aliases"],
        json!({
            "token_endpoint": tls,
            "revocation_endpoint": format!("{origin}/oauth/revoke"),
        })
    );
    let methods = doc["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(methods.contains(&json!("tls_client_auth")), "{doc}");
    assert!(
        methods.contains(&json!("self_signed_tls_client_auth")),
        "{doc}"
    );
    assert_eq!(doc["tls_client_certificate_bound_access_tokens"], true);
}

#[tokio::test]
async fn unusable_mtls_settings_fail_the_start() {
    let start = |extensions: OAuthExtensions| {
        Emulation::start(
            Api::OAuth2,
            Config {
                extensions,
                ..Config::default()
            },
        )
    };
    let without_listener = start(OAuthExtensions {
        client_auth: ClientAuth::TlsClientAuth {
            san_dns: NAME.to_owned(),
        },
        ..OAuthExtensions::default()
    })
    .await
    .unwrap_err();
    assert_eq!(without_listener.kind(), std::io::ErrorKind::InvalidInput);
    let without_ca = start(OAuthExtensions {
        client_auth: ClientAuth::TlsClientAuth {
            san_dns: NAME.to_owned(),
        },
        mtls: Some(Mtls::default()),
        ..OAuthExtensions::default()
    })
    .await
    .unwrap_err();
    assert_eq!(without_ca.kind(), std::io::ErrorKind::InvalidInput);
    let not_pem = start(OAuthExtensions {
        client_auth: ClientAuth::SelfSignedTlsClientAuth {
            certificate_pem: "no certificate".to_owned(),
        },
        mtls: Some(Mtls::default()),
        ..OAuthExtensions::default()
    })
    .await
    .unwrap_err();
    assert_eq!(not_pem.kind(), std::io::ErrorKind::InvalidInput);
}

/// Token introspection (RFC 7662) on: a certificate-bound token is active, with its subject and
/// `cnf` `x5t#S256` (the thumbprint its JWT carries), over either listener; an unknown or
/// revoked one is inactive; discovery names the endpoint. None of it is a violation.
#[tokio::test]
async fn introspection_tells_a_tokens_binding() {
    let ca = Ca::new();
    let extensions = OAuthExtensions {
        discovery: Some(Discovery::default()),
        introspection: true,
        ..OAuthExtensions::default()
    };
    let emulation = start(&ca, extensions).await;
    let server_ca = emulation.server_ca_pem().unwrap();
    let good = tls_client(server_ca, Some(&ca.issue(NAME)));
    let reply = tls_send(&good, login(&emulation.mtls_base_url().unwrap(), &[]))
        .await
        .unwrap();
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();

    let url = format!("{}/oauth/introspect", emulation.issuer());
    let introspect = |token: &str| post_form(&url, &[("token", token)]);
    let answer = send(&client(), introspect(&token)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({
            "active": true,
            "sub": "apiclient",
            "token_type": "Bearer",
            "cnf": { "x5t#S256": claims["cnf"]["x5t#S256"] },
        })
    );
    let tls_url = emulation
        .mtls_base_url()
        .unwrap()
        .replace("/token", "/introspect");
    let over_tls = tls_send(&good, post_form(&tls_url, &[("token", &token)]))
        .await
        .unwrap();
    assert_eq!(over_tls.json()["active"], true);
    assert_eq!(
        send(&client(), introspect("no-such-token")).await.json(),
        json!({ "active": false })
    );
    emulation.revoke_access_tokens();
    assert_eq!(
        send(&client(), introspect(&token)).await.json(),
        json!({ "active": false })
    );

    let doc = send(
        &client(),
        request(
            Method::GET,
            &format!("{}/.well-known/openid-configuration", emulation.issuer()),
            &[],
            Bytes::new(),
        ),
    )
    .await
    .json();
    assert_eq!(doc["introspection_endpoint"], url);
    let stats = emulation.stats();
    assert_eq!(stats.violations, 0, "{:?}", emulation.violation_reasons());
    assert_eq!(stats.introspections, 4, "{stats:?}");
}

/// `tls_client_auth` registered by subject DN (RFC 8705 2.1.2): the certificate whose subject it
/// names logs in, another subject of the same CA is refused; a registered string that is no
/// distinguished name fails the start.
#[tokio::test]
async fn tls_client_auth_by_subject_dn() {
    let ca = Ca::new();
    let issue = |cn: &str| {
        let mut params = CertificateParams::new(vec![NAME.to_owned()]).unwrap();
        // Organization, then common name: RFC 4514 writes them the other way round.
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example Corp");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca.0).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let config = |subject_dn: &str| Config {
        extensions: OAuthExtensions {
            client_auth: ClientAuth::TlsClientAuthSubjectDn {
                subject_dn: subject_dn.to_owned(),
            },
            mtls: Some(Mtls {
                client_ca_pem: Some(ca.0.pem()),
                ..Mtls::default()
            }),
            ..OAuthExtensions::default()
        },
        ..Config::default()
    };
    let emulation = Emulation::start(Api::OAuth2, config("CN=orders,O=Example Corp"))
        .await
        .unwrap();
    let server_ca = emulation.server_ca_pem().unwrap();
    let token_url = emulation.mtls_base_url().unwrap();
    let good = tls_client(server_ca, Some(&issue("orders")));
    let reply = tls_send(&good, login(&token_url, &[])).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    // The SAN is the registered name's, the subject another's: refused.
    let other = tls_client(server_ca, Some(&issue("billing")));
    let reply = tls_send(&other, login(&token_url, &[])).await.unwrap();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_client");
    let stats = emulation.stats();
    assert_eq!((stats.logins, stats.client_certificates), (1, 1));
    assert_eq!(
        emulation.violation_reasons(),
        [(
            "the client certificate is not the one registered for the client",
            1
        )]
    );

    let not_a_dn = Emulation::start(Api::OAuth2, config("orders"))
        .await
        .unwrap_err();
    assert_eq!(not_a_dn.kind(), std::io::ErrorKind::InvalidInput);
}
