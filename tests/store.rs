//! Token stores: restarts, processes sharing one session, unusable entries, crashed lease
//! holders, and the file store's files. Layers sharing a store stand for processes; all of them
//! share one [`Clock`] (one wall clock, as processes on one host do) under paused time.

#[cfg(feature = "redis")]
#[path = "store/redis.rs"]
mod redis;
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use http::StatusCode;
use tower::{Layer, ServiceExt};
use tower_token_auth::store::{FileStore, MemoryStore, StoredSession, TokenStore};
use tower_token_auth::{AuthLayer, AuthService, Clock, ErrorKind};

use support::{bearer, get, AuthServer, TestProvider, Upstream, MARK};

type Service = AuthService<Upstream, TestProvider>;

const AUTH_DELAY: Duration = Duration::from_millis(50);
const KEY: &str = "test/alice";

/// A directory under the system's temporary one, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tower-token-auth-{name}-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A "process": a layer of its own on `store`, under `KEY`.
fn process(
    server: &AuthServer,
    clock: Clock,
    store: impl TokenStore + 'static,
) -> (AuthLayer<TestProvider>, Service) {
    let layer = AuthLayer::builder(TestProvider::new())
        .clock(clock)
        .store(store, KEY)
        .build(server.transport());
    let service = layer.layer(server.upstream());
    (layer, service)
}

async fn send(svc: &Service) -> StatusCode {
    svc.clone()
        .oneshot(get())
        .await
        .expect("a response")
        .status()
}

/// Sends `n` requests on each service at once; all must succeed.
async fn all_at_once(services: &[&Service], n: usize) {
    let tasks: Vec<_> = services
        .iter()
        .flat_map(|svc| (0..n).map(|_| tokio::spawn((*svc).clone().oneshot(get()))))
        .collect();
    for task in tasks {
        let response = task.await.expect("request task").expect("a response");
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[tokio::test(start_paused = true)]
async fn a_restart_within_the_token_lifetime_logs_in_zero_times() {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let clock = Clock::tokio();
    let dir = TempDir::new("restart");
    {
        let (a, svc) = process(&server, clock, FileStore::new(dir.path()).clock(clock));
        assert_eq!(send(&svc).await, StatusCode::OK);
        assert_eq!((a.metrics().logins, a.metrics().adoptions), (1, 0));
    }
    tokio::time::advance(Duration::from_secs(1800)).await;

    // The restarted process: a new layer on the same directory and key.
    let (b, svc) = process(&server, clock, FileStore::new(dir.path()).clock(clock));
    all_at_once(&[&svc], 20).await;
    assert_eq!((server.logins(), server.refreshes()), (1, 0));
    let m = b.metrics();
    assert_eq!(
        (m.logins, m.refreshes, m.adoptions, m.store_failures),
        (0, 0, 1, 0)
    );
    assert!(server.upstream_headers().iter().all(|h| *h == bearer(1)));
}

#[tokio::test(start_paused = true)]
async fn a_restart_after_the_access_token_expired_refreshes_with_the_stored_refresh_token() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let clock = Clock::tokio();
    let dir = TempDir::new("expired");
    {
        let (_, svc) = process(&server, clock, FileStore::new(dir.path()).clock(clock));
        assert_eq!(send(&svc).await, StatusCode::OK);
    }
    tokio::time::advance(Duration::from_secs(120)).await;
    let store = FileStore::new(dir.path()).clock(clock);
    let (b, svc) = process(&server, clock, store.clone());
    assert_eq!(send(&svc).await, StatusCode::OK);
    assert_eq!((server.logins(), server.refreshes()), (1, 1));
    assert_eq!(server.reused_refresh_tokens(), 0);
    assert_eq!((b.metrics().logins, b.metrics().refreshes), (0, 1));
    // The rotated pair replaced the stored one.
    let stored = store.load(KEY).await.unwrap().unwrap();
    assert_eq!(
        stored.refresh_token().unwrap().expose(),
        format!("rt-2-{MARK}")
    );
    assert_eq!(stored.version(), 2);
}

/// Process A sees the 401 and refreshes; process B, on its own 401, adopts A's session instead
/// of refreshing (its refresh token is spent).
async fn a_401_costs_the_fleet_one_refresh(store: impl TokenStore + Clone + 'static, clock: Clock) {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let (a, svc_a) = process(&server, clock, store.clone());
    let (b, svc_b) = process(&server, clock, store);
    assert_eq!(send(&svc_a).await, StatusCode::OK);
    assert_eq!(send(&svc_b).await, StatusCode::OK);
    assert_eq!((server.logins(), b.metrics().adoptions), (1, 1));

    server.revoke_access_tokens();
    assert_eq!(send(&svc_a).await, StatusCode::OK);
    assert_eq!(server.refreshes(), 1);
    assert_eq!(send(&svc_b).await, StatusCode::OK);

    assert_eq!((server.logins(), server.refreshes()), (1, 1));
    assert_eq!(server.reused_refresh_tokens(), 0);
    let (ma, mb) = (a.metrics(), b.metrics());
    assert_eq!(
        (ma.logins, ma.refreshes, ma.adoptions, ma.replays),
        (1, 1, 0, 1)
    );
    assert_eq!(
        (mb.logins, mb.refreshes, mb.adoptions, mb.replays),
        (0, 0, 2, 1)
    );
    assert_eq!(ma.store_failures + mb.store_failures, 0);
    assert_eq!(server.upstream_headers().last().unwrap(), &bearer(2));
}

#[tokio::test(start_paused = true)]
async fn a_401_seen_by_one_process_costs_the_fleet_one_refresh_memory_store() {
    let clock = Clock::tokio();
    a_401_costs_the_fleet_one_refresh(MemoryStore::new().clock(clock), clock).await;
}

#[tokio::test(start_paused = true)]
async fn a_401_seen_by_one_process_costs_the_fleet_one_refresh_file_store() {
    let clock = Clock::tokio();
    let dir = TempDir::new("fleet-401");
    a_401_costs_the_fleet_one_refresh(FileStore::new(dir.path()).clock(clock), clock).await;
}

/// Three processes whose token expires at once, with 30 requests each: one refresh in all.
async fn processes_renewing_at_once_share_one_refresh(store: impl TokenStore + Clone + 'static) {
    let clock = Clock::tokio();
    let server = AuthServer::new(60, AUTH_DELAY);
    let processes: Vec<_> = (0..3)
        .map(|_| process(&server, clock, store.clone()))
        .collect();
    let services: Vec<_> = processes.iter().map(|(_, svc)| svc).collect();
    all_at_once(&services, 30).await;
    assert_eq!((server.logins(), server.refreshes()), (1, 0));

    tokio::time::advance(Duration::from_secs(61)).await;
    all_at_once(&services, 30).await;
    assert_eq!((server.logins(), server.refreshes()), (1, 1));
    assert_eq!(server.reused_refresh_tokens(), 0);

    // Proactive renewals (30 s margin) coincide too: still one refresh for the fleet.
    tokio::time::advance(Duration::from_secs(50)).await;
    all_at_once(&services, 30).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!((server.logins(), server.refreshes()), (1, 2));
    // Past the second token's expiry: every process sends the third.
    tokio::time::advance(Duration::from_secs(10)).await;
    all_at_once(&services, 30).await;
    assert_eq!((server.logins(), server.refreshes()), (1, 2));
    assert_eq!(server.upstream_headers().last().unwrap(), &bearer(3));
    assert_eq!(server.reused_refresh_tokens(), 0);
    let adoptions: u64 = processes.iter().map(|(l, _)| l.metrics().adoptions).sum();
    assert_eq!(adoptions, 2 * 3);
    assert!(processes
        .iter()
        .all(|(l, _)| l.metrics().store_failures == 0));
}

#[tokio::test(start_paused = true)]
async fn processes_renewing_at_once_share_one_refresh_memory_store() {
    processes_renewing_at_once_share_one_refresh(MemoryStore::new().clock(Clock::tokio())).await;
}

#[tokio::test(start_paused = true)]
async fn processes_renewing_at_once_share_one_refresh_file_store() {
    let dir = TempDir::new("fleet-expiry");
    processes_renewing_at_once_share_one_refresh(FileStore::new(dir.path()).clock(Clock::tokio()))
        .await;
}

#[tokio::test(start_paused = true)]
async fn unusable_entries_are_typed_errors_then_a_fresh_login_never_a_reuse() {
    let far = SystemTime::now() + Duration::from_secs(86_400);
    let foreign = StoredSession::new(format!("at-foreign-{MARK}"), far)
        .with_refresh_token(format!("rt-foreign-{MARK}"), None);
    let good = String::from_utf8(foreign.to_json(KEY)).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\x00\x01 not json at all".to_vec()),
        (
            "foreign format",
            format!(r#"{{"format":"other","access_token":"at-x-{MARK}"}}"#).into_bytes(),
        ),
        ("another key's entry", foreign.to_json("test/bob")),
        ("truncated", good.as_bytes()[..good.len() / 2].to_vec()),
        (
            "unsendable token",
            StoredSession::new(format!("at\n{MARK}"), far).to_json(KEY),
        ),
    ];
    for (case, content) in cases {
        let server = AuthServer::new(3600, AUTH_DELAY);
        let clock = Clock::tokio();
        let dir = TempDir::new("corrupt");
        let store = FileStore::new(dir.path()).clock(clock);
        std::fs::create_dir_all(dir.path()).unwrap();
        std::fs::write(store.path(KEY), &content).unwrap();
        if case != "unsendable token" {
            let err = store.load(KEY).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Store, "{case}");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(MARK), "{case}: {shown}");
        }

        let (layer, svc) = process(&server, clock, store.clone());
        assert_eq!(send(&svc).await, StatusCode::OK, "{case}");
        assert_eq!((server.logins(), server.refreshes()), (1, 0), "{case}");
        let m = layer.metrics();
        assert_eq!((m.store_failures, m.adoptions), (1, 0), "{case}");
        assert_eq!(server.upstream_headers(), [bearer(1)], "{case}");
        // The login replaced the entry.
        let stored = store.load(KEY).await.unwrap().unwrap();
        assert_eq!(
            stored.access_token().expose(),
            format!("at-1-{MARK}"),
            "{case}"
        );
    }
}

/// A holder that took the lease and crashed (never released it) holds the others back until its
/// lease lapses, no longer.
async fn a_crashed_lease_holder_delays_the_others_until_its_lease_lapses(
    store: impl TokenStore + Clone + 'static,
    clock: Clock,
) {
    let ttl = Duration::from_secs(5);
    let crashed = store.lease(KEY, ttl).await.unwrap();
    assert!(crashed.is_some());
    let server = AuthServer::new(3600, AUTH_DELAY);
    let (layer, svc) = process(&server, clock, store.clone());
    let started = tokio::time::Instant::now();
    all_at_once(&[&svc], 10).await;
    assert_eq!((server.logins(), server.refreshes()), (1, 0));
    let waited = server.call_times()[0] - started;
    assert!(waited >= ttl, "{waited:?}");
    assert!(waited < ttl + Duration::from_secs(1), "{waited:?}");
    assert_eq!(layer.metrics().store_failures, 0);
    // The layer released its own lease.
    assert!(store.lease(KEY, ttl).await.unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_crashed_lease_holder_delays_the_others_until_its_lease_lapses_memory_store() {
    let clock = Clock::tokio();
    let store = MemoryStore::new().clock(clock);
    a_crashed_lease_holder_delays_the_others_until_its_lease_lapses(store, clock).await;
}

#[tokio::test(start_paused = true)]
async fn a_crashed_lease_holder_delays_the_others_until_its_lease_lapses_file_store() {
    let clock = Clock::tokio();
    let dir = TempDir::new("crashed");
    let store = FileStore::new(dir.path()).clock(clock);
    a_crashed_lease_holder_delays_the_others_until_its_lease_lapses(store, clock).await;
}

/// Waiting for another holder's lease, a layer re-reads the store on every poll; an unusable
/// entry is reported once while it waits, and once more when it renews.
#[tokio::test(start_paused = true)]
async fn an_unusable_entry_is_reported_once_per_wait_not_per_poll() {
    let clock = Clock::tokio();
    let dir = TempDir::new("corrupt-wait");
    let store = FileStore::new(dir.path()).clock(clock);
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(store.path(KEY), b"not json").unwrap();
    let ttl = Duration::from_secs(5);
    assert!(store.lease(KEY, ttl).await.unwrap().is_some());
    let server = AuthServer::new(3600, AUTH_DELAY);
    let (layer, svc) = process(&server, clock, store);
    assert_eq!(send(&svc).await, StatusCode::OK);
    assert_eq!((server.logins(), server.refreshes()), (1, 0));
    // About twenty polls went by.
    assert_eq!(layer.metrics().store_failures, 2);
}

#[tokio::test(start_paused = true)]
async fn a_failing_store_is_counted_and_the_layer_carries_on_in_memory() {
    // A directory that cannot be created: a file stands where it should be.
    let dir = TempDir::new("failing");
    std::fs::write(dir.path(), b"not a directory").unwrap();
    let server = AuthServer::new(60, AUTH_DELAY);
    let clock = Clock::tokio();
    let (layer, svc) = process(
        &server,
        clock,
        FileStore::new(dir.path().join("sub")).clock(clock),
    );
    assert_eq!(send(&svc).await, StatusCode::OK);
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(send(&svc).await, StatusCode::OK);
    assert_eq!((server.logins(), server.refreshes()), (1, 1));
    let failures = layer.metrics().store_failures;
    // Per renewal: the lease fails (the attempt goes on without it), then load and save.
    assert_eq!(failures, 2 * 3);
    let _ = std::fs::remove_file(dir.path());
}

/// Files are private to their owner and replaced whole: concurrent readers never see part of an
/// entry, and no temporary file is left behind.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_entries_are_private_and_replaced_whole() {
    use std::os::unix::fs::PermissionsExt;

    let dir = TempDir::new("files");
    let store = FileStore::new(dir.path());
    let expires = SystemTime::now() + Duration::from_secs(3600);
    // Large enough that a torn write would show.
    let session = move |n: u32| {
        StoredSession::new(format!("at-{n}-{}", "x".repeat(256 * 1024)), expires)
            .with_refresh_token(format!("rt-{n}"), None)
    };
    store.save(KEY, &session(0)).await.unwrap();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store.path(KEY)), 0o600);
    assert_eq!(mode(dir.path()), 0o700);
    let lease = store
        .lease(KEY, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let lock = store.path(KEY).with_extension("lock");
    assert_eq!(mode(&lock), 0o600);
    store.release(KEY, lease).await.unwrap();
    assert!(!lock.exists());

    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for n in 1..=100 {
                store.save(KEY, &session(n)).await.unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() {
        let stored = store.load(KEY).await.unwrap().unwrap();
        let access = stored.access_token().expose();
        let n = access.split('-').nth(1).unwrap();
        assert_eq!(stored.refresh_token().unwrap().expose(), format!("rt-{n}"));
        reads += 1;
    }
    writer.await.unwrap();
    assert!(reads > 0);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [store.path(KEY).file_name().unwrap()]);
    assert_eq!(mode(&store.path(KEY)), 0o600);
}
