//! What [`Api::OAuth2`](super::Api::OAuth2) adds beyond RFC 6749 when a test asks for it: client
//! authentication by assertion or by mutual TLS, DPoP, discovery, revocation, token exchange and
//! resource indicators. Everything here is off by default ([`OAuthExtensions::default`]), and then the
//! OAuth2 emulation behaves exactly as it always did.

use std::time::Duration;

/// The modern OAuth2 features an [`Api::OAuth2`](super::Api::OAuth2) emulation verifies, in
/// [`Config::extensions`](super::Config::extensions). Every field's default is "off"; the other
/// APIs ignore all of it.
#[derive(Clone, Debug, Default)]
pub struct OAuthExtensions {
    /// How the registered client authenticates at the token and revocation endpoints (RFC 6749
    /// 2.3, RFC 7523, OpenID Connect Core 9). Default: `client_secret_basic` or
    /// `client_secret_post`, either one, as the plain emulation takes.
    pub client_auth: ClientAuth,
    /// DPoP (RFC 9449) at the token endpoint and the resource; `None` (the default) ignores any
    /// `DPoP` header and issues bearer tokens only.
    pub dpop: Option<Dpop>,
    /// Serves `GET /.well-known/openid-configuration` and
    /// `/.well-known/oauth-authorization-server`; `None` (the default) answers 404 there.
    pub discovery: Option<Discovery>,
    /// Serves `POST /oauth/revoke` (RFC 7009). Default `false`: 404.
    pub revocation: bool,
    /// Serves `POST /oauth/introspect` (RFC 7662): whether a token is active, its subject, and
    /// what it is bound to (`cnf`), for resource servers a test builds itself. The caller is
    /// not authenticated. Default `false`: 404.
    pub introspection: bool,
    /// Accepts the token exchange grant (RFC 8693); `None` (the default) refuses it as an
    /// unsupported grant type.
    pub token_exchange: Option<TokenExchange>,
    /// Accepts `resource` (RFC 8707, may repeat) and `audience` (may repeat) on the
    /// `client_credentials` grant and records them on the access token. Default `false`: a
    /// repeated parameter is a violation, as in plain RFC 6749. The token exchange grant always
    /// takes them.
    pub resource_indicators: bool,
    /// The audience the protected resource requires: a token that was not issued for it (by
    /// `audience` or `resource`) is refused with 401 and counted as a violation. Default `None`:
    /// any live token will do.
    pub resource_audience: Option<String>,
    /// The protected resource also answers at `/resource/{audience}`, for as many audiences as
    /// a test names (one per tenant, say), each requiring a token issued for that audience (by
    /// `audience` or `resource`): a token issued for another is refused with 401 and counted
    /// as a violation (`token not issued for the resource's audience`), which is how a client
    /// that keeps one session per audience is caught sending one session's token for another.
    /// Default `false`.
    pub audience_per_path: bool,
    /// Mutual TLS (RFC 8705): a second listener, TLS on another port, that asks clients for a
    /// certificate; `None` (the default) serves plain TCP only. Needed by the
    /// [`ClientAuth::TlsClientAuth`] and [`ClientAuth::SelfSignedTlsClientAuth`] methods.
    pub mtls: Option<Mtls>,
}

impl OAuthExtensions {
    /// Whether any extension is on; when none is, the emulation takes its plain code paths.
    pub(super) fn any(&self) -> bool {
        !matches!(self.client_auth, ClientAuth::SecretBasicOrPost)
            || self.dpop.is_some()
            || self.discovery.is_some()
            || self.revocation
            || self.introspection
            || self.token_exchange.is_some()
            || self.resource_indicators
            || self.resource_audience.is_some()
            || self.audience_per_path
            || self.mtls.is_some()
    }
}

/// The one client authentication method the registered client uses (its
/// `token_endpoint_auth_method`).
///
/// Sending credentials by any other method is refused with 401 `invalid_client` and counted as
/// a violation: the client is configured wrong. Sending two at once is a 400
/// `invalid_request` violation, as in the plain emulation.
///
/// The mutual TLS methods (RFC 8705 2) need [`OAuthExtensions::mtls`]: the client then sends
/// its `client_id` in the body and nothing else that authenticates, over the TLS listener with
/// its certificate.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_secret_basic` or `client_secret_post`, whichever the client sends (the plain
    /// emulation's behaviour).
    #[default]
    SecretBasicOrPost,
    /// `client_secret_basic` only: HTTP Basic with the form-urlencoded id and secret.
    SecretBasic,
    /// `client_secret_post` only: `client_id` and `client_secret` in the body.
    SecretPost,
    /// `client_secret_jwt`: a JWT assertion signed with HS256 keyed by the client secret.
    SecretJwt,
    /// `private_key_jwt`: a JWT assertion signed with the private key of this public JWK.
    PrivateKeyJwt {
        /// The client's public key as a JWK (`EC` P-256, `RSA` or `OKP` Ed25519). A `kid`
        /// member, when present, must be the `kid` of every assertion. A JWK that is no such
        /// public key makes [`Emulation::start`](super::Emulation::start) fail.
        jwk: serde_json::Value,
        /// The one algorithm the client signs with; it must suit the key.
        alg: SigningAlg,
    },
    /// `tls_client_auth` (RFC 8705 2.1): a certificate issued by a CA of
    /// [`Mtls::client_ca_pem`] (checked at the TLS handshake; another CA's certificate fails
    /// it, and counts as a violation), naming the registered subject.
    TlsClientAuth {
        /// The registered `tls_client_auth_san_dns` (RFC 8705 2.1.2): a DNS name the
        /// certificate's subject alternative names must hold.
        san_dns: String,
    },
    /// `tls_client_auth` registered by subject (RFC 8705 2.1.2,
    /// `tls_client_auth_subject_dn`): as [`TlsClientAuth`](Self::TlsClientAuth), the
    /// certificate's subject distinguished name the one registered.
    TlsClientAuthSubjectDn {
        /// The registered subject, as RFC 4514 writes it (`CN=orders,O=Example Corp,C=NL`):
        /// compared with the certificate's subject attribute by attribute, types and values
        /// without regard to case. A string that is no distinguished name makes
        /// [`Emulation::start`](super::Emulation::start) fail.
        subject_dn: String,
    },
    /// `self_signed_tls_client_auth` (RFC 8705 2.2): this certificate exactly, compared by its
    /// SHA-256 thumbprint; at the TLS layer any certificate is taken whose key the client holds.
    SelfSignedTlsClientAuth {
        /// The registered certificate, PEM (RFC 8705 registers it in the client's `jwks` as
        /// `x5c`; the thumbprint is what counts). A PEM that holds no certificate makes
        /// [`Emulation::start`](super::Emulation::start) fail.
        certificate_pem: String,
    },
}

impl ClientAuth {
    /// Whether this is one of the mutual TLS methods.
    pub(super) fn is_mtls(&self) -> bool {
        matches!(
            self,
            ClientAuth::TlsClientAuth { .. }
                | ClientAuth::TlsClientAuthSubjectDn { .. }
                | ClientAuth::SelfSignedTlsClientAuth { .. }
        )
    }
}

/// Mutual TLS (RFC 8705): a TLS listener beside the plain one, on another port of `127.0.0.1`
/// ([`Emulation::mtls_base_url`](super::Emulation::mtls_base_url)), serving the same endpoints.
///
/// Its certificate comes from a CA the emulation makes at start
/// ([`Emulation::server_ca_pem`](super::Emulation::server_ca_pem)). It asks every client for a
/// certificate and lets a connection without one through, so that the token endpoint answers
/// the OAuth way: a client registered for mutual TLS that presents none, presents another, or
/// sends a secret as well is refused with 401 `invalid_client` and counted as a violation.
/// Discovery publishes the listener's endpoints as `mtls_endpoint_aliases` (RFC 8705 5), unless
/// [`Discovery::mtls_endpoint_aliases`] names others.
#[derive(Clone, Debug)]
pub struct Mtls {
    /// The CA certificates, PEM, that issue `tls_client_auth` clients' certificates: a presented
    /// certificate must chain to one of them, or the handshake fails. `None` (the default): any
    /// certificate whose key the client holds, as `self_signed_tls_client_auth` wants.
    pub client_ca_pem: Option<String>,
    /// Whether access tokens issued over the TLS listener to a client with a certificate are
    /// bound to it (RFC 8705 3): `cnf` `x5t#S256` in the JWT, and the resource takes such a
    /// token only over a TLS connection presenting the same certificate (anything else is a
    /// violation). Default `true`.
    pub certificate_bound_tokens: bool,
}

impl Default for Mtls {
    fn default() -> Self {
        Self {
            client_ca_pem: None,
            certificate_bound_tokens: true,
        }
    }
}

/// The asymmetric JWS algorithms the emulation verifies, for `private_key_jwt` and DPoP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SigningAlg {
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// Ed25519.
    EdDSA,
}

impl SigningAlg {
    /// Every algorithm, in the order discovery lists them.
    pub const ALL: [SigningAlg; 4] = [
        SigningAlg::ES256,
        SigningAlg::RS256,
        SigningAlg::PS256,
        SigningAlg::EdDSA,
    ];

    /// The JWS `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            SigningAlg::ES256 => "ES256",
            SigningAlg::RS256 => "RS256",
            SigningAlg::PS256 => "PS256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    pub(super) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }
}

/// DPoP (RFC 9449) settings.
#[derive(Clone, Debug)]
pub struct Dpop {
    /// Whether every token request and every resource request must carry a DPoP proof (and
    /// every access token is DPoP-bound). With `false` a request without a `DPoP` header gets a
    /// bearer token, and a request with one is checked and gets a DPoP-bound token.
    ///
    /// Only access tokens are bound (`cnf.jkt`): the client is confidential, so its refresh
    /// tokens are bound to its client authentication already (RFC 9449 5), and each refresh
    /// binds its new access token to the key of that request's proof, if it has one.
    pub required: bool,
    /// How far a proof's `iat` may lie from the server's clock, either way. Default 60 s; a
    /// proof's `jti` is remembered for twice as long, and sending it again is a violation.
    pub iat_window: Duration,
    /// Server-provided nonces (RFC 9449 section 8 and 9); `None` (the default) demands none.
    pub nonces: Option<DpopNonces>,
}

impl Default for Dpop {
    fn default() -> Self {
        Self {
            required: false,
            iat_window: Duration::from_secs(60),
            nonces: None,
        }
    }
}

/// Where the server demands a DPoP nonce, and how nonces rotate.
///
/// A proof without the current nonce is answered with a challenge: 400
/// `{"error":"use_dpop_nonce"}` at the token endpoint, 401 with `WWW-Authenticate: DPoP
/// error="use_dpop_nonce"` at the resource, each with a `DPoP-Nonce` header. A challenge is no
/// violation (a client cannot know the first nonce); [`Stats::dpop_nonce_challenges`](super::Stats::dpop_nonce_challenges)
/// counts them. Every answer of an end that demands nonces carries the newest in `DPoP-Nonce`.
#[derive(Clone, Debug)]
pub struct DpopNonces {
    /// Demand nonces at the token endpoint. Default `true`.
    pub token_endpoint: bool,
    /// Demand nonces at the protected resource. Default `true`.
    pub resource: bool,
    /// A new nonce replaces the current one this often. Default 5 minutes.
    pub rotate_every: Duration,
    /// How long a replaced nonce is still accepted. Default 30 s.
    pub grace: Duration,
}

impl Default for DpopNonces {
    fn default() -> Self {
        Self {
            token_endpoint: true,
            resource: true,
            rotate_every: Duration::from_secs(300),
            grace: Duration::from_secs(30),
        }
    }
}

/// The discovery documents (RFC 8414, OpenID Connect Discovery).
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    /// The `issuer` the documents state instead of the server's base URL, to test a client that
    /// must refuse a mismatched issuer. Default `None`: the true one.
    pub issuer_override: Option<String>,
    /// `mtls_endpoint_aliases` (RFC 8705 5) to publish, as a JSON object. Default `None`: with
    /// [`OAuthExtensions::mtls`] on, the TLS listener's token endpoint (and revocation endpoint,
    /// when served), else none.
    pub mtls_endpoint_aliases: Option<serde_json::Value>,
}

/// Token exchange (RFC 8693) settings.
#[derive(Clone, Debug, Default)]
pub struct TokenExchange {
    /// Subject tokens the server trusts without having issued them, each with the subject it
    /// stands for: e.g. a Kubernetes service-account token and
    /// `system:serviceaccount:ns:name`. Taken with `subject_token_type` `jwt` or `access_token`.
    pub trusted_subject_tokens: Vec<(String, String)>,
}
