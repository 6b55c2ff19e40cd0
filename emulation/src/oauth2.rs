//! A generic RFC 6749 token endpoint for one confidential client: the `password`,
//! `client_credentials` and `refresh_token` grants, client authentication by
//! `client_secret_basic` or `client_secret_post` (never both, 2.3.1), an optional `scope` echoed
//! back, and section 5.2 error answers.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, StatusCode};

use super::state::Shared;
use super::stats::bump;
use super::tokens::{Redeem, Redeemed};
use super::wire::{self, Basic, Form, Resp};

pub(super) const TOKEN_PATH: &str = "/oauth/token";
pub(super) const RESOURCE_PATH: &str = "/resource";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Grant {
    Password,
    ClientCredentials,
    RefreshToken,
}

fn oauth_error(status: StatusCode, error: &'static str, description: &'static str) -> Resp {
    let mut response = wire::token_json(
        status,
        &serde_json::json!({ "error": error, "error_description": description }),
    );
    if status == StatusCode::UNAUTHORIZED {
        // RFC 6749 5.2: a 401 must say which authentication scheme the endpoint takes.
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="oauth2""#),
        );
    }
    response
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

fn invalid_request(shared: &Shared, reason: &'static str) -> Resp {
    violation(shared, StatusCode::BAD_REQUEST, "invalid_request", reason)
}

fn rejected(shared: &Shared, grant: Grant, reason: &'static str) {
    if grant == Grant::RefreshToken {
        shared.refresh_rejected(reason);
    } else {
        shared.login_rejected(reason);
    }
}

/// Authenticates the client by exactly one of `client_secret_basic` and `client_secret_post`;
/// the error is the answer to send (boxed: a response is large and this is the cold path).
fn authenticate(
    shared: &Shared,
    parts: &Parts,
    params: &wire::FormMap,
    grant: Grant,
) -> Result<(), Box<Resp>> {
    let form_id = params.get("client_id");
    let (id, secret) = match (
        wire::basic(&parts.headers, true),
        params.get("client_secret"),
    ) {
        (Basic::Credentials { .. }, Some(_)) => {
            return Err(Box::new(invalid_request(
                shared,
                "more than one client authentication method (Basic and client_secret)",
            )))
        }
        (Basic::Credentials { user, password }, None) => {
            if form_id.is_some_and(|id| *id != user) {
                return Err(Box::new(invalid_request(
                    shared,
                    "client_id in the body differs from the Basic credentials",
                )));
            }
            (user, password)
        }
        (Basic::Malformed | Basic::OtherScheme, _) => {
            return Err(Box::new(violation(
                shared,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "malformed client authentication in the Authorization header",
            )))
        }
        (Basic::Absent, Some(secret)) => match form_id {
            Some(id) => (id.clone(), secret.clone()),
            None => {
                return Err(Box::new(invalid_request(
                    shared,
                    "client_secret without client_id",
                )))
            }
        },
        (Basic::Absent, None) => {
            // A confidential client MUST authenticate (3.2.1); this is a misconfigured client.
            return Err(Box::new(violation(
                shared,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "no client authentication",
            )));
        }
    };
    if id != shared.config.client_id || secret != shared.config.client_secret {
        rejected(shared, grant, "invalid client credentials");
        return Err(Box::new(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        )));
    }
    Ok(())
}

fn tokens(shared: &Shared, sub: &Arc<str>, scope: Option<Arc<str>>, with_refresh: bool) -> Resp {
    let issued = shared.tokens.issue(sub, scope.clone(), with_refresh);
    let mut body = serde_json::json!({
        "access_token": issued.access,
        "token_type": "Bearer",
        "expires_in": Shared::expires_in(shared.config.access_lifetime),
    });
    if let Some(map) = body.as_object_mut() {
        if let Some(refresh) = issued.refresh {
            map.insert("refresh_token".to_owned(), refresh.into());
        }
        if let Some(scope) = scope {
            map.insert("scope".to_owned(), (*scope).into());
        }
    }
    wire::token_json(StatusCode::OK, &body)
}

pub(super) fn token(shared: &Shared, parts: &Parts, body: &[u8]) -> Resp {
    if parts.method != Method::POST {
        shared.violation("token endpoint called without POST");
        return wire::method_not_allowed("POST");
    }
    if !wire::is_form(&parts.headers) {
        return invalid_request(shared, "body is not application/x-www-form-urlencoded");
    }
    let params = match wire::form(body) {
        Form::Params(params) => params,
        Form::Duplicate => return invalid_request(shared, "repeated form parameter"),
    };
    let grant = match params.get("grant_type").map(String::as_str) {
        Some("password") => Grant::Password,
        Some("client_credentials") => Grant::ClientCredentials,
        Some("refresh_token") => Grant::RefreshToken,
        Some(_) => {
            return violation(
                shared,
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "unsupported grant_type",
            )
        }
        None => return invalid_request(shared, "missing grant_type"),
    };
    if let Err(answer) = authenticate(shared, parts, &params, grant) {
        return *answer;
    }
    let scope = params
        .get("scope")
        .filter(|scope| !scope.trim().is_empty())
        .map(|scope| Arc::<str>::from(scope.as_str()));
    match grant {
        Grant::Password => {
            let (Some(username), Some(password)) = (params.get("username"), params.get("password"))
            else {
                return invalid_request(shared, "missing username or password");
            };
            if *username != shared.config.username || *password != shared.config.password {
                shared.login_rejected("invalid resource owner credentials");
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Invalid resource owner credentials",
                );
            }
            shared.login_granted();
            tokens(shared, &Arc::from(username.as_str()), scope, true)
        }
        Grant::ClientCredentials => {
            shared.login_granted();
            // RFC 6749 4.4.3: a refresh token SHOULD NOT be included.
            tokens(
                shared,
                &Arc::from(shared.config.client_id.as_str()),
                scope,
                false,
            )
        }
        Grant::RefreshToken => refresh(shared, &params, scope),
    }
}

fn refresh(shared: &Shared, params: &wire::FormMap, scope: Option<Arc<str>>) -> Resp {
    if params.contains_key("username") || params.contains_key("password") {
        return invalid_request(shared, "credentials sent with the refresh_token grant");
    }
    let Some(token) = params.get("refresh_token") else {
        return invalid_request(shared, "missing refresh_token");
    };
    let rotate = shared.config.rotate_refresh_tokens;
    let how = Redeem {
        rotate,
        refuse_while_access_live: false,
        requested_scope: scope.as_deref(),
    };
    match shared.redeem(token, how) {
        Redeemed::Granted(grant) => {
            bump(&shared.counters.refreshes);
            let scope = scope.or(grant.scope);
            tokens(shared, &grant.sub, scope, rotate)
        }
        Redeemed::Reused => violation(
            shared,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "refresh token used twice",
        ),
        Redeemed::ScopeExceeded => violation(
            shared,
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "requested scope exceeds the granted scope",
        ),
        _ => {
            shared.refresh_rejected("refresh token expired, revoked or unknown");
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "The refresh token is invalid, expired or revoked",
            )
        }
    }
}
