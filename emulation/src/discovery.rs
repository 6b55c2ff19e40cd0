//! The discovery documents: OpenID Connect Discovery 1.0's `openid-configuration` and RFC 8414's
//! `oauth-authorization-server`, the same JSON at both paths, describing what the emulation
//! serves with its extensions as configured.

use http::{Method, StatusCode};

use super::extensions::{Discovery, SigningAlg};
use super::stats::bump;
use super::strict::Strict;
use super::wire::{self, Resp};
use super::{exchange, state::Shared};

/// Every client authentication method the server implements; the client is registered for one.
const AUTH_METHODS: [&str; 4] = [
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
];
/// The methods the TLS listener adds (RFC 8705 2).
const MTLS_METHODS: [&str; 2] = ["tls_client_auth", "self_signed_tls_client_auth"];

/// A discovery document, `GET` only (405 otherwise, not a violation: discovery is no auth call).
pub(super) fn document(
    shared: &Shared,
    strict: &Strict,
    settings: &Discovery,
    method: &Method,
) -> Resp {
    if method != Method::GET && method != Method::HEAD {
        return wire::method_not_allowed("GET, HEAD");
    }
    bump(&shared.counters.discovery_fetches);
    let config = &strict.config;
    let asymmetric: Vec<&str> = SigningAlg::ALL.iter().map(|alg| alg.name()).collect();
    let mut signing = vec!["HS256"];
    signing.extend(&asymmetric);
    let mut grants = vec!["password", "client_credentials", "refresh_token"];
    if config.token_exchange.is_some() {
        grants.push(exchange::TOKEN_EXCHANGE);
    }
    let mut methods = AUTH_METHODS.to_vec();
    if strict.mtls.is_some() {
        methods.extend(MTLS_METHODS);
    }
    let mut doc = serde_json::json!({
        "issuer": settings.issuer_override.as_deref().unwrap_or(&strict.issuer),
        "token_endpoint": strict.token_endpoint(),
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": signing,
        "grant_types_supported": grants,
        "response_types_supported": ["token"],
    });
    if let Some(map) = doc.as_object_mut() {
        if config.revocation {
            map.insert(
                "revocation_endpoint".to_owned(),
                strict.revocation_endpoint().into(),
            );
            map.insert(
                "revocation_endpoint_auth_methods_supported".to_owned(),
                methods.clone().into(),
            );
        }
        if config.introspection {
            map.insert(
                "introspection_endpoint".to_owned(),
                strict.introspection_endpoint().into(),
            );
        }
        if config.dpop.is_some() {
            map.insert(
                "dpop_signing_alg_values_supported".to_owned(),
                asymmetric.into(),
            );
        }
        let aliases =
            (settings.mtls_endpoint_aliases.clone()).or_else(|| strict.mtls_endpoint_aliases());
        if let Some(aliases) = aliases {
            map.insert("mtls_endpoint_aliases".to_owned(), aliases);
        }
        if strict.mtls.is_some() {
            map.insert(
                "tls_client_certificate_bound_access_tokens".to_owned(),
                config
                    .mtls
                    .as_ref()
                    .is_some_and(|m| m.certificate_bound_tokens)
                    .into(),
            );
        }
    }
    let mut response = wire::json(StatusCode::OK, &doc);
    if method == Method::HEAD {
        *response.body_mut() = http_body_util::Full::default();
    }
    response
}
