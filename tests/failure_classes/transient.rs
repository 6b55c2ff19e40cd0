//! The unhappy path with paused time, against the in-process auth server: transient failures
//! retried inside the flight, recovery, `Retry-After`, rejections, refresh ahead retries,
//! OkHttp's replay rule, scrubbed server text, and runtime shutdown
//! (ARCHITECTURE.md invariants 4, 6, 8, 10, 11 and 13).

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_token_auth::provider::{RefreshTiming, TokenPolicy};
use tower_token_auth::{AuthLayer, AuthService, Clock, ErrorKind};

use crate::support::{
    auth_error, bearer, get, AuthServer, Fault, TestProvider, Upstream, MARK, PASSWORD,
};

type Svc = AuthService<Upstream>;

const AUTH_DELAY: Duration = Duration::from_millis(50);
const SECOND: Duration = Duration::from_secs(1);

fn unavailable() -> Fault {
    Fault::Reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "text/html",
        Bytes::from_static(b"<h1>503</h1>"),
    )
}

fn setup(server: &AuthServer, policy: TokenPolicy) -> (AuthLayer, Svc) {
    let layer = AuthLayer::builder(TestProvider::with_policy(policy))
        .clock(Clock::tokio())
        .build(server.transport());
    let svc = layer.layer(server.upstream());
    (layer, svc)
}

async fn send(svc: &Svc) -> Result<StatusCode, tower::BoxError> {
    svc.clone().oneshot(get()).await.map(|r| r.status())
}

/// Clears the server's fault at `at`.
fn clear_fault_at(server: &AuthServer, at: Instant) {
    let server = server.clone();
    tokio::spawn(async move {
        tokio::time::sleep_until(at).await;
        server.set_fault(None);
    });
}

/// Auth calls in `[from, to)`.
fn calls_between(server: &AuthServer, from: Instant, to: Instant) -> usize {
    let times = server.call_times();
    times.iter().filter(|t| **t >= from && **t < to).count()
}

#[tokio::test(start_paused = true)]
async fn a_five_second_outage_is_waited_out_and_recovers_within_a_second() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    server.set_fault(Some(unavailable()));
    let (layer, svc) = setup(&server, TokenPolicy::default());
    let start = Instant::now();
    let back = start + 5 * SECOND;
    clear_fault_at(&server, back);

    let requests: Vec<_> = (0..32)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let status = send(&svc).await;
                (status, Instant::now())
            })
        })
        .collect();
    let mut first_ok = None::<Instant>;
    for request in requests {
        let (status, done) = request.await.unwrap();
        assert_eq!(status.unwrap(), StatusCode::OK, "nobody fails: they wait");
        first_ok = Some(first_ok.map_or(done, |t| t.min(done)));
    }
    let recovered = first_ok.unwrap() - back;
    assert!(
        recovered <= SECOND + 2 * AUTH_DELAY,
        "served {recovered:?} after the server's return"
    );
    // On average at most one auth call per 100 ms while it was down.
    let during = calls_between(&server, start, back);
    assert!((5..=50).contains(&during), "{during} auth calls in 5 s");
    assert_eq!(server.logins() as usize, during + 1, "all of them logins");
    assert_eq!(layer.handle().metrics().auth_failures as usize, during);
}

#[tokio::test(start_paused = true)]
async fn a_minute_long_outage_recovers_within_a_second_without_hammering() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    server.set_fault(Some(unavailable()));
    let (_layer, svc) = setup(&server, TokenPolicy::default());
    let start = Instant::now();
    let back = start + 60 * SECOND;
    clear_fault_at(&server, back);

    // A request every second for 70 s; each waits at most the default 30 s.
    let requests: Vec<_> = (0..70u64)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(i)).await;
                let sent = Instant::now();
                (sent, send(&svc).await, Instant::now())
            })
        })
        .collect();
    let mut first_ok = None::<Instant>;
    for request in requests {
        let (sent, outcome, done) = request.await.unwrap();
        match outcome {
            Ok(status) => {
                assert_eq!(status, StatusCode::OK);
                assert!(done >= back);
                first_ok = Some(first_ok.map_or(done, |t| t.min(done)));
            }
            Err(err) => {
                // Only requests that waited out the bound before the return fail, with the
                // last cause.
                let err = auth_error(&err);
                assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
                assert_eq!(done - sent, Duration::from_secs(30));
                assert!(done <= back, "a request alive at the return is served");
                let cause = std::error::Error::source(err).unwrap().to_string();
                assert!(cause.contains("503"), "{cause}");
            }
        }
    }
    assert!(first_ok.unwrap() - back <= SECOND + 2 * AUTH_DELAY);
    let during = calls_between(&server, start, back);
    assert!(during <= 600, "{during} auth calls in 60 s");
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_up_to_the_cap() {
    for (retry_after, expected) in [("3", 3 * SECOND), ("3600", 10 * SECOND)] {
        let server = AuthServer::new(3600, AUTH_DELAY);
        server.set_fault(Some(Fault::RetryAfter(
            StatusCode::TOO_MANY_REQUESTS,
            retry_after,
        )));
        server.clear_fault_after(1);
        let (_layer, svc) = setup(&server, TokenPolicy::default());
        assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
        let times = server.call_times();
        assert_eq!(times.len(), 2, "{retry_after}");
        // The retry waits exactly what the server asked, or the 10 s cap (the full-jitter
        // delay of a first failure is at most 100 ms, less than either).
        assert_eq!(times[1] - times[0], expected + AUTH_DELAY, "{retry_after}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_after_a_failed_flight_waits_for_the_next_one_instead_of_failing() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    server.set_fault(Some(unavailable()));
    let layer = AuthLayer::builder(TestProvider::new())
        .clock(Clock::tokio())
        .max_wait(2 * SECOND)
        .build(server.transport());
    let svc = layer.layer(server.upstream::<Full<Bytes>>());
    let err = svc.clone().oneshot(get()).await.unwrap_err();
    assert_eq!(auth_error(&err).kind(), ErrorKind::Unavailable);
    // Nobody waits: the flight ends after its next failure, keeping its schedule.
    tokio::time::sleep(2 * SECOND).await;
    let calls = server.logins();
    server.set_fault(None);
    // The next request is not failed by the earlier flight: it waits for a new one.
    let response = svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.logins(), calls + 1);
}

#[tokio::test(start_paused = true)]
async fn transient_refresh_failures_retry_the_refresh_never_a_login() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let (_layer, svc) = setup(&server, TokenPolicy::default());
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.set_fault(Some(unavailable()));
    server.clear_fault_after(3);
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!((server.logins(), server.refreshes()), (1, 4));
    assert_eq!(server.refresh_tokens_seen().len(), 4);
    assert_eq!(server.reused_refresh_tokens(), 0, "a 503 consumed nothing");
}

/// A refresh answered 200 whose body then broke: the server rotated the refresh token, so it is
/// never sent again; the same attempt logs in.
#[tokio::test(start_paused = true)]
async fn a_2xx_refresh_with_a_broken_body_consumed_the_refresh_token() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let (layer, svc) = setup(&server, TokenPolicy::default());
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.set_fault(Some(Fault::BrokenBody(StatusCode::OK)));
    server.clear_fault_after(1);
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(server.refresh_tokens_seen(), [format!("rt-1-{MARK}")]);
    assert_eq!((server.logins(), server.refreshes()), (2, 1));
    assert_eq!(layer.handle().metrics().auth_failures, 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_ahead_is_retried_while_the_token_lasts() {
    let server = AuthServer::new(100, AUTH_DELAY);
    let mut policy = TokenPolicy::default();
    policy.refresh = RefreshTiming::Ahead {
        margin: Duration::from_secs(30),
    };
    let (layer, svc) = setup(&server, policy);
    let start = Instant::now();
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    let expires = start + Duration::from_secs(100);
    server.set_fault(Some(unavailable()));
    let back = start + Duration::from_secs(95);
    clear_fault_at(&server, back);

    // A request a second from 71 s on: all served at once with the valid token.
    tokio::time::advance(Duration::from_secs(71)).await;
    while Instant::now() < back + 2 * SECOND {
        assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
        tokio::time::sleep(SECOND).await;
    }
    assert_eq!(
        layer.handle().metrics().token_waits,
        1,
        "only the first login was waited for"
    );
    // Retried all along, never more than 1 s apart nor half the remaining lifetime, never past
    // expiry, and through the return.
    let times = server.call_times();
    let refreshes: Vec<_> = times[1..].to_vec();
    assert!(
        refreshes.len() >= 24,
        "{} refresh attempts",
        refreshes.len()
    );
    for pair in refreshes.windows(2) {
        let gap = pair[1] - pair[0] - AUTH_DELAY;
        let remaining = expires - (pair[0] + AUTH_DELAY);
        assert!(gap <= SECOND && gap <= remaining / 2 + Duration::from_millis(1));
    }
    assert!(*refreshes.last().unwrap() < back + SECOND + AUTH_DELAY);
    assert!(*refreshes.last().unwrap() < expires);
    let headers = server.upstream_headers();
    assert_eq!(headers.last().unwrap(), &bearer(2));
    assert_eq!(server.logins(), 1);
}

#[tokio::test(start_paused = true)]
async fn refreshes_ahead_of_many_clients_are_spread_out() {
    let server = AuthServer::new(100, AUTH_DELAY);
    let mut layers = Vec::new();
    for _ in 0..20 {
        layers.push(setup(&server, TokenPolicy::default()));
    }
    for (_, svc) in &layers {
        assert_eq!(send(svc).await.unwrap(), StatusCode::OK);
    }
    // Every client sends a request every 100 ms through the margin.
    tokio::time::advance(Duration::from_secs(60)).await;
    for _ in 0..150 {
        for (_, svc) in &layers {
            assert_eq!(send(svc).await.unwrap(), StatusCode::OK);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refreshes = &server.call_times()[20..];
    assert_eq!(refreshes.len(), 20, "one refresh per client");
    let spread = *refreshes.iter().max().unwrap() - *refreshes.iter().min().unwrap();
    assert!(
        spread >= SECOND,
        "refreshes within {spread:?} of each other"
    );
}

/// A 401 on a token that was already superseded is not news: the replay is free, and the
/// request still has its budget for the current token.
#[tokio::test(start_paused = true)]
async fn a_401_on_a_superseded_token_is_replayed_free_of_charge() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let (layer, svc) = setup(&server, TokenPolicy::default());
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.revoke_access_tokens();

    // A is held by the upstream for 500 ms with token 1...
    let mut slow = get();
    slow.headers_mut()
        .insert("x-delay-ms", "500".parse().unwrap());
    let a = tokio::spawn(svc.clone().oneshot(slow));
    tokio::task::yield_now().await;
    // ...while B's 401 refreshes to token 2, which then dies as well.
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.revoke_access_tokens();
    // A: 401 on superseded token 1 (free), 401 on token 2 (charged), 200 on token 3.
    assert_eq!(a.await.unwrap().unwrap().status(), StatusCode::OK);
    let headers = server.upstream_headers();
    let a_sends: Vec<_> = headers[2..].iter().filter(|h| **h != headers[2]).collect();
    assert_eq!(headers[2], bearer(1));
    assert_eq!(a_sends, [&bearer(2), &bearer(2), &bearer(3)]);
    assert_eq!(server.refreshes(), 2);
    assert_eq!(layer.handle().metrics().replays, 3, "B once, A twice");
}

#[tokio::test(start_paused = true)]
async fn no_token_for_a_replay_returns_the_original_401() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let (_layer, svc) = setup(&server, TokenPolicy::default());
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.revoke_access_tokens();
    server.set_reject_refreshes(true);
    server.set_reject_logins(true);
    let response = svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap();
    assert_eq!(body.to_bytes(), "resource");
    assert_eq!((server.refreshes(), server.logins()), (1, 2));
    // The token is dead and credentials wait out the rejection: requests fail fast.
    let err = svc.clone().oneshot(get()).await.unwrap_err();
    assert!(
        auth_error(&err).kind() == ErrorKind::LoginRejected
            && auth_error(&err).retry_in().is_some()
    );
    assert_eq!(server.logins(), 2);
}

/// A refresh ahead that got a 502 leaves no backoff behind: a later early revocation is
/// replayed as usual.
#[tokio::test(start_paused = true)]
async fn a_failed_refresh_ahead_does_not_turn_a_later_401_into_an_error() {
    let server = AuthServer::new(100, AUTH_DELAY);
    let (_layer, svc) = setup(&server, TokenPolicy::default());
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.set_fault(Some(Fault::Reply(
        StatusCode::BAD_GATEWAY,
        "text/plain",
        Bytes::new(),
    )));
    server.clear_fault_after(1);
    tokio::time::advance(Duration::from_secs(75)).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(10)).await;
    server.revoke_access_tokens();
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!(server.logins(), 1);
}

#[tokio::test(start_paused = true)]
async fn server_text_that_echoes_secrets_is_scrubbed() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let echo = format!(
        r#"{{"error":"invalid_grant","error_description":"password {PASSWORD} and token eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJlLXNpZ25hdHVyZQ are wrong"}}"#
    );
    server.set_fault(Some(Fault::Reply(
        StatusCode::UNAUTHORIZED,
        "application/json",
        Bytes::from(echo),
    )));
    let (_layer, svc) = setup(&server, TokenPolicy::default());
    let err = svc.clone().oneshot(get()).await.unwrap_err();
    let err = auth_error(&err);
    assert!(err.kind() == ErrorKind::LoginRejected);
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(MARK) && !shown.contains("eyJ"), "{shown}");
    assert!(
        shown.contains("invalid_grant (password [redacted] and token [redacted]"),
        "{shown}"
    );
}

/// Shutting a multi-thread runtime down while requests wait on a flight must not hang: the
/// flight's task is dropped, lands, and no lock is held while that happens.
#[test]
fn runtime_shutdown_with_requests_waiting_does_not_hang() {
    for round in 0..20 {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let server = AuthServer::new(3600, AUTH_DELAY);
                server.set_fault(Some(Fault::Hang));
                let (_layer, svc) = setup(&server, TokenPolicy::default());
                for _ in 0..16 {
                    tokio::spawn(svc.clone().oneshot(get()));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            });
            drop(runtime);
            done_tx.send(()).unwrap();
        });
        done_rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("round {round}: runtime shutdown hung"));
    }
}
