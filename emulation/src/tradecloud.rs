//! The Tradecloud emulation: the API as the repository's `specs/tradecloud.toml` describes it,
//! the answer to a refresh that carries `Authorization` included (also counted as a violation).

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::request::Parts;
use http::{header, Method, StatusCode};

use super::state::Shared;
use super::stats::bump;
use super::tokens::{Redeem, Redeemed};
use super::wire::{self, Basic, Resp};

pub(super) const LOGIN_PATH: &str = "/v2/authentication/login";
pub(super) const REFRESH_PATH: &str = "/v2/authentication/refresh";
pub(super) const RESOURCE_PATH: &str = "/v2/resource";

const SET_AUTHORIZATION: HeaderName = HeaderName::from_static("set-authorization");
const SET_REFRESH_TOKEN: HeaderName = HeaderName::from_static("set-refresh-token");
const REFRESH_TOKEN: HeaderName = HeaderName::from_static("refresh-token");

fn not_authenticated() -> Resp {
    wire::text(StatusCode::UNAUTHORIZED, "Not authenticated")
}

fn violation(shared: &Shared, reason: &'static str) -> Resp {
    shared.violation(reason);
    not_authenticated()
}

fn tokens(shared: &Shared, sub: &Arc<str>) -> Resp {
    let issued = shared.tokens.issue(sub, None, true);
    let mut response = wire::empty(StatusCode::OK);
    let headers = response.headers_mut();
    // JWTs are base64url and dots, always valid header values; a failure would be our bug, and
    // the client then sees a 200 without tokens rather than a crash.
    if let Ok(value) = HeaderValue::try_from(issued.access) {
        headers.insert(SET_AUTHORIZATION, value);
    }
    if let Some(Ok(value)) = issued.refresh.map(HeaderValue::try_from) {
        headers.insert(SET_REFRESH_TOKEN, value);
    }
    response
}

pub(super) fn login(shared: &Shared, parts: &Parts, _body: &[u8]) -> Resp {
    if parts.method != Method::GET {
        shared.violation("login called without GET");
        return wire::method_not_allowed("GET");
    }
    match wire::basic(&parts.headers, false) {
        Basic::Credentials { user, password } => {
            if user != shared.config.username || password != shared.config.password {
                shared.login_rejected("invalid credentials");
                return not_authenticated();
            }
            shared.login_granted();
            tokens(shared, &Arc::from(user))
        }
        Basic::Absent => violation(shared, "login without Authorization: Basic"),
        Basic::OtherScheme => violation(shared, "login with a non-Basic Authorization header"),
        Basic::Malformed => violation(shared, "login with malformed Basic credentials"),
    }
}

pub(super) fn refresh(shared: &Shared, parts: &Parts, _body: &[u8]) -> Resp {
    if parts.method != Method::GET {
        shared.violation("refresh called without GET");
        return wire::method_not_allowed("GET");
    }
    if parts.headers.contains_key(header::AUTHORIZATION) {
        let live = wire::bearer(&parts.headers)
            .and_then(|token| shared.tokens.access_subject(token))
            .is_some();
        // The refresh token is not even looked at, let alone consumed.
        return if live {
            shared.violation("Authorization sent on refresh: 200 without a new token pair");
            wire::empty(StatusCode::OK)
        } else {
            violation(shared, "invalid Authorization sent on refresh")
        };
    }
    let Some(token) = parts
        .headers
        .get(REFRESH_TOKEN)
        .and_then(|value| value.to_str().ok())
    else {
        return violation(shared, "refresh without a Refresh-Token header");
    };
    match shared.redeem(token.trim(), Redeem::SINGLE_USE) {
        Redeemed::Granted(grant) => {
            bump(&shared.counters.refreshes);
            tokens(shared, &grant.sub)
        }
        Redeemed::Reused => violation(shared, "refresh token used twice"),
        _ => {
            shared.refresh_rejected("refresh token expired or unknown");
            not_authenticated()
        }
    }
}
