//! JOSE plumbing shared by client assertions and DPoP proofs: splitting a compact JWS without
//! trusting it, checking a public JWK, verifying a signature (by `jsonwebtoken`, never by hand),
//! RFC 7638 thumbprints, `jti` replay caches and the clock.
//!
//! The header and payload are read as raw JSON first, so that every policy check (`alg`, `typ`,
//! private key members, claims) sees exactly what the client sent; `jsonwebtoken` only verifies
//! the signature over the bytes as received.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::extensions::SigningAlg;

/// A JSON object, as a JWS header or claims set is.
pub(super) type Object = Map<String, Value>;

/// A compact JWS split into its parts, header and payload decoded but not yet verified.
pub(super) struct Compact<'a> {
    pub(super) header: Object,
    pub(super) claims: Object,
    /// `BASE64URL(header) "." BASE64URL(payload)`: what the signature covers.
    signing_input: &'a str,
    signature: &'a str,
}

fn decode_object(segment: &str) -> Option<Object> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(object) => Some(object),
        _ => None,
    }
}

/// Splits `token` into exactly three base64url segments whose first two are JSON objects (the
/// third may be empty).
pub(super) fn split(token: &str) -> Option<Compact<'_>> {
    let (signing_input, signature) = token.rsplit_once('.')?;
    let (header, payload) = signing_input.split_once('.')?;
    // An empty signature is left for verification to refuse: an `alg` of `none` is then
    // refused for what it is.
    if payload.contains('.') {
        return None;
    }
    Some(Compact {
        header: decode_object(header)?,
        claims: decode_object(payload)?,
        signing_input,
        signature,
    })
}

impl Compact<'_> {
    /// Whether the signature verifies with `key` under `alg`. Any library error (a key of the
    /// wrong family, a malformed signature) is a failed verification.
    pub(super) fn verifies(&self, key: &DecodingKey, alg: Algorithm) -> bool {
        !self.signature.is_empty()
            && jsonwebtoken::crypto::verify(self.signature, self.signing_input.as_bytes(), key, alg)
                .unwrap_or(false)
    }

    /// A string member of the header.
    pub(super) fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name)?.as_str()
    }

    /// A string claim.
    pub(super) fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name)?.as_str()
    }

    /// A numeric date claim, as whole seconds (fractions are allowed by RFC 7519 and dropped).
    pub(super) fn claim_time(&self, name: &str) -> Option<i64> {
        let value = self.claims.get(name)?;
        value.as_i64().or_else(|| {
            value
                .as_f64()
                .filter(|f| f.is_finite() && f.abs() < 1e15)
                .map(|f| f.trunc() as i64)
        })
    }
}

/// The `jsonwebtoken` algorithm of a [`SigningAlg`].
pub(super) fn algorithm(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::ES256 => Algorithm::ES256,
        SigningAlg::RS256 => Algorithm::RS256,
        SigningAlg::PS256 => Algorithm::PS256,
        SigningAlg::EdDSA => Algorithm::EdDSA,
    }
}

/// JWK members that only a private (or symmetric) key has.
const PRIVATE_MEMBERS: [&str; 9] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"];

/// A public key taken from a JWK: the key to verify with and its RFC 7638 thumbprint.
pub(super) struct PublicKey {
    pub(super) key: DecodingKey,
    pub(super) thumbprint: String,
    pub(super) kid: Option<String>,
}

/// Why a JWK is not a usable public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyError {
    /// It has private key members (`d`, `p`, ...): the client leaked its private key.
    Private,
    /// Not a JSON object, an unknown `kty` or curve, or members that do not decode.
    Malformed,
    /// A good public key that `alg` cannot be used with.
    WrongAlg,
}

/// Reads `jwk` as the public key for `alg`: `EC` on P-256 for ES256, `RSA` for RS256 and PS256,
/// `OKP` on Ed25519 for EdDSA; never a key with private members.
pub(super) fn public_key(jwk: &Value, alg: SigningAlg) -> Result<PublicKey, KeyError> {
    let Value::Object(members) = jwk else {
        return Err(KeyError::Malformed);
    };
    if PRIVATE_MEMBERS
        .iter()
        .any(|member| members.contains_key(*member))
    {
        return Err(KeyError::Private);
    }
    let parsed: Jwk = serde_json::from_value(jwk.clone()).map_err(|_| KeyError::Malformed)?;
    let kty = members.get("kty").and_then(Value::as_str);
    // The `kty` is checked against what the untagged enum made of the members, so that an
    // `EC` key whose `crv` names an Edwards curve (which the library would misread) goes no
    // further. The thumbprint below is only computed for these well-formed pairings.
    let fits = match (&parsed.algorithm, kty, alg) {
        (AlgorithmParameters::EllipticCurve(ec), Some("EC"), _) => {
            ec.curve == EllipticCurve::P256 && alg == SigningAlg::ES256
        }
        (AlgorithmParameters::RSA(_), Some("RSA"), SigningAlg::RS256 | SigningAlg::PS256) => true,
        (AlgorithmParameters::RSA(_), Some("RSA"), _) => false,
        (AlgorithmParameters::OctetKeyPair(okp), Some("OKP"), _) => {
            okp.curve == EllipticCurve::Ed25519 && alg == SigningAlg::EdDSA
        }
        _ => return Err(KeyError::Malformed),
    };
    if !fits {
        // An `EC` key on another curve, or an `OKP` key that is not Ed25519, is unsupported
        // rather than mismatched when `alg` would otherwise suit its type.
        let curve_ok = match &parsed.algorithm {
            AlgorithmParameters::EllipticCurve(ec) => ec.curve == EllipticCurve::P256,
            AlgorithmParameters::OctetKeyPair(okp) => okp.curve == EllipticCurve::Ed25519,
            _ => true,
        };
        return Err(if curve_ok {
            KeyError::WrongAlg
        } else {
            KeyError::Malformed
        });
    }
    let coordinates_ok = match &parsed.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => {
            decoded_len(&ec.x) == Some(32) && decoded_len(&ec.y) == Some(32)
        }
        AlgorithmParameters::OctetKeyPair(okp) => decoded_len(&okp.x) == Some(32),
        AlgorithmParameters::RSA(rsa) => {
            // 2048 to 8192 bits, what the verifiers take; a bigger key only costs time.
            decoded_len(&rsa.n).is_some_and(|n| (256..=1025).contains(&n))
                && decoded_len(&rsa.e).is_some_and(|e| (1..=8).contains(&e))
        }
        AlgorithmParameters::OctetKey(_) => false,
    };
    if !coordinates_ok {
        return Err(KeyError::Malformed);
    }
    let key = DecodingKey::from_jwk(&parsed).map_err(|_| KeyError::Malformed)?;
    Ok(PublicKey {
        key,
        thumbprint: parsed.thumbprint(ThumbprintHash::SHA256),
        kid: members
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

fn decoded_len(segment: &str) -> Option<usize> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .ok()
        .map(|bytes| bytes.len())
}

/// `BASE64URL(SHA-256(value))`, as DPoP's `ath` carries the hash of an access token.
pub(super) fn sha256_b64(value: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Seconds since the Unix epoch, as JWT claims count them.
pub(super) fn now_secs() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_secs()).unwrap_or(i64::MAX)
}

/// Seconds of a duration as a claim difference.
pub(super) fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// `jti` values seen within their lifetime: a second use is a replay.
///
/// NOTE: a `std` mutex held for one map operation (and an occasional sweep), never across an
/// await.
pub(super) struct JtiCache {
    seen: Mutex<HashMap<String, Instant>>,
}

/// Sweep expired entries once the cache holds this many.
const JTI_SWEEP_AT: usize = 4096;

impl JtiCache {
    pub(super) fn new() -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records `jti` for `keep`; `false` when it was already recorded and has not yet lapsed.
    pub(super) fn first_use(&self, jti: &str, keep: Duration) -> bool {
        let now = Instant::now();
        let until = now.checked_add(keep).unwrap_or(now);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= JTI_SWEEP_AT {
            seen.retain(|_, until| *until > now);
        }
        match seen.get_mut(jti) {
            Some(lapses) if *lapses > now => false,
            Some(lapses) => {
                *lapses = until;
                true
            }
            None => {
                seen.insert(jti.to_owned(), until);
                true
            }
        }
    }
}

/// The scheme, host, port and path of an absolute `http` or `https` URI, lowercased where
/// case does not matter and with the default port filled in; query and fragment dropped.
/// `None` for anything else.
pub(super) fn normalized_url(url: &str) -> Option<(String, String, u16, String)> {
    let url = url.split('#').next().unwrap_or(url);
    let url = url.split('?').next().unwrap_or(url);
    let uri: http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    let port = authority.port_u16().unwrap_or(default_port);
    let path = match uri.path() {
        "" => "/".to_owned(),
        path => path.to_owned(),
    };
    Some((scheme, host, port, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_refuses_anything_but_three_json_segments() {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256"}"#);
        let p = URL_SAFE_NO_PAD.encode(br#"{"a":1}"#);
        assert!(split(&format!("{h}.{p}.c2ln")).is_some());
        assert!(split(&format!("{h}.{p}")).is_none());
        assert!(split(&format!("{h}.{p}.")).is_some());
        assert!(split(&format!("{h}.{p}.x.y")).is_none());
        assert!(split(&format!("{h}.!!.c2ln")).is_none());
        let array = URL_SAFE_NO_PAD.encode(b"[1]");
        assert!(split(&format!("{array}.{p}.c2ln")).is_none());
        assert!(split("").is_none());
    }

    #[test]
    fn rfc7638_example_thumbprint() {
        // RFC 7638 3.1.
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let key = public_key(&jwk, SigningAlg::RS256).unwrap();
        assert_eq!(
            key.thumbprint,
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert_eq!(key.kid.as_deref(), Some("2011-04-29"));
        assert_eq!(
            public_key(&jwk, SigningAlg::ES256).err(),
            Some(KeyError::WrongAlg)
        );
    }

    #[test]
    fn odd_keys_are_refused_not_panicked_on() {
        for jwk in [
            serde_json::json!({"kty":"EC","crv":"Ed25519","x":"AAAA","y":"AAAA"}),
            serde_json::json!({"kty":"OKP","crv":"P-256","x":"AAAA"}),
            serde_json::json!({"kty":"oct","k":"AAAA"}),
            serde_json::json!({"kty":"EC","crv":"P-256","x":"!","y":"!"}),
            serde_json::json!([1, 2]),
            serde_json::json!({"kty":"RSA","n":"AQAB","e":"AQAB"}),
        ] {
            for alg in SigningAlg::ALL {
                assert!(public_key(&jwk, alg).is_err(), "{jwk} {alg:?}");
            }
        }
        let private = serde_json::json!({"kty":"OKP","crv":"Ed25519","x":"AAAA","d":"AAAA"});
        assert_eq!(
            public_key(&private, SigningAlg::EdDSA).err(),
            Some(KeyError::Private)
        );
    }

    #[test]
    fn jti_is_single_use_until_it_lapses() {
        let cache = JtiCache::new();
        assert!(cache.first_use("a", Duration::from_secs(60)));
        assert!(!cache.first_use("a", Duration::from_secs(60)));
        assert!(cache.first_use("b", Duration::ZERO));
        assert!(cache.first_use("b", Duration::ZERO));
    }

    #[test]
    fn urls_normalise() {
        let n = |u| normalized_url(u);
        assert_eq!(n("HTTP://Example.COM/a?b#c"), n("http://example.com:80/a"));
        assert_ne!(n("http://example.com/a"), n("http://example.com/A"));
        assert_ne!(n("http://example.com/a"), n("https://example.com/a"));
        assert_eq!(n("http://example.com"), n("http://example.com/"));
        assert_eq!(n("ftp://example.com/"), None);
        assert_eq!(n("/relative"), None);
        assert_eq!(n("http://user@example.com/"), None);
    }
}
