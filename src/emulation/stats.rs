//! What an emulation counted: a lock-free set of counters and the snapshot users read.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of what an [`Emulation`](super::Emulation) has seen, from
/// [`Emulation::stats`](super::Emulation::stats).
///
/// The counters are disjoint: a call counts in exactly one of `logins`, `rejected_logins`,
/// `refreshes`, `rejected_refreshes` and `violations`, or in none when a
/// [`Fault`](super::Fault) answered it. `rejected_*` count well-formed calls whose credentials or
/// token were wrong, expired or revoked, which is normal; `violations` count protocol misuse,
/// which a correct client never commits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Successful logins (for OAuth2 also `client_credentials` grants).
    pub logins: u64,
    /// Successful refreshes.
    pub refreshes: u64,
    /// Logins refused for wrong credentials (or a wrong client id or secret).
    pub rejected_logins: u64,
    /// Refreshes refused because the refresh token was expired, revoked or unknown (or the client
    /// credentials were wrong).
    pub rejected_refreshes: u64,
    /// Protocol misuse by the client: a refresh token sent again after it was used, a wrong
    /// content type, a missing parameter, credentials sent to a refresh endpoint, a premature
    /// refresh (Intergiro), `Authorization` on a Tradecloud refresh, two client authentication
    /// methods at once (OAuth2), and the like. A correct client produces none.
    pub violations: u64,
    /// Resource requests answered 200.
    pub resource_ok: u64,
    /// Resource requests answered 401 (no, unknown, expired or revoked access token).
    pub resource_unauthorized: u64,
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) logins: AtomicU64,
    pub(super) refreshes: AtomicU64,
    pub(super) rejected_logins: AtomicU64,
    pub(super) rejected_refreshes: AtomicU64,
    pub(super) violations: AtomicU64,
    pub(super) resource_ok: AtomicU64,
    pub(super) resource_unauthorized: AtomicU64,
}

/// Counts one event; the counters are independent, so no ordering beyond the atomic is needed.
pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(super) fn snapshot(&self) -> Stats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            logins: load(&self.logins),
            refreshes: load(&self.refreshes),
            rejected_logins: load(&self.rejected_logins),
            rejected_refreshes: load(&self.rejected_refreshes),
            violations: load(&self.violations),
            resource_ok: load(&self.resource_ok),
            resource_unauthorized: load(&self.resource_unauthorized),
        }
    }
}
