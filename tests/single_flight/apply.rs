//! Applying the token: a fresh token goes out without an auth call, each layer sends its own,
//! and the header and everything else shown hide it.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_token_auth::token::TokenSet;
use tower_token_auth::AuthLayer;

use crate::support::{
    bearer, get, paused_layer as new_layer, send, service, AuthServer, TestProvider, AUTH_DELAY,
    MARK,
};

#[tokio::test(start_paused = true)]
async fn fresh_token_is_attached_without_auth_calls() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    let before = (server.logins(), server.refreshes(), server.upstream_calls());
    assert_eq!(before, (1, 0, 1));

    // Fresh token: the header goes on, no auth call, the inner service runs once.
    let response = svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!((server.logins(), server.refreshes()), (1, 0));
    assert_eq!(server.upstream_calls(), 2);
    assert_eq!(server.upstream_headers()[1], bearer(1));
    let m = layer.handle().metrics();
    assert_eq!(
        (m.logins, m.refreshes, m.replays, m.token_waits),
        (1, 0, 0, 1)
    );
}

/// Each thread keeps its own copy of a few layers' tokens (`src/apply.rs`): more layers than it
/// keeps places for, used in turn on one thread, each still send their own current token, and
/// a new token replaces a thread's copy at the next request.
#[tokio::test(start_paused = true)]
async fn many_layers_on_one_thread_each_send_their_own_token() {
    const LAYERS: usize = 9;
    let servers: Vec<_> = (0..LAYERS)
        .map(|_| AuthServer::new(3600, AUTH_DELAY))
        .collect();
    let layers: Vec<_> = servers
        .iter()
        .map(|server| new_layer(server, TestProvider::new()))
        .collect();
    // Layer `i` holds access token number `i + 1` of its own server.
    for (i, layer) in layers.iter().enumerate() {
        for _ in 0..=i {
            layer.handle().force_refresh().await.unwrap();
        }
    }
    for round in 0..3 {
        for (i, (server, layer)) in servers.iter().zip(&layers).enumerate() {
            let svc = service(server, layer);
            assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
            let expected = bearer(i as u32 + 1 + round);
            assert_eq!(
                server.upstream_headers().last(),
                Some(&expected),
                "layer {i}"
            );
        }
        // A new token for every layer: the next round must send it, not a thread's old copy.
        for layer in &layers {
            layer.handle().force_refresh().await.unwrap();
        }
    }
    for (i, server) in servers.iter().enumerate() {
        assert_eq!((server.logins(), server.refreshes()), (1, i as u32 + 3));
        assert_eq!(server.upstream_calls(), 3);
    }
}

#[tokio::test(start_paused = true)]
async fn header_is_sensitive() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None::<HeaderValue>));
    let recorder = {
        let seen = seen.clone();
        tower::service_fn(move |req: Request<Full<Bytes>>| {
            *seen.lock().unwrap() = req.headers().get(header::AUTHORIZATION).cloned();
            async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
            }
        })
    };
    layer.layer(recorder).oneshot(get()).await.unwrap();
    let value = seen.lock().unwrap().clone().expect("header attached");
    assert!(value.is_sensitive());
    assert_eq!(value, bearer(1).as_str());
}

#[tokio::test(start_paused = true)]
async fn secrets_never_appear_in_debug_or_display() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);

    let tokens = TokenSet::from_json(
        format!(r#"{{"access_token":"a-{MARK}","refresh_token":"r-{MARK}"}}"#).as_bytes(),
    )
    .unwrap();
    let shown = [
        format!("{layer:?}"),
        format!("{svc:?}"),
        format!("{:?}", svc.clone().oneshot(get())),
        format!("{tokens:?}"),
        format!("{:?}", password_secret()),
        format!("{:?}", AuthLayer::builder(TestProvider::new())),
    ];
    for text in shown {
        assert!(!text.contains(MARK), "{text}");
    }
    assert!(
        format!("{layer:?}").contains("Sensitive"),
        "the slot's header is marked sensitive"
    );

    server.set_reject_refreshes(true);
    server.set_reject_logins(true);
    tokio::time::advance(Duration::from_secs(61)).await;
    let err = send(&svc).await.unwrap_err();
    let mut chain = Some(&*err as &(dyn std::error::Error + 'static));
    while let Some(e) = chain {
        assert!(!format!("{e} {e:?}").contains(MARK), "{e}");
        chain = e.source();
    }
}

fn password_secret() -> tower_token_auth::Secret {
    tower_token_auth::Secret::from(format!("pw-{MARK}"))
}
