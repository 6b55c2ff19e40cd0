//! The Intergiro emulation: the API as the repository's `specs/intergiro.toml` describes it. A
//! refresh is allowed only once the access token it was issued with has expired (or was
//! revoked); a premature one is answered 400, counted as a violation, and leaves the refresh
//! token valid.

use std::sync::Arc;

use http::request::Parts;
use http::{Method, StatusCode};

use super::state::Shared;
use super::stats::bump;
use super::tokens::{Redeem, Redeemed};
use super::wire::{self, Resp};

pub(super) const LOGIN_PATH: &str = "/v3/auth/login";
pub(super) const REFRESH_PATH: &str = "/v3/auth/refresh";
pub(super) const RESOURCE_PATH: &str = "/v3/resource";

/// The subject of every Intergiro token: the API key identifies a client, not a person.
const SUBJECT: &str = "intergiro-api-client";

fn error(status: StatusCode, code: &'static str, message: &'static str) -> Resp {
    wire::json(
        status,
        &serde_json::json!({ "error": { "code": code, "message": message } }),
    )
}

fn violation(
    shared: &Shared,
    status: StatusCode,
    code: &'static str,
    reason: &'static str,
) -> Resp {
    shared.violation(reason);
    error(status, code, reason)
}

/// The JSON object body of a login or refresh, or the answer to a misuse (boxed: a response is
/// large and this is the cold path).
fn object(
    shared: &Shared,
    parts: &Parts,
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, Box<Resp>> {
    if parts.method != Method::POST {
        shared.violation("auth endpoint called without POST");
        return Err(Box::new(wire::method_not_allowed("POST")));
    }
    if !wire::is_json(&parts.headers) {
        return Err(Box::new(violation(
            shared,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "body is not application/json",
        )));
    }
    wire::json_object(body).ok_or_else(|| {
        Box::new(violation(
            shared,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "body is not a JSON object",
        ))
    })
}

fn tokens(shared: &Shared) -> Resp {
    let issued = shared.tokens.issue(&Arc::from(SUBJECT), None, true);
    wire::token_json(
        StatusCode::OK,
        &serde_json::json!({ "access_token": issued.access, "refresh_token": issued.refresh }),
    )
}

pub(super) fn login(shared: &Shared, parts: &Parts, body: &[u8]) -> Resp {
    let object = match object(shared, parts, body) {
        Ok(object) => object,
        Err(answer) => return *answer,
    };
    let Some(key) = wire::str_field(&object, "api_key") else {
        return violation(
            shared,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "login body lacks api_key",
        );
    };
    if key != shared.config.api_key {
        shared.login_rejected("invalid api key");
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "Invalid API key");
    }
    shared.login_granted();
    tokens(shared)
}

pub(super) fn refresh(shared: &Shared, parts: &Parts, body: &[u8]) -> Resp {
    let object = match object(shared, parts, body) {
        Ok(object) => object,
        Err(answer) => return *answer,
    };
    if object.contains_key("api_key") {
        return violation(
            shared,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "credentials sent to the refresh endpoint",
        );
    }
    let Some(token) = wire::str_field(&object, "refresh_token") else {
        return violation(
            shared,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "refresh body lacks refresh_token",
        );
    };
    let how = Redeem {
        rotate: true,
        refuse_while_access_live: true,
        requested_scope: None,
    };
    match shared.redeem(token, how) {
        Redeemed::Granted(_) => {
            bump(&shared.counters.refreshes);
            tokens(shared)
        }
        Redeemed::Premature => violation(
            shared,
            StatusCode::BAD_REQUEST,
            "token_not_expired",
            "premature refresh: the access token has not expired",
        ),
        Redeemed::Reused => violation(
            shared,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "refresh token used twice",
        ),
        _ => {
            shared.refresh_rejected("refresh token expired, revoked or unknown");
            error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Invalid refresh token",
            )
        }
    }
}
