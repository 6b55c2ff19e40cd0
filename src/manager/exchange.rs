//! The login/refresh exchange: which call to make, sending it, and turning the answer into a
//! usable token or a classified error.
//!
//! One `authenticate` is one attempt of a flight: a refresh when a live refresh token exists,
//! and a login when there is none or the refresh was rejected or answered unusably — in the same
//! attempt, so a dead refresh token never costs a failed flight.

use std::time::{Duration, SystemTime};

use base64::engine::{general_purpose::STANDARD, Engine as _};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::schedule::retry_after;
use super::transport::{endpoint, explain_failure};
use super::Manager;
use crate::clock::{Clock, Moment};
use crate::error::{AuthCall, AuthError, ErrorKind};
use crate::metrics::Counter;
use crate::provider::{AuthRequest, Failure, Provider, RefreshTiming, TokenPolicy, CLIENT_ERRORS};
use crate::secret::{redact_sent, scrub, Secret};
use crate::slot::{Generation, NewToken, TokenState};
use crate::store::StoredSession;
use crate::token::{jwt_lifetime, Lifetime, TokenSet, MAX_LIFETIME};

/// The lifetime assumed for a token whose stated expiry cannot be right: an absolute one (a JWT
/// `exp`, an `expires_at`) already past by the local clock (a skewed clock), or a lifetime under
/// [`MIN_LIFETIME`]. Short, with a 401 as the backstop, rather than a login loop.
const SKEWED_LIFETIME: Duration = Duration::from_secs(60);

/// The shortest lifetime believed: a token stated to live less (`expires_in` of `0.001`, a JWT
/// `exp` a few milliseconds away) has an unknown lifetime instead (see `Issued::new`).
const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// A successful attempt: the new token, and the refresh token to keep if the server did not
/// rotate it.
pub(super) struct Fresh {
    issued: Issued,
    kept: Option<Kept>,
}

/// How one auth call failed.
struct Failed {
    error: AuthError,
    /// The server answered with a 2xx status (whatever became of the body): a refresh token sent
    /// with the call is consumed, however unusable the answer.
    consumed: bool,
}

impl Manager {
    /// One attempt: refresh when `refresh` holds a refresh token (and its expiry), falling back
    /// to login (per policy for a rejected refresh; always for a refresh token that cannot be
    /// sent or was consumed by an unusable answer).
    pub(super) async fn authenticate(
        &self,
        refresh: Option<(&Secret, Option<Moment>)>,
    ) -> Result<Fresh, AuthError> {
        if let Some((refresh_token, refresh_expires_at)) = refresh {
            match self.provider.refresh_request(refresh_token) {
                Err(e) => {
                    tracing::warn!(error = %e, "refresh request cannot be built; logging in");
                    self.discard_refresh_token();
                }
                Ok(request) => match self
                    .call(AuthCall::Refresh, request, Some(refresh_token))
                    .await
                {
                    Ok(issued) => {
                        let kept = self.policy.keep_unrotated_refresh_token.then(|| Kept {
                            token: refresh_token.clone(),
                            expires_at: refresh_expires_at,
                        });
                        return Ok(Fresh { issued, kept });
                    }
                    Err(Failed { error, .. }) if error.kind() == ErrorKind::RefreshRejected => {
                        // Never send a rejected refresh token again, whatever the login does.
                        self.discard_refresh_token();
                        if !self.policy.login_on_refresh_rejected {
                            return Err(error);
                        }
                        tracing::info!(error = %error, "refresh rejected; logging in");
                    }
                    Err(Failed {
                        error,
                        consumed: true,
                    }) => {
                        // `call` dropped the consumed refresh token; only a login can help now.
                        tracing::info!(error = %error, "refresh answer unusable; logging in");
                    }
                    Err(Failed { error, .. }) => return Err(error),
                },
            }
        }
        let request = self
            .provider
            .login_request()
            .map_err(|e| e.during(AuthCall::Login))?;
        let issued = self
            .call(AuthCall::Login, request, None)
            .await
            .map_err(|f| f.error)?;
        Ok(Fresh { issued, kept: None })
    }

    /// Sends one auth request and turns its response into a usable token or a classified error.
    async fn call(
        &self,
        call: AuthCall,
        request: AuthRequest,
        refresh_token: Option<&Secret>,
    ) -> Result<Issued, Failed> {
        self.metrics.incr(match call {
            AuthCall::Login => Counter::Login,
            AuthCall::Refresh => Counter::Refresh,
        });
        let mut sent = sent_values(&request).await;
        sent.extend(refresh_token.map(|t| t.expose().to_owned()));
        // Kept to name the endpoint and the scheme in messages; the request goes to the transport.
        let uri = request.uri().clone();
        let clock = self.settings.clock;
        let started = clock.moment();
        let timeout = self.settings.timeout;
        let response = tokio::time::timeout(timeout, self.transport.clone().oneshot(request)).await;
        let mut consumed = false;
        let result = match response {
            Err(_) => Err(AuthError::timeout(timeout)),
            Ok(Err(e)) => {
                consumed = e.status().is_some_and(|s| s.is_success());
                Err(explain_failure(e, &uri, &sent))
            }
            Ok(Ok(response)) if response.status().is_success() => {
                consumed = true;
                self.provider
                    .parse_response(call, &response)
                    // A provider's own message may quote the answer, and the answer the request.
                    .map_err(|e| e.map_detail(|detail| redact_sent(detail, &sent)))
                    .and_then(|tokens| Issued::new(tokens, &self.policy, started, &clock))
            }
            Ok(Ok(response)) => {
                let status = response.status();
                let detail = oauth_error_detail(response.body()).map(|d| scrub(&d, &sent));
                let error = match self.provider.classify_failure(call, &response) {
                    Failure::Rejected => AuthError::rejected(call, status, detail),
                    failure => {
                        let wish = retry_after(response.headers(), clock.wall());
                        AuthError::status_error(status, detail, wish, failure)
                    }
                };
                Err(match names_endpoint(&error) {
                    true => error.at_endpoint(endpoint(&uri)),
                    false => error,
                })
            }
        };
        let elapsed_ms = clock.moment().duration_since(started).as_millis() as u64;
        match result {
            Ok(issued) => {
                tracing::info!(call = %call, elapsed_ms, "auth call succeeded");
                Ok(issued)
            }
            Err(error) => {
                let error = error.during(call);
                self.metrics.incr(Counter::AuthFailure);
                tracing::warn!(call = %call, elapsed_ms, error = %error, "auth call failed");
                if call == AuthCall::Refresh && consumed {
                    // Never send a consumed refresh token again.
                    self.discard_refresh_token();
                }
                Err(Failed { error, consumed })
            }
        }
    }
}

/// Whether the message of a failure answer names the endpoint: when a wrong URL (or method) is
/// its likeliest cause. A status backed off as configuration does (a 404, a redirect), and so
/// does a rejection whose status refuses no credentials (a 404 from an API that takes every
/// failure for a rejection); a refusal (400, 401, 403) or an outage (5xx, 408, 429) does not.
fn names_endpoint(error: &AuthError) -> bool {
    let Some(status) = error.status() else {
        return false;
    };
    if error.kind() == ErrorKind::Status {
        return error.failure() == Failure::Unexpected;
    }
    let outage = [StatusCode::REQUEST_TIMEOUT, StatusCode::TOO_MANY_REQUESTS];
    status.is_redirection()
        || (status.is_client_error()
            && !CLIENT_ERRORS.contains(&status)
            && !outage.contains(&status))
}

/// Fields whose values are protocol words, not secrets: "password" as a grant type would
/// otherwise be hidden from every message that names the password.
const PROTOCOL_FIELDS: [&str; 1] = ["grant_type"];

/// Every value `request` carries that may be a secret: query parameters, body fields (JSON
/// strings and numbers, or form values) and header values, with the HTTP Basic credentials
/// decoded and the password apart. Server text is scrubbed of them, in every encoding (see
/// `crate::secret::scrub`).
///
/// Left out, as protocol words and no secret: [`PROTOCOL_FIELDS`] and the representation headers
/// (`Content-Type`, `Accept`, ...).
async fn sent_values(request: &AuthRequest) -> Vec<String> {
    const PROTOCOL_HEADERS: [http::HeaderName; 5] = [
        http::header::ACCEPT,
        http::header::ACCEPT_ENCODING,
        http::header::CONTENT_LENGTH,
        http::header::CONTENT_TYPE,
        http::header::USER_AGENT,
    ];
    let form = |bytes: &[u8], values: &mut Vec<String>| {
        values.extend(
            form_urlencoded::parse(bytes)
                .filter(|(name, _)| !PROTOCOL_FIELDS.contains(&name.as_ref()))
                .map(|(_, v)| v.into_owned()),
        )
    };
    let mut values = Vec::new();
    form(
        request.uri().query().unwrap_or_default().as_bytes(),
        &mut values,
    );
    for (name, value) in request.headers() {
        if PROTOCOL_HEADERS.contains(name) {
            continue;
        }
        let Ok(value) = value.to_str() else { continue };
        let credentials = value.split_once(' ').map_or(value, |(_, rest)| rest);
        if let Some(decoded) = STANDARD
            .decode(credentials)
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
        {
            values.extend(
                decoded
                    .split_once(':')
                    .map(|(_, password)| password.to_owned()),
            );
            values.push(decoded);
            values.push(credentials.trim_end_matches('=').to_owned());
        }
        values.push(credentials.to_owned());
    }
    // `Full` is collected at once and never fails.
    let body = match request.body().clone().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(json) => json_strings(&json, &mut values),
        Err(_) => form(&body, &mut values),
    }
    values.retain(|v| !v.is_empty());
    values.sort_unstable();
    values.dedup();
    values
}

fn json_strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Number(n) => out.push(n.to_string()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| json_strings(v, out)),
        serde_json::Value::Object(map) => map
            .iter()
            .filter(|(name, _)| !PROTOCOL_FIELDS.contains(&name.as_str()))
            .for_each(|(_, v)| json_strings(v, out)),
        _ => {}
    }
}

/// A token just received and checked: sendable, with its lifetime known.
pub(super) struct Issued {
    access_token: Secret,
    header_name: HeaderName,
    header: HeaderValue,
    /// When the request that obtained the token was sent: lifetimes count from here.
    sent_at: Moment,
    lifetime: Duration,
    refresh_token: Option<Secret>,
    refresh_lifetime: Option<Duration>,
}

impl Issued {
    /// Checks `tokens` and works out their lifetimes: `expires_in`, else `expires_at`, else the
    /// JWT `exp`, else `default_lifetime`.
    ///
    /// NOTE: a relative lifetime counts from `sent_at`, not from the response's arrival: the
    /// server issued the token somewhere in between, so the token is never believed valid after
    /// the server's own deadline, however slow the answer was. So does a JWT's `exp - iat`; an
    /// absolute expiry or a JWT with `exp` alone is read against the local clock at arrival.
    fn new(
        tokens: TokenSet,
        policy: &TokenPolicy,
        sent_at: Moment,
        clock: &Clock,
    ) -> Result<Self, AuthError> {
        let default_lifetime = policy.default_lifetime;
        let received_at = clock.moment();
        let wall = clock.wall();
        let in_flight = received_at.duration_since(sent_at);
        let access = tokens.access_token().expose();
        let stated = match tokens.expires_at() {
            Some(at) => Some(Lifetime::until(at, wall)),
            None => jwt_lifetime(access, wall),
        };
        // The lifetime the server states, counted from `sent_at`: `None` when it states none, or
        // when its absolute expiry has already passed by the local clock.
        let stated = match tokens.expires_in() {
            Some(lifetime) => Some(lifetime),
            None => match stated {
                Some(Lifetime::Issued(lifetime)) => Some(lifetime),
                Some(Lifetime::Remaining(Duration::ZERO)) => Some(Duration::ZERO),
                // Counted from arrival, expressed from `sent_at`.
                Some(Lifetime::Remaining(lifetime)) => Some(lifetime + in_flight),
                None => None,
            },
        };
        let lifetime = match stated {
            None => default_lifetime.min(MAX_LIFETIME),
            Some(lifetime) if lifetime >= MIN_LIFETIME => lifetime,
            Some(stated) => {
                // NOTE: a token believed to die at once would be renewed by every request (an
                // auth-call storm); a skewed clock would make a login loop. Lifetime unknown: a
                // short assumed one, with the upstream's 401 as the backstop.
                let assumed = default_lifetime.min(SKEWED_LIFETIME);
                tracing::warn!(
                    stated_ms = stated.as_millis() as u64,
                    assumed_ms = assumed.as_millis() as u64,
                    "access token's stated lifetime is under a second or already over; lifetime unknown"
                );
                assumed + in_flight
            }
        };
        if let Some(token_type) = tokens.token_type() {
            if !policy.header.accepts(token_type) {
                let scheme = policy.header.scheme().unwrap_or_default();
                return Err(AuthError::token_type_mismatch(scheme));
            }
        }
        let header = policy.header.value(tokens.access_token())?;
        let refresh_lifetime = tokens.refresh_token().and_then(|token| {
            let stated = match tokens.refresh_expires_at() {
                Some(at) => Some(Lifetime::until(at, wall)),
                None => jwt_lifetime(token.expose(), wall),
            };
            tokens.refresh_expires_in().or_else(|| match stated? {
                Lifetime::Issued(lifetime) => Some(lifetime),
                Lifetime::Remaining(lifetime) => Some(lifetime + in_flight),
            })
        });
        Ok(Self {
            access_token: tokens.access_token().clone(),
            header_name: policy.header.name().clone(),
            header,
            sent_at,
            lifetime,
            refresh_token: tokens.refresh_token().cloned(),
            refresh_lifetime,
        })
    }
}

impl Fresh {
    /// The slot's state for this token. `jitter` (in `[0, 1)`) spreads proactive refreshes over
    /// a fifth of the margin, earlier than the margin says, so that many clients given tokens at
    /// the same moment do not refresh in lockstep.
    pub(super) fn into_state(
        self,
        generation: Generation,
        timing: RefreshTiming,
        jitter: f64,
    ) -> TokenState {
        let (refresh_token, refresh_expires_at) = self.refresh_token();
        let refresh_token = refresh_token.cloned();
        let Fresh { issued, .. } = self;
        let expires_at = issued.sent_at + issued.lifetime;
        let refresh_at = match timing {
            RefreshTiming::Proactive { margin } => {
                let lead = margin.min(issued.lifetime / 2);
                let lead = lead + lead.mul_f64(jitter.clamp(0.0, 1.0) / 5.0);
                expires_at - lead.min(issued.lifetime)
            }
            RefreshTiming::AfterExpiry => expires_at,
        };
        let token = NewToken {
            access_token: issued.access_token,
            header_name: issued.header_name,
            header: issued.header,
            refresh_at,
            expires_at,
            refresh_token,
            refresh_expires_at,
        };
        TokenState::new(token, generation)
    }
}

impl Fresh {
    /// A session from a token store, as if just issued: its lifetimes count from now (zero when
    /// already past). Fails when the stored access token is not a valid header value.
    pub(super) fn stored(
        session: &StoredSession,
        policy: &TokenPolicy,
        clock: &Clock,
    ) -> Result<Self, AuthError> {
        let (sent_at, wall) = (clock.moment(), clock.wall());
        let remaining = |at: SystemTime| {
            at.duration_since(wall)
                .unwrap_or(Duration::ZERO)
                .min(MAX_LIFETIME)
        };
        let header = policy.header.value(session.access_token()).map_err(|_| {
            AuthError::store("stored access token is not a valid header value", None)
        })?;
        let issued = Issued {
            access_token: session.access_token().clone(),
            header_name: policy.header.name().clone(),
            header,
            sent_at,
            lifetime: remaining(session.expires_at()),
            refresh_token: session.refresh_token().cloned(),
            refresh_lifetime: session.refresh_expires_at().map(remaining),
        };
        Ok(Self { issued, kept: None })
    }

    /// Whether the access token is still valid.
    pub(super) fn is_live(&self) -> bool {
        self.issued.lifetime > Duration::ZERO
    }

    /// The refresh token to renew this token with, and when it expires: the one issued with it,
    /// else the one just accepted if the server did not rotate it.
    pub(super) fn refresh_token(&self) -> (Option<&Secret>, Option<Moment>) {
        match (&self.issued.refresh_token, &self.kept) {
            (Some(token), _) => (
                Some(token),
                self.issued
                    .refresh_lifetime
                    .map(|l| self.issued.sent_at + l),
            ),
            (None, Some(kept)) => (Some(&kept.token), kept.expires_at),
            (None, None) => (None, None),
        }
    }

    /// What a token store keeps of this token: expiries as wall-clock times by `clock`.
    pub(super) fn session(&self, clock: &Clock) -> StoredSession {
        let expires_at = clock.wall_at(self.issued.sent_at + self.issued.lifetime);
        let session = StoredSession::new(self.issued.access_token.clone(), expires_at);
        match self.refresh_token() {
            (Some(token), at) => {
                session.with_refresh_token(token.clone(), at.map(|at| clock.wall_at(at)))
            }
            (None, _) => session,
        }
    }
}

/// A refresh token that was just accepted, kept when the server does not issue a new one.
struct Kept {
    token: Secret,
    expires_at: Option<Moment>,
}

/// `error` and `error_description` of an OAuth2-style error body (RFC 6749 §5.2), if present,
/// unscrubbed.
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
    Some(detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lifetime `tokens` get when their request was sent 2 s before the answer arrived.
    async fn lifetime_after_two_seconds(tokens: impl FnOnce(SystemTime) -> TokenSet) -> Duration {
        let clock = Clock::tokio();
        let sent_at = clock.moment();
        let tokens = tokens(clock.wall());
        tokio::time::advance(Duration::from_secs(2)).await;
        Issued::new(tokens, &TokenPolicy::default(), sent_at, &clock)
            .unwrap()
            .lifetime
    }

    #[tokio::test(start_paused = true)]
    async fn relative_lifetimes_count_from_the_sending_absolute_ones_by_the_wall_clock() {
        let secs = Duration::from_secs;
        // `expires_in`: from the sending, however long the answer took.
        let lifetime =
            lifetime_after_two_seconds(|_| TokenSet::new("a").with_expires_in(secs(60))).await;
        assert_eq!(lifetime, secs(60));
        // `expires_at` 60 s after the sending: the same deadline, read at arrival.
        let lifetime =
            lifetime_after_two_seconds(|now| TokenSet::new("a").with_expires_at(now + secs(60)))
                .await;
        assert_eq!(lifetime, secs(60));
        // Already past by the local clock: a short assumed lifetime, not a login loop.
        let lifetime =
            lifetime_after_two_seconds(|now| TokenSet::new("a").with_expires_at(now - secs(5)))
                .await;
        assert_eq!(lifetime, SKEWED_LIFETIME + secs(2));
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
    }

    #[tokio::test]
    async fn every_sent_value_is_known_for_scrubbing() {
        let request = http::Request::post("http://auth.test/token?key=q-9012&v=1")
            .header(
                "authorization",
                format!("Basic {}", STANDARD.encode("me:pw-1234")),
            )
            .header("refresh-token", "rt-5678")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(Bytes::from_static(
                b"grant_type=password&password=hunter2",
            )))
            .unwrap();
        let values = sent_values(&request).await;
        for v in ["pw-1234", "me:pw-1234", "rt-5678", "hunter2", "q-9012"] {
            assert!(values.iter().any(|s| s == v), "{v} missing from {values:?}");
        }
        // The grant type and the representation headers are protocol words, not secrets.
        for v in ["password", "application/x-www-form-urlencoded"] {
            assert!(!values.iter().any(|s| s == v), "{v} in {values:?}");
        }
        let json = http::Request::post("http://auth.test/token")
            .body(http_body_util::Full::new(Bytes::from_static(
                br#"{"auth":{"api_key":"k-1"},"list":["x-2"]}"#,
            )))
            .unwrap();
        let values = sent_values(&json).await;
        assert!(values.contains(&"k-1".to_owned()) && values.contains(&"x-2".to_owned()));
    }
}
