//! Token introspection (RFC 7662): `POST /oauth/introspect` with `token`, answered with what the
//! server knows of it: whether it is active and, when it is, its subject and what it is bound to
//! (`cnf`: `x5t#S256` for a certificate-bound token, RFC 8705 3.2; `jkt` for a DPoP-bound one,
//! RFC 9449 6.2) and its audiences (`aud`).
//!
//! This is the resource server's view of a token, for servers a test builds itself (a gRPC
//! server checking the binding of the tokens it is shown against its own connections). The
//! caller is a resource server, not the client, and is not authenticated: a test's server on
//! the loopback.

use http::request::Parts;
use http::StatusCode;

use super::oauth2::{form_params, invalid_request};
use super::state::Shared;
use super::stats::bump;
use super::wire::{self, Resp};

/// The introspection endpoint. An unknown, expired or revoked token is `{"active": false}`
/// (RFC 7662 2.2), with 200 as for a live one.
pub(super) fn introspect(shared: &Shared, parts: &Parts, body: &[u8]) -> Resp {
    let without_post = "introspection endpoint called without POST";
    let params = match form_params(shared, parts, body, without_post) {
        Ok(params) => params,
        Err(answer) => return *answer,
    };
    let Some(token) = params.get("token") else {
        return invalid_request(shared, "introspection without token");
    };
    bump(&shared.counters.introspections);
    let Some(access) = shared.tokens.access(token) else {
        return wire::json(StatusCode::OK, &serde_json::json!({ "active": false }));
    };
    let mut answer = serde_json::json!({
        "active": true,
        "sub": &*access.sub,
        "token_type": super::oauth2::token_type(access.bound.as_deref()),
    });
    if let (Some(bound), Some(map)) = (access.bound.as_deref(), answer.as_object_mut()) {
        let mut cnf = serde_json::Map::new();
        if let Some(x5t) = &bound.x5t {
            cnf.insert("x5t#S256".to_owned(), x5t.clone().into());
        }
        if let Some(jkt) = &bound.jkt {
            cnf.insert("jkt".to_owned(), jkt.clone().into());
        }
        if !cnf.is_empty() {
            map.insert("cnf".to_owned(), cnf.into());
        }
        if !bound.audiences.is_empty() {
            map.insert("aud".to_owned(), bound.audiences.clone().into());
        }
    }
    wire::json(StatusCode::OK, &answer)
}
