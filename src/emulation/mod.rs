//! Local, faithful emulations of the five seed APIs and of a generic OAuth2 token endpoint, to
//! test integrations against (feature `test-util`).
//!
//! Each [`Emulation`] is a real HTTP/1 server on `127.0.0.1` with the API's login and refresh
//! endpoints, quirks included, and a protected resource that accepts only live access tokens it
//! issued. It counts what a client did ([`Stats`]), above all its protocol **violations**: a
//! refresh token sent twice, a premature refresh, the wrong encoding, credentials sent where they
//! do not belong. A correct client produces none, however the tokens expire, get revoked
//! ([`Emulation::revoke_access_tokens`]) or the auth server fails ([`Emulation::set_fault`]).
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower_token_auth::emulation::{Api, Config, Emulation};
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
//! | [`Api`] | login | refresh | tokens | resource |
//! |---|---|---|---|---|
//! | `UnionService` | `POST /union-service/auth/token?api-version=1.0`, JSON `username`, `password` | `POST /union-service/auth/refresh-token?api-version=1.0`, JSON `refreshToken` | Keycloak-style JSON, `token_type: "Bearer"` | `/union-service/resource` |
//! | `Simacan` | `POST /api/v1/auth/password`, form `username`, `password` | `POST /api/v1/auth/refresh`, form `refresh_token` | JSON with `id_token`, `token_type: "bearer"` | `/api/v1/resource` |
//! | `Oli` | `POST /auth/realms/api/protocol/openid-connect/token`, form `grant_type=password`, `client_id`, `username`, `password` | same URL, form `grant_type=refresh_token`, `client_id`, `refresh_token` | Keycloak JSON, `token_type: "bearer"` | `/api/resource` |
//! | `Tradecloud` | `GET /v2/authentication/login`, `Authorization: Basic` | `GET /v2/authentication/refresh`, header `Refresh-Token` | headers `Set-Authorization`, `Set-Refresh-Token`; no expiry field | `/v2/resource` |
//! | `Intergiro` | `POST /v3/auth/login`, JSON `api_key` | `POST /v3/auth/refresh`, JSON `refresh_token` | JSON `access_token`, `refresh_token` only | `/v3/resource` |
//! | `OAuth2` | `POST /oauth/token`, form, `grant_type=password` or `client_credentials` | same URL, `grant_type=refresh_token` | RFC 6749 JSON; no refresh token for `client_credentials` | `/resource` |
//!
//! Every refresh token is single-use (rotation), except for `OAuth2` with
//! [`Config::rotate_refresh_tokens`] off. Access and refresh tokens are JWTs whose `exp` claim is
//! the real expiry (rounded up to the second); the server decides validity by lookup, with
//! `Instant` deadlines, so expiry works in real time, sub-second lifetimes included.
//!
//! Answers to failures follow each document: union-service answers 500 for everything it
//! rejects (400 for a missing `api-version`); Simacan and Intergiro 401 for a dead refresh token;
//! OLI Keycloak's `invalid_grant` 400 `Token is not active`; Tradecloud 401 `Not authenticated`,
//! and 200 *without* tokens for a refresh that carries a valid `Authorization` header; Intergiro
//! 400 for a refresh while the access token is still valid; OAuth2 the RFC 6749 5.2 errors.
//!
//! # Violations
//!
//! Counted in [`Stats::violations`], each also answered with the error the API would give:
//! re-sending a used refresh token; a wrong method or content type; a missing required parameter,
//! header or `api-version`; repeated form parameters; credentials sent to a refresh endpoint; an
//! Intergiro refresh before the access token expired; any `Authorization` header on a Tradecloud
//! refresh; two OAuth2 client authentication methods at once, or none. Wrong credentials and
//! expired, revoked or unknown tokens are *rejections*, not violations.
//!
//! # Limitations
//!
//! - HTTP/1 only, plain TCP on `127.0.0.1`; no TLS.
//! - One user (or client) per emulation, taken from [`Config`].
//! - Signatures are opaque: the JWTs are not verifiable with any key.
//! - Bodies of auth requests are limited to 64 KiB (413 and a violation beyond), resource bodies
//!   to 64 MiB (413).

mod config;
mod intergiro;
mod oauth2;
mod oli;
mod server;
mod simacan;
mod state;
mod stats;
mod tokens;
mod tradecloud;
mod union_service;
mod wire;

pub use self::config::{Api, Config, Fault};
pub use self::server::Emulation;
pub use self::stats::Stats;
