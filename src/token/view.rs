//! A session's token as the layer hands it out, to handles and to subscribers.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::clock::Clock;
use crate::secret::Secret;
use crate::slot::{Generation, TokenState};

/// A token of a layer's session, as a [`TokenHandle`](crate::TokenHandle) hands it out.
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

    /// The generation of the token, as the slot counts them.
    pub(crate) fn slot_generation(&self) -> Generation {
        self.state.generation
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
