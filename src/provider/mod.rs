//! The per-API policy object: how an API logs in and refreshes, where its tokens are, and when to
//! refresh and replay.
//!
//! The layer calls a [`Provider`] only on cold paths (a login or refresh); the [`TokenPolicy`] it
//! returns is read once, when the layer is built.
//!
//! # Implementing a provider
//!
//! ```
//! use bytes::Bytes;
//! use http::{header, Method, Request};
//! use http_body_util::Full;
//! use tower_token_auth::{AuthError, Secret};
//! use tower_token_auth::provider::{AuthRequest, Provider};
//!
//! #[derive(Debug)]
//! struct MyApi {
//!     token_url: http::Uri,
//!     api_key: Secret,
//! }
//!
//! fn post_json(uri: &http::Uri, body: serde_json::Value) -> AuthRequest {
//!     let mut req = Request::new(Full::new(Bytes::from(body.to_string())));
//!     *req.method_mut() = Method::POST;
//!     *req.uri_mut() = uri.clone();
//!     req.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
//!     req
//! }
//!
//! impl Provider for MyApi {
//!     fn login_request(&self) -> Result<AuthRequest, AuthError> {
//!         Ok(post_json(&self.token_url, serde_json::json!({ "api_key": self.api_key.expose() })))
//!     }
//!
//!     fn refresh_request(&self, refresh_token: &Secret) -> Result<AuthRequest, AuthError> {
//!         Ok(post_json(&self.token_url, serde_json::json!({ "refresh_token": refresh_token.expose() })))
//!     }
//!     // `parse_response` defaults to `TokenSet::from_json`, `classify_failure` treats 400/401/403
//!     // as rejections, and `policy` to `TokenPolicy::default()`.
//! }
//! ```

mod generic;
pub mod oauth2;
pub mod presets;
mod spec;

pub use self::generic::{
    CallSpec, Encoding, Expiry, HttpProvider, Location, Param, Rejects, Timestamp, TokenFields,
    TokenSource,
};
pub use self::spec::{Credentials, ProviderSpec, SpecError};
pub use crate::classify::Classifier;
pub use crate::header::TokenHeader;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;

use crate::error::{AuthCall, AuthError};
use crate::secret::Secret;
use crate::token::TokenSet;

/// A login or refresh request, as a provider builds it.
pub type AuthRequest = Request<Full<Bytes>>;

/// An auth server's response, with its body collected (up to the layer's size cap).
pub type AuthResponse = Response<Bytes>;

/// How an API logs in and refreshes, and the policy the layer applies to it.
///
/// The trait is object-safe: `Box<dyn Provider>` and `Arc<dyn Provider>` are providers too, so a
/// provider can be chosen at run time.
pub trait Provider: Send + Sync + 'static {
    /// Builds the request that sends credentials for a new token pair.
    ///
    /// Return [`AuthError::config`] when the provider holds no credentials; the layer then fails
    /// requests instead of logging in.
    fn login_request(&self) -> Result<AuthRequest, AuthError>;

    /// Builds the request that exchanges `refresh_token` for a new token pair.
    fn refresh_request(&self, refresh_token: &Secret) -> Result<AuthRequest, AuthError>;

    /// Parses a successful (2xx) login or refresh response.
    ///
    /// The default reads a standard JSON token response with [`TokenSet::from_json`]. A response
    /// that carries no new token pair must be an error, never an empty success.
    fn parse_response(
        &self,
        call: AuthCall,
        response: &AuthResponse,
    ) -> Result<TokenSet, AuthError> {
        let _ = call;
        TokenSet::from_json(response.body())
    }

    /// Classifies a non-2xx auth response.
    ///
    /// [`Failure::Rejected`] means the credentials or the refresh token are dead: a rejected
    /// refresh falls back to login in the same attempt (when
    /// [`TokenPolicy::login_on_refresh_rejected`]); a rejected login fails every waiting request with
    /// [`ErrorKind::LoginRejected`](crate::ErrorKind) and starts the rejection backoff, during
    /// which requests fail fast. [`Failure::Transient`] is retried inside the flight on the
    /// transient schedule while requests keep waiting, when the status is a 5xx, 408 or 429; any
    /// other status (a redirect, a 404) is backed off like a rejection, since retrying soon would
    /// not help. [`Failure::Ambiguous`] is retried like a transient failure until it repeats.
    /// The default rejects on 400, 401 and 403.
    fn classify_failure(&self, call: AuthCall, response: &AuthResponse) -> Failure {
        let _ = call;
        if CLIENT_ERRORS.contains(&response.status()) {
            Failure::Rejected
        } else {
            Failure::Transient
        }
    }

    /// The refresh, replay and fallback policy for this API. Read once, when the layer is built.
    fn policy(&self) -> TokenPolicy {
        TokenPolicy::default()
    }
}

/// 400, 401 and 403: what RFC 6749 servers (and most others) answer to dead credentials and
/// grants.
pub(crate) const CLIENT_ERRORS: [StatusCode; 3] = [
    StatusCode::BAD_REQUEST,
    StatusCode::UNAUTHORIZED,
    StatusCode::FORBIDDEN,
];

/// What a failed auth response means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The credentials or refresh token are no longer accepted.
    Rejected,
    /// The server could not answer now; trying again later may succeed.
    Transient,
    /// The answer cannot tell refused credentials from a server fault: for APIs that document
    /// one error status for everything (union-service answers both with a JSON 500). Retried
    /// like a transient failure; a rejection once the same class of answer comes `repeats` times
    /// in a row within one flight. A random fault rarely repeats; refused credentials always do.
    /// [`Failure::AMBIGUOUS`] uses the default of 3.
    Ambiguous {
        /// How many answers in a row make a rejection (at least 1).
        repeats: u32,
    },
}

impl Failure {
    /// [`Failure::Ambiguous`] with the default `repeats` of 3.
    pub const AMBIGUOUS: Failure = Failure::Ambiguous { repeats: 3 };
}

/// When to refresh a token that is still valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshTiming {
    /// Refresh in the background once the remaining lifetime falls below `margin` (or below half
    /// the token's lifetime, whichever is smaller), brought forward by a random fifth of that at
    /// most so that clients do not refresh in lockstep. Requests keep using the valid token
    /// meanwhile.
    Proactive {
        /// How long before expiry to start refreshing.
        margin: Duration,
    },
    /// Never refresh a valid token: only once it has expired, or when the upstream rejects it.
    /// For APIs that treat an early refresh as an error.
    AfterExpiry,
}

impl Default for RefreshTiming {
    fn default() -> Self {
        RefreshTiming::Proactive {
            margin: Duration::from_secs(30),
        }
    }
}

/// The per-API token policy a [`Provider`] gives the layer: when to refresh, how long a token
/// without a stated lifetime lives, how the token is sent, which answers mark it dead and how
/// often to replay.
///
/// A provider states its API's policy in [`Provider::policy`]; a program adjusts it for one
/// layer with [`AuthLayerBuilder::with_policy`](crate::AuthLayerBuilder::with_policy), the one
/// place to change it.
///
/// ```
/// use tower_token_auth::provider::{Classifier, RefreshTiming, TokenHeader, TokenPolicy};
///
/// let mut policy = TokenPolicy::default();
/// policy.refresh = RefreshTiming::AfterExpiry;
/// policy.max_replays = 2;
/// policy.header = TokenHeader::new(http::header::AUTHORIZATION).with_scheme("Token");
/// assert_eq!(policy.classifier, Classifier::http());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenPolicy {
    /// When to refresh a still-valid token. Default: proactive, 30 s before expiry.
    pub refresh: RefreshTiming,
    /// How the token is put on requests, and so which `token_type` answers are accepted.
    /// Default: `Authorization: Bearer <token>`.
    pub header: TokenHeader,
    /// Which upstream answers mean "this token is dead": the token is refreshed and the request
    /// replayed. Default: [`Classifier::http`] (401, minding `WWW-Authenticate`).
    pub classifier: Classifier,
    /// How many times one request may be replayed because the token the slot held was rejected
    /// (each such replay also triggers one refresh). Default: 1. Zero disables replay.
    ///
    /// A rejection of a token that was already superseded or already known dead is not news: the
    /// request is replayed with the current token free of charge (OkHttp's rule), within
    /// [`max_sends`](Self::max_sends).
    pub max_replays: u32,
    /// Hard cap on how many times one request is sent, replays included. Default: 3.
    pub max_sends: u32,
    /// Whether a rejected refresh falls back to logging in within the same attempt. Default:
    /// `true`. When `false`, the rejection is reported to the waiting requests and the rejected
    /// refresh token is dropped; the login then happens on the next attempt, after the backoff.
    pub login_on_refresh_rejected: bool,
    /// The lifetime assumed for a token whose expiry is neither stated nor readable from a JWT.
    /// Default: 5 minutes.
    pub default_lifetime: Duration,
    /// When a refresh answer carries no new refresh token, keep using the one just sent (the
    /// server did not rotate it). Default: `true`. Turn off for APIs whose refresh tokens are
    /// strictly single-use: the layer then logs in when the next refresh would be due.
    pub keep_unrotated_refresh_token: bool,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            refresh: RefreshTiming::default(),
            header: TokenHeader::default(),
            classifier: Classifier::default(),
            max_replays: 1,
            max_sends: 3,
            login_on_refresh_rejected: true,
            default_lifetime: Duration::from_secs(300),
            keep_unrotated_refresh_token: true,
        }
    }
}

impl TokenPolicy {
    /// Whether any request can be replayed: requests are copied only then.
    pub(crate) fn replays(&self) -> bool {
        self.max_replays > 0 && self.max_sends >= 2 && !self.classifier.is_none()
    }

    /// Whether a request about to go out for the `sends + 1`-th time needs a copy: another send
    /// may follow it.
    pub(crate) fn copies_for_send(&self, sends: u32) -> bool {
        self.replays() && sends + 1 < self.max_sends
    }

    /// OkHttp's rule, for a request sent `sends` times whose token was just rejected: a
    /// rejection of the token the slot holds (`news`) costs one of `max_replays` (counted in
    /// `charged`) and one refresh; a rejection of a token already superseded or known dead is
    /// replayed free. `max_sends` caps both, so a replay loop always ends.
    pub(crate) fn allows_replay(&self, sends: u32, charged: &mut u32, news: bool) -> bool {
        let allowed = sends < self.max_sends && (!news || *charged < self.max_replays);
        if allowed && news {
            *charged += 1;
        }
        allowed
    }
}

macro_rules! forward_provider {
    ($ptr:ident) => {
        impl<P: Provider + ?Sized> Provider for $ptr<P> {
            fn login_request(&self) -> Result<AuthRequest, AuthError> {
                (**self).login_request()
            }
            fn refresh_request(&self, refresh_token: &Secret) -> Result<AuthRequest, AuthError> {
                (**self).refresh_request(refresh_token)
            }
            fn parse_response(
                &self,
                call: AuthCall,
                response: &AuthResponse,
            ) -> Result<TokenSet, AuthError> {
                (**self).parse_response(call, response)
            }
            fn classify_failure(&self, call: AuthCall, response: &AuthResponse) -> Failure {
                (**self).classify_failure(call, response)
            }
            fn policy(&self) -> TokenPolicy {
                (**self).policy()
            }
        }
    };
}

forward_provider!(Box);
forward_provider!(Arc);

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl Provider for Fixed {
        fn login_request(&self) -> Result<AuthRequest, AuthError> {
            Ok(Request::new(Full::new(Bytes::from_static(b"login"))))
        }
        fn refresh_request(&self, _: &Secret) -> Result<AuthRequest, AuthError> {
            Err(AuthError::config("no refresh"))
        }
    }

    #[test]
    fn provider_is_object_safe() {
        fn assert_provider<P: Provider>(_: &P) {}
        let boxed: Box<dyn Provider> = Box::new(Fixed);
        let shared: Arc<dyn Provider> = Arc::new(Fixed);
        assert_provider(&boxed);
        assert_provider(&shared);
        assert_eq!(boxed.policy(), TokenPolicy::default());
    }

    #[test]
    fn default_classification() {
        let with = |status: u16| {
            let mut response = Response::new(Bytes::new());
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            Fixed.classify_failure(AuthCall::Refresh, &response)
        };
        assert_eq!(with(400), Failure::Rejected);
        assert_eq!(with(401), Failure::Rejected);
        assert_eq!(with(403), Failure::Rejected);
        assert_eq!(with(500), Failure::Transient);
        assert_eq!(with(302), Failure::Transient);
    }
}
