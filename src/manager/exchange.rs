//! The login/refresh exchange: which call to make, sending it, and turning the answer into a
//! usable token or a classified error.
//!
//! One `authenticate` is one attempt of a flight: a refresh when a live refresh token exists,
//! and a login when there is none or the refresh was rejected or answered unusably — in the same
//! attempt, so a dead refresh token never costs a failed flight.

use bytes::Bytes;
use http::StatusCode;
use tower::ServiceExt;

use super::schedule::retry_after;
use super::transport::{endpoint, explain_failure};
use super::Manager;
use crate::clock::{Clock, Moment};
use crate::error::{AuthCall, AuthError, ErrorKind};
use crate::metrics::Counter;
use crate::provider::{AuthRequest, Failure, Provider, TokenPolicy, CLIENT_ERRORS};
use crate::secret::{redact_sent, scrub, sent_values, Secret};
use crate::token::{Issued, TokenSet};

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
    ) -> Result<Issued, AuthError> {
        self.discover().await?;
        if let Some((refresh_token, refresh_expires_at)) = refresh {
            match self.provider.refresh_request(refresh_token) {
                // What the provider needs besides the token is missing (an assertion file it
                // cannot read, say): the refresh token is still good, and kept for the next
                // attempt.
                Err(e) if e.kind() == ErrorKind::Config => return Err(e.during(AuthCall::Refresh)),
                Err(e) => {
                    tracing::warn!(error = %e, "refresh request cannot be built; logging in");
                    self.discard_refresh_token();
                }
                Ok(request) => match self
                    .call(AuthCall::Refresh, request, Some(refresh_token))
                    .await
                {
                    Ok(mut issued) => {
                        if self.policy.keep_unrotated_refresh_token {
                            issued.keep_refresh_token(refresh_token, refresh_expires_at);
                        }
                        return Ok(issued);
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
        self.call(AuthCall::Login, request, None)
            .await
            .map_err(|f| f.error)
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
            AuthCall::Revoke => Counter::Revocation,
            AuthCall::Discovery => Counter::Discovery,
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
                    .and_then(|tokens| issue(&tokens, &self.policy, started, &clock))
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

/// A token answer checked against the policy: a `token_type` the policy sends, an access token
/// the header can carry; then its lifetime worked out (see [`Issued::new`]).
fn issue(
    tokens: &TokenSet,
    policy: &TokenPolicy,
    sent_at: Moment,
    clock: &Clock,
) -> Result<Issued, AuthError> {
    if let Some(token_type) = tokens.token_type() {
        if !policy.header.accepts(token_type) {
            let scheme = policy.header.scheme().unwrap_or_default();
            return Err(AuthError::token_type_mismatch(scheme));
        }
    }
    let header = policy.header.pair(tokens.access_token())?;
    Ok(Issued::new(
        tokens,
        header,
        policy.default_lifetime,
        sent_at,
        clock,
    ))
}

/// `error` and `error_description` of an OAuth2-style error body (RFC 6749 §5.2), if present,
/// unscrubbed.
pub(super) fn oauth_error_detail(body: &Bytes) -> Option<String> {
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
}
