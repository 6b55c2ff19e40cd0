//! Discovery, revocation (RFC 7009), token exchange (RFC 8693), resource indicators (RFC 8707),
//! and the faults of the plain emulation with the extensions on.

use crate::jose_support::*;
use crate::support::*;

fn basic_auth(emulation: &Emulation) -> String {
    let c = emulation.config();
    client_basic(&c.client_id, &c.client_secret)
}

/// A form POST to `path` of the server with `client_secret_basic`.
fn authed(emulation: &Emulation, path: &str, pairs: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let url = format!("{}{path}", emulation.issuer());
    with(
        post_form(&url, pairs),
        "authorization",
        &basic_auth(emulation),
    )
}

async fn cc_token(client: &HttpClient, emulation: &Emulation, pairs: &[(&str, &str)]) -> String {
    let mut all = vec![("grant_type", "client_credentials")];
    all.extend_from_slice(pairs);
    let reply = send(client, authed(emulation, "/oauth/token", &all)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.json()["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn discovery_documents_describe_the_server() {
    let client = client();
    let emulation = start_with(OAuthExtensions {
        discovery: Some(Discovery::default()),
        revocation: true,
        dpop: Some(Dpop::default()),
        token_exchange: Some(TokenExchange::default()),
        ..OAuthExtensions::default()
    })
    .await;
    let issuer = emulation.issuer();
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let get = request(Method::GET, &format!("{issuer}{path}"), &[], Bytes::new());
        let reply = send(&client, get).await;
        assert_eq!(reply.status, StatusCode::OK);
        let doc = reply.json();
        assert_eq!(doc["issuer"], issuer.as_str());
        assert_eq!(doc["token_endpoint"], emulation.base_url().as_str());
        assert_eq!(doc["revocation_endpoint"], format!("{issuer}/oauth/revoke"));
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            json!([
                "client_secret_basic",
                "client_secret_post",
                "client_secret_jwt",
                "private_key_jwt"
            ])
        );
        assert_eq!(
            doc["token_endpoint_auth_signing_alg_values_supported"],
            json!(["HS256", "ES256", "RS256", "PS256", "EdDSA"])
        );
        assert_eq!(
            doc["dpop_signing_alg_values_supported"],
            json!(["ES256", "RS256", "PS256", "EdDSA"])
        );
        assert_eq!(
            doc["grant_types_supported"],
            json!([
                "password",
                "client_credentials",
                "refresh_token",
                TOKEN_EXCHANGE
            ])
        );
        assert!(doc.get("mtls_endpoint_aliases").is_none());
    }
    let post = post_form(
        &format!("{issuer}/.well-known/openid-configuration"),
        &[("a", "b")],
    );
    assert_eq!(
        send(&client, post).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let stats = emulation.stats();
    assert_eq!((stats.discovery_fetches, stats.violations), (2, 0));

    // A wrong issuer and mTLS aliases, for clients that must check them.
    let emulation = start_with(OAuthExtensions {
        discovery: Some(Discovery {
            issuer_override: Some("https://evil.example".to_owned()),
            mtls_endpoint_aliases: Some(json!({ "token_endpoint": "https://mtls.example/token" })),
        }),
        ..OAuthExtensions::default()
    })
    .await;
    let url = format!("{}/.well-known/openid-configuration", emulation.issuer());
    let doc = send(&client, request(Method::GET, &url, &[], Bytes::new()))
        .await
        .json();
    assert_eq!(doc["issuer"], "https://evil.example");
    assert_eq!(
        doc["mtls_endpoint_aliases"]["token_endpoint"],
        "https://mtls.example/token"
    );
    assert!(doc.get("revocation_endpoint").is_none());
    assert!(doc.get("dpop_signing_alg_values_supported").is_none());
    assert_eq!(
        doc["grant_types_supported"],
        json!(["password", "client_credentials", "refresh_token"])
    );
    // The revocation endpoint is off here, as discovery is in the plain emulation.
    let revoke = authed(&emulation, "/oauth/revoke", &[("token", "x")]);
    assert_eq!(send(&client, revoke).await.status, StatusCode::NOT_FOUND);
    let plain = Emulation::start(Api::OAuth2, Config::default())
        .await
        .unwrap();
    let url = format!("{}/.well-known/openid-configuration", plain.issuer());
    let reply = send(&client, request(Method::GET, &url, &[], Bytes::new())).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn revocation_kills_the_token_and_its_use_is_a_violation() {
    let client = client();
    let emulation = start_with(OAuthExtensions {
        revocation: true,
        ..OAuthExtensions::default()
    })
    .await;
    let token = cc_token(&client, &emulation, &[]).await;
    let bearer = || resource_request(&emulation, "Bearer", &token, None);
    assert_eq!(send(&client, bearer()).await.status, StatusCode::OK);

    let revoke = authed(
        &emulation,
        "/oauth/revoke",
        &[("token", &token), ("token_type_hint", "access_token")],
    );
    let reply = send(&client, revoke).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = send(&client, bearer()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );
    assert_eq!(last_violation(&emulation), ("revoked token sent", 1));

    // A refresh token, hinted wrongly: revoked all the same, with its access token.
    let c = emulation.config().clone();
    let login = authed(
        &emulation,
        "/oauth/token",
        &[
            ("grant_type", "password"),
            ("username", &c.username),
            ("password", &c.password),
        ],
    );
    let pair = send(&client, login).await.json();
    let refresh = pair["refresh_token"].as_str().unwrap();
    let revoke = authed(
        &emulation,
        "/oauth/revoke",
        &[("token", refresh), ("token_type_hint", "access_token")],
    );
    assert_eq!(send(&client, revoke).await.status, StatusCode::OK);
    let again = authed(
        &emulation,
        "/oauth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    );
    let reply = send(&client, again).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_grant");
    let access = pair["access_token"].as_str().unwrap();
    let reply = send(
        &client,
        resource_request(&emulation, "Bearer", access, None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // An unknown token: 200 all the same (RFC 7009 2.2).
    let unknown = authed(&emulation, "/oauth/revoke", &[("token", "never-issued")]);
    assert_eq!(send(&client, unknown).await.status, StatusCode::OK);
    // Without client authentication, or without a token: refused.
    let url = format!("{}/oauth/revoke", emulation.issuer());
    let reply = send(&client, post_form(&url, &[("token", &token)])).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_client");
    let reply = send(&client, authed(&emulation, "/oauth/revoke", &[])).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_request");

    let stats = emulation.stats();
    assert_eq!(stats.revocation_requests, 3);
    assert_eq!((stats.revoked_token_uses, stats.violations), (2, 4));
    assert_eq!(stats.rejected_refreshes, 1);
    assert_eq!(
        emulation.violation_reasons(),
        [
            ("revoked token sent", 2),
            ("no client authentication", 1),
            ("revocation without token", 1)
        ]
    );
}

const K8S_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.k8s-service-account.sig";
const K8S_SUBJECT: &str = "system:serviceaccount:payments:worker";

fn exchange_extensions() -> OAuthExtensions {
    OAuthExtensions {
        token_exchange: Some(TokenExchange {
            trusted_subject_tokens: vec![(K8S_TOKEN.to_owned(), K8S_SUBJECT.to_owned())],
        }),
        resource_audience: Some("https://api.example".to_owned()),
        ..OAuthExtensions::default()
    }
}

#[tokio::test]
async fn token_exchange_issues_a_token_for_the_audience() {
    let client = client();
    let emulation = start_with(exchange_extensions()).await;
    let subject = cc_token(&client, &emulation, &[]).await;
    // Issued for no audience: the resource, which requires one, refuses it.
    let reply = send(
        &client,
        resource_request(&emulation, "Bearer", &subject, None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        last_violation(&emulation),
        ("token not issued for the resource's audience", 1)
    );

    let exchange = authed(
        &emulation,
        "/oauth/token",
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", &subject),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("audience", "https://api.example"),
            ("resource", "https://api.example/v1"),
            ("resource", "https://files.example/"),
            ("scope", "read"),
            ("requested_token_type", JWT_TYPE),
        ],
    );
    let reply = send(&client, exchange).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["issued_token_type"], JWT_TYPE);
    assert_eq!(
        (answer["token_type"].clone(), answer["scope"].clone()),
        (json!("Bearer"), json!("read"))
    );
    assert!(answer.get("refresh_token").is_none());
    let exchanged = answer["access_token"].as_str().unwrap();
    assert_eq!(
        claims_of(exchanged)["aud"],
        json!([
            "https://api.example",
            "https://api.example/v1",
            "https://files.example/"
        ])
    );
    let reply = send(
        &client,
        resource_request(&emulation, "Bearer", exchanged, None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["sub"], emulation.config().client_id.as_str());

    // A trusted external token (a Kubernetes service account's) stands for its subject.
    let exchange = authed(
        &emulation,
        "/oauth/token",
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", K8S_TOKEN),
            ("subject_token_type", JWT_TYPE),
            ("audience", "https://api.example"),
        ],
    );
    let answer = send(&client, exchange).await.json();
    assert_eq!(answer["issued_token_type"], ACCESS_TOKEN_TYPE);
    let token = answer["access_token"].as_str().unwrap();
    let reply = send(&client, resource_request(&emulation, "Bearer", token, None)).await;
    assert_eq!(reply.json()["sub"], K8S_SUBJECT);

    let stats = emulation.stats();
    assert_eq!(
        (stats.token_exchanges, stats.logins, stats.violations),
        (2, 1, 1)
    );
}

#[tokio::test]
async fn token_exchange_refuses_unknown_subjects_and_bad_requests() {
    let client = client();
    let emulation = start_with(exchange_extensions()).await;
    let exchange = |pairs: &[(&str, &str)]| {
        let mut all = vec![("grant_type", TOKEN_EXCHANGE)];
        all.extend_from_slice(pairs);
        authed(&emulation, "/oauth/token", &all)
    };
    let reply = send(
        &client,
        exchange(&[
            ("subject_token", "never-issued"),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
        ]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_request");
    let stats = emulation.stats();
    assert_eq!((stats.rejected_logins, stats.violations), (1, 0));

    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case<'_>; 4] = [
        (
            &[("subject_token_type", ACCESS_TOKEN_TYPE)],
            "invalid_request",
            "missing subject_token",
        ),
        (
            &[
                ("subject_token", K8S_TOKEN),
                ("subject_token_type", "urn:x"),
            ],
            "invalid_request",
            "unsupported subject_token_type",
        ),
        (
            &[
                ("subject_token", K8S_TOKEN),
                ("subject_token_type", JWT_TYPE),
                ("requested_token_type", "urn:x"),
            ],
            "invalid_request",
            "unsupported requested_token_type",
        ),
        (
            &[
                ("subject_token", K8S_TOKEN),
                ("subject_token_type", JWT_TYPE),
                ("resource", "/relative"),
            ],
            "invalid_target",
            "resource is not an absolute URI without a fragment, or audience is empty",
        ),
    ];
    for (i, (pairs, error, reason)) in cases.into_iter().enumerate() {
        let reply = send(&client, exchange(pairs)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reason}");
        assert_eq!(reply.json()["error"], error, "{reason}");
        assert_eq!(last_violation(&emulation), (reason, i as u64 + 1));
    }
    // Not enabled: an unsupported grant type, as in the plain emulation.
    let plain = start_with(OAuthExtensions {
        revocation: true,
        ..OAuthExtensions::default()
    })
    .await;
    let request = authed(
        &plain,
        "/oauth/token",
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", K8S_TOKEN),
            ("subject_token_type", JWT_TYPE),
        ],
    );
    let reply = send(&client, request).await;
    assert_eq!(reply.json()["error"], "unsupported_grant_type");
    assert_eq!(emulation.stats().token_exchanges, 0);
}

#[tokio::test]
async fn client_credentials_records_resource_and_audience() {
    let client = client();
    let emulation = start_with(OAuthExtensions {
        resource_indicators: true,
        resource_audience: Some("https://api.example".to_owned()),
        ..OAuthExtensions::default()
    })
    .await;
    let token = cc_token(
        &client,
        &emulation,
        &[
            ("resource", "https://api.example"),
            ("resource", "https://other.example/"),
            ("audience", "billing"),
        ],
    )
    .await;
    assert_eq!(
        claims_of(&token)["aud"],
        json!(["https://api.example", "https://other.example/", "billing"])
    );
    let reply = send(
        &client,
        resource_request(&emulation, "Bearer", &token, None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let other = cc_token(&client, &emulation, &[("audience", "billing")]).await;
    let reply = send(
        &client,
        resource_request(&emulation, "Bearer", &other, None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let fragment = authed(
        &emulation,
        "/oauth/token",
        &[
            ("grant_type", "client_credentials"),
            ("resource", "https://api.example/#frag"),
        ],
    );
    let reply = send(&client, fragment).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_target");
    let stats = emulation.stats();
    assert_eq!((stats.logins, stats.violations), (2, 2));
}

#[tokio::test]
async fn faults_still_apply_with_the_extensions_on() {
    let client = client();
    let emulation = start_with(OAuthExtensions {
        dpop: Some(Dpop {
            required: true,
            nonces: Some(DpopNonces::default()),
            ..Dpop::default()
        }),
        revocation: true,
        ..OAuthExtensions::default()
    })
    .await;
    let key = TestKey::es256();
    let url = emulation.base_url();
    // A fixed fault answers before anything is checked: no challenge, no proof spent.
    emulation.set_fault(Some(Fault::Status(503, "down", "text/plain")));
    let reply = send(
        &client,
        cc_request(&emulation, Some(&proof(&key, "POST", &url, json!({})))),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.header("dpop-nonce"), None);
    emulation.set_fault(None);
    let reply = send(
        &client,
        cc_request(&emulation, Some(&proof(&key, "POST", &url, json!({})))),
    )
    .await;
    let nonce = reply.header("dpop-nonce").unwrap().to_owned();
    // A spoiled 200: the proof was checked and the token issued, then lost on the way.
    emulation.set_fault_rate(1.0, &[FaultKind::Malformed]);
    let fresh = || proof(&key, "POST", &url, json!({ "nonce": nonce }));
    let reply = send(&client, cc_request(&emulation, Some(&fresh()))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(serde_json::from_slice::<Value>(&reply.body).is_err());
    emulation.set_fault_rate(0.0, &[]);
    let reply = send(&client, cc_request(&emulation, Some(&fresh()))).await;
    assert_eq!(reply.status, StatusCode::OK);
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();

    // Random early revocation reaches DPoP-bound tokens too, and is no violation.
    emulation.set_revocation_rate(1.0);
    let resource = emulation.resource_url();
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let reply = send(
            &client,
            resource_request(
                &emulation,
                "DPoP",
                &token,
                Some(&proof(
                    &key,
                    "GET",
                    &resource,
                    json!({ "ath": ath(&token) }),
                )),
            ),
        )
        .await;
        let nonce = reply.header("dpop-nonce").map(str::to_owned);
        let reply = send(
            &client,
            resource_request(
                &emulation,
                "DPoP",
                &token,
                Some(&proof(
                    &key,
                    "GET",
                    &resource,
                    json!({ "ath": ath(&token), "nonce": nonce }),
                )),
            ),
        )
        .await;
        statuses.push(reply.status);
    }
    assert_eq!(statuses, [StatusCode::OK, StatusCode::UNAUTHORIZED]);
    assert_eq!(emulation.revocations(), 1);
    let stats = emulation.stats();
    assert_eq!(stats.violations, 0, "{:?}", emulation.violation_reasons());
    assert_eq!(
        (stats.faults, stats.logins, stats.dpop_nonce_challenges),
        (2, 2, 2)
    );
    assert_eq!(stats.dpop_proofs, 3);
}
