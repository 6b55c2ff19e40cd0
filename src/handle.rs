//! A handle on a layer's token, for code that does not send through the layer: another client,
//! a gRPC interceptor, a websocket handshake.

use std::fmt;
use std::future::poll_fn;
use std::pin::pin;
use std::sync::Arc;

use tokio::sync::watch;

use crate::error::AuthError;
use crate::manager::{Manager, TokenWait};
use crate::metrics::MetricsSnapshot;
use crate::slot::Generation;
use crate::token::view::Token;

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
/// # async fn run<P: Provider>(layer: AuthLayer) -> Result<(), tower_token_auth::AuthError> {
/// let handle = layer.handle();
///
/// // For a client the layer does not wrap:
/// let token = handle.token().await?;
/// let uri = http::Uri::from_static("https://api.example.com/orders");
/// let mut headers = http::HeaderMap::new();
/// token.apply_to(&http::Method::GET, &uri, &mut headers)?;
///
/// // That client was told the token is dead: the next caller gets a new one.
/// handle.invalidate(&token);
///
/// // Hear about every new token, in a task of its own.
/// let mut rotations = handle.subscribe();
/// tokio::spawn(async move {
///     while rotations.changed().await.is_ok() {
///         if let Some(token) = rotations.borrow_and_update().clone() {
///             println!("new token {}, valid until {:?}", token.generation(), token.expires_at());
///         }
///     }
/// });
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TokenHandle {
    manager: Arc<Manager>,
}

impl TokenHandle {
    pub(crate) fn new(manager: Arc<Manager>) -> Self {
        Self { manager }
    }

    /// A valid token: the current one, or the next one once the flight in progress (or one this
    /// call starts) lands. Fails as a request through the layer would: with the rejection while
    /// credentials are backed off, or [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable)
    /// once the auth server has failed for the layer's wait bound.
    ///
    /// In the refresh window, the call asks for the refresh ahead, as a request does, and
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
    /// # fn run(handle: TokenHandle, mut request: http::Request<()>) -> Result<(), tower_token_auth::AuthError> {
    /// // In synchronous code (a tonic interceptor, say): use the token if there is one.
    /// if let Some(token) = handle.current() {
    ///     let (method, uri) = (request.method().clone(), request.uri().clone());
    ///     token.apply_to(&method, &uri, request.headers_mut())?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn current(&self) -> Option<Token> {
        let now = self.manager.clock().moment();
        let state = self
            .manager
            .slot
            .load_full()
            .filter(|t| now < t.expires_at)?;
        self.manager.refresh_if_due(&state, now);
        Some(Token::new(state, &self.manager))
    }

    /// `token` was refused by whoever it was sent to: if it is still the current token, it is
    /// marked dead and one refresh starts in the background, so that the next request or call
    /// gets a new one. A token already superseded is left alone.
    pub fn invalidate(&self, token: &Token) {
        self.manager.invalidate(token.state().generation);
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
        let held = self.manager.slot.load_full().map(|token| token.generation);
        self.wait(held).await
    }

    /// Every token the session gets from now on: a [`watch`] receiver holding the newest token
    /// the session got (valid or not; `None` before the first), which skips to the newest when
    /// it falls behind. [`changed`](watch::Receiver::changed) waits for a token newer than the
    /// last one seen through the receiver, and fails once the session is gone: the layer, its
    /// services and every handle dropped.
    ///
    /// ```
    /// # use tower_token_auth::TokenHandle;
    /// # async fn run(handle: TokenHandle) {
    /// let mut rotations = handle.subscribe();
    /// let first = handle.token().await;
    /// // The token `token()` obtained (on a cold layer) is a rotation too:
    /// if let (Ok(first), Ok(())) = (first, rotations.changed().await) {
    ///     let seen = rotations.borrow_and_update().clone();
    ///     assert_eq!(seen.map(|t| t.generation()), Some(first.generation()));
    /// }
    /// # }
    /// ```
    pub fn subscribe(&self) -> watch::Receiver<Option<Token>> {
        self.manager.rotations.subscribe()
    }

    /// The policy of the layer: the header its tokens use, for an adapter.
    #[cfg(feature = "tonic")]
    pub(crate) fn policy(&self) -> &crate::provider::TokenPolicy {
        &self.manager.policy
    }

    /// Revokes the session's tokens (RFC 7009): the current access token and its refresh token
    /// are retired at once, so that neither is ever sent again (the next request or call waits
    /// for a login), then the provider's revocation endpoint is asked to revoke them, refresh
    /// token first. A token landing from a flight already in progress is not affected. For
    /// shutdown, or when the session's tokens must die (the user logged out, a secret leaked).
    ///
    /// Fails with the first failed revocation call (both are tried), or with
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) when the provider names no revocation
    /// endpoint ([`Provider::revocation_request`](crate::provider::Provider::revocation_request));
    /// the tokens are retired either way. With a [token store](crate::store), other processes
    /// may still hold the stored session: they find it refused and log in.
    pub async fn revoke(&self) -> Result<(), AuthError> {
        self.manager.revoke().await
    }

    /// The layer's counters so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.manager.metrics.snapshot()
    }

    /// The session, for an adapter that drives the replay rule itself
    /// ([`Sends`](crate::replay::Sends)).
    #[cfg_attr(not(feature = "reqwest"), allow(dead_code))]
    pub(crate) fn manager(&self) -> &Arc<Manager> {
        &self.manager
    }

    /// A token newer than the one of `refused`, which the upstream refused: as a replay in the
    /// layer waits for one (see `Manager::join`).
    #[cfg_attr(not(feature = "reqwest"), allow(dead_code))]
    pub(crate) async fn replacing(&self, refused: Generation) -> Result<Token, AuthError> {
        self.wait(Some(refused)).await
    }

    async fn wait(&self, refused: Option<Generation>) -> Result<Token, AuthError> {
        let mut wait = pin!(TokenWait::new(refused));
        let state = poll_fn(|cx| wait.as_mut().poll_with(cx, &self.manager)).await?;
        Ok(Token::new(state, &self.manager))
    }
}

impl fmt::Debug for TokenHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenHandle")
            .field(
                "generation",
                &self
                    .manager
                    .slot
                    .load_full()
                    .map(|token| token.generation.get()),
            )
            .field("metrics", &self.manager.metrics.snapshot())
            .finish()
    }
}
