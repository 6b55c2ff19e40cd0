//! Token stores: restarts, processes sharing one session, unusable entries, crashed lease
//! holders, and the file store's files. Layers sharing a store stand for processes; all of them
//! share one [`Clock`] (one wall clock, as processes on one host do) under paused time.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use http::StatusCode;
use tower::{Layer, ServiceExt};
use tower_token_auth::store::{FileStore, MemoryStore, StoredSession, TokenStore};
use tower_token_auth::{AuthError, AuthLayer, AuthService, Clock, ErrorKind};

use crate::support::{bearer, get, stored_tokens, AuthServer, TestProvider, Upstream, MARK};

type Service = AuthService<Upstream>;

pub(crate) const AUTH_DELAY: Duration = Duration::from_millis(50);
pub(crate) const KEY: &str = "test/alice";

/// A directory under the system's temporary one, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tower-token-auth-{name}-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        Self(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A "process": a layer of its own on `store`, under `KEY`.
pub(crate) fn process(
    server: &AuthServer,
    clock: Clock,
    store: impl TokenStore + 'static,
) -> (AuthLayer, Service) {
    let layer = AuthLayer::builder(TestProvider::new())
        .clock(clock)
        .store(store, KEY)
        .build(server.transport());
    let service = layer.layer(server.upstream());
    (layer, service)
}

pub(crate) async fn send(svc: &Service) -> StatusCode {
    svc.clone()
        .oneshot(get())
        .await
        .expect("a response")
        .status()
}

/// Sends `n` requests on each service at once; all must succeed.
pub(crate) async fn all_at_once(services: &[&Service], n: usize) {
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
        assert_eq!(
            (a.handle().metrics().logins, a.handle().metrics().adoptions),
            (1, 0)
        );
    }
    tokio::time::advance(Duration::from_secs(1800)).await;

    // The restarted process: a new layer on the same directory and key.
    let (b, svc) = process(&server, clock, FileStore::new(dir.path()).clock(clock));
    all_at_once(&[&svc], 20).await;
    assert_eq!((server.logins(), server.refreshes()), (1, 0));
    let m = b.handle().metrics();
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
    assert_eq!(
        (b.handle().metrics().logins, b.handle().metrics().refreshes),
        (0, 1)
    );
    // The rotated pair replaced the stored one.
    let stored = store.load(KEY).await.unwrap().unwrap();
    assert_eq!(stored_tokens(&stored).1.unwrap(), format!("rt-2-{MARK}"));
    let json: serde_json::Value = serde_json::from_slice(&stored.to_json(KEY)).unwrap();
    assert_eq!(
        json["version"], 2,
        "two saves: the login's and the refresh's"
    );
}

/// Process A sees the 401 and refreshes; process B, on its own 401, adopts A's session instead
/// of refreshing (its refresh token is spent).
pub(crate) async fn a_401_costs_the_fleet_one_refresh(
    store: impl TokenStore + Clone + 'static,
    clock: Clock,
) {
    let server = AuthServer::new(3600, AUTH_DELAY);
    let (a, svc_a) = process(&server, clock, store.clone());
    let (b, svc_b) = process(&server, clock, store);
    assert_eq!(send(&svc_a).await, StatusCode::OK);
    assert_eq!(send(&svc_b).await, StatusCode::OK);
    assert_eq!((server.logins(), b.handle().metrics().adoptions), (1, 1));

    server.revoke_access_tokens();
    assert_eq!(send(&svc_a).await, StatusCode::OK);
    assert_eq!(server.refreshes(), 1);
    assert_eq!(send(&svc_b).await, StatusCode::OK);

    assert_eq!((server.logins(), server.refreshes()), (1, 1));
    assert_eq!(server.reused_refresh_tokens(), 0);
    let (ma, mb) = (a.handle().metrics(), b.handle().metrics());
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
    a_401_costs_the_fleet_one_refresh(MemoryStore::default().clock(clock), clock).await;
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

    // Renewals ahead of expiry (30 s margin) coincide too: still one refresh for the fleet.
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
    let adoptions: u64 = processes
        .iter()
        .map(|(l, _)| l.handle().metrics().adoptions)
        .sum();
    assert_eq!(adoptions, 2 * 3);
    assert!(processes
        .iter()
        .all(|(l, _)| l.handle().metrics().store_failures == 0));
}

#[tokio::test(start_paused = true)]
async fn processes_renewing_at_once_share_one_refresh_memory_store() {
    processes_renewing_at_once_share_one_refresh(MemoryStore::default().clock(Clock::tokio()))
        .await;
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
        let m = layer.handle().metrics();
        assert_eq!((m.store_failures, m.adoptions), (1, 0), "{case}");
        assert_eq!(server.upstream_headers(), [bearer(1)], "{case}");
        // The login replaced the entry.
        let stored = store.load(KEY).await.unwrap().unwrap();
        assert_eq!(stored_tokens(&stored).0, format!("at-1-{MARK}"), "{case}");
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
    assert_eq!(layer.handle().metrics().store_failures, 0);
    // The layer released its own lease.
    assert!(store.lease(KEY, ttl).await.unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_crashed_lease_holder_delays_the_others_until_its_lease_lapses_memory_store() {
    let clock = Clock::tokio();
    let store = MemoryStore::default().clock(clock);
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
    assert_eq!(layer.handle().metrics().store_failures, 2);
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
    let failures = layer.handle().metrics().store_failures;
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
        let access = stored_tokens(&stored).0;
        let n = access.split('-').nth(1).unwrap();
        assert_eq!(stored_tokens(&stored).1.unwrap(), format!("rt-{n}"));
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

/// `timeout(Duration::MAX)` makes the default lease TTL (twice the timeout) `Duration::MAX` too;
/// so does an explicit `lease_ttl(Duration::MAX)`. Neither may overflow a clock in the store: one
/// login, no store failure, the lease released.
async fn a_timeout_or_lease_ttl_of_duration_max_costs_one_login<S: TokenStore + 'static>(
    store: impl Fn() -> S,
) {
    let clock = Clock::tokio();
    let cases = [
        (Duration::MAX, None),
        (Duration::from_secs(10), Some(Duration::MAX)),
    ];
    for (timeout, lease_ttl) in cases {
        let server = AuthServer::new(3600, AUTH_DELAY);
        let store = std::sync::Arc::new(store());
        let mut builder = AuthLayer::builder(TestProvider::new())
            .clock(clock)
            .timeout(timeout)
            .store(store.clone(), KEY);
        if let Some(ttl) = lease_ttl {
            builder = builder.lease_ttl(ttl);
        }
        let layer = builder.build(server.transport());
        let svc = layer.layer(server.upstream());
        assert_eq!(
            send(&svc).await,
            StatusCode::OK,
            "{timeout:?} {lease_ttl:?}"
        );
        assert_eq!(
            send(&svc).await,
            StatusCode::OK,
            "{timeout:?} {lease_ttl:?}"
        );
        let m = layer.handle().metrics();
        assert_eq!(
            (server.logins(), m.logins, m.store_failures),
            (1, 1, 0),
            "{timeout:?} {lease_ttl:?}"
        );
        assert!(store.lease(KEY, Duration::MAX).await.unwrap().is_some());
    }
}

#[tokio::test(start_paused = true)]
async fn a_timeout_or_lease_ttl_of_duration_max_costs_one_login_memory_store() {
    a_timeout_or_lease_ttl_of_duration_max_costs_one_login(|| {
        MemoryStore::default().clock(Clock::tokio())
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_timeout_or_lease_ttl_of_duration_max_costs_one_login_file_store() {
    let dirs: std::sync::Mutex<Vec<TempDir>> = Default::default();
    a_timeout_or_lease_ttl_of_duration_max_costs_one_login(|| {
        let dir = TempDir::new("max-ttl");
        let store = FileStore::new(dir.path()).clock(Clock::tokio());
        dirs.lock().unwrap().push(dir);
        store
    })
    .await;
}

/// A layer whose lease (1 s) is far shorter than its auth calls (3 s each): the lease is kept
/// while they run, so another process waits and adopts instead of logging in or refreshing too.
async fn a_lease_is_kept_while_a_slow_renewal_runs(store: impl TokenStore + Clone + 'static) {
    let clock = Clock::tokio();
    let server = AuthServer::new(60, Duration::from_secs(3));
    let process = || {
        let layer = AuthLayer::builder(TestProvider::new())
            .clock(clock)
            .store(store.clone(), KEY)
            .lease_ttl(Duration::from_secs(1))
            .build(server.transport());
        let svc = layer.layer(server.upstream());
        (layer, svc)
    };
    let ((a, svc_a), (b, svc_b)) = (process(), process());
    let first = tokio::spawn({
        let svc_a = svc_a.clone();
        async move { send(&svc_a).await }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(send(&svc_b).await, StatusCode::OK);
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    assert_eq!((server.logins(), server.refreshes()), (1, 0));

    // Both tokens expire; A's refresh takes 3 s, and B needs a token 1.5 s into it.
    tokio::time::advance(Duration::from_secs(61)).await;
    let renewal = tokio::spawn(async move { send(&svc_a).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(send(&svc_b).await, StatusCode::OK);
    assert_eq!(renewal.await.unwrap(), StatusCode::OK);
    assert_eq!((server.logins(), server.refreshes()), (1, 1));
    assert_eq!(server.reused_refresh_tokens(), 0);
    let (ma, mb) = (a.handle().metrics(), b.handle().metrics());
    assert_eq!((ma.logins, ma.refreshes, ma.adoptions), (1, 1, 0));
    assert_eq!((mb.logins, mb.refreshes, mb.adoptions), (0, 0, 2));
    assert_eq!(ma.store_failures + mb.store_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn a_lease_is_kept_while_a_slow_renewal_runs_memory_store() {
    a_lease_is_kept_while_a_slow_renewal_runs(MemoryStore::default().clock(Clock::tokio())).await;
}

#[tokio::test(start_paused = true)]
async fn a_lease_is_kept_while_a_slow_renewal_runs_file_store() {
    let dir = TempDir::new("slow-renewal");
    a_lease_is_kept_while_a_slow_renewal_runs(FileStore::new(dir.path()).clock(Clock::tokio()))
        .await;
}

/// A store whose loads, while `stall` is set, answer that long after they read: a process
/// paused, or a store slower than the lease TTL.
#[derive(Clone)]
struct StalledReads<S> {
    inner: S,
    stall: std::sync::Arc<std::sync::Mutex<Option<Duration>>>,
}

impl<S: TokenStore> TokenStore for StalledReads<S> {
    async fn load(&self, key: &str) -> Result<Option<StoredSession>, AuthError> {
        let stall = *self.stall.lock().unwrap();
        let read = self.inner.load(key).await;
        if let Some(stall) = stall {
            tokio::time::sleep(stall).await;
        }
        read
    }

    async fn save(&self, key: &str, session: &StoredSession) -> Result<(), AuthError> {
        self.inner.save(key, session).await
    }

    async fn lease(&self, key: &str, ttl: Duration) -> Result<Option<u64>, AuthError> {
        self.inner.lease(key, ttl).await
    }

    async fn extend(&self, key: &str, lease: u64, ttl: Duration) -> Result<bool, AuthError> {
        self.inner.extend(key, lease, ttl).await
    }

    async fn release(&self, key: &str, lease: u64) -> Result<(), AuthError> {
        self.inner.release(key, lease).await
    }
}

/// A's read of the stored session comes back 2 s late, after its 1 s lease lapsed and B renewed
/// from that very session: A must not present the refresh token it read (B spent it), but take
/// the lease again, re-read and adopt B's session.
async fn a_holder_that_lost_its_lease_before_the_auth_call_presents_nothing(
    store: impl TokenStore + Clone + 'static,
) {
    let clock = Clock::tokio();
    let server = AuthServer::new(60, AUTH_DELAY);
    let stall = std::sync::Arc::new(std::sync::Mutex::new(None));
    let stalled = StalledReads {
        inner: store.clone(),
        stall: stall.clone(),
    };
    let a = AuthLayer::builder(TestProvider::new())
        .clock(clock)
        .store(stalled, KEY)
        .lease_ttl(Duration::from_secs(1))
        .build(server.transport());
    let svc_a = a.layer(server.upstream());
    let b = AuthLayer::builder(TestProvider::new())
        .clock(clock)
        .store(store.clone(), KEY)
        .lease_ttl(Duration::from_secs(1))
        .build(server.transport());
    let svc_b = b.layer(server.upstream());
    assert_eq!(send(&svc_a).await, StatusCode::OK);
    assert_eq!(send(&svc_b).await, StatusCode::OK);
    assert_eq!((server.logins(), b.handle().metrics().adoptions), (1, 1));

    tokio::time::advance(Duration::from_secs(61)).await;
    *stall.lock().unwrap() = Some(Duration::from_secs(2));
    let renewal = tokio::spawn(async move { send(&svc_a).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    *stall.lock().unwrap() = None;
    assert_eq!(send(&svc_b).await, StatusCode::OK);
    assert_eq!(renewal.await.unwrap(), StatusCode::OK);

    assert_eq!((server.logins(), server.refreshes()), (1, 1));
    assert_eq!(server.reused_refresh_tokens(), 0);
    assert_eq!(server.refresh_tokens_seen(), [format!("rt-1-{MARK}")]);
    let (ma, mb) = (a.handle().metrics(), b.handle().metrics());
    assert_eq!((ma.logins, ma.refreshes, ma.adoptions), (1, 0, 1));
    assert_eq!((mb.logins, mb.refreshes, mb.adoptions), (0, 1, 1));
    assert_eq!(ma.store_failures + mb.store_failures, 0);
    assert_eq!(server.upstream_headers().last().unwrap(), &bearer(2));
    let stored = store.load(KEY).await.unwrap().unwrap();
    assert_eq!(stored_tokens(&stored).0, format!("at-2-{MARK}"));
}

#[tokio::test(start_paused = true)]
async fn a_holder_that_lost_its_lease_before_the_auth_call_presents_nothing_memory_store() {
    let store = MemoryStore::default().clock(Clock::tokio());
    a_holder_that_lost_its_lease_before_the_auth_call_presents_nothing(store).await;
}

#[tokio::test(start_paused = true)]
async fn a_holder_that_lost_its_lease_before_the_auth_call_presents_nothing_file_store() {
    let dir = TempDir::new("lost-lease");
    let store = FileStore::new(dir.path()).clock(Clock::tokio());
    a_holder_that_lost_its_lease_before_the_auth_call_presents_nothing(store).await;
}

/// Runs `test` on a tokio runtime of its own, built and dropped on a thread of its own, and
/// returns its output once the runtime is dropped.
///
/// A blocking task stuck in `open(2)` on a FIFO cannot be observed or cancelled from the runtime:
/// the only sign of it is that dropping the runtime never returns (it waits for its blocking
/// threads). So this waits for the thread with a real-time bound, a watchdog: far longer than
/// the tests need (well under a second), short enough to fail instead of hanging the suite.
#[cfg(unix)]
fn shuts_down_cleanly<T: Send + 'static, F: std::future::Future<Output = T> + 'static>(
    test: impl FnOnce() -> F + Send + 'static,
) -> T {
    const WATCHDOG: Duration = Duration::from_secs(20);
    let (done, finished) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let output = runtime.block_on(test());
        drop(runtime);
        let _ = done.send(output);
    });
    let output = finished
        .recv_timeout(WATCHDOG)
        .expect("the test or dropping its runtime did not complete: a store call is stuck");
    worker.join().unwrap();
    output
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// A FIFO where the session entry belongs: opening it for reading would wait for a writer that
/// never comes. The load is refused at once (a store failure), the layer logs in, and — the point
/// — no blocking thread is left stuck, so dropping the runtime completes.
#[cfg(unix)]
#[test]
fn a_fifo_in_place_of_the_entry_is_refused_and_runtime_shutdown_completes() {
    let dir = TempDir::new("fifo");
    let store = FileStore::new(dir.path());
    std::fs::create_dir_all(dir.path()).unwrap();
    mkfifo(&store.path(KEY));
    let (status, logins, metrics, error) = shuts_down_cleanly(move || async move {
        let server = AuthServer::new(3600, AUTH_DELAY);
        // A timeout short enough that a store call stuck on the FIFO gives up quickly too.
        let layer = AuthLayer::builder(TestProvider::new())
            .timeout(Duration::from_secs(1))
            .store(store.clone(), KEY)
            .build(server.transport());
        let svc = layer.layer(server.upstream());
        let status = send(&svc).await;
        let error = store.load(KEY).await.err();
        (status, server.logins(), layer.handle().metrics(), error)
    });
    assert_eq!(status, StatusCode::OK);
    assert_eq!((logins, metrics.logins, metrics.store_failures), (1, 1, 1));
    // The login's save replaced the FIFO with a regular entry.
    assert_eq!(error.map(|e| e.to_string()), None);
}

/// A FIFO where the lease's lock file belongs: refused (an error naming the lock, counted)
/// without waiting on it, and the layer renews without the lease.
#[cfg(unix)]
#[test]
fn a_fifo_in_place_of_the_lock_is_refused_and_the_layer_renews_without_it() {
    let dir = TempDir::new("fifo-lock");
    let store = FileStore::new(dir.path());
    std::fs::create_dir_all(dir.path()).unwrap();
    mkfifo(&store.path(KEY).with_extension("lock"));
    let (err, status, logins, metrics) = shuts_down_cleanly(move || async move {
        let err = store.lease(KEY, Duration::from_secs(5)).await.unwrap_err();
        let server = AuthServer::new(3600, AUTH_DELAY);
        let layer = AuthLayer::builder(TestProvider::new())
            .timeout(Duration::from_secs(1))
            .store(store, KEY)
            .build(server.transport());
        let svc = layer.layer(server.upstream());
        let status = send(&svc).await;
        (err, status, server.logins(), layer.handle().metrics())
    });
    assert_eq!(err.kind(), ErrorKind::Store);
    let shown = err.to_string();
    assert!(shown.contains("lease lock"), "{shown}");
    assert!(shown.contains("is not a regular file"), "{shown}");
    assert_eq!(status, StatusCode::OK);
    assert_eq!((logins, metrics.logins, metrics.store_failures), (1, 1, 1));
}
