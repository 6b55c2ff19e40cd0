//! Token exchange (RFC 8693) and resource indicators (RFC 8707): the `audience` and `resource`
//! a token is requested for, and exchanging a subject token for a new access token.

use std::sync::Arc;

use http::StatusCode;

use super::oauth2::{binding, invalid_request, token_type, violation};
use super::state::Shared;
use super::stats::bump;
use super::wire::{self, Resp};

/// RFC 8693 2.1: the grant type.
pub(super) const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 3: an access token issued by this server.
pub(super) const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 3: a JWT (e.g. a Kubernetes service-account token).
pub(super) const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Whether a parameter of `repeated` occurs more than once.
pub(super) fn repeats(repeated: &[(String, String)]) -> bool {
    repeated
        .iter()
        .enumerate()
        .any(|(i, (name, _))| repeated.iter().skip(i + 1).any(|(other, _)| other == name))
}

/// The audiences a token is requested for: every `audience` and every `resource`, in order,
/// without repeats. A `resource` must be an absolute URI without a fragment (RFC 8707 2): else
/// 400 `invalid_target`, a violation.
pub(super) fn targets(
    shared: &Shared,
    repeated: &[(String, String)],
) -> Result<Vec<String>, Box<Resp>> {
    let mut targets: Vec<String> = Vec::new();
    for (name, value) in repeated {
        let absolute = || {
            !value.contains('#')
                && value
                    .parse::<http::Uri>()
                    .is_ok_and(|uri| uri.scheme().is_some() && uri.authority().is_some())
        };
        if value.is_empty() || (name == "resource" && !absolute()) {
            return Err(Box::new(violation(
                shared,
                StatusCode::BAD_REQUEST,
                "invalid_target",
                "resource is not an absolute URI without a fragment, or audience is empty",
            )));
        }
        if !targets.contains(value) {
            targets.push(value.clone());
        }
    }
    Ok(targets)
}

/// The token exchange grant, the client authenticated and its DPoP proof (if any) checked.
pub(super) fn exchange(
    shared: &Shared,
    params: &wire::FormMap,
    repeated: &[(String, String)],
    scope: Option<Arc<str>>,
    jkt: Option<String>,
    x5t: Option<String>,
) -> Resp {
    let Some(subject_token) = params.get("subject_token") else {
        return invalid_request(shared, "missing subject_token");
    };
    let subject_type = match params.get("subject_token_type").map(String::as_str) {
        Some(kind @ (ACCESS_TOKEN_TYPE | JWT_TYPE)) => kind,
        Some(_) => return invalid_request(shared, "unsupported subject_token_type"),
        None => return invalid_request(shared, "missing subject_token_type"),
    };
    let issued_type = match params.get("requested_token_type").map(String::as_str) {
        None => ACCESS_TOKEN_TYPE,
        Some(kind @ (ACCESS_TOKEN_TYPE | JWT_TYPE)) => kind,
        Some(_) => return invalid_request(shared, "unsupported requested_token_type"),
    };
    if params.contains_key("actor_token") != params.contains_key("actor_token_type") {
        return invalid_request(shared, "actor_token and actor_token_type go together");
    }
    let audiences = match targets(shared, repeated) {
        Ok(audiences) => audiences,
        Err(answer) => return *answer,
    };
    let trusted = shared
        .strict
        .as_ref()
        .and_then(|s| s.config.token_exchange.as_ref())
        .and_then(|settings| {
            settings
                .trusted_subject_tokens
                .iter()
                .find(|(token, _)| token == subject_token)
        });
    let sub = match (trusted, shared.tokens.access(subject_token)) {
        (Some((_, sub)), _) => Arc::from(sub.as_str()),
        (None, Some(access)) => access.sub,
        (None, None) => {
            shared.login_rejected("subject token unknown, expired or revoked");
            // RFC 8693 2.2.2: an unacceptable subject token is `invalid_request`.
            return super::oauth2::oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The subject token is invalid, expired or revoked",
            );
        }
    };
    tracing::debug!(subject_type, "emulation: token exchanged");
    let bound = binding(jkt.as_ref(), x5t, audiences);
    let token_type = token_type(bound.as_ref());
    let issued = shared
        .tokens
        .issue_bound(&sub, scope.clone(), false, bound.map(Arc::new));
    bump(&shared.counters.token_exchanges);
    let mut body = serde_json::json!({
        "access_token": issued.access,
        "issued_token_type": issued_type,
        "token_type": token_type,
        "expires_in": Shared::expires_in(shared.config.access_lifetime),
    });
    if let (Some(scope), Some(map)) = (scope, body.as_object_mut()) {
        map.insert("scope".to_owned(), (*scope).into());
    }
    wire::token_json(StatusCode::OK, &body)
}
