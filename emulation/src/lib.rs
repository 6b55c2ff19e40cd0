//! Local, faithful emulations of the five APIs `tower-token-auth` ships presets for (union-service,
//! Simacan, OLI Systems, Tradecloud, Intergiro) and of a generic OAuth2 token endpoint, to test
//! auth clients against.
//!
//! Each [`Emulation`] is a real HTTP/1 server on `127.0.0.1` with the API's login and refresh
//! endpoints, quirks included, and a protected resource that accepts only live access tokens it
//! issued. It counts what a client did ([`Stats`]), above all its protocol **violations**: a
//! refresh token sent twice, a premature refresh, the wrong encoding, credentials sent where they
//! do not belong. A correct client produces none, however the tokens expire, get revoked
//! ([`Emulation::revoke_access_tokens`]) or the auth server fails (see [Faults](#faults)).
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower_token_auth_emulation::{Api, Config, Emulation};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let simacan = Emulation::start(Api::Simacan, Config::default()).await?;
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//!
//! // What the simacan preset does, configured with `simacan.base_url()`:
//! let login = http::Request::post(format!("{}/auth/password", simacan.base_url()))
//!     .header("content-type", "application/x-www-form-urlencoded")
//!     .body(Full::from("username=user%40example.com&password=correct+horse+battery+staple"))?;
//! assert_eq!(client.request(login).await?.status(), 200);
//!
//! let stats = simacan.stats();
//! assert_eq!((stats.logins, stats.violations), (1, 0));
//! # Ok(())
//! # }
//! ```
//!
//! # The emulated APIs
//!
//! Each [`Api`] emulates its API as the API's documentation describes it. The quirks it
//! reproduces (endpoints, encodings, where the tokens and their expiry are, which failures answer
//! which status) are written in the API's spec file in the repository's `specs/`, which the
//! matching preset of `tower-token-auth` is built from; this crate documents only what the
//! emulation adds: a protected resource, its strictness ([Violations](#violations)) and its
//! [Faults](#faults).
//!
//! | [`Api`] | the API, in a phrase | its quirks | protected resource |
//! |---|---|---|---|
//! | `UnionService` | JSON login and refresh; every failure a JSON 500 | `specs/union-service.toml` | `/union-service/resource` |
//! | `Simacan` | form login and refresh; tokens may die before `expires_in` | `specs/simacan.toml` | `/api/v1/resource` |
//! | `Oli` | Keycloak's OpenID Connect token endpoint, public client `apiclient` | `specs/oli.toml` | `/api/resource` |
//! | `Tradecloud` | `GET` login with HTTP Basic; tokens in response headers | `specs/tradecloud.toml` | `/v2/resource` |
//! | `Intergiro` | JSON API-key login; no refresh before expiry | `specs/intergiro.toml` | `/v3/resource` |
//! | `OAuth2` | `POST /oauth/token`: the `password`, `client_credentials` and `refresh_token` grants, `client_secret_basic` or `client_secret_post`, section 5.2 errors; no refresh token for `client_credentials` | RFC 6749 (`specs/oauth2-password.toml` is its `password` grant) | `/resource` |
//!
//! [`Emulation::base_url`] is the base URL each preset takes. Every refresh token is single-use
//! (rotation), except for `OAuth2` with [`Config::rotate_refresh_tokens`] off. Access and refresh
//! tokens are JWTs whose `exp` claim is the real expiry (rounded up to the second); the server
//! decides validity by lookup, with `Instant` deadlines, so expiry works in real time, sub-second
//! lifetimes included: a token ends at its exact lifetime, which may come before its JWT `exp`. Where an
//! API's documentation names no status for a failure, the emulation picks one: 400 for an
//! Intergiro refresh while the access token issued with it is still valid.
//!
//! # Violations
//!
//! Counted in [`Stats::violations`], each also answered with the error the API would give:
//! re-sending a used refresh token; a wrong method or content type; a missing required parameter,
//! header or `api-version`; repeated form parameters; credentials sent to a refresh endpoint; an
//! Intergiro refresh before the access token expired; any `Authorization` header on a Tradecloud
//! refresh; two OAuth2 client authentication methods at once, or none. Wrong credentials and
//! expired, revoked or unknown tokens are *rejections*, not violations. The [OAuth2
//! extensions](#oauth2-extensions) add theirs: a malformed, misaddressed, stale or replayed
//! client assertion or DPoP proof, a token sent with the wrong scheme, a token the client itself
//! revoked, a mutual TLS client without its certificate or with another (at the handshake: one
//! no registered CA issued), with a secret beside it, a certificate-bound token over a connection
//! without its certificate.
//!
//! # Faults
//!
//! Only the auth endpoints fail; the protected resource keeps answering. Three sources, in this
//! order of precedence for each login or refresh call (for OLI and OAuth2: each token endpoint
//! call):
//!
//! 1. A fixed [`Fault`] ([`Emulation::set_fault`]): every call gets it, until cleared.
//! 2. An outage window ([`Emulation::set_outage`]): calls arriving inside it get a 503 with an
//!    HTML page.
//! 3. Random faults ([`Emulation::set_fault_rate`]): each call fails with a probability, with a
//!    [`FaultKind`] drawn from a list, repeatably with [`Config::fault_seed`].
//!
//! Status and transport failures (5xx, 429, a dropped connection, the outage, a fixed fault)
//! answer *before* the call is processed: no token is issued or consumed, and only
//! [`Stats::faults`] and [`Stats::outage_calls`] move. [`FaultKind::Slow`] delays the call, then
//! processes it. The 2xx kinds ([`FaultKind::Malformed`], [`FaultKind::NoToken`],
//! [`FaultKind::CrLfToken`]) model an answer that broke on its way out: the call is processed (a
//! refresh token it presented is spent, and re-sending it is reuse), the tokens it issued are
//! revoked because nobody received them, and the client gets a 200 it cannot use. A call that is
//! rejected or a violation gets its real answer instead.
//!
//! ```
//! use std::time::Duration;
//! use tower_token_auth_emulation::{Api, Config, Emulation, FaultKind};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let config = Config { fault_seed: Some(7), ..Config::default() };
//! let intergiro = Emulation::start(Api::Intergiro, config).await?;
//! // One auth call in ten fails, in any of the ways a real auth server fails ...
//! intergiro.set_fault_rate(0.1, &FaultKind::all());
//! // ... and from 2 s to 5 s from now the auth server is down.
//! intergiro.set_outage(Duration::from_secs(2), Duration::from_secs(5));
//! # Ok(())
//! # }
//! ```
//!
//! Besides violations, [`Stats`] counts what shows a client riding out failures badly:
//! [`Stats::needless_logins`] (logging in while a delivered refresh token was still good) and
//! [`Stats::refresh_token_reuse`].
//!
//! A fixed fault may also be a redirect ([`Fault::Redirect`]) to a target that would hand out
//! tokens; [`Stats::redirects_followed`] counts the calls that reached it.
//!
//! # Watching and pacing the resource
//!
//! [`Emulation::resource_tokens`] lists the bearer tokens the protected resource was shown, and
//! [`Emulation::wait_for_resource_tokens`] waits for a new one.
//! [`Emulation::hold_resource_requests`] holds the next requests once their answer is decided,
//! [`Emulation::wait_for_held_requests`] waits until they are in, and
//! [`Emulation::release_held_requests`] answers them in arrival order: a test chooses when a
//! client sees each 401, e.g. after its refresh has completed.
//! [`Emulation::set_revocation_rate`] makes each answer to a live token revoke it at random,
//! as early revocation hits a busy client: every request in flight with the token then gets 401.
//!
//! # OAuth2 extensions
//!
//! [`Api::OAuth2`] can verify modern client authentication and sender-constrained tokens as a
//! strict authorization server and resource server would, each feature turned on in
//! [`Config::extensions`] ([`OAuthExtensions`]; all off by default, and then nothing changes):
//!
//! | field | what the server then does | counted in [`Stats`] |
//! |---|---|---|
//! | `client_auth` ([`ClientAuth`]) | takes only the registered method: `client_secret_basic`, `client_secret_post`, `client_secret_jwt` (HS256) or `private_key_jwt` (ES256, RS256, PS256, EdDSA); an assertion's `client_assertion_type`, `alg`, `kid`, signature, `iss` = `sub` = client id, `aud` (token endpoint or issuer), `exp` (≤ 60 s after `iat`), `iat` and a fresh `jti` are checked; 401 `invalid_client` | `client_assertions` |
//! | `dpop` ([`Dpop`]) | checks DPoP proofs (RFC 9449 4.3: `typ`, asymmetric `alg`, a public `jwk`, signature, `htm`, `htu`, `iat`, `jti`, `ath`, `nonce`) at the token endpoint (400 `invalid_dpop_proof`) and the resource (401 `WWW-Authenticate: DPoP error="invalid_dpop_proof"`); issues `token_type` `DPoP` access tokens with `cnf.jkt`, which the resource takes only as `Authorization: DPoP` with a proof by the same key; server nonces ([`DpopNonces`]) rotate with a grace period | `dpop_proofs`, `dpop_nonce_challenges` |
//! | `discovery` ([`Discovery`]) | serves `/.well-known/openid-configuration` and `/.well-known/oauth-authorization-server` | `discovery_fetches` |
//! | `revocation` | serves `POST /oauth/revoke` (RFC 7009); the resource refuses a revoked token, and sending it is a violation | `revocation_requests`, `revoked_token_uses` |
//! | `introspection` | serves `POST /oauth/introspect` (RFC 7662) for a test's own resource servers: `active`, `sub`, `token_type`, and for a bound token `cnf` (`x5t#S256`, `jkt`) and `aud` | `introspections` |
//! | `token_exchange` ([`TokenExchange`]) | takes the RFC 8693 grant for a live token of its own or a trusted external one, with `audience`, `resource`, `scope` and `requested_token_type`; answers `issued_token_type` | `token_exchanges` |
//! | `resource_indicators`, `resource_audience` | records `resource` and `audience` (RFC 8707) on `client_credentials` tokens as `aud`; the resource requires its audience | |
//! | `mtls` ([`Mtls`]) with `client_auth` `TlsClientAuth` or `SelfSignedTlsClientAuth` | a TLS listener on a second port ([`Emulation::mtls_base_url`], [`Emulation::mtls_resource_url`], its CA [`Emulation::server_ca_pem`]) serving every endpoint; RFC 8705 client authentication (`client_id` in the body and no secret, a certificate of the registered CA naming the registered SAN DNS or subject DN, or the registered self-signed certificate by its SHA-256 thumbprint); access tokens bound to the certificate (`cnf` `x5t#S256`), taken by the resource only over a connection presenting it; discovery lists the methods and `mtls_endpoint_aliases` | `client_certificates`, `certificate_bound_uses` |
//!
//! Each refusal names its reason in [`Emulation::violation_reasons`] when it is a violation; a
//! DPoP nonce challenge is not one. Faults hit the token endpoint as before; revocation and
//! discovery are never faulted.
//!
//! ```
//! use tower_token_auth_emulation::{
//!     Api, ClientAuth, Config, Dpop, DpopNonces, Emulation, OAuthExtensions, SigningAlg,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let client_key = serde_json::json!({
//!     "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
//! });
//! let config = Config {
//!     extensions: OAuthExtensions {
//!         client_auth: ClientAuth::PrivateKeyJwt { jwk: client_key, alg: SigningAlg::EdDSA },
//!         dpop: Some(Dpop { required: true, nonces: Some(DpopNonces::default()), ..Dpop::default() }),
//!         revocation: true,
//!         ..OAuthExtensions::default()
//!     },
//!     ..Config::default()
//! };
//! let emulation = Emulation::start(Api::OAuth2, config).await?;
//! // ... a client under test logs in and calls the resource ...
//! let stats = emulation.stats();
//! assert_eq!(stats.violations, 0, "{:?}", emulation.violation_reasons());
//! # Ok(())
//! # }
//! ```
//!
//! # Limitations
//!
//! - HTTP/1 only, plain TCP on `127.0.0.1`; TLS only on the [`Mtls`] listener, whose certificate
//!   comes from a CA made at start. A `tls_client_auth` client is registered by one SAN DNS name
//!   (RFC 8705 `tls_client_auth_san_dns`), not by subject DN, SAN URI, IP or e-mail.
//! - One user (or client) per emulation, taken from [`Config`].
//! - Signatures are opaque: the JWTs are not verifiable with any key.
//! - Bodies of auth requests are limited to 64 KiB (413 and a violation beyond), resource bodies
//!   to 64 MiB (413).
//! - Faults are decided once the request body has been read; a connection is never cut
//!   mid-request or mid-answer, and a dropped connection ([`FaultKind::Reset`]) is a clean close,
//!   not a TCP RST.
//! - Random draws are repeatable with a seed only as far as the calls arrive in the same order;
//!   concurrent clients make the order, and so the faults, vary.
//! - Whether a 2xx fault's tokens were "delivered" is the emulation's view: a client that dropped
//!   the connection before reading a normal answer still counts as having received its tokens.

// Nothing that arrives over the network may panic; tests may.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod assertion;
mod client_auth;
mod config;
mod discovery;
mod dn;
mod dpop;
mod exchange;
mod extensions;
mod faults;
mod intergiro;
mod introspect;
mod jose;
mod mtls;
mod oauth2;
mod oli;
mod protected;
mod resource;
mod revoke;
mod server;
mod simacan;
mod state;
mod stats;
mod strict;
mod tokens;
mod tradecloud;
mod union_service;
mod wire;

pub use self::config::{Api, Config, Fault};
pub use self::extensions::{
    ClientAuth, Discovery, Dpop, DpopNonces, Mtls, OAuthExtensions, SigningAlg, TokenExchange,
};
pub use self::faults::FaultKind;
pub use self::server::Emulation;
pub use self::stats::Stats;
