//! The layer's one error type.
//!
//! [`AuthError`] is cheap to clone (one `Arc`): a single failed login or refresh is shared by every
//! request that waited for it. Its `Display` describes what went wrong at this layer; the
//! underlying cause, when there is one, hangs off [`std::error::Error::source`]. Some errors also
//! name their cause in the message: a request that failed fast during a backoff ("login rejected
//! by the auth server (401 Unauthorized); backing off: no auth call for another 4200 ms"), one
//! that gave up waiting ("… unavailable after waiting 30s; last failure: …"), and a failed send,
//! whose cause chain ends in the root cause ("login: auth request failed: client error (Connect):
//! tcp connect error: Connection refused (os error 111)").
//!
//! No message ever contains a credential or a token: text from the auth server (an OAuth2
//! `error_description`) or from a failed send is shown with every value the request carried
//! redacted, in whatever encoding it came back (JSON escapes, percent encoding, another letter
//! case), and withheld whole when it quotes a value too short to redact.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

/// A type-erased error, as used by [`tower`] and the service this layer produces.
pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

/// Which auth call a failure belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthCall {
    /// Sending credentials for a fresh token pair.
    Login,
    /// Exchanging a refresh token for a fresh token pair.
    Refresh,
    /// Revoking a token (RFC 7009), from [`TokenHandle::revoke`](crate::TokenHandle::revoke).
    Revoke,
    /// Fetching the auth server's metadata before a login or refresh
    /// ([`Provider::discovery_request`](crate::provider::Provider::discovery_request)).
    Discovery,
}

impl AuthCall {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuthCall::Login => "login",
            AuthCall::Refresh => "refresh",
            AuthCall::Revoke => "revoke",
            AuthCall::Discovery => "discovery",
        }
    }
}

impl fmt::Display for AuthCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of failure an [`AuthError`] is.
///
/// More kinds may be added; match with a wildcard arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The auth server refused the credentials.
    LoginRejected,
    /// The auth server refused the refresh token.
    RefreshRejected,
    /// The auth server answered with a status that is neither success nor a rejection. A 5xx,
    /// 408 or 429 is transient; any other (a redirect, a 404) is a configuration problem that
    /// retrying soon would not fix, and is backed off like a rejection; its message names the
    /// endpoint (origin and path, never the query).
    Status,
    /// The auth request could not be sent or its response could not be read.
    Transport,
    /// The auth call did not complete within the configured timeout.
    Timeout,
    /// The auth response body exceeded the configured size cap.
    ResponseTooLarge,
    /// The auth response could not be understood (bad JSON, a missing field, ...).
    Malformed,
    /// The auth server issued a token whose `token_type` is neither `bearer` nor the scheme the
    /// policy sends it with ([`TokenHeader`](crate::provider::TokenHeader)): see
    /// [`TokenSet::from_json`](crate::token::TokenSet::from_json) for the rule. A configuration
    /// error, not transient: retrying would only log in again (the refresh token is spent), so
    /// the layer backs off as after a rejection.
    TokenType,
    /// A token cannot be sent: it is not a valid HTTP header value.
    InvalidToken,
    /// No token within the layer's wait bound: the auth server kept failing transiently (or the
    /// auth call is still running). The last failure, if any, is the [`source`](StdError::source).
    Unavailable,
    /// The layer or provider is misconfigured (no credentials to log in with, an auth transport
    /// that cannot speak the auth URL's scheme, such as a plain-HTTP client given an `https://`
    /// URL, ...). Backed off like a rejection: retrying cannot fix it.
    Config,
    /// No tokio runtime was available to run the auth call on.
    Runtime,
    /// The auth call's task ended without an answer: it panicked (a provider bug) or its runtime
    /// shut down.
    Aborted,
    /// A [`TokenStore`](crate::store::TokenStore) failed, or holds an entry that is corrupt, of a
    /// foreign format or for another key. The layer never fails a request for it: it logs the
    /// error, counts it ([`MetricsSnapshot::store_failures`](crate::MetricsSnapshot::store_failures))
    /// and authenticates as if the store were empty.
    Store,
}

/// 400, 401 and 403: what RFC 6749 servers (and most others) answer to dead credentials and
/// grants.
pub(crate) const CLIENT_ERRORS: [StatusCode; 3] = [
    StatusCode::BAD_REQUEST,
    StatusCode::UNAUTHORIZED,
    StatusCode::FORBIDDEN,
];

/// What a failed auth answer means: its class, decided once by
/// [`Provider::classify_failure`](crate::provider::Provider::classify_failure) and acted on by the flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The credentials or refresh token are no longer accepted.
    Rejected,
    /// The server could not answer now; trying again later may succeed.
    Transient,
    /// Neither a refusal nor an outage: a redirect, a 404, an error the API does not document.
    /// The likeliest cause is a wrong endpoint or method, which retrying soon would not fix:
    /// backed off like a rejection, with the endpoint named in the error, whose kind is
    /// [`ErrorKind::Status`](crate::ErrorKind::Status).
    Unexpected,
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

    /// The default class of a failure status: 400, 401 and 403 reject (what RFC 6749 servers,
    /// and most others, answer to dead credentials and grants); a 5xx, 408 or 429 is an outage
    /// ([`Failure::Transient`]); any other is [`Failure::Unexpected`].
    pub fn of_status(status: StatusCode) -> Failure {
        if CLIENT_ERRORS.contains(&status) {
            Failure::Rejected
        } else {
            Failure::outage_or_unexpected(status)
        }
    }

    /// The class of a status that does not reject: a 5xx, 408 or 429 is an outage
    /// ([`Failure::Transient`]); any other is [`Failure::Unexpected`].
    pub(crate) fn outage_or_unexpected(status: StatusCode) -> Failure {
        let outage = status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS;
        if outage {
            Failure::Transient
        } else {
            Failure::Unexpected
        }
    }
}

/// An authentication failure.
///
/// Returned (boxed into [`BoxError`](tower::BoxError)) by [`AuthService`](crate::AuthService) when no token could be
/// obtained. Recover it with `downcast_ref`:
///
/// ```
/// use tower::BoxError;
/// use tower_token_auth::{AuthError, ErrorKind};
///
/// fn describe(err: &BoxError) -> &'static str {
///     match err.downcast_ref::<AuthError>() {
///         Some(auth) if auth.kind() == ErrorKind::LoginRejected => "credentials refused",
///         Some(_) => "could not obtain a token",
///         None => "the request itself failed",
///     }
/// }
/// # let _ = describe;
/// ```
#[derive(Clone)]
pub struct AuthError {
    inner: Arc<Inner>,
}

struct Inner {
    kind: ErrorKind,
    call: Option<AuthCall>,
    status: Option<StatusCode>,
    /// The auth endpoint's origin and path (never its query), when the failure is one that a
    /// wrong endpoint would explain.
    endpoint: Option<Box<str>>,
    detail: Option<Cow<'static, str>>,
    /// Timeout: the limit; Unavailable: how long the request waited.
    waited: Option<Duration>,
    /// Failing fast after a rejection: how long until the next auth call.
    retry_in: Option<Duration>,
    /// The server's `Retry-After`, as a delay.
    retry_after: Option<Duration>,
    /// The failure's class, fixed where the error is made: for an auth server's failure answer,
    /// what the provider's `classify_failure` said; for every other error, its kind's class.
    failure: Failure,
    source: Option<BoxError>,
}

impl AuthError {
    fn new(kind: ErrorKind) -> Self {
        // NOTE: the class of an error that no auth answer classified: the flight retries what
        // may pass (the send, the wait, an unusable answer) and backs off from what cannot.
        let failure = match kind {
            ErrorKind::Transport
            | ErrorKind::Timeout
            | ErrorKind::ResponseTooLarge
            | ErrorKind::Malformed
            | ErrorKind::InvalidToken => Failure::Transient,
            ErrorKind::LoginRejected | ErrorKind::RefreshRejected => Failure::Rejected,
            _ => Failure::Unexpected,
        };
        Self::from_inner(Inner {
            kind,
            call: None,
            status: None,
            endpoint: None,
            detail: None,
            waited: None,
            retry_in: None,
            retry_after: None,
            failure,
            source: None,
        })
    }

    fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    fn map(self, f: impl FnOnce(&mut Inner)) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                f(&mut inner);
                Self::from_inner(inner)
            }
            // A shared error is never modified after the fact.
            Err(inner) => Self { inner },
        }
    }

    /// A malformed auth response. `detail` says what was wrong and must never contain a secret
    /// (name the field, not its value).
    pub fn malformed(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Malformed).map(|i| i.detail = Some(detail.into()))
    }

    /// A token that cannot be sent because it is not a valid header value.
    pub(crate) fn invalid_token(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidToken).map(|i| i.detail = Some(detail.into()))
    }

    /// A configuration problem. `detail` must never contain a secret.
    pub fn config(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Config).map(|i| i.detail = Some(detail.into()))
    }

    /// A [`TokenStore`](crate::store::TokenStore) failure: `detail` says what failed, `source`
    /// is the cause (an I/O error, say). Neither may contain a token: name the operation and the
    /// entry's key, never the entry's content.
    pub fn store(detail: impl Into<Cow<'static, str>>, source: Option<BoxError>) -> Self {
        Self::new(ErrorKind::Store).map(|i| {
            i.detail = Some(detail.into());
            i.source = source;
        })
    }

    /// A token type the layer cannot send (see [`ErrorKind::TokenType`]).
    pub(crate) fn token_type() -> Self {
        Self::new(ErrorKind::TokenType)
    }

    /// A token type that is neither `bearer` nor `scheme`, the one the policy sends tokens with.
    /// The type itself is not shown: it came from the server, next to the token.
    pub(crate) fn token_type_mismatch(scheme: &str) -> Self {
        Self::token_type().map(|i| {
            i.detail = Some(Cow::Owned(format!(
                "tokens are sent as `{scheme} <token>`; if the API documents another scheme, \
                 set it in `TokenPolicy::header`"
            )))
        })
    }

    pub(crate) fn rejected(call: AuthCall, status: StatusCode, detail: Option<String>) -> Self {
        let kind = match call {
            AuthCall::Login => ErrorKind::LoginRejected,
            AuthCall::Refresh => ErrorKind::RefreshRejected,
            AuthCall::Revoke | AuthCall::Discovery => ErrorKind::Status,
        };
        Self::new(kind).map(|i| {
            i.status = Some(status);
            i.detail = detail.map(Cow::Owned);
        })
    }

    /// A failure answer that rejects nothing: `failure` is its class as the provider gave it
    /// (transient, unexpected or ambiguous).
    pub(crate) fn status_error(
        status: StatusCode,
        detail: Option<String>,
        retry_after: Option<Duration>,
        failure: Failure,
    ) -> Self {
        let failure = match failure {
            Failure::Ambiguous { repeats } => Failure::Ambiguous {
                repeats: repeats.max(1),
            },
            other => other,
        };
        Self::new(ErrorKind::Status).map(|i| {
            i.status = Some(status);
            i.detail = detail.map(Cow::Owned);
            i.retry_after = retry_after;
            i.failure = failure;
        })
    }

    /// What went wrong, in words, when the error says more than its kind.
    pub(crate) fn detail(&self) -> Option<&str> {
        self.inner.detail.as_deref()
    }

    /// The failure's class (see [`Failure`]): what the flight does with it.
    pub(crate) fn failure(&self) -> Failure {
        self.inner.failure
    }

    /// This error, come `times` times in a row: the answer it was ambiguous about is taken as a
    /// rejection of the credentials (or the refresh token) it answered.
    pub(crate) fn repeated(&self, times: u32) -> Self {
        let call = self.inner.call.unwrap_or(AuthCall::Login);
        let note = format!("the same answer {times} times in a row");
        let detail = match &self.inner.detail {
            Some(detail) => format!("{detail}; {note}"),
            None => note,
        };
        let status = self
            .inner
            .status
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self::rejected(call, status, Some(detail))
    }

    /// A 2xx answer that carried no usable token (bad JSON, no token, a token no header can
    /// carry): transient once, but an auth server that keeps answering so is not coming back.
    pub(crate) fn is_unusable_answer(&self) -> bool {
        match self.kind() {
            ErrorKind::Malformed | ErrorKind::InvalidToken => true,
            ErrorKind::ResponseTooLarge => self.status().is_some_and(|s| s.is_success()),
            _ => false,
        }
    }

    pub(crate) fn transport(source: BoxError) -> Self {
        Self::new(ErrorKind::Transport).map(|i| i.source = Some(source))
    }

    /// The response head arrived with `status`, but its body could not be read.
    pub(crate) fn body_failed(source: BoxError, status: StatusCode) -> Self {
        Self::transport(source).map(|i| i.status = Some(status))
    }

    pub(crate) fn timeout(after: Duration) -> Self {
        Self::new(ErrorKind::Timeout).map(|i| i.waited = Some(after))
    }

    pub(crate) fn too_large(limit: usize, status: StatusCode) -> Self {
        Self::new(ErrorKind::ResponseTooLarge).map(|i| {
            i.status = Some(status);
            i.detail = Some(Cow::Owned(format!("{limit} bytes")));
        })
    }

    /// No token within `waited`; `last` is the flight's latest transient failure, if any.
    pub(crate) fn unavailable(waited: Duration, last: Option<AuthError>) -> Self {
        Self::new(ErrorKind::Unavailable).map(|i| {
            i.waited = Some(waited);
            i.source = last.map(|e| Box::new(e) as BoxError);
        })
    }

    /// `cause` (a rejection) again, for a request that fails fast during the backoff it started:
    /// same kind, call, status and detail; `retry_in` says when credentials go out again.
    pub(crate) fn failing_fast(cause: &AuthError, retry_in: Duration) -> Self {
        let c = &*cause.inner;
        Self::from_inner(Inner {
            kind: c.kind,
            call: c.call,
            status: c.status,
            endpoint: c.endpoint.clone(),
            detail: c.detail.clone(),
            waited: None,
            retry_in: Some(retry_in),
            retry_after: None,
            failure: c.failure,
            source: Some(Box::new(cause.clone())),
        })
    }

    /// The same failure, described by `detail` (replacing any): for a transport failure, its
    /// cause chain as text, already scrubbed.
    pub(crate) fn with_detail(self, detail: String) -> Self {
        self.map(|i| i.detail = Some(Cow::Owned(detail)))
    }

    /// The same failure with its detail rewritten by `f` (a redaction).
    pub(crate) fn map_detail(self, f: impl FnOnce(&str) -> String) -> Self {
        self.map(|i| {
            if let Some(detail) = i.detail.take() {
                i.detail = Some(Cow::Owned(f(&detail)));
            }
        })
    }

    /// A transport failure that retrying cannot fix, as a configuration error described by
    /// `detail` (which names the fix); the transport's error stays the source.
    pub(crate) fn into_config(self, detail: String) -> Self {
        self.map(|i| {
            i.kind = ErrorKind::Config;
            i.failure = Failure::Unexpected;
            i.detail = Some(Cow::Owned(detail));
        })
    }

    /// The same failure, naming the endpoint that answered it (origin and path only).
    pub(crate) fn at_endpoint(self, endpoint: String) -> Self {
        self.map(|i| i.endpoint = Some(endpoint.into()))
    }

    pub(crate) fn runtime() -> Self {
        Self::new(ErrorKind::Runtime)
    }

    pub(crate) fn aborted() -> Self {
        Self::new(ErrorKind::Aborted)
    }

    /// Attributes the error to an auth call (kept if already set).
    pub(crate) fn during(self, call: AuthCall) -> Self {
        if self.inner.call.is_some() {
            return self;
        }
        self.map(|i| i.call = Some(call))
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The auth call that failed, when the failure came from one.
    pub fn call(&self) -> Option<AuthCall> {
        self.inner.call
    }

    /// The auth server's status code, for rejections, unexpected statuses and oversized answers.
    pub fn status(&self) -> Option<StatusCode> {
        self.inner.status
    }

    /// For a request that failed fast, making no auth call of its own, because an earlier
    /// attempt was rejected (or the provider is misconfigured) and the backoff has not elapsed:
    /// how long until the layer sends credentials again. [`kind`](Self::kind) is the earlier
    /// failure's.
    pub fn retry_in(&self) -> Option<Duration> {
        self.inner.retry_in
    }

    /// The auth server's `Retry-After`, when its failure answer carried one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("AuthError");
        d.field("kind", &self.inner.kind);
        if let Some(call) = self.inner.call {
            d.field("call", &call);
        }
        if let Some(status) = self.inner.status {
            d.field("status", &status);
        }
        if let Some(endpoint) = &self.inner.endpoint {
            d.field("endpoint", endpoint);
        }
        if let Some(detail) = &self.inner.detail {
            d.field("detail", detail);
        }
        if let Some(retry_in) = self.inner.retry_in {
            d.field("retry_in", &retry_in);
        }
        if let Some(retry_after) = self.inner.retry_after {
            d.field("retry_after", &retry_after);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        if let Some(retry_in) = inner.retry_in {
            // NOTE: a request failing fast made no auth call of its own: the message is the
            // cause's, whole (status, server detail, `Retry-After`), then the backoff. "Backing
            // off" alone would not tell a user what to fix; the cause also stays in `source()`.
            match cause(inner) {
                Some(cause) => fmt::Display::fmt(cause, f)?,
                None => self.describe(f)?,
            }
            return write!(
                f,
                "; backing off: no auth call for another {}",
                Millis(retry_in)
            );
        }
        self.describe(f)
    }
}

/// The [`AuthError`] an error wraps, if its source is one.
fn cause(inner: &Inner) -> Option<&AuthError> {
    inner.source.as_ref()?.downcast_ref::<AuthError>()
}

impl AuthError {
    /// This error's own message, without the backoff.
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        if let Some(call) = inner.call {
            if !matches!(
                inner.kind,
                ErrorKind::LoginRejected | ErrorKind::RefreshRejected
            ) {
                write!(f, "{call}: ")?;
            }
        }
        match inner.kind {
            ErrorKind::LoginRejected => f.write_str("login rejected by the auth server")?,
            ErrorKind::RefreshRejected => {
                f.write_str("refresh token rejected by the auth server")?
            }
            ErrorKind::Status => f.write_str("unexpected auth server response")?,
            ErrorKind::Transport => f.write_str("auth request failed")?,
            ErrorKind::Timeout => f.write_str("auth request timed out")?,
            ErrorKind::ResponseTooLarge => f.write_str("auth response body exceeds the cap")?,
            ErrorKind::Malformed => f.write_str("malformed auth response")?,
            ErrorKind::TokenType => {
                f.write_str("token type is neither bearer nor the token header's scheme")?
            }
            ErrorKind::InvalidToken => f.write_str("token is not a valid header value")?,
            ErrorKind::Unavailable => f.write_str("no token: the auth server is unavailable")?,
            ErrorKind::Config => f.write_str("invalid auth configuration")?,
            ErrorKind::Runtime => f.write_str("no tokio runtime to run the auth call on")?,
            ErrorKind::Aborted => {
                f.write_str("auth call aborted (panicked or runtime shut down)")?
            }
            ErrorKind::Store => f.write_str("token store failed")?,
        }
        if let Some(status) = inner.status {
            write!(f, " ({status})")?;
        }
        if let Some(endpoint) = &inner.endpoint {
            write!(f, " from {endpoint}")?;
        }
        if let Some(waited) = inner.waited {
            match inner.kind {
                ErrorKind::Timeout => write!(f, " after {waited:?}")?,
                _ => write!(f, " after waiting {waited:?}")?,
            }
        }
        if let Some(detail) = &inner.detail {
            write!(f, ": {detail}")?;
        }
        if let Some(retry_after) = inner.retry_after {
            write!(f, " (retry after {retry_after:?})")?;
        }
        if inner.kind == ErrorKind::Unavailable {
            // NOTE: the cause is named here as well as in `source()`: "unavailable" alone does not
            // tell a user what to fix. `AuthError`'s `Display` holds no secret, so neither does this.
            match cause(inner) {
                Some(last) => write!(f, "; last failure: {last}")?,
                None => f.write_str("; the auth call has not answered yet")?,
            }
        }
        Ok(())
    }
}

/// A duration in whole milliseconds, for messages.
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0.as_millis())
    }
}

impl StdError for AuthError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|e| &**e as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_call_and_status() {
        let err = AuthError::rejected(
            AuthCall::Refresh,
            StatusCode::BAD_REQUEST,
            Some("invalid_grant".into()),
        );
        assert_eq!(
            err.to_string(),
            "refresh token rejected by the auth server (400 Bad Request): invalid_grant"
        );
        assert_eq!(err.kind(), ErrorKind::RefreshRejected);
        let err = AuthError::malformed("missing `access_token`").during(AuthCall::Login);
        assert_eq!(
            err.to_string(),
            "login: malformed auth response: missing `access_token`"
        );
        assert_eq!(err.call(), Some(AuthCall::Login));
    }

    #[test]
    fn failing_fast_repeats_the_rejection_and_says_when() {
        let last = AuthError::rejected(
            AuthCall::Login,
            StatusCode::UNAUTHORIZED,
            Some("invalid_grant".into()),
        );
        let err = AuthError::failing_fast(&last, Duration::from_millis(2500));
        assert_eq!(err.kind(), ErrorKind::LoginRejected);
        assert_eq!(last.retry_in(), None);
        assert_eq!(err.retry_in(), Some(Duration::from_millis(2500)));
        assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(
            err.to_string(),
            "login rejected by the auth server (401 Unauthorized): invalid_grant; \
             backing off: no auth call for another 2500 ms"
        );
        let source = err.source().and_then(|s| s.downcast_ref::<AuthError>());
        assert!(source.is_some_and(|s| s.kind() == ErrorKind::LoginRejected));
    }

    #[test]
    fn backing_off_names_the_whole_cause() {
        // A login answered 404 with a `Retry-After`: backed off like a rejection.
        let last = AuthError::status_error(
            StatusCode::NOT_FOUND,
            Some("no such realm".into()),
            Some(Duration::from_secs(60)),
            Failure::Unexpected,
        )
        .during(AuthCall::Login);
        let err = AuthError::failing_fast(&last, Duration::from_millis(999));
        assert_eq!(
            err.to_string(),
            "login: unexpected auth server response (404 Not Found): no such realm \
             (retry after 60s); backing off: no auth call for another 999 ms"
        );
        let config = AuthError::failing_fast(&AuthError::config("no credentials"), Duration::ZERO);
        assert_eq!(
            config.to_string(),
            "invalid auth configuration: no credentials; backing off: no auth call for another 0 ms"
        );
    }

    #[test]
    fn unavailable_names_the_last_failure() {
        let last = AuthError::status_error(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            Some(Duration::from_secs(2)),
            Failure::Transient,
        )
        .during(AuthCall::Refresh);
        assert_eq!(last.failure(), Failure::Transient);
        let err = AuthError::unavailable(Duration::from_secs(30), Some(last));
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_eq!(err.retry_in(), None);
        assert_eq!(
            err.to_string(),
            "no token: the auth server is unavailable after waiting 30s; last failure: \
             refresh: unexpected auth server response (503 Service Unavailable) (retry after 2s)"
        );
        let pending = AuthError::unavailable(Duration::from_secs(1), None);
        assert!(pending
            .to_string()
            .ends_with("the auth call has not answered yet"));
        assert!(pending.source().is_none());
    }

    #[test]
    fn failure_classes() {
        let rejected = AuthError::rejected(AuthCall::Refresh, StatusCode::BAD_REQUEST, None);
        assert_eq!(rejected.failure(), Failure::Rejected);
        assert_eq!(AuthError::config("x").failure(), Failure::Unexpected);
        assert_eq!(AuthError::token_type().failure(), Failure::Unexpected);
        assert_eq!(AuthError::aborted().failure(), Failure::Unexpected);
        let transient = [
            AuthError::malformed("x"),
            AuthError::timeout(Duration::from_secs(1)),
            AuthError::invalid_token("x"),
            AuthError::transport("reset".into()),
            AuthError::too_large(10, StatusCode::OK),
        ];
        for error in transient {
            assert_eq!(error.failure(), Failure::Transient, "{error:?}");
        }
        // A failure answer keeps the class the provider gave it.
        let status =
            |failure| AuthError::status_error(StatusCode::NOT_FOUND, None, None, failure).failure();
        assert_eq!(status(Failure::Transient), Failure::Transient);
        assert_eq!(status(Failure::Unexpected), Failure::Unexpected);
        assert_eq!(
            status(Failure::Ambiguous { repeats: 0 }),
            Failure::Ambiguous { repeats: 1 }
        );
        // Into configuration: retrying cannot fix it.
        let config = AuthError::transport("tls".into()).into_config("https needs TLS".into());
        assert_eq!(config.failure(), Failure::Unexpected);
        // Repeated ambiguity is a rejection.
        let repeated = AuthError::status_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            None,
            Failure::AMBIGUOUS,
        )
        .during(AuthCall::Login)
        .repeated(3);
        assert_eq!(repeated.kind(), ErrorKind::LoginRejected);
        assert_eq!(repeated.failure(), Failure::Rejected);
    }

    #[test]
    fn shared_error_is_not_modified() {
        let err = AuthError::token_type();
        let shared = err.clone();
        let attributed = err.during(AuthCall::Login);
        assert_eq!(attributed.call(), None);
        assert_eq!(shared.kind(), ErrorKind::TokenType);
    }
}
