//! JWT client assertions (RFC 7523 2.2 and 3, OpenID Connect Core 9): `client_secret_jwt`
//! (HS256 keyed by the client secret) and `private_key_jwt` (the registered public key).
//!
//! Beyond RFC 7523, which makes `iat` and `jti` optional, the emulation demands both, as strict
//! servers do: `iat` bounds the assertion's lifetime (at most 60 s to `exp`) and `jti` is
//! single-use.
//!
//! Every refusal is 401 `invalid_client`. A malformed, misaddressed, stale or replayed assertion
//! is a violation (a correct client never sends one); an assertion whose signature does not
//! verify is a rejection, as a wrong secret is.

use std::time::Duration;

use http::request::Parts;
use http::StatusCode;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::extensions::ClientAuth;
use super::jose;
use super::oauth2::{oauth_error, rejected, violation};
use super::state::Shared;
use super::stats::bump;
use super::strict::Strict;
use super::wire::{self, Resp};

/// RFC 7523 2.2.
pub(super) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How far the client's clock may be off from the server's, in seconds.
const SKEW: i64 = 5;
/// The longest an assertion may live, `iat` to `exp`, in seconds (plus `SKEW`).
const MAX_LIFETIME: i64 = 60;

fn refuse(shared: &Shared, reason: &'static str) -> Box<Resp> {
    Box::new(violation(
        shared,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        reason,
    ))
}

/// Verifies the client assertion of a token or revocation request whose client is registered
/// for an assertion method.
pub(super) fn verify(
    shared: &Shared,
    parts: &Parts,
    params: &wire::FormMap,
    refresh: bool,
) -> Result<(), Box<Resp>> {
    let Some(strict) = &shared.strict else {
        return Err(refuse(shared, "client assertion to a server without them"));
    };
    match params.get("client_assertion_type").map(String::as_str) {
        None => {
            return Err(refuse(
                shared,
                "client_assertion without client_assertion_type",
            ))
        }
        Some(JWT_BEARER) => {}
        Some(_) => return Err(refuse(shared, "unsupported client_assertion_type")),
    }
    let Some(assertion) = params.get("client_assertion") else {
        return Err(refuse(
            shared,
            "client_assertion_type without client_assertion",
        ));
    };
    let Some(jws) = jose::split(assertion) else {
        return Err(refuse(shared, "client assertion is not a compact JWS"));
    };
    let client_id = shared.config.client_id.as_str();
    let alg = jws.header_str("alg").unwrap_or("");
    if alg.eq_ignore_ascii_case("none") {
        return Err(refuse(shared, "unsigned client assertion (alg none)"));
    }
    let (key, algorithm) = match &strict.config.client_auth {
        ClientAuth::SecretJwt => {
            if alg != "HS256" {
                return Err(refuse(
                    shared,
                    "client assertion alg is not the registered one",
                ));
            }
            (
                DecodingKey::from_secret(shared.config.client_secret.as_bytes()),
                Algorithm::HS256,
            )
        }
        ClientAuth::PrivateKeyJwt {
            alg: registered, ..
        } => {
            if alg.starts_with("HS") {
                return Err(refuse(
                    shared,
                    "HMAC client assertion from a client registered with a public key",
                ));
            }
            if alg != registered.name() {
                return Err(refuse(
                    shared,
                    "client assertion alg is not the registered one",
                ));
            }
            let Ok(Some(key)) = &strict.client_key else {
                return Err(refuse(shared, "client registered without a usable key"));
            };
            if let Some(kid) = &key.kid {
                if jws.header_str("kid") != Some(kid) {
                    return Err(refuse(
                        shared,
                        "client assertion kid is not the registered key's",
                    ));
                }
            }
            (key.key.clone(), jose::algorithm(*registered))
        }
        _ => {
            return Err(refuse(
                shared,
                "client assertion from a client registered for a secret",
            ))
        }
    };
    if !jws.verifies(&key, algorithm) {
        rejected(
            shared,
            refresh,
            "client assertion signature does not verify",
        );
        return Err(Box::new(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        )));
    }
    if jws.claim_str("iss") != Some(client_id) || jws.claim_str("sub") != Some(client_id) {
        return Err(refuse(
            shared,
            "client assertion iss and sub are not the client id",
        ));
    }
    if params.get("client_id").is_some_and(|id| id != client_id) {
        return Err(refuse(
            shared,
            "client_id differs from the client assertion's",
        ));
    }
    if !audience_fits(&jws.claims, strict, parts) {
        return Err(refuse(
            shared,
            "client assertion aud names neither the endpoint nor the issuer",
        ));
    }
    let now = jose::now_secs();
    let Some(exp) = jws.claim_time("exp") else {
        return Err(refuse(shared, "client assertion without exp"));
    };
    let Some(iat) = jws.claim_time("iat") else {
        return Err(refuse(shared, "client assertion without iat"));
    };
    if exp <= now.saturating_sub(SKEW) {
        return Err(refuse(shared, "expired client assertion"));
    }
    if iat > now.saturating_add(SKEW) {
        return Err(refuse(shared, "client assertion issued in the future"));
    }
    if exp.saturating_sub(iat) > MAX_LIFETIME + SKEW {
        return Err(refuse(shared, "client assertion lives longer than 60 s"));
    }
    let Some(jti) = jws.claim_str("jti").filter(|jti| !jti.is_empty()) else {
        return Err(refuse(shared, "client assertion without jti"));
    };
    // Remembered until it could no longer be accepted anyway.
    let keep = u64::try_from(exp.saturating_sub(now).saturating_add(SKEW)).unwrap_or(0);
    if !strict
        .assertion_jtis
        .first_use(jti, Duration::from_secs(keep))
    {
        return Err(refuse(shared, "client assertion jti replayed"));
    }
    bump(&shared.counters.client_assertions);
    Ok(())
}

/// Whether `aud` (a string or an array of strings) names the token endpoint, the endpoint the
/// assertion was sent to, or the issuer.
fn audience_fits(claims: &jose::Object, strict: &Strict, parts: &Parts) -> bool {
    let accepted = [
        strict.token_endpoint(),
        format!("{}{}", strict.issuer, parts.uri.path()),
        strict.issuer.clone(),
    ];
    let names = |aud: &str| accepted.iter().any(|url| url == aud);
    match claims.get("aud") {
        Some(Value::String(aud)) => names(aud),
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(names),
        _ => false,
    }
}
