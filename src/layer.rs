//! The layer: configuration, and the shared state every service it makes uses.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Response;
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::BoxError;
use crate::manager::{self, Backoff, Manager, Settings};
use crate::metrics::MetricsSnapshot;
use crate::provider::{AuthRequest, Policy, Provider};
use crate::replay::{CloneBody, NoReplay};
use crate::service::AuthService;

/// Default cap on an auth response body.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Default timeout of one auth call (request and response body).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`Layer`] that makes every request carry a valid bearer token.
///
/// All services made by one layer, and all their clones, share one token slot, one single-flight
/// token manager and one set of counters. Cloning the layer shares them too; build a second layer
/// for a second, independent session.
///
/// See the [crate documentation](crate) for an example.
pub struct AuthLayer<P, R = CloneBody> {
    shared: Arc<Manager<P>>,
    replay: R,
}

impl<P: Provider> AuthLayer<P> {
    /// A layer with default settings, sending auth calls through `transport`.
    ///
    /// `transport` is any HTTP client service, typically a clone of the one being wrapped. It must
    /// not follow redirects (hyper-util's client does not), so that credentials only ever go to the
    /// configured endpoint.
    pub fn new<T, RB>(provider: P, transport: T) -> Self
    where
        T: Service<AuthRequest, Response = Response<RB>> + Clone + Send + Sync + 'static,
        T::Error: Into<BoxError>,
        T::Future: Send + 'static,
        RB: Body + Send + 'static,
        RB::Data: Send,
        RB::Error: Into<BoxError>,
    {
        Self::builder(provider).build(transport)
    }

    /// A builder for a layer with non-default settings.
    pub fn builder(provider: P) -> AuthLayerBuilder<P> {
        AuthLayerBuilder {
            policy: provider.policy(),
            provider,
            timeout: DEFAULT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            backoff: Backoff::default(),
        }
    }
}

impl<P, R> AuthLayer<P, R> {
    /// Sends every request once and never replays it. For request bodies that cannot be copied.
    pub fn without_replay(self) -> AuthLayer<P, NoReplay> {
        self.replay_with(NoReplay)
    }

    /// Uses `strategy` to copy requests for replay.
    pub fn replay_with<R2>(self, strategy: R2) -> AuthLayer<P, R2> {
        AuthLayer {
            shared: self.shared,
            replay: strategy,
        }
    }

    /// The layer's counters so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot()
    }

    /// The policy in force (the provider's, unless the builder replaced it).
    pub fn policy(&self) -> &Policy {
        &self.shared.policy
    }
}

impl<P, R: Clone> Clone for AuthLayer<P, R> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            replay: self.replay.clone(),
        }
    }
}

impl<P, R: fmt::Debug> fmt::Debug for AuthLayer<P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("shared", &self.shared)
            .field("replay", &self.replay)
            .finish()
    }
}

impl<S, P, R: Clone> Layer<S> for AuthLayer<P, R> {
    type Service = AuthService<S, P, R>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService::new(inner, Arc::clone(&self.shared), self.replay.clone())
    }
}

/// Builds an [`AuthLayer`] with non-default settings.
///
/// ```
/// # use tower_token_auth::{AuthLayer, Backoff, Provider};
/// # fn build<P: Provider>(provider: P, client: tower::util::BoxCloneSyncService<tower_token_auth::AuthRequest, http::Response<http_body_util::Full<bytes::Bytes>>, tower::BoxError>) {
/// use std::time::Duration;
///
/// let layer = AuthLayer::builder(provider)
///     .timeout(Duration::from_secs(5))
///     .max_response_bytes(16 * 1024)
///     .backoff(Backoff::new(Duration::from_millis(500), Duration::from_secs(30), 2))
///     .build(client);
/// # }
/// ```
pub struct AuthLayerBuilder<P> {
    provider: P,
    policy: Policy,
    timeout: Duration,
    max_response_bytes: usize,
    backoff: Backoff,
}

impl<P: Provider> AuthLayerBuilder<P> {
    /// Replaces the provider's policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Timeout of one auth call, response body included. Default: 10 s.
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

    /// Backoff between failed auth attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Builds the layer, sending auth calls through `transport` (see [`AuthLayer::new`]).
    pub fn build<T, RB>(self, transport: T) -> AuthLayer<P>
    where
        T: Service<AuthRequest, Response = Response<RB>> + Clone + Send + Sync + 'static,
        T::Error: Into<BoxError>,
        T::Future: Send + 'static,
        RB: Body + Send + 'static,
        RB::Data: Send,
        RB::Error: Into<BoxError>,
    {
        let settings = Settings {
            timeout: self.timeout,
            backoff: self.backoff,
        };
        let transport = manager::transport(transport, self.max_response_bytes);
        AuthLayer {
            shared: Arc::new(Manager::new(
                self.provider,
                self.policy,
                settings,
                transport,
            )),
            replay: CloneBody,
        }
    }
}

impl<P> fmt::Debug for AuthLayerBuilder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayerBuilder")
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}
