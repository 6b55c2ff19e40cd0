//! Signing what the OAuth2 extensions verify: test keys of each type, client assertions and
//! DPoP proofs, built with `jsonwebtoken` (and `aws-lc-rs` for key generation).

use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING,
};
pub(crate) use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
pub(crate) use jsonwebtoken::{Algorithm, EncodingKey};
pub(crate) use tower_token_auth_emulation::{
    ClientAuth, Discovery, Dpop, DpopNonces, OAuthExtensions, SigningAlg, TokenExchange,
};

use crate::support::*;

pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
pub(crate) const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub(crate) const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub(crate) const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// An RSA key generated once with `openssl genrsa -traditional 2048`, for tests only.
const RSA_PEM: &str = include_str!("keys/test-rsa-2048.pem");

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A fresh `jti`.
pub(crate) fn jti() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "jti-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A private key, the algorithm it signs with, and its public JWK.
pub(crate) struct TestKey {
    pub(crate) alg: Algorithm,
    pub(crate) encoding: EncodingKey,
    pub(crate) jwk: Value,
}

impl TestKey {
    pub(crate) fn es256() -> Self {
        let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        assert_eq!((point.len(), point[0]), (65, 4));
        Self {
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            }),
        }
    }

    pub(crate) fn ed25519() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Self {
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            }),
        }
    }

    /// The committed RSA key, signing with `alg` (RS256 or PS256).
    pub(crate) fn rsa(alg: Algorithm) -> Self {
        let base64: String = RSA_PEM
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = STANDARD.decode(base64).unwrap();
        let encoding = EncodingKey::from_rsa_der(&der);
        let jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).unwrap();
        let jwk = serde_json::to_value(jwk).unwrap();
        Self {
            alg,
            encoding,
            jwk: json!({ "kty": "RSA", "n": jwk["n"], "e": jwk["e"] }),
        }
    }

    pub(crate) fn with_kid(mut self, kid: &str) -> Self {
        self.jwk["kid"] = kid.into();
        self
    }

    pub(crate) fn signing_alg(&self) -> SigningAlg {
        match self.alg {
            Algorithm::ES256 => SigningAlg::ES256,
            Algorithm::RS256 => SigningAlg::RS256,
            Algorithm::PS256 => SigningAlg::PS256,
            Algorithm::EdDSA => SigningAlg::EdDSA,
            other => panic!("no signing alg for {other:?}"),
        }
    }

    pub(crate) fn alg_name(&self) -> &'static str {
        self.signing_alg().name()
    }

    /// The RFC 7638 thumbprint of the public key.
    pub(crate) fn thumbprint(&self) -> String {
        let jwk: Jwk = serde_json::from_value(self.jwk.clone()).unwrap();
        jwk.thumbprint(ThumbprintHash::SHA256)
    }

    /// A compact JWS of `claims` under `header`, whose `alg` is this key's unless it says one.
    pub(crate) fn sign(&self, mut header: Value, claims: &Value) -> String {
        if header.get("alg").is_none() {
            header["alg"] = self.alg_name().into();
        }
        jws(&header, claims, &self.encoding, self.alg)
    }
}

/// Signs `header.claims` with `key` under `alg`, whatever the header says.
pub(crate) fn jws(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

/// An unsigned JWS (`alg` `none`).
pub(crate) fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({ "alg": "none" }).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// `base` with the members of `extra` set over it (a `null` member removes the one of `base`).
pub(crate) fn merge(mut base: Value, extra: Value) -> Value {
    for (name, value) in extra.as_object().cloned().unwrap_or_default() {
        if value.is_null() {
            base.as_object_mut().unwrap().remove(&name);
        } else {
            base[name] = value;
        }
    }
    base
}

/// The claims of a JWT, unverified.
pub(crate) fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Good client assertion claims for `emulation`'s client, addressed to its token endpoint.
pub(crate) fn assertion_claims(emulation: &Emulation) -> Value {
    let id = &emulation.config().client_id;
    let now = now();
    json!({
        "iss": id,
        "sub": id,
        "aud": emulation.base_url(),
        "iat": now,
        "exp": now + 30,
        "jti": jti(),
    })
}

/// A `client_credentials` request authenticated by `assertion`, to `url`.
pub(crate) fn assertion_request(url: &str, assertion: &str) -> Request<Full<Bytes>> {
    post_form(
        url,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ],
    )
}

/// A DPoP proof by `key` for `method` on `url`, with `extra` claims merged in (a `null` claim
/// removes the default one).
pub(crate) fn proof(key: &TestKey, method: &str, url: &str, extra: Value) -> String {
    let claims = merge(
        json!({ "jti": jti(), "htm": method, "htu": url, "iat": now() }),
        extra,
    );
    key.sign(json!({ "typ": "dpop+jwt", "jwk": key.jwk }), &claims)
}

/// `BASE64URL(SHA-256(token))`, DPoP's `ath`.
pub(crate) fn ath(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Adds a header to a request.
pub(crate) fn with(
    mut request: Request<Full<Bytes>>,
    name: &'static str,
    value: &str,
) -> Request<Full<Bytes>> {
    request
        .headers_mut()
        .append(name, HeaderValue::from_str(value).unwrap());
    request
}

/// A `client_credentials` request with `client_secret_basic` and, if given, a DPoP proof.
pub(crate) fn cc_request(emulation: &Emulation, proof: Option<&str>) -> Request<Full<Bytes>> {
    let c = emulation.config();
    let request = with(
        post_form(
            &emulation.base_url(),
            &[("grant_type", "client_credentials")],
        ),
        "authorization",
        &client_basic(&c.client_id, &c.client_secret),
    );
    match proof {
        Some(proof) => with(request, "dpop", proof),
        None => request,
    }
}

/// A `GET` of the resource with `Authorization: {scheme} {token}` and, if given, a proof.
pub(crate) fn resource_request(
    emulation: &Emulation,
    scheme: &str,
    token: &str,
    proof: Option<&str>,
) -> Request<Full<Bytes>> {
    let request = request(
        Method::GET,
        &emulation.resource_url(),
        &[("authorization", &format!("{scheme} {token}"))],
        Bytes::new(),
    );
    match proof {
        Some(proof) => with(request, "dpop", proof),
        None => request,
    }
}

/// The reason of the last violation counted, and how many were counted in all.
pub(crate) fn last_violation(emulation: &Emulation) -> (&'static str, u64) {
    let reasons = emulation.violation_reasons();
    let total = reasons.iter().map(|(_, n)| n).sum();
    (reasons.last().map_or("", |(reason, _)| reason), total)
}

/// An OAuth2 emulation with these extensions.
pub(crate) async fn start_with(extensions: OAuthExtensions) -> Emulation {
    Emulation::start(
        Api::OAuth2,
        Config {
            extensions,
            ..Config::default()
        },
    )
    .await
    .unwrap()
}
