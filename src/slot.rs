//! The token slot: the current token as one immutable, atomically swapped state.
//!
//! Readers (every request) `load` without locking; only the token manager stores, and it does so
//! while holding its flight lock, so a store never races another store. Beside the token, the slot
//! remembers which recent tokens the upstream accepted: a later refusal of such a token is
//! revocation, which the replay budget treats apart from a token the upstream never took.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use http::{HeaderName, HeaderValue};

use crate::clock::Moment;
use crate::secret::Secret;
use crate::token::Issued;

/// Which token a request went out with. Increases with every token stored, so that a 401 names
/// the token it refused, and "superseded" is a comparison.
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

/// One issued token, ready to send.
// NOTE: aligned so that the reference counts, written when a thread makes its copy (see
// `apply`), sit on another cache line than the fields every request reads.
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
    /// Bound to the layer's DPoP key: each request carries a proof.
    pub(crate) dpop: bool,
    /// For a bound token, the `ath` of its proofs (the base64url SHA-256 of the access token):
    /// the same in every proof, so computed once, here.
    pub(crate) ath: Option<Box<str>>,
    /// Increases with every stored token; lets a 401 name the token it refused.
    pub(crate) generation: Generation,
    notes: Notes,
}

/// What requests write to a token, rarely: apart from the fields every request reads.
// NOTE: aligned to a line pair of its own, so that a write here (a claim in the refresh window,
// the first accepted answer) never evicts the header every request reads.
#[repr(align(128))]
#[derive(Default)]
struct Notes {
    /// When a request may next ask the manager for a background refresh, in nanoseconds after
    /// `refresh_at` ([`CLAIMED`]: a request has asked). The first request to see the refresh due
    /// claims it, so that one request, not every request in the window, asks; a failed refresh
    /// re-arms it for when the next attempt is allowed.
    next_ask: AtomicU64,
    /// An answer to a request sent with this token did not refuse it, and the slot has been
    /// told (see [`TokenState::first_answer`]).
    accepted: AtomicBool,
}

/// `next_ask` once a request has asked.
const CLAIMED: u64 = u64::MAX;

impl TokenState {
    /// The state for `issued`, renewed from `refresh_at` on, as token `generation`.
    pub(crate) fn issued(issued: Issued, refresh_at: Moment, generation: Generation) -> Self {
        let expires_at = issued.expires_at();
        let refresh_expires_at = issued.refresh_expires_at();
        let ath = match issued.dpop {
            true => crate::dpop::ath(&issued.access_token),
            false => None,
        };
        Self {
            header_name: issued.header_name,
            header: issued.header,
            refresh_at,
            expires_at,
            refresh_token: issued.refresh_token,
            refresh_expires_at,
            access_token: issued.access_token,
            dpop: issued.dpop,
            ath,
            generation,
            notes: Notes::default(),
        }
    }

    /// This token with other times and refresh token, for the manager's edits.
    fn edited(
        &self,
        refresh_at: Moment,
        expires_at: Moment,
        refresh: (Option<Secret>, Option<Moment>),
    ) -> Self {
        Self {
            header_name: self.header_name.clone(),
            header: self.header.clone(),
            refresh_at,
            expires_at,
            refresh_token: refresh.0,
            refresh_expires_at: refresh.1,
            access_token: self.access_token.clone(),
            dpop: self.dpop,
            ath: self.ath.clone(),
            generation: self.generation,
            notes: Notes::default(),
        }
    }

    /// True for the first answer that accepted this token: that one tells the slot (see
    /// [`Slot::accept`]). One relaxed load for every later answer.
    #[inline]
    pub(crate) fn first_answer(&self) -> bool {
        !self.notes.accepted.load(Ordering::Relaxed)
            && !self.notes.accepted.swap(true, Ordering::Relaxed)
    }

    /// True for the one caller that should ask for the background refresh, given that
    /// `now >= refresh_at`. Relaxed: the value guards no other data, and a lost race only means
    /// one extra (harmless) ask.
    #[inline]
    pub(crate) fn claim_refresh(&self, now: Moment) -> bool {
        // Load first: once claimed, requests only read (no cache-line write).
        let at = self.notes.next_ask.load(Ordering::Relaxed);
        at != CLAIMED
            && (at == 0 || nanos(now.duration_since(self.refresh_at)) >= at)
            && self
                .notes
                .next_ask
                .compare_exchange(at, CLAIMED, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// Lets the next request ask again (the refresh could not start).
    pub(crate) fn release_refresh_claim(&self) {
        self.notes.next_ask.store(0, Ordering::Relaxed);
    }

    /// Lets requests ask again from `at` on (the refresh failed; no attempt before `at`).
    pub(crate) fn rearm_refresh(&self, at: Moment) {
        let after = nanos(at.duration_since(self.refresh_at));
        self.notes
            .next_ask
            .store(after.min(CLAIMED - 1), Ordering::Relaxed);
    }

    /// This token, marked as expired at `now` (the upstream refused it).
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

/// The shared, lock-free holder of the current [`TokenState`], and of what recent tokens met
/// upstream: which were accepted, and which were refused for more than one request.
#[derive(Default)]
pub(crate) struct Slot {
    current: ArcSwapOption<TokenState>,
    /// Increases with every store, after it: what a thread's copy of the token (see `apply`)
    /// checks, in one load, to know it still copies the slot's state.
    version: AtomicU64,
    accepted: Marks,
    refused_again: Marks,
}

impl Slot {
    /// The current state, without a reference count update.
    pub(crate) fn load(&self) -> arc_swap::Guard<Option<Arc<TokenState>>> {
        self.current.load()
    }

    pub(crate) fn load_full(&self) -> Option<Arc<TokenState>> {
        self.current.load_full()
    }

    /// NOTE: called only with the manager's flight lock held.
    pub(crate) fn store(&self, state: Arc<TokenState>) {
        self.current.store(Some(state));
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Changes with every store: read before loading the state, a version still current means
    /// that state is still the slot's.
    #[inline]
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The upstream gave a request carrying the token of `generation` an answer that did not
    /// refuse it. Costs one relaxed load; a write only for the first such answer of a token.
    #[inline]
    pub(crate) fn accept(&self, generation: Generation) {
        self.accepted.mark(generation);
    }

    /// Whether an answer has shown the upstream accepting the token of `generation`.
    pub(crate) fn accepted(&self, generation: Generation) -> bool {
        self.accepted.marked(generation)
    }

    /// The upstream refused the token of `generation` for a request after the token was
    /// already known dead or replaced: the token died for more than one request.
    pub(crate) fn refuse_again(&self, generation: Generation) {
        self.refused_again.mark(generation);
    }

    /// Whether the token of `generation` was refused for more than one request.
    pub(crate) fn refused_again(&self, generation: Generation) -> bool {
        self.refused_again.marked(generation)
    }
}

/// How many of the latest tokens the slot remembers the fate of: a request refused with a
/// token this many generations old is long past any replay.
pub(crate) const TOKENS_KEPT: usize = 16;

/// A mark for each of the last [`TOKENS_KEPT`] tokens: generation `g` is marked by storing its
/// number in cell `g % TOKENS_KEPT`; an older token counts as unmarked. Relaxed throughout: a
/// mark guards no other data, and a mark missed by a race only means a smaller replay budget
/// for one request.
// NOTE: every response reads a cell of `Slot::accepted`, and the first answer for each token
// writes one: aligned to lines of their own, so that neither touches the line of the slot's
// pointer, which every request reads, nor the manager's fields around it.
#[repr(align(128))]
#[derive(Default)]
struct Marks([AtomicU64; TOKENS_KEPT]);

impl Marks {
    #[inline]
    fn cell(&self, generation: Generation) -> &AtomicU64 {
        // `TOKENS_KEPT` is a power of two: the remainder is a mask.
        &self.0[(generation.0 % TOKENS_KEPT as u64) as usize]
    }

    /// One relaxed load; a write only when the cell holds an older token.
    #[inline]
    fn mark(&self, generation: Generation) {
        let cell = self.cell(generation);
        if cell.load(Ordering::Relaxed) < generation.0 {
            // The max keeps a late mark of an older token sharing the cell from undoing a
            // newer token's.
            cell.fetch_max(generation.0, Ordering::Relaxed);
        }
    }

    fn marked(&self, generation: Generation) -> bool {
        self.cell(generation).load(Ordering::Relaxed) == generation.0
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Slot").field(&*self.current.load()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slot_remembers_what_recent_tokens_met() {
        let slot = Slot::default();
        let g = Generation;
        assert!(!slot.accepted(g(1)) && !slot.refused_again(g(1)));
        slot.accept(g(1));
        slot.accept(g(3));
        slot.refuse_again(g(2));
        assert!(slot.accepted(g(1)) && !slot.accepted(g(2)) && slot.accepted(g(3)));
        assert!(!slot.refused_again(g(1)) && slot.refused_again(g(2)));
        // A newer token in the same cell replaces the older one's mark; a late mark of the
        // older one does not bring it back.
        let kept = TOKENS_KEPT as u64;
        slot.accept(g(1 + kept));
        slot.accept(g(1));
        assert!(slot.accepted(g(1 + kept)) && !slot.accepted(g(1)));
        assert!(slot.accepted(g(3)));
    }

    #[test]
    fn what_requests_write_sits_apart_from_what_they_read() {
        assert_eq!(std::mem::align_of::<Notes>(), 128);
        assert_eq!(std::mem::align_of::<Marks>(), 128);
        assert_eq!(std::mem::size_of::<Marks>(), 128);
        assert!(TOKENS_KEPT.is_power_of_two());
    }
}
