//! JWKs (RFC 7517, RFC 8037): private keys read, public members written in the canonical form of
//! RFC 7638 (which the thumbprint hashes and a DPoP proof carries).

use aws_lc_rs::rsa::{KeyPairComponents, PublicKeyComponents};
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};

use super::b64;
use super::key::{Algorithm, Pair};
use super::pem::wipe;
use crate::error::AuthError;

/// A key type's required public members (RFC 7638 §3.2), as raw bytes.
pub(super) enum Members<'a> {
    Ec { x: &'a [u8], y: &'a [u8] },
    Okp { x: &'a [u8] },
    Rsa { n: &'a [u8], e: &'a [u8] },
}

impl Members<'_> {
    /// The members as JSON, in lexicographic order and without whitespace (RFC 7638 §3.3).
    /// Every value is base64url or a fixed word: nothing needs escaping.
    pub(super) fn canonical(&self) -> String {
        let mut out = String::with_capacity(128);
        match self {
            Members::Ec { x, y } => {
                out.push_str(r#"{"crv":"P-256","kty":"EC","x":""#);
                b64::encode_into(x, &mut out);
                out.push_str(r#"","y":""#);
                b64::encode_into(y, &mut out);
            }
            Members::Okp { x } => {
                out.push_str(r#"{"crv":"Ed25519","kty":"OKP","x":""#);
                b64::encode_into(x, &mut out);
            }
            Members::Rsa { n, e } => {
                out.push_str(r#"{"e":""#);
                b64::encode_into(e, &mut out);
                out.push_str(r#"","kty":"RSA","n":""#);
                b64::encode_into(n, &mut out);
            }
        }
        out.push_str(r#""}"#);
        out
    }
}

/// The members a private JWK may carry; unknown members are ignored.
#[derive(serde::Deserialize)]
struct Fields {
    kty: Option<String>,
    crv: Option<String>,
    alg: Option<String>,
    kid: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    d: Option<String>,
    p: Option<String>,
    q: Option<String>,
    dp: Option<String>,
    dq: Option<String>,
    qi: Option<String>,
}

/// A private JWK, read.
pub(super) struct Parsed {
    pub(super) alg: Algorithm,
    pub(super) pair: Pair,
    pub(super) kid: Option<String>,
}

/// Reads a private JWK. Errors name members, never their values (nor serde's message, which may
/// quote the input).
pub(super) fn parse_private(text: &str) -> Result<Parsed, AuthError> {
    let fields: Fields = serde_json::from_str(text).map_err(|e| {
        AuthError::config(format!(
            "the JWK is not a JSON object of string members (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let kty = fields.kty.as_deref().unwrap_or_default();
    let named = fields.alg.as_deref();
    let (alg, pair) = match kty {
        "EC" => (algorithm(named, Algorithm::ES256, kty)?, ec(&fields)?),
        "OKP" => (algorithm(named, Algorithm::EdDSA, kty)?, okp(&fields)?),
        "RSA" => (algorithm(named, Algorithm::RS256, kty)?, rsa(&fields)?),
        "" => return Err(AuthError::config("the JWK has no `kty`")),
        _ => {
            return Err(AuthError::config(
                "the JWK's `kty` is none of EC, OKP and RSA",
            ))
        }
    };
    Ok(Parsed {
        alg,
        pair,
        kid: fields.kid,
    })
}

/// The algorithm a JWK's `alg` names, or the key type's default; one that does not suit the
/// key type is an error.
fn algorithm(named: Option<&str>, default: Algorithm, kty: &str) -> Result<Algorithm, AuthError> {
    let Some(named) = named else {
        return Ok(default);
    };
    let alg = match named {
        "ES256" => Algorithm::ES256,
        "RS256" => Algorithm::RS256,
        "PS256" => Algorithm::PS256,
        // RFC 9864's fully-specified name for EdDSA over Ed25519.
        "EdDSA" | "Ed25519" => Algorithm::EdDSA,
        _ => {
            return Err(AuthError::config(
                "the JWK's `alg` is none of ES256, RS256, PS256 and EdDSA",
            ))
        }
    };
    let suits = match kty {
        "RSA" => matches!(alg, Algorithm::RS256 | Algorithm::PS256),
        _ => alg == default,
    };
    if !suits {
        return Err(AuthError::config(format!(
            "the JWK's `alg` {alg} does not suit its `kty` {kty}"
        )));
    }
    Ok(alg)
}

/// A member's decoded bytes; a missing member is an error naming it.
fn member(value: &Option<String>, name: &str) -> Result<Vec<u8>, AuthError> {
    let value = value.as_deref().ok_or_else(|| match name {
        "d" => AuthError::config("the JWK has no private key (`d`): it is a public JWK"),
        _ => AuthError::config(format!("the JWK has no `{name}`")),
    })?;
    b64::decode(value, name)
}

fn inconsistent(kty: &str) -> AuthError {
    AuthError::config(format!(
        "the {kty} JWK's members are not a consistent key pair"
    ))
}

fn ec(fields: &Fields) -> Result<Pair, AuthError> {
    if fields.crv.as_deref() != Some("P-256") {
        return Err(AuthError::config("the EC JWK's `crv` is not P-256"));
    }
    let (x, y) = (member(&fields.x, "x")?, member(&fields.y, "y")?);
    let d = member(&fields.d, "d")?;
    if x.len() != 32 || y.len() != 32 || d.len() != 32 {
        wipe(d);
        return Err(AuthError::config(
            "the EC JWK's `x`, `y` and `d` must be 32 bytes each",
        ));
    }
    let mut point = Vec::with_capacity(65);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let pair =
        EcdsaKeyPair::from_private_key_and_public_key(&ECDSA_P256_SHA256_FIXED_SIGNING, &d, &point);
    wipe(d);
    pair.map(Pair::Ec).map_err(|_| inconsistent("EC"))
}

fn okp(fields: &Fields) -> Result<Pair, AuthError> {
    if fields.crv.as_deref() != Some("Ed25519") {
        return Err(AuthError::config("the OKP JWK's `crv` is not Ed25519"));
    }
    let x = member(&fields.x, "x")?;
    let d = member(&fields.d, "d")?;
    let pair = Ed25519KeyPair::from_seed_and_public_key(&d, &x);
    wipe(d);
    pair.map(Pair::Ed).map_err(|_| inconsistent("OKP"))
}

fn rsa(fields: &Fields) -> Result<Pair, AuthError> {
    let strip = |mut bytes: Vec<u8>| {
        let zeros = bytes.iter().take_while(|b| **b == 0).count();
        bytes.drain(..zeros);
        bytes
    };
    let n = strip(member(&fields.n, "n")?);
    let e = strip(member(&fields.e, "e")?);
    if n.len() < 256 {
        return Err(AuthError::config("RSA key is shorter than 2048 bits"));
    }
    let d = member(&fields.d, "d")?;
    let private = [
        member(&fields.p, "p"),
        member(&fields.q, "q"),
        member(&fields.dp, "dp"),
        member(&fields.dq, "dq"),
        member(&fields.qi, "qi"),
    ];
    let mut parts = Vec::with_capacity(5);
    let mut missing = None;
    for part in private {
        match part {
            Ok(bytes) => parts.push(bytes),
            Err(e) => missing = missing.or(Some(e)),
        }
    }
    let pair = match (missing, parts.as_slice()) {
        (None, [p, q, dp, dq, qi]) => RsaKeyPair::from_components(&KeyPairComponents {
            public_key: PublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            },
            d: d.as_slice(),
            p: p.as_slice(),
            q: q.as_slice(),
            dP: dp.as_slice(),
            dQ: dq.as_slice(),
            qInv: qi.as_slice(),
        })
        .map(Pair::Rsa)
        .map_err(|_| inconsistent("RSA")),
        (Some(missing), _) => Err(missing),
        (None, _) => Err(inconsistent("RSA")),
    };
    wipe(d);
    parts.into_iter().for_each(wipe);
    pair
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::digest;

    /// RFC 7638 §3.1: the example RSA key's canonical members and thumbprint.
    #[test]
    fn rfc7638_example() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let (n_bytes, e_bytes) = (
            b64::decode(n, "n").unwrap(),
            b64::decode("AQAB", "e").unwrap(),
        );
        let canonical = Members::Rsa {
            n: &n_bytes,
            e: &e_bytes,
        }
        .canonical();
        assert_eq!(
            canonical,
            format!(r#"{{"e":"AQAB","kty":"RSA","n":"{n}"}}"#)
        );
        let hash = digest::digest(&digest::SHA256, canonical.as_bytes());
        assert_eq!(
            b64::encode(hash.as_ref()),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
