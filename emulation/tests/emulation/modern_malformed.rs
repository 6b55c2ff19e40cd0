//! Garbage where the OAuth2 extensions expect JOSE: every malformed proof or assertion gets its
//! RFC error and counts once, and the server keeps serving; nonces rotate on their own clock;
//! revocation takes the registered client authentication.

use crate::jose_support::*;
use crate::support::*;

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Compact serialisations that are no valid DPoP proof for `url`, by `key`.
fn bad_proofs(key: &TestKey, url: &str) -> Vec<Vec<u8>> {
    let claims = json!({ "jti": jti(), "htm": "POST", "htu": url, "iat": now() });
    let header = |jwk: Value| json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": jwk });
    let signed = |header: Value, claims: &Value| jws(&header, claims, &key.encoding, key.alg);
    let ec = key.jwk.clone();
    let mut proofs: Vec<String> = vec![
        String::new(),
        "a.b.c".to_owned(),
        "....".to_owned(),
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode("not json"),
            b64(&claims)
        ),
        format!("{}.{}.sig", b64(&json!([1, 2])), b64(&claims)),
        format!(
            "{}.{}.",
            b64(&json!({ "typ": "dpop+jwt", "alg": "none", "jwk": ec })),
            b64(&claims)
        ),
        signed(header(json!("a string")), &claims),
        signed(
            header(json!({ "kty": "EC", "crv": "Ed25519", "x": ec["x"], "y": ec["y"] })),
            &claims,
        ),
        signed(
            header(json!({ "kty": "OKP", "crv": "P-256", "x": ec["x"] })),
            &claims,
        ),
        signed(header(json!({ "kty": "oct", "k": "c2VjcmV0" })), &claims),
        signed(
            header(json!({ "kty": "EC", "crv": "P-256", "x": "AAAA", "y": ec["y"] })),
            &claims,
        ),
        signed(
            header(json!({ "kty": "EC", "crv": "P-384", "x": ec["x"], "y": ec["y"] })),
            &claims,
        ),
        signed(
            header(json!({ "kty": "EC", "crv": "P-256", "x": 7, "y": ec["y"] })),
            &claims,
        ),
        signed(header(TestKey::rsa(Algorithm::RS256).jwk), &claims),
        signed(
            header(ec.clone()),
            &merge(claims.clone(), json!({ "iat": "now" })),
        ),
        signed(
            header(ec.clone()),
            &merge(claims.clone(), json!({ "iat": 1e300 })),
        ),
        signed(
            header(ec.clone()),
            &merge(claims.clone(), json!({ "htm": 5 })),
        ),
        signed(
            header(ec.clone()),
            &merge(claims.clone(), json!({ "jti": "" })),
        ),
        signed(
            header(ec.clone()),
            &merge(claims.clone(), json!({ "htu": "not a url" })),
        ),
        signed(header(ec.clone()), &json!("a string")),
        format!("{}.{}.{}", b64(&header(ec.clone())), b64(&claims), "!!!"),
        ".".repeat(30_000),
    ];
    proofs.push(format!("{}x", signed(header(ec), &claims)));
    let mut proofs: Vec<Vec<u8>> = proofs.into_iter().map(String::into_bytes).collect();
    proofs.push(b"\xff\xfe.\x80".to_vec());
    proofs
}

#[tokio::test]
async fn malformed_proofs_are_refused_and_counted_once_each() {
    let client = client();
    let emulation = start_with(OAuthExtensions {
        dpop: Some(Dpop {
            required: true,
            ..Dpop::default()
        }),
        ..OAuthExtensions::default()
    })
    .await;
    let key = TestKey::es256();
    let url = emulation.base_url();
    let proofs = bad_proofs(&key, &url);
    for (i, proof) in proofs.iter().enumerate() {
        let mut request = cc_request(&emulation, None);
        request
            .headers_mut()
            .insert("dpop", HeaderValue::from_bytes(proof).unwrap());
        let reply = send(&client, request).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "proof {i}");
        assert_eq!(reply.json()["error"], "invalid_dpop_proof", "proof {i}");
        assert_eq!(emulation.stats().violations, i as u64 + 1, "proof {i}");
    }
    // The same garbage at the resource, beside a good token.
    let good = proof(&key, "POST", &url, json!({}));
    let reply = send(&client, cc_request(&emulation, Some(&good))).await;
    assert_eq!(reply.status, StatusCode::OK);
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    for (i, proof) in bad_proofs(&key, &emulation.resource_url())
        .iter()
        .enumerate()
    {
        let mut request = resource_request(&emulation, "DPoP", &token, None);
        request
            .headers_mut()
            .insert("dpop", HeaderValue::from_bytes(proof).unwrap());
        let reply = send(&client, request).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "proof {i}");
        assert_eq!(reply.json()["error"], "invalid_dpop_proof", "proof {i}");
    }
    let n = proofs.len() as u64;
    let stats = emulation.stats();
    assert_eq!((stats.violations, stats.dpop_proofs), (2 * n, 1));
    // Still serving.
    let proof = proof(
        &key,
        "GET",
        &emulation.resource_url(),
        json!({ "ath": ath(&token) }),
    );
    let reply = send(
        &client,
        resource_request(&emulation, "DPoP", &token, Some(&proof)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn malformed_assertions_are_refused_and_counted_once_each() {
    let client = client();
    let key = TestKey::ed25519();
    let emulation = start_with(OAuthExtensions {
        client_auth: ClientAuth::PrivateKeyJwt {
            jwk: key.jwk.clone(),
            alg: SigningAlg::EdDSA,
        },
        ..OAuthExtensions::default()
    })
    .await;
    let claims = assertion_claims(&emulation);
    let assertions = [
        String::new(),
        "..".to_owned(),
        "a.b".to_owned(),
        format!("{}.{}.sig", b64(&json!({ "alg": 5 })), b64(&claims)),
        format!(
            "{}.{}.sig",
            b64(&json!({ "alg": "EdDSA" })),
            b64(&json!(null))
        ),
        key.sign(json!({}), &merge(claims.clone(), json!({ "aud": 5 }))),
        key.sign(json!({}), &merge(claims.clone(), json!({ "aud": [1, 2] }))),
        key.sign(json!({}), &merge(claims.clone(), json!({ "exp": "soon" }))),
        key.sign(
            json!({}),
            &merge(claims.clone(), json!({ "iat": f64::MAX })),
        ),
        key.sign(json!({}), &merge(claims.clone(), json!({ "sub": null }))),
    ];
    for (i, assertion) in assertions.iter().enumerate() {
        let reply = send(&client, assertion_request(&emulation.base_url(), assertion)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "assertion {i}");
        assert_eq!(reply.json()["error"], "invalid_client", "assertion {i}");
        assert_eq!(emulation.stats().violations, i as u64 + 1, "assertion {i}");
    }
    let good = key.sign(json!({}), &assertion_claims(&emulation));
    let reply = send(&client, assertion_request(&emulation.base_url(), &good)).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn nonces_rotate_on_their_own_clock() {
    let client = client();
    let emulation = start_with(OAuthExtensions {
        dpop: Some(Dpop {
            required: true,
            nonces: Some(DpopNonces {
                rotate_every: Duration::from_millis(100),
                grace: Duration::ZERO,
                resource: false,
                ..DpopNonces::default()
            }),
            ..Dpop::default()
        }),
        ..OAuthExtensions::default()
    })
    .await;
    let key = TestKey::es256();
    let url = emulation.base_url();
    let reply = send(
        &client,
        cc_request(&emulation, Some(&proof(&key, "POST", &url, json!({})))),
    )
    .await;
    let nonce = reply.header("dpop-nonce").unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let stale = proof(&key, "POST", &url, json!({ "nonce": nonce }));
    let reply = send(&client, cc_request(&emulation, Some(&stale))).await;
    assert_eq!(reply.json()["error"], "use_dpop_nonce");
    assert_ne!(reply.header("dpop-nonce"), Some(nonce.as_str()));
    let stats = emulation.stats();
    assert_eq!((stats.dpop_nonce_challenges, stats.violations), (2, 0));
}

#[tokio::test]
async fn revocation_takes_the_registered_client_authentication() {
    let client = client();
    let key = TestKey::es256();
    let emulation = start_with(OAuthExtensions {
        client_auth: ClientAuth::PrivateKeyJwt {
            jwk: key.jwk.clone(),
            alg: SigningAlg::ES256,
        },
        revocation: true,
        ..OAuthExtensions::default()
    })
    .await;
    let assertion = key.sign(json!({}), &assertion_claims(&emulation));
    let reply = send(
        &client,
        assertion_request(&emulation.base_url(), &assertion),
    )
    .await;
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    let revoke_url = format!("{}/oauth/revoke", emulation.issuer());

    // The secret by Basic: not this client's method.
    let c = emulation.config().clone();
    let basic = with(
        post_form(&revoke_url, &[("token", &token)]),
        "authorization",
        &client_basic(&c.client_id, &c.client_secret),
    );
    let reply = send(&client, basic).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // An assertion addressed to the revocation endpoint itself.
    let claims = merge(assertion_claims(&emulation), json!({ "aud": revoke_url }));
    let revoke = post_form(
        &revoke_url,
        &[
            ("token", &token),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &key.sign(json!({}), &claims)),
        ],
    );
    let reply = send(&client, revoke).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    let reply = send(
        &client,
        resource_request(&emulation, "Bearer", &token, None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let stats = emulation.stats();
    assert_eq!(
        (
            stats.client_assertions,
            stats.revocation_requests,
            stats.revoked_token_uses
        ),
        (2, 1, 1)
    );
    assert_eq!(
        emulation.violation_reasons(),
        [
            (
                "client authentication method not registered for the client",
                1
            ),
            ("revoked token sent", 1)
        ]
    );
}
