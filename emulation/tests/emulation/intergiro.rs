//! Intergiro: two tokens, a premature refresh refused, refresh after expiry by the JWT `exp`.

use crate::support::*;

#[tokio::test]
async fn intergiro_answers_two_tokens_and_nothing_else() {
    let client = client();
    let emulation = start(Api::Intergiro).await;
    let body = send(&client, login_request(&emulation)).await.json();
    let fields: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["access_token", "refresh_token"]);
    let wrong = post_json(
        &format!("{}/auth/login", emulation.base_url()),
        json!({ "api_key": "wrong" }),
    );
    assert_eq!(send(&client, wrong).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(auth_stats(emulation.stats()), stats(1, 0, 1, 0, 0));
}

#[tokio::test]
async fn intergiro_premature_refresh_is_an_error_that_keeps_the_refresh_token() {
    let client = client();
    let emulation = start(Api::Intergiro).await;
    let (_, refresh) = login(&client, &emulation).await;
    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.json()["error"].is_object());
    assert_eq!(auth_stats(emulation.stats()), stats(1, 0, 0, 0, 1));

    // Once the access token is dead the same refresh token works.
    emulation.revoke_access_tokens();
    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    let (_, latest) = tokens(Api::Intergiro, &reply);
    // Re-sending the old one is reuse, the latest one is still premature.
    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = send(&client, refresh_request(&emulation, &latest.unwrap())).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // Fraud prevention counts logins: there was exactly one.
    assert_eq!(auth_stats(emulation.stats()), stats(1, 1, 0, 0, 3));
}

#[tokio::test]
async fn intergiro_refresh_after_expiry_by_jwt_exp_is_clean() {
    let client = client();
    let config = Config {
        access_lifetime: Duration::from_millis(1200),
        ..Config::default()
    };
    let emulation = Emulation::start(Api::Intergiro, config).await.unwrap();
    let (access, refresh) = login(&client, &emulation).await;
    // A client waits for the `exp` the JWT states; the server must agree it is dead by then.
    let exp = claims(&access)["exp"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let wait = Duration::from_secs(exp).saturating_sub(now);
    assert!(wait >= Duration::from_millis(1100), "{wait:?}");
    tokio::time::sleep(wait).await;
    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(auth_stats(emulation.stats()), stats(1, 1, 0, 0, 0));
}
