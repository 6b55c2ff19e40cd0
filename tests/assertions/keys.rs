//! Keys: read from PEM and JWK, generated; public JWKs and thumbprints; loading errors.

use tower_token_auth::jose::{Algorithm, SigningKey};
use tower_token_auth::ErrorKind;

use crate::key_file;

/// RFC 7638 §3.1: the example RSA key's thumbprint, computed by `jsonwebtoken` from the JWK.
#[test]
fn rfc7638_example_thumbprint() {
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(serde_json::json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29"
    }))
    .unwrap();
    assert_eq!(
        jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

/// Our thumbprint of every key equals `jsonwebtoken`'s of our public JWK; the public JWK holds
/// no private member and round-trips through `jsonwebtoken`'s JWK type.
#[test]
fn thumbprints_agree_with_an_independent_implementation() {
    for (alg, file, _) in crate::PEM_KEYS {
        let key = SigningKey::from_pkcs8_pem(&key_file(file), alg)
            .unwrap()
            .with_kid("k");
        let public = key.public_jwk();
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(
                public.get(private).is_none(),
                "{alg}: {private} in {public}"
            );
        }
        assert_eq!(public["alg"], alg.to_string());
        assert_eq!(public["kid"], "k");
        assert_eq!(public["use"], "sig");
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(public).unwrap();
        assert_eq!(
            jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256),
            key.thumbprint(),
            "{alg}"
        );
        assert_eq!(key.thumbprint().len(), 43);
    }
}

/// The JWK files hold the same keys as the PEM files: same thumbprints; `kid` and `alg` come
/// from the JWK.
#[test]
fn keys_from_jwk() {
    let cases = [
        ("es256.jwk.json", "es256.pem", Algorithm::ES256, "ec-jwk-1"),
        (
            "ed25519.jwk.json",
            "ed25519.pem",
            Algorithm::EdDSA,
            "ed-jwk-1",
        ),
        (
            "rsa2048.jwk.json",
            "rsa2048.pem",
            Algorithm::PS256,
            "rsa-jwk-1",
        ),
    ];
    for (jwk, pem, alg, kid) in cases {
        let from_jwk = SigningKey::from_jwk(&key_file(jwk)).unwrap();
        let from_pem = SigningKey::from_pkcs8_pem(&key_file(pem), alg).unwrap();
        assert_eq!(from_jwk.algorithm(), alg);
        assert_eq!(from_jwk.kid(), Some(kid));
        assert_eq!(from_jwk.thumbprint(), from_pem.thumbprint(), "{jwk}");
    }
    // An RSA JWK without `alg` signs RS256.
    let mut rsa: serde_json::Value = serde_json::from_str(&key_file("rsa2048.jwk.json")).unwrap();
    rsa.as_object_mut().unwrap().remove("alg");
    let key = SigningKey::from_jwk(&rsa.to_string()).unwrap();
    assert_eq!(key.algorithm(), Algorithm::RS256);
}

/// The older SEC 1 and PKCS#1 PEM forms read too.
#[test]
fn traditional_pem_forms() {
    let sec1 = SigningKey::from_pkcs8_pem(&key_file("es256.sec1.pem"), Algorithm::ES256).unwrap();
    let pkcs1 =
        SigningKey::from_pkcs8_pem(&key_file("rsa2048.pkcs1.pem"), Algorithm::RS256).unwrap();
    assert_eq!(
        sec1.thumbprint(),
        crate::pem_key(Algorithm::ES256).thumbprint()
    );
    assert_eq!(
        pkcs1.thumbprint(),
        crate::pem_key(Algorithm::RS256).thumbprint()
    );
}

#[test]
fn generated_keys() {
    for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::PS256] {
        let a = SigningKey::generate(alg).unwrap();
        let b = SigningKey::generate(alg).unwrap();
        assert_eq!(a.algorithm(), alg);
        assert_ne!(a.thumbprint(), b.thumbprint());
        assert_eq!(a.kid(), None);
    }
}

/// Every loading error is a configuration error, and neither it nor any `Debug` output
/// quotes key material.
#[test]
fn loading_errors_are_typed_and_quote_no_key_material() {
    let es256 = key_file("es256.pem");
    let rsa = key_file("rsa2048.pem");
    let jwk = key_file("es256.jwk.json");
    let body_line = |pem: &str| pem.lines().nth(1).unwrap().to_owned();
    let mut truncated = es256.clone();
    truncated.truncate(es256.len() - 40);
    let garbled = es256.replacen(&body_line(&es256)[..10], "!!!!!!!!!!", 1);
    let mut no_d: serde_json::Value = serde_json::from_str(&jwk).unwrap();
    no_d.as_object_mut().unwrap().remove("d");
    let mut wrong_d: serde_json::Value = serde_json::from_str(&jwk).unwrap();
    wrong_d["d"] = serde_json::Value::from("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let mut rsa_es: serde_json::Value =
        serde_json::from_str(&key_file("rsa2048.jwk.json")).unwrap();
    rsa_es["alg"] = "ES256".into();
    let cases: Vec<(&str, Result<SigningKey, tower_token_auth::AuthError>, &str)> = vec![
        (
            "not PEM",
            SigningKey::from_pkcs8_pem("hello", Algorithm::ES256),
            "not a PEM document",
        ),
        (
            "truncated",
            SigningKey::from_pkcs8_pem(&truncated, Algorithm::ES256),
            "no `-----END",
        ),
        (
            "garbled",
            SigningKey::from_pkcs8_pem(&garbled, Algorithm::ES256),
            "not valid base64",
        ),
        (
            "RSA for ES256",
            SigningKey::from_pkcs8_pem(&rsa, Algorithm::ES256),
            "does not suit ES256",
        ),
        (
            "EC for RS256",
            SigningKey::from_pkcs8_pem(&es256, Algorithm::RS256),
            "does not suit RS256",
        ),
        (
            "EC for EdDSA",
            SigningKey::from_pkcs8_pem(&es256, Algorithm::EdDSA),
            "does not suit EdDSA",
        ),
        (
            "RSA 1024",
            SigningKey::from_pkcs8_pem(&key_file("rsa1024.pem"), Algorithm::RS256),
            "shorter than 2048 bits",
        ),
        (
            "public key",
            SigningKey::from_pkcs8_pem(&key_file("es256.pub.pem"), Algorithm::ES256),
            "not a private key",
        ),
        (
            "public JWK",
            SigningKey::from_jwk(&no_d.to_string()),
            "public JWK",
        ),
        (
            "inconsistent JWK",
            SigningKey::from_jwk(&wrong_d.to_string()),
            "not a consistent key pair",
        ),
        (
            "JWK alg",
            SigningKey::from_jwk(&rsa_es.to_string()),
            "does not suit its `kty` RSA",
        ),
        (
            "not JSON",
            SigningKey::from_jwk(&jwk[..jwk.len() - 5]),
            "not a JSON object",
        ),
    ];
    let secrets = [
        body_line(&es256),
        body_line(&rsa),
        "71-GnePkI3uh3Z7Q".to_owned(),
        "AAAAAAAAAAAAAAAA".to_owned(),
    ];
    for (case, result, want) in cases {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{case}: {err}");
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(want), "{case}: {shown}");
        for secret in &secrets {
            assert!(
                !shown.contains(&secret[..16]),
                "{case} quotes key material: {shown}"
            );
        }
    }
    let key = crate::pem_key(Algorithm::ES256);
    let debug = format!("{key:?}");
    assert!(
        !debug.contains(&body_line(&es256)[..16]) && !debug.contains("71-Gn"),
        "{debug}"
    );
}
