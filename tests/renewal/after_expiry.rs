//! Refresh only after expiry (ARCHITECTURE.md invariant 8), when a program invalidates a token
//! that is still valid: Intergiro refuses a premature refresh with an error, and the layer keeps
//! the token instead of backing off into an outage.

use crate::support::emulated;

use std::sync::Arc;
use std::time::Duration;

use tower::{Layer, ServiceExt};
use tower_token_auth::AuthLayer;
use tower_token_auth_emulation::{Api, Config, Emulation};

/// `force_refresh()` and `invalidate()` under load, on a 15 s Intergiro token: one refused
/// refresh each (the API counts it as a violation; the program asked for it), the token kept,
/// no request failed, no login, and the refresh token still renews the session at expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_invalidation_keeps_a_token_the_api_still_holds_valid() {
    let config = Config {
        access_lifetime: Duration::from_secs(15),
        ..Config::default()
    };
    let emulation = Arc::new(Emulation::start(Api::Intergiro, config).await.unwrap());
    let client = emulated::client();
    let layer = AuthLayer::new(emulated::preset(Api::Intergiro, &emulation), client.clone());
    let handle = layer.handle();
    let svc = layer.layer(client);
    let load = emulated::spawn_load(&svc, &emulation, 8, |_| {});
    tokio::time::sleep(Duration::from_millis(300)).await;

    let token = handle.force_refresh().await.expect("the token is kept");
    assert_eq!(token.generation(), 1, "the same token");
    tokio::time::sleep(Duration::from_millis(300)).await;
    handle.invalidate(&token);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kept = handle.token().await.expect("a token");
    assert_eq!(kept.generation(), 1, "the same token, again");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (ok, failed) = load.finish().await;
    let stats = emulation.stats();
    eprintln!(
        "intergiro: {ok} ok, {failed} failed; {stats:?}; {:?}",
        layer.handle().metrics()
    );
    assert_eq!(failed, 0, "{ok} ok");
    assert!(ok > 0);
    assert_eq!((stats.logins, stats.refreshes), (1, 0), "{stats:?}");
    assert_eq!(
        stats.violations, 2,
        "the two refused refreshes, no more: {stats:?}"
    );
    assert_eq!(layer.handle().metrics().refreshes, 2);

    // The refresh token was kept: once the token expires, it renews the session.
    emulation.revoke_access_tokens();
    let request = http::Request::get(emulation.resource_url())
        .body(http_body_util::Full::default())
        .unwrap();
    let response = svc.clone().oneshot(request).await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let stats = emulation.stats();
    assert_eq!((stats.logins, stats.refreshes), (1, 1), "{stats:?}");
    assert_eq!(stats.refresh_token_reuse, 0);
}
