//! The Simacan emulation: the API as the repository's `specs/simacan.toml` describes it, with
//! single-use refresh tokens.

use std::sync::Arc;

use http::request::Parts;
use http::{Method, StatusCode};

use super::state::Shared;
use super::stats::bump;
use super::tokens::{Redeem, Redeemed};
use super::wire::{self, Form, Resp};

pub(super) const LOGIN_PATH: &str = "/api/v1/auth/password";
pub(super) const REFRESH_PATH: &str = "/api/v1/auth/refresh";
pub(super) const RESOURCE_PATH: &str = "/api/v1/resource";

fn error(status: StatusCode, message: &'static str) -> Resp {
    wire::json(
        status,
        &serde_json::json!({
            "error": status.canonical_reason().unwrap_or("Error"),
            "message": message,
        }),
    )
}

fn violation(shared: &Shared, status: StatusCode, reason: &'static str) -> Resp {
    shared.violation(reason);
    error(status, reason)
}

/// The form body of a login or refresh, or the answer to a misuse (boxed: a response is large
/// and this is the cold path).
fn form(shared: &Shared, parts: &Parts, body: &[u8]) -> Result<wire::FormMap, Box<Resp>> {
    if parts.method != Method::POST {
        shared.violation("auth endpoint called without POST");
        return Err(Box::new(wire::method_not_allowed("POST")));
    }
    if !wire::is_form(&parts.headers) {
        return Err(Box::new(violation(
            shared,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "body is not application/x-www-form-urlencoded",
        )));
    }
    match wire::form(body) {
        Form::Params(params) => Ok(params),
        Form::Duplicate => Err(Box::new(violation(
            shared,
            StatusCode::BAD_REQUEST,
            "repeated form parameter",
        ))),
    }
}

fn tokens(shared: &Shared, sub: &Arc<str>) -> Resp {
    let issued = shared.tokens.issue(sub, None, true);
    let id_token = shared
        .tokens
        .mint("ID", sub, shared.config.access_lifetime, None);
    wire::token_json(
        StatusCode::OK,
        &serde_json::json!({
            "access_token": issued.access,
            "refresh_token": issued.refresh,
            "id_token": id_token,
            "token_type": "bearer",
            "expires_in": Shared::expires_in(shared.config.access_lifetime),
        }),
    )
}

pub(super) fn login(shared: &Shared, parts: &Parts, body: &[u8]) -> Resp {
    let params = match form(shared, parts, body) {
        Ok(params) => params,
        Err(answer) => return *answer,
    };
    let (Some(username), Some(password)) = (params.get("username"), params.get("password")) else {
        return violation(
            shared,
            StatusCode::BAD_REQUEST,
            "login form lacks username or password",
        );
    };
    if *username != shared.config.username || *password != shared.config.password {
        shared.login_rejected("invalid credentials");
        return error(StatusCode::UNAUTHORIZED, "Invalid username or password");
    }
    shared.login_granted();
    tokens(shared, &Arc::from(username.as_str()))
}

pub(super) fn refresh(shared: &Shared, parts: &Parts, body: &[u8]) -> Resp {
    let params = match form(shared, parts, body) {
        Ok(params) => params,
        Err(answer) => return *answer,
    };
    if params.contains_key("username") || params.contains_key("password") {
        return violation(
            shared,
            StatusCode::BAD_REQUEST,
            "credentials sent to the refresh endpoint",
        );
    }
    let Some(token) = params.get("refresh_token") else {
        return violation(
            shared,
            StatusCode::BAD_REQUEST,
            "refresh form lacks refresh_token",
        );
    };
    match shared.redeem(token, Redeem::SINGLE_USE) {
        Redeemed::Granted(grant) => {
            bump(&shared.counters.refreshes);
            tokens(shared, &grant.sub)
        }
        Redeemed::Reused => violation(shared, StatusCode::UNAUTHORIZED, "refresh token used twice"),
        _ => {
            shared.refresh_rejected("refresh token expired, revoked or unknown");
            error(StatusCode::UNAUTHORIZED, "Refresh token is not valid")
        }
    }
}
