//! Mutual TLS (RFC 8705): the TLS listener's configuration, the client certificate a connection
//! presented, client authentication by that certificate (`tls_client_auth`,
//! `self_signed_tls_client_auth`), and the `x5t#S256` thumbprint certificate-bound access tokens
//! carry.
//!
//! The listener's certificate is made at start, for `127.0.0.1` and `localhost`, by a CA of its
//! own whose PEM the emulation hands to clients to trust. A client certificate is checked at
//! the TLS layer only for what TLS can check (a chain to the registered CA, or for a self-signed
//! client the proof that the client holds the key); a connection without one is let through, so
//! that the token endpoint can answer the OAuth way (401 `invalid_client`) and count the
//! violation, as real servers that ask for certificates optionally do.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::request::Parts;
use http::StatusCode;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};

use super::dn::Dn;
use super::extensions::{ClientAuth, Mtls};
use super::oauth2::{oauth_error, rejected, violation};
use super::state::Shared;
use super::stats::bump;
use super::wire::{self, Basic, Resp};

/// What a request's TLS connection presented, in the request's extensions; absent on plain TCP.
#[derive(Clone, Debug)]
pub(super) struct PeerCertificate(pub(super) Option<Arc<ClientCertificate>>);

/// A client certificate a TLS connection presented, verified as far as TLS verifies it.
#[derive(Debug)]
pub(super) struct ClientCertificate {
    der: CertificateDer<'static>,
    /// Its `x5t#S256` (RFC 8705 3.1): the base64url SHA-256 of the DER.
    pub(super) x5t: String,
}

impl ClientCertificate {
    pub(super) fn new(der: CertificateDer<'static>) -> Self {
        let x5t = thumbprint(&der);
        Self { der, x5t }
    }
}

/// The base64url SHA-256 of `der`, as `x5t#S256` has it.
fn thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref())
}

/// What a request came over: `None` for plain TCP, else the certificate presented (if any).
pub(super) fn peer(parts: &Parts) -> Option<Option<&ClientCertificate>> {
    parts
        .extensions
        .get::<PeerCertificate>()
        .map(|peer| peer.0.as_deref())
}

/// The thumbprint an access token issued to this request is bound to, when tokens are bound.
pub(super) fn binding(shared: &Shared, parts: &Parts) -> Option<String> {
    let mtls = shared.strict.as_ref()?.config.mtls.as_ref()?;
    if !mtls.certificate_bound_tokens {
        return None;
    }
    peer(parts).flatten().map(|cert| cert.x5t.clone())
}

/// The TLS listener's settings, made once at start.
pub(super) struct Listener {
    /// `https://127.0.0.1:PORT`, where it listens.
    pub(super) origin: String,
    pub(super) config: Arc<ServerConfig>,
    /// The CA that signed the listener's certificate, PEM: what a client must trust.
    pub(super) ca_pem: String,
    /// The registered `self_signed_tls_client_auth` certificate's thumbprint.
    pub(super) registered_x5t: Option<String>,
}

/// Why the mTLS settings are unusable.
fn invalid(what: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_string())
}

/// The listener at `origin` for `mtls`, with the client registered for `client_auth`.
pub(super) fn listener(
    origin: String,
    mtls: &Mtls,
    client_auth: &ClientAuth,
) -> std::io::Result<Listener> {
    let registered_x5t = match client_auth {
        ClientAuth::SelfSignedTlsClientAuth { certificate_pem } => {
            let der = CertificateDer::from_pem_slice(certificate_pem.as_bytes()).map_err(|e| {
                invalid(format_args!(
                    "the self_signed_tls_client_auth certificate is no PEM certificate: {e}"
                ))
            })?;
            Some(thumbprint(&der))
        }
        ClientAuth::TlsClientAuth { .. } | ClientAuth::TlsClientAuthSubjectDn { .. }
            if mtls.client_ca_pem.is_none() =>
        {
            return Err(invalid(
                "tls_client_auth needs Mtls::client_ca_pem, the CA that issues the client's certificate",
            ))
        }
        ClientAuth::TlsClientAuthSubjectDn { subject_dn } if Dn::parse(subject_dn).is_none() => {
            return Err(invalid(
                "the tls_client_auth_subject_dn is no RFC 4514 distinguished name",
            ))
        }
        _ => None,
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier: Arc<dyn ClientCertVerifier> = match &mtls.client_ca_pem {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| invalid(format_args!("Mtls::client_ca_pem: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| invalid(format_args!("Mtls::client_ca_pem: {e}")))?;
            }
            if roots.is_empty() {
                return Err(invalid("Mtls::client_ca_pem holds no certificate"));
            }
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(invalid)?
        }
        None => Arc::new(AnyCertificate {
            algorithms: provider.signature_verification_algorithms,
        }),
    };
    let (ca_pem, chain, key) = server_identity().map_err(invalid)?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(invalid)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(invalid)?;
    Ok(Listener {
        origin,
        config: Arc::new(config),
        ca_pem,
        registered_x5t,
    })
}

/// A CA of the emulation's own, and a certificate it signed for `127.0.0.1` and `localhost`.
fn server_identity(
) -> Result<(String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), rcgen::Error> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "tower-token-auth emulation CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = rcgen::KeyPair::generate()?;
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)?;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    Ok((ca.pem(), vec![cert.der().clone()], key))
}

/// The TLS layer of `self_signed_tls_client_auth` (RFC 8705 2.2): any well-formed certificate,
/// chained to nothing, as long as the client proves it holds the key; which certificate it is
/// the token endpoint checks, by its thumbprint.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyCertificate {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match webpki::EndEntityCert::try_from(end_entity) {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(_) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadEncoding,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Whether a failed TLS handshake was the client's certificate being refused: a violation, as a
/// wrong certificate at the token endpoint is. Other failures (a client that does not trust the
/// listener, a port scan) are not the client's protocol misuse.
pub(super) fn refused_certificate(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_)))
}

/// Client authentication by the connection's certificate (RFC 8705 2): `client_id` in the body,
/// nothing else that authenticates, over TLS with the registered certificate (by SAN DNS name,
/// subject DN, or thumbprint). The error is the
/// answer to send (boxed: a response is large and this is the cold path).
pub(super) fn authenticate(
    shared: &Shared,
    parts: &Parts,
    params: &wire::FormMap,
    refresh: bool,
    registered: &ClientAuth,
) -> Result<(), Box<Resp>> {
    let fail = |status, error, reason| Err(Box::new(violation(shared, status, error, reason)));
    if !matches!(wire::basic(&parts.headers, true), Basic::Absent)
        || params.contains_key("client_secret")
        || params.contains_key("client_assertion")
        || params.contains_key("client_assertion_type")
    {
        return fail(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "a secret or assertion sent by a client registered for mutual TLS",
        );
    }
    let Some(client_id) = params.get("client_id") else {
        return fail(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "mutual TLS client authentication without client_id",
        );
    };
    let certificate = match peer(parts) {
        None => {
            return fail(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "mutual TLS client authentication over plain TCP",
            )
        }
        Some(None) => {
            return fail(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "mutual TLS client authentication without a client certificate",
            )
        }
        Some(Some(certificate)) => certificate,
    };
    if *client_id != shared.config.client_id {
        rejected(shared, refresh, "unknown client_id");
        return Err(Box::new(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        )));
    }
    let matches = match registered {
        ClientAuth::TlsClientAuth { san_dns } => ServerName::try_from(san_dns.as_str())
            .ok()
            .zip(webpki::EndEntityCert::try_from(&certificate.der).ok())
            .is_some_and(|(name, cert)| cert.verify_is_valid_for_subject_name(&name).is_ok()),
        ClientAuth::TlsClientAuthSubjectDn { subject_dn } => {
            let subject = Dn::subject_of(&certificate.der);
            subject.is_some() && subject == Dn::parse(subject_dn)
        }
        _ => {
            let registered = shared
                .strict
                .as_ref()
                .and_then(|s| s.mtls.as_ref())
                .and_then(|l| l.registered_x5t.as_deref());
            registered == Some(certificate.x5t.as_str())
        }
    };
    if !matches {
        return fail(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "the client certificate is not the one registered for the client",
        );
    }
    bump(&shared.counters.client_certificates);
    Ok(())
}
