//! The session beyond this process: what an attempt of a flight does with a token store.
//!
//! With a store, every attempt takes the session's lease (and while another process holds it,
//! watches the store for the session that process is renewing), re-reads the store, and adopts
//! the stored session when it is not the one this layer holds: another process renewed it, and
//! the refresh token held here is spent. Only otherwise does it call the auth server; it then
//! saves what the server issued and releases the lease.
//!
//! The lease is kept while the auth calls run (extended every third of its TTL), and checked
//! before the first auth call and before the save (with the store, once the last confirmation is
//! a third of the TTL old). A lease lost before the auth call means another process may be
//! renewing from the same stored session: nothing is sent, and the attempt starts over (taking
//! the lease, re-reading, adopting). Lost during the auth call, the call cannot be taken back: the
//! attempt re-reads the store and adopts what the new holder saved, or saves its own if nobody
//! did, so that the store never keeps a refresh token this layer spent.
//!
//! Store failures are logged and counted, never passed to requests: without a working store the
//! layer behaves as it does without one.
//!
//! NOTE: only flights call the store, and one flight runs at a time, so what this layer holds
//! (`Persist::held`) changes only here, between the store calls.

use std::error::Error as _;
use std::fmt;
use std::future::{pending, poll_fn, Future};
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use super::Manager;
use crate::clock::Moment;
use crate::error::AuthError;
use crate::metrics::Counter;
use crate::store::{StoreFuture, StoredSession, Stores, MAX_LEASE_TTL};
use crate::token::Issued;

/// How often an attempt asks again for a lease another process holds, at most and at least.
const LEASE_POLL: (Duration, Duration) = (Duration::from_millis(10), Duration::from_millis(250));

/// The shortest lease the layer takes. A lease is extended every third of its TTL, each time by
/// one store call: a second leaves two thirds of one for that call to land, which a working
/// store (memory, local files, Redis over a network) does in milliseconds. Shorter leases would
/// lapse between heartbeats, and every renewal would start over until it gave up the lease.
pub(crate) const MIN_LEASE_TTL: Duration = Duration::from_secs(1);

/// How many times an attempt starts over after finding its lease lost before its auth call; the
/// last time it renews whatever the lease, as without a store that leases.
const LEASE_ROUNDS: u32 = 3;

/// The calls of one attempt that run under the lease, each bounded by the auth timeout: load,
/// check, refresh, login, check, save. How long a live holder can keep its lease (extending it)
/// is at most this many timeouts; the others wait that long, plus one TTL, before they decide it
/// is stuck.
const STEPS_UNDER_LEASE: u32 = 6;

/// A layer's token store and what it knows of the stored session.
pub(crate) struct Persist {
    store: Arc<dyn Stores>,
    key: Arc<str>,
    lease_ttl: Duration,
    /// The stored session the slot's token is (or is about to be): saved or adopted by this layer.
    held: Mutex<Option<Held>>,
}

/// A stored session, as far as telling it from another goes.
#[derive(Clone, Copy, Debug)]
struct Held {
    id: u64,
    version: u64,
}

impl Persist {
    /// `lease_ttl` is kept between [`MIN_LEASE_TTL`] and an hour (see
    /// [`AuthLayerBuilder::lease_ttl`](crate::AuthLayerBuilder::lease_ttl)).
    pub(crate) fn new(store: Arc<dyn Stores>, key: Arc<str>, lease_ttl: Duration) -> Self {
        Self {
            store,
            key,
            lease_ttl: lease_ttl.clamp(MIN_LEASE_TTL, MAX_LEASE_TTL),
            held: Mutex::new(None),
        }
    }

    /// The key the session is stored under.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// How long after its last confirmation a lease is taken to be held without asking the
    /// store, and how often it is extended while auth calls run.
    fn heartbeat(&self) -> Duration {
        self.lease_ttl / 3
    }

    fn held(&self) -> Option<Held> {
        *self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn hold(&self, session: &StoredSession) {
        self.set_held(Held {
            id: session.id(),
            version: session.version(),
        });
    }

    fn set_held(&self, held: Held) {
        *self.held.lock().unwrap_or_else(PoisonError::into_inner) = Some(held);
    }
}

impl fmt::Debug for Persist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Persist")
            .field("key", &self.key)
            .field("lease_ttl", &self.lease_ttl)
            .field("held", &self.held())
            .finish_non_exhaustive()
    }
}

/// What the store says about the session this layer holds.
enum Verdict {
    /// Another, newer token of the session, still valid: to be used as is.
    Adopt(Issued, Held),
    /// Another, newer token of the session, expired: to be renewed with its refresh token (the
    /// one held here is spent). With the stored version.
    RenewStored(Issued, Held),
    /// The stored session is the one held (or older, or missing, or unusable): the held token
    /// is renewed. With the newest version seen.
    Renew(u64),
}

/// The lease an attempt goes on with, or the session that came meanwhile.
enum Leased {
    /// `None`: the store could not lease, or the lease never came free; renewing without it.
    Taken(Option<Holding>),
    Adopted(Issued),
}

/// A lease an attempt holds, and what it knows of it.
struct Holding {
    lease: u64,
    state: Mutex<HoldingState>,
}

#[derive(Clone, Copy)]
struct HoldingState {
    /// When the last call that took or extended the lease was sent: the store's expiry is a TTL
    /// after the moment it handled the call, so at least a TTL after this.
    confirmed: Moment,
    /// The store said the lease lapsed: never held again.
    lost: bool,
    /// A heartbeat's extension is in progress.
    extending: bool,
}

impl Holding {
    fn new(lease: u64, confirmed: Moment) -> Self {
        Self {
            lease,
            state: Mutex::new(HoldingState {
                confirmed,
                lost: false,
                extending: false,
            }),
        }
    }

    fn state(&self) -> HoldingState {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut HoldingState)) {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// How an attempt under the lease ended.
enum Round {
    Done(Result<Issued, AuthError>),
    /// The lease was lost before any auth call: nothing was sent; start over.
    Lost,
}

impl Manager {
    /// One attempt of a flight: through the store when the layer has one (see the module docs),
    /// else straight to the auth server.
    pub(super) async fn attempt(self: &Arc<Self>) -> Result<Issued, AuthError> {
        let Some(persist) = &self.store else {
            return self.renew().await;
        };
        let mut round = 1;
        loop {
            let holding = match self.take_lease(persist).await {
                Leased::Taken(holding) => holding,
                Leased::Adopted(issued) => return Ok(issued),
            };
            let last = round >= LEASE_ROUNDS;
            let outcome = self
                .renew_under_lease(persist, holding.as_ref(), last)
                .await;
            if let Some(holding) = holding {
                let released = persist.store.release(&persist.key, holding.lease);
                let _ = self.store_op("release", released).await;
            }
            match outcome {
                Round::Done(result) => return result,
                Round::Lost => round += 1,
            }
        }
    }

    /// Renews the slot's token: a refresh while it has a live refresh token, else a login.
    async fn renew(&self) -> Result<Issued, AuthError> {
        let current = self.slot.load_full();
        let now = self.settings.clock.moment();
        let refresh = current
            .as_deref()
            .and_then(|s| Some((s.usable_refresh_token(now)?, s.refresh_expires_at)));
        self.authenticate(refresh).await
    }

    /// Takes the session's lease; while another process holds it, adopts the session that
    /// process saves as soon as it is there. A live holder keeps its lease as long as its
    /// renewal runs, at most [`STEPS_UNDER_LEASE`] auth timeouts; one that crashed loses it a TTL
    /// later. Waits that long, then goes on without the lease (a lease that never lapses, such as
    /// a lock written by a clock far ahead, must not stop renewals for good).
    async fn take_lease(&self, persist: &Persist) -> Leased {
        let clock = self.settings.clock;
        let started = clock.moment();
        let poll = (persist.lease_ttl / 16).clamp(LEASE_POLL.0, LEASE_POLL.1);
        let limit = self
            .settings
            .timeout
            .saturating_mul(STEPS_UNDER_LEASE)
            .saturating_add(persist.lease_ttl);
        // An unusable entry or a failing load is reported on the first poll only.
        let mut report = true;
        loop {
            let sent = clock.moment();
            let lease = persist.store.lease(&persist.key, persist.lease_ttl);
            match self.store_op("lease", lease).await {
                Ok(Some(lease)) => return Leased::Taken(Some(Holding::new(lease, sent))),
                Ok(None) => {}
                Err(_) => return Leased::Taken(None),
            }
            if let Verdict::Adopt(issued, held) = self.verdict(persist, report).await {
                self.adopted(persist, held);
                return Leased::Adopted(issued);
            }
            report = false;
            if clock.moment().duration_since(started) > limit {
                tracing::warn!(
                    waited_ms = limit.as_millis() as u64,
                    "token store lease held longer than any renewal takes; renewing without it"
                );
                return Leased::Taken(None);
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// With the lease held: re-reads the store, and renews only if the stored session is the
    /// one held; saves what the auth server issued. `holding`: the lease, if taken; `last`:
    /// whether to renew even when the lease was lost (the last round).
    async fn renew_under_lease(
        self: &Arc<Self>,
        persist: &Persist,
        holding: Option<&Holding>,
        last: bool,
    ) -> Round {
        let version = match self.verdict(persist, true).await {
            Verdict::Adopt(issued, held) => {
                self.adopted(persist, held);
                return Round::Done(Ok(issued));
            }
            Verdict::RenewStored(issued, held) => {
                // Into the slot, so that the renewal uses (and on rejection drops) its refresh
                // token, and so does the next attempt should this one fail.
                self.adopt_expired(issued);
                persist.set_held(held);
                held.version
            }
            Verdict::Renew(version) => version,
        };
        // NOTE: the fence. Whoever took a lapsed lease may be renewing from the same stored
        // session: presenting its refresh token too would spend it twice.
        if let Some(holding) = holding {
            if !self.still_held(persist, holding).await {
                if !last {
                    tracing::info!("token store lease lost before the auth call; starting over");
                    return Round::Lost;
                }
                tracing::warn!(
                    rounds = LEASE_ROUNDS,
                    "token store lease lost before the auth call every time; renewing without it"
                );
            }
        }
        let issued = match self.renew_keeping(persist, holding).await {
            Ok(issued) => issued,
            Err(error) => return Round::Done(Err(error)),
        };
        let mut version = version;
        if let Some(holding) = holding {
            if !self.still_held(persist, holding).await {
                // Another holder may have renewed meanwhile: its session stands. If nobody did,
                // the store must not keep the refresh token this renewal spent.
                match self.verdict(persist, true).await {
                    Verdict::Adopt(stored, held) => {
                        tracing::info!("token store lease lost during the auth call; adopting");
                        self.adopted(persist, held);
                        return Round::Done(Ok(stored));
                    }
                    Verdict::RenewStored(_, held) => version = version.max(held.version),
                    Verdict::Renew(stored) => version = version.max(stored),
                }
            }
        }
        let jkt = self.dpop.as_ref().map(|dpop| dpop.thumbprint());
        let session = StoredSession::of(&issued, issued.refresh(), jkt, &self.settings.clock)
            .with_version(version.saturating_add(1));
        let saved = persist.store.save(&persist.key, &session);
        if self.store_op("save", saved).await.is_ok() {
            tracing::debug!(
                version = session.version(),
                "session saved to the token store"
            );
        }
        persist.hold(&session);
        Round::Done(Ok(issued))
    }

    /// Renews the slot's token, extending the lease every third of its TTL meanwhile.
    async fn renew_keeping(
        &self,
        persist: &Persist,
        holding: Option<&Holding>,
    ) -> Result<Issued, AuthError> {
        let Some(holding) = holding else {
            return self.renew().await;
        };
        let mut renewal = pin!(self.renew());
        let mut heartbeat = pin!(self.heartbeat(persist, holding));
        let mut renewed = None;
        // NOTE: the heartbeat is the only store call while the auth calls run, and an extension
        // in progress when they end is finished before the next store call (the save; a file
        // store's extension would otherwise put back a lock just released): the store sees one
        // call at a time from this layer.
        poll_fn(|cx| {
            if renewed.is_none() {
                if let Poll::Ready(result) = renewal.as_mut().poll(cx) {
                    renewed = Some(result);
                }
            }
            let _ = heartbeat.as_mut().poll(cx);
            if holding.state().extending {
                return Poll::Pending;
            }
            renewed.take().map_or(Poll::Pending, Poll::Ready)
        })
        .await
    }

    /// Extends the lease a third of its TTL after each confirmation, until it is lost; never
    /// returns.
    async fn heartbeat(&self, persist: &Persist, holding: &Holding) {
        let clock = self.settings.clock;
        let mut due = holding.state().confirmed + persist.heartbeat();
        loop {
            tokio::time::sleep_until(clock.instant(due)).await;
            holding.update(|s| s.extending = true);
            let extended = self.extend(persist, holding).await;
            holding.update(|s| s.extending = false);
            let state = holding.state();
            if state.lost {
                return pending().await;
            }
            due = if extended {
                state.confirmed + persist.heartbeat()
            } else {
                // The store failed: again a heartbeat from now, while the lease may still last.
                clock.moment() + persist.heartbeat()
            };
        }
    }

    /// Whether the lease is still held: without a store call while its last confirmation is
    /// recent, else by extending it.
    async fn still_held(&self, persist: &Persist, holding: &Holding) -> bool {
        let state = holding.state();
        if state.lost {
            return false;
        }
        let age = self.settings.clock.moment().duration_since(state.confirmed);
        age < persist.heartbeat() || self.extend(persist, holding).await
    }

    /// Extends the lease by a TTL; `false` when lost (recorded) or when the store failed.
    async fn extend(&self, persist: &Persist, holding: &Holding) -> bool {
        let sent = self.settings.clock.moment();
        let extended = persist
            .store
            .extend(&persist.key, holding.lease, persist.lease_ttl);
        match self.store_op("extend", extended).await {
            Ok(true) => {
                holding.update(|s| s.confirmed = s.confirmed.max(sent));
                true
            }
            Ok(false) => {
                holding.update(|s| s.lost = true);
                tracing::info!(
                    lease_ttl_ms = persist.lease_ttl.as_millis() as u64,
                    "token store lease lapsed"
                );
                false
            }
            Err(_) => false,
        }
    }

    /// Reads the store and judges its session against the one held; `report`: whether a failure
    /// is logged and counted.
    async fn verdict(&self, persist: &Persist, report: bool) -> Verdict {
        let held = persist.held();
        let held_version = held.map_or(0, |h| h.version);
        let loaded = persist.store.load(&persist.key);
        let loaded = if report {
            self.store_op("load", loaded).await
        } else {
            self.bounded("load", loaded).await
        };
        let stored = match loaded {
            Ok(Some(stored)) => stored,
            Ok(None) | Err(_) => return Verdict::Renew(held_version),
        };
        // NOTE: a session older than the one held is one whose save failed here: not adopted,
        // or a spent refresh token would come back.
        let newer = held.is_none_or(|h| h.id != stored.id() && stored.version() >= h.version);
        if !newer {
            return Verdict::Renew(held_version.max(stored.version()));
        }
        let found = Held {
            id: stored.id(),
            version: stored.version(),
        };
        // A token bound to a DPoP key is only of use with that key: another holder's session
        // is left alone, and this layer renews its own.
        if let Some(jkt) = stored.dpop_jkt() {
            if self
                .dpop
                .as_ref()
                .is_none_or(|dpop| dpop.thumbprint() != jkt)
            {
                tracing::info!("stored session is bound to another DPoP key; not adopted");
                return Verdict::Renew(held_version.max(stored.version()));
            }
        }
        let header = self
            .token_header(stored.access_token(), stored.dpop_jkt().is_some())
            .map_err(|_| AuthError::store("stored access token is not a valid header value", None));
        match header.map(|header| stored.issued(header, &self.settings.clock)) {
            Ok(issued) if issued.is_live() => Verdict::Adopt(issued, found),
            Ok(issued) => Verdict::RenewStored(issued, found),
            Err(error) => {
                if report {
                    self.store_failed("load", &error);
                }
                Verdict::Renew(held_version.max(stored.version()))
            }
        }
    }

    fn adopted(&self, persist: &Persist, held: Held) {
        persist.set_held(held);
        self.metrics.incr(Counter::Adoption);
        tracing::info!(
            version = held.version,
            "session adopted from the token store"
        );
    }

    /// Runs one store call, bounded by the auth timeout; a failure is logged and counted.
    async fn store_op<T>(
        &self,
        op: &'static str,
        call: StoreFuture<'_, T>,
    ) -> Result<T, AuthError> {
        let result = self.bounded(op, call).await;
        if let Err(error) = &result {
            self.store_failed(op, error);
        }
        result
    }

    /// Runs one store call, bounded by the auth timeout.
    async fn bounded<T>(&self, op: &'static str, call: StoreFuture<'_, T>) -> Result<T, AuthError> {
        let timeout = self.settings.timeout;
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(AuthError::store(
                format!("{op} timed out after {timeout:?}"),
                None,
            )),
        }
    }

    fn store_failed(&self, op: &'static str, error: &AuthError) {
        self.metrics.incr(Counter::StoreFailure);
        let cause = error.source().map(ToString::to_string);
        tracing::warn!(
            op,
            error = %error,
            cause = cause.as_deref(),
            "token store failed; carrying on without it"
        );
    }
}
