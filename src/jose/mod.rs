//! JOSE signing (feature `jose`): the keys a client signs with, and the two JWTs it signs.
//!
//! - **Client assertions** (RFC 7523 §2.2, OpenID Connect's `private_key_jwt` and
//!   `client_secret_jwt`): the client authenticates to the token endpoint with a short-lived JWT
//!   instead of sending its secret. Built fresh for every auth call by the OAuth2 provider; see
//!   [`ClientAssertion`](crate::provider::oauth2::ClientAssertion).
//! - **DPoP proofs** (RFC 9449): a JWT per HTTP request that proves possession of the key a
//!   token is bound to; see [`DpopKey`].
//!
//! Keys are [`SigningKey`]s: ES256 (P-256), RS256 and PS256 (RSA, 2048 bits or more) and EdDSA
//! (Ed25519), read from a PKCS#8 PEM document or a private JWK, or generated. Every
//! cryptographic operation is `aws-lc-rs`'s (the backend rustls uses by default); this module
//! only encodes (base64url, JSON) and assembles compact JWS strings.
//!
//! No `Debug` output or error message shows key material: a key shows its algorithm, `kid` and
//! thumbprint, and a key that cannot be read is an [`AuthError`](crate::AuthError) of kind
//! [`Config`](crate::ErrorKind::Config) that names what is wrong, never the input.
//!
//! ```
//! use tower_token_auth::jose::{Algorithm, DpopKey, SigningKey};
//!
//! let key = SigningKey::generate(Algorithm::ES256)?.with_kid("2026-12");
//! assert_eq!(key.kid(), Some("2026-12"));
//! assert_eq!(key.public_jwk()["kty"], "EC");
//! assert!(key.public_jwk().get("d").is_none());
//!
//! let dpop = DpopKey::new(SigningKey::generate(Algorithm::EdDSA)?);
//! let proof = dpop.proof(&http::Method::POST, &"https://idp.example.com/token".parse()?, None, None)?;
//! assert_eq!(proof.split('.').count(), 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod assertion;
mod b64;
mod dpop;
mod jwk;
mod jws;
mod key;
mod pem;

pub(crate) use self::assertion::{AssertionSigner, Assertions};
pub use self::dpop::DpopKey;
pub(crate) use self::dpop::{ath, Htu, Origin};
pub(crate) use self::key::HmacKey;
pub use self::key::{Algorithm, SigningKey};
