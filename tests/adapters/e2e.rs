//! End-to-end tests: the union-service preset against its emulation on 127.0.0.1, a real
//! hyper-util client as both the wrapped service and the auth transport.
//!
//! Token expiry is never driven by the clock here: the emulation revokes tokens on demand, and
//! access tokens live for an hour so no refresh ahead can start during a test.

use std::time::Duration;

use http::StatusCode;
use tower::{BoxError, Layer};
use tower_token_auth::{AuthError, AuthLayer, ErrorKind};
use tower_token_auth_emulation::{Api, Config, Emulation, Fault};

use crate::support::emulated::{client, get, get_concurrently, preset, preset_with, Authed};

/// Login with a username and password, and refresh, both as JSON POSTs.
const API: Api = Api::UnionService;
/// Upper bound for a whole test; a hang is a failure, not a stuck CI job.
const TEST_DEADLINE: Duration = Duration::from_secs(30);

/// The emulation, with long-lived tokens.
async fn emulation() -> Emulation {
    let config = Config {
        access_lifetime: Duration::from_secs(3600),
        refresh_lifetime: Duration::from_secs(7200),
        ..Config::default()
    };
    Emulation::start(API, config)
        .await
        .expect("emulation starts")
}

/// The emulation, a fresh layer (its own token slot and counters) with the preset, and the
/// service.
async fn start() -> (Emulation, AuthLayer, Authed) {
    let emulation = emulation().await;
    let layer = AuthLayer::new(preset(API, &emulation), client());
    let svc = layer.layer(client());
    (emulation, layer, svc)
}

/// How many requests carried each distinct bearer token, in the order the tokens turned up.
fn token_uses(emulation: &Emulation) -> Vec<u64> {
    let tokens = emulation.resource_tokens();
    tokens.iter().map(|(_, uses)| *uses).collect()
}

fn auth_error(err: &BoxError) -> &AuthError {
    err.downcast_ref::<AuthError>()
        .unwrap_or_else(|| panic!("not an AuthError: {err:?}"))
}

async fn with_deadline<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_DEADLINE, test)
        .await
        .expect("test did not finish in time (a hang)");
}

/// 50 concurrent requests on a cold layer share one login, and all carry its token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cold_start_logs_in_once() {
    with_deadline(async {
        let (emulation, layer, svc) = start().await;

        assert_eq!(
            get_concurrently(&svc, &emulation, 50).await,
            [StatusCode::OK; 50]
        );

        let s = emulation.stats();
        assert_eq!((s.logins, s.refreshes, s.violations), (1, 0, 0));
        assert_eq!((s.resource_ok, s.resource_unauthorized), (50, 0));
        assert_eq!(token_uses(&emulation), [50]);

        let m = layer.handle().metrics();
        assert_eq!(m.logins, 1);
        assert_eq!(m.refreshes, 0);
        assert_eq!(m.replays, 0);
        assert_eq!(m.auth_failures, 0);
        // The service's requests are the ones counted on the layer's handle (one login, above).
    })
    .await;
}

/// A revoked access token: 20 in-flight requests all get a 401, share one refresh and are
/// replayed with the new token. Half of the 401s are delivered only after the refresh has
/// completed, so a late 401 for the old token must not start a second refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoked_token_is_refreshed_once_and_requests_replayed() {
    with_deadline(async {
        let (emulation, layer, svc) = start().await;

        // Warm up: log in and hold the first token.
        assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);
        assert_eq!(layer.handle().metrics().logins, 1);

        // It dies early; all 20 requests reach the server with it before any 401 comes back.
        emulation.revoke_access_tokens();
        emulation.hold_resource_requests(20);
        let control = async {
            emulation.wait_for_held_requests(20).await;
            // The first 10 get their 401 now: one refresh, then replays with the second token.
            emulation.release_held_requests(10);
            emulation.wait_for_resource_tokens(2).await;
            // The other 10 get their 401 for the first token while the second is in the slot.
            emulation.release_held_requests(20);
        };
        let (statuses, ()) = tokio::join!(get_concurrently(&svc, &emulation, 20), control);

        assert_eq!(statuses, [StatusCode::OK; 20]);
        let s = emulation.stats();
        assert_eq!((s.logins, s.refreshes, s.violations), (1, 1, 0));
        assert_eq!(s.rejected_refreshes, 0);
        // 1 warm-up and 20 replays; 20 rejected.
        assert_eq!((s.resource_ok, s.resource_unauthorized), (21, 20));
        assert_eq!(token_uses(&emulation), [21, 20]);

        let m = layer.handle().metrics();
        assert_eq!(m.logins, 1);
        assert_eq!(m.refreshes, 1);
        assert_eq!(m.replays, 20);
        assert_eq!(m.replays, s.resource_unauthorized);
        assert_eq!(m.auth_failures, 0);
    })
    .await;
}

/// The refresh token is refused as well: the layer falls back to a fresh login.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rejected_refresh_falls_back_to_login() {
    with_deadline(async {
        let (emulation, layer, svc) = start().await;
        assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);

        emulation.revoke_refresh_tokens();
        emulation.revoke_access_tokens();
        assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);

        let s = emulation.stats();
        assert_eq!((s.logins, s.refreshes, s.rejected_refreshes), (2, 0, 1));
        // The refresh token was revoked, not re-sent after use; the login needed.
        assert_eq!((s.violations, s.needless_logins), (0, 0));
        assert_eq!((s.resource_ok, s.resource_unauthorized), (2, 1));
        // First token: warm-up and rejected; second: the replay after the fallback login.
        assert_eq!(token_uses(&emulation), [2, 1]);

        let m = layer.handle().metrics();
        assert_eq!(m.logins, 2);
        assert_eq!(m.refreshes, 1);
        assert_eq!(m.replays, 1);
        assert_eq!(m.auth_failures, 1);
    })
    .await;
}

/// Wrong credentials: the request fails with a login rejection (union-service answers 500 with
/// its JSON error), and the next one fails fast without sending the credentials again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_password_is_rejected_then_backs_off() {
    with_deadline(async {
        let emulation = emulation().await;
        let wrong = Config {
            password: "wrong password".to_owned(),
            ..emulation.config().clone()
        };
        // A long backoff, so that "immediately" cannot be outrun by a slow machine.
        let layer = AuthLayer::builder(preset_with(API, &emulation.base_url(), &wrong))
            .rejection_backoff(Duration::from_secs(600), Duration::from_secs(600))
            .build(client());
        let svc = layer.layer(client());

        let err = get(&svc, &emulation)
            .await
            .expect_err("a wrong password must fail the request");
        let auth_err = auth_error(&err);
        assert!(auth_err.kind() == ErrorKind::LoginRejected, "{auth_err:?}");
        assert_eq!(auth_err.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("wrong password"), "{shown}");

        let err = get(&svc, &emulation)
            .await
            .expect_err("the second request must fail fast");
        let auth_err = auth_error(&err);
        assert!(auth_err.retry_in().is_some(), "{auth_err:?}");
        assert!(auth_err.retry_in().is_some());
        let cause = std::error::Error::source(auth_err)
            .and_then(|e| e.downcast_ref::<AuthError>())
            .expect("backing off names the last failure");
        assert!(cause.kind() == ErrorKind::LoginRejected);

        // union-service's JSON 500 is ambiguous: a rejection once it came three times in a row.
        let s = emulation.stats();
        assert_eq!((s.logins, s.rejected_logins, s.violations), (0, 3, 0));
        assert_eq!((s.resource_ok, s.resource_unauthorized), (0, 0));
        let m = layer.handle().metrics();
        assert_eq!(m.logins, 3);
        assert_eq!(m.auth_failures, 3);
    })
    .await;
}

/// A redirect from the login endpoint is not followed: the credentials never reach the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_redirect_is_not_followed() {
    with_deadline(async {
        let (emulation, layer, svc) = start().await;
        emulation.set_fault(Some(Fault::Redirect(302)));

        let err = get(&svc, &emulation)
            .await
            .expect_err("a redirected login must fail the request");
        let auth_err = auth_error(&err);
        assert_eq!(auth_err.kind(), ErrorKind::Status, "{auth_err:?}");
        assert_eq!(auth_err.status(), Some(StatusCode::FOUND));

        let s = emulation.stats();
        assert_eq!((s.faults, s.redirects_followed), (1, 0));
        assert_eq!((s.logins, s.rejected_logins, s.violations), (0, 0, 0));
        assert_eq!((s.resource_ok, s.resource_unauthorized), (0, 0));
        let m = layer.handle().metrics();
        assert_eq!(m.logins, 1);
        assert_eq!(m.auth_failures, 1);
    })
    .await;
}
