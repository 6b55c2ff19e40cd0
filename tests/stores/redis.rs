//! The Redis store against a real `redis-server` (started per test on a free loopback port), in
//! real time: Redis ends leases by its own clock.

use std::time::{Duration, SystemTime};

use http::StatusCode;
use tower::Layer;
use tower_token_auth::store::{RedisStore, StoredSession, TokenStore};
use tower_token_auth::{AuthLayer, Clock, ErrorKind};

use tower_token_auth_emulation::Api;

use crate::leases::{assert_one_session, three_layers_with_a_1_ms_lease};
use crate::sessions::{
    a_401_costs_the_fleet_one_refresh, all_at_once, process, send, AUTH_DELAY, KEY,
};
use crate::support::redis_server::RedisServer;
use crate::support::{stored_tokens, AuthServer, TestProvider, MARK};

fn session(n: u32) -> StoredSession {
    let expires = SystemTime::now() + Duration::from_secs(3600);
    StoredSession::new(format!("at-{n}-{MARK}"), expires)
        .with_refresh_token(format!("rt-{n}-{MARK}"), None)
}

#[tokio::test]
async fn sessions_round_trip_by_key_and_expire_with_their_tokens() {
    let redis = RedisServer::start();
    let store = RedisStore::open(&redis.url(0)).unwrap();
    assert_eq!(store.load(KEY).await.unwrap(), None);
    let alice = session(1);
    store.save(KEY, &alice).await.unwrap();
    store.save("test/bob", &session(2)).await.unwrap();
    assert_eq!(store.load(KEY).await.unwrap(), Some(session_like(&alice)));
    let bob = store.load("test/bob").await.unwrap().unwrap();
    assert_eq!(stored_tokens(&bob).0, format!("at-2-{MARK}"));

    // Another database, another prefix: other sessions.
    let other_db = RedisStore::open(&redis.url(1)).unwrap();
    assert_eq!(other_db.load(KEY).await.unwrap(), None);
    let other_prefix = RedisStore::open(&redis.url(0)).unwrap().prefix("other:");
    assert_eq!(other_prefix.load(KEY).await.unwrap(), None);

    // An open-ended refresh token keeps the entry; a session without one expires with its
    // access token.
    let entry = format!("tower-token-auth:session:{KEY}");
    assert_eq!(redis.command(&format!("TTL {entry}")), ":-1\r\n");
    let expires = SystemTime::now() + Duration::from_secs(100);
    store
        .save(KEY, &StoredSession::new("short", expires))
        .await
        .unwrap();
    let ttl = redis.command(&format!("TTL {entry}"));
    let secs: i64 = ttl.trim_start_matches(':').trim().parse().unwrap();
    assert!((95..=100).contains(&secs), "{ttl}");
}

/// `session`, as a load gives it back (expiries in whole milliseconds).
fn session_like(session: &StoredSession) -> StoredSession {
    StoredSession::from_json(KEY, &session.to_json(KEY)).unwrap()
}

#[tokio::test]
async fn leases_are_exclusive_lapse_by_redis_time_and_only_their_holder_releases_them() {
    let redis = RedisServer::start();
    let store = RedisStore::open(&redis.url(0)).unwrap();
    let ttl = Duration::from_secs(60);
    let held = store.lease(KEY, ttl).await.unwrap().expect("a free lease");
    assert_eq!(store.lease(KEY, ttl).await.unwrap(), None);
    // Another key has its own lease.
    assert!(store.lease("test/bob", ttl).await.unwrap().is_some());
    // The value names the holder and its process.
    let value = redis.command(&format!("GET tower-token-auth:lease:{KEY}"));
    let pid = std::process::id().to_string();
    assert!(value.contains(&format!("{:016x}:{pid}", held)), "{value}");

    // Only the holder releases.
    store.release(KEY, held ^ 1).await.unwrap();
    assert_eq!(store.lease(KEY, ttl).await.unwrap(), None);
    store.release(KEY, held).await.unwrap();
    let second = store.lease(KEY, Duration::from_millis(200)).await.unwrap();
    let second = second.expect("released, so free");

    // A lease nobody releases lapses; its late release leaves the next holder's lease alone.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let third = store.lease(KEY, ttl).await.unwrap().expect("lapsed");
    store.release(KEY, second).await.unwrap();
    assert_eq!(store.lease(KEY, ttl).await.unwrap(), None);
    store.release(KEY, third).await.unwrap();
}

#[tokio::test]
async fn a_lease_is_extended_only_by_its_live_holder_and_capped() {
    let redis = RedisServer::start();
    let store = RedisStore::open(&redis.url(0)).unwrap();
    let pttl = |key: &str| -> i64 {
        let answer = redis.command(&format!("PTTL tower-token-auth:lease:{key}"));
        answer.trim_start_matches(':').trim().parse().unwrap()
    };
    let held = store.lease(KEY, Duration::from_millis(300)).await.unwrap();
    let held = held.expect("a free lease");
    let other = held ^ 1;
    assert!(!store
        .extend(KEY, other, Duration::from_secs(60))
        .await
        .unwrap());
    assert!(store
        .extend(KEY, held, Duration::from_secs(60))
        .await
        .unwrap());
    assert!(pttl(KEY) > 50_000, "{}", pttl(KEY));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        store.lease(KEY, Duration::from_secs(1)).await.unwrap(),
        None
    );
    // A TTL beyond Redis's range is capped at an hour.
    assert!(store.extend(KEY, held, Duration::MAX).await.unwrap());
    assert!(
        (3_500_000..=3_600_000).contains(&pttl(KEY)),
        "{}",
        pttl(KEY)
    );

    // A lease that lapsed is never revived, even before anyone takes it.
    let short = store.lease("test/bob", Duration::from_millis(200)).await;
    let short = short.unwrap().expect("a free lease");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!store
        .extend("test/bob", short, Duration::from_secs(60))
        .await
        .unwrap());
    assert!(store
        .lease("test/bob", Duration::from_secs(1))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_401_seen_by_one_process_costs_the_fleet_one_refresh() {
    let redis = RedisServer::start();
    let store = RedisStore::open(&redis.url(0)).unwrap();
    a_401_costs_the_fleet_one_refresh(store, Clock::default()).await;
}

#[tokio::test]
async fn processes_on_separate_connections_share_one_login() {
    let redis = RedisServer::start();
    let server = AuthServer::new(3600, AUTH_DELAY);
    // One store (and connection) per process, as separate processes have.
    let processes: Vec<_> = (0..3)
        .map(|_| {
            let store = RedisStore::open(&redis.url(0)).unwrap();
            process(&server, Clock::default(), store)
        })
        .collect();
    let services: Vec<_> = processes.iter().map(|(_, svc)| svc).collect();
    all_at_once(&services, 30).await;
    assert_eq!((server.logins(), server.refreshes()), (1, 0));
    let adoptions: u64 = processes
        .iter()
        .map(|(l, _)| l.handle().metrics().adoptions)
        .sum();
    assert_eq!(adoptions, 2);
    assert!(processes
        .iter()
        .all(|(l, _)| l.handle().metrics().store_failures == 0));
}

#[tokio::test]
async fn a_corrupt_entry_is_a_typed_error_then_a_fresh_login() {
    let redis = RedisServer::start();
    let store = RedisStore::open(&redis.url(0)).unwrap();
    let entry = format!("tower-token-auth:session:{KEY}");
    assert_eq!(
        redis.command(&format!("SET {entry} not-json-{MARK}")),
        "+OK\r\n"
    );
    let err = store.load(KEY).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store);
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(MARK), "{shown}");
    assert!(shown.contains(&entry), "{shown}");

    let server = AuthServer::new(3600, AUTH_DELAY);
    let (layer, svc) = process(&server, Clock::default(), store.clone());
    assert_eq!(send(&svc).await, StatusCode::OK);
    assert_eq!((server.logins(), server.refreshes()), (1, 0));
    let m = layer.handle().metrics();
    assert_eq!((m.store_failures, m.adoptions), (1, 0));
    let stored = store.load(KEY).await.unwrap().unwrap();
    assert_eq!(stored_tokens(&stored).0, format!("at-1-{MARK}"));

    // A key of another type (a list) is an error of the store, never a panic.
    redis.command(&format!("DEL {entry}"));
    redis.command(&format!("RPUSH {entry} x"));
    assert_eq!(store.load(KEY).await.unwrap_err().kind(), ErrorKind::Store);
}

#[tokio::test]
async fn a_held_lease_holds_the_others_back_until_it_lapses() {
    let redis = RedisServer::start();
    let store = RedisStore::open(&redis.url(0)).unwrap();
    let ttl = Duration::from_millis(1500);
    // A "crashed" holder: taken, never released.
    assert!(store.lease(KEY, ttl).await.unwrap().is_some());
    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = AuthLayer::builder(TestProvider::new())
        .store(store.clone(), KEY)
        .lease_ttl(ttl)
        .build(server.transport());
    let svc = layer.layer(server.upstream());
    let started = tokio::time::Instant::now();
    all_at_once(&[&svc], 10).await;
    assert_eq!((server.logins(), server.refreshes()), (1, 0));
    // Nobody logged in while Redis held the lease (its clock and ours may differ by a little).
    let waited = server.call_times()[0] - started;
    assert!(waited >= ttl - Duration::from_millis(100), "{waited:?}");
    assert_eq!(layer.handle().metrics().store_failures, 0);
    assert!(store.lease(KEY, ttl).await.unwrap().is_some(), "released");
}

#[tokio::test]
async fn an_unreachable_or_restarted_redis_is_counted_and_requests_carry_on() {
    let mut redis = RedisServer::start();
    let store = RedisStore::open(&redis.url(0)).unwrap();
    let server = AuthServer::new(3600, AUTH_DELAY);
    let (layer, svc) = process(&server, Clock::default(), store.clone());
    assert_eq!(send(&svc).await, StatusCode::OK);
    assert_eq!(layer.handle().metrics().store_failures, 0);

    // Redis goes away: the next renewal goes on without it.
    redis.stop();
    server.revoke_access_tokens();
    assert_eq!(send(&svc).await, StatusCode::OK);
    assert_eq!((server.logins(), server.refreshes()), (1, 1));
    let failures = layer.handle().metrics().store_failures;
    assert!(failures > 0);

    // Back again: the store reconnects and holds the newest session.
    redis.restart();
    server.revoke_access_tokens();
    assert_eq!(send(&svc).await, StatusCode::OK);
    assert_eq!((server.logins(), server.refreshes()), (1, 2));
    assert_eq!(layer.handle().metrics().store_failures, failures);
    let stored = store.load(KEY).await.unwrap().unwrap();
    assert_eq!(stored_tokens(&stored).0, format!("at-3-{MARK}"));
}

/// Three layers on one Redis key with a lease TTL of 1 ms, over real HTTP against the Tradecloud
/// emulation (single-use refresh tokens), half the auth calls slow: one login, no refresh token
/// presented twice, no failed request (see `leases.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_shorter_than_a_renewal_never_costs_a_refresh_token_reuse() {
    let redis = RedisServer::start();
    let store = RedisStore::open(&redis.url(0)).unwrap();
    let api = Api::Tradecloud;
    let (stats, outcomes, logins) = three_layers_with_a_1_ms_lease(api, store).await;
    assert_one_session(api, &stats, &outcomes, logins);
}
