//! base64url without padding (RFC 7515 §2), the one encoding of every JOSE part, and fresh
//! random identifiers.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::error::AuthError;

/// Appends the base64url form of `bytes` to `out`.
pub(super) fn encode_into(bytes: &[u8], out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// The base64url form of `bytes`.
pub(super) fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a base64url member of a JWK; `member` names it in the error, never its value.
pub(super) fn decode(value: &str, member: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| AuthError::config(format!("JWK member `{member}` is not base64url")))
}

/// A fresh random JWT ID: 128 bits from the system's CSPRNG, base64url (22 characters).
pub(super) fn jti_into(out: &mut String) -> Result<(), AuthError> {
    let jti = jti()?;
    // base64url: ASCII.
    out.push_str(std::str::from_utf8(&jti).unwrap_or_default());
    Ok(())
}

/// [`jti_into`]'s ID, as bytes.
pub(super) fn jti() -> Result<[u8; 22], AuthError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| AuthError::config("no randomness for a JWT ID"))?;
    let mut jti = [0u8; 22];
    URL_SAFE_NO_PAD
        .encode_slice(bytes, &mut jti)
        .map_err(|_| AuthError::config("a JWT ID longer than 22 characters"))?;
    Ok(jti)
}
