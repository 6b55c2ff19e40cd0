//! The token manager: one login or refresh in flight at a time, shared by every waiting request.
//!
//! A flight runs as its own tokio task, so dropping the request that started it cancels nothing;
//! its outcome (a token, or one shared [`AuthError`]) reaches every waiter through a `watch`
//! channel. All slot stores happen under the flight lock, which is never held across an `.await`.
//!
//! Failure handling: a rejected refresh falls back to login (per [`Policy`]); any failed flight
//! starts an exponential backoff during which no auth request is sent and requests that need a
//! token fail fast with [`ErrorKind::BackingOff`](crate::ErrorKind::BackingOff).

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Response};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;
use tower_service::Service;

use crate::error::{AuthCall, AuthError, BoxError, ErrorKind};
use crate::metrics::{Counter, Metrics};
use crate::provider::{AuthRequest, AuthResponse, Failure, Policy, Provider, RefreshTiming};
use crate::secret::Secret;
use crate::slot::{Slot, TokenState};
use crate::token::{jwt_lifetime, JwtLifetime, TokenSet, MAX_LIFETIME};

/// Exponential backoff between failed auth attempts.
///
/// After the `n`th consecutive failure, no credentials or refresh tokens are sent for
/// `initial * multiplier^(n-1)`, capped at `max`. A success resets it.
///
/// ```
/// use std::time::Duration;
/// use tower_token_auth::Backoff;
///
/// let backoff = Backoff::default();
/// assert_eq!(backoff.delay(1), Duration::from_secs(1));
/// assert_eq!(backoff.delay(3), Duration::from_secs(4));
/// assert_eq!(backoff.delay(30), Duration::from_secs(60));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backoff {
    /// Delay after the first failure. Default: 1 s.
    pub initial: Duration,
    /// Upper bound of the delay. Default: 60 s.
    pub max: Duration,
    /// Growth factor per consecutive failure. Default: 2.
    pub multiplier: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            multiplier: 2,
        }
    }
}

impl Backoff {
    /// A backoff starting at `initial`, growing by `multiplier` per failure, capped at `max`.
    pub const fn new(initial: Duration, max: Duration, multiplier: u32) -> Self {
        Self {
            initial,
            max,
            multiplier,
        }
    }

    /// The delay after `failures` consecutive failures (zero for none). Never more than ten
    /// years, whatever the settings, so that it can always be added to an instant.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = self.multiplier.max(1).saturating_pow(failures - 1);
        self.initial
            .saturating_mul(factor)
            .min(self.max)
            .min(MAX_LIFETIME)
    }
}

/// The auth transport as the manager uses it: the response body already collected under the cap.
pub(crate) type Transport = BoxCloneSyncService<AuthRequest, AuthResponse, AuthError>;

/// Wraps a user's HTTP service as a [`Transport`].
///
/// NOTE: no redirect is followed here, and none may be: credentials go only to the configured
/// endpoint. A 3xx answer is a transient failure like any other unexpected status.
pub(crate) fn transport<T, RB>(service: T, max_response_bytes: usize) -> Transport
where
    T: Service<AuthRequest, Response = Response<RB>> + Clone + Send + Sync + 'static,
    T::Error: Into<BoxError>,
    T::Future: Send + 'static,
    RB: Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Into<BoxError>,
{
    BoxCloneSyncService::new(tower::service_fn(move |request: AuthRequest| {
        let service = service.clone();
        async move {
            let response = service
                .oneshot(request)
                .await
                .map_err(|e| AuthError::transport(e.into()))?;
            let (parts, body) = response.into_parts();
            let status = parts.status;
            let body = Limited::new(body, max_response_bytes)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<LengthLimitError>() {
                        AuthError::too_large(max_response_bytes, status)
                    } else {
                        AuthError::transport(e)
                    }
                })?
                .to_bytes();
            Ok(Response::from_parts(parts, body))
        }
    }))
}

/// Layer-level settings that are not the provider's business.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub(crate) timeout: Duration,
    pub(crate) backoff: Backoff,
}

type Outcome = Result<Arc<TokenState>, AuthError>;

struct Flights {
    /// The flight in progress, if any.
    current: Option<watch::Receiver<Option<Outcome>>>,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<AuthError>,
    next_generation: u64,
}

/// Everything the clones of one layer share.
pub(crate) struct Manager<P> {
    pub(crate) slot: Slot,
    pub(crate) policy: Policy,
    pub(crate) metrics: Metrics,
    provider: P,
    settings: Settings,
    transport: Transport,
    flights: Mutex<Flights>,
}

impl<P: Provider> Manager<P> {
    pub(crate) fn new(
        provider: P,
        policy: Policy,
        settings: Settings,
        transport: Transport,
    ) -> Self {
        Self {
            slot: Slot::default(),
            policy,
            metrics: Metrics::default(),
            provider,
            settings,
            transport,
            flights: Mutex::new(Flights {
                current: None,
                failures: 0,
                retry_at: None,
                last_error: None,
                next_generation: 1,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Flights> {
        // The lock guards plain data updated in single statements; a panic elsewhere cannot leave
        // it half-written, so a poisoned lock is still consistent.
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns a usable token, waiting for (or starting) a login or refresh if needed.
    ///
    /// With `rejected = Some(g)`, the upstream rejected the token of generation `g`: a newer token
    /// is returned as is; if the slot still holds `g`, it is marked expired and one refresh starts
    /// (or is joined) for everybody.
    pub(crate) async fn token(self: &Arc<Self>, rejected: Option<u64>) -> Outcome {
        let mut flight = {
            let mut flights = self.lock();
            let now = Instant::now();
            if let Some(current) = self.slot.load_full() {
                if now < current.expires_at {
                    if rejected != Some(current.generation) {
                        return Ok(current);
                    }
                    tracing::debug!(generation = current.generation, "token rejected upstream");
                    self.slot.store(Arc::new(current.expired_at(now)));
                }
            }
            match flights.current.as_ref() {
                // A closed sender means the flight's task was dropped (runtime shutting down).
                Some(rx) if rx.has_changed().is_ok() => rx.clone(),
                _ => {
                    if let Some(wait) = flights.backoff_remaining(now) {
                        let last = flights
                            .last_error
                            .clone()
                            .unwrap_or_else(AuthError::aborted);
                        return Err(AuthError::backing_off(wait, last));
                    }
                    self.start(&mut flights)?
                }
            }
        };
        let outcome = match flight.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone(),
            Err(_) => None,
        };
        // The flight always sends an outcome, even when it panics (see `FlightGuard`); only a
        // runtime shutting down can drop it unsent.
        outcome.unwrap_or_else(|| Err(AuthError::aborted()))
    }

    /// The upstream rejected the token of generation `g` and the request will not be replayed:
    /// if the slot still holds `g`, mark it expired and start one refresh in the background, so
    /// that later requests do not keep sending a dead token.
    pub(crate) fn invalidate(self: &Arc<Self>, generation: u64) {
        let mut flights = self.lock();
        let now = Instant::now();
        match self.slot.load_full() {
            Some(current) if current.generation == generation && now < current.expires_at => {
                tracing::debug!(generation, "token rejected upstream");
                self.slot.store(Arc::new(current.expired_at(now)));
            }
            _ => return,
        }
        let running = flights
            .current
            .as_ref()
            .is_some_and(|rx| rx.has_changed().is_ok());
        if !running && flights.backoff_remaining(now).is_none() {
            // Without a runtime the next request reports the error.
            let _ = self.start(&mut flights);
        }
    }

    /// Starts a background refresh unless one is running or the backoff holds (a timer releases
    /// the claim when the backoff ends). Returns `false` when none could start for another reason
    /// (a concurrent decision holding the lock, no runtime), so that the caller releases its claim
    /// and a later request asks again.
    pub(crate) fn refresh_soon(self: &Arc<Self>) -> bool {
        // Only tried, never waited for: the request must not block.
        let mut flights = match self.flights.try_lock() {
            Ok(flights) => flights,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return false,
        };
        let running = flights
            .current
            .as_ref()
            .is_some_and(|rx| rx.has_changed().is_ok());
        if running || flights.backoff_remaining(Instant::now()).is_some() {
            return true;
        }
        self.start(&mut flights).is_ok()
    }

    fn start(
        self: &Arc<Self>,
        flights: &mut Flights,
    ) -> Result<watch::Receiver<Option<Outcome>>, AuthError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AuthError::runtime())?;
        let (tx, rx) = watch::channel(None);
        flights.current = Some(rx.clone());
        let guard = FlightGuard {
            manager: Arc::clone(self),
            tx: Some(tx),
        };
        // NOTE: the flight is a task of its own so that no caller's cancellation can stop it.
        runtime.spawn(guard.fly());
        Ok(rx)
    }

    /// Records a flight's result: the new token in the slot, or the failure and its backoff.
    fn land(
        self: &Arc<Self>,
        current: Option<&Arc<TokenState>>,
        result: Result<(Issued, Option<Kept>), AuthError>,
    ) -> Outcome {
        let mut flights = self.lock();
        let now = Instant::now();
        let outcome = result.map(|(issued, kept)| {
            let generation = flights.next_generation;
            flights.next_generation += 1;
            Arc::new(issued.into_state(kept, generation, self.policy.refresh))
        });
        match &outcome {
            Ok(state) => {
                self.slot.store(Arc::clone(state));
                flights.failures = 0;
                flights.retry_at = None;
                flights.last_error = None;
            }
            Err(error) => {
                flights.failures = flights.failures.saturating_add(1);
                let delay = self.settings.backoff.delay(flights.failures);
                let retry_at = now.checked_add(delay).unwrap_or(now);
                flights.retry_at = Some(retry_at);
                flights.last_error = Some(error.clone());
                self.release_claims_at(retry_at, current.cloned());
                tracing::warn!(
                    failures = flights.failures,
                    backoff_ms = delay.as_millis() as u64,
                    error = %error,
                    "auth failed; backing off"
                );
            }
        }
        flights.current = None;
        outcome
    }

    /// Once the backoff ends, lets the next request in the refresh window ask again. Until then
    /// requests keep their claim and do not touch the lock.
    fn release_claims_at(&self, at: Instant, started_with: Option<Arc<TokenState>>) {
        let slot_now = self.slot.load_full();
        let release = move || {
            for state in [&started_with, &slot_now].into_iter().flatten() {
                state.release_refresh_claim();
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    tokio::time::sleep_until(at).await;
                    release();
                });
            }
            Err(_) => release(),
        }
    }

    fn discard_refresh_token(&self) {
        let _flights = self.lock();
        if let Some(current) = self.slot.load_full() {
            self.slot.store(Arc::new(current.without_refresh_token()));
        }
    }

    /// Refreshes when a live refresh token exists, falling back to login per policy.
    /// Returns the new tokens and the refresh token to keep if the server did not rotate it.
    async fn authenticate(
        &self,
        current: Option<&TokenState>,
    ) -> Result<(Issued, Option<Kept>), AuthError> {
        let now = Instant::now();
        if let Some(state) = current {
            if let Some(refresh_token) = state.usable_refresh_token(now) {
                let request = match self.provider.refresh_request(refresh_token) {
                    Ok(request) => Some(Ok(request)),
                    Err(e) => {
                        // This refresh token can never be sent: drop it and log in.
                        tracing::warn!(error = %e, "refresh request cannot be built; logging in");
                        self.discard_refresh_token();
                        None
                    }
                };
                match self.call(AuthCall::Refresh, request).await {
                    Ok(issued) => {
                        let kept = self.policy.keep_unrotated_refresh_token.then(|| Kept {
                            token: refresh_token.clone(),
                            expires_at: state.refresh_expires_at,
                        });
                        return Ok((issued, kept));
                    }
                    Err(e) if e.is_refresh_rejected() => {
                        // Never send a rejected refresh token again, whatever the login does.
                        self.discard_refresh_token();
                        if !self.policy.login_on_refresh_rejected {
                            return Err(e);
                        }
                        tracing::info!(error = %e, "refresh rejected; logging in");
                    }
                    Err(e) if e.kind() == ErrorKind::Config && e.call().is_none() => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let request = self.provider.login_request();
        Ok((self.call(AuthCall::Login, Some(request)).await?, None))
    }

    /// Sends one auth request and turns its response into a usable token or a classified error.
    ///
    /// `None` stands for a request that could not be built (already reported): it fails with a
    /// configuration error that the caller recognizes by its missing call attribution.
    async fn call(
        &self,
        call: AuthCall,
        request: Option<Result<AuthRequest, AuthError>>,
    ) -> Result<Issued, AuthError> {
        let request = match request {
            Some(request) => request.map_err(|e| e.during(call))?,
            None => return Err(AuthError::config("auth request cannot be built")),
        };
        self.metrics.incr(match call {
            AuthCall::Login => Counter::Login,
            AuthCall::Refresh => Counter::Refresh,
        });
        let started = Instant::now();
        let timeout = self.settings.timeout;
        let response = tokio::time::timeout(timeout, self.transport.clone().oneshot(request)).await;
        // A 2xx answer to a refresh consumed the refresh token, even when the answer is unusable.
        let mut answered_success = false;
        let result = match response {
            Err(_) => Err(AuthError::timeout(timeout)),
            Ok(Err(e)) => {
                answered_success = e.status().is_some_and(|s| s.is_success());
                Err(e)
            }
            Ok(Ok(response)) if response.status().is_success() => {
                answered_success = true;
                self.provider
                    .parse_response(call, &response)
                    .and_then(|tokens| Issued::new(tokens, self.policy.default_lifetime, started))
            }
            Ok(Ok(response)) => {
                let status = response.status();
                let detail = oauth_error_detail(response.body());
                Err(match self.provider.classify_failure(call, &response) {
                    Failure::Rejected => AuthError::rejected(call, status, detail),
                    Failure::Transient => AuthError::status_error(status, detail),
                })
            }
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(_) => tracing::info!(call = %call, elapsed_ms, "auth call succeeded"),
            Err(e) => {
                self.metrics.incr(Counter::AuthFailure);
                tracing::warn!(call = %call, elapsed_ms, error = %e, "auth call failed");
                if call == AuthCall::Refresh && answered_success {
                    // Never send a consumed refresh token again.
                    self.discard_refresh_token();
                }
            }
        }
        result.map_err(|e| e.during(call))
    }
}

/// Runs one flight and guarantees it lands: if the task panics (a provider bug) or is dropped
/// (runtime shutdown), the failure is still recorded, the backoff still applies, and every waiter
/// still gets an answer.
struct FlightGuard<P: Provider> {
    manager: Arc<Manager<P>>,
    tx: Option<watch::Sender<Option<Outcome>>>,
}

impl<P: Provider> FlightGuard<P> {
    async fn fly(mut self) {
        let current = self.manager.slot.load_full();
        let result = self.manager.authenticate(current.as_deref()).await;
        let outcome = self.manager.land(current.as_ref(), result);
        if let Some(tx) = self.tx.take() {
            tx.send_replace(Some(outcome));
        }
    }
}

impl<P: Provider> Drop for FlightGuard<P> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let current = self.manager.slot.load_full();
            let outcome = self
                .manager
                .land(current.as_ref(), Err(AuthError::aborted()));
            tx.send_replace(Some(outcome));
        }
    }
}

impl Flights {
    fn backoff_remaining(&self, now: Instant) -> Option<Duration> {
        self.retry_at
            .filter(|at| now < *at)
            .map(|at| at.duration_since(now))
    }
}

/// A token just received and checked: sendable, with its lifetime known.
struct Issued {
    header: HeaderValue,
    /// When the request that obtained the token was sent: lifetimes count from here.
    sent_at: Instant,
    lifetime: Duration,
    refresh_token: Option<Secret>,
    refresh_lifetime: Option<Duration>,
}

impl Issued {
    /// Checks `tokens` and works out their lifetimes: `expires_in`, else the JWT `exp`, else
    /// `default_lifetime`.
    ///
    /// NOTE: a relative lifetime counts from `sent_at`, not from the response's arrival: the
    /// server issued the token somewhere in between, so the token is never believed valid after
    /// the server's own deadline, however slow the answer was. So does a JWT's `exp - iat`; a JWT
    /// with `exp` alone is read against the local clock at arrival.
    fn new(
        tokens: TokenSet,
        default_lifetime: Duration,
        sent_at: Instant,
    ) -> Result<Self, AuthError> {
        let received_at = Instant::now();
        let access = tokens.access_token().expose();
        let lifetime = match tokens.expires_in() {
            Some(lifetime) => lifetime,
            None => match jwt_lifetime(access, SystemTime::now()) {
                Some(JwtLifetime::Issued(lifetime)) => lifetime,
                Some(JwtLifetime::Remaining(Duration::ZERO)) => {
                    return Err(AuthError::malformed("access token's JWT `exp` has passed"))
                }
                // Counted from arrival, expressed from `sent_at`.
                Some(JwtLifetime::Remaining(lifetime)) => {
                    lifetime + received_at.duration_since(sent_at)
                }
                None => default_lifetime.min(MAX_LIFETIME),
            },
        };
        let mut header = HeaderValue::from_maybe_shared(Bytes::from(format!("Bearer {access}")))
            .map_err(|_| AuthError::invalid_token("access token is not a valid header value"))?;
        header.set_sensitive(true);
        let refresh_lifetime = tokens.refresh_token().and_then(|token| {
            tokens.refresh_expires_in().or_else(|| {
                match jwt_lifetime(token.expose(), SystemTime::now())? {
                    JwtLifetime::Issued(lifetime) => Some(lifetime),
                    JwtLifetime::Remaining(lifetime) => {
                        Some(lifetime + received_at.duration_since(sent_at))
                    }
                }
            })
        });
        Ok(Self {
            header,
            sent_at,
            lifetime,
            refresh_token: tokens.refresh_token().cloned(),
            refresh_lifetime,
        })
    }

    fn into_state(self, kept: Option<Kept>, generation: u64, timing: RefreshTiming) -> TokenState {
        let expires_at = self.sent_at + self.lifetime;
        let refresh_at = match timing {
            RefreshTiming::Proactive { margin } => expires_at - margin.min(self.lifetime / 2),
            RefreshTiming::AfterExpiry => expires_at,
        };
        let (refresh_token, refresh_expires_at) = match (self.refresh_token, kept) {
            (Some(token), _) => (Some(token), self.refresh_lifetime.map(|l| self.sent_at + l)),
            // The server did not rotate the refresh token: keep using the one just accepted.
            (None, Some(kept)) => (Some(kept.token), kept.expires_at),
            (None, None) => (None, None),
        };
        TokenState::new(
            self.header,
            refresh_at,
            expires_at,
            refresh_token,
            refresh_expires_at,
            generation,
        )
    }
}

/// A refresh token that was just accepted, kept when the server does not issue a new one.
struct Kept {
    token: Secret,
    expires_at: Option<Instant>,
}

/// `error` and `error_description` of an OAuth2-style error body (RFC 6749 §5.2), if present.
/// Length-capped and stripped of control characters; these fields never carry secrets.
fn oauth_error_detail(body: &Bytes) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct OAuthError {
        error: String,
        error_description: Option<String>,
    }
    let parsed: OAuthError = serde_json::from_slice(body).ok()?;
    let mut detail = parsed.error;
    if let Some(description) = parsed.error_description {
        detail.push_str(" (");
        detail.push_str(&description);
        detail.push(')');
    }
    Some(
        detail
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect(),
    )
}

impl<P> fmt::Debug for Manager<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("slot", &self.slot)
            .field("policy", &self.policy)
            .field("settings", &self.settings)
            .field("metrics", &self.metrics.snapshot())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 3,
        };
        assert_eq!(backoff.delay(0), Duration::ZERO);
        assert_eq!(backoff.delay(1), Duration::from_millis(100));
        assert_eq!(backoff.delay(2), Duration::from_millis(300));
        assert_eq!(backoff.delay(3), Duration::from_millis(900));
        assert_eq!(backoff.delay(4), Duration::from_secs(1));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(1));
        let never = Backoff::new(Duration::MAX, Duration::MAX, u32::MAX);
        assert_eq!(
            never.delay(7),
            MAX_LIFETIME,
            "clamped: always addable to an instant"
        );
    }

    #[test]
    fn oauth_error_bodies() {
        let detail = |b: &'static [u8]| oauth_error_detail(&Bytes::from_static(b));
        assert_eq!(
            detail(br#"{"error":"invalid_grant","error_description":"Token is not active"}"#),
            Some("invalid_grant (Token is not active)".to_owned())
        );
        assert_eq!(
            detail(br#"{"error":"invalid_client"}"#),
            Some("invalid_client".to_owned())
        );
        assert_eq!(detail(b"<html>500</html>"), None);
        assert_eq!(detail(br#"{"error":"a\r\nb"}"#), Some("ab".to_owned()));
    }
}
