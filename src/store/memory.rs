//! A store in memory, shared by the layers given clones of it.

use std::collections::HashMap;
use std::fmt;
use std::future::ready;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use super::{lease_deadline, Lease, StoreFuture, StoredSession, TokenStore};
use crate::clock::Clock;

/// A [`TokenStore`] in memory: sessions and leases in a map that clones share.
///
/// Layers in one process that are given clones of one `MemoryStore` (and the same key) share one
/// session as processes sharing a [`FileStore`](super::FileStore) do: one login, one refresh per
/// renewal, whichever layer needs it first. Nothing survives the process. Leases lapse by the
/// store's [`Clock`] (set it to the layers' clock under a paused tokio runtime).
///
/// ```
/// use tower_token_auth::store::MemoryStore;
/// use tower_token_auth::AuthLayer;
/// use tower_token_auth::provider::Provider;
/// # fn build<P: Provider + Clone>(provider: P, client: tower::util::BoxCloneSyncService<tower_token_auth::provider::AuthRequest, http::Response<http_body_util::Full<bytes::Bytes>>, tower::BoxError>) {
///
/// let store = MemoryStore::new();
/// let reports = AuthLayer::builder(provider.clone())
///     .store(store.clone(), "api/alice")
///     .build(client.clone());
/// let uploads = AuthLayer::builder(provider).store(store, "api/alice").build(client);
/// # let _ = (reports, uploads);
/// # }
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    clock: Clock,
}

#[derive(Default)]
struct Entry {
    session: Option<StoredSession>,
    /// Who holds the lease, until when.
    lease: Option<(Lease, SystemTime)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The clock leases lapse by. Default: [`Clock::coarse`] (the system's wall clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Plain data, written in single statements: a poisoned lock is still consistent.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TokenStore for MemoryStore {
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredSession>> {
        let session = self.entries().get(key).and_then(|e| e.session.clone());
        Box::pin(ready(Ok(session)))
    }

    fn save<'a>(&'a self, key: &'a str, session: &'a StoredSession) -> StoreFuture<'a, ()> {
        let replaced = self
            .entries()
            .entry(key.to_owned())
            .or_default()
            .session
            .replace(session.clone());
        drop(replaced);
        Box::pin(ready(Ok(())))
    }

    fn lease<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, Option<Lease>> {
        let now = self.clock.wall();
        let mut entries = self.entries();
        let entry = entries.entry(key.to_owned()).or_default();
        let taken = match entry.lease {
            Some((_, until)) if now < until => None,
            _ => {
                let lease = Lease::random();
                entry.lease = Some((lease, lease_deadline(now, ttl)));
                Some(lease)
            }
        };
        Box::pin(ready(Ok(taken)))
    }

    fn extend<'a>(&'a self, key: &'a str, lease: Lease, ttl: Duration) -> StoreFuture<'a, bool> {
        let now = self.clock.wall();
        let mut entries = self.entries();
        let held = entries
            .get_mut(key)
            .and_then(|entry| entry.lease.as_mut())
            .filter(|(holder, until)| *holder == lease && now < *until);
        let extended = match held {
            Some((_, until)) => {
                *until = lease_deadline(now, ttl);
                true
            }
            None => false,
        };
        Box::pin(ready(Ok(extended)))
    }

    fn release<'a>(&'a self, key: &'a str, lease: Lease) -> StoreFuture<'a, ()> {
        if let Some(entry) = self.entries().get_mut(key) {
            if entry.lease.is_some_and(|(holder, _)| holder == lease) {
                entry.lease = None;
            }
        }
        Box::pin(ready(Ok(())))
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("sessions", &self.entries().len())
            .field("clock", &self.clock)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lease_is_exclusive_until_released_or_lapsed() {
        let store = MemoryStore::new().clock(Clock::tokio());
        let ttl = Duration::from_secs(5);
        let first = store.lease("k", ttl).await.unwrap().unwrap();
        assert_eq!(store.lease("k", ttl).await.unwrap(), None);
        assert!(store.lease("other", ttl).await.unwrap().is_some());
        store.release("k", first).await.unwrap();
        let second = store.lease("k", ttl).await.unwrap().unwrap();
        // Released by a holder whose lease lapsed: left alone.
        store.release("k", first).await.unwrap();
        assert_eq!(store.lease("k", ttl).await.unwrap(), None);
        tokio::time::advance(ttl).await;
        let third = store.lease("k", ttl).await.unwrap().unwrap();
        assert_ne!(third, second);
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_live_lease_is_extended_and_only_by_its_holder() {
        let store = MemoryStore::new().clock(Clock::tokio());
        let ttl = Duration::from_secs(5);
        let held = store.lease("k", ttl).await.unwrap().unwrap();
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(store.extend("k", held, ttl).await.unwrap());
        assert!(!store
            .extend("k", Lease::new(held.holder() ^ 1), ttl)
            .await
            .unwrap());
        assert!(!store.extend("other", held, ttl).await.unwrap());
        // Extended: still held 4 s later, when the first TTL would have ended.
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(store.lease("k", ttl).await.unwrap(), None);
        // Lapsed: never revived, even though nobody took it yet.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!store.extend("k", held, ttl).await.unwrap());
        assert!(store.lease("k", ttl).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_ttl_beyond_any_clock_is_capped_not_a_panic() {
        let store = MemoryStore::new();
        let held = store.lease("k", Duration::MAX).await.unwrap().unwrap();
        assert!(store.extend("k", held, Duration::MAX).await.unwrap());
        assert_eq!(store.lease("k", Duration::MAX).await.unwrap(), None);
    }
}
