//! The single flight: at most one login or refresh in progress, its outcome shared by every
//! waiter, and the state that outlives a flight (the transient retry schedule, the rejection
//! backoff, the next generation).
//!
//! A flight is a task of its own, so dropping the request that started it cancels nothing. It
//! retries transient failures itself, as long as someone needs the token: a request waiting, or
//! a still-valid token that a refresh ahead is renewing. Its progress (the last transient
//! failure) and its outcome go to every waiter through one [`Flight`].
//!
//! NOTE: the flights lock guards plain data and is never held across an `.await`, while a task
//! is spawned, while a tracing event is emitted, or while anything else runs that may take it
//! again: a task spawned on a runtime that is shutting down is dropped on the spot, and its guard
//! lands the flight, which locks; a tracing subscriber is user code.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;

use super::{Manager, Outcome};
use crate::clock::Moment;
use crate::error::{AuthCall, AuthError, ErrorKind};
use crate::provider::{Failure, RefreshTiming};
use crate::slot::{Generation, TokenState};
use crate::token::view::Token;
use crate::token::Issued;

/// Everything about flights that needs the lock.
#[derive(Debug)]
pub(super) struct Flights {
    /// The flight in progress, if any.
    current: Option<Arc<Flight>>,
    /// Consecutive transient failures, across flights; reset by a token or a rejection.
    streak: u32,
    /// No flight sends an auth call before this (the transient schedule, kept across flights).
    next_attempt: Option<Moment>,
    /// The latest transient failure of the streak: what a request that gives up before a new
    /// flight's first attempt is told.
    last_transient: Option<AuthError>,
    /// The last rejection and when credentials may go out again.
    rejection: Option<(Moment, AuthError)>,
    /// Consecutive rejections; reset by a token.
    strikes: u32,
    /// The last token this layer marked dead while its own expiry had not passed (a 401
    /// upstream, `TokenHandle::invalidate`, `force_refresh`): what an API that refuses its
    /// refresh as premature still holds valid (see `Manager::restore_premature`).
    pub(super) invalidated: Option<Arc<TokenState>>,
    next_generation: Generation,
    rng: fastrand::Rng,
}

impl Flights {
    pub(super) fn new(rng: fastrand::Rng) -> Self {
        Self {
            current: None,
            streak: 0,
            next_attempt: None,
            last_transient: None,
            rejection: None,
            strikes: 0,
            invalidated: None,
            next_generation: Generation::FIRST,
            rng,
        }
    }

    /// The flight in progress, for a new waiter to join.
    pub(super) fn join(&self) -> Option<Arc<Flight>> {
        self.current.clone()
    }

    /// Whether a flight is in progress.
    pub(super) fn running(&self) -> bool {
        self.current.is_some()
    }

    /// While credentials wait out a rejection: the error a request fails fast with.
    pub(super) fn failing_fast(&self, now: Moment) -> Option<AuthError> {
        let (until, error) = self.rejection.as_ref().filter(|(until, _)| now < *until)?;
        Some(AuthError::failing_fast(error, until.duration_since(now)))
    }

    /// When credentials may go out again, while a rejection holds them back.
    pub(super) fn rejected_until(&self, now: Moment) -> Option<Moment> {
        self.rejection
            .as_ref()
            .map(|(until, _)| *until)
            .filter(|until| now < *until)
    }
}

/// A flight opened under the lock, to be spawned once the lock is released.
#[must_use = "a flight that is not launched never lands"]
pub(super) struct Launch {
    runtime: Handle,
    guard: FlightGuard,
}

impl Launch {
    /// NOTE: call with the flights lock released (see the module docs).
    pub(super) fn spawn(self) {
        self.runtime.spawn(self.guard.fly());
    }
}

/// One flight, as its waiters see it.
#[derive(Debug)]
pub(crate) struct Flight {
    notify: Arc<Notify>,
    outcome: OnceLock<Outcome>,
    /// The latest transient failure (an earlier flight's, until this one fails): what a waiter
    /// that runs out of time is told.
    last_error: Mutex<Option<AuthError>>,
}

/// Who holds a flight besides its waiters: the manager's `current`, and the flight's task.
const HOLDERS: usize = 2;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data, written in single statements: a poisoned lock is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Flight {
    pub(super) fn new(last_error: Option<AuthError>) -> Self {
        Self {
            notify: Arc::new(Notify::new()),
            outcome: OnceLock::new(),
            last_error: Mutex::new(last_error),
        }
    }

    /// Whether a request waits for this flight (`self` is the flight's own handle).
    ///
    /// NOTE: decided under the flights lock, which every joiner takes.
    pub(super) fn has_waiters(self: &Arc<Self>) -> bool {
        Arc::strong_count(self) > HOLDERS
    }

    /// Records the latest transient failure.
    pub(super) fn failed(&self, error: AuthError) {
        let replaced = lock(&self.last_error).replace(error);
        drop(replaced);
    }

    /// Publishes the outcome to every waiter.
    pub(super) fn land(&self, outcome: Outcome) {
        if self.outcome.set(outcome).is_ok() {
            self.notify.notify_waiters();
        }
    }

    /// A waiter's entry, made before the outcome is first checked so that a landing in between
    /// still wakes it.
    pub(super) fn notified(&self) -> OwnedNotified {
        Arc::clone(&self.notify).notified_owned()
    }

    /// The outcome, once landed.
    pub(super) fn outcome(&self) -> Option<Outcome> {
        self.outcome.get().cloned()
    }

    /// What a waiter that ran out of time gets: the latest transient failure as the cause.
    pub(super) fn unavailable(&self, max_wait: Duration) -> AuthError {
        AuthError::unavailable(max_wait, lock(&self.last_error).clone())
    }
}

impl Manager {
    /// Opens a flight: registers it so that others join it, and returns the receiver and the
    /// launch to spawn once the lock is released.
    pub(super) fn open(
        self: &Arc<Self>,
        flights: &mut Flights,
    ) -> Result<(Arc<Flight>, Launch), AuthError> {
        let runtime = Handle::try_current().map_err(|_| AuthError::runtime())?;
        let flight = Arc::new(Flight::new(flights.last_transient.clone()));
        flights.current = Some(Arc::clone(&flight));
        let guard = FlightGuard {
            manager: Arc::clone(self),
            flight: Some(Arc::clone(&flight)),
        };
        Ok((flight, Launch { runtime, guard }))
    }

    /// A transient failure: schedules the next attempt and says how long to wait for it, or
    /// `None` when nobody needs the token now, in which case the flight is closed (the schedule
    /// stays, so the next flight does not retry early).
    fn after_transient(&self, error: &AuthError, flight: &Arc<Flight>) -> Option<Duration> {
        let mut flights = self.lock();
        let now = self.settings.clock.moment();
        flights.streak = flights.streak.saturating_add(1);
        let replaced = flights.last_transient.replace(error.clone());
        let valid_for = self
            .slot
            .load_full()
            .filter(|token| now < token.expires_at)
            .map(|token| token.expires_at.duration_since(now));
        let failures = flights.streak;
        let delay = self.settings.schedule.transient_delay(
            &mut flights.rng,
            failures,
            error.retry_after(),
            valid_for,
        );
        flights.next_attempt = Some(now + delay);
        // NOTE: decided under the lock that joiners take, so no request joins a flight that is
        // about to end with a transient error: requests never fail for one.
        let needed = flight.has_waiters() || valid_for.is_some();
        if !needed {
            flights.current = None;
        }
        drop(flights);
        drop(replaced);
        let retry_in_ms = delay.as_millis() as u64;
        if needed {
            tracing::warn!(failures, retry_in_ms, error = %error, "auth failed; retrying");
            Some(delay)
        } else {
            tracing::warn!(
                failures,
                retry_in_ms,
                error = %error,
                "auth failed; no request waiting, retrying on the next need"
            );
            None
        }
    }

    /// The slot's state for `issued`, with the next generation. Renewed ahead of expiry by the
    /// policy's margin, spread by a jitter so that many clients given tokens at the same moment
    /// do not renew in lockstep.
    fn new_state(self: &Arc<Self>, flights: &mut Flights, issued: Issued) -> Arc<TokenState> {
        let generation = flights.next_generation;
        flights.next_generation = generation.next();
        let margin = match self.policy.refresh {
            RefreshTiming::Ahead { margin } => Some(margin),
            RefreshTiming::AfterExpiry => None,
        };
        let refresh_at = issued.renew_at(margin, flights.rng.f64());
        Arc::new(TokenState::issued(issued, refresh_at, generation))
    }

    /// A stored session whose access token has expired, taken to be renewed with its refresh
    /// token: into the slot, as the token the flight renews. Nobody is told: it cannot be sent.
    pub(super) fn adopt_expired(self: &Arc<Self>, issued: Issued) {
        let mut flights = self.lock();
        let state = self.new_state(&mut flights, issued);
        self.slot.store(state);
    }

    /// A token: into the slot, every schedule reset.
    fn land_token(self: &Arc<Self>, issued: Issued) -> Outcome {
        let mut flights = self.lock();
        let state = self.new_state(&mut flights, issued);
        self.slot.store(Arc::clone(&state));
        flights.streak = 0;
        flights.next_attempt = None;
        let last_transient = flights.last_transient.take();
        let rejection = flights.rejection.take();
        flights.strikes = 0;
        flights.current = None;
        let invalidated = flights.invalidated.take();
        drop(flights);
        drop(invalidated);
        // Errors may hold the user's transport errors: dropped with the lock released.
        drop((last_transient, rejection));
        self.rotations
            .send_replace(Some(Token::new(Arc::clone(&state), self)));
        self.metrics
            .token_landed(state.expires_at, &self.settings.clock);
        Ok(state)
    }

    /// A rejection (or a failure that retrying cannot fix): requests fail fast with it until the
    /// rejection backoff ends; a still-valid token stays in use meanwhile.
    fn land_rejection(&self, error: AuthError, started_with: Option<Arc<TokenState>>) -> Outcome {
        let mut flights = self.lock();
        let now = self.settings.clock.moment();
        flights.strikes = flights.strikes.saturating_add(1);
        let strikes = flights.strikes;
        let delay = self
            .settings
            .schedule
            .rejection_delay(&mut flights.rng, strikes);
        let until = now + delay;
        let replaced = flights.rejection.replace((until, error.clone()));
        let last_transient = flights.last_transient.take();
        flights.streak = 0;
        flights.next_attempt = None;
        flights.current = None;
        // Requests in the refresh window ask again once credentials may go out.
        for token in [started_with, self.slot.load_full()].into_iter().flatten() {
            token.rearm_refresh(until);
        }
        drop(flights);
        drop((replaced, last_transient));
        tracing::warn!(
            strikes,
            retry_in_ms = delay.as_millis() as u64,
            error = %error,
            "auth rejected; backing off"
        );
        Err(error)
    }
}

impl Manager {
    /// A flight whose task ended without an outcome (its runtime shut down): no verdict on the
    /// credentials, no backoff; its waiters are told, and the next request starts a new flight.
    fn land_aborted(&self) -> Outcome {
        let mut flights = self.lock();
        flights.current = None;
        drop(flights);
        tracing::warn!(
            "auth flight aborted (its runtime shut down); the next request starts another"
        );
        Err(AuthError::aborted())
    }

    /// Under [`RefreshTiming::AfterExpiry`], a refresh the API refused without rejecting it (an
    /// error status, such as Intergiro's answer to a premature refresh) for a token this layer
    /// marked dead before its own expiry: the API still holds that token valid, so it comes back
    /// into the slot as it was. No backoff, no login, and the refresh token is kept: an explicit
    /// invalidation costs one refused refresh, never a refresh loop or an outage.
    fn restore_premature(&self, error: &AuthError) -> Option<Arc<TokenState>> {
        let refused = self.policy.refresh == RefreshTiming::AfterExpiry
            && error.call() == Some(AuthCall::Refresh)
            && error.kind() == ErrorKind::Status
            && error.failure() == Failure::Unexpected;
        if !refused {
            return None;
        }
        let mut flights = self.lock();
        let now = self.settings.clock.moment();
        let invalidated = flights.invalidated.take()?;
        let current = self.slot.load_full()?;
        let same = current.generation == invalidated.generation
            && current.refresh_token.is_some()
            && now < invalidated.expires_at;
        if !same {
            return None;
        }
        self.slot.store(Arc::clone(&invalidated));
        flights.current = None;
        drop(flights);
        tracing::info!(
            generation = invalidated.generation.get(),
            error = %error,
            "refresh refused before the token's expiry; keeping the token"
        );
        Some(invalidated)
    }
}

/// Runs one flight and guarantees it lands: if the task panics (a provider bug) or is dropped
/// (runtime shutdown), the failure is still recorded, the backoff still applies, and every waiter
/// still gets an answer.
struct FlightGuard {
    manager: Arc<Manager>,
    flight: Option<Arc<Flight>>,
}

impl FlightGuard {
    async fn fly(mut self) {
        let Some(flight) = self.flight.as_ref() else {
            return;
        };
        let outcome = Self::attempts(&self.manager, flight).await;
        if let Some(flight) = self.flight.take() {
            flight.land(outcome);
        }
    }

    /// Attempts until a token or a rejection, or a transient failure nobody waits out.
    async fn attempts(manager: &Arc<Manager>, flight: &Arc<Flight>) -> Outcome {
        // Keep to the schedule of the flight before, if it ended on a transient failure.
        let not_before = manager.lock().next_attempt;
        if let Some(at) = not_before {
            tokio::time::sleep_until(manager.settings.clock.instant(at)).await;
        }
        let mut in_a_row = InARow::default();
        loop {
            let current = manager.slot.load_full();
            let error = match manager.attempt().await {
                Ok(issued) => return manager.land_token(issued),
                Err(error) => error,
            };
            if let Some(kept) = manager.restore_premature(&error) {
                return Ok(kept);
            }
            let now = manager.settings.clock.moment();
            let waited_for = manager.slot.load_full().is_none_or(|t| now >= t.expires_at);
            match in_a_row.judge(error, waited_for) {
                Judged::Transient(error) => match manager.after_transient(&error, flight) {
                    Some(delay) => {
                        flight.failed(error);
                        tokio::time::sleep(delay).await;
                    }
                    None => return Err(error),
                },
                Judged::RefreshRejected(error) => {
                    // As a rejected refresh: never sent again; a login next, if the policy says.
                    manager.discard_refresh_token();
                    if !manager.policy.login_on_refresh_rejected {
                        return manager.land_rejection(error, current);
                    }
                    tracing::info!(error = %error, "refresh rejected; logging in");
                }
                Judged::Rejected(error) => return manager.land_rejection(error, current),
            }
        }
    }
}

/// How a flight takes a failed attempt.
enum Judged {
    /// Retried on the transient schedule.
    Transient(AuthError),
    /// The refresh token is refused: a login follows (or the rejection lands, per policy).
    RefreshRejected(AuthError),
    /// Credentials wait out the rejection backoff; requests fail fast meanwhile.
    Rejected(AuthError),
}

/// How many of a flight's latest failures in a row were ambiguous answers, or 2xx answers
/// without a usable token: a failure that keeps coming is no longer taken as transient.
#[derive(Default)]
struct InARow {
    ambiguous: u32,
    unusable: u32,
}

/// Unusable 2xx answers to a login in a row, while requests wait for want of a token, that make
/// a rejection: an auth server that answers every login "successfully" with nothing to use must
/// not be sent credentials every second. Higher than the ambiguous default, as such answers also
/// come from random faults. (While a valid token serves requests, retries are already spaced by
/// its remaining lifetime, and a backoff would only delay the renewal.)
const UNUSABLE_IN_A_ROW: u32 = 5;

impl InARow {
    /// NOTE: the class of one answer is the error's ([`AuthError::failure`], what the provider
    /// said); this is the class of the answers so far, the one place a failed attempt is judged.
    /// `waited_for`: no valid token serves requests meanwhile.
    fn judge(&mut self, error: AuthError, waited_for: bool) -> Judged {
        let failure = error.failure();
        if let Failure::Ambiguous { repeats } = failure {
            self.unusable = 0;
            self.ambiguous += 1;
            if self.ambiguous < repeats {
                return Judged::Transient(error);
            }
            let rejected = error.repeated(self.ambiguous);
            self.ambiguous = 0;
            return match rejected.call() {
                Some(AuthCall::Refresh) => Judged::RefreshRejected(rejected),
                _ => Judged::Rejected(rejected),
            };
        }
        self.ambiguous = 0;
        if waited_for && error.is_unusable_answer() && error.call() == Some(AuthCall::Login) {
            self.unusable += 1;
            if self.unusable >= UNUSABLE_IN_A_ROW {
                self.unusable = 0;
                return Judged::Rejected(error);
            }
            return Judged::Transient(error);
        }
        self.unusable = 0;
        match failure {
            Failure::Transient => Judged::Transient(error),
            _ => Judged::Rejected(error),
        }
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let Some(flight) = self.flight.take() else {
            return;
        };
        // NOTE: a panic (a provider bug) would come back with every flight: backed off like a
        // rejection. A runtime shutting down says nothing of the credentials: the flight just
        // ends, and the next request starts a new one on its own runtime at once.
        let outcome = if std::thread::panicking() {
            let current = self.manager.slot.load_full();
            self.manager.land_rejection(AuthError::aborted(), current)
        } else {
            self.manager.land_aborted()
        };
        flight.land(outcome);
    }
}
