//! Test certificates (rcgen) and the hyper-util clients that present them (hyper-rustls).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rcgen::{CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tower_token_auth_emulation::{ClientAuth, Config, Emulation, Mtls, OAuthExtensions};

/// A client over HTTP or HTTPS, with or without a client certificate.
pub(crate) type TlsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The SAN DNS name registered for the `tls_client_auth` client.
pub(crate) const CLIENT_NAME: &str = "orders.clients.example.test";

/// A client's certificate chain and key, PEM, as a client keeps them in files.
pub(crate) struct Identity {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

/// A certificate authority that issues client certificates.
pub(crate) struct Ca {
    pub(crate) pem: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self {
            pem: issuer.pem(),
            issuer,
        }
    }

    /// A client certificate for the SAN DNS name `name`.
    pub(crate) fn client(&self, name: &str) -> Identity {
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Ca {
    /// A server certificate for `localhost` and `127.0.0.1`: a test's own TLS server.
    pub(crate) fn server(&self) -> Identity {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Identity {
    /// The certificate's `x5t#S256` (RFC 8705 3.1): the base64url SHA-256 of its DER, what a
    /// token bound to it carries in `cnf`.
    pub(crate) fn x5t(&self) -> String {
        let der = CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).unwrap();
        thumbprint(&der)
    }
}

/// The base64url SHA-256 of a certificate's DER.
pub(crate) fn thumbprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        digest.as_ref(),
    )
}

/// A self-signed client certificate.
pub(crate) fn self_signed(name: &str) -> Identity {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    Identity {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A client that trusts `server_ca_pem` and presents `identity`, if any: what the README's
/// "Mutual TLS" section shows.
pub(crate) fn client(server_ca_pem: &str, identity: Option<&Identity>) -> TlsClient {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(server_ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some(identity) => {
            let chain = CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// A client registered to authenticate by its certificate: how the emulation knows it, the CA
/// that issued the certificate (none for a self-signed one), the certificate, and the method
/// the layer names.
pub(crate) struct Registration {
    pub(crate) registered: ClientAuth,
    pub(crate) ca: Option<Ca>,
    pub(crate) identity: Identity,
    pub(crate) auth: tower_token_auth::provider::oauth2::ClientAuth,
}

impl Registration {
    /// `tls_client_auth` by a certificate a clients' CA issued for [`CLIENT_NAME`], registered
    /// by that SAN DNS name.
    pub(crate) fn tls_client_auth() -> Self {
        let ca = Ca::new("clients CA");
        Self {
            registered: ClientAuth::TlsClientAuth {
                san_dns: CLIENT_NAME.to_owned(),
            },
            identity: ca.client(CLIENT_NAME),
            ca: Some(ca),
            auth: tower_token_auth::provider::oauth2::ClientAuth::TlsClientAuth,
        }
    }

    /// `self_signed_tls_client_auth` by a self-signed certificate, registered as it is.
    pub(crate) fn self_signed() -> Self {
        let identity = self_signed("orders");
        Self {
            registered: ClientAuth::SelfSignedTlsClientAuth {
                certificate_pem: identity.cert_pem.clone(),
            },
            ca: None,
            identity,
            auth: tower_token_auth::provider::oauth2::ClientAuth::SelfSignedTlsClientAuth,
        }
    }

    /// The emulation (as [`emulation`], with `config`) that registered this client.
    pub(crate) async fn emulation(&self, config: Config) -> Emulation {
        emulation(self.registered.clone(), self.ca.as_ref(), config).await
    }
}

/// The OAuth2 emulation with its TLS listener and the client registered for `client_auth`;
/// `ca` issues `tls_client_auth` certificates. `config` and its extensions add the rest.
pub(crate) async fn emulation(
    client_auth: ClientAuth,
    ca: Option<&Ca>,
    config: Config,
) -> Emulation {
    let config = Config {
        extensions: OAuthExtensions {
            client_auth,
            mtls: Some(Mtls {
                client_ca_pem: ca.map(|ca| ca.pem.clone()),
                ..Mtls::default()
            }),
            ..config.extensions
        },
        ..config
    };
    Emulation::start(tower_token_auth_emulation::Api::OAuth2, config)
        .await
        .unwrap()
}

/// The `cnf` `x5t#S256` claim of a JWT access token.
pub(crate) fn bound_x5t(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let payload =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap();
    let payload: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    payload["cnf"]["x5t#S256"].as_str().unwrap().to_owned()
}
