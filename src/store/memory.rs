//! A store in memory, shared by the layers given clones of it.

use std::collections::HashMap;
use std::fmt;
use std::future::ready;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use super::{lease_deadline, new_holder, StoredSession, TokenStore};
use crate::clock::Clock;
use crate::error::AuthError;

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
/// # fn build<P: Provider + Clone>(provider: P, client: tower::util::BoxCloneSyncService<http::Request<http_body_util::Full<bytes::Bytes>>, http::Response<http_body_util::Full<bytes::Bytes>>, tower::BoxError>) {
///
/// let store = MemoryStore::default();
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
    lease: Option<(u64, SystemTime)>,
}

impl MemoryStore {
    /// The clock leases lapse by. Default: `Clock::default()` (the system's wall clock).
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
    fn load(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<StoredSession>, AuthError>> + Send {
        let session = self.entries().get(key).and_then(|e| e.session.clone());
        ready(Ok(session))
    }

    fn save(
        &self,
        key: &str,
        session: &StoredSession,
    ) -> impl Future<Output = Result<(), AuthError>> + Send {
        let replaced = self
            .entries()
            .entry(key.to_owned())
            .or_default()
            .session
            .replace(session.clone());
        drop(replaced);
        ready(Ok(()))
    }

    fn lease(
        &self,
        key: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<u64>, AuthError>> + Send {
        let now = self.clock.wall();
        let mut entries = self.entries();
        let entry = entries.entry(key.to_owned()).or_default();
        let taken = match entry.lease {
            Some((_, until)) if now < until => None,
            _ => {
                let lease = new_holder();
                entry.lease = Some((lease, lease_deadline(now, ttl)));
                Some(lease)
            }
        };
        ready(Ok(taken))
    }

    fn extend(
        &self,
        key: &str,
        lease: u64,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, AuthError>> + Send {
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
        ready(Ok(extended))
    }

    fn release(&self, key: &str, lease: u64) -> impl Future<Output = Result<(), AuthError>> + Send {
        if let Some(entry) = self.entries().get_mut(key) {
            if entry.lease.is_some_and(|(holder, _)| holder == lease) {
                entry.lease = None;
            }
        }
        ready(Ok(()))
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
        let store = MemoryStore::default().clock(Clock::tokio());
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
        let store = MemoryStore::default().clock(Clock::tokio());
        let ttl = Duration::from_secs(5);
        let held = store.lease("k", ttl).await.unwrap().unwrap();
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(store.extend("k", held, ttl).await.unwrap());
        assert!(!store.extend("k", held ^ 1, ttl).await.unwrap());
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
        let store = MemoryStore::default();
        let held = store.lease("k", Duration::MAX).await.unwrap().unwrap();
        assert!(store.extend("k", held, Duration::MAX).await.unwrap());
        assert_eq!(store.lease("k", Duration::MAX).await.unwrap(), None);
    }
}
