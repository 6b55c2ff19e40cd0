//! The generic OAuth2 server: client authentication, grants, rotation, scope.

use crate::support::*;

fn oauth2_config() -> Config {
    Config {
        // Characters that must be form-urlencoded inside Basic credentials.
        client_id: "my client:1".to_owned(),
        client_secret: "s&cret/ü+%".to_owned(),
        ..Config::default()
    }
}

#[tokio::test]
async fn oauth2_accepts_basic_or_post_but_not_both() {
    let client = client();
    let emulation = Emulation::start(Api::OAuth2, oauth2_config())
        .await
        .unwrap();
    let c = emulation.config().clone();
    let url = emulation.base_url();
    let grant = [("grant_type", "client_credentials")];

    // client_secret_basic
    let mut req = post_form(&url, &grant);
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&client_basic(&c.client_id, &c.client_secret)).unwrap(),
    );
    let reply = send(&client, req).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));

    // client_secret_post
    let post = [
        ("grant_type", "client_credentials"),
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_str()),
    ];
    assert_eq!(
        send(&client, post_form(&url, &post)).await.status,
        StatusCode::OK
    );

    // Wrong secret: a rejection, not a violation.
    let mut req = post_form(&url, &grant);
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&client_basic(&c.client_id, "wrong")).unwrap(),
    );
    let reply = send(&client, req).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_client");
    assert!(reply.header("www-authenticate").is_some());
    assert_eq!(auth_stats(emulation.stats()), stats(2, 0, 1, 0, 0));

    // Both methods at once.
    let mut req = post_form(&url, &post);
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&client_basic(&c.client_id, &c.client_secret)).unwrap(),
    );
    let reply = send(&client, req).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_request");

    // Neither.
    let reply = send(&client, post_form(&url, &grant)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_client");

    // Bad base64 in Basic.
    let req = request(
        Method::POST,
        &url,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", "Basic %%%"),
        ],
        "grant_type=client_credentials",
    );
    let reply = send(&client, req).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // Unsupported grant and JSON body.
    let reply = send(
        &client,
        post_form(&url, &[("grant_type", "implicit"), post[1], post[2]]),
    )
    .await;
    assert_eq!(reply.json()["error"], "unsupported_grant_type");
    let reply = send(
        &client,
        post_json(&url, json!({ "grant_type": "client_credentials" })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(auth_stats(emulation.stats()), stats(2, 0, 1, 0, 5));
}

#[tokio::test]
async fn oauth2_client_credentials_issue_no_refresh_token_and_echo_scope() {
    let client = client();
    let emulation = start(Api::OAuth2).await;
    let c = emulation.config().clone();
    let reply = send(
        &client,
        post_form(
            &emulation.base_url(),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read write"),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
            ],
        ),
    )
    .await;
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "read write");
    assert!(body.get("refresh_token").is_none());
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["sub"], c.client_id.as_str());
    assert_eq!(
        resource_status(&client, &emulation, access).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn oauth2_password_grant_rotates_and_checks_scope() {
    let client = client();
    let emulation = start(Api::OAuth2).await;
    let c = emulation.config().clone();
    let url = emulation.base_url();
    let reply = send(
        &client,
        post_form(
            &url,
            &[
                ("grant_type", "password"),
                ("username", &c.username),
                ("password", &c.password),
                ("scope", "a b"),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
            ],
        ),
    )
    .await;
    let body = reply.json();
    assert_eq!(body["scope"], "a b");
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let refresh_with_scope = |token: &str, scope: &str| {
        post_form(
            &url,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("scope", scope),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
            ],
        )
    };
    // Widening the scope on refresh is refused and leaves the token valid.
    let reply = send(&client, refresh_with_scope(&refresh, "a c")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_scope");
    let reply = send(&client, refresh_with_scope(&refresh, "b")).await;
    let body = reply.json();
    assert_eq!(body["scope"], "b");
    assert!(body["refresh_token"].is_string());
    // Wrong resource-owner password: invalid_grant.
    let reply = send(
        &client,
        post_form(
            &url,
            &[
                ("grant_type", "password"),
                ("username", &c.username),
                ("password", "wrong"),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
            ],
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_grant");
    // A dead refresh token: invalid_grant, a rejection.
    let reply = send(&client, refresh_request(&emulation, "dead")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_grant");
    assert_eq!(auth_stats(emulation.stats()), stats(1, 1, 1, 1, 1));
}

#[tokio::test]
async fn oauth2_without_rotation_keeps_the_refresh_token() {
    let client = client();
    let config = Config {
        rotate_refresh_tokens: false,
        ..Config::default()
    };
    let emulation = Emulation::start(Api::OAuth2, config).await.unwrap();
    let (_, refresh) = login(&client, &emulation).await;
    for _ in 0..3 {
        let reply = send(&client, refresh_request(&emulation, &refresh)).await;
        let (access, new_refresh) = tokens(Api::OAuth2, &reply);
        assert_eq!(new_refresh, None);
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::OK
        );
    }
    assert_eq!(auth_stats(emulation.stats()), stats(1, 3, 0, 0, 0));
}
