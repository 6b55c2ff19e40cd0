//! What every emulated API does: URLs, login, refresh, JWTs, revocation, real-time expiry, the resource.

use crate::support::*;

#[tokio::test]
async fn urls_follow_the_documents() {
    for (api, base, resource) in [
        (Api::UnionService, "", "/union-service/resource"),
        (Api::Simacan, "/api/v1", "/api/v1/resource"),
        (
            Api::Oli,
            "/auth/realms/api/protocol/openid-connect/token",
            "/api/resource",
        ),
        (Api::Tradecloud, "/v2", "/v2/resource"),
        (Api::Intergiro, "/v3", "/v3/resource"),
        (Api::OAuth2, "/oauth/token", "/resource"),
    ] {
        let emulation = start(api).await;
        let host = format!("http://127.0.0.1:{}", emulation.addr().port());
        assert_eq!(emulation.api(), api);
        assert_eq!(emulation.base_url(), format!("{host}{base}"));
        assert_eq!(emulation.resource_url(), format!("{host}{resource}"));
    }
}

#[tokio::test]
async fn every_api_logs_in_refreshes_and_serves_the_resource() {
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        let (access, refresh) = login(&client, &emulation).await;
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::OK
        );
        if api == Api::Intergiro {
            // Refreshing is allowed only once the access token is dead.
            emulation.revoke_access_tokens();
        }
        let reply = send(&client, refresh_request(&emulation, &refresh)).await;
        let (new_access, new_refresh) = tokens(api, &reply);
        assert_ne!(new_access, access, "{api:?}");
        assert_ne!(new_refresh.as_deref(), Some(refresh.as_str()), "{api:?}");
        assert_eq!(
            resource_status(&client, &emulation, &new_access).await,
            StatusCode::OK
        );
        let s = emulation.stats();
        assert_eq!(auth_stats(s), stats(1, 1, 0, 0, 0), "{api:?}");
        assert_eq!((s.resource_ok, s.resource_unauthorized), (2, 0), "{api:?}");
    }
}

#[tokio::test]
async fn refresh_tokens_are_single_use_and_reuse_is_a_violation() {
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        let (_, refresh) = login(&client, &emulation).await;
        emulation.revoke_access_tokens();
        let first = send(&client, refresh_request(&emulation, &refresh)).await;
        assert_eq!(first.status, StatusCode::OK, "{api:?}");
        let again = send(&client, refresh_request(&emulation, &refresh)).await;
        let expected = match api {
            Api::UnionService => StatusCode::INTERNAL_SERVER_ERROR,
            Api::Oli | Api::OAuth2 => StatusCode::BAD_REQUEST,
            _ => StatusCode::UNAUTHORIZED,
        };
        assert_eq!(again.status, expected, "{api:?}");
        let s = emulation.stats();
        assert_eq!(auth_stats(s), stats(1, 1, 0, 0, 1), "{api:?}");
        assert_eq!(s.refresh_token_reuse, 1, "{api:?}");
    }
}

#[tokio::test]
async fn tokens_are_jwts_with_exp_iat_jti_and_sub() {
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        let (access, refresh) = login(&client, &emulation).await;
        let (a, r) = (claims(&access), claims(&refresh));
        let (iat, exp) = (a["iat"].as_u64().unwrap(), a["exp"].as_u64().unwrap());
        assert!((300..=301).contains(&(exp - iat)), "{api:?}: {a}");
        let (iat, exp) = (r["iat"].as_u64().unwrap(), r["exp"].as_u64().unwrap());
        assert!((1800..=1801).contains(&(exp - iat)), "{api:?}: {r}");
        assert_ne!(a["jti"], r["jti"]);
        assert!(a["sub"].as_str().is_some_and(|s| !s.is_empty()));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(iat.abs_diff(now) <= 2);
    }
}

#[tokio::test]
async fn revoked_tokens_die_and_their_rejection_is_not_a_violation() {
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        let (access, refresh) = login(&client, &emulation).await;
        emulation.revoke_access_tokens();
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::UNAUTHORIZED
        );
        emulation.revoke_refresh_tokens();
        let reply = send(&client, refresh_request(&emulation, &refresh)).await;
        assert!(reply.status.is_client_error() || reply.status.is_server_error());
        // The documented fallback: log in again.
        let (access, _) = login(&client, &emulation).await;
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::OK
        );
        let s = emulation.stats();
        assert_eq!(auth_stats(s), stats(2, 0, 0, 1, 0), "{api:?}");
        assert_eq!((s.resource_ok, s.resource_unauthorized), (1, 1), "{api:?}");
    }
}

#[tokio::test]
async fn random_revocation_kills_the_token_an_answer_served_and_keeps_that_answer() {
    let client = client();
    for api in ALL {
        let emulation = Emulation::start(
            api,
            Config {
                fault_seed: Some(5),
                ..Config::default()
            },
        )
        .await
        .unwrap();
        let (access, _) = login(&client, &emulation).await;
        for _ in 0..20 {
            assert_eq!(
                resource_status(&client, &emulation, &access).await,
                StatusCode::OK
            );
        }
        assert_eq!(emulation.revocations(), 0, "{api:?}: off by default");

        // Every answer revokes: the first request is served, and it is held so that the second
        // one, sent while the first is still in flight, meets the revoked token.
        emulation.set_revocation_rate(1.0);
        emulation.hold_resource_requests(1);
        let first = tokio::spawn({
            let (client, url) = (client.clone(), emulation.resource_url());
            let authorization = format!("Bearer {access}");
            async move {
                let headers = [("authorization", authorization.as_str())];
                let request = request(Method::GET, &url, &headers, "");
                send(&client, request).await.status
            }
        });
        tokio::time::timeout(DEADLINE, emulation.wait_for_held_requests(1))
            .await
            .expect("the first request arrives");
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::UNAUTHORIZED,
            "{api:?}"
        );
        emulation.release_held_requests(1);
        assert_eq!(first.await.unwrap(), StatusCode::OK, "{api:?}");
        // A 401 revokes nothing: the count is the one token served.
        assert_eq!(emulation.revocations(), 1, "{api:?}");

        // A new token dies after its first answer too; the auth endpoints are untouched.
        let (again, _) = login(&client, &emulation).await;
        assert_eq!(
            resource_status(&client, &emulation, &again).await,
            StatusCode::OK
        );
        assert_eq!(
            resource_status(&client, &emulation, &again).await,
            StatusCode::UNAUTHORIZED
        );
        let s = emulation.stats();
        assert_eq!(emulation.revocations(), 2, "{api:?}");
        assert_eq!((s.resource_ok, s.resource_unauthorized), (22, 2), "{api:?}");
        assert_eq!(auth_stats(s), stats(2, 0, 0, 0, 0), "{api:?}");

        emulation.set_revocation_rate(0.0);
        let (last, _) = login(&client, &emulation).await;
        for _ in 0..20 {
            assert_eq!(
                resource_status(&client, &emulation, &last).await,
                StatusCode::OK
            );
        }
        assert_eq!(emulation.revocations(), 2, "{api:?}: off again");
    }
}

#[tokio::test]
async fn random_revocation_is_drawn_per_answer_at_the_rate() {
    let client = client();
    let emulation = Emulation::start(
        Api::OAuth2,
        Config {
            fault_seed: Some(8),
            ..Config::default()
        },
    )
    .await
    .unwrap();
    emulation.set_revocation_rate(0.25);
    // One new token per answer served: each 200 draws once.
    let (mut served, mut revoked) = (0, 0);
    let (mut access, _) = login(&client, &emulation).await;
    while served < 400 {
        match resource_status(&client, &emulation, &access).await {
            StatusCode::OK => served += 1,
            _ => {
                revoked += 1;
                access = login(&client, &emulation).await.0;
            }
        }
    }
    // Each revocation showed as exactly one 401, bar the last token's, which may be dead unseen.
    assert!(
        emulation.revocations() == revoked || emulation.revocations() == revoked + 1,
        "{} revoked, {revoked} seen",
        emulation.revocations()
    );
    assert!(
        (60..=140).contains(&emulation.revocations()),
        "{} of 400 at 25 %",
        emulation.revocations()
    );
}

#[tokio::test]
async fn tokens_expire_in_real_time() {
    // The APIs run side by side: the test is mostly sleeping.
    let mut runs = tokio::task::JoinSet::new();
    for api in ALL {
        runs.spawn(expire_in_real_time(api));
    }
    while let Some(run) = runs.join_next().await {
        run.unwrap();
    }
}

async fn expire_in_real_time(api: Api) {
    let client = client();
    let config = Config {
        access_lifetime: Duration::from_millis(150),
        refresh_lifetime: Duration::from_millis(600),
        ..Config::default()
    };
    let emulation = Emulation::start(api, config).await.unwrap();
    let (access, refresh) = login(&client, &emulation).await;
    assert_eq!(
        resource_status(&client, &emulation, &access).await,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        resource_status(&client, &emulation, &access).await,
        StatusCode::UNAUTHORIZED,
        "{api:?}"
    );
    // After access expiry even Intergiro accepts a refresh.
    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    let (_, refresh) = tokens(api, &reply);
    tokio::time::sleep(Duration::from_millis(650)).await;
    let reply = send(&client, refresh_request(&emulation, &refresh.unwrap())).await;
    assert_ne!(reply.status, StatusCode::OK, "{api:?}");
    assert_eq!(
        auth_stats(emulation.stats()),
        stats(1, 1, 0, 1, 0),
        "{api:?}"
    );
}

#[tokio::test]
async fn resource_takes_only_live_bearer_tokens_case_insensitively() {
    let client = client();
    let emulation = start(Api::Simacan).await;
    let (access, _) = login(&client, &emulation).await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let reply = resource(&client, &emulation, Some(&format!("{scheme} {access}"))).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["ok"], true);
    }
    let reply = resource(&client, &emulation, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    for bad in [
        format!("Token {access}"),
        "Bearer".to_owned(),
        "Bearer not-a-token".to_owned(),
        format!("Bearer {access}x"),
    ] {
        let reply = resource(&client, &emulation, Some(&bad)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(r#"Bearer error="invalid_token""#)
        );
    }
    // A token of another emulation of the same API is unknown here.
    let other = start(Api::Simacan).await;
    let (foreign, _) = login(&client, &other).await;
    assert_eq!(
        resource_status(&client, &emulation, &foreign).await,
        StatusCode::UNAUTHORIZED
    );
    // Any method, with a body.
    let reply = send(
        &client,
        request(
            Method::POST,
            &emulation.resource_url(),
            &[("authorization", &format!("Bearer {access}"))],
            vec![7u8; 100_000],
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["body_bytes"], 100_000);
    let s = emulation.stats();
    assert_eq!((s.resource_ok, s.resource_unauthorized), (4, 6));
    assert_eq!(s.violations, 0);
}
