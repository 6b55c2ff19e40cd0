//! Compact JWS (RFC 7515 §7.1), assembled in one buffer: the base64url header (computed once per
//! key by the callers that can), `.`, the base64url claims, `.`, the base64url signature over
//! everything before it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;

use super::b64;
use super::key::{HmacKey, SigningKey};
use crate::error::AuthError;

/// What signs a JWS.
#[derive(Clone, Copy, Debug)]
pub(super) enum Signer<'a> {
    Key(&'a SigningKey),
    Hmac(&'a HmacKey),
}

impl Signer<'_> {
    /// The length of its signatures, in bytes.
    fn signature_len(self) -> usize {
        match self {
            Signer::Key(key) => key.signature_len(),
            Signer::Hmac(_) => 32,
        }
    }

    /// The `alg` header value.
    pub(super) fn alg(self) -> &'static str {
        match self {
            Signer::Key(key) => key.algorithm().as_str(),
            Signer::Hmac(_) => "HS256",
        }
    }
}

/// The longest signature's base64url length: 8192-bit RSA, 1024 bytes.
const MAX_SIGNATURE_B64: usize = 1024_usize.div_ceil(3) * 4;

/// The base64url length of a 64-byte signature (ES256, EdDSA; HS256's is 32 bytes).
const SHORT_SIGNATURE_B64: usize = 86;

/// The header as base64url, for callers that compute it once.
pub(super) fn encode_header(header: &impl Serialize) -> Result<String, AuthError> {
    let json = serde_json::to_vec(header)
        .map_err(|_| AuthError::config("JWS header cannot be serialized"))?;
    Ok(b64::encode(&json))
}

/// The compact JWS of `claims` under the base64url `header`, signed by `signer`.
///
/// `claims_hint` is the expected length of the claims' JSON, so that the buffer is allocated
/// once.
pub(super) fn compact(
    header: &str,
    claims: &impl Serialize,
    claims_hint: usize,
    signer: Signer<'_>,
) -> Result<String, AuthError> {
    let mut json = Vec::with_capacity(claims_hint);
    serde_json::to_writer(&mut json, claims)
        .map_err(|_| AuthError::config("JWT claims cannot be serialized"))?;
    let jws = sign(header, &json, signer)?;
    // base64url and dots: ASCII.
    String::from_utf8(jws).map_err(|_| AuthError::config("a JWS is not ASCII"))
}

/// The compact JWS of the claims `json` under the base64url `header`, signed by `signer`, in a
/// buffer of exactly its length (so that `Bytes` takes it without allocating again).
pub(super) fn sign(header: &str, json: &[u8], signer: Signer<'_>) -> Result<Vec<u8>, AuthError> {
    let claims_len = b64_len(json.len());
    let signature_len = b64_len(signer.signature_len());
    let mut out = Vec::with_capacity(header.len() + 1 + claims_len + 1 + signature_len);
    out.extend_from_slice(header.as_bytes());
    out.push(b'.');
    let start = out.len();
    out.resize(start + claims_len, 0);
    URL_SAFE_NO_PAD
        .encode_slice(json, &mut out[start..])
        .map_err(|_| AuthError::config("JWT claims longer than their base64url length"))?;
    // NOTE: a buffer for the usual signature on the stack, zeroed in a few instructions; the
    // longest (RSA's) only when the key is RSA.
    let mut short = [0u8; SHORT_SIGNATURE_B64];
    let mut long = Vec::new();
    let buffer = if signature_len <= SHORT_SIGNATURE_B64 {
        &mut short[..]
    } else {
        long.resize(MAX_SIGNATURE_B64, 0);
        &mut long[..]
    };
    let encode = |sig: &[u8]| URL_SAFE_NO_PAD.encode_slice(sig, &mut *buffer);
    let written = match signer {
        Signer::Key(key) => key.sign_with(&out, encode)?,
        Signer::Hmac(key) => key.sign_with(&out, encode),
    }
    .map_err(|_| AuthError::config("signature longer than the longest RSA key's"))?;
    out.push(b'.');
    out.extend_from_slice(&buffer[..written]);
    Ok(out)
}

/// The length of `len` bytes as base64url without padding.
fn b64_len(len: usize) -> usize {
    (len * 4).div_ceil(3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::Algorithm;

    #[test]
    fn three_base64url_parts() {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let header = encode_header(&serde_json::json!({"alg": "EdDSA"})).unwrap();
        let jws = compact(&header, &serde_json::json!({"a": 1}), 16, Signer::Key(&key)).unwrap();
        let parts: Vec<&str> = jws.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "eyJhbGciOiJFZERTQSJ9");
        assert_eq!(parts[1], "eyJhIjoxfQ");
        // Ed25519 signatures are 64 bytes: 86 base64url characters.
        assert_eq!(parts[2].len(), 86);
        assert!(jws
            .bytes()
            .all(|b| b == b'.' || b == b'-' || b == b'_' || b.is_ascii_alphanumeric()));
    }
}
