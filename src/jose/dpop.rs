//! DPoP proofs (RFC 9449 §4.2): a JWT per HTTP request, signed with the key its token is bound
//! to. What is per key (the header, with the public JWK, as base64url) is computed once.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use http::{Method, Uri};
use serde::Serialize;

use super::b64;
use super::jws::{self, Signer};
use super::key::SigningKey;
use crate::error::AuthError;
use crate::secret::Secret;

/// A DPoP key (RFC 9449): the key pair an access token is bound to, and the proofs it signs.
///
/// Make one from a [`SigningKey`], generated (one per client, or per session) or read from a
/// file. Its [`thumbprint`](Self::thumbprint) is what a token bound
/// to it names in `cnf.jkt` (and what a `dpop_jkt` authorization parameter sends). The header of
/// its proofs (`typ` `dpop+jwt`, `alg`, the public `jwk`) is encoded once, when it is made; a
/// proof then costs a random `jti`, the claims and one signature. Clones share the key.
///
/// ```
/// use tower_token_auth::jose::{Algorithm, DpopKey, SigningKey};
/// use tower_token_auth::Secret;
///
/// let key = DpopKey::new(SigningKey::generate(Algorithm::ES256)?);
/// let uri: http::Uri = "https://api.example.com/orders?page=2".parse()?;
/// let token = Secret::from("an-access-token");
/// let proof = key.proof(&http::Method::GET, &uri, Some(&token), None)?;
/// // Sent as `DPoP: <proof>` with `Authorization: DPoP <token>`.
/// let request = http::Request::get(uri).header("DPoP", proof).body(())?;
/// # let _ = request;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct DpopKey {
    key: SigningKey,
    /// `{"typ":"dpop+jwt","alg":…,"jwk":…}`, base64url.
    header: Arc<str>,
}

#[derive(Serialize)]
struct Claims<'a> {
    jti: &'a str,
    htm: &'a str,
    htu: &'a str,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

impl DpopKey {
    /// Signs DPoP proofs with `key`. Its `kid` plays no part: a proof carries the public key
    /// itself. ES256 and EdDSA are the usual choices; RSA keys are slow to generate and to sign
    /// with.
    pub fn new(key: SigningKey) -> Self {
        // The header as JSON, by hand: the JWK members are canonical JSON already.
        let json = format!(
            r#"{{"typ":"dpop+jwt","alg":"{}","jwk":{}}}"#,
            key.algorithm().as_str(),
            key.required_members()
        );
        Self {
            header: b64::encode(json.as_bytes()).into(),
            key,
        }
    }

    /// The RFC 7638 thumbprint of the public key (base64url SHA-256): what a token bound to
    /// this key carries in `cnf.jkt`.
    pub fn thumbprint(&self) -> &str {
        self.key.thumbprint()
    }

    /// A proof for one request: `method` and `uri` (which must be absolute) as `htm` and `htu`
    /// (scheme, host and port, the port left out when it is the scheme's default, and path; no
    /// query, no fragment), a fresh random `jti`, `iat` now; `ath` (the base64url SHA-256 of
    /// `access_token`) when the request carries a token, and the server's `nonce` when it sent
    /// one.
    ///
    /// Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) for a URI that is not absolute.
    pub fn proof(
        &self,
        method: &Method,
        uri: &Uri,
        access_token: Option<&Secret>,
        nonce: Option<&str>,
    ) -> Result<String, AuthError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.proof_at(method, uri, access_token, nonce, now)
    }

    /// [`proof`](Self::proof) issued at `iat` (seconds since the Unix epoch).
    pub(crate) fn proof_at(
        &self,
        method: &Method,
        uri: &Uri,
        access_token: Option<&Secret>,
        nonce: Option<&str>,
        iat: u64,
    ) -> Result<String, AuthError> {
        let htu = htu(uri)?;
        let mut jti = String::with_capacity(22);
        b64::jti_into(&mut jti)?;
        let ath = access_token.map(|token| {
            b64::encode(digest::digest(&digest::SHA256, token.expose().as_bytes()).as_ref())
        });
        let claims = Claims {
            jti: &jti,
            htm: method.as_str(),
            htu: &htu,
            iat,
            ath: ath.as_deref(),
            nonce,
        };
        let hint = 96 + htu.len() + nonce.map_or(0, str::len) + if ath.is_some() { 52 } else { 0 };
        jws::compact(&self.header, &claims, hint, Signer::Key(&self.key))
    }
}

/// The `htu` of a request to `uri` (RFC 9449 §4.2, with RFC 3986 §6.2.2 and §6.2.3
/// normalisation): lowercase scheme and host, the port only when it is not the scheme's
/// default, the path (`/` when empty); no user info, query or fragment.
pub(crate) fn htu(uri: &Uri) -> Result<String, AuthError> {
    let path = match uri.path() {
        "" => "/",
        path => path,
    };
    let mut htu = origin(uri, path.len())?;
    htu.push_str(path);
    Ok(htu)
}

/// The origin of `uri` as `htu` writes it (scheme, host, and a port that is not the scheme's
/// default), with room for `more` bytes: what a server's DPoP nonce is kept for.
pub(crate) fn origin(uri: &Uri, more: usize) -> Result<String, AuthError> {
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(AuthError::config(
            "a DPoP proof needs an absolute URI (scheme and host); for tonic, make the client \
             with `with_origin`",
        ));
    };
    let mut origin = String::with_capacity(scheme.len() + authority.as_str().len() + more + 3);
    origin.push_str(scheme);
    origin.make_ascii_lowercase();
    origin.push_str("://");
    let host_start = origin.len();
    origin.push_str(authority.host());
    origin[host_start..].make_ascii_lowercase();
    let default = match origin[..host_start - 3].as_ref() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    if let Some(port) = authority.port_u16() {
        if Some(port) != default {
            origin.push(':');
            origin.push_str(&port.to_string());
        }
    }
    Ok(origin)
}

/// Two DPoP keys are equal when their public keys are (the same thumbprint), as a token bound to
/// one is bound to the other.
impl PartialEq for DpopKey {
    fn eq(&self, other: &Self) -> bool {
        self.thumbprint() == other.thumbprint()
    }
}

impl Eq for DpopKey {}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::Algorithm;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    #[test]
    fn htu_normalisation() {
        let cases = [
            (
                "https://Server.Example.COM/token",
                "https://server.example.com/token",
            ),
            ("https://a.test:443/x?q=1", "https://a.test/x"),
            ("http://a.test:80/x", "http://a.test/x"),
            ("http://a.test:443/x", "http://a.test:443/x"),
            ("https://a.test:8443/x/y?q#f", "https://a.test:8443/x/y"),
            ("HTTPS://user:pw@a.test", "https://a.test/"),
            ("https://[::1]:443/p", "https://[::1]/p"),
        ];
        for (uri, want) in cases {
            let uri: Uri = uri.parse().unwrap();
            assert_eq!(htu(&uri).unwrap(), want, "{uri}");
        }
        let relative: Uri = "/token".parse().unwrap();
        assert_eq!(htu(&relative).unwrap_err().kind(), crate::ErrorKind::Config);
    }

    #[test]
    fn header_is_computed_once_and_carries_the_public_jwk() {
        let key = DpopKey::new(SigningKey::generate(Algorithm::ES256).unwrap());
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&*key.header).unwrap()).unwrap();
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["jwk"]["kty"], "EC");
        assert!(header["jwk"].get("d").is_none());
        let proof = key
            .proof_at(
                &Method::POST,
                &"https://a.test/t".parse().unwrap(),
                None,
                Some("n-1"),
                7,
            )
            .unwrap();
        assert!(proof.starts_with(&format!("{}.", key.header)));
    }
}
