//! The session beyond this process: what an attempt of a flight does with a token store.
//!
//! With a store, every attempt takes the session's lease (and while another process holds it,
//! watches the store for the session that process is renewing), re-reads the store, and adopts
//! the stored session when it is not the one this layer holds: another process renewed it, and
//! the refresh token held here is spent. Only otherwise does it call the auth server; it then
//! saves what the server issued and releases the lease.
//!
//! Store failures are logged and counted, never passed to requests: without a working store the
//! layer behaves as it does without one.
//!
//! NOTE: only flights call the store, and one flight runs at a time, so what this layer holds
//! (`Persist::held`) changes only here, between the store calls.

use std::error::Error as _;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::exchange::Fresh;
use super::Manager;
use crate::error::AuthError;
use crate::metrics::Counter;
use crate::provider::Provider;
use crate::store::{Lease, StoreFuture, StoredSession, TokenStore};

/// How often an attempt asks again for a lease another process holds, at most and at least.
const LEASE_POLL: (Duration, Duration) = (Duration::from_millis(10), Duration::from_millis(250));

/// A layer's token store and what it knows of the stored session.
pub(crate) struct Persist {
    store: Arc<dyn TokenStore>,
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
    pub(crate) fn new(store: Arc<dyn TokenStore>, key: Arc<str>, lease_ttl: Duration) -> Self {
        Self {
            store,
            key,
            lease_ttl,
            held: Mutex::new(None),
        }
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
    Adopt(Fresh, Held),
    /// Another, newer token of the session, expired: to be renewed with its refresh token (the
    /// one held here is spent). With the stored version.
    RenewStored(Fresh, Held),
    /// The stored session is the one held (or older, or missing, or unusable): the held token
    /// is renewed. With the newest version seen.
    Renew(u64),
}

/// The lease an attempt goes on with, or the session that came meanwhile.
enum Leased {
    /// `None`: the store could not lease, or the lease never came free; renewing without it.
    Taken(Option<Lease>),
    Adopted(Fresh),
}

impl<P: Provider> Manager<P> {
    /// One attempt of a flight: through the store when the layer has one (see the module docs),
    /// else straight to the auth server.
    pub(super) async fn attempt(self: &Arc<Self>) -> Result<Fresh, AuthError> {
        let Some(persist) = &self.store else {
            return self.renew().await;
        };
        let lease = match self.take_lease(persist).await {
            Leased::Taken(lease) => lease,
            Leased::Adopted(fresh) => return Ok(fresh),
        };
        let outcome = self.renew_under_lease(persist).await;
        if let Some(lease) = lease {
            let released = persist.store.release(&persist.key, lease);
            let _ = self.store_op("release", released).await;
        }
        outcome
    }

    /// Renews the slot's token: a refresh while it has a live refresh token, else a login.
    async fn renew(&self) -> Result<Fresh, AuthError> {
        let current = self.slot.load_full();
        let now = self.settings.clock.moment();
        let refresh = current
            .as_deref()
            .and_then(|s| Some((s.usable_refresh_token(now)?, s.refresh_expires_at)));
        self.authenticate(refresh).await
    }

    /// Takes the session's lease; while another process holds it, adopts the session that
    /// process saves as soon as it is there. Waits at most the lease TTL (by which a crashed
    /// holder's lease has lapsed).
    async fn take_lease(&self, persist: &Persist) -> Leased {
        let clock = self.settings.clock;
        let started = clock.moment();
        let poll = (persist.lease_ttl / 16).clamp(LEASE_POLL.0, LEASE_POLL.1);
        // An unusable entry or a failing load is reported on the first poll only.
        let mut report = true;
        loop {
            let lease = persist.store.lease(&persist.key, persist.lease_ttl);
            match self.store_op("lease", lease).await {
                Ok(Some(lease)) => return Leased::Taken(Some(lease)),
                Ok(None) => {}
                Err(_) => return Leased::Taken(None),
            }
            if let Verdict::Adopt(fresh, held) = self.verdict(persist, report).await {
                self.adopted(persist, held);
                return Leased::Adopted(fresh);
            }
            report = false;
            if clock.moment().duration_since(started) > persist.lease_ttl {
                tracing::warn!(
                    lease_ttl_ms = persist.lease_ttl.as_millis() as u64,
                    "token store lease still held after its TTL; renewing without it"
                );
                return Leased::Taken(None);
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// With the lease held: re-reads the store, and renews only if the stored session is the
    /// one held; saves what the auth server issued.
    async fn renew_under_lease(self: &Arc<Self>, persist: &Persist) -> Result<Fresh, AuthError> {
        let version = match self.verdict(persist, true).await {
            Verdict::Adopt(fresh, held) => {
                self.adopted(persist, held);
                return Ok(fresh);
            }
            Verdict::RenewStored(fresh, held) => {
                // Into the slot, so that the renewal uses (and on rejection drops) its refresh
                // token, and so does the next attempt should this one fail.
                self.adopt_expired(fresh);
                persist.set_held(held);
                held.version
            }
            Verdict::Renew(version) => version,
        };
        let fresh = self.renew().await?;
        let session = fresh
            .session(&self.settings.clock)
            .with_version(version.saturating_add(1));
        let saved = persist.store.save(&persist.key, &session);
        if self.store_op("save", saved).await.is_ok() {
            tracing::debug!(
                version = session.version(),
                "session saved to the token store"
            );
        }
        persist.hold(&session);
        Ok(fresh)
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
        match Fresh::stored(&stored, &self.policy, &self.settings.clock) {
            Ok(fresh) if fresh.is_live() => Verdict::Adopt(fresh, found),
            Ok(fresh) => Verdict::RenewStored(fresh, found),
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
