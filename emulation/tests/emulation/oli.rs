//! OLI: Keycloak answers and errors.

use crate::support::*;

#[tokio::test]
async fn oli_speaks_keycloak() {
    let client = client();
    let emulation = start(Api::Oli).await;
    let body = send(&client, login_request(&emulation)).await.json();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["scope"], "oli_user_role");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["refresh_expires_in"], 1800);
    assert!(body["not-before-policy"].is_number());
    assert!(body["session_state"]
        .as_str()
        .is_some_and(|s| s.len() == 36));
}

#[tokio::test]
async fn oli_errors_are_keycloak_errors() {
    let client = client();
    let emulation = start(Api::Oli).await;
    let c = emulation.config().clone();
    let url = emulation.base_url();
    let token_call = |pairs: &[(&str, &str)]| post_form(&url, pairs);

    let reply = send(&client, refresh_request(&emulation, "dead")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json(),
        json!({ "error": "invalid_grant", "error_description": "Token is not active" })
    );

    let reply = send(
        &client,
        token_call(&[
            ("grant_type", "password"),
            ("client_id", &c.client_id),
            ("username", &c.username),
            ("password", "wrong"),
        ]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.json(),
        json!({ "error": "invalid_grant", "error_description": "Invalid user credentials" })
    );

    let reply = send(
        &client,
        token_call(&[
            ("grant_type", "password"),
            ("client_id", "someone-else"),
            ("username", &c.username),
            ("password", &c.password),
        ]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_client");
    assert_eq!(auth_stats(emulation.stats()), stats(0, 0, 2, 1, 0));

    // Misuse from here on.
    let reply = send(
        &client,
        token_call(&[
            ("grant_type", "password"),
            ("username", &c.username),
            ("password", &c.password),
        ]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_client");

    let reply = send(
        &client,
        token_call(&[
            ("grant_type", "authorization_code"),
            ("client_id", &c.client_id),
        ]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "unsupported_grant_type");

    let reply = send(&client, token_call(&[("client_id", &c.client_id)])).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_request");

    let reply = send(
        &client,
        token_call(&[("grant_type", "refresh_token"), ("client_id", &c.client_id)]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_request");

    let (_, refresh) = login(&client, &emulation).await;
    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_grant");
    assert_eq!(auth_stats(emulation.stats()), stats(1, 1, 2, 1, 5));
}
