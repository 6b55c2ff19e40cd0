//! A generic RFC 6749 token endpoint for one confidential client: the `password`,
//! `client_credentials` and `refresh_token` grants, client authentication by
//! `client_secret_basic` or `client_secret_post` (never both, 2.3.1), an optional `scope` echoed
//! back, and section 5.2 error answers.
//!
//! With [`OAuthExtensions`](super::OAuthExtensions) on, also: the client authentication method
//! the client is registered with (`client_auth.rs`), DPoP proofs and DPoP-bound access tokens
//! (`dpop.rs`), resource indicators and the token exchange grant (`exchange.rs`). Only access
//! tokens are DPoP-bound: the client is confidential, so its refresh tokens are bound to its
//! client authentication already (RFC 9449 5), and a refresh with a proof binds the new access
//! token to the proof's key.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, StatusCode};

use super::client_auth::authenticate;
use super::dpop::{self, DpopState, ProofError};
use super::exchange::{self, TOKEN_EXCHANGE};
use super::mtls;
use super::state::Shared;
use super::stats::bump;
use super::strict::Strict;
use super::tokens::{Bound, Redeem, Redeemed};
use super::wire::{self, Form, Resp};

pub(super) const TOKEN_PATH: &str = "/oauth/token";
pub(super) const RESOURCE_PATH: &str = "/resource";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Grant {
    Password,
    ClientCredentials,
    RefreshToken,
    TokenExchange,
}

pub(super) fn oauth_error(
    status: StatusCode,
    error: &'static str,
    description: &'static str,
) -> Resp {
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

pub(super) fn violation(
    shared: &Shared,
    status: StatusCode,
    error: &'static str,
    reason: &'static str,
) -> Resp {
    shared.violation(reason);
    oauth_error(status, error, reason)
}

pub(super) fn invalid_request(shared: &Shared, reason: &'static str) -> Resp {
    violation(shared, StatusCode::BAD_REQUEST, "invalid_request", reason)
}

/// What every OAuth2 endpoint checks of a call first: POST (else the violation `without_post`
/// and 405) with a form body (else 400 `invalid_request`).
pub(super) fn form_post(
    shared: &Shared,
    parts: &Parts,
    without_post: &'static str,
) -> Result<(), Box<Resp>> {
    if parts.method != Method::POST {
        shared.violation(without_post);
        return Err(Box::new(wire::method_not_allowed("POST")));
    }
    if !wire::is_form(&parts.headers) {
        let reason = "body is not application/x-www-form-urlencoded";
        return Err(Box::new(invalid_request(shared, reason)));
    }
    Ok(())
}

/// [`form_post`], then the body's parameters, none repeated (else 400 `invalid_request`).
pub(super) fn form_params(
    shared: &Shared,
    parts: &Parts,
    body: &[u8],
    without_post: &'static str,
) -> Result<wire::FormMap, Box<Resp>> {
    form_post(shared, parts, without_post)?;
    match wire::form(body) {
        Form::Params(params) => Ok(params),
        Form::Duplicate => Err(Box::new(invalid_request(shared, "repeated form parameter"))),
    }
}

/// Counts refused credentials as a rejected refresh or a rejected login.
pub(super) fn rejected(shared: &Shared, refresh: bool, reason: &'static str) {
    if refresh {
        shared.refresh_rejected(reason);
    } else {
        shared.login_rejected(reason);
    }
}

/// The `token_type` of an access token bound as `bound` says.
pub(super) fn token_type(bound: Option<&Bound>) -> &'static str {
    if bound.is_some_and(|b| b.jkt.is_some()) {
        "DPoP"
    } else {
        "Bearer"
    }
}

/// What an access token is bound to, when it is bound to anything: the DPoP key's thumbprint
/// `jkt`, the client certificate's `x5t`, `audiences`.
pub(super) fn binding(
    jkt: Option<&String>,
    x5t: Option<String>,
    audiences: Vec<String>,
) -> Option<Bound> {
    (jkt.is_some() || x5t.is_some() || !audiences.is_empty()).then(|| Bound {
        jkt: jkt.cloned(),
        x5t,
        audiences,
    })
}

fn tokens(
    shared: &Shared,
    sub: &Arc<str>,
    scope: Option<Arc<str>>,
    with_refresh: bool,
    bound: Option<Bound>,
) -> Resp {
    let token_type = token_type(bound.as_ref());
    let issued = shared
        .tokens
        .issue_bound(sub, scope.clone(), with_refresh, bound.map(Arc::new));
    let mut body = serde_json::json!({
        "access_token": issued.access,
        "token_type": token_type,
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

/// The token endpoint. Where DPoP nonces are demanded, every answer carries the newest.
pub(super) fn token(shared: &Shared, parts: &Parts, body: &[u8]) -> Resp {
    let answer = token_call(shared, parts, body);
    match shared.strict.as_ref().and_then(|s| s.dpop.as_ref()) {
        Some(dpop) => dpop::with_nonce(answer, dpop.token_nonces.as_ref()),
        None => answer,
    }
}

/// The body's parameters; with resource indicators or token exchange on, `resource` and
/// `audience` may repeat and come back in the list too.
fn params(shared: &Shared, body: &[u8]) -> Result<(wire::FormMap, wire::Repeated), Box<Resp>> {
    let repeatable = shared
        .strict
        .as_ref()
        .is_some_and(|s| s.config.resource_indicators || s.config.token_exchange.is_some());
    let repeated = || Box::new(invalid_request(shared, "repeated form parameter"));
    if repeatable {
        wire::form_repeatable(body, &["resource", "audience"]).ok_or_else(repeated)
    } else {
        match wire::form(body) {
            Form::Params(params) => Ok((params, Vec::new())),
            Form::Duplicate => Err(repeated()),
        }
    }
}

/// Checks the DPoP proof of a token request: the thumbprint of its key, `None` without one.
fn token_proof(
    shared: &Shared,
    strict: &Strict,
    dpop: &DpopState,
    parts: &Parts,
) -> Result<Option<String>, Box<Resp>> {
    let url = dpop::request_url(parts, &strict.issuer);
    match dpop.check(parts, &url, None, dpop.token_nonces.as_ref()) {
        Ok(Some(proof)) => {
            bump(&shared.counters.dpop_proofs);
            Ok(Some(proof.jkt))
        }
        Ok(None) if dpop.config.required => Err(Box::new(violation(
            shared,
            StatusCode::BAD_REQUEST,
            "invalid_dpop_proof",
            "no DPoP proof where DPoP is required",
        ))),
        Ok(None) => Ok(None),
        Err(ProofError::UseNonce) => {
            bump(&shared.counters.dpop_nonce_challenges);
            Err(Box::new(wire::token_json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({
                    "error": "use_dpop_nonce",
                    "error_description": "Authorization server requires nonce in DPoP proof",
                }),
            )))
        }
        Err(ProofError::Invalid(reason)) => Err(Box::new(violation(
            shared,
            StatusCode::BAD_REQUEST,
            "invalid_dpop_proof",
            reason,
        ))),
    }
}

fn token_call(shared: &Shared, parts: &Parts, body: &[u8]) -> Resp {
    if let Err(answer) = form_post(shared, parts, "token endpoint called without POST") {
        return *answer;
    }
    let (params, repeated) = match params(shared, body) {
        Ok(params) => params,
        Err(answer) => return *answer,
    };
    let strict = shared.strict.as_ref();
    let grant = match params.get("grant_type").map(String::as_str) {
        Some("password") => Grant::Password,
        Some("client_credentials") => Grant::ClientCredentials,
        Some("refresh_token") => Grant::RefreshToken,
        Some(TOKEN_EXCHANGE) if strict.is_some_and(|s| s.config.token_exchange.is_some()) => {
            Grant::TokenExchange
        }
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
    // DPoP before client authentication: a nonce challenge costs the client no assertion.
    let jkt = match strict.and_then(|s| Some((s, s.dpop.as_ref()?))) {
        Some((strict, dpop)) => match token_proof(shared, strict, dpop, parts) {
            Ok(jkt) => jkt,
            Err(answer) => return *answer,
        },
        None => None,
    };
    if let Err(answer) = authenticate(shared, parts, &params, grant == Grant::RefreshToken) {
        return *answer;
    }
    // RFC 8705 3: a token issued over mutual TLS is bound to the certificate.
    let x5t = mtls::binding(shared, parts);
    let scope = params
        .get("scope")
        .filter(|scope| !scope.trim().is_empty())
        .map(|scope| Arc::<str>::from(scope.as_str()));
    // RFC 8707 §2: `resource` (and `audience`) on any token request, login or refresh.
    let indicators = strict.is_some_and(|s| s.config.resource_indicators);
    let audiences = if grant == Grant::TokenExchange {
        Vec::new()
    } else if indicators {
        match exchange::targets(shared, &repeated) {
            Ok(audiences) => audiences,
            Err(answer) => return *answer,
        }
    } else if exchange::repeats(&repeated) {
        return invalid_request(shared, "repeated form parameter");
    } else {
        Vec::new()
    };
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
            let bound = binding(jkt.as_ref(), x5t, audiences);
            tokens(shared, &Arc::from(username.as_str()), scope, true, bound)
        }
        Grant::ClientCredentials => {
            shared.login_granted();
            // RFC 6749 4.4.3: a refresh token SHOULD NOT be included.
            tokens(
                shared,
                &Arc::from(shared.config.client_id.as_str()),
                scope,
                false,
                binding(jkt.as_ref(), x5t, audiences),
            )
        }
        Grant::RefreshToken => {
            let bound = binding(jkt.as_ref(), x5t, audiences);
            refresh(shared, &params, scope, bound)
        }
        Grant::TokenExchange => exchange::exchange(shared, &params, &repeated, scope, jkt, x5t),
    }
}

fn refresh(
    shared: &Shared,
    params: &wire::FormMap,
    scope: Option<Arc<str>>,
    bound: Option<Bound>,
) -> Resp {
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
            tokens(shared, &grant.sub, scope, rotate, bound)
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
