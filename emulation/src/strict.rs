//! The run-time state of the OAuth2 extensions ([`OAuthExtensions`]): the registered client
//! key, the assertions' `jti`s, DPoP, the TLS listener, and the URLs the server knows itself by.

use super::config::{Api, Config};
use super::dpop::DpopState;
use super::extensions::{ClientAuth, OAuthExtensions};
use super::jose::{self, JtiCache, KeyError, PublicKey};
use super::mtls::Listener;
use super::oauth2;

/// Where the revocation endpoint is served.
pub(super) const REVOKE_PATH: &str = "/oauth/revoke";
/// Where the introspection endpoint is served.
pub(super) const INTROSPECT_PATH: &str = "/oauth/introspect";
/// The two discovery documents' paths.
pub(super) const DISCOVERY_PATHS: [&str; 2] = [
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
];

pub(super) struct Strict {
    pub(super) config: OAuthExtensions,
    /// The server's base URL, the true issuer.
    pub(super) issuer: String,
    /// The `private_key_jwt` client's public key, or why the configured JWK is none.
    pub(super) client_key: Result<Option<PublicKey>, KeyError>,
    pub(super) assertion_jtis: JtiCache,
    pub(super) dpop: Option<DpopState>,
    /// The mutual TLS listener, when [`OAuthExtensions::mtls`] is on.
    pub(super) mtls: Option<Listener>,
}

impl Strict {
    /// The state for `config`, if it is [`Api::OAuth2`] with any extension on.
    pub(super) fn new(
        api: Api,
        config: &Config,
        issuer: &str,
        mtls: Option<Listener>,
    ) -> Option<Self> {
        let extensions = &config.extensions;
        if api != Api::OAuth2 || !extensions.any() {
            return None;
        }
        let client_key = match &extensions.client_auth {
            ClientAuth::PrivateKeyJwt { jwk, alg } => jose::public_key(jwk, *alg).map(Some),
            _ => Ok(None),
        };
        Some(Self {
            config: extensions.clone(),
            issuer: issuer.to_owned(),
            client_key,
            assertion_jtis: JtiCache::new(),
            dpop: extensions.dpop.clone().map(DpopState::new),
            mtls,
        })
    }

    pub(super) fn token_endpoint(&self) -> String {
        format!("{}{}", self.issuer, oauth2::TOKEN_PATH)
    }

    pub(super) fn revocation_endpoint(&self) -> String {
        format!("{}{REVOKE_PATH}", self.issuer)
    }

    pub(super) fn introspection_endpoint(&self) -> String {
        format!("{}{INTROSPECT_PATH}", self.issuer)
    }

    /// The TLS listener's endpoints as RFC 8705 5 `mtls_endpoint_aliases`, when it listens.
    pub(super) fn mtls_endpoint_aliases(&self) -> Option<serde_json::Value> {
        let origin = &self.mtls.as_ref()?.origin;
        let mut aliases = serde_json::json!({
            "token_endpoint": format!("{origin}{}", oauth2::TOKEN_PATH),
        });
        if let (true, Some(map)) = (self.config.revocation, aliases.as_object_mut()) {
            map.insert(
                "revocation_endpoint".to_owned(),
                format!("{origin}{REVOKE_PATH}").into(),
            );
        }
        Some(aliases)
    }
}
