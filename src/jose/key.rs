//! Signing keys: ES256, RS256, PS256 and EdDSA key pairs ([`SigningKey`]), and the HS256 key of
//! `client_secret_jwt` ([`HmacKey`]).

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::error::KeyRejected;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaEncoding, RsaKeyPair,
    ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
};
use aws_lc_rs::{digest, hmac};

use super::b64;
use super::jwk::{self, Members};
use super::pem::{self, Label};
use crate::error::AuthError;
use crate::secret::Secret;

/// A JWS signature algorithm (RFC 7518 §3.1, RFC 8037 §3.1) that a [`SigningKey`] signs with.
/// `Display` shows its `alg` name (`ES256`, `RS256`, `PS256`, `EdDSA`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(clippy::upper_case_acronyms)]
pub enum Algorithm {
    /// ECDSA with P-256 and SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256; keys of 2048 bits or more.
    RS256,
    /// RSASSA-PSS with SHA-256 (and MGF1 with SHA-256, a 32-byte salt); keys of 2048 bits or
    /// more.
    PS256,
    /// EdDSA with Ed25519.
    EdDSA,
}

impl Algorithm {
    /// The algorithm's name in a JWS header's `alg`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
            Algorithm::PS256 => "PS256",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// The algorithm whose `alg` name is `name`, if it is one of these.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        [Self::ES256, Self::RS256, Self::PS256, Self::EdDSA]
            .into_iter()
            .find(|alg| alg.as_str() == name)
    }

    /// The key type the algorithm signs with, for messages.
    fn key_type(self) -> &'static str {
        match self {
            Algorithm::ES256 => "a P-256 EC",
            Algorithm::RS256 | Algorithm::PS256 => "an RSA",
            Algorithm::EdDSA => "an Ed25519",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The private key, as aws-lc-rs holds it.
pub(super) enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A key pair with what is derived from it once: its public JWK members and thumbprint.
struct Material {
    alg: Algorithm,
    pair: Pair,
    /// The public key's required JWK members, in the canonical form of RFC 7638 §3.2.
    required: String,
    /// RFC 7638 SHA-256 thumbprint of `required`, base64url.
    thumbprint: String,
}

/// A private key that signs JWS: ES256 (P-256), RS256 and PS256 (RSA, 2048 to 8192 bits) or
/// EdDSA (Ed25519), with an optional key ID (`kid`).
///
/// Read one from a PKCS#8 PEM document ([`from_pkcs8_pem`](Self::from_pkcs8_pem), as
/// `openssl genpkey` writes it) or a private JWK ([`from_jwk`](Self::from_jwk)), or generate one
/// ([`generate`](Self::generate)). Clones share the key. `Debug` shows the algorithm, the `kid`
/// and the thumbprint, never key material; so do errors.
///
/// ```
/// use tower_token_auth::jose::{Algorithm, SigningKey};
///
/// // `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` (a throwaway key)
/// let pem = "-----BEGIN PRIVATE KEY-----
/// MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg71+GnePkI3uh3Z7Q
/// J8EPc9YQG3+PBMOoepZCjXAdyKahRANCAAQJClKRePm8P496ijfcpevEFLdGk36E
/// 5t8AGd+FzP4rxM3g5QR9ZCDVsuI7j0JrEno0hIrZ5LzYMPY20LWzSrfr
/// -----END PRIVATE KEY-----";
/// let key = SigningKey::from_pkcs8_pem(&pem, Algorithm::ES256)?.with_kid("client-key-1");
/// // Register the public half with the authorization server:
/// let jwks = serde_json::json!({ "keys": [key.public_jwk()] });
/// assert_eq!(jwks["keys"][0]["kid"], "client-key-1");
/// assert_eq!(key.thumbprint().len(), 43);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SigningKey {
    material: Arc<Material>,
    kid: Option<Arc<str>>,
}

impl SigningKey {
    /// A new random key for `alg`: P-256 for ES256, Ed25519 for EdDSA, 2048-bit RSA for RS256
    /// and PS256 (which takes a while: tens of milliseconds or more).
    pub fn generate(alg: Algorithm) -> Result<Self, AuthError> {
        let failed = |_| AuthError::config("key generation failed");
        let pair = match alg {
            Algorithm::ES256 => {
                Pair::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(failed)?)
            }
            Algorithm::EdDSA => Pair::Ed(Ed25519KeyPair::generate().map_err(failed)?),
            Algorithm::RS256 | Algorithm::PS256 => {
                Pair::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?)
            }
        };
        Self::from_pair(alg, pair)
    }

    /// Reads the private key of a PEM document for `alg`: PKCS#8 (`-----BEGIN PRIVATE KEY-----`,
    /// what `openssl genpkey` writes), or the older SEC 1 (`EC PRIVATE KEY`) and PKCS#1
    /// (`RSA PRIVATE KEY`) forms. Encrypted keys are not supported.
    ///
    /// Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) when the text is no PEM
    /// private key, when the key does not suit `alg` (an RSA key for ES256, say), or when an RSA
    /// key is shorter than 2048 bits. The message never quotes the text.
    pub fn from_pkcs8_pem(pem: &str, alg: Algorithm) -> Result<Self, AuthError> {
        let (label, der) = pem::private_key(pem)?;
        let key = Self::from_der(label, &der, alg);
        pem::wipe(der);
        key
    }

    /// Reads a private JWK (RFC 7517): `kty` `EC` (`crv` `P-256`), `OKP` (`crv` `Ed25519`) or
    /// `RSA` (with its CRT members `p`, `q`, `dp`, `dq`, `qi`). The algorithm is the JWK's `alg`
    /// when it has one, else ES256, EdDSA or RS256 by key type; its `kid`, if any, becomes the
    /// key's.
    ///
    /// Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) on a public JWK, an `alg` that
    /// does not suit the key, a curve or key type not listed, or inconsistent members; the
    /// message names the member, never its value.
    pub fn from_jwk(jwk: &str) -> Result<Self, AuthError> {
        let parsed = jwk::parse_private(jwk)?;
        let mut key = Self::from_pair(parsed.alg, parsed.pair)?;
        key.kid = parsed.kid.map(Into::into);
        Ok(key)
    }

    /// The same key with the key ID `kid`, sent in the `kid` header of client assertions and
    /// in [`public_jwk`](Self::public_jwk).
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(Arc::from(kid.into()));
        self
    }

    /// The algorithm the key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.material.alg
    }

    /// The key ID, if the key has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The public key as a JWK, to register with an authorization server (in a JWKS): the key
    /// type's public members, `alg`, `use` (`sig`) and `kid` when the key has one. No private
    /// member.
    pub fn public_jwk(&self) -> serde_json::Value {
        let mut jwk: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&self.material.required).unwrap_or_default();
        jwk.insert("alg".into(), self.algorithm().as_str().into());
        jwk.insert("use".into(), "sig".into());
        if let Some(kid) = &self.kid {
            jwk.insert("kid".into(), kid.as_ref().into());
        }
        serde_json::Value::Object(jwk)
    }

    /// The RFC 7638 JWK thumbprint of the public key: SHA-256 over its required members,
    /// base64url (43 characters). What a DPoP-bound token's `cnf.jkt` holds.
    pub fn thumbprint(&self) -> &str {
        &self.material.thumbprint
    }

    /// The public key's required JWK members, canonical (RFC 7638 §3.2): a DPoP proof's `jwk`.
    pub(super) fn required_members(&self) -> &str {
        &self.material.required
    }

    /// The length of its signatures, in bytes: 64 for ES256 (`r` and `s`, fixed length) and
    /// EdDSA, the modulus's for RSA.
    pub(super) fn signature_len(&self) -> usize {
        match &self.material.pair {
            Pair::Ec(_) | Pair::Ed(_) => 64,
            Pair::Rsa(pair) => pair.public_modulus_len(),
        }
    }

    /// Signs `message` and hands the signature to `f`.
    pub(super) fn sign_with<R>(
        &self,
        message: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, AuthError> {
        let failed = || AuthError::config("signing failed");
        // NOTE: the signature is used where aws-lc-rs wrote it: its `Signature` is a 4.6 KB
        // buffer, and moving it out of the `Result` (`?`) copied all of it on every proof.
        Ok(match &self.material.pair {
            Pair::Ec(pair) => match &pair.sign(&SystemRandom::new(), message) {
                Ok(signature) => f(signature.as_ref()),
                Err(_) => return Err(failed()),
            },
            Pair::Ed(pair) => match &pair.try_sign(message) {
                Ok(signature) => f(signature.as_ref()),
                Err(_) => return Err(failed()),
            },
            Pair::Rsa(pair) => {
                let padding: &'static dyn RsaEncoding = match self.material.alg {
                    Algorithm::PS256 => &RSA_PSS_SHA256,
                    _ => &RSA_PKCS1_SHA256,
                };
                // Up to 8192 bits, the most `RsaKeyPair` accepts.
                let mut buffer = [0u8; 1024];
                let signature = buffer
                    .get_mut(..pair.public_modulus_len())
                    .ok_or_else(|| AuthError::config("RSA key over 8192 bits"))?;
                pair.sign(padding, &SystemRandom::new(), message, signature)
                    .map_err(|_| failed())?;
                f(signature)
            }
        })
    }

    fn from_der(label: Label, der: &[u8], alg: Algorithm) -> Result<Self, AuthError> {
        let rejected = |e: KeyRejected| rejection(e, alg);
        let pair = match (alg, label) {
            (Algorithm::ES256, Label::Pkcs8) => Pair::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(rejected)?,
            ),
            (Algorithm::ES256, Label::Sec1) => Pair::Ec(
                EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(rejected)?,
            ),
            (Algorithm::EdDSA, Label::Pkcs8) => {
                Pair::Ed(Ed25519KeyPair::from_pkcs8(der).map_err(rejected)?)
            }
            (Algorithm::RS256 | Algorithm::PS256, Label::Pkcs8) => {
                Pair::Rsa(RsaKeyPair::from_pkcs8(der).map_err(rejected)?)
            }
            (Algorithm::RS256 | Algorithm::PS256, Label::Pkcs1) => {
                Pair::Rsa(RsaKeyPair::from_der(der).map_err(rejected)?)
            }
            (alg, _) => return Err(wrong_algorithm(alg)),
        };
        Self::from_pair(alg, pair)
    }

    pub(super) fn from_pair(alg: Algorithm, pair: Pair) -> Result<Self, AuthError> {
        let required = match &pair {
            Pair::Ec(pair) => match pair.public_key().as_ref() {
                [0x04, xy @ ..] if xy.len() == 64 => Members::Ec {
                    x: &xy[..32],
                    y: &xy[32..],
                }
                .canonical(),
                _ => return Err(AuthError::config("EC public key is not a P-256 point")),
            },
            Pair::Ed(pair) => Members::Okp {
                x: pair.public_key().as_ref(),
            }
            .canonical(),
            Pair::Rsa(pair) => {
                let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                Members::Rsa {
                    n: &components.n,
                    e: &components.e,
                }
                .canonical()
            }
        };
        let hash = digest::digest(&digest::SHA256, required.as_bytes());
        Ok(Self {
            material: Arc::new(Material {
                alg,
                pair,
                thumbprint: b64::encode(hash.as_ref()),
                required,
            }),
            kid: None,
        })
    }
}

/// A loading error for `alg`, by aws-lc-rs's reason (a fixed word, never key material).
fn rejection(e: KeyRejected, alg: Algorithm) -> AuthError {
    match e.description_() {
        "TooSmall" => AuthError::config("RSA key is shorter than 2048 bits"),
        "TooLarge" => AuthError::config("RSA key is longer than 8192 bits"),
        "WrongAlgorithm" => wrong_algorithm(alg),
        reason => AuthError::config(format!("{alg} key rejected ({reason})")),
    }
}

fn wrong_algorithm(alg: Algorithm) -> AuthError {
    AuthError::config(format!(
        "the key does not suit {alg}, which signs with {} key",
        alg.key_type()
    ))
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.material.alg)
            .field("kid", &self.kid)
            .field("thumbprint", &self.material.thumbprint)
            .finish_non_exhaustive()
    }
}

/// Two keys are equal when they are the same public key, algorithm and `kid`.
impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        self.material.alg == other.material.alg
            && self.material.required == other.material.required
            && self.kid == other.kid
    }
}

impl Eq for SigningKey {}

/// The HS256 key of `client_secret_jwt` (RFC 7523 §2.2 with OpenID Connect Core §9): HMAC
/// SHA-256 keyed with the client secret's bytes.
pub(crate) struct HmacKey(hmac::Key);

impl HmacKey {
    /// The key of `secret`, which RFC 7518 §3.2 wants at least as long as the hash: 32 bytes.
    pub(crate) fn new(secret: &Secret) -> Result<Self, AuthError> {
        let bytes = secret.expose().as_bytes();
        if bytes.len() < 32 {
            return Err(AuthError::config(
                "client_secret_jwt signs with HS256, which needs a client secret of at least \
                 32 bytes (RFC 7518 §3.2)",
            ));
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, bytes)))
    }

    /// Signs `message` and hands the tag to `f`.
    pub(super) fn sign_with<R>(&self, message: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
        f(hmac::sign(&self.0, message).as_ref())
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey([redacted])")
    }
}
