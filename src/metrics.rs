//! Counters the layer keeps about its own auth traffic, the `auth_call` span, and (feature
//! `metrics`) the same counts and timings reported through the [`metrics`](https://docs.rs/metrics)
//! facade. All updates happen on cold paths.
//!
//! NOTE: this file is the one place that reports: every count goes through [`Metrics::incr`],
//! every auth call through [`Metrics::auth_call`], so that the [`MetricsSnapshot`], the facade
//! and the span never disagree. The catalogue in `src/events.md` lists every metric and span,
//! checked against this file by `tests/contracts/events.rs`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, Moment};
use crate::error::{AuthCall, AuthError, Failure};

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
    /// Logins and refreshes that failed (rejected, transient, timeout, malformed, ...).
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

#[derive(Debug)]
pub(crate) struct Metrics {
    /// The layer's name ([`AuthLayerBuilder::metrics_name`](crate::AuthLayerBuilder::metrics_name)):
    /// the `provider` label of its metrics and field of its spans.
    name: Arc<str>,
    /// A keyed session's label, when its layer labels sessions
    /// ([`KeyedAuthLayerBuilder::label_sessions`](crate::KeyedAuthLayerBuilder::label_sessions)):
    /// the `session` label of its metrics.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    session: Option<Arc<str>>,
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

/// The name of a layer that was given none.
pub(crate) const DEFAULT_NAME: &str = "default";

impl Metrics {
    /// The counters of a layer named `name`; with `session`, of a keyed session labelled so.
    pub(crate) fn named(name: Arc<str>, session: Option<Arc<str>>) -> Self {
        Self {
            name,
            session,
            logins: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            revocations: AtomicU64::new(0),
            discoveries: AtomicU64::new(0),
            replays: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            token_waits: AtomicU64::new(0),
            adoptions: AtomicU64::new(0),
            store_failures: AtomicU64::new(0),
            dpop_nonce_retries: AtomicU64::new(0),
        }
    }

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
        #[cfg(feature = "metrics")]
        self.facade_count(counter);
    }

    /// Runs one auth call (`work`, its sends included) in an `auth_call` span, and reports its
    /// outcome once it ends: the span's `outcome` and `duration_ms`, the facade's call counter and
    /// duration histogram, and a failed login or refresh in [`MetricsSnapshot::auth_failures`].
    /// A call whose future is dropped before it ends (its runtime shut down) reports nothing.
    pub(crate) async fn auth_call<T, E>(
        &self,
        call: AuthCall,
        clock: &Clock,
        work: impl Future<Output = Result<T, E>>,
        error_of: fn(&E) -> &AuthError,
    ) -> Result<T, E> {
        let span = tracing::info_span!(
            "auth_call",
            provider = &*self.name,
            kind = call.as_str(),
            outcome = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let started = clock.moment();
        let result = tracing::Instrument::instrument(work, span.clone()).await;
        let elapsed = clock.moment().duration_since(started);
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => outcome(error_of(error).failure()),
        };
        span.record("outcome", outcome);
        span.record("duration_ms", elapsed.as_millis() as u64);
        if result.is_err() && matches!(call, AuthCall::Login | AuthCall::Refresh) {
            self.incr(Counter::AuthFailure);
        }
        #[cfg(feature = "metrics")]
        self.facade_auth_call(call, outcome, elapsed);
        #[cfg(not(feature = "metrics"))]
        let _ = elapsed;
        result
    }

    /// A request (or handle call) waited for a flight until `deadline` minus what was left of
    /// `max_wait`: it got the flight's outcome, or ran out of time.
    pub(crate) fn token_waited(&self, deadline: tokio::time::Instant, max_wait: Duration) {
        #[cfg(feature = "metrics")]
        {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let waited = max_wait.saturating_sub(left);
            ::metrics::histogram!(
                "tower_token_auth_token_wait_duration_seconds",
                self.labels(&[])
            )
            .record(waited.as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (deadline, max_wait);
    }

    /// A new token landed in the slot, living until `expires_at`.
    pub(crate) fn token_landed(&self, expires_at: Moment, clock: &Clock) {
        #[cfg(feature = "metrics")]
        {
            let lifetime = expires_at.duration_since(clock.moment());
            let expiry = clock
                .wall_at(expires_at)
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            ::metrics::gauge!(
                "tower_token_auth_token_expiry_timestamp_seconds",
                self.labels(&[])
            )
            .set(expiry.as_secs_f64());
            ::metrics::gauge!("tower_token_auth_token_lifetime_seconds", self.labels(&[]))
                .set(lifetime.as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (expires_at, clock);
    }

    /// The counters of the facade, beside the snapshot's: auth calls are reported when they
    /// end, with their outcome ([`auth_call`](Self::auth_call)), not here.
    #[cfg(feature = "metrics")]
    fn facade_count(&self, counter: Counter) {
        let name = match counter {
            Counter::Login
            | Counter::Refresh
            | Counter::Revocation
            | Counter::Discovery
            | Counter::AuthFailure => return,
            Counter::Replay => "tower_token_auth_replays_total",
            Counter::TokenWait => "tower_token_auth_token_waits_total",
            Counter::Adoption => "tower_token_auth_adoptions_total",
            Counter::StoreFailure => "tower_token_auth_store_failures_total",
            Counter::DpopNonceRetry => "tower_token_auth_dpop_nonce_retries_total",
        };
        ::metrics::counter!(name, self.labels(&[])).increment(1);
    }

    #[cfg(feature = "metrics")]
    fn facade_auth_call(&self, call: AuthCall, outcome: &'static str, elapsed: Duration) {
        let labels = [("kind", call.as_str()), ("outcome", outcome)];
        ::metrics::counter!("tower_token_auth_auth_calls_total", self.labels(&labels)).increment(1);
        ::metrics::histogram!(
            "tower_token_auth_auth_call_duration_seconds",
            self.labels(&labels)
        )
        .record(elapsed.as_secs_f64());
    }

    /// Every metric's labels: `provider`, then `session` when the layer has one, then `more`. A
    /// bounded set: the layer's name, the session's label, and the values of `more`, which are
    /// the crate's own constants, never a secret or a URL.
    // NOTE: the session label is there only when the user opted in
    // (`KeyedAuthLayerBuilder::label_sessions`): keys may be many, and each is a time series.
    #[cfg(feature = "metrics")]
    fn labels(&self, more: &[(&'static str, &'static str)]) -> Vec<::metrics::Label> {
        let provider = ::metrics::SharedString::from(Arc::clone(&self.name));
        let session = self.session.as_ref().map(|session| {
            ::metrics::Label::new(
                "session",
                ::metrics::SharedString::from(Arc::clone(session)),
            )
        });
        std::iter::once(::metrics::Label::new("provider", provider))
            .chain(session)
            .chain(
                more.iter()
                    .map(|&(key, value)| ::metrics::Label::new(key, value)),
            )
            .collect()
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

/// An auth call's `outcome`: `ok`, or its failure's class.
fn outcome(failure: Failure) -> &'static str {
    match failure {
        Failure::Rejected => "rejected",
        Failure::Transient => "transient",
        Failure::Unexpected => "unexpected",
        Failure::Ambiguous { .. } => "ambiguous",
    }
}
