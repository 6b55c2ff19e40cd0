//! Client assertions (RFC 7523 §2.2 and §3): a JWT that authenticates the client to the token
//! endpoint, signed with its private key (`private_key_jwt`) or its secret (`client_secret_jwt`).

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::b64;
use super::jws::{self, Signer};
use super::key::{HmacKey, SigningKey};
use crate::error::AuthError;
use crate::secret::Secret;

/// How long an assertion is valid: its `exp` is this many seconds after its `iat`. Short, since
/// it is made for one call and sent at once.
pub(crate) const LIFETIME_SECS: u64 = 60;

/// What signs client assertions.
#[derive(Clone, Debug)]
pub(crate) enum AssertionSigner {
    /// `private_key_jwt`.
    Key(SigningKey),
    /// `client_secret_jwt`: HS256 with the client secret.
    Hmac(Arc<HmacKey>),
}

impl AssertionSigner {
    fn signer(&self) -> Signer<'_> {
        match self {
            AssertionSigner::Key(key) => Signer::Key(key),
            AssertionSigner::Hmac(key) => Signer::Hmac(key),
        }
    }
}

/// The client assertions of one client for one audience: the header is encoded once, the
/// claims and the signature at every call.
#[derive(Clone)]
pub(crate) struct Assertions {
    client_id: Arc<str>,
    audience: Arc<str>,
    signer: AssertionSigner,
    /// The base64url header: `alg`, and `kid` when the key has one.
    header: Arc<str>,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: &'a str,
    iat: u64,
    exp: u64,
}

impl Assertions {
    /// Assertions for `client_id` (their `iss` and `sub`) at `audience` (the token endpoint's
    /// URL, or the authorization server's issuer identifier).
    pub(crate) fn new(
        client_id: &str,
        audience: &str,
        signer: AssertionSigner,
    ) -> Result<Self, AuthError> {
        let s = signer.signer();
        let kid = match s {
            Signer::Key(key) => key.kid(),
            Signer::Hmac(_) => None,
        };
        let header = jws::encode_header(&Header { alg: s.alg(), kid })?;
        Ok(Self {
            client_id: client_id.into(),
            audience: audience.into(),
            signer,
            header: header.into(),
        })
    }

    /// A fresh assertion, issued now: a fresh `jti`, `exp` 60 s after `iat`.
    pub(crate) fn assertion(&self) -> Result<Secret, AuthError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.assertion_at(now)
    }

    /// A fresh assertion issued at `iat` (seconds since the Unix epoch).
    pub(crate) fn assertion_at(&self, iat: u64) -> Result<Secret, AuthError> {
        let mut jti = String::with_capacity(22);
        b64::jti_into(&mut jti)?;
        let claims = Claims {
            iss: &self.client_id,
            sub: &self.client_id,
            aud: &self.audience,
            jti: &jti,
            iat,
            exp: iat + LIFETIME_SECS,
        };
        let hint = 96 + 2 * self.client_id.len() + self.audience.len();
        jws::compact(&self.header, &claims, hint, self.signer.signer()).map(Secret::from)
    }
}

impl fmt::Debug for Assertions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Assertions")
            .field("client_id", &self.client_id)
            .field("audience", &self.audience)
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::Algorithm;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    fn part(jws: &str, n: usize) -> serde_json::Value {
        let part = jws.split('.').nth(n).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn claims_and_header() {
        let key = SigningKey::generate(Algorithm::ES256)
            .unwrap()
            .with_kid("k-1");
        let assertions =
            Assertions::new("app", "https://idp.test/token", AssertionSigner::Key(key)).unwrap();
        let a = assertions.assertion_at(1_700_000_000).unwrap();
        let b = assertions.assertion_at(1_700_000_000).unwrap();
        assert_eq!(
            part(a.expose(), 0),
            serde_json::json!({"alg": "ES256", "kid": "k-1"})
        );
        let claims = part(a.expose(), 1);
        assert_eq!(claims["iss"], "app");
        assert_eq!(claims["sub"], "app");
        assert_eq!(claims["aud"], "https://idp.test/token");
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["exp"], 1_700_000_060);
        assert_eq!(claims["jti"].as_str().unwrap().len(), 22);
        assert_ne!(claims["jti"], part(b.expose(), 1)["jti"]);
    }

    #[test]
    fn hmac_header_has_no_kid() {
        let secret = Secret::from("0123456789abcdef0123456789abcdef");
        let key = Arc::new(HmacKey::new(&secret).unwrap());
        let assertions =
            Assertions::new("app", "https://idp.test", AssertionSigner::Hmac(key)).unwrap();
        let jws = assertions.assertion().unwrap();
        assert_eq!(part(jws.expose(), 0), serde_json::json!({"alg": "HS256"}));
        assert!(!format!("{assertions:?}").contains("0123"));
        let short = HmacKey::new(&Secret::from("short")).unwrap_err();
        assert_eq!(short.kind(), crate::ErrorKind::Config);
    }
}
