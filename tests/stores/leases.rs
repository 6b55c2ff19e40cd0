//! Processes sharing one session through a store whose lease is far shorter than a renewal,
//! over real HTTP against the emulations (whose refresh tokens are single-use and which count a
//! re-sent one): the lease must still make each renewal one process's, never two.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tower::Layer;
use tower_token_auth::store::{FileStore, TokenStore};
use tower_token_auth::AuthLayer;
use tower_token_auth_emulation::{Api, Config, Emulation, FaultKind, Stats};

use crate::sessions::{TempDir, KEY};
use crate::support::emulated::{client, get, preset, Authed};

/// Access tokens live 2 s: each layer renews about every second.
const ACCESS_LIFETIME: Duration = Duration::from_secs(2);
const RUN: Duration = Duration::from_secs(6);
const LAYERS: usize = 3;
/// Requests in flight per layer.
const IN_FLIGHT: usize = 4;

const SLOW: [FaultKind; 2] = [
    FaultKind::Slow(Duration::from_millis(400)),
    FaultKind::Slow(Duration::from_millis(1500)),
];

/// What the layers' requests ended with.
#[derive(Default)]
pub(crate) struct Outcomes {
    ok: AtomicU64,
    unauthorized: AtomicU64,
    other: AtomicU64,
    errors: AtomicU64,
}

/// Three layers ("processes") on `store`, one key, a lease TTL of 1 ms, sending requests for
/// six seconds; the emulation's counts and the requests' outcomes.
pub(crate) async fn three_layers_with_a_1_ms_lease(
    api: Api,
    store: impl TokenStore + Clone + 'static,
) -> (Stats, Outcomes, u64) {
    let config = Config {
        access_lifetime: ACCESS_LIFETIME,
        refresh_lifetime: Duration::from_secs(600),
        ..Config::default()
    };
    let emulation = Arc::new(
        Emulation::start(api, config)
            .await
            .expect("emulation starts"),
    );
    // Half the auth calls are slow, some slower than the lease TTL's floor: renewals that
    // outlast the lease unless it is kept while they run.
    emulation.set_fault_rate(0.5, &SLOW);
    let layers: Vec<_> = (0..LAYERS)
        .map(|_| {
            AuthLayer::builder(preset(api, &emulation))
                .store(store.clone(), KEY)
                .lease_ttl(Duration::from_millis(1))
                .build(client())
        })
        .collect();
    let outcomes = Arc::new(Outcomes::default());
    let until = tokio::time::Instant::now() + RUN;
    let mut tasks = tokio::task::JoinSet::new();
    for layer in &layers {
        let svc: Authed = layer.layer(client());
        for _ in 0..IN_FLIGHT {
            let (svc, emulation, outcomes) = (svc.clone(), emulation.clone(), outcomes.clone());
            tasks.spawn(async move {
                while tokio::time::Instant::now() < until {
                    let counter = match get(&svc, &emulation).await {
                        Ok(StatusCode::OK) => &outcomes.ok,
                        Ok(StatusCode::UNAUTHORIZED) => &outcomes.unauthorized,
                        Ok(_) => &outcomes.other,
                        Err(_) => &outcomes.errors,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("request task");
    }
    let client_logins = layers.iter().map(|l| l.handle().metrics().logins).sum();
    let stats = emulation.stats();
    let outcomes = Arc::try_unwrap(outcomes).unwrap_or_default();
    println!(
        "{api:?}: {} ok, {} final 401s, {} other, {} errors; server: {} logins, {} refreshes, \
         {} refresh-token reuses, {} violations, {} rejected refreshes, {} slow calls",
        outcomes.ok.load(Ordering::Relaxed),
        outcomes.unauthorized.load(Ordering::Relaxed),
        outcomes.other.load(Ordering::Relaxed),
        outcomes.errors.load(Ordering::Relaxed),
        stats.logins,
        stats.refreshes,
        stats.refresh_token_reuse,
        stats.violations,
        stats.rejected_refreshes,
        stats.faults
    );
    (stats, outcomes, client_logins)
}

pub(crate) fn assert_one_session(api: Api, stats: &Stats, outcomes: &Outcomes, client_logins: u64) {
    assert_eq!(stats.refresh_token_reuse, 0, "{api:?}");
    assert_eq!(stats.violations, 0, "{api:?}");
    assert_eq!(stats.rejected_refreshes, 0, "{api:?}");
    assert_eq!(outcomes.unauthorized.load(Ordering::Relaxed), 0, "{api:?}");
    assert_eq!(outcomes.other.load(Ordering::Relaxed), 0, "{api:?}");
    assert_eq!(outcomes.errors.load(Ordering::Relaxed), 0, "{api:?}");
    assert!(outcomes.ok.load(Ordering::Relaxed) > 0, "{api:?}");
    // One login for the fleet: every later renewal is a refresh by whichever layer holds the
    // lease, adopted by the others.
    assert_eq!((stats.logins, client_logins), (1, 1), "{api:?}");
    // About one refresh a second for the fleet (a third of what three layers renewing on their
    // own would send).
    let at_most = RUN.as_secs() * 2;
    assert!(
        stats.refreshes <= at_most,
        "{api:?}: {} refreshes",
        stats.refreshes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_shorter_than_a_renewal_never_costs_a_refresh_token_reuse_file_store() {
    let mut runs = Vec::new();
    for api in [Api::Tradecloud, Api::Oli] {
        let dir = TempDir::new("tiny-lease");
        runs.push((
            api,
            three_layers_with_a_1_ms_lease(api, FileStore::new(dir.path())).await,
        ));
    }
    for (api, (stats, outcomes, logins)) in runs {
        assert_one_session(api, &stats, &outcomes, logins);
    }
}
