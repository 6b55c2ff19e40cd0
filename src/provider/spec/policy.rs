//! The `[policy]` table: refresh timing, lifetimes, replay rules and fallbacks.

use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;

use crate::provider::Classifier;
use crate::provider::{RefreshTiming, TokenPolicy};
use crate::token::MAX_LIFETIME;

/// `[policy]`, as a [`TokenPolicy`] (its header comes from `[token_header]`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(try_from = "RawPolicy")]
pub(super) struct PolicySpec(pub(super) TokenPolicy);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    refresh: Option<Timing>,
    margin_secs: Option<Seconds>,
    default_lifetime_secs: Option<Seconds>,
    max_replays: Option<u32>,
    max_sends: Option<u32>,
    classifier: Option<Vec<u16>>,
    login_on_refresh_rejected: Option<bool>,
    keep_unrotated_refresh_token: Option<bool>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Timing {
    Ahead,
    AfterExpiry,
}

/// A non-negative number of seconds, up to ten years.
#[derive(Clone, Copy, Deserialize)]
#[serde(try_from = "f64")]
struct Seconds(Duration);

impl TryFrom<f64> for Seconds {
    type Error = String;

    fn try_from(secs: f64) -> Result<Self, String> {
        if secs.is_finite() && (0.0..=MAX_LIFETIME.as_secs_f64()).contains(&secs) {
            Ok(Self(Duration::from_secs_f64(secs)))
        } else {
            Err("seconds from 0 to ten years".to_owned())
        }
    }
}

impl TryFrom<RawPolicy> for PolicySpec {
    type Error = String;

    fn try_from(raw: RawPolicy) -> Result<Self, String> {
        let refresh = match (raw.refresh, raw.margin_secs) {
            (Some(Timing::AfterExpiry), Some(_)) => {
                return Err("`margin_secs` is for `refresh = \"ahead\"`".to_owned())
            }
            (Some(Timing::AfterExpiry), None) => RefreshTiming::AfterExpiry,
            (_, Some(margin)) => RefreshTiming::Ahead { margin: margin.0 },
            (_, None) => RefreshTiming::default(),
        };
        let mut policy = TokenPolicy {
            refresh,
            ..TokenPolicy::default()
        };
        if let Some(lifetime) = raw.default_lifetime_secs {
            policy.default_lifetime = lifetime.0;
        }
        if let Some(max_replays) = raw.max_replays {
            policy.max_replays = max_replays;
        }
        if let Some(max_sends) = raw.max_sends {
            policy.max_sends = max_sends;
        }
        if let Some(statuses) = raw.classifier {
            let statuses = statuses
                .into_iter()
                .map(|code| match StatusCode::from_u16(code) {
                    Ok(status) if status.is_client_error() || status.is_server_error() => {
                        Ok(status)
                    }
                    _ => Err("`classifier` holds error status codes, from 400 to 599".to_owned()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            policy.classifier = Classifier::statuses(statuses);
        }
        if let Some(login) = raw.login_on_refresh_rejected {
            policy.login_on_refresh_rejected = login;
        }
        if let Some(keep) = raw.keep_unrotated_refresh_token {
            policy.keep_unrotated_refresh_token = keep;
        }
        // NOTE: the layer checks its policy too, with a panic; a spec file is input, so its
        // policy fails here, with the same check's words.
        policy
            .check()
            .map_err(|e| e.detail().unwrap_or_default().to_owned())?;
        Ok(Self(policy))
    }
}
