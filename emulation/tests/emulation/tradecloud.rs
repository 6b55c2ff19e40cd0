//! Tradecloud: tokens in headers only, the documented refresh quirk, Basic login.

use crate::support::*;

#[tokio::test]
async fn tradecloud_puts_tokens_in_headers_only() {
    let client = client();
    let emulation = start(Api::Tradecloud).await;
    let reply = send(&client, login_request(&emulation)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    let access = reply.header("set-authorization").unwrap().to_owned();
    let refresh = reply.header("set-refresh-token").unwrap().to_owned();
    assert!(claims(&access)["exp"].is_u64());
    assert_eq!(
        resource_status(&client, &emulation, &access).await,
        StatusCode::OK
    );

    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    assert!(reply.header("set-authorization").is_some());
    assert!(reply.header("set-refresh-token").is_some());

    let c = emulation.config().clone();
    let bad = request(
        Method::GET,
        &format!("{}/authentication/login", emulation.base_url()),
        &[("authorization", &basic(&c.username, "wrong"))],
        "",
    );
    let reply = send(&client, bad).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(&reply.body[..], b"Not authenticated");
    assert_eq!(auth_stats(emulation.stats()), stats(1, 1, 1, 0, 0));
}

#[tokio::test]
async fn tradecloud_refresh_with_authorization_is_the_documented_quirk() {
    let client = client();
    let emulation = start(Api::Tradecloud).await;
    let (access, refresh) = login(&client, &emulation).await;
    let url = format!("{}/authentication/refresh", emulation.base_url());

    // A valid access token: 200 without a new pair, whatever the refresh token.
    let reply = send(
        &client,
        request(
            Method::GET,
            &url,
            &[
                ("authorization", &format!("Bearer {access}")),
                ("refresh-token", &refresh),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header("set-authorization").is_none());
    assert!(reply.header("set-refresh-token").is_none());
    assert_eq!(emulation.stats().violations, 1);

    // A corrupted one: 401, whatever the refresh token.
    let reply = send(
        &client,
        request(
            Method::GET,
            &url,
            &[
                ("authorization", "Bearer corrupted"),
                ("refresh-token", &refresh),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(emulation.stats().violations, 2);

    // Neither consumed the refresh token.
    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    assert!(reply.header("set-authorization").is_some());
    assert_eq!(auth_stats(emulation.stats()), stats(1, 1, 0, 0, 2));

    // No Refresh-Token header at all.
    let reply = send(&client, request(Method::GET, &url, &[], "")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(emulation.stats().violations, 3);
}

#[tokio::test]
async fn tradecloud_login_needs_well_formed_basic() {
    let client = client();
    let emulation = start(Api::Tradecloud).await;
    let url = format!("{}/authentication/login", emulation.base_url());
    for authorization in [
        None,
        Some("Basic !!!not-base64!!!"),
        Some("Basic bm8tY29sb24"), // "no-colon"
        Some("Basic /w=="),        // not UTF-8
        Some("Bearer whatever"),
    ] {
        let headers: Vec<(&str, &str)> = authorization
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let reply = send(&client, request(Method::GET, &url, &headers, "")).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{authorization:?}");
    }
    let reply = send(&client, request(Method::POST, &url, &[], "")).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(auth_stats(emulation.stats()), stats(0, 0, 0, 0, 6));
    login(&client, &emulation).await;
}
