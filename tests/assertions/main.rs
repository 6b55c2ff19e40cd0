//! The `jose` feature: signing keys, client assertions and DPoP proofs, every JWS verified by an
//! independent implementation (`jsonwebtoken`), and `private_key_jwt` end to end over HTTP.
//!
//! Test keys in `keys/` were made with OpenSSL (`openssl genpkey`) and are used nowhere else.

#[path = "../support/mod.rs"]
mod support;

mod bound;
mod bound_grpc;
mod demo;
mod dpop;
mod e2e;
mod emulated;
mod faults;
mod keys;
mod oidc;
mod oidc_demo;
mod oidc_exchange;
mod oidc_faults;
mod oidc_grpc;
mod oidc_method;
mod oidc_reqwest;
mod signed;
mod specs;

use std::path::PathBuf;

use tower_token_auth::jose::{Algorithm, SigningKey};

/// The path of the test key file `name`.
pub(crate) fn key_path(name: &str) -> PathBuf {
    [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "assertions",
        "keys",
        name,
    ]
    .iter()
    .collect()
}

/// The text of the test key file `name`.
pub(crate) fn key_file(name: &str) -> String {
    let path = key_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every algorithm, with its PKCS#8 key file and public key file.
pub(crate) const PEM_KEYS: [(Algorithm, &str, &str); 4] = [
    (Algorithm::ES256, "es256.pem", "es256.pub.pem"),
    (Algorithm::RS256, "rsa2048.pem", "rsa2048.pub.pem"),
    (Algorithm::PS256, "rsa2048.pem", "rsa2048.pub.pem"),
    (Algorithm::EdDSA, "ed25519.pem", "ed25519.pub.pem"),
];

/// The key for `alg` from its PEM file.
pub(crate) fn pem_key(alg: Algorithm) -> SigningKey {
    let (_, file, _) = PEM_KEYS.iter().find(|(a, _, _)| *a == alg).unwrap();
    SigningKey::from_pkcs8_pem(&key_file(file), alg).unwrap()
}

/// A `jsonwebtoken` verifying key from a public key PEM file, for `alg`.
pub(crate) fn decoding_key(alg: Algorithm, public_pem: &str) -> jsonwebtoken::DecodingKey {
    let pem = key_file(public_pem);
    match alg {
        Algorithm::ES256 => jsonwebtoken::DecodingKey::from_ec_pem(pem.as_bytes()),
        Algorithm::EdDSA => jsonwebtoken::DecodingKey::from_ed_pem(pem.as_bytes()),
        _ => jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .unwrap()
}

/// The `jsonwebtoken` name of `alg`.
pub(crate) fn jwt_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    alg.to_string().parse().unwrap()
}
