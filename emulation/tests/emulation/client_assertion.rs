//! Client authentication by the registered method: `private_key_jwt` with each key type,
//! `client_secret_jwt`, and secrets sent by a method the client is not registered for.

use crate::jose_support::*;
use crate::support::*;

fn private_key_jwt(key: &TestKey) -> OAuthExtensions {
    OAuthExtensions {
        client_auth: ClientAuth::PrivateKeyJwt {
            jwk: key.jwk.clone(),
            alg: key.signing_alg(),
        },
        ..OAuthExtensions::default()
    }
}

/// Sends `assertion` and expects 401 `invalid_client` counted as a violation for `reason`.
async fn refused(client: &HttpClient, emulation: &Emulation, assertion: &str, reason: &str) {
    let before = last_violation(emulation).1;
    let reply = send(client, assertion_request(&emulation.base_url(), assertion)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reason}");
    assert_eq!(reply.json()["error"], "invalid_client", "{reason}");
    assert_eq!(last_violation(emulation), (reason, before + 1));
}

#[tokio::test]
async fn private_key_jwt_es256_is_checked_claim_by_claim() {
    let client = client();
    let key = TestKey::es256().with_kid("k1");
    let emulation = start_with(private_key_jwt(&key)).await;
    let header = || json!({ "kid": "k1" });
    let good = || assertion_claims(&emulation);

    let assertion = key.sign(header(), &good());
    let reply = send(
        &client,
        assertion_request(&emulation.base_url(), &assertion),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.json()["token_type"], "Bearer");
    // The issuer is an audience too, alone or in an array.
    for aud in [
        json!(emulation.issuer()),
        json!(["other", emulation.issuer()]),
    ] {
        let claims = merge(good(), json!({ "aud": aud }));
        let reply = send(
            &client,
            assertion_request(&emulation.base_url(), &key.sign(header(), &claims)),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    assert_eq!(emulation.stats().client_assertions, 3);

    refused(
        &client,
        &emulation,
        &assertion,
        "client assertion jti replayed",
    )
    .await;
    let rsa = TestKey::rsa(Algorithm::RS256);
    refused(
        &client,
        &emulation,
        &rsa.sign(header(), &good()),
        "client assertion alg is not the registered one",
    )
    .await;
    refused(
        &client,
        &emulation,
        &unsigned(&good()),
        "unsigned client assertion (alg none)",
    )
    .await;
    // HS256 "signed" with the public key's bytes: the classic key confusion.
    let confused = jws(
        &json!({ "alg": "HS256", "kid": "k1" }),
        &good(),
        &EncodingKey::from_secret(key.jwk.to_string().as_bytes()),
        Algorithm::HS256,
    );
    refused(
        &client,
        &emulation,
        &confused,
        "HMAC client assertion from a client registered with a public key",
    )
    .await;
    let now = now();
    let cases = [
        (
            merge(good(), json!({ "aud": "http://127.0.0.1:1/oauth/token" })),
            "client assertion aud names neither the endpoint nor the issuer",
        ),
        (
            merge(good(), json!({ "iat": now - 120, "exp": now - 60 })),
            "expired client assertion",
        ),
        (
            merge(good(), json!({ "exp": now + 300 })),
            "client assertion lives longer than 60 s",
        ),
        (
            merge(good(), json!({ "iat": now + 120, "exp": now + 150 })),
            "client assertion issued in the future",
        ),
        (
            merge(good(), json!({ "iss": "someone-else" })),
            "client assertion iss and sub are not the client id",
        ),
        (without(good(), "jti"), "client assertion without jti"),
        (without(good(), "exp"), "client assertion without exp"),
        (without(good(), "iat"), "client assertion without iat"),
    ];
    for (claims, reason) in cases {
        refused(&client, &emulation, &key.sign(header(), &claims), reason).await;
    }
    refused(
        &client,
        &emulation,
        &key.sign(json!({ "kid": "k2" }), &good()),
        "client assertion kid is not the registered key's",
    )
    .await;
    refused(
        &client,
        &emulation,
        "not.a-jws",
        "client assertion is not a compact JWS",
    )
    .await;

    // Another key under the right kid: a forged assertion is a rejection, not a violation.
    let violations = emulation.stats().violations;
    let forged = TestKey::es256().sign(header(), &good());
    let reply = send(&client, assertion_request(&emulation.base_url(), &forged)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_client");
    let stats = emulation.stats();
    assert_eq!((stats.violations, stats.rejected_logins), (violations, 1));
    assert_eq!((stats.logins, stats.client_assertions), (3, 3));
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

#[tokio::test]
async fn assertion_type_and_method_are_checked() {
    let client = client();
    let key = TestKey::es256();
    let emulation = start_with(private_key_jwt(&key)).await;
    let url = emulation.base_url();
    let assertion = key.sign(json!({}), &assertion_claims(&emulation));
    let c = emulation.config().clone();

    let wrong_type = post_form(
        &url,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:example:saml"),
            ("client_assertion", &assertion),
        ],
    );
    let reply = send(&client, wrong_type).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        last_violation(&emulation),
        ("unsupported client_assertion_type", 1)
    );

    // The secret, by a method this client is not registered for.
    let reply = send(&client, cc_request(&emulation, None)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_client");
    assert_eq!(
        last_violation(&emulation),
        (
            "client authentication method not registered for the client",
            2
        )
    );

    // An assertion and a secret at once.
    let both = with(
        assertion_request(&url, &assertion),
        "authorization",
        &client_basic(&c.client_id, &c.client_secret),
    );
    let reply = send(&client, both).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_request");
    assert_eq!(
        last_violation(&emulation),
        ("more than one client authentication method", 3)
    );

    // Nothing at all.
    let reply = send(
        &client,
        post_form(&url, &[("grant_type", "client_credentials")]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(last_violation(&emulation), ("no client authentication", 4));

    // The assertion was never used: it still works.
    let reply = send(&client, assertion_request(&url, &assertion)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(emulation.stats().client_assertions, 1);
}

#[tokio::test]
async fn private_key_jwt_takes_rsa_pss_and_ed25519_keys() {
    let client = client();
    for key in [
        TestKey::rsa(Algorithm::RS256),
        TestKey::rsa(Algorithm::PS256),
        TestKey::ed25519(),
    ] {
        let emulation = start_with(private_key_jwt(&key)).await;
        let assertion = key.sign(json!({}), &assertion_claims(&emulation));
        let reply = send(
            &client,
            assertion_request(&emulation.base_url(), &assertion),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", key.alg_name());
        let stats = emulation.stats();
        assert_eq!((stats.client_assertions, stats.violations), (1, 0));
    }
    // The same RSA key registered for RS256 refuses PS256 signatures.
    let rs256 = TestKey::rsa(Algorithm::RS256);
    let emulation = start_with(private_key_jwt(&rs256)).await;
    let ps256 = TestKey::rsa(Algorithm::PS256);
    let assertion = ps256.sign(json!({}), &assertion_claims(&emulation));
    refused(
        &client,
        &emulation,
        &assertion,
        "client assertion alg is not the registered one",
    )
    .await;
}

#[tokio::test]
async fn client_secret_jwt_signs_with_the_secret() {
    let client = client();
    let emulation = start_with(OAuthExtensions {
        client_auth: ClientAuth::SecretJwt,
        ..OAuthExtensions::default()
    })
    .await;
    let secret = EncodingKey::from_secret(emulation.config().client_secret.as_bytes());
    let header = json!({ "alg": "HS256", "typ": "JWT" });
    let assertion = jws(
        &header,
        &assertion_claims(&emulation),
        &secret,
        Algorithm::HS256,
    );
    let reply = send(
        &client,
        assertion_request(&emulation.base_url(), &assertion),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);

    // Signed with a wrong secret: rejected, no violation.
    let wrong = EncodingKey::from_secret(b"not the secret");
    let assertion = jws(
        &header,
        &assertion_claims(&emulation),
        &wrong,
        Algorithm::HS256,
    );
    let reply = send(
        &client,
        assertion_request(&emulation.base_url(), &assertion),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_client");
    let stats = emulation.stats();
    assert_eq!(
        (stats.logins, stats.rejected_logins, stats.violations),
        (1, 1, 0)
    );

    // Another algorithm than the registered HS256.
    let key = TestKey::es256();
    refused(
        &client,
        &emulation,
        &key.sign(json!({}), &assertion_claims(&emulation)),
        "client assertion alg is not the registered one",
    )
    .await;
}

#[tokio::test]
async fn a_private_jwk_cannot_be_registered() {
    let mut jwk = TestKey::es256().jwk;
    jwk["d"] = "AAAA".into();
    let config = Config {
        extensions: OAuthExtensions {
            client_auth: ClientAuth::PrivateKeyJwt {
                jwk,
                alg: SigningAlg::ES256,
            },
            ..OAuthExtensions::default()
        },
        ..Config::default()
    };
    let error = Emulation::start(Api::OAuth2, config).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}
