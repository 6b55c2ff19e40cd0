//! The layer: configuration, and the shared state every service it makes uses.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use crate::clock::Clock;
use crate::handle::TokenHandle;
use crate::manager::{AuthTransport, Backoff, Manager, Persist, Schedule, Settings};
use crate::metrics::{Metrics, DEFAULT_NAME};
use crate::provider::{Provider, RefreshTiming, TokenPolicy};
use crate::replay::{CloneBody, NoReplay};
use crate::service::AuthService;
use crate::store::{Stores, TokenStore};
use crate::token::MAX_LIFETIME;

/// Default cap on an auth response body.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Default timeout of one auth call (request and response body).
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default bound on how long a request waits for a token while the auth server keeps failing
/// transiently.
pub(crate) const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);

/// Default cap on how long an auth server's `Retry-After` holds back the next attempt.
pub(crate) const DEFAULT_RETRY_AFTER_CAP: Duration = Duration::from_secs(10);

/// The longest any duration setting means: ten years, longer than any process runs and short
/// enough that every deadline the layer computes from it (an instant, a wall-clock time, a
/// store's lease expiry) can be represented. Longer settings ([`Duration::MAX`] for "never")
/// are taken as this, once, when the layer is built.
const MAX_SETTING: Duration = MAX_LIFETIME;

/// A [`Layer`] that makes every request carry a valid bearer token.
///
/// All services made by one layer, and all their clones, share one token slot, one single-flight
/// token manager and one set of counters. Cloning the layer shares them too; build a second layer
/// for a second, independent session.
///
/// See the [crate documentation](crate) for an example.
pub struct AuthLayer<R = CloneBody> {
    shared: Arc<Manager>,
    replay: R,
}

impl AuthLayer {
    /// A layer with default settings, sending auth calls through `transport`.
    ///
    /// `transport` takes `http::Request<Full<Bytes>>`, and by default ([`CloneBody`]) request
    /// bodies must be `Clone` to be copied for replay: [the two bounds](crate#the-two-bounds)
    /// say which client to pass and what to do with a streaming body.
    ///
    /// # Panics
    ///
    /// When the provider's policy fails [`TokenPolicy::check`].
    pub fn new(provider: impl Provider, transport: impl AuthTransport) -> Self {
        Self::builder(provider).build(transport)
    }

    /// A builder for a layer with non-default settings.
    pub fn builder(provider: impl Provider) -> AuthLayerBuilder {
        AuthLayerBuilder {
            policy: provider.policy(),
            provider: Box::new(provider),
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_wait: DEFAULT_MAX_WAIT,
            schedule: Schedule {
                transient: Backoff::TRANSIENT,
                rejection: Backoff::REJECTION,
                retry_after_cap: DEFAULT_RETRY_AFTER_CAP,
            },
            clock: Clock::default(),
            store: None,
            lease_ttl: None,
            metrics_name: None,
            session_label: None,
        }
    }
}

impl<R> AuthLayer<R> {
    /// Sends every request once and never replays it. For request bodies that cannot be copied.
    pub fn without_replay(self) -> AuthLayer<NoReplay> {
        self.replay_with(NoReplay)
    }

    /// Uses `strategy` to copy requests for replay.
    pub fn replay_with<R2>(self, strategy: R2) -> AuthLayer<R2> {
        AuthLayer {
            shared: self.shared,
            replay: strategy,
        }
    }

    /// A handle on the layer's token: for clients that do not send through the layer, and to
    /// read, invalidate or renew the token, or hear about new ones. It shares the layer's single
    /// flight.
    ///
    /// ```
    /// # use tower_token_auth::AuthLayer;
    /// # use tower_token_auth::provider::Provider;
    /// # async fn run<P: Provider>(layer: AuthLayer) -> Result<(), tower_token_auth::AuthError> {
    /// let handle = layer.handle();
    /// let token = handle.token().await?;
    /// println!("token {} until {:?}", token.generation(), token.expires_at());
    /// # Ok(())
    /// # }
    /// ```
    pub fn handle(&self) -> TokenHandle {
        TokenHandle::new(Arc::clone(&self.shared))
    }

    /// The session's manager.
    pub(crate) fn manager(&self) -> Arc<Manager> {
        Arc::clone(&self.shared)
    }
}

impl<R: Clone> Clone for AuthLayer<R> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            replay: self.replay.clone(),
        }
    }
}

impl<R: fmt::Debug> fmt::Debug for AuthLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("shared", &self.shared)
            .field("replay", &self.replay)
            .finish()
    }
}

impl<S, R: Clone> Layer<S> for AuthLayer<R> {
    type Service = AuthService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService::new(inner, Arc::clone(&self.shared), self.replay.clone())
    }
}

/// Builds an [`AuthLayer`] with non-default settings.
///
/// # When the auth server fails
///
/// | failure | what the layer does | setting (default) |
/// |---|---|---|
/// | *transient*: 5xx, 408, 429, connection failure, timeout, unusable 2xx answer | retries inside the flight; requests keep waiting | [`retry_backoff`](Self::retry_backoff) (100 ms doubling to 1 s, full jitter); `Retry-After` honoured up to [`retry_after_cap`](Self::retry_after_cap) (10 s) |
/// | a request has waited too long | fails with [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable), the last failure as its source | [`max_wait`](Self::max_wait) (30 s) |
/// | *ambiguous*: an answer the provider cannot tell between refused credentials and a server fault ([`Failure::Ambiguous`](crate::provider::Failure::Ambiguous): union-service's JSON 500) | retried like a transient failure; the same class of answer `repeats` times in a row within one flight (3 by default) is a rejection | the provider's `repeats` (a spec's `rejects.repeats`) |
/// | *unusable 2xx, again and again*: a login answered 2xx without a usable token 5 times in a row while requests wait for want of a token | backed off like a rejection, with the answer's own kind | [`rejection_backoff`](Self::rejection_backoff) |
/// | *rejected*: the provider says the credentials are refused, or a failure retrying cannot fix (a configuration error, a `token_type` the policy does not send) | every waiting request fails with the rejection; requests fail fast with it until the backoff ends, then one login is tried | [`rejection_backoff`](Self::rejection_backoff) (5 s doubling to 5 min, plus up to 50 % jitter) |
/// | *aborted*: the runtime running the auth call shut down | its waiters get [`ErrorKind::Aborted`](crate::ErrorKind::Aborted); no backoff, the next request starts a new auth call | — |
///
/// A rejected or unusable refresh falls back to login within the same attempt; only the login's
/// own failure counts. A failed refresh ahead is retried while the token is valid, no later
/// than half its remaining lifetime; requests keep using the token meanwhile.
///
/// ```
/// # use tower_token_auth::AuthLayer;
/// # use tower_token_auth::provider::Provider;
/// # fn build<P: Provider>(provider: P, client: tower::util::BoxCloneSyncService<http::Request<http_body_util::Full<bytes::Bytes>>, http::Response<http_body_util::Full<bytes::Bytes>>, tower::BoxError>) {
/// use std::time::Duration;
///
/// let layer = AuthLayer::builder(provider)
///     .timeout(Duration::from_secs(5))
///     .max_response_bytes(16 * 1024)
///     .max_wait(Duration::from_secs(10))
///     .rejection_backoff(Duration::from_secs(30), Duration::from_secs(600))
///     .build(client);
/// # }
/// ```
///
/// Every duration setting, the policy's included, means at most ten years: a longer one
/// (`Duration::MAX` for "no limit") is taken as ten years when the layer is built, so that
/// every deadline computed from it can be represented.
pub struct AuthLayerBuilder {
    provider: Box<dyn Provider>,
    policy: TokenPolicy,
    timeout: Duration,
    max_response_bytes: usize,
    max_wait: Duration,
    schedule: Schedule,
    clock: Clock,
    store: Option<(Arc<dyn Stores>, Arc<str>)>,
    lease_ttl: Option<Duration>,
    metrics_name: Option<Arc<str>>,
    /// A keyed session's `session` label (set by its keyed layer, never by the user here).
    session_label: Option<Arc<str>>,
}

impl AuthLayerBuilder {
    /// Changes the policy in place, starting from the provider's: the way to adjust when to
    /// refresh, how the token is sent, which answers reject it and how often to replay, for any
    /// provider (a preset, OAuth2, your own).
    ///
    /// ```
    /// # use tower_token_auth::AuthLayer;
    /// # use tower_token_auth::provider::Provider;
    /// # fn build<P: Provider>(provider: P, client: tower::util::BoxCloneSyncService<http::Request<http_body_util::Full<bytes::Bytes>>, http::Response<http_body_util::Full<bytes::Bytes>>, tower::BoxError>) {
    /// use tower_token_auth::provider::{RefreshTiming, TokenHeader};
    ///
    /// let layer = AuthLayer::builder(provider)
    ///     .with_policy(|p| {
    ///         p.refresh = RefreshTiming::AfterExpiry;
    ///         p.header = TokenHeader::new(http::header::AUTHORIZATION).with_scheme("JWT");
    ///     })
    ///     .build(client);
    /// # }
    /// ```
    ///
    /// A provider states its API's own policy with [`Provider::policy`] (presets do); this
    /// starts from that.
    pub fn with_policy(mut self, f: impl FnOnce(&mut TokenPolicy)) -> Self {
        f(&mut self.policy);
        self
    }

    /// Timeout of one auth call, response body included. Default: 10 s. At most ten years
    /// (see [above](Self)): `Duration::MAX` means no timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Cap on an auth response body; larger bodies fail with
    /// [`ErrorKind::ResponseTooLarge`](crate::ErrorKind::ResponseTooLarge). Default: 64 KiB.
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = limit;
        self
    }

    /// Spacing of retries after transient auth failures: `initial` after the first failure,
    /// doubling after each further one up to `max`, with full jitter (each delay drawn between
    /// zero and the nominal one). Default: 100 ms doubling to 1 s. `max` bounds how soon waiting
    /// requests are served once the auth server answers again.
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.schedule.transient = Backoff::new(initial, max, 2);
        self
    }

    /// Spacing of logins after rejected credentials: `initial` after the first rejection,
    /// doubling after each further one up to `max`, plus up to half as much again of jitter;
    /// requests fail fast meanwhile. Default: 5 s doubling to 5 minutes.
    pub fn rejection_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.schedule.rejection = Backoff::new(initial, max, 2);
        self
    }

    /// How long a request waits for a token while the auth server keeps failing transiently,
    /// before it fails with [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable). Default:
    /// 30 seconds. Keep it above the retry schedule's longest delay (and the
    /// `Retry-After` cap): a request arriving after failed attempts waits for the next one they
    /// scheduled. At most ten years (see [above](Self)): `Duration::MAX` means no bound.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// The longest an auth server's `Retry-After` may hold back the next attempt. Default:
    /// 10 seconds.
    pub fn retry_after_cap(mut self, cap: Duration) -> Self {
        self.schedule.retry_after_cap = cap;
        self
    }

    /// The clock for expiry, refresh and backoff decisions. Default: `Clock::default()`, which
    /// follows tokio's clock in a runtime whose time is paused (see
    /// [`Clock`](Clock#paused-time-and-the-coarse-clock)). Set [`Clock::tokio`] to test code
    /// that builds the layer before pausing time.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Keeps the session in `store` under `key`, beyond this layer's memory: the layer starts
    /// from a valid stored session instead of logging in, saves every token it obtains, and
    /// shares the session with every layer and process using the same store and key, one auth
    /// call per renewal among them (see [`store`](crate::store)). Default: no store (the session
    /// lives in the layer's memory).
    ///
    /// `key` names the session: one per account and API, such as `"simacan/alice"`. The
    /// store's entry holds the tokens in plain text ([secrets at rest](crate::store#secrets-at-rest)).
    ///
    /// ```
    /// # use tower_token_auth::AuthLayer;
    /// # use tower_token_auth::provider::Provider;
    /// # fn build<P: Provider>(provider: P, client: tower::util::BoxCloneSyncService<http::Request<http_body_util::Full<bytes::Bytes>>, http::Response<http_body_util::Full<bytes::Bytes>>, tower::BoxError>) {
    /// use tower_token_auth::store::FileStore;
    ///
    /// let layer = AuthLayer::builder(provider)
    ///     .store(FileStore::new("/var/lib/my-service/tokens"), "simacan/alice")
    ///     .build(client);
    /// # }
    /// ```
    pub fn store(mut self, store: impl TokenStore + 'static, key: impl Into<String>) -> Self {
        self.store = Some((Arc::new(store), Arc::from(key.into())));
        self
    }

    /// [`store`](Self::store) with a store shared by several layers' builders (a keyed
    /// layer's sessions).
    pub(crate) fn store_shared(mut self, store: Arc<dyn Stores>, key: Arc<str>) -> Self {
        self.store = Some((store, key));
        self
    }

    /// How long the store's lease on the session lasts without being extended: the longest a
    /// crashed holder delays the others. A live holder extends its lease every third of the TTL
    /// while its renewal runs, however long that takes (see [leases](crate::store#leases)).
    /// Kept between 1 s (shorter leases would lapse between extensions) and an hour. Default:
    /// twice the [`timeout`](Self::timeout).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = Some(ttl);
        self
    }

    /// Names the layer in what it reports: the `provider` label of its metrics (feature
    /// `metrics`) and the `provider` field of its `auth_call` spans, so that the layers of one
    /// process (one per API) are told apart. Default: `default`. A name is one label value:
    /// keep it to a few fixed names, never a secret, a URL or anything made per request (see
    /// the [events catalogue](crate#metrics)).
    pub fn metrics_name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.metrics_name = Some(name.into());
        self
    }

    /// Labels the layer's metrics with `session` beside `provider`: a keyed session's, when its
    /// keyed layer labels sessions
    /// ([`KeyedAuthLayerBuilder::label_sessions`](crate::KeyedAuthLayerBuilder::label_sessions)).
    #[cfg(feature = "metrics")]
    pub(crate) fn session_label(mut self, label: Arc<str>) -> Self {
        self.session_label = Some(label);
        self
    }

    /// Builds the layer, sending auth calls through `transport` (see [`AuthLayer::new`]).
    ///
    /// # Panics
    ///
    /// When the policy (the provider's, as changed by [`with_policy`](Self::with_policy)) fails
    /// [`TokenPolicy::check`]: a zero `default_lifetime` or `max_sends`.
    #[expect(
        clippy::panic,
        reason = "a policy that cannot work is a programming error, refused where the layer is \
                  built (as `tokio::time::interval` refuses a zero period); input is checked \
                  with `TokenPolicy::check`, a typed error"
    )]
    pub fn build(self, transport: impl AuthTransport) -> AuthLayer {
        if let Err(error) = self.policy.check() {
            panic!("AuthLayerBuilder::build: {error}");
        }
        // NOTE: settings are bounded here, once, however they were given: the running code adds
        // them to instants and wall-clock times, which must never overflow.
        let timeout = self.timeout.min(MAX_SETTING);
        let lease_ttl = self
            .lease_ttl
            .unwrap_or(timeout.saturating_mul(2))
            .min(MAX_SETTING);
        let store = self
            .store
            .map(|(store, key)| Persist::new(store, key, lease_ttl));
        let settings = Settings {
            timeout,
            max_wait: self.max_wait.min(MAX_SETTING),
            schedule: bounded_schedule(self.schedule),
            clock: self.clock,
        };
        let policy = bounded_policy(self.policy);
        let transport = transport.into_transport(self.max_response_bytes);
        AuthLayer {
            shared: Arc::new(Manager::new(
                self.provider,
                policy,
                settings,
                transport,
                store,
                Metrics::named(
                    self.metrics_name.unwrap_or_else(|| Arc::from(DEFAULT_NAME)),
                    self.session_label,
                ),
            )),
            replay: CloneBody,
        }
    }
}

fn bounded_backoff(mut backoff: Backoff) -> Backoff {
    backoff.initial = backoff.initial.min(MAX_SETTING);
    backoff.max = backoff.max.min(MAX_SETTING);
    backoff
}

fn bounded_schedule(mut schedule: Schedule) -> Schedule {
    schedule.transient = bounded_backoff(schedule.transient);
    schedule.rejection = bounded_backoff(schedule.rejection);
    schedule.retry_after_cap = schedule.retry_after_cap.min(MAX_SETTING);
    schedule
}

fn bounded_policy(mut policy: TokenPolicy) -> TokenPolicy {
    policy.default_lifetime = policy.default_lifetime.min(MAX_SETTING);
    if let RefreshTiming::Ahead { margin } = &mut policy.refresh {
        *margin = (*margin).min(MAX_SETTING);
    }
    policy
}

impl fmt::Debug for AuthLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayerBuilder")
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_wait", &self.max_wait)
            .field("schedule", &self.schedule)
            .field("clock", &self.clock)
            .field("store", &self.store.as_ref().map(|(_, key)| key))
            .field("lease_ttl", &self.lease_ttl)
            .field("metrics_name", &self.metrics_name)
            .field("session_label", &self.session_label)
            .finish_non_exhaustive()
    }
}
