//! The login/refresh exchange: which call to make, sending it, and turning the answer into a
//! usable token or a classified error.
//!
//! One `authenticate` is one attempt of a flight: a refresh when a live refresh token exists,
//! and a login when there is none or the refresh was rejected or answered unusably — in the same
//! attempt, so a dead refresh token never costs a failed flight.

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderName, HeaderValue, StatusCode};
use tower::ServiceExt;

use super::schedule::retry_after;
use super::transport::{endpoint, explain_failure};
use super::Manager;
use crate::clock::Moment;
use crate::dpop::{auth_challenge, End, DPOP, MAX_NONCE_RETRIES};
use crate::error::{AuthCall, AuthError, ErrorKind};
use crate::metrics::Counter;
use crate::provider::{AuthRequest, Failure, Provider, TokenHeader, CLIENT_ERRORS};
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
                    .call(
                        AuthCall::Refresh,
                        request,
                        &|| self.provider.refresh_request(refresh_token),
                        Some(refresh_token),
                    )
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
        let rebuild = || self.provider.login_request();
        self.call(AuthCall::Login, request, &rebuild, None)
            .await
            .map_err(|f| f.error)
    }

    /// Sends one auth call, and sends it again (built anew by `rebuild`: a fresh client
    /// assertion, a fresh proof) when the server answers with a DPoP nonce challenge, at most
    /// [`MAX_NONCE_RETRIES`] times.
    async fn call(
        &self,
        call: AuthCall,
        request: AuthRequest,
        rebuild: &(dyn Fn() -> Result<AuthRequest, AuthError> + Sync),
        refresh_token: Option<&Secret>,
    ) -> Result<Issued, Failed> {
        self.metrics.incr(match call {
            AuthCall::Login => Counter::Login,
            AuthCall::Refresh => Counter::Refresh,
            AuthCall::Revoke => Counter::Revocation,
            AuthCall::Discovery => Counter::Discovery,
        });
        let sends = self.sends(call, request, rebuild, refresh_token);
        let clock = self.settings.clock;
        self.metrics
            .auth_call(call, &clock, sends, |failed| &failed.error)
            .await
    }

    /// [`call`](Self::call)'s sends.
    async fn sends(
        &self,
        call: AuthCall,
        mut request: AuthRequest,
        rebuild: &(dyn Fn() -> Result<AuthRequest, AuthError> + Sync),
        refresh_token: Option<&Secret>,
    ) -> Result<Issued, Failed> {
        let mut retries = 0;
        loop {
            let nonce_retry = retries < MAX_NONCE_RETRIES;
            match self.send(call, request, refresh_token, nonce_retry).await {
                Sent::Done(result) => return result,
                Sent::NonceChallenge => {
                    retries += 1;
                    self.metrics.incr(Counter::DpopNonceRetry);
                    tracing::debug!(call = %call, retries, "DPoP nonce challenge; sending again with the nonce");
                    request = rebuild().map_err(|error| Failed {
                        error: error.during(call),
                        consumed: false,
                    })?;
                }
            }
        }
    }

    /// Sends one auth request and turns its response into a usable token or a classified error;
    /// with `nonce_retry`, a DPoP nonce challenge is reported for the caller to send again.
    async fn send(
        &self,
        call: AuthCall,
        mut request: AuthRequest,
        refresh_token: Option<&Secret>,
        nonce_retry: bool,
    ) -> Sent {
        if let Some(dpop) = &self.dpop {
            match dpop.proof(End::Auth, request.method(), request.uri(), None) {
                Ok(proof) => drop(request.headers_mut().insert(DPOP, proof)),
                Err(error) => {
                    return Sent::Done(Err(Failed {
                        error: error.during(call),
                        consumed: false,
                    }))
                }
            }
        }
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
                self.remember_nonce(&uri, response.headers());
                self.provider
                    .parse_response(call, &response)
                    // A provider's own message may quote the answer, and the answer the request.
                    .map_err(|e| e.map_detail(|detail| redact_sent(detail, &sent)))
                    .and_then(|tokens| self.issue(&tokens, started))
            }
            Ok(Ok(response)) => {
                let status = response.status();
                let answer = OAuthError::parse(response.body());
                let nonce = self.remember_nonce(&uri, response.headers());
                let challenge = self.dpop.is_some()
                    && auth_challenge(status, answer.as_ref().map(|a| a.error.as_str()));
                if challenge && nonce && nonce_retry {
                    return Sent::NonceChallenge;
                }
                let detail = answer.map(|a| scrub(&a.detail(), &sent));
                let error = if challenge {
                    // A challenge without a nonce, or one too many: the server's nonces are not
                    // working out; retried as an outage, with a new proof.
                    let why = match nonce {
                        false => "the authorization server asked for a DPoP nonce (use_dpop_nonce) without sending one in DPoP-Nonce",
                        true => "the authorization server asked for a new DPoP nonce again",
                    };
                    AuthError::status_error(status, Some(why.to_owned()), None, Failure::Transient)
                } else {
                    match self.provider.classify_failure(call, &response) {
                        Failure::Rejected => AuthError::rejected(call, status, detail),
                        failure => {
                            let wish = retry_after(response.headers(), clock.wall());
                            AuthError::status_error(status, detail, wish, failure)
                        }
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
                Sent::Done(Ok(issued))
            }
            Err(error) => {
                let error = error.during(call);
                tracing::warn!(call = %call, elapsed_ms, error = %error, "auth call failed");
                if call == AuthCall::Refresh && consumed {
                    // Never send a consumed refresh token again.
                    self.discard_refresh_token();
                }
                Sent::Done(Err(Failed { error, consumed }))
            }
        }
    }

    /// Keeps an answer's DPoP nonce, when the layer signs proofs; whether it had one.
    fn remember_nonce(&self, uri: &http::Uri, headers: &http::HeaderMap) -> bool {
        self.dpop
            .as_ref()
            .is_some_and(|dpop| dpop.remember(End::Auth, uri, headers))
    }

    /// A token answer checked against the policy: a `token_type` the layer sends, an access
    /// token the header can carry; then its lifetime worked out (see [`Issued::new`]).
    fn issue(&self, tokens: &TokenSet, sent_at: Moment) -> Result<Issued, AuthError> {
        let dpop = match tokens.token_type() {
            Some(token_type) if token_type.eq_ignore_ascii_case("dpop") && self.dpop.is_some() => {
                true
            }
            Some(token_type) if !self.policy.header.accepts(token_type) => {
                let scheme = self.policy.header.scheme().unwrap_or_default();
                return Err(AuthError::token_type_mismatch(scheme));
            }
            _ => false,
        };
        let header = self.token_header(tokens.access_token(), dpop)?;
        let mut issued = Issued::new(
            tokens,
            header,
            self.policy.default_lifetime,
            sent_at,
            &self.settings.clock,
        );
        issued.dpop = dpop;
        Ok(issued)
    }

    /// The header `token` travels in: `Authorization: DPoP <token>` when it is bound to the
    /// layer's DPoP key, else the policy's.
    pub(super) fn token_header(
        &self,
        token: &Secret,
        dpop: bool,
    ) -> Result<(HeaderName, HeaderValue), AuthError> {
        match dpop {
            true => TokenHeader::new(AUTHORIZATION)
                .with_scheme("DPoP")
                .pair(token),
            false => self.policy.header.pair(token),
        }
    }
}

/// What became of one send of an auth call.
enum Sent {
    Done(Result<Issued, Failed>),
    /// The server asked for a DPoP nonce and gave a new one: send again.
    NonceChallenge,
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

/// An OAuth2-style error body (RFC 6749 §5.2): `error` and `error_description`, unscrubbed.
#[derive(serde::Deserialize)]
struct OAuthError {
    error: String,
    error_description: Option<String>,
}

impl OAuthError {
    fn parse(body: &Bytes) -> Option<Self> {
        serde_json::from_slice(body).ok()
    }

    /// `error (error_description)`.
    fn detail(&self) -> String {
        match &self.error_description {
            Some(description) => format!("{} ({description})", self.error),
            None => self.error.clone(),
        }
    }
}

/// `error` and `error_description` of an OAuth2-style error body, if present, unscrubbed.
pub(super) fn oauth_error_detail(body: &Bytes) -> Option<String> {
    OAuthError::parse(body).map(|answer| answer.detail())
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
