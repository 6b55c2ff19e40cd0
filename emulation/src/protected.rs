//! The OAuth2 protected resource with the extensions on: DPoP-bound tokens (RFC 9449 7),
//! certificate-bound tokens (RFC 8705 3), tokens the client revoked (RFC 7009), and the audience
//! the resource requires (RFC 8707).
//!
//! Each refusal is a 401 with a `WWW-Authenticate` challenge in the scheme the token asks for.
//! A token sent the wrong way (a DPoP-bound token as `Bearer`, a bearer token as `DPoP`), a bad
//! proof, a revoked token or one for another audience is a violation; an unknown or expired
//! token is not, as in the plain resource; a nonce challenge is counted apart.

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::StatusCode;

use super::dpop::{self, ProofError};
use super::mtls;
use super::state::Shared;
use super::stats::bump;
use super::strict::Strict;
use super::wire::{self, Resp, Scheme};

/// A 401 with `challenge` as `WWW-Authenticate`.
fn unauthorized(shared: &Shared, challenge: &'static str, error: &'static str) -> Resp {
    bump(&shared.counters.resource_unauthorized);
    let mut response = wire::json(
        StatusCode::UNAUTHORIZED,
        &serde_json::json!({ "error": error }),
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

fn refused(
    shared: &Shared,
    reason: &'static str,
    challenge: &'static str,
    error: &'static str,
) -> Resp {
    shared.violation(reason);
    unauthorized(shared, challenge, error)
}

const BEARER_INVALID: &str = r#"Bearer error="invalid_token""#;
const DPOP_INVALID: &str = r#"DPoP error="invalid_token", algs="ES256 RS256 PS256 EdDSA""#;
const DPOP_BAD_PROOF: &str = r#"DPoP error="invalid_dpop_proof", algs="ES256 RS256 PS256 EdDSA""#;
const DPOP_NONCE: &str = r#"DPoP error="use_dpop_nonce", algs="ES256 RS256 PS256 EdDSA""#;

/// The protected resource's answer; where the resource demands DPoP nonces, every answer
/// carries the newest.
pub(super) fn resource(shared: &Shared, strict: &Strict, parts: &Parts, body_bytes: u64) -> Resp {
    let answer = decide(shared, strict, parts, body_bytes);
    match &strict.dpop {
        Some(dpop) => dpop::with_nonce(answer, dpop.resource_nonces.as_ref()),
        None => answer,
    }
}

fn decide(shared: &Shared, strict: &Strict, parts: &Parts, body_bytes: u64) -> Resp {
    let dpop_on = strict.dpop.is_some();
    let Some((scheme, token)) = wire::access_token(&parts.headers) else {
        let challenge = match (parts.headers.contains_key(header::AUTHORIZATION), dpop_on) {
            (true, true) => DPOP_INVALID,
            (true, false) => BEARER_INVALID,
            (false, true) => r#"DPoP algs="ES256 RS256 PS256 EdDSA""#,
            (false, false) => "Bearer",
        };
        return unauthorized(shared, challenge, "invalid_token");
    };
    shared.seen_tokens.record(token);
    let invalid = match scheme {
        Scheme::Bearer => BEARER_INVALID,
        Scheme::Dpop => DPOP_INVALID,
    };
    if shared.tokens.revoked_by_client(token) {
        bump(&shared.counters.revoked_token_uses);
        return refused(shared, "revoked token sent", invalid, "invalid_token");
    }
    let Some(access) = shared.tokens.access(token) else {
        return unauthorized(shared, invalid, "invalid_token");
    };
    let jkt = access.bound.as_ref().and_then(|b| b.jkt.as_deref());
    match (scheme, jkt, &strict.dpop) {
        (Scheme::Bearer, Some(_), _) => {
            return refused(
                shared,
                "DPoP-bound token sent as Bearer",
                DPOP_INVALID,
                "invalid_token",
            )
        }
        (Scheme::Dpop, None, _) | (Scheme::Dpop, Some(_), None) => {
            return refused(
                shared,
                "bearer token sent with the DPoP scheme",
                BEARER_INVALID,
                "invalid_token",
            )
        }
        (Scheme::Bearer, None, _) => {}
        (Scheme::Dpop, Some(jkt), Some(dpop)) => {
            let url = dpop::request_url(parts, &strict.issuer);
            match dpop.check(parts, &url, Some(token), dpop.resource_nonces.as_ref()) {
                Ok(Some(proof)) if proof.jkt == jkt => bump(&shared.counters.dpop_proofs),
                Ok(Some(_)) => {
                    return refused(
                        shared,
                        "DPoP proof key is not the key the token is bound to",
                        DPOP_BAD_PROOF,
                        "invalid_dpop_proof",
                    )
                }
                Ok(None) => {
                    return refused(
                        shared,
                        "DPoP-bound token without a DPoP proof",
                        DPOP_BAD_PROOF,
                        "invalid_dpop_proof",
                    )
                }
                Err(ProofError::UseNonce) => {
                    bump(&shared.counters.dpop_nonce_challenges);
                    return unauthorized(shared, DPOP_NONCE, "use_dpop_nonce");
                }
                Err(ProofError::Invalid(reason)) => {
                    return refused(shared, reason, DPOP_BAD_PROOF, "invalid_dpop_proof")
                }
            }
        }
    }
    if let Some(x5t) = access.bound.as_ref().and_then(|b| b.x5t.as_deref()) {
        match mtls::peer(parts) {
            Some(Some(certificate)) if certificate.x5t == x5t => {
                bump(&shared.counters.certificate_bound_uses)
            }
            Some(Some(_)) => {
                return refused(
                    shared,
                    "certificate-bound token over a connection with another certificate",
                    invalid,
                    "invalid_token",
                )
            }
            _ => {
                return refused(
                    shared,
                    "certificate-bound token over a connection without its certificate",
                    invalid,
                    "invalid_token",
                )
            }
        }
    }
    let by_path = parts
        .uri
        .path()
        .strip_prefix(super::oauth2::RESOURCE_PATH)
        .and_then(|rest| rest.strip_prefix('/'));
    let required = match by_path {
        Some(audience) if strict.config.audience_per_path => Some(audience),
        Some(_) => return wire::text(StatusCode::NOT_FOUND, "Not Found"),
        None => strict.config.resource_audience.as_deref(),
    };
    if let Some(required) = required {
        let audiences = access.bound.as_ref().map(|b| b.audiences.as_slice());
        if !audiences.is_some_and(|a| a.iter().any(|a| a == required)) {
            return refused(
                shared,
                "token not issued for the resource's audience",
                invalid,
                "invalid_token",
            );
        }
    }
    shared.resource_ok(parts, &access.sub, body_bytes)
}
