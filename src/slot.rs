//! The token slot: the current token as one immutable, atomically swapped state.
//!
//! Readers (every request) `load` without locking; only the token manager stores, and it does so
//! while holding its flight lock, so a store never races another store.

use std::fmt;
use std::sync::Arc;

use arc_swap::{ArcSwapOption, Guard};
use http::HeaderValue;
use tokio::time::Instant;

use crate::secret::Secret;

/// One issued token, ready to send.
pub(crate) struct TokenState {
    /// `Bearer <access token>`, marked sensitive.
    pub(crate) header: HeaderValue,
    /// From this instant on, a request triggers a background refresh.
    pub(crate) refresh_at: Instant,
    /// From this instant on, the token is not sent.
    pub(crate) expires_at: Instant,
    pub(crate) refresh_token: Option<Secret>,
    pub(crate) refresh_expires_at: Option<Instant>,
    /// Increases with every stored token; lets a 401 name the token it rejected.
    pub(crate) generation: u64,
}

impl TokenState {
    /// This token, marked as expired at `now` (the upstream rejected it).
    pub(crate) fn expired_at(&self, now: Instant) -> Self {
        Self {
            header: self.header.clone(),
            refresh_at: now,
            expires_at: now,
            refresh_token: self.refresh_token.clone(),
            refresh_expires_at: self.refresh_expires_at,
            generation: self.generation,
        }
    }

    /// This token without its refresh token (the server rejected it).
    pub(crate) fn without_refresh_token(&self) -> Self {
        Self {
            header: self.header.clone(),
            refresh_at: self.refresh_at,
            expires_at: self.expires_at,
            refresh_token: None,
            refresh_expires_at: None,
            generation: self.generation,
        }
    }

    /// The refresh token, while it has not expired.
    pub(crate) fn usable_refresh_token(&self, now: Instant) -> Option<&Secret> {
        match self.refresh_expires_at {
            Some(at) if now >= at => None,
            _ => self.refresh_token.as_ref(),
        }
    }
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
    /// Borrows the current state. Cheap (no reference-count traffic in the common case); hold the
    /// guard only briefly.
    #[inline]
    pub(crate) fn load(&self) -> Guard<Option<Arc<TokenState>>> {
        self.0.load()
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
