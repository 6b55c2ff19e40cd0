//! Client assertions as the OAuth2 provider sends them, verified by `jsonwebtoken`.

use std::collections::HashSet;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use tower_token_auth::jose::{Algorithm, SigningKey};
use tower_token_auth::provider::oauth2::{self, ClientAssertion};
use tower_token_auth::provider::Provider;
use tower_token_auth::Secret;

use crate::{decoding_key, jwt_alg, PEM_KEYS};

pub(crate) const TOKEN_URL: &str = "https://idp.test/oauth/token";
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Debug, Deserialize)]
pub(crate) struct Claims {
    pub(crate) iss: String,
    pub(crate) sub: String,
    pub(crate) aud: String,
    pub(crate) jti: String,
    pub(crate) iat: u64,
    pub(crate) exp: u64,
}

/// The form fields of an auth request.
pub(crate) async fn form(request: http::Request<Full<Bytes>>) -> Vec<(String, String)> {
    let body = request.into_body().collect().await.unwrap().to_bytes();
    form_urlencoded::parse(&body).into_owned().collect()
}

pub(crate) fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no `{name}` in {form:?}"))
}

/// Verifies `jws` as a client assertion of `client_id` for `audience`; its claims.
pub(crate) fn verify(
    jws: &str,
    key: &DecodingKey,
    alg: jsonwebtoken::Algorithm,
    audience: &str,
) -> Claims {
    let mut validation = Validation::new(alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&["my-app"]);
    validation.sub = Some("my-app".to_owned());
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub"]);
    validation.leeway = 0;
    jsonwebtoken::decode::<Claims>(jws, key, &validation)
        .unwrap_or_else(|e| panic!("{alg:?} assertion does not verify: {e}"))
        .claims
}

/// The client assertion a login of `provider` sends, checking the rest of the form.
async fn login_assertion(provider: &impl Provider) -> String {
    let request = provider.login_request().unwrap();
    assert!(!request.headers().contains_key(AUTHORIZATION));
    let form = form(request).await;
    assert_eq!(field(&form, "client_id"), "my-app");
    assert_eq!(field(&form, "client_assertion_type"), JWT_BEARER);
    assert!(!form.iter().any(|(n, _)| n == "client_secret"));
    field(&form, "client_assertion").to_owned()
}

/// `private_key_jwt` with every algorithm: the assertion verifies with the public key, its
/// header carries `alg` and `kid`, its claims are those of RFC 7523 §3, with a fresh `jti` and
/// `exp` at most 60 s after `iat`, for every login and refresh.
#[tokio::test]
async fn private_key_jwt_verifies_with_every_algorithm() {
    for (alg, file, public) in PEM_KEYS {
        let key = SigningKey::from_pkcs8_pem(&crate::key_file(file), alg)
            .unwrap()
            .with_kid(format!("kid-{alg}"));
        let provider = oauth2::Builder::client_credentials_grant(TOKEN_URL)
            .scope("read")
            .build_with_assertion(ClientAssertion::private_key_jwt("my-app", key))
            .unwrap();
        let decoding = decoding_key(alg, public);
        let mut jtis = HashSet::new();
        for _ in 0..3 {
            let jws = login_assertion(&provider).await;
            let header = jsonwebtoken::decode_header(&jws).unwrap();
            assert_eq!(header.alg, jwt_alg(alg));
            assert_eq!(header.kid.as_deref(), Some(format!("kid-{alg}").as_str()));
            let claims = verify(&jws, &decoding, jwt_alg(alg), TOKEN_URL);
            assert_eq!(
                (claims.iss.as_str(), claims.sub.as_str()),
                ("my-app", "my-app")
            );
            assert_eq!(claims.aud, TOKEN_URL);
            assert!(
                claims.exp > claims.iat && claims.exp - claims.iat <= 60,
                "{claims:?}"
            );
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert!(claims.iat.abs_diff(now) <= 5);
            assert!(jtis.insert(claims.jti), "{alg}: a jti repeated");
        }
        let refresh = provider.refresh_request(&Secret::from("rt-1")).unwrap();
        let refresh = form(refresh).await;
        assert_eq!(field(&refresh, "refresh_token"), "rt-1");
        let claims = verify(
            field(&refresh, "client_assertion"),
            &decoding,
            jwt_alg(alg),
            TOKEN_URL,
        );
        assert!(jtis.insert(claims.jti));
    }
}

/// A key without `kid`: no `kid` header. An audience set (the issuer) replaces the token URL.
#[tokio::test]
async fn audience_and_no_kid() {
    let key = SigningKey::from_jwk(&crate::key_file("ed25519.jwk.json")).unwrap();
    assert_eq!(key.kid(), Some("ed-jwk-1"));
    let provider = oauth2::Builder::password(TOKEN_URL, "alice", "pw")
        .build_with_assertion(
            ClientAssertion::private_key_jwt(
                "my-app",
                SigningKey::generate(Algorithm::ES256).unwrap(),
            )
            .audience("https://idp.test"),
        )
        .unwrap();
    let jws = login_assertion(&provider).await;
    let header = jsonwebtoken::decode_header(&jws).unwrap();
    assert_eq!(header.kid, None);
    let claims = jsonwebtoken::dangerous::insecure_decode::<Claims>(&jws)
        .unwrap()
        .claims;
    assert_eq!(claims.aud, "https://idp.test");
    // The key from the JWK signs assertions that verify with the PEM public key.
    let provider = oauth2::Builder::client_credentials_grant(TOKEN_URL)
        .build_with_assertion(ClientAssertion::private_key_jwt("my-app", key))
        .unwrap();
    let jws = login_assertion(&provider).await;
    assert_eq!(
        jsonwebtoken::decode_header(&jws).unwrap().kid.as_deref(),
        Some("ed-jwk-1")
    );
    verify(
        &jws,
        &decoding_key(Algorithm::EdDSA, "ed25519.pub.pem"),
        jsonwebtoken::Algorithm::EdDSA,
        TOKEN_URL,
    );
}

/// `client_secret_jwt`: HS256 keyed with the client secret, which is never sent.
#[tokio::test]
async fn client_secret_jwt_verifies_with_the_secret() {
    let secret = "a-client-secret-of-32-bytes-or-more!";
    let provider = oauth2::Builder::client_credentials_grant(TOKEN_URL)
        .build_with_assertion(ClientAssertion::client_secret_jwt("my-app", secret))
        .unwrap();
    let request = provider.login_request().unwrap();
    let form = form(request).await;
    assert!(!form.iter().any(|(_, v)| v.contains(secret)));
    let jws = field(&form, "client_assertion");
    let header = jsonwebtoken::decode_header(jws).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
    let claims = verify(
        jws,
        &DecodingKey::from_secret(secret.as_bytes()),
        jsonwebtoken::Algorithm::HS256,
        TOKEN_URL,
    );
    assert!(claims.exp - claims.iat <= 60);
}
