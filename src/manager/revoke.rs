//! Revocation (RFC 7009): the session's tokens retired here, then revoked at the auth server.

use std::sync::Arc;

use super::Manager;
use crate::error::{AuthCall, AuthError, Failure};
use crate::metrics::Counter;
use crate::secret::Secret;

/// Which token a revocation names, as RFC 7009 §2.1's `token_type_hint` says it.
const HINTS: [&str; 2] = ["refresh_token", "access_token"];

impl Manager {
    /// Retires the current token and its refresh token, so that neither is ever sent again (the
    /// next request waits for a login), then asks the auth server to revoke them: the refresh
    /// token first, since revoking it may revoke the access tokens issued with it (RFC 7009
    /// §2.1). Both are asked even when the first fails; the first failure is returned.
    pub(crate) async fn revoke(self: &Arc<Self>) -> Result<(), AuthError> {
        let retired = {
            let _flights = self.lock();
            let current = self.slot.load_full();
            if let Some(current) = &current {
                let now = self.settings.clock.moment();
                let dead = current.expired_at(now).without_refresh_token();
                self.slot.store(Arc::new(dead));
            }
            current
        };
        let Some(retired) = retired else {
            return Ok(());
        };
        tracing::info!(
            generation = retired.generation.get(),
            "token retired for revocation"
        );
        let tokens = [retired.refresh_token.as_ref(), Some(&retired.access_token)];
        let mut outcome = Ok(());
        for (token, hint) in tokens.into_iter().zip(HINTS) {
            if let Some(token) = token {
                let revoked = self.revoke_one(token, hint).await;
                if let Err(error) = &revoked {
                    tracing::warn!(hint, error = %error, "revocation failed");
                }
                outcome = outcome.and(revoked);
            }
        }
        outcome
    }

    /// One revocation call, bounded by the auth timeout: 2xx is success (RFC 7009 §2.2, an
    /// unknown token included).
    async fn revoke_one(&self, token: &Secret, hint: &'static str) -> Result<(), AuthError> {
        let request = self
            .provider
            .revocation_request(token, hint)
            .map_err(|e| e.during(AuthCall::Revoke))?
            .ok_or_else(|| {
                AuthError::config("the provider names no revocation endpoint")
                    .during(AuthCall::Revoke)
            })?;
        self.metrics.incr(Counter::Revocation);
        self.send_plain(AuthCall::Revoke, request, Some(token), Failure::of_status)
            .await
            .map(drop)
            .map_err(|e| e.during(AuthCall::Revoke))
    }
}
