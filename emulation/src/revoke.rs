//! Token revocation (RFC 7009): `POST /oauth/revoke` with `token`, an optional
//! `token_type_hint`, and the client's authentication. Afterwards the resource refuses the
//! token, and counts it as a violation when the client sends it anyway.

use http::request::Parts;
use http::{Method, StatusCode};

use super::client_auth::authenticate;
use super::oauth2::invalid_request;
use super::state::Shared;
use super::stats::bump;
use super::wire::{self, Form, Resp};

/// The revocation endpoint. A token the server does not know (or that is already dead) is
/// answered 200 too (RFC 7009 2.2): revoking it changes nothing.
pub(super) fn revoke(shared: &Shared, parts: &Parts, body: &[u8]) -> Resp {
    if parts.method != Method::POST {
        shared.violation("revocation endpoint called without POST");
        return wire::method_not_allowed("POST");
    }
    if !wire::is_form(&parts.headers) {
        return invalid_request(shared, "body is not application/x-www-form-urlencoded");
    }
    let params = match wire::form(body) {
        Form::Params(params) => params,
        Form::Duplicate => return invalid_request(shared, "repeated form parameter"),
    };
    if let Err(answer) = authenticate(shared, parts, &params, false) {
        return *answer;
    }
    let Some(token) = params.get("token") else {
        return invalid_request(shared, "revocation without token");
    };
    // RFC 7009 2.1: the hint only speeds up a lookup, an unknown one is ignored; the token is
    // looked up everywhere.
    let revoked = shared.tokens.revoke_token(token);
    tracing::debug!(revoked, "emulation: revocation request");
    bump(&shared.counters.revocation_requests);
    wire::empty(StatusCode::OK)
}
