//! union-service: Keycloak-style JSON answers, one error status (500), `api-version` required.

use crate::support::*;

#[tokio::test]
async fn union_service_answers_keycloak_json() {
    let client = client();
    let emulation = start(Api::UnionService).await;
    let body = send(&client, login_request(&emulation)).await.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["refresh_expires_in"], 1800);
    assert_eq!(body["not-before-policy"], 0);
    assert!(body["session_state"].as_str().is_some());
    assert!(body["scope"].as_str().is_some());
    // Plain application/json, as the prose says, is accepted too.
    let c = emulation.config();
    let reply = send(
        &client,
        post_json(
            &union_url(&emulation, "token"),
            json!({ "username": c.username, "password": c.password }),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(auth_stats(emulation.stats()), stats(2, 0, 0, 0, 0));
}

#[tokio::test]
async fn union_service_failures_are_500_and_api_version_is_required() {
    let client = client();
    let emulation = start(Api::UnionService).await;
    let c = emulation.config().clone();

    let bad = json!({ "username": c.username, "password": "wrong" });
    let reply = send(&client, post_json(&union_url(&emulation, "token"), bad)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.json().is_object());

    let reply = send(&client, refresh_request(&emulation, "unknown")).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(auth_stats(emulation.stats()), stats(0, 0, 1, 1, 0));

    let good = json!({ "username": c.username, "password": c.password });
    let no_version = format!("{}/union-service/auth/token", emulation.base_url());
    let reply = send(&client, post_json(&no_version, good.clone())).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = send(
        &client,
        post_json(&format!("{no_version}?api-version=9.9"), good.clone()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(emulation.stats().violations, 2);

    let reply = send(
        &client,
        request(
            Method::POST,
            &union_url(&emulation, "token"),
            &[("content-type", "text/plain")],
            good.to_string(),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);

    let (_, refresh) = login(&client, &emulation).await;
    let leaky = json!({ "refreshToken": refresh, "username": c.username, "password": c.password });
    let reply = send(
        &client,
        post_json(&union_url(&emulation, "refresh-token"), leaky),
    )
    .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    let reply = send(
        &client,
        post_json(
            &union_url(&emulation, "refresh-token"),
            json!({ "refresh_token": refresh }),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(auth_stats(emulation.stats()), stats(1, 0, 1, 1, 5));
}
