//! Discovery before an auth call: a provider that learns its endpoints from the auth server
//! (RFC 8414, OpenID Connect Discovery) asks for a document first, and reads it.

use super::Manager;
use crate::error::{AuthCall, AuthError, Failure};
use crate::metrics::Counter;

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
        let response = self
            .send_plain(request, None, Failure::outage_or_unexpected)
            .await
            .map_err(|e| e.during(AuthCall::Discovery))?;
        self.provider
            .discovered(&response)
            .map_err(|e| e.during(AuthCall::Discovery))
    }
}
