//! Token revocation (RFC 7009): `POST /oauth/revoke` with `token`, an optional
//! `token_type_hint`, and the client's authentication. Afterwards the resource refuses the
//! token, and counts it as a violation when the client sends it anyway.

use http::request::Parts;
use http::StatusCode;

use super::client_auth::authenticate;
use super::oauth2::{form_params, invalid_request};
use super::state::Shared;
use super::stats::bump;
use super::wire::{self, Resp};

/// The revocation endpoint. A token the server does not know (or that is already dead) is
/// answered 200 too (RFC 7009 2.2): revoking it changes nothing.
pub(super) fn revoke(shared: &Shared, parts: &Parts, body: &[u8]) -> Resp {
    let without_post = "revocation endpoint called without POST";
    let params = match form_params(shared, parts, body, without_post) {
        Ok(params) => params,
        Err(answer) => return *answer,
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
