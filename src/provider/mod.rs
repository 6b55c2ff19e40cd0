//! The per-API policy object: how an API logs in and refreshes, where its tokens are, and when to
//! refresh and replay.
//!
//! The layer calls a [`Provider`] only on cold paths (a login or refresh); the [`TokenPolicy`] it
//! returns is read once, when the layer is built.
//!
//! A provider is data or code: a spec file read into an [`HttpProvider`] (the presets are spec
//! files too; [`ProviderSpec`] documents the format), or a type of your own implementing [`Provider`].
//!
//! # Implementing a provider
//!
//! ```
//! use bytes::Bytes;
//! use http::{header, Method, Request};
//! use http_body_util::Full;
//! use tower_token_auth::{AuthError, Secret};
//! use tower_token_auth::provider::Provider;
//!
//! #[derive(Debug)]
//! struct MyApi {
//!     token_url: http::Uri,
//!     api_key: Secret,
//! }
//!
//! fn post_json(uri: &http::Uri, body: serde_json::Value) -> Request<Full<Bytes>> {
//!     let mut req = Request::new(Full::new(Bytes::from(body.to_string())));
//!     *req.method_mut() = Method::POST;
//!     *req.uri_mut() = uri.clone();
//!     req.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
//!     req
//! }
//!
//! impl Provider for MyApi {
//!     fn login_request(&self) -> Result<Request<Full<Bytes>>, AuthError> {
//!         Ok(post_json(&self.token_url, serde_json::json!({ "api_key": self.api_key.expose() })))
//!     }
//!
//!     fn refresh_request(&self, refresh_token: &Secret) -> Result<Request<Full<Bytes>>, AuthError> {
//!         Ok(post_json(&self.token_url, serde_json::json!({ "refresh_token": refresh_token.expose() })))
//!     }
//!     // `parse_response` defaults to `TokenSet::from_json`, `classify_failure` treats 400/401/403
//!     // as rejections, and `policy` to `TokenPolicy::default()`.
//! }
//! ```

mod generic;
pub mod oauth2;
mod preset;
mod spec;

pub use self::generic::HttpProvider;
pub(crate) use self::generic::{
    CallSpec, Encoding, Expiry, Location, Param, Rejects, Timestamp, TokenFields, TokenSource,
};
pub use self::preset::Preset;
pub use self::spec::{Credentials, ProviderSpec, SpecError};
mod classify;
mod header;
mod origins;

pub use self::classify::Classifier;
pub use self::header::TokenHeader;
pub(crate) use self::origins::refused as outside_origins;
pub use self::origins::Origins;
pub use crate::error::Failure;
pub(crate) use crate::error::CLIENT_ERRORS;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;

use crate::error::{AuthCall, AuthError};
use crate::secret::Secret;
use crate::slot::Generation;
use crate::token::TokenSet;

/// A login or refresh request, as a provider builds it.
pub(crate) type AuthRequest = Request<Full<Bytes>>;

/// An auth server's response, with its body collected (up to the layer's size cap).
pub(crate) type AuthResponse = Response<Bytes>;

/// How an API logs in and refreshes, and the policy the layer applies to it.
///
/// The trait is object-safe: `Box<dyn Provider>` and `Arc<dyn Provider>` are providers too, so a
/// provider can be chosen at run time.
pub trait Provider: Send + Sync + 'static {
    /// Builds the request that sends credentials for a new token pair. It is called anew for
    /// every auth call, retries included.
    ///
    /// Return [`AuthError::config`] when the provider holds no credentials; the layer then fails
    /// requests instead of logging in.
    fn login_request(&self) -> Result<Request<Full<Bytes>>, AuthError>;

    /// Builds the request that exchanges `refresh_token` for a new token pair.
    fn refresh_request(&self, refresh_token: &Secret) -> Result<Request<Full<Bytes>>, AuthError>;

    /// Parses a successful (2xx) login or refresh response, its body collected (up to the
    /// layer's size cap).
    ///
    /// The default reads a standard JSON token response with [`TokenSet::from_json`]. A response
    /// that carries no new token pair must be an error, never an empty success.
    fn parse_response(
        &self,
        call: AuthCall,
        response: &Response<Bytes>,
    ) -> Result<TokenSet, AuthError> {
        let _ = call;
        TokenSet::from_json(response.body())
    }

    /// Classifies a non-2xx auth response: the one place a failed auth answer gets its class,
    /// which the flight then acts on (ARCHITECTURE.md, "Failure classes").
    ///
    /// [`Failure::Rejected`] means the credentials or the refresh token are dead: a rejected
    /// refresh falls back to login in the same attempt (when
    /// [`TokenPolicy::login_on_refresh_rejected`]); a rejected login fails every waiting request with
    /// [`ErrorKind::LoginRejected`](crate::ErrorKind) and starts the rejection backoff, during
    /// which requests fail fast. [`Failure::Transient`] is retried inside the flight on the
    /// transient schedule while requests keep waiting. [`Failure::Unexpected`] is backed off like
    /// a rejection, without blaming the credentials. [`Failure::Ambiguous`] is retried like a
    /// transient failure until it repeats. The default is [`Failure::of_status`].
    fn classify_failure(&self, call: AuthCall, response: &Response<Bytes>) -> Failure {
        let _ = call;
        Failure::of_status(response.status())
    }

    /// The refresh, replay and fallback policy for this API. Read once, when the layer is built.
    fn policy(&self) -> TokenPolicy {
        TokenPolicy::default()
    }

    /// The request that fetches the auth server's metadata (RFC 8414, OpenID Connect Discovery)
    /// before the next login or refresh, when the provider needs it: `None` (the default) for a
    /// provider whose endpoints are known. Asked before every attempt, so a provider returns
    /// `Some` only until it has read a document, and again once it finds what it read stale
    /// (its token endpoint answered 404, say). A failed fetch fails the attempt as a failed
    /// auth call does: an outage is retried in the flight, anything else backed off.
    fn discovery_request(&self) -> Option<Result<Request<Full<Bytes>>, AuthError>> {
        None
    }

    /// Reads a 2xx answer to [`discovery_request`](Self::discovery_request). An error (a
    /// document naming another issuer, an endpoint missing) fails the attempt and is backed off
    /// like a rejection.
    fn discovered(&self, response: &Response<Bytes>) -> Result<(), AuthError> {
        let _ = response;
        Ok(())
    }

    /// Builds the request that revokes `token` (RFC 7009), for
    /// [`TokenHandle::revoke`](crate::TokenHandle::revoke); `hint` is its `token_type_hint`,
    /// `"access_token"` or `"refresh_token"`. `None` (the default) when the API has no
    /// revocation endpoint. Any 2xx answer means revoked.
    fn revocation_request(
        &self,
        token: &Secret,
        hint: &str,
    ) -> Result<Option<Request<Full<Bytes>>>, AuthError> {
        let _ = (token, hint);
        Ok(None)
    }
}

/// When to refresh a token that is still valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshTiming {
    /// Refresh in the background once the remaining lifetime falls below `margin` (or below half
    /// the token's lifetime, whichever is smaller), brought forward by a random fifth of that at
    /// most so that clients do not refresh in lockstep. Requests keep using the valid token
    /// meanwhile.
    Ahead {
        /// How long before expiry to start refreshing.
        margin: Duration,
    },
    /// Never refresh a valid token: only once it has expired, or when the upstream rejects it.
    /// For APIs that treat an early refresh as an error.
    AfterExpiry,
}

impl Default for RefreshTiming {
    fn default() -> Self {
        RefreshTiming::Ahead {
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
    /// When to refresh a still-valid token. Default: ahead, 30 s before expiry.
    pub refresh: RefreshTiming,
    /// How the token is put on requests, and so which `token_type` answers are accepted.
    /// Default: `Authorization: Bearer <token>`.
    pub header: TokenHeader,
    /// Which upstream answers mean "this token is dead": the token is refreshed and the request
    /// replayed. Default: [`Classifier::http`] (401, minding `WWW-Authenticate`).
    pub classifier: Classifier,
    /// How many times one request may be replayed because the token the slot held was refused
    /// (each such replay also triggers one refresh). Default: 1. Zero disables replay.
    ///
    /// A refusal of a token that was already superseded or already known dead is not news: the
    /// request is replayed with the current token free of charge (OkHttp's rule), within
    /// [`max_sends`](Self::max_sends). Nor is a revocation the request merely reported first:
    /// when the token had served other requests and was refused for others too, the replay it
    /// was charged is refunded at the request's next refusal.
    pub max_replays: u32,
    /// Hard cap on how many times one request is sent, replays included, once a token the
    /// upstream had never been seen accepting was refused (a token refused for good: a
    /// missing permission, a wrong audience). Default: 3.
    pub max_sends: u32,
    /// Hard cap on sends for a request each of whose refused tokens had served an earlier
    /// request (some answer to a request carrying it did not refuse it): tokens revoked one
    /// after another while the request was replayed, which is revocation, not a loop. Sends
    /// beyond [`max_sends`](Self::max_sends) go out only within the layer's
    /// [`max_wait`](crate::AuthLayerBuilder::max_wait) of the request's start, and only while new
    /// tokens come. Default: 8; a value below `max_sends` counts as `max_sends`, and with
    /// `max_sends` at 1 nothing is replayed at all.
    pub max_sends_revoked: u32,
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
    /// DPoP (RFC 9449, feature `jose`): the key tokens are bound to. Every auth call carries a
    /// proof signed with it; a token answered with `token_type` `DPoP` is sent as
    /// `Authorization: DPoP <token>` with a proof per request (whatever
    /// [`header`](Self::header) says), and never as a bearer token. Servers' nonces are kept per
    /// origin. Default: none; a `DPoP` token answer is then refused (as any `token_type` the
    /// header does not send).
    ///
    /// Processes that share a session through a [token store](crate::store) share the key too:
    /// a stored session bound to another key is never adopted.
    #[cfg(feature = "jose")]
    pub dpop: Option<crate::jose::DpopKey>,
    /// The origins requests carry the token to: a request to another passes through with no
    /// token (or fails, with [`Origins::refuse_others`]), in the tower layer and the reqwest
    /// middleware alike. Default: none, every request carries it.
    pub origins: Option<Origins>,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            refresh: RefreshTiming::default(),
            header: TokenHeader::default(),
            classifier: Classifier::default(),
            max_replays: 1,
            max_sends: 3,
            max_sends_revoked: 8,
            login_on_refresh_rejected: true,
            default_lifetime: Duration::from_secs(300),
            keep_unrotated_refresh_token: true,
            #[cfg(feature = "jose")]
            dpop: None,
            origins: None,
        }
    }
}

impl TokenPolicy {
    /// Whether the policy can work: a positive [`default_lifetime`](Self::default_lifetime) (a
    /// token believed dead on arrival would be renewed in a loop) and a
    /// [`max_sends`](Self::max_sends) of at least 1 (it counts the first send). An error of kind
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) names the setting.
    ///
    /// Every policy is checked once, when its layer is built, whatever built it:
    /// [`AuthLayerBuilder::build`](crate::AuthLayerBuilder::build) panics on one that fails, as
    /// on any other programming error; a spec file's policy fails with this error when the file
    /// is read. Call it first for a policy built from your own configuration.
    ///
    /// ```
    /// use tower_token_auth::provider::TokenPolicy;
    ///
    /// let mut policy = TokenPolicy::default();
    /// assert!(policy.check().is_ok());
    /// policy.max_sends = 0;
    /// assert_eq!(
    ///     policy.check().unwrap_err().to_string(),
    ///     "invalid auth configuration: `max_sends` counts the first send: at least 1"
    /// );
    /// ```
    pub fn check(&self) -> Result<(), AuthError> {
        if self.default_lifetime.is_zero() {
            return Err(AuthError::config("`default_lifetime` must be positive"));
        }
        if self.max_sends == 0 {
            return Err(AuthError::config(
                "`max_sends` counts the first send: at least 1",
            ));
        }
        Ok(())
    }

    /// Whether any request can be replayed: requests are copied only then.
    pub(crate) fn replays(&self) -> bool {
        self.max_replays > 0 && self.max_sends >= 2 && !self.classifier.is_none()
    }

    /// Whether a request about to go out for the `sends + 1`-th time, having spent `budget`,
    /// needs a copy: another send may follow it.
    pub(crate) fn copies_for_send(&self, sends: u32, budget: &Budget) -> bool {
        self.replays() && sends + 1 < self.send_cap(budget.revoked_only)
    }

    /// The hard cap on sends of a request: higher while every token it was refused with (up to
    /// the latest) had been accepted.
    fn send_cap(&self, revoked_only: bool) -> u32 {
        if revoked_only {
            self.max_sends.max(self.max_sends_revoked)
        } else {
            self.max_sends
        }
    }

    /// The replay decision, the one place it is made (the tower service and the adapters ask
    /// it), for a request sent `sends` times whose token was just refused.
    ///
    /// OkHttp's rule: a refusal of the token the slot holds (news) costs one of `max_replays`
    /// (counted in `budget`) and one refresh; a refusal of a token already superseded or known
    /// dead is replayed free. The hard cap on sends bounds both, so a replay loop always ends:
    /// `max_sends`, or `max_sends_revoked` while every token the request was refused with had
    /// been accepted (revocation) and the request is within its deadline.
    ///
    /// Revocation is told from refusal in hindsight, at the request's next refusal: whether
    /// the previous token had been accepted, and, when its refusal was charged, whether other
    /// requests were refused with it too. A charged token that was both died for everyone
    /// (the request merely reported it first): the charge is refunded.
    ///
    /// NOTE: in hindsight, because the answer that shows a token accepted, or the refusals of
    /// the other requests, may arrive just after the refusal they concern (a token revoked by
    /// the very answer that served a request). So a token never accepted costs at most
    /// `max_sends` sends, and at most one send beyond it after tokens that were; and a request
    /// the upstream refuses alone still costs at most `max_replays` refreshes.
    pub(crate) fn allows_replay(&self, sends: u32, budget: &mut Budget, refusal: Refusal) -> bool {
        if let Some((_, charged)) = budget.previous {
            budget.revoked_only &= refusal.previous_accepted;
            if charged && budget.revoked_only && refusal.previous_refused_again {
                budget.charged -= 1;
            }
        }
        let cap = if refusal.in_time {
            self.send_cap(budget.revoked_only)
        } else {
            self.max_sends
        };
        let allowed = sends < cap && (!refusal.news || budget.charged < self.max_replays);
        let charged = allowed && refusal.news;
        if charged {
            budget.charged += 1;
        }
        budget.previous = Some((refusal.generation, charged));
        allowed
    }
}

/// What one request has spent of its replay budget ([`TokenPolicy::allows_replay`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    /// Replays charged to [`TokenPolicy::max_replays`].
    charged: u32,
    /// Every token the request was refused with, up to `previous`, had been accepted.
    revoked_only: bool,
    /// The token of the latest refusal, judged at the next one, and whether that refusal
    /// was charged.
    previous: Option<(Generation, bool)>,
}

impl Budget {
    /// The token of the request's latest refusal, which the next refusal judges
    /// ([`Refusal::previous_accepted`]).
    pub(crate) fn previous(&self) -> Option<Generation> {
        self.previous.map(|(generation, _)| generation)
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            charged: 0,
            revoked_only: true,
            previous: None,
        }
    }
}

/// One refusal of a request's token, as [`TokenPolicy::allows_replay`] weighs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The refused token.
    pub(crate) generation: Generation,
    /// The slot holds the refused token, alive: the first word of its death.
    pub(crate) news: bool,
    /// The token of the request's previous refusal ([`Budget::previous`]) had been accepted:
    /// some answer to a request carrying it did not refuse it.
    pub(crate) previous_accepted: bool,
    /// That token was refused for other requests too, after it was known dead.
    pub(crate) previous_refused_again: bool,
    /// The request is within its deadline (the layer's `max_wait` from its start).
    pub(crate) in_time: bool,
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
            fn revocation_request(
                &self,
                token: &Secret,
                hint: &str,
            ) -> Result<Option<AuthRequest>, AuthError> {
                (**self).revocation_request(token, hint)
            }
            fn discovery_request(&self) -> Option<Result<AuthRequest, AuthError>> {
                (**self).discovery_request()
            }
            fn discovered(&self, response: &AuthResponse) -> Result<(), AuthError> {
                (**self).discovered(response)
            }
        }
    };
}

forward_provider!(Box);
forward_provider!(Arc);

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

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

    /// A request's successive tokens refused, as `allows_replay` is asked about them: the
    /// number of sends it allows.
    fn sends_allowed(policy: &TokenPolicy, tokens: impl IntoIterator<Item = Token>) -> u32 {
        let mut budget = Budget::default();
        let mut fates = std::collections::HashMap::new();
        let mut sends = 1;
        for (n, token) in (1..).zip(tokens) {
            let generation = Generation::FIRST;
            let generation = (1..n).fold(generation, |g, _| g.next());
            fates.insert(generation, token);
            let previous = budget.previous().map(|g| fates[&g]);
            let refusal = Refusal {
                generation,
                news: token.news,
                previous_accepted: previous.is_none_or(|t| t.accepted),
                previous_refused_again: previous.is_some_and(|t| t.refused_again),
                in_time: token.in_time,
            };
            let copied = policy.copies_for_send(sends - 1, &budget);
            if !policy.allows_replay(sends, &mut budget, refusal) {
                return sends;
            }
            assert!(copied, "send {sends} kept no copy for the replay it allows");
            sends += 1;
        }
        panic!("still replaying after {sends} sends");
    }

    /// What became of one token a request was refused with.
    #[derive(Clone, Copy)]
    struct Token {
        news: bool,
        accepted: bool,
        refused_again: bool,
        in_time: bool,
    }

    fn refusal(news: bool, accepted: bool, in_time: bool) -> Token {
        Token {
            news,
            accepted,
            refused_again: !news,
            in_time,
        }
    }

    #[test]
    fn the_replay_budget_follows_okhttp_with_a_higher_cap_for_revocation() {
        let policy = TokenPolicy::default();
        let forever = |t: Token| std::iter::repeat(t);
        // Tokens never seen accepted, each already replaced: the cap of 3.
        assert_eq!(
            sends_allowed(&policy, forever(refusal(false, false, true))),
            3
        );
        // Tokens that had served other requests, revoked one after another: 8.
        assert_eq!(
            sends_allowed(&policy, forever(refusal(false, true, true))),
            8
        );
        // One token never seen accepted among them: back to 3 from then on, or one send past
        // the token when it comes later (judged at the next refusal).
        let mixed = [refusal(false, true, true), refusal(false, false, true)];
        assert_eq!(
            sends_allowed(
                &policy,
                mixed.into_iter().chain(forever(refusal(false, true, true)))
            ),
            3
        );
        let late = [true, true, true, false].map(|accepted| refusal(false, accepted, true));
        assert_eq!(
            sends_allowed(
                &policy,
                late.into_iter().chain(forever(refusal(false, true, true)))
            ),
            5
        );
        // Past the deadline: no send beyond 3.
        assert_eq!(
            sends_allowed(&policy, forever(refusal(false, true, false))),
            3
        );
        // News costs one of `max_replays` (1), accepted or not, when the request alone was
        // refused with the token ...
        assert_eq!(
            sends_allowed(&policy, forever(refusal(true, true, true))),
            2
        );
        assert_eq!(
            sends_allowed(&policy, forever(refusal(true, false, true))),
            2
        );
        // ... and is refunded for a token that had been accepted and died for others too.
        let reported_first = Token {
            refused_again: true,
            ..refusal(true, true, true)
        };
        assert_eq!(sends_allowed(&policy, forever(reported_first)), 8);
        let never_accepted = Token {
            accepted: false,
            ..reported_first
        };
        assert_eq!(sends_allowed(&policy, forever(never_accepted)), 2);

        let mut custom = TokenPolicy {
            max_sends: 4,
            max_sends_revoked: 2,
            ..TokenPolicy::default()
        };
        assert_eq!(
            sends_allowed(&custom, forever(refusal(false, true, true))),
            4,
            "never below max_sends"
        );
        custom.max_sends_revoked = 6;
        assert_eq!(
            sends_allowed(&custom, forever(refusal(false, true, true))),
            6
        );
        // The last send keeps no copy.
        assert!(custom.copies_for_send(4, &Budget::default()));
        assert!(!custom.copies_for_send(5, &Budget::default()));
        custom.max_replays = 0;
        assert!(!custom.copies_for_send(0, &Budget::default()));
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
        assert_eq!(with(429), Failure::Transient);
        assert_eq!(with(408), Failure::Transient);
        assert_eq!(with(302), Failure::Unexpected);
        assert_eq!(with(404), Failure::Unexpected);
    }
}
