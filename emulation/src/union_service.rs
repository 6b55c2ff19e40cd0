//! The union-service emulation: the API as the repository's `specs/union-service.toml` describes
//! it, every failure (client misuse included) a JSON 500 except a missing `api-version` (400).

use std::sync::Arc;

use http::request::Parts;
use http::{Method, StatusCode};

use super::state::Shared;
use super::stats::bump;
use super::tokens::{Redeem, Redeemed};
use super::wire::{self, Resp};

pub(super) const LOGIN_PATH: &str = "/union-service/auth/token";
pub(super) const REFRESH_PATH: &str = "/union-service/auth/refresh-token";
pub(super) const RESOURCE_PATH: &str = "/union-service/resource";

fn internal_error(detail: &'static str) -> Resp {
    wire::json(
        StatusCode::INTERNAL_SERVER_ERROR,
        &serde_json::json!({ "status": 500, "title": "Internal Error", "detail": detail }),
    )
}

fn violation(shared: &Shared, reason: &'static str) -> Resp {
    shared.violation(reason);
    internal_error(reason)
}

/// Checks what login and refresh have in common; `Some` is the answer to a misuse.
fn preamble(shared: &Shared, parts: &Parts) -> Option<Resp> {
    if parts.method != Method::POST {
        shared.violation("auth endpoint called without POST");
        return Some(wire::method_not_allowed("POST"));
    }
    match wire::query_param(&parts.uri, "api-version").as_deref() {
        Some("1.0") => {}
        Some(_) => {
            shared.violation("unsupported api-version");
            return Some(wire::json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({ "error": { "code": "UnsupportedApiVersion",
                    "message": "The requested API version is not supported." } }),
            ));
        }
        None => {
            shared.violation("missing api-version query parameter");
            return Some(wire::json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({ "error": { "code": "ApiVersionUnspecified",
                    "message": "An API version is required, but was not specified." } }),
            ));
        }
    }
    // The API docs say `application/json`; its curl example sends `application/json-patch+json`.
    let json_like = matches!(
        wire::media_type(&parts.headers).as_deref(),
        Some("application/json" | "application/json-patch+json")
    );
    if !json_like {
        return Some(violation(shared, "body is not application/json"));
    }
    None
}

fn tokens(shared: &Shared, sub: &Arc<str>) -> Resp {
    // As the union-service document shows it: "Always Bearer".
    shared.keycloak_tokens(sub, "Bearer", 0, "email scope profile")
}

pub(super) fn login(shared: &Shared, parts: &Parts, body: &[u8]) -> Resp {
    if let Some(answer) = preamble(shared, parts) {
        return answer;
    }
    let Some(object) = wire::json_object(body) else {
        return violation(shared, "login body is not a JSON object");
    };
    let (Some(username), Some(password)) = (
        wire::str_field(&object, "username"),
        wire::str_field(&object, "password"),
    ) else {
        return violation(shared, "login body lacks username or password");
    };
    if username != shared.config.username || password != shared.config.password {
        shared.login_rejected("invalid credentials");
        return internal_error("Invalid user credentials");
    }
    shared.login_granted();
    tokens(shared, &Arc::from(username))
}

pub(super) fn refresh(shared: &Shared, parts: &Parts, body: &[u8]) -> Resp {
    if let Some(answer) = preamble(shared, parts) {
        return answer;
    }
    let Some(object) = wire::json_object(body) else {
        return violation(shared, "refresh body is not a JSON object");
    };
    if object.contains_key("username") || object.contains_key("password") {
        return violation(shared, "credentials sent to the refresh endpoint");
    }
    let Some(token) = wire::str_field(&object, "refreshToken") else {
        return violation(shared, "refresh body lacks refreshToken");
    };
    match shared.redeem(token, Redeem::SINGLE_USE) {
        Redeemed::Granted(grant) => {
            bump(&shared.counters.refreshes);
            tokens(shared, &grant.sub)
        }
        Redeemed::Reused => violation(shared, "refresh token used twice"),
        _ => {
            shared.refresh_rejected("refresh token expired, revoked or unknown");
            internal_error("Token is not active")
        }
    }
}
