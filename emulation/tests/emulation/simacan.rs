//! Simacan: lowercase `bearer`, an `id_token`, forms not JSON.

use crate::support::*;

#[tokio::test]
async fn simacan_answers_lowercase_bearer_with_an_id_token() {
    let client = client();
    let emulation = start(Api::Simacan).await;
    let reply = send(&client, login_request(&emulation)).await;
    let body = reply.json();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 300);
    claims(body["id_token"].as_str().unwrap());
    assert_eq!(reply.header("cache-control"), Some("no-store"));

    let c = emulation.config().clone();
    let bad = post_form(
        &format!("{}/auth/password", emulation.base_url()),
        &[("username", &c.username), ("password", "nope")],
    );
    assert_eq!(send(&client, bad).await.status, StatusCode::UNAUTHORIZED);
    let reply = send(&client, refresh_request(&emulation, "expired-or-unknown")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(auth_stats(emulation.stats()), stats(1, 0, 1, 1, 0));
}

#[tokio::test]
async fn simacan_wants_forms_not_json() {
    let client = client();
    let emulation = start(Api::Simacan).await;
    let c = emulation.config().clone();
    let base = emulation.base_url();
    let reply = send(
        &client,
        post_json(
            &format!("{base}/auth/password"),
            json!({ "username": c.username, "password": c.password }),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (_, refresh) = login(&client, &emulation).await;
    let reply = send(
        &client,
        post_json(
            &format!("{base}/auth/refresh"),
            json!({ "refresh_token": refresh }),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let leaky = post_form(
        &format!("{base}/auth/refresh"),
        &[("refresh_token", &refresh), ("password", &c.password)],
    );
    assert_eq!(send(&client, leaky).await.status, StatusCode::BAD_REQUEST);
    let twice = request(
        Method::POST,
        &format!("{base}/auth/refresh"),
        &[("content-type", "application/x-www-form-urlencoded")],
        format!("refresh_token={refresh}&refresh_token={refresh}"),
    );
    assert_eq!(send(&client, twice).await.status, StatusCode::BAD_REQUEST);
    // None of that consumed the refresh token.
    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(auth_stats(emulation.stats()), stats(1, 1, 0, 0, 4));
}
