//! The token manager: the one place that decides when to log in or refresh, shared by every
//! clone of a layer.
//!
//! - [`flight`]: the single flight, what it shares with its waiters, its retries, and what
//!   outlives it;
//! - [`schedule`]: when to try again (transient retries, rejection backoff, `Retry-After`);
//! - [`exchange`]: the login/refresh exchange and the parsing of its answer;
//! - [`persist`]: the token store: adopting, leasing, saving;
//! - [`transport`]: the user's HTTP service as the exchange uses it;
//! - [`wait`]: a request that needs a token: take the slot's, join the flight or start one, and
//!   the future a request waits with.
//!
//! A request waiting for a token crosses three files: [`wait`] (join or start the one flight),
//! [`flight`] (its attempts, and landing their outcome) and [`exchange`] (one attempt's auth
//! calls), plus [`persist`] when the layer has a token store.
//!
//! Requests read the slot without the manager; they come here only when the slot has no usable
//! token (to wait for one), when the upstream refused a token, or to ask for a refresh ahead
//! (one request per token, again after a failed attempt re-arms it). All slot stores happen under
//! the flights lock.

mod discover;
mod exchange;
mod flight;
mod persist;
mod plain;
mod revoke;
mod schedule;
mod transport;
mod wait;

pub(crate) use self::persist::Persist;
pub(crate) use self::schedule::Backoff;
pub(crate) use self::schedule::Schedule;
pub use self::transport::AuthTransport;
pub(crate) use self::transport::Transport;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use tokio::sync::watch;

use self::flight::Flights;
pub(crate) use self::wait::TokenWait;
use crate::clock::{Clock, Moment};
use crate::dpop::Dpop;
use crate::error::AuthError;
use crate::metrics::Metrics;
use crate::provider::{Budget, Provider, Refusal, TokenPolicy};
use crate::slot::{Generation, Slot, TokenState};
use crate::token::view::Token;

/// Layer-level settings that are not the provider's business.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    /// Timeout of one auth call.
    pub(crate) timeout: Duration,
    /// How long a request waits for a token while the auth server fails transiently.
    pub(crate) max_wait: Duration,
    pub(crate) schedule: Schedule,
    pub(crate) clock: Clock,
}

pub(crate) type Outcome = Result<Arc<TokenState>, AuthError>;

/// Everything the clones of one layer share.
pub(crate) struct Manager {
    pub(crate) slot: Slot,
    pub(crate) policy: TokenPolicy,
    /// Whether the policy allows any replay: requests are copied only then.
    pub(crate) replays: bool,
    pub(crate) metrics: Metrics,
    /// Every token landed, for [`TokenHandle::subscribe`](crate::TokenHandle::subscribe).
    pub(crate) rotations: watch::Sender<Option<Token>>,
    /// The DPoP key and nonces, when the policy has a key.
    pub(crate) dpop: Option<Arc<Dpop>>,
    provider: Box<dyn Provider>,
    settings: Settings,
    transport: Transport,
    /// The token store, if the layer has one.
    store: Option<Persist>,
    flights: Mutex<Flights>,
}

impl Manager {
    pub(crate) fn new(
        provider: Box<dyn Provider>,
        policy: TokenPolicy,
        settings: Settings,
        transport: Transport,
        store: Option<Persist>,
        metrics: Metrics,
    ) -> Self {
        Self {
            slot: Slot::default(),
            replays: policy.replays(),
            dpop: crate::dpop::of(&policy),
            policy,
            metrics,
            rotations: watch::Sender::new(None),
            provider,
            settings,
            transport,
            store,
            flights: Mutex::new(Flights::new(fastrand::Rng::new())),
        }
    }

    /// The key the session is stored under, when the layer has a token store.
    pub(crate) fn store_key(&self) -> Option<&str> {
        self.store.as_ref().map(Persist::key)
    }

    fn lock(&self) -> MutexGuard<'_, Flights> {
        // The lock guards plain data updated in single statements; a panic elsewhere cannot leave
        // it half-written, so a poisoned lock is still consistent.
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the slot holds the token of generation `g`, alive: a 401 on it is news (and costs
    /// a replay); a 401 on any other is not.
    pub(crate) fn holds_live(&self, generation: Generation) -> bool {
        let now = self.settings.clock.moment();
        self.slot
            .load()
            .as_ref()
            .is_some_and(|t| t.generation == generation && now < t.expires_at)
    }

    /// The upstream refused the token of generation `g` and the request will not be replayed:
    /// if the slot still holds `g`, mark it dead and start one refresh in the background, so
    /// that the next requests get a new token.
    pub(crate) fn invalidate(self: &Arc<Self>, generation: Generation) {
        let launch = {
            let mut flights = self.lock();
            let now = self.settings.clock.moment();
            match self.slot.load_full() {
                Some(current) if current.generation == generation && now < current.expires_at => {
                    self.slot.store(Arc::new(current.expired_at(now)));
                    flights.invalidated = Some(current);
                }
                _ => return,
            }
            if flights.running() || flights.failing_fast(now).is_some() {
                None
            } else {
                // Without a runtime the next request reports the error.
                self.open(&mut flights).ok().map(|(_, launch)| launch)
            }
        };
        tracing::debug!(generation = generation.get(), "token refused upstream");
        if let Some(launch) = launch {
            launch.spawn();
        }
    }

    /// Asks for the refresh ahead once `token` is in its refresh window, if this caller is the
    /// one to ask (see `TokenState::claim_refresh`).
    #[inline]
    pub(crate) fn refresh_if_due(self: &Arc<Self>, token: &TokenState, now: Moment) {
        if now >= token.refresh_at && token.claim_refresh(now) && !self.refresh_soon() {
            token.release_refresh_claim();
        }
    }

    /// Starts a background refresh unless one is running or a rejection holds credentials back
    /// (the claim is re-armed for when it ends). Returns `false` when none could start for
    /// another reason (a concurrent decision holding the lock, no runtime), so that the caller
    /// releases its claim and a later request asks again.
    pub(crate) fn refresh_soon(self: &Arc<Self>) -> bool {
        let launch = {
            // Only tried, never waited for: the request must not block.
            let mut flights = match self.flights.try_lock() {
                Ok(flights) => flights,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => return false,
            };
            if flights.running() {
                return true;
            }
            if let Some(until) = flights.rejected_until(self.settings.clock.moment()) {
                if let Some(token) = self.slot.load_full() {
                    token.rearm_refresh(until);
                }
                return true;
            }
            match self.open(&mut flights) {
                Ok((_, launch)) => launch,
                Err(_) => return false,
            }
        };
        launch.spawn();
        true
    }

    /// The layer's clock.
    #[inline]
    pub(crate) fn clock(&self) -> &Clock {
        &self.settings.clock
    }

    /// How long a request waits for a token.
    pub(crate) fn max_wait(&self) -> Duration {
        self.settings.max_wait
    }

    pub(super) fn discard_refresh_token(&self) {
        let _flights = self.lock();
        if let Some(current) = self.slot.load_full() {
            self.slot.store(Arc::new(current.without_refresh_token()));
        }
    }

    /// What the upstream's refusal of the token of `generation` means for a request that
    /// started at `started` and has spent `budget`, as [`TokenPolicy::allows_replay`] weighs
    /// it. Ask before invalidating the token: that makes it old news. A refusal that is not
    /// news is recorded for the requests that reported the token dead first
    /// (`Slot::refuse_again`).
    pub(crate) fn refusal(
        &self,
        generation: Generation,
        budget: &Budget,
        started: Moment,
    ) -> Refusal {
        let news = self.holds_live(generation);
        if !news {
            self.slot.refuse_again(generation);
        }
        let previous = budget.previous();
        Refusal {
            generation,
            news,
            previous_accepted: previous.is_none_or(|g| self.slot.accepted(g)),
            previous_refused_again: previous.is_some_and(|g| self.slot.refused_again(g)),
            in_time: self.settings.clock.moment() < started + self.settings.max_wait,
        }
    }
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("slot", &self.slot)
            .field("policy", &self.policy)
            .field("settings", &self.settings)
            .field("metrics", &self.metrics.snapshot())
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}
