//! Client authentication at the token and revocation endpoints: by the client secret (RFC 6749
//! 2.3.1, `client_secret_basic` and `client_secret_post`) or by a JWT assertion (RFC 7523,
//! `client_secret_jwt` and `private_key_jwt`) or by its TLS certificate (RFC 8705, in
//! `mtls.rs`), by whichever method the client is registered with ([`ClientAuth`]).

use http::request::Parts;
use http::StatusCode;

use super::assertion;
use super::extensions::ClientAuth;
use super::oauth2::{invalid_request, oauth_error, rejected, violation};
use super::state::Shared;
use super::wire::{self, Basic, Resp};

/// The ways a client may have presented credentials, as far as it matters which it chose.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Presented {
    /// An `Authorization` header (Basic, well-formed or not, or another scheme).
    Header,
    /// `client_secret` in the body.
    Post,
    /// `client_assertion` or `client_assertion_type` in the body.
    Assertion,
}

/// Authenticates the client by the method it is registered with; the error is the answer to
/// send (boxed: a response is large and this is the cold path). `refresh` says whether a refused
/// credential counts as a rejected refresh rather than a rejected login.
pub(super) fn authenticate(
    shared: &Shared,
    parts: &Parts,
    params: &wire::FormMap,
    refresh: bool,
) -> Result<(), Box<Resp>> {
    let registered = shared
        .strict
        .as_ref()
        .map_or(&ClientAuth::SecretBasicOrPost, |strict| {
            &strict.config.client_auth
        });
    if registered.is_mtls() {
        return super::mtls::authenticate(shared, parts, params, refresh, registered);
    }
    if matches!(registered, ClientAuth::SecretBasicOrPost) {
        return secret(shared, parts, params, refresh);
    }
    let mut presented = Vec::with_capacity(3);
    if !matches!(wire::basic(&parts.headers, true), Basic::Absent) {
        presented.push(Presented::Header);
    }
    if params.contains_key("client_secret") {
        presented.push(Presented::Post);
    }
    if params.contains_key("client_assertion") || params.contains_key("client_assertion_type") {
        presented.push(Presented::Assertion);
    }
    let method = match presented.as_slice() {
        [] => {
            return Err(Box::new(violation(
                shared,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "no client authentication",
            )))
        }
        [one] => *one,
        _ => {
            return Err(Box::new(invalid_request(
                shared,
                "more than one client authentication method",
            )))
        }
    };
    let expected = match registered {
        ClientAuth::SecretBasic => Presented::Header,
        ClientAuth::SecretPost => Presented::Post,
        _ => Presented::Assertion,
    };
    if method != expected {
        return Err(Box::new(violation(
            shared,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication method not registered for the client",
        )));
    }
    match method {
        Presented::Header | Presented::Post => secret(shared, parts, params, refresh),
        Presented::Assertion => assertion::verify(shared, parts, params, refresh),
    }
}

/// Authenticates the client by exactly one of `client_secret_basic` and `client_secret_post`;
/// the error is the answer to send (boxed: a response is large and this is the cold path).
fn secret(
    shared: &Shared,
    parts: &Parts,
    params: &wire::FormMap,
    refresh: bool,
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
        rejected(shared, refresh, "invalid client credentials");
        return Err(Box::new(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        )));
    }
    Ok(())
}
