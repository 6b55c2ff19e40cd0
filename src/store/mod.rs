//! Where a session lives beyond one process: token stores, and the rule that lets processes share
//! one session.
//!
//! Without a store (the default), a layer's token lives in its memory: every process logs in on
//! its first need and renews on its own. With one ([`AuthLayerBuilder::store`]), the layer
//!
//! - **loads** the stored session on its first need and uses it while its access token is valid
//!   (a restart within the token's lifetime costs no login), or renews with its refresh token;
//! - **saves** every token it obtains (login or rotation), so that the store always holds the
//!   session's newest token;
//! - before every login or refresh, takes the store's **lease** for the session, **re-reads**
//!   the store, and calls the auth server only if the stored session is still the one this
//!   process holds; otherwise it **adopts** the stored one (another process renewed it: its
//!   refresh token is already spent). A 401 seen by one process thus costs the fleet one refresh:
//!   the others adopt the new session on their next need instead of refreshing again.
//!
//! Store calls happen only inside the layer's single flight, never on the path of a request that
//! has a fresh token.
//!
//! ```
//! use tower_token_auth::store::FileStore;
//! use tower_token_auth::AuthLayer;
//! use tower_token_auth::provider::Provider;
//! # fn build<P: Provider>(provider: P, client: tower::util::BoxCloneSyncService<http::Request<http_body_util::Full<bytes::Bytes>>, http::Response<http_body_util::Full<bytes::Bytes>>, tower::BoxError>) {
//!
//! // One key per session: the API and the account it logs in as.
//! let layer = AuthLayer::builder(provider)
//!     .store(FileStore::new("/var/lib/my-service/tokens"), "simacan/alice")
//!     .build(client);
//! # }
//! ```
//!
//! # Stores
//!
//! - [`MemoryStore`]: a map in memory, shared by the layers given clones of it. Layers in one
//!   process that share it share one session.
//! - [`FileStore`]: one file per session key in a directory, written atomically. Processes on one
//!   host (or on a filesystem with local semantics) share sessions through it.
//! - `RedisStore` (feature `redis`): sessions and leases in a Redis server, for a fleet of
//!   processes on any number of hosts.
//! - Your own: implement [`TokenStore`]; [`StoredSession::to_json`] and
//!   [`StoredSession::from_json`] give a checked encoding.
//!
//! # Secrets at rest
//!
//! A stored session holds the access token and the refresh token **in plain text**: whoever can
//! read the entry can act as the session's account until the tokens expire (the refresh token
//! often lives for days). Nothing is encrypted. [`FileStore`] creates its files readable by their
//! owner only (mode `0600` on Unix) in a directory it creates with mode `0700`; protect the
//! directory, the backups that include it and any shared store accordingly. Credentials
//! (passwords, API keys, client secrets) are never stored.
//!
//! No error, log line or `Debug` output of this module contains a token: errors name the key and
//! the operation, never the content.
//!
//! # Leases
//!
//! A lease is taken for [`AuthLayerBuilder::lease_ttl`] and **kept while the renewal runs**: a
//! renewal that outlasts a third of the TTL (a slow auth server, a refresh rejected and the login
//! after it) extends its lease ([`TokenStore::extend`]) every third of the TTL, so the TTL only
//! bounds how long a holder that crashed delays the others, not how long a renewal may take.
//! Before it presents a refresh token, and again before it saves, the holder makes sure it still
//! holds the lease (asking the store when its last confirmation is more than a third of the TTL
//! old):
//!
//! - lost **before** the auth call (the process was paused, the store was slower than the TTL):
//!   it presents nothing; it takes the lease again, re-reads the store and adopts what the new
//!   holder saved, so a refresh token it read before someone else renewed is never sent;
//! - lost **during** the auth call: it re-reads the store and adopts the session another holder
//!   saved meanwhile instead of overwriting it; if nobody did, it saves its own (the store must not
//!   keep the refresh token it just spent).
//!
//! # Limitations
//!
//! - A lease holder that crashes holds the lease until its TTL ends
//!   ([`AuthLayerBuilder::lease_ttl`]); others needing a token wait for it, up to that long.
//! - A holder whose lease lapses while its auth call is in flight (the process paused for longer
//!   than the TTL, or a store too slow to extend the lease in time) cannot take the call back:
//!   another process may renew with the same refresh token meanwhile. A strictly single-use server
//!   rejects the second refresh and that process logs in: one extra login, never a failed
//!   request. The same holds for a holder paused between its last check and the auth call.
//! - A store that fails (a full disk, a read-only directory) or holds an unusable entry is logged
//!   and counted ([`MetricsSnapshot::store_failures`](crate::MetricsSnapshot::store_failures)),
//!   and the layer carries on as if it had no store.
//!
//! [`AuthLayerBuilder::store`]: crate::AuthLayerBuilder::store
//! [`AuthLayerBuilder::lease_ttl`]: crate::AuthLayerBuilder::lease_ttl

mod file;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod session;

use std::future::{ready, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use self::file::FileStore;
pub use self::memory::MemoryStore;
#[cfg(feature = "redis")]
pub use self::redis::RedisStore;
pub use self::session::StoredSession;
use crate::error::AuthError;

/// Where a layer keeps its session beyond its own memory, keyed by a session key (see the
/// [module documentation](self)).
///
/// Methods return `Send` futures; an implementation writes them as `async fn`. The layer calls
/// its store only from its single flight (at most one call at a time per layer), each call bounded by
/// the layer's auth timeout. Errors are [`AuthError`]s of kind
/// [`ErrorKind::Store`](crate::ErrorKind::Store) ([`AuthError::store`]); they must not contain a
/// token.
///
/// A store without leases implements only [`load`](Self::load) and [`save`](Self::save): every
/// lease is then granted at once, and processes still adopt each other's sessions, but two that
/// renew at the same moment both call the auth server.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use tower_token_auth::AuthError;
/// use tower_token_auth::store::{StoredSession, TokenStore};
///
/// /// Sessions kept as the checked JSON encoding, in a map standing for a database.
/// #[derive(Default)]
/// struct Table(Mutex<HashMap<String, Vec<u8>>>);
///
/// impl TokenStore for Table {
///     async fn load(&self, key: &str) -> Result<Option<StoredSession>, AuthError> {
///         let row = self.0.lock().unwrap().get(key).cloned();
///         row.map(|json| StoredSession::from_json(key, &json)).transpose()
///     }
///
///     async fn save(&self, key: &str, session: &StoredSession) -> Result<(), AuthError> {
///         self.0.lock().unwrap().insert(key.to_owned(), session.to_json(key));
///         Ok(())
///     }
/// }
/// ```
pub trait TokenStore: Send + Sync {
    /// The session stored under `key`, if any. An entry that cannot be used (corrupt, of a
    /// foreign format, written for another key) is an error, not `None`: the layer logs it and
    /// logs in, and its next save replaces the entry.
    fn load(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<StoredSession>, AuthError>> + Send;

    /// Replaces the session stored under `key`, atomically: a concurrent `load` sees the old
    /// session or the new one, never a mix, and a crash leaves one of them.
    fn save(
        &self,
        key: &str,
        session: &StoredSession,
    ) -> impl Future<Output = Result<(), AuthError>> + Send;

    /// Tries once to take the lease on `key` for `ttl`: `Some(holder)` when taken, `None` while
    /// another holder has it. The holder is what names this lease to [`extend`](Self::extend)
    /// and [`release`](Self::release): a number no other holder picks (a random one), so that
    /// only the holder extends or releases its lease. A lease not released or [extended](Self::extend) within `ttl` lapses, so
    /// that a holder that crashed frees it. The default grants every lease (a store without
    /// leases).
    ///
    /// The layer asks for a TTL between 1 s and an hour; a store called with a longer one
    /// should cap it rather than overflow (the stores of this module cap it at an hour).
    fn lease(
        &self,
        key: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<u64>, AuthError>> + Send {
        let _ = (key, ttl);
        ready(Ok(Some(0)))
    }

    /// Keeps a lease taken with [`lease`](Self::lease): if the holder `lease` still holds `key`
    /// and it has not lapsed, makes it last `ttl` from now and returns `true`; otherwise (it
    /// lapsed, whether or not another holder has taken it since) changes nothing and returns
    /// `false`. Check and extension are one step: a lease that lapses is never revived.
    ///
    /// The layer calls it while a renewal runs (every third of the TTL) and before it presents a
    /// refresh token or saves, when its last confirmation is older than that. The default
    /// returns `true` and extends nothing, which is right for a store without leases; a store
    /// whose leases lapse must implement it, or a renewal slower than the TTL may overlap with
    /// another process's.
    fn extend(
        &self,
        key: &str,
        lease: u64,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, AuthError>> + Send {
        let _ = (key, lease, ttl);
        ready(Ok(true))
    }

    /// Gives back a lease taken with [`lease`](Self::lease). A lease that has lapsed, and may now
    /// be someone else's, is left alone. The default does nothing.
    fn release(&self, key: &str, lease: u64) -> impl Future<Output = Result<(), AuthError>> + Send {
        let _ = (key, lease);
        ready(Ok(()))
    }
}

impl<T: TokenStore> TokenStore for Arc<T> {
    fn load(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<StoredSession>, AuthError>> + Send {
        (**self).load(key)
    }

    fn save(
        &self,
        key: &str,
        session: &StoredSession,
    ) -> impl Future<Output = Result<(), AuthError>> + Send {
        (**self).save(key, session)
    }

    fn lease(
        &self,
        key: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<u64>, AuthError>> + Send {
        (**self).lease(key, ttl)
    }

    fn extend(
        &self,
        key: &str,
        lease: u64,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, AuthError>> + Send {
        (**self).extend(key, lease, ttl)
    }

    fn release(&self, key: &str, lease: u64) -> impl Future<Output = Result<(), AuthError>> + Send {
        (**self).release(key, lease)
    }
}

/// The future of a [`Stores`] call.
pub(crate) type StoreFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, AuthError>> + Send + 'a>>;

/// A [`TokenStore`] as the layer holds it, behind an `Arc<dyn Stores>`: each call's future boxed.
pub(crate) trait Stores: Send + Sync {
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredSession>>;
    fn save<'a>(&'a self, key: &'a str, session: &'a StoredSession) -> StoreFuture<'a, ()>;
    fn lease<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, Option<u64>>;
    fn extend<'a>(&'a self, key: &'a str, lease: u64, ttl: Duration) -> StoreFuture<'a, bool>;
    fn release<'a>(&'a self, key: &'a str, lease: u64) -> StoreFuture<'a, ()>;
}

impl<T: TokenStore> Stores for T {
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredSession>> {
        Box::pin(TokenStore::load(self, key))
    }

    fn save<'a>(&'a self, key: &'a str, session: &'a StoredSession) -> StoreFuture<'a, ()> {
        Box::pin(TokenStore::save(self, key, session))
    }

    fn lease<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, Option<u64>> {
        Box::pin(TokenStore::lease(self, key, ttl))
    }

    fn extend<'a>(&'a self, key: &'a str, lease: u64, ttl: Duration) -> StoreFuture<'a, bool> {
        Box::pin(TokenStore::extend(self, key, lease, ttl))
    }

    fn release<'a>(&'a self, key: &'a str, lease: u64) -> StoreFuture<'a, ()> {
        Box::pin(TokenStore::release(self, key, lease))
    }
}

/// The longest lease TTL the layer asks for, and the stores grant: an hour. A live holder keeps
/// its lease for as long as its renewal runs by extending it, so a longer TTL would only let a
/// crashed holder stall the others longer (and a `timeout` of `Duration::MAX` would make leases
/// that never lapse, or overflow the clock).
pub(crate) const MAX_LEASE_TTL: Duration = Duration::from_secs(3600);

/// When a lease taken at `now` for `ttl` lapses: `ttl` capped at [`MAX_LEASE_TTL`], so that the
/// sum never overflows.
pub(crate) fn lease_deadline(now: SystemTime, ttl: Duration) -> SystemTime {
    // NOTE: an hour past any representable "now" is representable on every platform std
    // supports; the fallback (a lease that lapses at once) is never taken in practice.
    now.checked_add(ttl.min(MAX_LEASE_TTL)).unwrap_or(now)
}

/// A new lease holder: a random number, which no other holder picks.
pub(crate) fn new_holder() -> u64 {
    fastrand::u64(..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_store_and_an_arc_of_it_are_held_alike() {
        let store = Arc::new(MemoryStore::default());
        let held: [Arc<dyn Stores>; 2] = [
            Arc::new(Arc::clone(&store)),
            Arc::new(FileStore::new("/nonexistent")),
        ];
        let session = StoredSession::new("at", SystemTime::now());
        held[0].save("k", &session).await.unwrap();
        let loaded = TokenStore::load(&*store, "k").await.unwrap().unwrap();
        assert_eq!(loaded.id(), session.id());
        // The default lease of a store without leases: granted at once, to holder 0.
        struct Bare;
        impl TokenStore for Bare {
            async fn load(&self, _: &str) -> Result<Option<StoredSession>, AuthError> {
                Ok(None)
            }
            async fn save(&self, _: &str, _: &StoredSession) -> Result<(), AuthError> {
                Ok(())
            }
        }
        let bare: Arc<dyn Stores> = Arc::new(Bare);
        assert_eq!(
            bare.lease("k", Duration::from_secs(1)).await.unwrap(),
            Some(0)
        );
        assert!(bare.extend("k", 0, Duration::from_secs(1)).await.unwrap());
    }
}
