//! The OLI Systems emulation: a Keycloak OpenID Connect token endpoint, as the repository's
//! `specs/oli.toml` describes it, with Keycloak's error bodies and refresh-token rotation
//! ("revoke refresh token" on, reuse count 0).

use std::sync::Arc;

use http::request::Parts;
use http::{Method, StatusCode};

use super::state::Shared;
use super::stats::bump;
use super::tokens::{Redeem, Redeemed};
use super::wire::{self, Form, Resp};

pub(super) const TOKEN_PATH: &str = "/auth/realms/api/protocol/openid-connect/token";
pub(super) const RESOURCE_PATH: &str = "/api/resource";

fn oauth_error(status: StatusCode, error: &'static str, description: &'static str) -> Resp {
    wire::token_json(
        status,
        &serde_json::json!({ "error": error, "error_description": description }),
    )
}

fn violation(
    shared: &Shared,
    status: StatusCode,
    error: &'static str,
    reason: &'static str,
) -> Resp {
    shared.violation(reason);
    oauth_error(status, error, reason)
}

fn tokens(shared: &Shared, sub: &Arc<str>) -> Resp {
    // As the OLI document shows it: lowercase `bearer`, its own scope.
    shared.keycloak_tokens(sub, "bearer", 1_588_002_927, "oli_user_role")
}

/// The one token endpoint: login and refresh are told apart by `grant_type`.
pub(super) fn token(shared: &Shared, parts: &Parts, body: &[u8]) -> Resp {
    if parts.method != Method::POST {
        shared.violation("token endpoint called without POST");
        return wire::method_not_allowed("POST");
    }
    if !wire::is_form(&parts.headers) {
        // Keycloak reads only form parameters, so to it a JSON body has no grant_type.
        return violation(
            shared,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing form parameter: grant_type",
        );
    }
    let params = match wire::form(body) {
        Form::Params(params) => params,
        Form::Duplicate => {
            return violation(
                shared,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "duplicated form parameter",
            )
        }
    };
    let is_login = match params.get("grant_type").map(String::as_str) {
        Some("password") => true,
        Some("refresh_token") => false,
        Some(_) => {
            return violation(
                shared,
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Unsupported grant_type",
            )
        }
        None => {
            return violation(
                shared,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Missing form parameter: grant_type",
            )
        }
    };
    match params.get("client_id") {
        None => {
            return violation(
                shared,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Missing parameter: client_id",
            )
        }
        Some(id) if *id != shared.config.client_id => {
            if is_login {
                shared.login_rejected("unknown client_id");
            } else {
                shared.refresh_rejected("unknown client_id");
            }
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Invalid client credentials",
            );
        }
        Some(_) => {}
    }
    if is_login {
        password_grant(shared, &params)
    } else {
        refresh_grant(shared, &params)
    }
}

fn password_grant(shared: &Shared, params: &wire::FormMap) -> Resp {
    let (Some(username), Some(password)) = (params.get("username"), params.get("password")) else {
        return violation(
            shared,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing parameter: username or password",
        );
    };
    if *username != shared.config.username || *password != shared.config.password {
        shared.login_rejected("invalid credentials");
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_grant",
            "Invalid user credentials",
        );
    }
    shared.login_granted();
    tokens(shared, &Arc::from(username.as_str()))
}

fn refresh_grant(shared: &Shared, params: &wire::FormMap) -> Resp {
    if params.contains_key("username") || params.contains_key("password") {
        return violation(
            shared,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "credentials sent with the refresh_token grant",
        );
    }
    let Some(token) = params.get("refresh_token") else {
        return violation(
            shared,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing parameter: refresh_token",
        );
    };
    match shared.redeem(token, Redeem::SINGLE_USE) {
        Redeemed::Granted(grant) => {
            bump(&shared.counters.refreshes);
            tokens(shared, &grant.sub)
        }
        Redeemed::Reused => violation(
            shared,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Maximum allowed refresh token reuse exceeded",
        ),
        _ => {
            shared.refresh_rejected("refresh token expired, revoked or unknown");
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Token is not active",
            )
        }
    }
}
