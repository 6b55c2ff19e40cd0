//! Calls to the auth server that issue no token (discovery, revocation): sent once, bounded by
//! the auth timeout, their failures explained as a login's are.

use http::StatusCode;
use tower::ServiceExt;

use super::exchange::oauth_error_detail;
use super::schedule::retry_after;
use super::transport::explain_failure;
use super::Manager;
use crate::error::{AuthCall, AuthError, Failure};
use crate::provider::{AuthRequest, AuthResponse};
use crate::secret::{scrub, sent_values, Secret};

impl Manager {
    /// Sends `request` once and returns its 2xx answer; any other answer is an error whose
    /// class `class` gives by status. `also_sent` is a secret the request carries besides its
    /// own values (the token being revoked), kept out of messages as they are. Reported as an
    /// auth call of kind `call` (see `Metrics::auth_call`).
    pub(super) async fn send_plain(
        &self,
        call: AuthCall,
        request: AuthRequest,
        also_sent: Option<&Secret>,
        class: fn(StatusCode) -> Failure,
    ) -> Result<AuthResponse, AuthError> {
        let send = self.send_plain_once(request, also_sent, class);
        let clock = self.settings.clock;
        self.metrics
            .auth_call(call, &clock, send, |error| error)
            .await
    }

    async fn send_plain_once(
        &self,
        request: AuthRequest,
        also_sent: Option<&Secret>,
        class: fn(StatusCode) -> Failure,
    ) -> Result<AuthResponse, AuthError> {
        let mut sent = sent_values(&request).await;
        sent.extend(also_sent.map(|t| t.expose().to_owned()));
        let uri = request.uri().clone();
        let timeout = self.settings.timeout;
        let response = tokio::time::timeout(timeout, self.transport.clone().oneshot(request)).await;
        match response {
            Err(_) => Err(AuthError::timeout(timeout)),
            Ok(Err(e)) => Err(explain_failure(e, &uri, &sent)),
            Ok(Ok(response)) if response.status().is_success() => Ok(response),
            Ok(Ok(response)) => {
                let status = response.status();
                let detail = oauth_error_detail(response.body()).map(|d| scrub(&d, &sent));
                let wish = retry_after(response.headers(), self.settings.clock.wall());
                Err(AuthError::status_error(status, detail, wish, class(status)))
            }
        }
    }
}
