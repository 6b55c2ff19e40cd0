//! Storms of 401s: one refresh, one replay per request, and none for a request sent with an older
//! token.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use tower::{Layer, ServiceExt};

use crate::support::{
    bearer, concurrent, get, paused_layer as new_layer, send, service, AuthServer, TestProvider,
    AUTH_DELAY,
};

#[tokio::test(start_paused = true)]
async fn storm_of_401s_causes_one_refresh_and_one_replay_each() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);

    server.revoke_access_tokens();
    let results = concurrent(&svc, 200).await;
    assert!(results
        .iter()
        .all(|r| r.as_ref().is_ok_and(|r| r.status() == StatusCode::OK)));
    assert_eq!((server.logins(), server.refreshes()), (1, 1));
    assert_eq!(layer.handle().metrics().replays, 200);
    // 1 warm-up + 200 with the dead token + 200 replays with the new one.
    let headers = server.upstream_headers();
    assert_eq!(headers.len(), 401);
    assert_eq!(
        headers[1..201].iter().filter(|h| **h == bearer(1)).count(),
        200
    );
    assert_eq!(
        headers[201..].iter().filter(|h| **h == bearer(2)).count(),
        200
    );
}

#[tokio::test(start_paused = true)]
async fn request_sent_with_an_older_generation_replays_without_refreshing() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.revoke_access_tokens();

    // The first request goes out with token 1 and is held by the upstream...
    let slow = tokio::spawn(svc.clone().oneshot(get()));
    tokio::task::yield_now().await;
    // ...while another request hits the 401, refreshes, and stores token 2.
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(server.refreshes(), 1);
    // The slow one's 401 names token 1; the slot already holds 2: replay with it, no refresh.
    assert_eq!(slow.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(server.refreshes(), 1);
    assert_eq!(layer.handle().metrics().replays, 2);
}

#[tokio::test(start_paused = true)]
async fn request_answered_401_twice_returns_the_401() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);

    server.set_upstream_rejects_all(true);
    let calls = server.upstream_calls();
    assert_eq!(send(&svc).await.unwrap(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        server.upstream_calls() - calls,
        2,
        "sent once, replayed once"
    );
    assert_eq!(layer.handle().metrics().replays, 1);
    assert_eq!((server.logins(), server.refreshes()), (1, 1));
    // The final 401 invalidated the token it was sent with: a background refresh replaces it,
    // and the next request does not send the dead one.
    let dead = server.upstream_headers().last().unwrap().clone();
    tokio::time::sleep(AUTH_DELAY * 2).await;
    assert_eq!((server.logins(), server.refreshes()), (1, 2));
    assert_eq!(send(&svc).await.unwrap(), StatusCode::UNAUTHORIZED);
    let headers = server.upstream_headers();
    assert_ne!(headers[headers.len() - 2], dead);
}

#[tokio::test(start_paused = true)]
async fn without_replay_a_401_storm_still_refreshes_once() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new()).without_replay();
    let svc = layer.layer(server.upstream::<Full<Bytes>>());
    assert_eq!(
        svc.clone().oneshot(get()).await.unwrap().status(),
        StatusCode::OK
    );
    server.revoke_access_tokens();
    let tasks: Vec<_> = (0..50)
        .map(|_| tokio::spawn(svc.clone().oneshot(get())))
        .collect();
    for task in tasks {
        assert_eq!(
            task.await.unwrap().unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    tokio::time::sleep(AUTH_DELAY * 2).await;
    assert_eq!(server.refreshes(), 1);
    assert_eq!(
        svc.clone().oneshot(get()).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!((server.logins(), server.refreshes()), (1, 1));
}
