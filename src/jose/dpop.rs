//! DPoP proofs (RFC 9449 §4.2): a JWT per HTTP request, signed with the key its token is bound
//! to. What is per key (the header, with the public JWK, as base64url) is computed once.

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use http::{Method, Uri};

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
/// proof then costs a fresh `jti`, the claims and one signature. Clones share the key.
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
    /// query, no fragment), a fresh `jti`, `iat` now; `ath` (the base64url SHA-256 of
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
        self.proof_at(method, uri, access_token, nonce, now())
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
        let ath = access_token.map(ath);
        let proof = self.sign_at(method, &Htu::of(uri)?, ath.as_deref(), nonce, iat)?;
        // base64url and dots: ASCII.
        String::from_utf8(proof).map_err(|_| AuthError::config("a DPoP proof is not ASCII"))
    }

    /// A proof for a request of `method` to `htu`, issued now, with `ath` and `nonce` as given:
    /// the layer's, which computes a token's `ath` once.
    pub(crate) fn sign(
        &self,
        method: &Method,
        htu: &Htu,
        ath: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<Vec<u8>, AuthError> {
        self.sign_at(method, htu, ath, nonce, now())
    }

    fn sign_at(
        &self,
        method: &Method,
        htu: &Htu,
        ath: Option<&str>,
        nonce: Option<&str>,
        iat: u64,
    ) -> Result<Vec<u8>, AuthError> {
        let jti = b64::jti()?;
        let capacity = 80
            + method.as_str().len()
            + htu.text.len()
            + ath.map_or(0, |ath| ath.len() + 9)
            + nonce.map_or(0, |nonce| nonce.len() + 11);
        let mut json = Vec::with_capacity(capacity);
        // NOTE: `jti` and `ath` are base64url, which JSON takes as it is.
        json.extend_from_slice(br#"{"jti":""#);
        json.extend_from_slice(&jti);
        json.extend_from_slice(br#"","htm":"#);
        json_string(&mut json, method.as_str());
        json.extend_from_slice(br#","htu":"#);
        json_string(&mut json, &htu.text);
        json.extend_from_slice(br#","iat":"#);
        decimal(&mut json, iat);
        if let Some(ath) = ath {
            json.extend_from_slice(br#","ath":""#);
            json.extend_from_slice(ath.as_bytes());
            json.push(b'"');
        }
        if let Some(nonce) = nonce {
            json.extend_from_slice(br#","nonce":"#);
            json_string(&mut json, nonce);
        }
        json.push(b'}');
        jws::sign(&self.header, &json, Signer::Key(&self.key))
    }
}

/// Seconds since the Unix epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `ath` of a request with `access_token`: its base64url SHA-256.
pub(crate) fn ath(access_token: &Secret) -> Box<str> {
    b64::encode(digest::digest(&digest::SHA256, access_token.expose().as_bytes()).as_ref()).into()
}

/// Appends `value` to `out` as a JSON string.
// NOTE: the claims are written by hand, as serde_json would write them: their strings (a
// method, a URI, base64url, a server's nonce of visible ASCII) need no escape but in odd cases,
// which go to serde_json.
fn json_string(out: &mut Vec<u8>, value: &str) {
    // Every byte looked at (no early exit), which the compiler vectorises.
    let plain = value.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        // Writing a string to a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *out, value);
    }
}

/// Appends `n` in decimal to `out`.
fn decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A request's `htu` (RFC 9449 §4.2, with RFC 3986 §6.2.2 and §6.2.3 normalisation): its
/// [`Origin`], then the path (`/` when empty); no user info, query or
/// fragment. Its origin is what the server's nonces are kept for.
#[derive(Debug)]
pub(crate) struct Htu {
    text: String,
    /// Where the origin ends.
    origin: usize,
}

impl Htu {
    /// The `htu` of a request to `uri`.
    ///
    /// Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) for a URI that is not absolute.
    pub(crate) fn of(uri: &Uri) -> Result<Self, AuthError> {
        let path = match uri.path() {
            "" => "/",
            path => path,
        };
        let origin = Origin::of(uri)?;
        let mut text =
            String::with_capacity(origin.scheme.len() + 3 + origin.host.len() + 6 + path.len());
        origin.write_to(&mut text);
        let origin = text.len();
        text.push_str(path);
        Ok(Self { text, origin })
    }

    /// The origin: scheme, host, and the port when it is not the scheme's default.
    pub(crate) fn origin(&self) -> &str {
        &self.text[..self.origin]
    }
}

/// A URI's origin as a proof's `htu` writes it (RFC 9449 §4.2, with RFC 3986 §6.2.2 and §6.2.3
/// normalisation: lowercase scheme and host, the port only when it is not the scheme's default,
/// no user info): what a server's DPoP nonces are kept for. Its parts are borrowed from the URI,
/// so that an answer's nonce is matched to a kept one without writing the origin out.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin<'a> {
    /// As the URI has it: written and compared in lowercase.
    scheme: &'a str,
    /// As the URI has it (an IPv6 host in its brackets, as `Uri::host` gives it): written and
    /// compared in lowercase.
    host: &'a str,
    /// `None` for the scheme's default port.
    port: Option<u16>,
}

impl<'a> Origin<'a> {
    /// The origin of `uri`.
    ///
    /// Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) for a URI that is not
    /// absolute.
    // NOTE: one pass over the authority (`http`'s `host` and `port` each split it again): this
    // runs for every DPoP request.
    pub(crate) fn of(uri: &'a Uri) -> Result<Self, AuthError> {
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(AuthError::config(
                "a DPoP proof needs an absolute URI (scheme and host); for tonic, make the client \
                 with `with_origin`",
            ));
        };
        let authority = authority.as_str();
        let host_port = match authority.bytes().rposition(|b| b == b'@') {
            Some(at) => &authority[at + 1..],
            None => authority,
        };
        // The port follows the last colon that is not inside an IPv6 host's brackets.
        let (host, port) = match host_port.bytes().rposition(|b| b == b':' || b == b']') {
            Some(colon) if host_port.as_bytes()[colon] == b':' => (
                &host_port[..colon],
                host_port[colon + 1..].parse::<u16>().ok(),
            ),
            _ => (host_port, None),
        };
        let default = if scheme.eq_ignore_ascii_case("https") {
            Some(443)
        } else if scheme.eq_ignore_ascii_case("http") {
            Some(80)
        } else {
            None
        };
        Ok(Self {
            scheme,
            host,
            port: port.filter(|&port| Some(port) != default),
        })
    }

    /// Appends the origin to `out`.
    pub(crate) fn write_to(&self, out: &mut String) {
        let start = out.len();
        out.push_str(self.scheme);
        out.push_str("://");
        out.push_str(self.host);
        out[start..].make_ascii_lowercase();
        if let Some(port) = self.port {
            // Writing to a `String` cannot fail.
            let _ = write!(out, ":{port}");
        }
    }

    /// Whether `origin`, as [`write_to`](Self::write_to) wrote one, is this one.
    pub(crate) fn is(&self, origin: &str) -> bool {
        let (scheme, host) = (self.scheme.len(), self.host.len());
        let matches = |range: std::ops::Range<usize>, part: &str| {
            origin
                .get(range)
                .is_some_and(|kept| kept.eq_ignore_ascii_case(part))
        };
        let Some(port) = origin.get(scheme + 3 + host..) else {
            return false;
        };
        matches(0..scheme, self.scheme)
            && matches(scheme..scheme + 3, "://")
            && matches(scheme + 3..scheme + 3 + host, self.host)
            && match self.port {
                None => port.is_empty(),
                Some(want) => port
                    .strip_prefix(':')
                    .is_some_and(|port| port.parse::<u16>() == Ok(want)),
            }
    }
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
            ("https://[::1]/p", "https://[::1]/p"),
            ("https://[::1]:8443/p", "https://[::1]:8443/p"),
            ("https://u:p@A.test:8443/p", "https://a.test:8443/p"),
            ("https://u@a.test:443", "https://a.test/"),
            ("https://a.test:/p", "https://a.test/p"),
            ("wss://a.test:443/p", "wss://a.test:443/p"),
        ];
        for (uri, want) in cases {
            let uri: Uri = uri.parse().unwrap();
            let htu = Htu::of(&uri).unwrap();
            assert_eq!(htu.text, want, "{uri}");
            let origin = Origin::of(&uri).unwrap();
            assert!(origin.is(htu.origin()), "{uri}");
            assert!(want.starts_with(htu.origin()), "{uri}");
            let mut written = String::new();
            origin.write_to(&mut written);
            assert_eq!(written, htu.origin(), "{uri}");
            for other in [
                "https://a.test",
                "https://a.test:8443",
                "http://a.test",
                "https://b.test",
                "https://[::1]",
                "https://a.test:8443x",
                "https://a.tes",
                "",
                "é",
            ] {
                assert_eq!(origin.is(other), other == htu.origin(), "{uri} and {other}");
            }
        }
        let relative: Uri = "/token".parse().unwrap();
        assert_eq!(
            Htu::of(&relative).unwrap_err().kind(),
            crate::ErrorKind::Config
        );
    }

    /// The claims as serde_json wrote them before they were written by hand.
    #[derive(serde::Serialize)]
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

    /// The claims as serde_json writes them, whatever the strings hold.
    #[test]
    fn claims_are_json() {
        let key = DpopKey::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
        let token = Secret::from("a-token");
        for nonce in [
            None,
            Some("n-1"),
            Some(r#"quote" back\slash"#),
            Some("tab\there"),
        ] {
            let uri: Uri = "https://a.test/p?q".parse().unwrap();
            let proof = key
                .proof_at(&Method::PATCH, &uri, Some(&token), nonce, 1_700_000_000)
                .unwrap();
            let claims = proof.split('.').nth(1).unwrap();
            let json = URL_SAFE_NO_PAD.decode(claims).unwrap();
            let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
            let jti = value["jti"].as_str().unwrap();
            assert_eq!(jti.len(), 22);
            let ath = ath(&token);
            let want = Claims {
                jti,
                htm: "PATCH",
                htu: "https://a.test/p",
                iat: 1_700_000_000,
                ath: Some(&ath),
                nonce,
            };
            assert_eq!(
                String::from_utf8(json).unwrap(),
                serde_json::to_string(&want).unwrap()
            );
        }
        let mut iat = Vec::new();
        for n in [0, 7, 10, u64::MAX] {
            iat.clear();
            decimal(&mut iat, n);
            assert_eq!(iat, n.to_string().as_bytes());
        }
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
