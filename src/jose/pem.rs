//! PEM (RFC 7468): the label and the DER document between the encapsulation boundaries.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::error::AuthError;

/// The private key documents a PEM text may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Label {
    /// `PRIVATE KEY`: PKCS#8 `PrivateKeyInfo`, any key type.
    Pkcs8,
    /// `EC PRIVATE KEY`: SEC 1 / RFC 5915 `ECPrivateKey`.
    Sec1,
    /// `RSA PRIVATE KEY`: PKCS#1 `RSAPrivateKey`.
    Pkcs1,
}

/// The first private key document in `text`, decoded. Errors name the problem, never the text.
pub(super) fn private_key(text: &str) -> Result<(Label, Vec<u8>), AuthError> {
    let (label, body) = block(text)?;
    let label = match label {
        "PRIVATE KEY" => Label::Pkcs8,
        "EC PRIVATE KEY" => Label::Sec1,
        "RSA PRIVATE KEY" => Label::Pkcs1,
        "ENCRYPTED PRIVATE KEY" => {
            return Err(AuthError::config(
                "encrypted PEM private keys are not supported: decrypt it \
                 (`openssl pkcs8 -topk8 -nocrypt`)",
            ))
        }
        "PUBLIC KEY" | "RSA PUBLIC KEY" | "CERTIFICATE" => {
            return Err(AuthError::config(
                "the PEM document is a public key or certificate, not a private key",
            ))
        }
        _ => return Err(AuthError::config("the PEM document is not a private key")),
    };
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| AuthError::config("the PEM private key is not valid base64"))?;
    wipe_string(compact);
    Ok((label, der))
}

/// The label and body of the first `-----BEGIN …-----` … `-----END …-----` block.
fn block(text: &str) -> Result<(&str, &str), AuthError> {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    let not_pem = || AuthError::config("not a PEM document (no `-----BEGIN …-----` line)");
    let start = text.find(BEGIN).ok_or_else(not_pem)? + BEGIN.len();
    let rest = &text[start..];
    let label_end = rest.find(DASHES).ok_or_else(not_pem)?;
    let label = &rest[..label_end];
    if label.contains(['\n', '\r']) || label.len() > 64 {
        return Err(not_pem());
    }
    let body = &rest[label_end + DASHES.len()..];
    let end = body
        .find("-----END ")
        .ok_or_else(|| AuthError::config("the PEM document has no `-----END …-----` line"))?;
    let end_label = body[end + "-----END ".len()..].split(DASHES).next();
    if end_label != Some(label) {
        return Err(AuthError::config(
            "the PEM document's END line does not match its BEGIN line",
        ));
    }
    Ok((label, &body[..end]))
}

/// Overwrites a buffer that held key material before freeing it (best effort: the allocator
/// may have copied it before).
pub(super) fn wipe(mut bytes: Vec<u8>) {
    bytes.fill(0);
    std::hint::black_box(&bytes);
}

fn wipe_string(text: String) {
    wipe(text.into_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_errors() {
        let pem = "junk\n-----BEGIN PRIVATE KEY-----\nAAEC\nAw==\n-----END PRIVATE KEY-----\n";
        let (label, der) = private_key(pem).unwrap();
        assert_eq!((label, der), (Label::Pkcs8, vec![0, 1, 2, 3]));
        let errors = [
            "no pem here",
            "-----BEGIN PRIVATE KEY-----\nAAEC",
            "-----BEGIN PRIVATE KEY-----\nAA!C\n-----END PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\nAAEC\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAEC\n-----END ENCRYPTED PRIVATE KEY-----",
            "-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----",
        ];
        for text in errors {
            let err = private_key(text).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Config);
            assert!(!err.to_string().contains("AA"), "{err}");
        }
    }
}
