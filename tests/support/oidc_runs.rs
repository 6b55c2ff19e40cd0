//! The runs every client authentication method makes against the real provider
//! ([`OidcServer`]), whatever sends its requests: a short course through early revocations
//! ([`serves_and_survives_revocations`]), and a load run, clean or under faults
//! ([`rides_out_faults`]), each with its exact accounting on both sides; and the accounting of
//! a run of the demo ([`demo_agrees`]).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::StatusCode;
use tower_token_auth::TokenHandle;

use super::oidc_server::{Faults, OidcServer, Stats};

/// Requests per load run.
pub const REQUESTS: u64 = 400;
/// Requests in flight at once in a load run.
pub const WORKERS: u64 = 16;
/// In a load run, every live token of the client is destroyed before every this many requests,
/// so that renewals (and the faults they meet) come in every run.
pub const REVOKE_EVERY: u64 = 25;
/// The faults' seed. Token calls come one at a time (one flight), and each of the [`REQUESTS`]
/// 200s draws once for its token's destruction, so a run meets the same draws every time: the
/// tokens of the 44th and the 127th answers die (unless the controls destroyed them first).
pub const SEED: u64 = 13;
/// The resource answers after which a run under faults destroys the token, by [`SEED`].
pub const RANDOM_REVOCATIONS: u64 = 2;

/// The faults of a load run: 30 % of the token endpoint's calls answered 503 before the provider
/// sees them, and 0.2 % of the resource's answers followed by the destruction of the token
/// served.
pub const FAULTS: Faults = Faults {
    token_rate: 0.3,
    revocation_rate: 0.002,
    seed: SEED,
};

/// The short course, its requests sent by `get` to a resource serving `client`: 20 requests on
/// one token; the token destroyed early at the provider, so that the next request is refused
/// once and replayed after a second login, and 10 requests in all on the second token; then
/// `TokenHandle::revoke` at the provider's revocation endpoint (the client authenticating there
/// as at the token endpoint), and 5 requests on a third token, none refused. The provider issued
/// 3 tokens to the client, its resource served 35 requests and refused 1, and saw nothing wrong.
pub async fn serves_and_survives_revocations<F, Fut>(
    server: &OidcServer,
    client: &str,
    handle: &TokenHandle,
    get: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = StatusCode>,
{
    for _ in 0..20 {
        assert_eq!(get().await, StatusCode::OK, "{client}");
    }
    assert_eq!(server.revoke(client).await, 1, "{client}");
    for _ in 0..10 {
        assert_eq!(get().await, StatusCode::OK, "{client}");
    }
    handle.revoke().await.unwrap();
    for _ in 0..5 {
        assert_eq!(get().await, StatusCode::OK, "{client}");
    }
    let stats = server.stats().await;
    assert_eq!(
        (stats.logins(client), stats.served(client), stats.refused),
        (3, 35, 1),
        "{client}: {stats:?}"
    );
    // Two tokens destroyed: one by the controls, one at the revocation endpoint.
    assert_eq!(
        (stats.admin_revocations, stats.destroyed),
        (1, 2),
        "{client}: {stats:?}"
    );
    assert!(stats.violations.is_empty(), "{client}: {stats:?}");
    assert!(stats.token_errors.is_empty(), "{client}: {stats:?}");
    let m = handle.metrics();
    assert_eq!(
        (
            m.logins,
            m.replays,
            m.discoveries,
            m.revocations,
            m.auth_failures
        ),
        (3, 1, 1, 1, 0),
        "{client}: {m:?}"
    );
}

/// What the requests of a run got: 200s, and everything else described.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    other: Mutex<Vec<String>>,
}

/// A load run against `server` (started with [`FAULTS`] when `faults`, clean otherwise):
/// [`REQUESTS`] requests sent by `get`, [`WORKERS`] at a time, to a resource serving `client`,
/// whose session `handle` is; every live token of the client destroyed before every
/// [`REVOKE_EVERY`]th; `dpop` when the tokens are DPoP-bound.
///
/// Every request ends 200, the resource sees nothing wrong, and the counts on both sides agree
/// exactly: one token issued at the start and one per token destroyed early (the provider's
/// count, and the layer's logins less the faulted ones); one replay per request the resource
/// refused; one auth failure per fault; for DPoP, one nonce retry per challenge.
pub async fn rides_out_faults<F, Fut>(
    server: &Arc<OidcServer>,
    client: &'static str,
    handle: &TokenHandle,
    get: F,
    faults: bool,
    dpop: bool,
) where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = StatusCode> + Send,
{
    let what = format!("{client} {}", if faults { "under faults" } else { "clean" });
    let next = Arc::new(AtomicU64::new(0));
    // NOTE: no request is numbered while a revocation is on its way to the provider, so that it
    // lands between requests, as the emulation's in-process revocation does. Otherwise the
    // requests served meanwhile number the next [`REVOKE_EVERY`]th before the first revocation
    // lands, and revocations pile up, each destroying the next token as soon as it is issued,
    // before it serves anything: a token refused before any answer accepted it is the loop the
    // replay rule bounds (ARCHITECTURE.md invariant 4), and the request ends with the 401.
    let numbering = Arc::new(tokio::sync::RwLock::new(()));
    let tally = Arc::new(Tally::default());
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (server, next, numbering, tally, get) = (
            Arc::clone(server),
            Arc::clone(&next),
            Arc::clone(&numbering),
            Arc::clone(&tally),
            get.clone(),
        );
        workers.spawn(async move {
            loop {
                let n = {
                    let _numbering = numbering.read().await;
                    next.fetch_add(1, Ordering::Relaxed)
                };
                if n >= REQUESTS {
                    break;
                }
                if n % REVOKE_EVERY == REVOKE_EVERY - 1 {
                    let _revoking = numbering.write().await;
                    server.revoke(client).await;
                }
                match get().await {
                    StatusCode::OK => {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => tally.other.lock().unwrap().push(other.to_string()),
                }
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.unwrap();
    }
    let other = tally.other.lock().unwrap().clone();
    assert_eq!(
        tally.ok.load(Ordering::Relaxed),
        REQUESTS,
        "{what}: {other:?}"
    );

    let stats = server.stats().await;
    let m = handle.metrics();
    assert!(stats.violations.is_empty(), "{what}: {stats:?}");
    assert_eq!(stats.served(client), REQUESTS, "{what}: {stats:?}");
    match faults {
        true => {
            assert!(stats.token_faults > 0, "{what}: no fault met: {stats:?}");
            assert_eq!(stats.random_revocations, RANDOM_REVOCATIONS, "{what}");
        }
        false => assert_eq!(
            (stats.token_faults, stats.random_revocations),
            (0, 0),
            "{what}: {stats:?}"
        ),
    }
    // Every [`REVOKE_EVERY`]th request destroyed the live token, if there was one (there is
    // none while a renewal is on its way after a token destroyed at random), and each token was
    // destroyed once, by whoever came first.
    assert!(
        (1..=REQUESTS / REVOKE_EVERY).contains(&stats.admin_revocations),
        "{what}: {stats:?}"
    );
    let lost = stats.destroyed;
    assert!(
        (stats.admin_revocations..=stats.admin_revocations + stats.random_revocations)
            .contains(&lost),
        "{what}: {stats:?}"
    );
    // One token at the start, and one for each destroyed early: one renewal per dead token.
    assert_eq!(stats.logins(client), 1 + lost, "{what}: {stats:?}");
    // The layer's logins are its attempts: the faulted ones failed, and were sent again.
    assert_eq!(
        (m.logins, m.auth_failures),
        (
            stats.logins(client) + stats.token_faults,
            stats.token_faults
        ),
        "{what}: {m:?} {stats:?}"
    );
    // Every request the resource refused (a token destroyed under it) was replayed, once; a
    // renewal comes only after a refusal.
    assert_eq!(m.replays, stats.refused, "{what}: {m:?} {stats:?}");
    assert!(stats.refused >= lost, "{what}: {stats:?}");
    assert_eq!(m.discoveries, 1, "{what}: {m:?}");
    if dpop {
        // Each nonce challenge, at the token endpoint or the resource, was answered once.
        let challenges = stats.token_errors("use_dpop_nonce") + stats.nonce_challenges;
        assert_eq!(m.dpop_nonce_retries, challenges, "{what}: {m:?} {stats:?}");
        assert_eq!(
            stats.token_errors.keys().collect::<Vec<_>>(),
            ["use_dpop_nonce"],
            "{what}: {stats:?}"
        );
    } else {
        assert!(stats.token_errors.is_empty(), "{what}: {stats:?}");
        assert_eq!(m.dpop_nonce_retries, 0, "{what}: {m:?}");
    }
    eprintln!(
        "{what}: {REQUESTS} served; {} tokens issued, {} token calls faulted, {lost} tokens \
         destroyed early ({} by the controls, {} draws at random), {} requests refused and \
         replayed, DPoP nonce challenges {} at the token endpoint and {} at the resource; layer \
         {m:?}",
        stats.logins(client),
        stats.token_faults,
        stats.admin_revocations,
        stats.random_revocations,
        stats.refused,
        stats.token_errors("use_dpop_nonce"),
        stats.nonce_challenges,
    );
}

/// A run of the demo against the provider (its `--json` report `report`, the provider's `stats`
/// after it) for `client`, clean or under `faults`: `requests` requests, every one served and
/// nothing wrong seen, and the report agreeing with the provider exactly: logins are the tokens
/// issued and the faulted calls; replays, the requests refused; DPoP nonce retries, the
/// challenges at the token endpoint and the resource.
pub fn demo_agrees(
    report: &serde_json::Value,
    stats: &Stats,
    client: &str,
    requests: u64,
    faults: bool,
    what: &str,
) {
    assert_eq!(
        (&report["requests"], &report["ok"], &report["failed"]),
        (&requests.into(), &requests.into(), &0.into()),
        "{what}: {report}"
    );
    assert!(stats.violations.is_empty(), "{what}: {stats:?}");
    assert_eq!(stats.served(client), requests, "{what}: {stats:?}");
    assert_eq!(
        report["logins"],
        stats.logins(client) + stats.token_faults,
        "{what}: {report} {stats:?}"
    );
    assert_eq!(
        report["replays"], stats.refused,
        "{what}: {report} {stats:?}"
    );
    let challenges = stats.token_errors("use_dpop_nonce") + stats.nonce_challenges;
    assert_eq!(report["dpop_nonce_retries"], challenges, "{what}: {report}");
    if faults {
        assert!(stats.token_faults > 0, "{what}: no fault met: {stats:?}");
    }
    eprintln!(
        "{what}: {requests} served, {} tokens issued, {} token calls faulted, {} refused and \
         replayed; report logins {} replays {} dpop_nonce_retries {} p99 {} ms",
        stats.logins(client),
        stats.token_faults,
        stats.refused,
        report["logins"],
        report["replays"],
        report["dpop_nonce_retries"],
        report["p99_ms"]
    );
}
