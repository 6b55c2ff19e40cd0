//! The engine's invariants, against an in-process auth server with paused time.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_token_auth::provider::{Classifier, RefreshTiming, TokenPolicy};
use tower_token_auth::token::TokenSet;
use tower_token_auth::{AuthError, AuthLayer, AuthService, Backoff, Clock, ErrorKind};

use support::{
    auth_error, bearer, get, paused_layer as new_layer, AuthServer, Fault, TestProvider, Upstream,
    MARK,
};

const AUTH_DELAY: Duration = Duration::from_millis(50);

fn service(server: &AuthServer, layer: &AuthLayer) -> AuthService<Upstream> {
    layer.layer(server.upstream())
}

/// Sends `n` requests concurrently and returns their outcomes in order.
async fn concurrent(
    svc: &AuthService<Upstream>,
    n: usize,
) -> Vec<Result<http::Response<Full<Bytes>>, tower::BoxError>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(svc.clone().oneshot(get())))
        .collect();
    let mut out = Vec::with_capacity(n);
    for task in tasks {
        out.push(task.await.expect("request task panicked"));
    }
    out
}

async fn send(svc: &AuthService<Upstream>) -> Result<StatusCode, tower::BoxError> {
    svc.clone().oneshot(get()).await.map(|r| r.status())
}

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
async fn thousand_concurrent_requests_share_one_login() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = service(&server, &layer);
    let results = concurrent(&svc, 1000).await;
    assert!(results
        .iter()
        .all(|r| r.as_ref().is_ok_and(|r| r.status() == StatusCode::OK)));
    assert_eq!(server.logins(), 1);
    assert_eq!(server.refreshes(), 0);
    assert_eq!(layer.handle().metrics().logins, 1);
    assert_eq!(layer.handle().metrics().token_waits, 1000);
    assert!(server.upstream_headers().iter().all(|h| *h == bearer(1)));
}

#[tokio::test(start_paused = true)]
async fn expired_token_is_refreshed_once_and_rotated() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);

    tokio::time::advance(Duration::from_secs(61)).await;
    let results = concurrent(&svc, 100).await;
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!((server.logins(), server.refreshes()), (1, 1));

    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!((server.logins(), server.refreshes()), (1, 2));
    // The rotated refresh token was used; the first one was never sent again.
    assert_eq!(
        server.refresh_tokens_seen(),
        [format!("rt-1-{MARK}"), format!("rt-2-{MARK}")]
    );
    assert_eq!(server.reused_refresh_tokens(), 0);
    assert_eq!(server.upstream_headers().last().unwrap(), &bearer(3));
}

#[tokio::test(start_paused = true)]
async fn unrotated_refresh_token_is_kept() {
    // A server that answers a refresh without a new refresh token did not rotate it.
    let server = AuthServer::new(60, AUTH_DELAY);
    let mut policy = TokenPolicy::default();
    policy.classifier = Classifier::none(); // the upstream does not know the hand-made token
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.set_fault(Some(Fault::Reply(
        StatusCode::OK,
        "application/json",
        Bytes::from_static(br#"{"access_token":"at-9-SECRET","expires_in":60}"#),
    )));
    tokio::time::advance(Duration::from_secs(61)).await;
    let _ = send(&svc).await.unwrap();
    server.set_fault(None);
    tokio::time::advance(Duration::from_secs(61)).await;
    let _ = send(&svc).await.unwrap();
    assert_eq!(
        server.refresh_tokens_seen(),
        [format!("rt-1-{MARK}"), format!("rt-1-{MARK}")]
    );
}

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
async fn max_replays_bounds_the_replays() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let mut policy = TokenPolicy::default();
    policy.max_replays = 3;
    policy.max_sends = 10;
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.set_upstream_rejects_all(true);
    let calls = server.upstream_calls();
    assert_eq!(send(&svc).await.unwrap(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.upstream_calls() - calls, 4);
    assert_eq!(layer.handle().metrics().replays, 3);
    assert_eq!(server.refreshes(), 3);
    assert_eq!(server.reused_refresh_tokens(), 0);
}

#[tokio::test(start_paused = true)]
async fn max_sends_caps_replays_of_every_kind() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let mut policy = TokenPolicy::default();
    policy.max_replays = 10;
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.set_upstream_rejects_all(true);
    let calls = server.upstream_calls();
    assert_eq!(send(&svc).await.unwrap(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        server.upstream_calls() - calls,
        3,
        "the default cap is 3 sends"
    );
    assert_eq!(layer.handle().metrics().replays, 2);
}

#[tokio::test(start_paused = true)]
async fn replay_disabled_returns_the_first_401() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let mut policy = TokenPolicy::default();
    policy.max_replays = 0;
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.revoke_access_tokens();
    assert_eq!(send(&svc).await.unwrap(), StatusCode::UNAUTHORIZED);
    assert_eq!(layer.handle().metrics().replays, 0);
    // The 401 still marked the token dead: one background refresh, and the next request (which
    // waits for it instead of sending the dead token) carries the new token.
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(server.refreshes(), 1);
    assert_eq!(server.upstream_headers().last().unwrap(), &bearer(2));
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

#[tokio::test(start_paused = true)]
async fn non_clone_bodies_go_out_once_with_no_replay() {
    struct OneShot(Option<Bytes>);
    impl http_body::Body for OneShot {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(self.0.take().map(|b| Ok(http_body::Frame::data(b))))
        }
    }
    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new()).without_replay();
    let svc = layer.layer(server.upstream::<OneShot>());
    let req = || Request::new(OneShot(Some(Bytes::from_static(b"payload"))));
    assert_eq!(
        svc.clone().oneshot(req()).await.unwrap().status(),
        StatusCode::OK
    );
    server.revoke_access_tokens();
    assert_eq!(
        svc.clone().oneshot(req()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(layer.handle().metrics().replays, 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_request_that_started_a_login_does_not_cancel_it() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = service(&server, &layer);

    let first = tokio::spawn(svc.clone().oneshot(get()));
    tokio::task::yield_now().await;
    let others: Vec<_> = (0..10)
        .map(|_| tokio::spawn(svc.clone().oneshot(get())))
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(layer.handle().metrics().logins, 1, "the login is in flight");
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    for other in others {
        assert_eq!(other.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    assert_eq!(server.logins(), 1);
}

#[tokio::test(start_paused = true)]
async fn login_completes_even_when_its_only_waiter_is_dropped() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = service(&server, &layer);
    let only = tokio::spawn(svc.clone().oneshot(get()));
    tokio::task::yield_now().await;
    only.abort();
    tokio::time::sleep(AUTH_DELAY * 2).await;
    // The token landed in the slot: the next request needs no auth call and no wait.
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(server.logins(), 1);
    assert_eq!(layer.handle().metrics().token_waits, 1);
}

#[tokio::test(start_paused = true)]
async fn rejected_refresh_falls_back_to_login() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.set_reject_refreshes(true);
    tokio::time::advance(Duration::from_secs(61)).await;
    let results = concurrent(&svc, 20).await;
    assert!(results
        .iter()
        .all(|r| r.as_ref().is_ok_and(|r| r.status() == StatusCode::OK)));
    assert_eq!((server.refreshes(), server.logins()), (1, 2));
    assert_eq!(layer.handle().metrics().auth_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn rejected_refresh_without_fallback_fails_then_logs_in_after_backoff() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let mut policy = TokenPolicy::default();
    policy.login_on_refresh_rejected = false;
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.set_reject_refreshes(true);
    tokio::time::advance(Duration::from_secs(61)).await;
    let err = send(&svc).await.unwrap_err();
    assert!(
        auth_error(&err).kind() == ErrorKind::RefreshRejected,
        "{err}"
    );
    assert_eq!((server.refreshes(), server.logins()), (1, 1));
    // The rejection holds for its backoff: requests fail fast with it, nothing is sent.
    let err = send(&svc).await.unwrap_err();
    let err = auth_error(&err);
    assert!(
        err.kind() == ErrorKind::RefreshRejected && err.retry_in().is_some(),
        "{err}"
    );
    tokio::time::advance(err.retry_in().unwrap()).await;
    assert_eq!((server.refreshes(), server.logins()), (1, 1));
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    // The rejected refresh token is never sent again: the next attempt logs in.
    assert_eq!((server.refreshes(), server.logins()), (1, 2));
}

/// The fail-fast error after a rejection, and how long it says credentials wait.
async fn fails_fast(svc: &AuthService<Upstream>) -> (AuthError, Duration) {
    let err = send(svc).await.unwrap_err();
    let err = auth_error(&err).clone();
    assert!(err.retry_in().is_some(), "{err}");
    let wait = err.retry_in().unwrap();
    (err, wait)
}

#[tokio::test(start_paused = true)]
async fn rejected_login_fails_every_waiter_and_backs_off() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    server.set_reject_logins(true);
    let nominal = Backoff::new(Duration::from_secs(2), Duration::from_secs(8), 2);
    let layer = AuthLayer::builder(TestProvider::new())
        .clock(Clock::tokio())
        .rejection_backoff(nominal)
        .build(server.transport());
    let svc = service(&server, &layer);

    for result in concurrent(&svc, 50).await {
        let err = result.unwrap_err();
        let err = auth_error(&err);
        assert_eq!(err.kind(), ErrorKind::LoginRejected);
        assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
        assert!(
            err.retry_in().is_none(),
            "the waiters saw the login itself fail"
        );
    }
    assert_eq!(server.logins(), 1);

    // Within the backoff: fail fast with the rejection, send nothing. The jittered delay is
    // never shorter than the nominal one, nor longer than half as much again.
    let (err, wait) = fails_fast(&svc).await;
    assert!(err.kind() == ErrorKind::LoginRejected);
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
    assert!(
        wait >= nominal.delay(1) && wait <= nominal.delay(1) * 3 / 2,
        "{wait:?}"
    );
    tokio::time::advance(wait - Duration::from_millis(1)).await;
    for result in concurrent(&svc, 10).await {
        assert!(auth_error(&result.unwrap_err()).retry_in().is_some());
    }
    assert_eq!(server.logins(), 1);

    // After it: one more attempt, which doubles the backoff.
    tokio::time::advance(Duration::from_millis(1)).await;
    let err = send(&svc).await.unwrap_err();
    assert!(
        auth_error(&err).kind() == ErrorKind::LoginRejected
            && auth_error(&err).retry_in().is_none()
    );
    assert_eq!(server.logins(), 2);
    let (_, wait) = fails_fast(&svc).await;
    assert!(
        wait >= nominal.delay(2) && wait <= nominal.delay(2) * 3 / 2,
        "{wait:?}"
    );
    assert_eq!(server.logins(), 2);

    // Credentials accepted again: the next attempt after the backoff succeeds and resets it.
    server.set_reject_logins(false);
    tokio::time::advance(wait).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(server.logins(), 3);
}

#[tokio::test(start_paused = true)]
async fn after_expiry_policy_never_refreshes_a_valid_token() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let mut policy = TokenPolicy::default();
    policy.refresh = RefreshTiming::AfterExpiry;
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);

    tokio::time::advance(Duration::from_millis(59_500)).await;
    for result in concurrent(&svc, 10).await {
        assert_eq!(result.unwrap().status(), StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(server.refreshes(), 0);

    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(server.refreshes(), 1);
}

#[tokio::test(start_paused = true)]
async fn proactive_refresh_runs_in_the_background() {
    let server = AuthServer::new(100, AUTH_DELAY);
    let mut policy = TokenPolicy::default();
    policy.refresh = RefreshTiming::Proactive {
        margin: Duration::from_secs(30),
    };
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);

    // Before the margin (and its jitter, up to a fifth of it earlier): nothing.
    tokio::time::advance(Duration::from_secs(63)).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(server.refreshes(), 0);

    // Inside it: requests go out at once with the old token, one refresh starts behind them.
    tokio::time::advance(Duration::from_secs(8)).await;
    let results = concurrent(&svc, 20).await;
    assert!(results
        .iter()
        .all(|r| r.as_ref().is_ok_and(|r| r.status() == StatusCode::OK)));
    let headers = server.upstream_headers();
    assert!(headers[2..].iter().all(|h| *h == bearer(1)));
    assert_eq!(
        layer.handle().metrics().token_waits,
        1,
        "nobody waited for the refresh"
    );
    tokio::time::sleep(AUTH_DELAY).await;
    assert_eq!(server.refreshes(), 1);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(server.upstream_headers().last().unwrap(), &bearer(2));
    assert_eq!(server.refreshes(), 1);
}

#[tokio::test(start_paused = true)]
async fn short_lifetimes_refresh_at_half_life() {
    let server = AuthServer::new(10, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new()); // margin 30 s > lifetime
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    // Half the lifetime, brought forward by at most a fifth of that: refresh due in [4 s, 5 s].
    tokio::time::advance(Duration::from_millis(3900)).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    tokio::time::sleep(AUTH_DELAY).await;
    assert_eq!(server.refreshes(), 0);
    tokio::time::advance(Duration::from_millis(1100)).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    tokio::time::sleep(AUTH_DELAY).await;
    assert_eq!(server.refreshes(), 1);
}

fn jwt(exp: u64) -> String {
    use base64::engine::{general_purpose::URL_SAFE_NO_PAD, Engine};
    format!(
        "{}.{}.sig-{MARK}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp}}}"#))
    )
}

#[tokio::test(start_paused = true)]
async fn expiry_falls_back_to_jwt_exp_then_default() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let server = AuthServer::new(0, AUTH_DELAY);
    server.set_expires_in(None);
    let mut policy = TokenPolicy::default();
    policy.refresh = RefreshTiming::AfterExpiry;
    policy.default_lifetime = Duration::from_secs(20);
    policy.classifier = Classifier::none(); // the upstream does not know the hand-made tokens
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    // First login: a JWT access token with `exp` 600 s ahead and no `expires_in`.
    let body = format!(
        r#"{{"access_token":"{}","refresh_token":"jwt-rt-{MARK}"}}"#,
        jwt(now + 600)
    );
    server.set_fault(Some(Fault::Reply(
        StatusCode::OK,
        "application/json",
        body.into(),
    )));
    send(&svc).await.unwrap();
    server.set_fault(None);
    assert_eq!((server.logins(), server.refreshes()), (1, 0));
    tokio::time::advance(Duration::from_secs(590)).await;
    send(&svc).await.unwrap();
    assert_eq!((server.logins(), server.refreshes()), (1, 0));

    // Expired at 600 s: the refresh token is unknown to the server, so it logs in again and gets
    // an opaque token without `expires_in`, which lives the default 20 s.
    tokio::time::advance(Duration::from_secs(11)).await;
    send(&svc).await.unwrap();
    assert_eq!((server.logins(), server.refreshes()), (2, 1));
    tokio::time::advance(Duration::from_secs(19)).await;
    send(&svc).await.unwrap();
    assert_eq!((server.logins(), server.refreshes()), (2, 1));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!((server.logins(), server.refreshes()), (2, 2));
}

/// A JWT `exp` is read on the layer's clock, wall time included: two paused hours after the
/// layer was built, an `exp` 600 s ahead of the clock lasts 600 s (by the system's wall clock it
/// would be two hours more).
#[tokio::test(start_paused = true)]
async fn jwt_exp_is_read_on_the_layers_clock() {
    let server = AuthServer::new(0, AUTH_DELAY);
    server.set_expires_in(None);
    let mut policy = TokenPolicy::default();
    policy.refresh = RefreshTiming::AfterExpiry;
    policy.classifier = Classifier::none();
    let clock = Clock::tokio();
    let layer = AuthLayer::builder(TestProvider::with_policy(policy))
        .clock(clock)
        .build(server.transport());
    let svc = service(&server, &layer);
    tokio::time::advance(Duration::from_secs(7200)).await;
    let exp = clock
        .wall()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let body = format!(r#"{{"access_token":"{}"}}"#, jwt(exp));
    server.set_fault(Some(Fault::Reply(
        StatusCode::OK,
        "application/json",
        body.into(),
    )));
    send(&svc).await.unwrap();
    server.set_fault(None);
    tokio::time::advance(Duration::from_secs(595)).await;
    send(&svc).await.unwrap();
    assert_eq!(server.logins(), 1);
    tokio::time::advance(Duration::from_secs(10)).await;
    send(&svc).await.unwrap();
    assert_eq!(server.logins(), 2);
}

/// A JWT whose `exp` has passed by the local clock (a skewed clock, no `iat`): the lifetime is
/// unknown, so the token is used for a short default, with a 401 as the backstop; never a login
/// loop.
#[tokio::test(start_paused = true)]
async fn jwt_already_expired_means_lifetime_unknown_not_a_login_loop() {
    let server = AuthServer::new(0, AUTH_DELAY);
    let token = jwt(1_000);
    let body = format!(r#"{{"access_token":"{token}"}}"#);
    server.set_fault(Some(Fault::Reply(
        StatusCode::OK,
        "application/json",
        body.into(),
    )));
    let mut policy = TokenPolicy::default();
    policy.classifier = Classifier::none(); // the upstream does not know the hand-made token
    policy.refresh = RefreshTiming::AfterExpiry;
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    for result in concurrent(&svc, 10).await {
        assert_eq!(result.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(server.logins(), 1);
    let sent = format!("Bearer {token}");
    assert!(server.upstream_headers().iter().all(|h| *h == sent));
    // Trusted for 60 s (the default lifetime is 5 minutes; an expired `exp` caps it).
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.logins(), 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.logins(), 2);
}

fn reply(status: StatusCode, body: &'static [u8]) -> Fault {
    Fault::Reply(status, "application/json", Bytes::from_static(body))
}

/// Each bad answer from the auth server: the waiting request gets the right kind, nothing panics,
/// and a still-valid token keeps being used while its refresh fails.
#[tokio::test(start_paused = true)]
async fn bad_auth_responses_are_typed_errors_and_keep_the_valid_token() {
    let faults: Vec<(&str, Fault, ErrorKind)> = vec![
        (
            "truncated json",
            reply(StatusCode::OK, br#"{"access_token":"at-SECRET"#),
            ErrorKind::Malformed,
        ),
        (
            "html 200",
            Fault::Reply(
                StatusCode::OK,
                "text/html",
                Bytes::from_static(b"<html>hi</html>"),
            ),
            ErrorKind::Malformed,
        ),
        (
            "missing access_token",
            reply(StatusCode::OK, br#"{"refresh_token":"rt-SECRET"}"#),
            ErrorKind::Malformed,
        ),
        (
            "crlf token",
            reply(
                StatusCode::OK,
                b"{\"access_token\":\"at-SECRET\\r\\nX-Evil: 1\"}",
            ),
            ErrorKind::InvalidToken,
        ),
        (
            "oversized",
            reply(StatusCode::OK, &[b' '; 70_000]),
            ErrorKind::ResponseTooLarge,
        ),
        (
            "500 html",
            Fault::Reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/html",
                Bytes::from_static(b"<h1>oops</h1>"),
            ),
            ErrorKind::Status,
        ),
        (
            "503",
            reply(StatusCode::SERVICE_UNAVAILABLE, b""),
            ErrorKind::Status,
        ),
        ("timeout", Fault::Hang, ErrorKind::Timeout),
    ];
    for (name, fault, kind) in faults {
        // No token yet: the request waits, through retries, up to its bound; then it fails as
        // unavailable, with the last failure as the cause.
        let server = AuthServer::new(100, AUTH_DELAY);
        server.set_fault(Some(fault.clone()));
        let layer = AuthLayer::builder(TestProvider::new())
            .clock(Clock::tokio())
            .max_wait(Duration::from_secs(25))
            .build(server.transport());
        let svc = service(&server, &layer);
        let err = send(&svc).await.unwrap_err();
        let err = auth_error(&err);
        let unusable_2xx = name != "500 html" && name != "503" && name != "timeout";
        if unusable_2xx {
            // A 2xx without a usable token, five times in a row while the request waits: no
            // server coming back, but one answering uselessly. Backed off like a rejection, with
            // the answer's own kind; no more credentials meanwhile.
            assert_eq!(err.kind(), kind, "{name}: {err}");
            assert_eq!(server.logins(), 5, "{name}: five logins, then the backoff");
            assert!(!format!("{err} {err:?}").contains(MARK), "{name}: {err}");
            let again = send(&svc).await.unwrap_err();
            assert!(auth_error(&again).retry_in().is_some(), "{name}: {again}");
            assert_eq!(server.logins(), 5, "{name}: failing fast");
            valid_token_survives_failing_refreshes(name, fault).await;
            continue;
        }
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{name}: {err}");
        let cause = std::error::Error::source(err)
            .and_then(|e| e.downcast_ref::<AuthError>())
            .unwrap_or_else(|| panic!("{name}: no cause in {err:?}"));
        assert_eq!(cause.kind(), kind, "{name}: {err}");
        assert!(!format!("{err} {err:?}").contains(MARK), "{name}: {err}");
        let tries = layer.handle().metrics().auth_failures;
        assert!(tries >= 2, "{name}: retried inside the flight ({tries})");
        // Timeouts at 10 s, 20 s: the third login is still out when the request gives up.
        let in_flight = u64::from(matches!(fault, Fault::Hang));
        assert_eq!(
            tries + in_flight,
            server.logins() as u64,
            "{name}: every try a login"
        );
        valid_token_survives_failing_refreshes(name, fault).await;
    }
}

/// A valid token in the slot, its refresh failing with `fault`: requests keep succeeding on it,
/// and the first retry after the fault clears renews it.
async fn valid_token_survives_failing_refreshes(name: &str, fault: Fault) {
    {
        let server = AuthServer::new(100, AUTH_DELAY);
        let layer = new_layer(&server, TestProvider::new());
        let svc = service(&server, &layer);
        assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
        server.set_fault(Some(fault));
        tokio::time::advance(Duration::from_secs(75)).await;
        for _ in 0..3 {
            assert_eq!(send(&svc).await.unwrap(), StatusCode::OK, "{name}");
            tokio::time::sleep(Duration::from_secs(11)).await;
        }
        assert!(
            server.upstream_headers().iter().all(|h| *h == bearer(1)),
            "{name}"
        );
        // Once the fault clears, the next retry (at most 1 s later, while the token is still
        // valid) succeeds, and the requests after it carry the new token.
        server.set_fault(None);
        tokio::time::sleep(Duration::from_secs(1) + AUTH_DELAY * 2).await;
        assert_eq!(send(&svc).await.unwrap(), StatusCode::OK, "{name}");
        assert!(
            server
                .upstream_headers()
                .last()
                .unwrap()
                .starts_with("Bearer at-2"),
            "{name}"
        );
    }
}

/// A redirect or a 404 from the auth endpoint is a configuration problem: retrying soon would
/// not help, so it is backed off like a rejection, and requests fail fast with it meanwhile.
#[tokio::test(start_paused = true)]
async fn an_unexpected_status_is_backed_off_not_retried() {
    for status in [StatusCode::FOUND, StatusCode::NOT_FOUND] {
        let server = AuthServer::new(100, AUTH_DELAY);
        server.set_fault(Some(reply(status, b"")));
        let layer = new_layer(&server, TestProvider::new());
        let svc = service(&server, &layer);
        let err = send(&svc).await.unwrap_err();
        let err = auth_error(&err);
        assert_eq!(
            (err.kind(), err.status()),
            (ErrorKind::Status, Some(status))
        );
        assert_eq!(err.retry_in(), None, "the first request made the call");
        let (err, _) = fails_fast(&svc).await;
        assert_eq!(err.status(), Some(status));
        assert_eq!(server.logins(), 1);
    }
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
    tower_token_auth::Secret::new(format!("pw-{MARK}"))
}

#[tokio::test(start_paused = true)]
async fn services_from_one_layer_share_the_slot() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let a = service(&server, &layer);
    let b = service(&server, &layer.clone());
    let (ra, rb) = tokio::join!(send(&a), send(&b));
    assert_eq!((ra.unwrap(), rb.unwrap()), (StatusCode::OK, StatusCode::OK));
    assert_eq!(server.logins(), 1);
    // Both services count on the layer's one set of metrics: one login between them.
    assert_eq!(layer.handle().metrics().logins, 1);
}

#[tokio::test(start_paused = true)]
async fn rejected_refresh_token_is_not_resent_when_the_fallback_login_fails() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.set_reject_refreshes(true);
    server.set_reject_logins(true);
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(auth_error(&send(&svc).await.unwrap_err()).kind() == ErrorKind::LoginRejected);
    assert_eq!((server.refreshes(), server.logins()), (1, 2));

    server.set_reject_refreshes(false);
    server.set_reject_logins(false);
    let (_, wait) = fails_fast(&svc).await;
    tokio::time::advance(wait).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!((server.refreshes(), server.logins()), (1, 3));
    assert_eq!(server.refresh_tokens_seen(), [format!("rt-1-{MARK}")]);
}

#[tokio::test(start_paused = true)]
async fn lifetime_counts_from_when_the_auth_request_was_sent() {
    // A slow auth server: the token was issued somewhere within the 10 s the answer took, so it is
    // only trusted for 60 s from the moment the request left.
    let server = AuthServer::new(60, Duration::from_secs(10));
    let mut policy = TokenPolicy::default();
    policy.refresh = RefreshTiming::AfterExpiry;
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK); // t = 10 s
    tokio::time::advance(Duration::from_secs(49)).await; // t = 59 s
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(server.refreshes(), 0);
    tokio::time::advance(Duration::from_millis(1100)).await; // t = 60.1 s
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(server.refreshes(), 1);
}

/// The documented path for bodies that cannot be copied: buffer them (bounded) in front of the
/// layer with tower's `AsyncFilter`, and replay works.
#[tokio::test(start_paused = true)]
async fn buffered_streaming_bodies_are_replayed() {
    use http_body_util::{BodyExt, Limited};

    /// A one-chunk body that cannot be cloned.
    struct OneShot(Option<Bytes>);
    impl http_body::Body for OneShot {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(self.0.take().map(|b| Ok(http_body::Frame::data(b))))
        }
    }
    async fn buffer(req: Request<OneShot>) -> Result<Request<Full<Bytes>>, tower::BoxError> {
        let (parts, body) = req.into_parts();
        let bytes = Limited::new(body, 1 << 20).collect().await?.to_bytes();
        Ok(Request::from_parts(parts, Full::new(bytes)))
    }

    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = tower::ServiceBuilder::new()
        .layer(tower::filter::AsyncFilterLayer::new(buffer))
        .layer(layer.clone())
        .service(server.upstream::<Full<Bytes>>());
    let req = || Request::new(OneShot(Some(Bytes::from_static(b"payload"))));
    assert_eq!(
        svc.clone().oneshot(req()).await.unwrap().status(),
        StatusCode::OK
    );
    server.revoke_access_tokens();
    assert_eq!(
        svc.clone().oneshot(req()).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(layer.handle().metrics().replays, 1);
    assert_eq!(server.refreshes(), 1);
}

#[tokio::test(start_paused = true)]
async fn refresh_answered_2xx_but_unusable_consumes_the_refresh_token() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    // The server takes the refresh token and answers garbage with a 200.
    server.set_fault(Some(reply(StatusCode::OK, br#"{"access_token":"at-SECR"#)));
    server.clear_fault_after(1);
    tokio::time::advance(Duration::from_secs(61)).await;
    // The layer logs in within the same flight: the request succeeds.
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    // The consumed refresh token was not sent again.
    assert_eq!(server.refresh_tokens_seen(), [format!("rt-1-{MARK}")]);
    assert_eq!((server.logins(), server.refreshes()), (2, 1));
    assert_eq!(layer.handle().metrics().auth_failures, 1);
}

/// A provider that panics while parsing: a bug in user code must not disable the backoff.
struct Panicky(TestProvider);

impl tower_token_auth::provider::Provider for Panicky {
    fn login_request(
        &self,
    ) -> Result<tower_token_auth::provider::AuthRequest, tower_token_auth::AuthError> {
        self.0.login_request()
    }
    fn refresh_request(
        &self,
        refresh_token: &tower_token_auth::Secret,
    ) -> Result<tower_token_auth::provider::AuthRequest, tower_token_auth::AuthError> {
        self.0.refresh_request(refresh_token)
    }
    fn parse_response(
        &self,
        _: tower_token_auth::AuthCall,
        _: &tower_token_auth::provider::AuthResponse,
    ) -> Result<TokenSet, tower_token_auth::AuthError> {
        panic!("provider bug");
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_provider_still_backs_off() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let layer = AuthLayer::builder(Panicky(TestProvider::new()))
        .clock(Clock::tokio())
        .build(server.transport());
    let svc = layer.layer(server.upstream::<Full<Bytes>>());
    let err = svc.clone().oneshot(get()).await.unwrap_err();
    assert_eq!(auth_error(&err).kind(), ErrorKind::Aborted);
    for _ in 0..5 {
        let err = svc.clone().oneshot(get()).await.unwrap_err();
        let err = auth_error(&err);
        assert!(
            err.retry_in().is_some() && err.kind() == ErrorKind::Aborted,
            "{err}"
        );
    }
    assert_eq!(server.logins(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_enormous_backoff_does_not_overflow() {
    let server = AuthServer::new(60, AUTH_DELAY);
    server.set_reject_logins(true);
    let layer = AuthLayer::builder(TestProvider::new())
        .clock(Clock::tokio())
        .rejection_backoff(Backoff::new(Duration::MAX, Duration::MAX, u32::MAX))
        .build(server.transport());
    let svc = service(&server, &layer);
    assert!(auth_error(&send(&svc).await.unwrap_err()).kind() == ErrorKind::LoginRejected);
    for _ in 0..3 {
        assert!(auth_error(&send(&svc).await.unwrap_err())
            .retry_in()
            .is_some());
    }
    assert_eq!(server.logins(), 1);
}

/// A refresh token that cannot be put in a request is dropped in favour of a login, not retried
/// forever.
struct NoRefresh(TestProvider);

impl tower_token_auth::provider::Provider for NoRefresh {
    fn login_request(
        &self,
    ) -> Result<tower_token_auth::provider::AuthRequest, tower_token_auth::AuthError> {
        self.0.login_request()
    }
    fn refresh_request(
        &self,
        _: &tower_token_auth::Secret,
    ) -> Result<tower_token_auth::provider::AuthRequest, tower_token_auth::AuthError> {
        Err(tower_token_auth::AuthError::invalid_token(
            "refresh token is not a valid header value",
        ))
    }
}

#[tokio::test(start_paused = true)]
async fn an_unsendable_refresh_token_falls_back_to_login() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let layer = AuthLayer::builder(NoRefresh(TestProvider::new()))
        .clock(Clock::tokio())
        .build(server.transport());
    let svc = layer.layer(server.upstream::<Full<Bytes>>());
    assert_eq!(
        svc.clone().oneshot(get()).await.unwrap().status(),
        StatusCode::OK
    );
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(
        svc.clone().oneshot(get()).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!((server.logins(), server.refreshes()), (2, 0));
}

/// Outside a tokio runtime the layer cannot run an auth call: the request fails with a typed
/// error instead of panicking.
#[test]
fn without_a_runtime_requests_fail_with_a_typed_error() {
    use std::future::Future;
    let server = AuthServer::new(60, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let mut svc = service(&server, &layer);
    let mut future = std::pin::pin!(tower::Service::call(&mut svc, get()));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Err(err)) => {
            assert_eq!(auth_error(&err).kind(), ErrorKind::Runtime)
        }
        other => panic!("expected a runtime error, got {other:?}"),
    }
    assert_eq!(server.logins(), 0);
}
