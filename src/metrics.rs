//! Counters the layer keeps about its own auth traffic. All updates happen on cold paths.

use std::sync::atomic::{AtomicU64, Ordering};

/// A point-in-time copy of a layer's counters.
///
/// Read it with [`TokenHandle::metrics`](crate::TokenHandle::metrics) (the handle from
/// [`AuthLayer::handle`](crate::AuthLayer::handle)); all clones of one layer share the counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Login requests sent to the auth server.
    pub logins: u64,
    /// Refresh requests sent to the auth server.
    pub refreshes: u64,
    /// Revocation requests sent to the auth server ([`TokenHandle::revoke`](crate::TokenHandle::revoke)).
    pub revocations: u64,
    /// Discovery documents fetched from the auth server
    /// ([`Provider::discovery_request`](crate::provider::Provider::discovery_request)).
    pub discoveries: u64,
    /// Requests replayed after a replay-triggering upstream status.
    pub replays: u64,
    /// Auth calls that failed (rejected, transient, timeout, malformed, ...).
    pub auth_failures: u64,
    /// Requests that had to wait for a token instead of using the one in the slot.
    pub token_waits: u64,
    /// Sessions taken from the [`TokenStore`](crate::store::TokenStore) instead of an auth call:
    /// at start, or after another process renewed the token.
    pub adoptions: u64,
    /// Token store operations that failed, and store entries that were unusable (corrupt, of a
    /// foreign format, for another key). Each is logged; the layer carries on without the entry.
    pub store_failures: u64,
    /// Auth calls and requests sent again because a server asked for a DPoP nonce
    /// (`use_dpop_nonce`): not replays, and free of the replay budget.
    pub dpop_nonce_retries: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    logins: AtomicU64,
    refreshes: AtomicU64,
    revocations: AtomicU64,
    discoveries: AtomicU64,
    replays: AtomicU64,
    auth_failures: AtomicU64,
    token_waits: AtomicU64,
    adoptions: AtomicU64,
    store_failures: AtomicU64,
    dpop_nonce_retries: AtomicU64,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Counter {
    Login,
    Refresh,
    Revocation,
    Discovery,
    Replay,
    AuthFailure,
    TokenWait,
    Adoption,
    StoreFailure,
    DpopNonceRetry,
}

impl Metrics {
    pub(crate) fn incr(&self, counter: Counter) {
        let cell = match counter {
            Counter::Login => &self.logins,
            Counter::Refresh => &self.refreshes,
            Counter::Revocation => &self.revocations,
            Counter::Discovery => &self.discoveries,
            Counter::Replay => &self.replays,
            Counter::AuthFailure => &self.auth_failures,
            Counter::TokenWait => &self.token_waits,
            Counter::Adoption => &self.adoptions,
            Counter::StoreFailure => &self.store_failures,
            Counter::DpopNonceRetry => &self.dpop_nonce_retries,
        };
        cell.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            logins: self.logins.load(Ordering::Relaxed),
            refreshes: self.refreshes.load(Ordering::Relaxed),
            revocations: self.revocations.load(Ordering::Relaxed),
            discoveries: self.discoveries.load(Ordering::Relaxed),
            replays: self.replays.load(Ordering::Relaxed),
            auth_failures: self.auth_failures.load(Ordering::Relaxed),
            token_waits: self.token_waits.load(Ordering::Relaxed),
            adoptions: self.adoptions.load(Ordering::Relaxed),
            store_failures: self.store_failures.load(Ordering::Relaxed),
            dpop_nonce_retries: self.dpop_nonce_retries.load(Ordering::Relaxed),
        }
    }
}
