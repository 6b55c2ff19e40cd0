//! The token slot: the current token as one immutable, atomically swapped state.
//!
//! Readers (every request) `load` without locking; only the token manager stores, and it does so
//! while holding its flight lock, so a store never races another store.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use arc_swap::ArcSwapOption;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::classify::Classifier;
use crate::clock::Moment;
use crate::secret::Secret;

/// Which token a request went out with. Increases with every token stored, so that a 401 names
/// the token it rejected, and "superseded" is a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Generation(u64);

impl Generation {
    /// The first token's.
    pub(crate) const FIRST: Generation = Generation(1);
    /// Before any send: no token has that one.
    pub(crate) const UNSENT: Generation = Generation(0);

    pub(crate) fn next(self) -> Generation {
        Generation(self.0 + 1)
    }

    /// For tracing fields.
    pub(crate) fn get(self) -> u64 {
        self.0
    }
}

/// Statuses, as a set over 0..1024: the ones that mark a token dead (see
/// [`Classifier`](crate::provider::Classifier)), checked on every response.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatusSet([u64; 16]);

impl StatusSet {
    pub(crate) fn new(statuses: &[StatusCode]) -> Self {
        let mut bits = [0u64; 16];
        for status in statuses {
            let code = usize::from(status.as_u16());
            bits[code / 64] |= 1 << (code % 64);
        }
        Self(bits)
    }

    #[inline]
    pub(crate) fn contains(&self, status: StatusCode) -> bool {
        // `StatusCode` is 100..=999.
        let code = usize::from(status.as_u16());
        self.0[(code / 64) % 16] & (1 << (code % 64)) != 0
    }
}

impl fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codes = (100..1000u16)
            .filter_map(|code| StatusCode::from_u16(code).ok())
            .filter(|&status| self.contains(status))
            .map(|status| status.as_u16());
        f.debug_set().entries(codes).finish()
    }
}

/// The manager a token reports to when the upstream says it is dead.
pub(crate) trait Invalidate: Send + Sync {
    /// The upstream rejected the token of `generation`; see `Manager::invalidate`.
    fn invalidate_token(self: Arc<Self>, generation: Generation);
}

/// Where a token came from: what a response sent with it reports to, without a strong reference
/// (the manager owns the slot that owns the token).
#[derive(Clone)]
pub(crate) struct Issuer {
    pub(crate) manager: Weak<dyn Invalidate>,
    pub(crate) classifier: Classifier,
}

/// One issued token, ready to send.
// NOTE: every request clones the `Arc` (a response may have to report the token dead): aligned
// so that the reference counts, written by every core, sit on another cache line than the
// fields every request reads.
#[repr(align(128))]
pub(crate) struct TokenState {
    /// The header the token travels in ([`TokenHeader`](crate::provider::TokenHeader)).
    pub(crate) header_name: HeaderName,
    /// Its value, such as `Bearer <access token>`, marked sensitive.
    pub(crate) header: HeaderValue,
    /// From this instant on, a request triggers a background refresh.
    pub(crate) refresh_at: Moment,
    /// From this instant on, the token is not sent.
    pub(crate) expires_at: Moment,
    pub(crate) refresh_token: Option<Secret>,
    pub(crate) refresh_expires_at: Option<Moment>,
    /// The bare access token, for the [`TokenHandle`](crate::TokenHandle).
    pub(crate) access_token: Secret,
    /// Increases with every stored token; lets a 401 name the token it rejected.
    pub(crate) generation: Generation,
    /// When a request may next ask the manager for a background refresh, in nanoseconds after
    /// `refresh_at` ([`CLAIMED`]: a request has asked). The first request to see the refresh due
    /// claims it, so that one request, not every request in the window, asks; a failed refresh
    /// re-arms it for when the next attempt is allowed.
    next_ask: AtomicU64,
    issuer: Issuer,
}

/// `next_ask` once a request has asked.
const CLAIMED: u64 = u64::MAX;

/// What a new [`TokenState`] is made of.
pub(crate) struct NewToken {
    pub(crate) access_token: Secret,
    pub(crate) header_name: HeaderName,
    pub(crate) header: HeaderValue,
    pub(crate) refresh_at: Moment,
    pub(crate) expires_at: Moment,
    pub(crate) refresh_token: Option<Secret>,
    pub(crate) refresh_expires_at: Option<Moment>,
}

impl TokenState {
    pub(crate) fn new(token: NewToken, generation: Generation, issuer: Issuer) -> Self {
        let NewToken {
            access_token,
            header_name,
            header,
            refresh_at,
            expires_at,
            refresh_token,
            refresh_expires_at,
        } = token;
        Self {
            header_name,
            header,
            refresh_at,
            expires_at,
            refresh_token,
            refresh_expires_at,
            access_token,
            generation,
            next_ask: AtomicU64::new(0),
            issuer,
        }
    }

    /// This token with other times and refresh token, for the manager's edits.
    fn edited(
        &self,
        refresh_at: Moment,
        expires_at: Moment,
        refresh: (Option<Secret>, Option<Moment>),
    ) -> Self {
        let token = NewToken {
            access_token: self.access_token.clone(),
            header_name: self.header_name.clone(),
            header: self.header.clone(),
            refresh_at,
            expires_at,
            refresh_token: refresh.0,
            refresh_expires_at: refresh.1,
        };
        Self::new(token, self.generation, self.issuer.clone())
    }

    /// The upstream answered `status` and `headers` to a request sent with this token and not
    /// replayed: an answer that rejects the token marks it dead, if the slot still holds it.
    #[inline]
    pub(crate) fn answered(&self, status: StatusCode, headers: &HeaderMap) {
        if self.issuer.classifier.rejects(status, headers) {
            if let Some(manager) = self.issuer.manager.upgrade() {
                manager.invalidate_token(self.generation);
            }
        }
    }

    /// True for the one caller that should ask for the background refresh, given that
    /// `now >= refresh_at`. Relaxed: the value guards no other data, and a lost race only means
    /// one extra (harmless) ask.
    #[inline]
    pub(crate) fn claim_refresh(&self, now: Moment) -> bool {
        // Load first: once claimed, requests only read (no cache-line write).
        let at = self.next_ask.load(Ordering::Relaxed);
        at != CLAIMED
            && (at == 0 || nanos(now.duration_since(self.refresh_at)) >= at)
            && self
                .next_ask
                .compare_exchange(at, CLAIMED, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Lets the next request ask again (the refresh could not start).
    pub(crate) fn release_refresh_claim(&self) {
        self.next_ask.store(0, Ordering::Relaxed);
    }

    /// Lets requests ask again from `at` on (the refresh failed; no attempt before `at`).
    pub(crate) fn rearm_refresh(&self, at: Moment) {
        let after = nanos(at.duration_since(self.refresh_at));
        self.next_ask
            .store(after.min(CLAIMED - 1), Ordering::Relaxed);
    }

    /// This token, marked as expired at `now` (the upstream rejected it).
    pub(crate) fn expired_at(&self, now: Moment) -> Self {
        let refresh = (self.refresh_token.clone(), self.refresh_expires_at);
        self.edited(now, now, refresh)
    }

    /// This token without its refresh token (the server rejected it).
    pub(crate) fn without_refresh_token(&self) -> Self {
        self.edited(self.refresh_at, self.expires_at, (None, None))
    }

    /// The refresh token, while it has not expired.
    pub(crate) fn usable_refresh_token(&self, now: Moment) -> Option<&Secret> {
        match self.refresh_expires_at {
            Some(at) if now >= at => None,
            _ => self.refresh_token.as_ref(),
        }
    }
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl fmt::Debug for TokenState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenState")
            .field("header", &self.header)
            .field("refresh_at", &self.refresh_at)
            .field("expires_at", &self.expires_at)
            .field("refresh_token", &self.refresh_token)
            .field("generation", &self.generation)
            .finish()
    }
}

/// The shared, lock-free holder of the current [`TokenState`].
#[derive(Default)]
pub(crate) struct Slot(ArcSwapOption<TokenState>);

impl Slot {
    /// For per-service caches ([`arc_swap::cache::Cache`]).
    pub(crate) fn as_arc_swap(&self) -> &ArcSwapOption<TokenState> {
        &self.0
    }

    pub(crate) fn load_full(&self) -> Option<Arc<TokenState>> {
        self.0.load_full()
    }

    /// NOTE: called only with the manager's flight lock held.
    pub(crate) fn store(&self, state: Arc<TokenState>) {
        self.0.store(Some(state));
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Slot").field(&*self.0.load()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_set_holds_exactly_its_statuses() {
        let codes = [100, 401, 403, 511, 999].map(|c| StatusCode::from_u16(c).unwrap());
        let set = StatusSet::new(&codes);
        for code in 100..1000 {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(set.contains(status), codes.contains(&status), "{code}");
        }
        assert_eq!(format!("{set:?}"), "{100, 401, 403, 511, 999}");
    }
}
