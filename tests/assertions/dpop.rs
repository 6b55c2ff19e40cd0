//! DPoP proofs (RFC 9449 §4.2), verified by `jsonwebtoken` with the key in their own header.

use std::collections::HashSet;

use http::{Method, Uri};
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use tower_token_auth::jose::{Algorithm, DpopKey, SigningKey};
use tower_token_auth::{ErrorKind, Secret};

#[derive(Debug, Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: u64,
    ath: Option<String>,
    nonce: Option<String>,
}

/// Verifies `proof` as a resource server would: `typ`, `alg`, the signature with the header's
/// public JWK, whose thumbprint is the key's. Its claims.
fn verify(proof: &str, key: &DpopKey) -> Claims {
    let header = jsonwebtoken::decode_header(proof).unwrap();
    assert_eq!(header.typ.as_deref(), Some("dpop+jwt"));
    let jwk = header.jwk.expect("a DPoP proof carries its public key");
    assert_eq!(
        jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256),
        key.thumbprint()
    );
    let mut validation = Validation::new(header.alg);
    validation.set_required_spec_claims::<&str>(&[]);
    validation.validate_exp = false;
    validation.validate_aud = false;
    let decoding = DecodingKey::from_jwk(&jwk).unwrap();
    jsonwebtoken::decode::<Claims>(proof, &decoding, &validation)
        .unwrap_or_else(|e| panic!("proof does not verify: {e}"))
        .claims
}

/// Every algorithm: the proof verifies, its public JWK has no private member, `htm`, `htu`,
/// `iat` and a fresh `jti` per proof.
#[test]
fn proofs_verify_with_every_algorithm() {
    let keys = [
        DpopKey::new(SigningKey::generate(Algorithm::ES256).unwrap()),
        DpopKey::new(SigningKey::generate(Algorithm::EdDSA).unwrap()),
        DpopKey::new(crate::pem_key(Algorithm::RS256)),
        DpopKey::new(crate::pem_key(Algorithm::PS256)),
    ];
    let uri: Uri = "https://api.test/orders?page=2".parse().unwrap();
    let algs = [
        Algorithm::ES256,
        Algorithm::EdDSA,
        Algorithm::RS256,
        Algorithm::PS256,
    ];
    for (key, alg) in keys.into_iter().zip(algs) {
        let mut jtis = HashSet::new();
        for _ in 0..3 {
            let proof = key.proof(&Method::GET, &uri, None, None).unwrap();
            let header = jsonwebtoken::decode_header(&proof).unwrap();
            assert_eq!(header.alg, crate::jwt_alg(alg));
            let jwk = serde_json::to_value(header.jwk.unwrap()).unwrap();
            for private in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(jwk.get(private).is_none(), "{private} in {jwk}");
            }
            let claims = verify(&proof, &key);
            assert_eq!(claims.htm, "GET");
            assert_eq!(claims.htu, "https://api.test/orders");
            assert_eq!((claims.ath, claims.nonce), (None, None));
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert!(claims.iat.abs_diff(now) <= 5);
            assert!(jtis.insert(claims.jti), "a jti repeated");
        }
    }
}

/// `ath` is the base64url SHA-256 of the access token: RFC 9449 §7.1's example token and hash.
/// The server's nonce is carried as given.
#[test]
fn access_token_hash_and_nonce() {
    let key = DpopKey::new(SigningKey::generate(Algorithm::ES256).unwrap());
    let token = Secret::from("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU");
    let proof = key
        .proof(
            &Method::GET,
            &"https://resource.example.org/protectedresource"
                .parse()
                .unwrap(),
            Some(&token),
            Some("eyJ7S_zG.eyJH0-Z.HX4w-7v"),
        )
        .unwrap();
    let claims = verify(&proof, &key);
    assert_eq!(
        claims.ath.as_deref(),
        Some("fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo")
    );
    assert_eq!(claims.nonce.as_deref(), Some("eyJ7S_zG.eyJH0-Z.HX4w-7v"));
    assert!(!proof.contains(token.expose()));
}

/// `htu`: scheme and host lowercased, the default port left out (and any other kept), the path
/// without query or fragment; a relative URI is a configuration error.
#[test]
fn htu_normalisation() {
    let key = DpopKey::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
    let cases = [
        (
            "https://API.Example.COM/Orders",
            "https://api.example.com/Orders",
        ),
        ("https://api.test:443/token", "https://api.test/token"),
        ("http://api.test:80/token", "http://api.test/token"),
        ("https://api.test:8443/token", "https://api.test:8443/token"),
        ("http://api.test:443/token", "http://api.test:443/token"),
        ("https://api.test/a/b?x=1&y=2", "https://api.test/a/b"),
        ("https://api.test/a#frag", "https://api.test/a"),
        ("https://api.test", "https://api.test/"),
        ("https://user:pw@api.test/x", "https://api.test/x"),
    ];
    for (uri, want) in cases {
        let proof = key
            .proof(&Method::POST, &uri.parse().unwrap(), None, None)
            .unwrap();
        let claims = verify(&proof, &key);
        assert_eq!(claims.htu, want, "{uri}");
        assert_eq!(claims.htm, "POST");
    }
    let err = key
        .proof(&Method::GET, &"/relative".parse().unwrap(), None, None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}
