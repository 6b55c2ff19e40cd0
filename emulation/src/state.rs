//! The state one emulation's connections share, and the bookkeeping every endpoint does.

use std::sync::{Mutex, PoisonError};

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::StatusCode;

use super::config::{Api, Config};
use super::faults::Faults;
use super::resource::{Hold, Revocations, SeenTokens};
use super::stats::{bump, Counters};
use super::strict::Strict;
use super::tokens::{Redeem, Redeemed, Tokens};
use super::wire::{self, Resp};

pub(super) struct Shared {
    pub(super) api: Api,
    pub(super) config: Config,
    pub(super) counters: Counters,
    pub(super) tokens: Tokens,
    pub(super) faults: Faults,
    pub(super) hold: Hold,
    pub(super) seen_tokens: SeenTokens,
    pub(super) revocations: Revocations,
    /// The OAuth2 extensions' state; `None` unless some extension is on.
    pub(super) strict: Option<Strict>,
    /// Each violation reason with its count, in first-seen order.
    reasons: Mutex<Vec<(&'static str, u64)>>,
}

impl Shared {
    pub(super) fn new(
        api: Api,
        config: Config,
        issuer: String,
        mtls: Option<super::mtls::Listener>,
    ) -> Self {
        let strict = Strict::new(api, &config, &issuer, mtls);
        let tokens = Tokens::new(issuer, config.access_lifetime, config.refresh_lifetime);
        let faults = Faults::new(config.fault_seed);
        let revocations = Revocations::new(config.fault_seed);
        Self {
            api,
            config,
            counters: Counters::default(),
            tokens,
            faults,
            hold: Hold::new(),
            seen_tokens: SeenTokens::new(),
            revocations,
            strict,
            reasons: Mutex::new(Vec::new()),
        }
    }

    /// Counts a successful login, and as needless when a delivered refresh token could have
    /// been used instead. Call before issuing the login's own tokens.
    pub(super) fn login_granted(&self) {
        bump(&self.counters.logins);
        if self.tokens.has_live_refresh() {
            bump(&self.counters.needless_logins);
            tracing::debug!(
                api = self.api.name(),
                "emulation: login while a refresh token was still good"
            );
        }
    }

    /// Redeems a refresh token, counting a re-sent rotated one as reuse (the endpoint counts the
    /// violation when it answers).
    pub(super) fn redeem(&self, token: &str, how: Redeem<'_>) -> Redeemed {
        let redeemed = self.tokens.redeem(token, how);
        if matches!(redeemed, Redeemed::Reused) {
            bump(&self.counters.refresh_token_reuse);
        }
        redeemed
    }

    /// A Keycloak-style token response (OLI, union-service) for a new pair issued to `sub`; the
    /// fields that differ between the two are the arguments.
    pub(super) fn keycloak_tokens(
        &self,
        sub: &std::sync::Arc<str>,
        token_type: &str,
        not_before_policy: u64,
        scope: &str,
    ) -> Resp {
        let issued = self.tokens.issue(sub, None, true);
        wire::token_json(
            StatusCode::OK,
            &serde_json::json!({
                "access_token": issued.access,
                "expires_in": Self::expires_in(self.config.access_lifetime),
                "refresh_expires_in": Self::expires_in(self.config.refresh_lifetime),
                "refresh_token": issued.refresh,
                "token_type": token_type,
                "not-before-policy": not_before_policy,
                "session_state": self.tokens.session_id(),
                "scope": scope,
            }),
        )
    }

    /// Counts a protocol violation. Logged at `warn` with its reason (never with a token or a
    /// credential) because a violation is a client bug someone will want to find.
    pub(super) fn violation(&self, reason: &'static str) {
        bump(&self.counters.violations);
        {
            let mut reasons = self.reasons.lock().unwrap_or_else(PoisonError::into_inner);
            match reasons.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, n)) => *n += 1,
                None => reasons.push((reason, 1)),
            }
        }
        tracing::warn!(
            api = self.api.name(),
            reason,
            "emulation: client protocol violation"
        );
    }

    /// Each violation reason counted so far, with how often, in first-seen order.
    pub(super) fn violation_reasons(&self) -> Vec<(&'static str, u64)> {
        self.reasons
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn login_rejected(&self, reason: &'static str) {
        bump(&self.counters.rejected_logins);
        tracing::debug!(api = self.api.name(), reason, "emulation: login rejected");
    }

    pub(super) fn refresh_rejected(&self, reason: &'static str) {
        bump(&self.counters.rejected_refreshes);
        tracing::debug!(api = self.api.name(), reason, "emulation: refresh rejected");
    }

    /// `expires_in` for a lifetime: whole seconds as an integer, as real servers send it; a
    /// lifetime with a fractional part (short soak runs) as exact fractional seconds.
    pub(super) fn expires_in(lifetime: std::time::Duration) -> serde_json::Value {
        if lifetime.subsec_nanos() == 0 {
            lifetime.as_secs().into()
        } else {
            lifetime.as_secs_f64().into()
        }
    }

    /// The resource's 200, counted.
    pub(super) fn resource_ok(&self, parts: &Parts, sub: &str, body_bytes: u64) -> Resp {
        bump(&self.counters.resource_ok);
        wire::json(
            StatusCode::OK,
            &serde_json::json!({
                "ok": true,
                "api": self.api.name(),
                "sub": sub,
                "method": parts.method.as_str(),
                "body_bytes": body_bytes,
            }),
        )
    }

    /// The protected resource: 200 for a live access token of this emulation, else 401. Records
    /// the bearer token the request carried, if any.
    pub(super) fn resource(&self, parts: &Parts, body_bytes: u64) -> Resp {
        if let Some(strict) = &self.strict {
            return super::protected::resource(self, strict, parts, body_bytes);
        }
        let token = wire::bearer(&parts.headers);
        if let Some(token) = token {
            self.seen_tokens.record(token);
        }
        match token.and_then(|t| self.tokens.access_subject(t)) {
            Some(sub) => self.resource_ok(parts, &sub, body_bytes),
            None => {
                bump(&self.counters.resource_unauthorized);
                // RFC 6750 3.1: no error code when the request carried no credentials at all.
                let challenge = if parts.headers.contains_key(header::AUTHORIZATION) {
                    r#"Bearer error="invalid_token""#
                } else {
                    "Bearer"
                };
                let mut response = wire::json(
                    StatusCode::UNAUTHORIZED,
                    &serde_json::json!({ "error": "invalid_token" }),
                );
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
                response
            }
        }
    }
}
