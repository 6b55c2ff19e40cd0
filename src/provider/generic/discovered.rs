//! Endpoints read from the auth server's metadata (RFC 8414, OpenID Connect Discovery 1.0)
//! instead of configured: the issuer is configured, the documents name the rest. A client that
//! authenticates by its TLS certificate takes the `mtls_endpoint_aliases` (RFC 8705 §5) where
//! they are named, and a document that does not list the client's authentication method is
//! refused before any credential is sent.

use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use http::{Method, Request, Response, Uri};
use http_body_util::Full;

use crate::error::AuthError;
use crate::provider::AuthRequest;

/// What a provider learned of its auth server, and what it asks next.
#[derive(Debug)]
pub(crate) struct Discovered {
    issuer: String,
    /// OpenID Connect's document first, RFC 8414's when that one is missing.
    documents: [Uri; 2],
    /// The client's authentication method, checked against
    /// `token_endpoint_auth_methods_supported` when the document lists any.
    method: Option<&'static str>,
    /// The client authenticates by its TLS certificate: the aliases are its endpoints.
    mtls: bool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    token: Option<Uri>,
    revocation: Option<Uri>,
    /// Documents asked for since the last one read: which to ask next.
    asked: usize,
    /// The token endpoint answered 404: read the metadata again before the next call.
    stale: bool,
}

impl Discovered {
    /// Discovery of `issuer` (an absolute `http` or `https` URL without query or fragment).
    pub(crate) fn new(issuer: &str) -> Result<Self, AuthError> {
        let bad = || AuthError::config("the issuer must be an absolute http(s) URL without query");
        let uri: Uri = issuer.parse().map_err(|_| bad())?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(bad());
        };
        if !matches!(scheme, "http" | "https") || uri.query().is_some() {
            return Err(bad());
        }
        let path = uri.path().trim_end_matches('/');
        let openid = format!("{scheme}://{authority}{path}/.well-known/openid-configuration");
        // RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path.
        let oauth = format!("{scheme}://{authority}/.well-known/oauth-authorization-server{path}");
        Ok(Self {
            issuer: issuer.to_owned(),
            documents: [
                openid.parse().map_err(|_| bad())?,
                oauth.parse().map_err(|_| bad())?,
            ],
            method: None,
            mtls: false,
            state: Mutex::default(),
        })
    }

    /// For a client authenticating by `method` (its registered name, when known); `mtls` when
    /// that is by its TLS certificate.
    pub(crate) fn for_client(mut self, method: Option<&'static str>, mtls: bool) -> Self {
        self.method = method;
        self.mtls = mtls;
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next document to ask for, while no token endpoint is known or it went stale.
    pub(crate) fn request(&self) -> Option<Result<AuthRequest, AuthError>> {
        let mut state = self.state();
        if state.token.is_some() && !state.stale {
            return None;
        }
        let uri = self.documents[state.asked % 2].clone();
        state.asked += 1;
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.method_mut() = Method::GET;
        *request.uri_mut() = uri;
        request.headers_mut().insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        );
        Some(Ok(request))
    }

    /// Reads a document: its `issuer` must be the configured one, exactly (RFC 8414 §3.3), it
    /// must name a token endpoint (an mTLS alias will do for an mTLS client), and list the
    /// client's method if it lists any.
    pub(crate) fn read(&self, response: &Response<Bytes>) -> Result<(), AuthError> {
        #[derive(serde::Deserialize)]
        struct Endpoints {
            token_endpoint: Option<String>,
            revocation_endpoint: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Metadata {
            issuer: String,
            token_endpoint: String,
            revocation_endpoint: Option<String>,
            token_endpoint_auth_methods_supported: Option<Vec<String>>,
            mtls_endpoint_aliases: Option<Endpoints>,
        }
        let metadata: Metadata = serde_json::from_slice(response.body()).map_err(|_| {
            AuthError::malformed("the metadata is not JSON with `issuer` and `token_endpoint`")
        })?;
        if metadata.issuer != self.issuer {
            return Err(AuthError::config(format!(
                "the metadata names the issuer `{}`, not the configured `{}`",
                metadata.issuer, self.issuer
            )));
        }
        let endpoint = |url: &str, name: &str| {
            url.parse::<Uri>()
                .ok()
                .filter(|uri| matches!(uri.scheme_str(), Some("http" | "https")))
                .ok_or_else(|| AuthError::malformed(format!("the metadata's `{name}` is no URL")))
        };
        if let (Some(method), Some(supported)) = (
            self.method,
            metadata.token_endpoint_auth_methods_supported.as_deref(),
        ) {
            if !supported.iter().any(|m| m == method) {
                return Err(AuthError::config(format!(
                    "the auth server does not support the client authentication method `{method}` \
                     (its metadata's token_endpoint_auth_methods_supported lists {})",
                    quoted(supported)
                )));
            }
        }
        // RFC 8705 §5: an mTLS client uses an alias where there is one, the plain endpoint
        // where there is none.
        let aliases = (metadata.mtls_endpoint_aliases.as_ref()).filter(|_| self.mtls);
        let (token, token_name) = match aliases.and_then(|a| a.token_endpoint.as_ref()) {
            Some(alias) => (alias, "mtls_endpoint_aliases.token_endpoint"),
            None => (&metadata.token_endpoint, "token_endpoint"),
        };
        let token = endpoint(token, token_name)?;
        let revocation = match aliases.and_then(|a| a.revocation_endpoint.as_ref()) {
            Some(alias) => Some(endpoint(
                alias,
                "mtls_endpoint_aliases.revocation_endpoint",
            )?),
            None => match &metadata.revocation_endpoint {
                Some(url) => Some(endpoint(url, "revocation_endpoint")?),
                None => None,
            },
        };
        let mut state = self.state();
        *state = State {
            token: Some(token),
            revocation,
            asked: 0,
            stale: false,
        };
        Ok(())
    }

    /// The token endpoint answered 404: read the metadata again before the next call.
    pub(crate) fn stale(&self) {
        self.state().stale = true;
    }

    /// `request` sent to the token endpoint the metadata names.
    pub(crate) fn to_token_endpoint(
        &self,
        mut request: AuthRequest,
    ) -> Result<AuthRequest, AuthError> {
        let token = self.state().token.clone();
        let token =
            token.ok_or_else(|| AuthError::config("the auth server's metadata is not read yet"))?;
        *request.uri_mut() = token;
        Ok(request)
    }

    /// `request` sent to the revocation endpoint the metadata names, if it names one.
    pub(crate) fn to_revocation_endpoint(&self, mut request: AuthRequest) -> Option<AuthRequest> {
        let revocation = self.state().revocation.clone()?;
        *request.uri_mut() = revocation;
        Some(request)
    }
}

/// `names` as a short list for a message: backquoted, at most eight, each cut to 64 bytes (the
/// document is the server's text).
fn quoted(names: &[String]) -> String {
    let mut shown: Vec<String> = (names.iter().take(8))
        .map(|name| {
            let end = (0..=name.len().min(64))
                .rev()
                .find(|&i| name.is_char_boundary(i))
                .unwrap_or(0);
            format!("`{}`", name[..end].escape_debug())
        })
        .collect();
    if names.len() > 8 {
        shown.push(format!("and {} more", names.len() - 8));
    }
    match shown.is_empty() {
        true => "none".to_owned(),
        false => shown.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_follow_the_issuers_path() {
        let plain = Discovered::new("https://idp.example.com").unwrap();
        assert_eq!(
            plain.documents[0],
            "https://idp.example.com/.well-known/openid-configuration"
        );
        assert_eq!(
            plain.documents[1],
            "https://idp.example.com/.well-known/oauth-authorization-server"
        );
        let realm = Discovered::new("https://kc.example.com/realms/api/").unwrap();
        assert_eq!(
            realm.documents[0],
            "https://kc.example.com/realms/api/.well-known/openid-configuration"
        );
        assert_eq!(
            realm.documents[1],
            "https://kc.example.com/.well-known/oauth-authorization-server/realms/api"
        );
        for bad in [
            "/relative",
            "ftp://x.example.com",
            "https://x.example.com/?q=1",
            "",
        ] {
            assert!(Discovered::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn documents_are_asked_in_turn_until_one_is_read() {
        let discovered = Discovered::new("https://idp.example.com").unwrap();
        let asked = |d: &Discovered| d.request().map(|r| r.unwrap().uri().path().to_owned());
        assert_eq!(
            asked(&discovered).as_deref(),
            Some("/.well-known/openid-configuration")
        );
        assert_eq!(
            asked(&discovered).as_deref(),
            Some("/.well-known/oauth-authorization-server")
        );
        let document = serde_json::json!({
            "issuer": "https://idp.example.com",
            "token_endpoint": "https://idp.example.com/token",
        });
        discovered
            .read(&Response::new(Bytes::from(document.to_string())))
            .unwrap();
        assert_eq!(asked(&discovered), None);
        discovered.stale();
        assert_eq!(
            asked(&discovered).as_deref(),
            Some("/.well-known/openid-configuration")
        );
    }

    #[test]
    fn another_issuer_or_no_token_endpoint_is_refused() {
        let discovered = Discovered::new("https://idp.example.com").unwrap();
        let read = |document: serde_json::Value| {
            discovered.read(&Response::new(Bytes::from(document.to_string())))
        };
        let other = read(serde_json::json!({
            "issuer": "https://evil.example.com",
            "token_endpoint": "https://evil.example.com/token",
        }));
        assert_eq!(other.unwrap_err().kind(), crate::ErrorKind::Config);
        let missing = read(serde_json::json!({ "issuer": "https://idp.example.com" }));
        assert_eq!(missing.unwrap_err().kind(), crate::ErrorKind::Malformed);
        assert!(discovered.request().is_some(), "nothing was learned");
    }

    fn read(discovered: &Discovered, document: serde_json::Value) -> Result<(), AuthError> {
        discovered.read(&Response::new(Bytes::from(document.to_string())))
    }

    fn token_endpoint(discovered: &Discovered) -> String {
        let request = Request::new(Full::new(Bytes::new()));
        let request = discovered.to_token_endpoint(request).unwrap();
        request.uri().to_string()
    }

    fn revocation_endpoint(discovered: &Discovered) -> Option<String> {
        let request = discovered.to_revocation_endpoint(Request::new(Full::new(Bytes::new())));
        request.map(|r| r.uri().to_string())
    }

    #[test]
    fn an_mtls_client_takes_the_aliases_where_named() {
        let document = serde_json::json!({
            "issuer": "https://idp.example.com",
            "token_endpoint": "https://idp.example.com/token",
            "revocation_endpoint": "https://idp.example.com/revoke",
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "tls_client_auth"],
            "mtls_endpoint_aliases": { "token_endpoint": "https://mtls.idp.example.com/token" },
        });
        let mtls = Discovered::new("https://idp.example.com")
            .unwrap()
            .for_client(Some("tls_client_auth"), true);
        read(&mtls, document.clone()).unwrap();
        assert_eq!(token_endpoint(&mtls), "https://mtls.idp.example.com/token");
        // No alias for revocation: the plain endpoint.
        assert_eq!(
            revocation_endpoint(&mtls).as_deref(),
            Some("https://idp.example.com/revoke")
        );
        let secret = Discovered::new("https://idp.example.com")
            .unwrap()
            .for_client(Some("client_secret_basic"), false);
        read(&secret, document).unwrap();
        assert_eq!(token_endpoint(&secret), "https://idp.example.com/token");
    }

    #[test]
    fn a_method_the_server_does_not_list_is_a_config_error() {
        let discovered = Discovered::new("https://idp.example.com")
            .unwrap()
            .for_client(Some("self_signed_tls_client_auth"), true);
        let error = read(
            &discovered,
            serde_json::json!({
                "issuer": "https://idp.example.com",
                "token_endpoint": "https://idp.example.com/token",
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "tls_client_auth"],
            }),
        )
        .unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::Config);
        assert_eq!(
            error.to_string(),
            "invalid auth configuration: the auth server does not support the client \
             authentication method `self_signed_tls_client_auth` (its metadata's \
             token_endpoint_auth_methods_supported lists `client_secret_basic`, `tls_client_auth`)"
        );
        assert!(discovered.request().is_some(), "nothing was learned");
        // A document that lists no methods is taken at its word elsewhere: no check.
        read(
            &discovered,
            serde_json::json!({
                "issuer": "https://idp.example.com",
                "token_endpoint": "https://idp.example.com/token",
            }),
        )
        .unwrap();
    }
}
