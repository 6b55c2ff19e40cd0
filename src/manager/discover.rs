//! Discovery before an auth call: a provider that learns its endpoints from the auth server
//! (RFC 8414, OpenID Connect Discovery) asks for a document first, and reads it.

use http::StatusCode;

use super::Manager;
use crate::error::{AuthCall, AuthError, Failure};
use crate::metrics::Counter;

impl Manager {
    /// Sends the provider's discovery request, when it has one, and hands it the answer: before
    /// every attempt, so that a provider that finds its endpoints stale (a token endpoint that
    /// answered 404) learns them again. A failure is classified as an auth call's is (an outage
    /// retried in the flight, anything else backed off) and ends the attempt.
    pub(super) async fn discover(&self) -> Result<(), AuthError> {
        // Two rounds: a document that is missing (404) lets the provider offer another (RFC
        // 8414's after OpenID Connect's) in the same attempt.
        for round in 0..2 {
            let Some(request) = self.provider.discovery_request() else {
                return Ok(());
            };
            let request = request.map_err(|e| e.during(AuthCall::Discovery))?;
            self.metrics.incr(Counter::Discovery);
            match self
                .send_plain(
                    AuthCall::Discovery,
                    request,
                    None,
                    Failure::outage_or_unexpected,
                )
                .await
            {
                Ok(response) => {
                    return self
                        .provider
                        .discovered(&response)
                        .map_err(|e| e.during(AuthCall::Discovery))
                }
                Err(e) if round == 0 && e.status() == Some(StatusCode::NOT_FOUND) => {}
                Err(e) => return Err(e.during(AuthCall::Discovery)),
            }
        }
        Ok(())
    }
}
