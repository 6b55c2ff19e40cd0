//! A store in Redis: sessions as string values, leases by `SET NX PX`, released by a script that
//! checks the holder.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, Script};
use tokio::sync::OnceCell;

use super::session::unix_millis;
use super::{new_holder, StoredSession, TokenStore, MAX_LEASE_TTL};
use crate::error::AuthError;

/// Deletes the lease at `KEYS[1]` only if it still holds `ARGV[1]`: a lease that lapsed and was
/// taken by another holder stays theirs.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// Makes the lease at `KEYS[1]` last `ARGV[2]` ms more, only if it still holds `ARGV[1]`: a lease
/// that lapsed (Redis deleted it) or that another holder took is left alone.
static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// How long connecting to Redis may take, per attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one command may wait for its answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A [`TokenStore`] in Redis (feature `redis`): one session per key, shared by every process
/// that reaches the server, so that a fleet holds one session.
///
/// - **Entries.** The session under key `k` is the string value at `{prefix}session:{k}`
///   (the prefix defaults to `tower-token-auth:`), holding [`StoredSession::to_json`]: **the
///   tokens in plain text**, readable by anyone who can read the database. A save is one `SET`
///   (atomic). The entry expires with the session: when its refresh token does (or its access
///   token, without a refresh token); a refresh token of unknown lifetime keeps the entry until
///   the next save replaces it.
/// - **Leases.** The lease on `k` is the value at `{prefix}lease:{k}`, taken by
///   `SET … NX PX <ttl>` (the TTL capped at an hour), so Redis's own clock ends a lease whose
///   holder crashed. Its value is a random holder and the holder's process id (`<holder>:<pid>`),
///   so an operator can tell who holds a lease; extending and releasing run scripts that
///   `PEXPIRE` or delete it only if it still holds that value.
/// - **Connection.** One multiplexed connection ([`ConnectionManager`]), opened on the first
///   call and re-opened after a failure. Connecting may take 1 s per attempt and a command 2 s;
///   the layer bounds every store call by its auth timeout besides.
///
/// `Debug` shows the server's address, database and the prefix, never a password.
///
/// ```no_run
/// use tower_token_auth::store::RedisStore;
///
/// let store = RedisStore::open("redis://127.0.0.1:6379/0")?.prefix("billing:");
/// # Ok::<(), tower_token_auth::AuthError>(())
/// ```
///
/// # Limitations
///
/// - Redis replication is asynchronous: after a failover, a lease or a save acknowledged by the
///   old primary may be lost, which costs at most one rejected refresh and a login. A single
///   server (or Redis with `WAIT`-based guarantees) has no such window.
/// - A holder paused for longer than the lease TTL loses the lease without knowing (see the
///   [module documentation](super#limitations)).
#[derive(Clone)]
pub struct RedisStore {
    client: Client,
    prefix: String,
    connection: std::sync::Arc<OnceCell<ConnectionManager>>,
}

impl RedisStore {
    /// A store on the server at `url`: `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`,
    /// `rediss://` for TLS (with one of the `redis` crate's TLS features), or
    /// `redis+unix:///PATH`. Nothing is connected until the first call.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Store`](crate::ErrorKind::Store) for a URL the `redis` crate does not
    /// accept; the message does not repeat the URL (it may hold a password).
    pub fn open(url: &str) -> Result<Self, AuthError> {
        let client = Client::open(url)
            .map_err(|e| AuthError::store("invalid Redis URL", Some(Box::new(e))))?;
        Ok(Self::from_client(client))
    }

    /// A store through an already configured client.
    pub fn from_client(client: Client) -> Self {
        Self {
            client,
            prefix: "tower-token-auth:".to_owned(),
            connection: Default::default(),
        }
    }

    /// Puts every key this store writes under `prefix` (default `tower-token-auth:`), e.g. to
    /// share a database with other applications.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The Redis key that holds the session under `key`.
    pub(crate) fn session_key(&self, key: &str) -> String {
        format!("{}session:{key}", self.prefix)
    }

    /// The Redis key that holds the lease on `key`.
    pub(crate) fn lease_key(&self, key: &str) -> String {
        format!("{}lease:{key}", self.prefix)
    }

    async fn connection(&self) -> Result<ConnectionManager, AuthError> {
        let connect = || {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_number_of_retries(1);
            ConnectionManager::new_with_config(self.client.clone(), config)
        };
        let connection = self
            .connection
            .get_or_try_init(connect)
            .await
            .map_err(|e| failed("cannot connect to", &self.address(), e))?;
        Ok(connection.clone())
    }

    /// The server, as `Debug` and errors show it: host and port (or socket path) and database.
    fn address(&self) -> String {
        let info = self.client.get_connection_info();
        format!("{}/{}", info.addr(), info.redis_settings().db())
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.address())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl TokenStore for RedisStore {
    async fn load(&self, key: &str) -> Result<Option<StoredSession>, AuthError> {
        let entry = self.session_key(key);
        let mut connection = self.connection().await?;
        let json: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&entry)
            .query_async(&mut connection)
            .await
            .map_err(|e| failed("cannot read", &entry, e))?;
        json.map(|json| {
            StoredSession::from_json(key, &json)
                .map_err(|e| AuthError::store(format!("unusable entry {entry}"), Some(Box::new(e))))
        })
        .transpose()
    }

    async fn save(&self, key: &str, session: &StoredSession) -> Result<(), AuthError> {
        let entry = self.session_key(key);
        let mut set = redis::cmd("SET");
        set.arg(&entry).arg(session.to_json(key));
        if let Some(until) = entry_expiry(session) {
            set.arg("PXAT").arg(until);
        }
        let mut connection = self.connection().await?;
        set.query_async::<()>(&mut connection)
            .await
            .map_err(|e| failed("cannot write", &entry, e))
    }

    async fn lease(&self, key: &str, ttl: Duration) -> Result<Option<u64>, AuthError> {
        let entry = self.lease_key(key);
        let lease = new_holder();
        let millis = ttl_millis(ttl);
        let mut connection = self.connection().await?;
        let taken: Option<String> = redis::cmd("SET")
            .arg(&entry)
            .arg(holder_value(lease))
            .arg("NX")
            .arg("PX")
            .arg(millis)
            .query_async(&mut connection)
            .await
            .map_err(|e| failed("cannot lease", &entry, e))?;
        Ok(taken.map(|_| lease))
    }

    async fn extend(&self, key: &str, lease: u64, ttl: Duration) -> Result<bool, AuthError> {
        let entry = self.lease_key(key);
        let mut connection = self.connection().await?;
        EXTEND
            .key(&entry)
            .arg(holder_value(lease))
            .arg(ttl_millis(ttl))
            .invoke_async::<i64>(&mut connection)
            .await
            .map(|extended| extended == 1)
            .map_err(|e| failed("cannot extend the lease", &entry, e))
    }

    async fn release(&self, key: &str, lease: u64) -> Result<(), AuthError> {
        let entry = self.lease_key(key);
        let mut connection = self.connection().await?;
        RELEASE
            .key(&entry)
            .arg(holder_value(lease))
            .invoke_async::<i64>(&mut connection)
            .await
            .map(drop)
            .map_err(|e| failed("cannot release", &entry, e))
    }
}

fn failed(what: &str, target: &str, error: RedisError) -> AuthError {
    AuthError::store(format!("{what} {target}"), Some(Box::new(error)))
}

/// A lease TTL as Redis takes it: whole milliseconds, at least 1, at most an hour (Redis refuses
/// expiries past a signed 64-bit count).
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.min(MAX_LEASE_TTL).as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// What a lease's value holds: the holder, and which process it is.
fn holder_value(lease: u64) -> String {
    format!("{:016x}:{}", lease, std::process::id())
}

/// When the entry of `session` is of no more use, in milliseconds since the Unix epoch; `None` while
/// its refresh token may live on.
fn entry_expiry(session: &StoredSession) -> Option<u64> {
    let until = match (session.refresh_token(), session.refresh_expires_at()) {
        (None, _) => session.expires_at(),
        (Some(_), Some(refresh)) => refresh.max(session.expires_at()),
        (Some(_), None) => return None,
    };
    // A session already dead expires at once (PXAT in the past deletes the key): at least 1.
    Some(unix_millis(until).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn debug_and_errors_never_show_the_password() {
        let store = RedisStore::open("redis://:hunter2@127.0.0.1:6390/3").expect("valid URL");
        let debug = format!("{store:?}");
        assert!(debug.contains("127.0.0.1:6390/3"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");

        let err = RedisStore::open("redis://:hunter2@127.0.0.1:6390/notadb").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Store);
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn keys_live_under_the_prefix() {
        let store = RedisStore::open("redis://127.0.0.1/").expect("valid URL");
        assert_eq!(store.session_key("a/b"), "tower-token-auth:session:a/b");
        let store = store.prefix("x:");
        assert_eq!(store.lease_key("a/b"), "x:lease:a/b");
    }

    #[test]
    fn lease_ttls_are_whole_milliseconds_within_redis_range() {
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert_eq!(ttl_millis(Duration::from_micros(2500)), 2);
        assert_eq!(ttl_millis(Duration::MAX), 3_600_000);
    }

    #[test]
    fn entries_expire_with_the_session() {
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        let access_only = StoredSession::new("a", at(100));
        assert_eq!(entry_expiry(&access_only), Some(100_000));
        let with_refresh = access_only.clone().with_refresh_token("r", Some(at(900)));
        assert_eq!(entry_expiry(&with_refresh), Some(900_000));
        let open_ended = access_only.with_refresh_token("r", None);
        assert_eq!(entry_expiry(&open_ended), None);
    }
}
