//! A handle on a layer's token, for code that does not send through the layer: another client,
//! a gRPC interceptor, a websocket handshake.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::watch;

use crate::clock::{Clock, Moment};
use crate::error::AuthError;
use crate::manager::{Manager, Outcome, TokenWait};
use crate::metrics::{Counter, MetricsSnapshot};
use crate::provider::{Budget, Provider, Rejection, TokenPolicy};
use crate::secret::Secret;
use crate::slot::{Generation, TokenState};

/// A token of a layer's session, as a [`TokenHandle`] hands it out.
///
/// Cheap to clone. `Debug` shows its generation and expiry, never the token.
///
/// ```
/// # use tower_token_auth::TokenHandle;
/// # async fn run(handle: TokenHandle) -> Result<(), tower_token_auth::AuthError> {
/// let token = handle.token().await?;
/// // For a gRPC metadata map, a websocket handshake, another HTTP client:
/// let mut headers = http::HeaderMap::new();
/// token.apply_to(&mut headers);
/// assert!(headers[token.header_name()].is_sensitive());
/// // Or the bare token, for an API that wants it elsewhere (a query string, a message body):
/// let bare: &str = token.access_token().expose();
/// # let _ = bare;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Token {
    state: Arc<TokenState>,
    expires_at: SystemTime,
}

impl Token {
    pub(crate) fn new(state: Arc<TokenState>, clock: &Clock) -> Self {
        let expires_at = clock.wall_at(state.expires_at);
        Self { state, expires_at }
    }

    /// The header the token travels in (`authorization` unless the policy's
    /// [`TokenHeader`](crate::provider::TokenHeader) says otherwise).
    pub fn header_name(&self) -> &HeaderName {
        &self.state.header_name
    }

    /// The header value, such as `Bearer <token>`, marked sensitive.
    pub fn header_value(&self) -> &HeaderValue {
        &self.state.header
    }

    /// Puts the token on `headers`, replacing any value the header had.
    pub fn apply_to(&self, headers: &mut HeaderMap) {
        headers.insert(self.header_name().clone(), self.header_value().clone());
    }

    /// The bare access token.
    pub fn access_token(&self) -> &Secret {
        &self.state.access_token
    }

    /// When the layer stops sending the token (as the layer's [`Clock`] tells wall time).
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// Which token of the session this is: every new token has a higher generation, so that
    /// two handles' tokens compare by age.
    pub fn generation(&self) -> u64 {
        self.state.generation.get()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("generation", &self.generation())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What a [`TokenHandle`] needs of the layer's manager, whatever its provider type.
pub(crate) trait Session: Send + Sync {
    /// A usable token, as a waiting request gets one (`rejected`: see `Manager::join`).
    fn wait(
        self: Arc<Self>,
        rejected: Option<Generation>,
    ) -> Pin<Box<dyn Future<Output = Outcome> + Send>>;
    /// The slot's token while it is valid, asking for a due proactive refresh as a request does.
    fn live(self: Arc<Self>) -> Option<Arc<TokenState>>;
    /// The generation of the slot's token, valid or not.
    fn held(&self) -> Option<Generation>;
    /// The upstream rejected the token of `generation`.
    fn retire(self: Arc<Self>, generation: Generation);
    /// The upstream accepted the token of `generation` (see `Slot::accept`).
    fn accept(&self, generation: Generation);
    /// What a rejection of the token of `generation` means for a request started at `started`
    /// that has spent `budget` (see `Manager::rejection`).
    fn rejection(&self, generation: Generation, budget: &Budget, started: Moment) -> Rejection;
    fn rotations(&self) -> watch::Receiver<Option<Token>>;
    fn clock(&self) -> &Clock;
    fn policy(&self) -> &TokenPolicy;
    fn metrics(&self) -> MetricsSnapshot;
    fn count(&self, counter: Counter);
}

impl<P: Provider> Session for Manager<P> {
    fn wait(
        self: Arc<Self>,
        rejected: Option<Generation>,
    ) -> Pin<Box<dyn Future<Output = Outcome> + Send>> {
        Box::pin(async move {
            let mut wait = pin!(TokenWait::new(rejected));
            poll_fn(|cx| wait.as_mut().poll_with(cx, &self)).await
        })
    }

    fn live(self: Arc<Self>) -> Option<Arc<TokenState>> {
        let now = self.clock().moment();
        let token = self.slot.load_full().filter(|t| now < t.expires_at)?;
        self.refresh_if_due(&token, now);
        Some(token)
    }

    fn held(&self) -> Option<Generation> {
        self.slot.load_full().map(|token| token.generation)
    }

    fn retire(self: Arc<Self>, generation: Generation) {
        self.invalidate(generation);
    }

    fn accept(&self, generation: Generation) {
        self.slot.accept(generation);
    }

    fn rejection(&self, generation: Generation, budget: &Budget, started: Moment) -> Rejection {
        Manager::rejection(self, generation, budget, started)
    }

    fn rotations(&self) -> watch::Receiver<Option<Token>> {
        self.rotations.subscribe()
    }

    fn clock(&self) -> &Clock {
        Manager::clock(self)
    }

    fn policy(&self) -> &TokenPolicy {
        &self.policy
    }

    fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    fn count(&self, counter: Counter) {
        self.metrics.incr(counter);
    }
}

/// A handle on the token of an [`AuthLayer`](crate::AuthLayer), from
/// [`AuthLayer::handle`](crate::AuthLayer::handle): for clients that do not send through the
/// layer, and for code that must see or steer the token.
///
/// It shares the layer's slot and single flight: however many requests and handle calls need a
/// token at once, one login or refresh is in flight. `Clone + Send + Sync`; clones share
/// everything. A handle keeps the session alive.
///
/// ```
/// # use tower_token_auth::AuthLayer;
/// # use tower_token_auth::provider::Provider;
/// # async fn run<P: Provider>(layer: AuthLayer<P>) -> Result<(), tower_token_auth::AuthError> {
/// let handle = layer.handle();
///
/// // For a client the layer does not wrap:
/// let token = handle.token().await?;
/// let mut headers = http::HeaderMap::new();
/// token.apply_to(&mut headers);
///
/// // That client was told the token is dead: the next caller gets a new one.
/// handle.invalidate(&token);
///
/// // Hear about every new token, in a task of its own.
/// let mut rotations = handle.subscribe();
/// tokio::spawn(async move {
///     while let Some(token) = rotations.next().await {
///         println!("new token {}, valid until {:?}", token.generation(), token.expires_at());
///     }
/// });
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TokenHandle {
    session: Arc<dyn Session>,
}

impl TokenHandle {
    pub(crate) fn new(session: Arc<dyn Session>) -> Self {
        Self { session }
    }

    /// A valid token: the current one, or the next one once the flight in progress (or one this
    /// call starts) lands. Fails as a request through the layer would: with the rejection while
    /// credentials are backed off, or [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable)
    /// once the auth server has failed for the layer's wait bound.
    ///
    /// In the refresh window, the call asks for the proactive refresh, as a request does, and
    /// returns the current token meanwhile.
    pub async fn token(&self) -> Result<Token, AuthError> {
        match self.current() {
            Some(token) => Ok(token),
            None => self.wait(None).await,
        }
    }

    /// The current token, if the slot holds a valid one; never waits, and starts a login or
    /// refresh only when one is due (as [`token`](Self::token) would).
    ///
    /// ```
    /// # use tower_token_auth::TokenHandle;
    /// # fn run(handle: TokenHandle, mut request: http::Request<()>) {
    /// // In synchronous code (a tonic interceptor, say): use the token if there is one.
    /// if let Some(token) = handle.current() {
    ///     token.apply_to(request.headers_mut());
    /// }
    /// # }
    /// ```
    pub fn current(&self) -> Option<Token> {
        let state = Arc::clone(&self.session).live()?;
        Some(Token::new(state, self.session.clock()))
    }

    /// `token` was rejected by whoever it was sent to: if it is still the current token, it is
    /// marked dead and one refresh starts in the background, so that the next request or call
    /// gets a new one. A token already superseded is left alone.
    pub fn invalidate(&self, token: &Token) {
        Arc::clone(&self.session).retire(token.state.generation);
    }

    /// A token issued after this call: the current token is retired (requests wait for its
    /// successor instead of sending it) and one refresh (or login) runs, or the one already in
    /// flight is joined. Concurrent calls share one auth call. Fails as [`token`](Self::token)
    /// does.
    ///
    /// With a [token store](crate::store), a newer session that another process saved is adopted
    /// instead: it replaces the current token without an auth call.
    ///
    /// ```
    /// # use tower_token_auth::TokenHandle;
    /// # async fn run(handle: TokenHandle) -> Result<(), tower_token_auth::AuthError> {
    /// // The user's roles changed: the next requests must carry a token with the new claims.
    /// let before = handle.current().map(|t| t.generation());
    /// let token = handle.force_refresh().await?;
    /// assert!(Some(token.generation()) > before);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn force_refresh(&self) -> Result<Token, AuthError> {
        self.wait(self.session.held()).await
    }

    /// Every token the session gets from now on, latest first: a receiver that skips to the
    /// newest token when it falls behind.
    pub fn subscribe(&self) -> Rotations {
        Rotations(self.session.rotations())
    }

    /// The policy of the layer: the [`TokenHeader`](crate::provider::TokenHeader) its tokens use
    /// and the [`Classifier`](crate::provider::Classifier) for answers, among others.
    pub fn policy(&self) -> &TokenPolicy {
        self.session.policy()
    }

    /// The layer's counters so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.session.metrics()
    }

    /// Counts what a client on the handle did (a replay).
    #[cfg_attr(not(feature = "reqwest"), allow(dead_code))]
    pub(crate) fn count(&self, counter: Counter) {
        self.session.count(counter);
    }

    /// Now, on the layer's clock: when a client's request starts.
    #[cfg_attr(not(feature = "reqwest"), allow(dead_code))]
    pub(crate) fn moment(&self) -> Moment {
        self.session.clock().moment()
    }

    /// A client on the handle got an answer that did not reject `token`.
    #[cfg_attr(not(feature = "reqwest"), allow(dead_code))]
    pub(crate) fn accepted(&self, token: &Token) {
        self.session.accept(token.state.generation);
    }

    /// What the rejection of `token` means for a client's request started at `started` that
    /// has spent `budget`; ask before [`invalidate`](Self::invalidate).
    #[cfg_attr(not(feature = "reqwest"), allow(dead_code))]
    pub(crate) fn rejection(&self, token: &Token, budget: &Budget, started: Moment) -> Rejection {
        self.session
            .rejection(token.state.generation, budget, started)
    }

    async fn wait(&self, rejected: Option<Generation>) -> Result<Token, AuthError> {
        let state = Arc::clone(&self.session).wait(rejected).await?;
        Ok(Token::new(state, self.session.clock()))
    }
}

impl fmt::Debug for TokenHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenHandle")
            .field("generation", &self.session.held().map(Generation::get))
            .field("metrics", &self.session.metrics())
            .finish()
    }
}

/// The tokens a session gets, from [`TokenHandle::subscribe`].
///
/// ```
/// # use tower_token_auth::TokenHandle;
/// # async fn run(handle: TokenHandle) {
/// let mut rotations = handle.subscribe();
/// let first = handle.token().await;
/// // The token `token()` obtained (on a cold layer) is a rotation too:
/// if let (Ok(first), Some(seen)) = (first, rotations.next().await) {
///     assert_eq!(seen.generation(), first.generation());
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Rotations(watch::Receiver<Option<Token>>);

impl Rotations {
    /// Waits for a token newer than the last one seen through this receiver (or, for a new
    /// receiver, than the token current at `subscribe`). `None` once the session is gone: the
    /// layer, its services and every handle dropped.
    pub async fn next(&mut self) -> Option<Token> {
        loop {
            self.0.changed().await.ok()?;
            if let Some(token) = self.0.borrow_and_update().clone() {
                return Some(token);
            }
        }
    }

    /// The newest token the session got, if any (valid or not).
    pub fn latest(&self) -> Option<Token> {
        self.0.borrow().clone()
    }
}
