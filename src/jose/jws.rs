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
    let capacity = header.len() + 2 + json.len().div_ceil(3) * 4 + 344;
    let mut out = String::with_capacity(capacity);
    out.push_str(header);
    out.push('.');
    b64::encode_into(&json, &mut out);
    let mut signature = [0u8; MAX_SIGNATURE_B64];
    let encode = |sig: &[u8]| URL_SAFE_NO_PAD.encode_slice(sig, &mut signature);
    let written = match signer {
        Signer::Key(key) => key.sign_with(out.as_bytes(), encode)?,
        Signer::Hmac(key) => key.sign_with(out.as_bytes(), encode),
    }
    .map_err(|_| AuthError::config("signature longer than the longest RSA key's"))?;
    out.push('.');
    out.push_str(std::str::from_utf8(&signature[..written]).unwrap_or_default());
    Ok(out)
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
