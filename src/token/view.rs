//! A session's token as the layer hands it out, to handles and to subscribers.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use crate::dpop::Dpop;
use crate::error::AuthError;
use crate::manager::Manager;
use crate::secret::Secret;
use crate::slot::TokenState;

/// A token of a layer's session, as a [`TokenHandle`](crate::TokenHandle) hands it out.
///
/// Cheap to clone. `Debug` shows its generation and expiry, never the token.
///
/// ```
/// # use tower_token_auth::TokenHandle;
/// # async fn run(handle: TokenHandle) -> Result<(), tower_token_auth::AuthError> {
/// let token = handle.token().await?;
/// // For a gRPC metadata map, a websocket handshake, another HTTP client:
/// let uri = http::Uri::from_static("https://api.example.com/orders");
/// let mut headers = http::HeaderMap::new();
/// token.apply_to(&http::Method::GET, &uri, &mut headers)?;
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
    /// The layer's DPoP key and nonces, for a DPoP-bound token.
    dpop: Option<Arc<Dpop>>,
}

impl Token {
    pub(crate) fn new(state: Arc<TokenState>, manager: &Manager) -> Self {
        let expires_at = manager.clock().wall_at(state.expires_at);
        let dpop = manager.dpop.clone().filter(|_| state.dpop);
        Self {
            state,
            expires_at,
            dpop,
        }
    }

    /// The slot's state of the token.
    pub(crate) fn state(&self) -> &Arc<TokenState> {
        &self.state
    }

    /// The layer's DPoP state, when the token is bound to its key.
    pub(crate) fn dpop(&self) -> Option<&Dpop> {
        self.dpop.as_deref()
    }

    /// The header the token travels in (`authorization` unless the policy's
    /// [`TokenHeader`](crate::provider::TokenHeader) says otherwise).
    pub fn header_name(&self) -> &HeaderName {
        &self.state.header_name
    }

    /// The header value, such as `Bearer <token>` (`DPoP <token>` for a DPoP-bound token),
    /// marked sensitive.
    pub fn header_value(&self) -> &HeaderValue {
        &self.state.header
    }

    /// Puts the token on the `headers` of a request of `method` to `uri`, replacing any value
    /// the header had. A DPoP-bound token (its [`header_value`](Self::header_value) reads
    /// `DPoP …`) also gets a `DPoP`
    /// proof for that request, signed with the layer's key and the nonce its server last gave;
    /// a bearer token ignores `method` and `uri`.
    ///
    /// Fails only for a DPoP-bound token, with [`ErrorKind::Config`](crate::ErrorKind::Config),
    /// when `uri` is not absolute.
    pub fn apply_to(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
    ) -> Result<(), AuthError> {
        let proof = self.state.proof(method, uri, self.dpop())?;
        self.state.write_to(proof, headers);
        Ok(())
    }

    /// The bare access token.
    pub fn access_token(&self) -> &Secret {
        &self.state.access_token
    }

    /// When the layer stops sending the token (as the layer's [`Clock`](crate::Clock) tells wall time).
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
