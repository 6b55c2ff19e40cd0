//! DPoP (RFC 9449): proofs at the token endpoint and the resource, DPoP-bound tokens, nonces.

use crate::jose_support::*;
use crate::support::*;

fn dpop(required: bool, nonces: Option<DpopNonces>) -> OAuthExtensions {
    OAuthExtensions {
        dpop: Some(Dpop {
            required,
            nonces,
            ..Dpop::default()
        }),
        ..OAuthExtensions::default()
    }
}

/// A DPoP-bound access token for `key`.
async fn bound_token(client: &HttpClient, emulation: &Emulation, key: &TestKey) -> String {
    let proof = proof(key, "POST", &emulation.base_url(), json!({}));
    let reply = send(client, cc_request(emulation, Some(&proof))).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.json()["token_type"], "DPoP");
    reply.json()["access_token"].as_str().unwrap().to_owned()
}

/// Sends `request` to the resource and expects a 401 violation for `reason`, challenged with
/// `challenge`.
async fn refused(
    client: &HttpClient,
    emulation: &Emulation,
    request: Request<Full<Bytes>>,
    reason: &str,
    challenge: &str,
) {
    let before = last_violation(emulation).1;
    let reply = send(client, request).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reason}");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(challenge),
        "{reason}"
    );
    assert_eq!(last_violation(emulation), (reason, before + 1));
}

const BAD_PROOF: &str = r#"DPoP error="invalid_dpop_proof", algs="ES256 RS256 PS256 EdDSA""#;
const BAD_TOKEN: &str = r#"DPoP error="invalid_token", algs="ES256 RS256 PS256 EdDSA""#;

#[tokio::test]
async fn bound_token_needs_a_matching_proof_at_the_resource() {
    let client = client();
    let emulation = start_with(dpop(true, None)).await;
    let key = TestKey::es256();
    let token = bound_token(&client, &emulation, &key).await;
    assert_eq!(claims_of(&token)["cnf"]["jkt"], key.thumbprint());
    let url = emulation.resource_url();
    let good = |extra: Value| {
        proof(
            &key,
            "GET",
            &url,
            merge(json!({ "ath": ath(&token) }), extra),
        )
    };

    let reply = send(
        &client,
        resource_request(&emulation, "DPoP", &token, Some(&good(json!({})))),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    // Query and fragment are no part of htu, and the URL compares normalised.
    let loud = url.replace("http://", "HTTP://");
    let reply = send(
        &client,
        resource_request(
            &emulation,
            "dpop",
            &token,
            Some(&good(json!({ "htu": format!("{loud}?page=2") }))),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let stats = emulation.stats();
    assert_eq!(
        (stats.dpop_proofs, stats.resource_ok, stats.violations),
        (3, 2, 0)
    );

    let replayed = good(json!({}));
    let send_proof = |proof: String| resource_request(&emulation, "DPoP", &token, Some(&proof));
    assert_eq!(
        send(&client, send_proof(replayed.clone())).await.status,
        StatusCode::OK
    );
    refused(
        &client,
        &emulation,
        send_proof(replayed),
        "DPoP proof jti replayed",
        BAD_PROOF,
    )
    .await;
    let cases = [
        (
            good(json!({ "htm": "POST" })),
            "DPoP proof htm is not the request method",
        ),
        (
            good(json!({ "htu": emulation.base_url() })),
            "DPoP proof htu is not the request URI",
        ),
        (good(json!({ "ath": null })), "DPoP proof without ath"),
        (
            good(json!({ "ath": ath("another token") })),
            "DPoP proof ath is not the hash of the access token",
        ),
        (
            good(json!({ "iat": now() - 600 })),
            "DPoP proof iat outside the window",
        ),
        (
            proof(
                &TestKey::es256(),
                "GET",
                &url,
                json!({ "ath": ath(&token) }),
            ),
            "DPoP proof key is not the key the token is bound to",
        ),
    ];
    for (proof, reason) in cases {
        refused(&client, &emulation, send_proof(proof), reason, BAD_PROOF).await;
    }
    refused(
        &client,
        &emulation,
        resource_request(&emulation, "DPoP", &token, None),
        "DPoP-bound token without a DPoP proof",
        BAD_PROOF,
    )
    .await;
    refused(
        &client,
        &emulation,
        resource_request(&emulation, "Bearer", &token, Some(&good(json!({})))),
        "DPoP-bound token sent as Bearer",
        BAD_TOKEN,
    )
    .await;
    let stats = emulation.stats();
    assert_eq!((stats.violations, stats.resource_unauthorized), (9, 9));
    assert_eq!(stats.dpop_nonce_challenges, 0);
}

/// Sends a token request with `proof` and expects 400 `invalid_dpop_proof` for `reason`.
async fn token_refused(client: &HttpClient, emulation: &Emulation, proof: &str, reason: &str) {
    let before = last_violation(emulation).1;
    let reply = send(client, cc_request(emulation, Some(proof))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reason}");
    assert_eq!(reply.json()["error"], "invalid_dpop_proof", "{reason}");
    assert_eq!(last_violation(emulation), (reason, before + 1));
}

#[tokio::test]
async fn token_endpoint_checks_the_proof() {
    let client = client();
    let emulation = start_with(dpop(true, None)).await;
    let key = TestKey::es256();
    let url = emulation.base_url();
    let claims = || json!({ "jti": jti(), "htm": "POST", "htu": url, "iat": now() });

    let mut private = key.jwk.clone();
    private["d"] = URL_SAFE_NO_PAD.encode([7u8; 32]).into();
    let with_private = key.sign(json!({ "typ": "dpop+jwt", "jwk": private }), &claims());
    token_refused(
        &client,
        &emulation,
        &with_private,
        "DPoP proof jwk contains a private key",
    )
    .await;
    let wrong_typ = key.sign(json!({ "typ": "JWT", "jwk": key.jwk }), &claims());
    token_refused(
        &client,
        &emulation,
        &wrong_typ,
        "DPoP proof typ is not dpop+jwt",
    )
    .await;
    let symmetric = jws(
        &json!({ "typ": "dpop+jwt", "alg": "HS256", "jwk": key.jwk }),
        &claims(),
        &EncodingKey::from_secret(b"secret"),
        Algorithm::HS256,
    );
    token_refused(
        &client,
        &emulation,
        &symmetric,
        "DPoP proof alg is not an asymmetric algorithm the server supports",
    )
    .await;
    let other_key = TestKey::es256();
    let mismatched = other_key.sign(json!({ "typ": "dpop+jwt", "jwk": key.jwk }), &claims());
    token_refused(
        &client,
        &emulation,
        &mismatched,
        "DPoP proof signature does not verify",
    )
    .await;
    let wrong_htu = proof(&key, "POST", &emulation.resource_url(), json!({}));
    token_refused(
        &client,
        &emulation,
        &wrong_htu,
        "DPoP proof htu is not the request URI",
    )
    .await;
    let wrong_htm = proof(&key, "GET", &url, json!({}));
    token_refused(
        &client,
        &emulation,
        &wrong_htm,
        "DPoP proof htm is not the request method",
    )
    .await;

    let twice = with(
        cc_request(&emulation, Some(&proof(&key, "POST", &url, json!({})))),
        "dpop",
        &proof(&key, "POST", &url, json!({})),
    );
    let reply = send(&client, twice).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(last_violation(&emulation), ("more than one DPoP header", 7));

    // Required: no proof at all is refused too.
    let reply = send(&client, cc_request(&emulation, None)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_dpop_proof");
    assert_eq!(
        last_violation(&emulation),
        ("no DPoP proof where DPoP is required", 8)
    );
    let stats = emulation.stats();
    assert_eq!((stats.logins, stats.dpop_proofs), (0, 0));

    // Each asymmetric key type binds a token.
    for key in [
        TestKey::rsa(Algorithm::RS256),
        TestKey::rsa(Algorithm::PS256),
        TestKey::ed25519(),
    ] {
        let token = bound_token(&client, &emulation, &key).await;
        assert_eq!(claims_of(&token)["cnf"]["jkt"], key.thumbprint());
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
        assert_eq!(reply.status, StatusCode::OK, "{}", key.alg_name());
    }
    let stats = emulation.stats();
    assert_eq!(
        (stats.logins, stats.dpop_proofs, stats.violations),
        (3, 6, 8)
    );
}

#[tokio::test]
async fn optional_dpop_issues_bearer_tokens_without_a_proof() {
    let client = client();
    let emulation = start_with(dpop(false, None)).await;
    let reply = send(&client, cc_request(&emulation, None)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["token_type"], "Bearer");
    let bearer = reply.json()["access_token"].as_str().unwrap().to_owned();
    assert!(claims_of(&bearer).get("cnf").is_none());
    let reply = send(
        &client,
        resource_request(&emulation, "Bearer", &bearer, None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    refused(
        &client,
        &emulation,
        resource_request(&emulation, "DPoP", &bearer, None),
        "bearer token sent with the DPoP scheme",
        r#"Bearer error="invalid_token""#,
    )
    .await;
    let key = TestKey::ed25519();
    let token = bound_token(&client, &emulation, &key).await;
    refused(
        &client,
        &emulation,
        resource_request(&emulation, "Bearer", &token, None),
        "DPoP-bound token sent as Bearer",
        BAD_TOKEN,
    )
    .await;
    let stats = emulation.stats();
    assert_eq!(
        (stats.logins, stats.dpop_proofs, stats.violations),
        (2, 1, 2)
    );
}

#[tokio::test]
async fn nonces_are_challenged_then_accepted_at_both_ends() {
    let client = client();
    let emulation = start_with(dpop(
        true,
        Some(DpopNonces {
            grace: Duration::from_secs(60),
            ..DpopNonces::default()
        }),
    ))
    .await;
    let key = TestKey::es256();
    let url = emulation.base_url();

    // Token endpoint: the first proof has no nonce and is challenged.
    let reply = send(
        &client,
        cc_request(&emulation, Some(&proof(&key, "POST", &url, json!({})))),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "use_dpop_nonce");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let nonce = reply.header("dpop-nonce").expect("DPoP-Nonce").to_owned();
    let with_nonce = proof(&key, "POST", &url, json!({ "nonce": nonce }));
    let reply = send(&client, cc_request(&emulation, Some(&with_nonce))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("dpop-nonce"), Some(nonce.as_str()));
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();

    // Resource: its own nonce, challenged the resource's way.
    let resource = emulation.resource_url();
    let resource_proof = |nonce: Option<&str>| {
        proof(
            &key,
            "GET",
            &resource,
            json!({ "ath": ath(&token), "nonce": nonce }),
        )
    };
    let reply = send(
        &client,
        resource_request(&emulation, "DPoP", &token, Some(&resource_proof(None))),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"DPoP error="use_dpop_nonce", algs="ES256 RS256 PS256 EdDSA""#)
    );
    let resource_nonce = reply.header("dpop-nonce").expect("DPoP-Nonce").to_owned();
    assert_ne!(resource_nonce, nonce);
    let reply = send(
        &client,
        resource_request(
            &emulation,
            "DPoP",
            &token,
            Some(&resource_proof(Some(&resource_nonce))),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("dpop-nonce"), Some(resource_nonce.as_str()));

    // Rotated: every answer carries the new nonce, and the old one is good for the grace period.
    emulation.rotate_dpop_nonces();
    let reply = send(
        &client,
        resource_request(
            &emulation,
            "DPoP",
            &token,
            Some(&resource_proof(Some(&resource_nonce))),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let newest = reply.header("dpop-nonce").unwrap().to_owned();
    assert_ne!(newest, resource_nonce);
    // A made-up nonce is challenged like a missing one.
    let reply = send(
        &client,
        resource_request(
            &emulation,
            "DPoP",
            &token,
            Some(&resource_proof(Some("made-up"))),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header("dpop-nonce"), Some(newest.as_str()));

    let stats = emulation.stats();
    assert_eq!(stats.violations, 0, "{:?}", emulation.violation_reasons());
    assert_eq!(stats.dpop_nonce_challenges, 3);
    assert_eq!(
        (stats.dpop_proofs, stats.resource_ok, stats.logins),
        (3, 2, 1)
    );
}

#[tokio::test]
async fn a_nonce_past_its_grace_period_is_challenged() {
    let client = client();
    let emulation = start_with(dpop(
        true,
        Some(DpopNonces {
            resource: false,
            grace: Duration::ZERO,
            ..DpopNonces::default()
        }),
    ))
    .await;
    let key = TestKey::es256();
    let url = emulation.base_url();
    let reply = send(
        &client,
        cc_request(&emulation, Some(&proof(&key, "POST", &url, json!({})))),
    )
    .await;
    let nonce = reply.header("dpop-nonce").unwrap().to_owned();
    emulation.rotate_dpop_nonces();
    let stale = proof(&key, "POST", &url, json!({ "nonce": nonce }));
    let reply = send(&client, cc_request(&emulation, Some(&stale))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "use_dpop_nonce");
    let fresh = reply.header("dpop-nonce").unwrap().to_owned();
    assert_ne!(fresh, nonce);
    let reply = send(
        &client,
        cc_request(
            &emulation,
            Some(&proof(&key, "POST", &url, json!({ "nonce": fresh }))),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    // No nonce at the resource: its answers carry none.
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
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
    assert_eq!(reply.header("dpop-nonce"), None);
    let stats = emulation.stats();
    assert_eq!((stats.dpop_nonce_challenges, stats.violations), (2, 0));
}
