//! Discovery before an auth call: a provider that learns its endpoints from the auth server
//! (RFC 8414, OpenID Connect Discovery) asks for a document first, and reads it.

use tower::ServiceExt;

use super::exchange::oauth_error_detail;
use super::schedule::retry_after;
use super::transport::explain_failure;
use super::Manager;
use crate::error::{AuthCall, AuthError, Failure};
use crate::metrics::Counter;
use crate::secret::{scrub, sent_values};

impl Manager {
    /// Sends the provider's discovery request, when it has one, and hands it the answer: before
    /// every attempt, so that a provider that finds its endpoints stale (a token endpoint that
    /// answered 404) learns them again. A failure is classified as an auth call's is (an outage
    /// retried in the flight, anything else backed off) and ends the attempt.
    pub(super) async fn discover(&self) -> Result<(), AuthError> {
        let Some(request) = self.provider.discovery_request() else {
            return Ok(());
        };
        let request = request.map_err(|e| e.during(AuthCall::Discovery))?;
        self.metrics.incr(Counter::Discovery);
        let sent = sent_values(&request).await;
        let uri = request.uri().clone();
        let timeout = self.settings.timeout;
        let response = tokio::time::timeout(timeout, self.transport.clone().oneshot(request)).await;
        let error = match response {
            Err(_) => AuthError::timeout(timeout),
            Ok(Err(e)) => explain_failure(e, &uri, &sent),
            Ok(Ok(response)) if response.status().is_success() => {
                return self
                    .provider
                    .discovered(&response)
                    .map_err(|e| e.during(AuthCall::Discovery));
            }
            Ok(Ok(response)) => {
                let status = response.status();
                let detail = oauth_error_detail(response.body()).map(|d| scrub(&d, &sent));
                let wish = retry_after(response.headers(), self.settings.clock.wall());
                let failure = Failure::outage_or_unexpected(status);
                AuthError::status_error(status, detail, wish, failure)
            }
        };
        Err(error.during(AuthCall::Discovery))
    }
}
