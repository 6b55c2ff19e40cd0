//! A [`tower`] layer for HTTP clients that makes every request carry a valid bearer token.
//!
//! Wrap any HTTP client service (a hyper-util client, a service inside an axum app, any
//! `ServiceBuilder` stack) with [`AuthLayer`]. The layer logs in with what the API wants, keeps the
//! token in a lock-free slot, renews it ahead of expiry (or only after it), rotates refresh tokens,
//! backs off instead of hammering credentials, rides out a failing auth server, and replays a
//! request when the upstream answers 401.
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_token_auth::AuthLayer;
//! use tower_token_auth::provider::oauth2;
//!
//! # async fn run() -> Result<(), tower::BoxError> {
//! let provider = oauth2::Builder::client_credentials("http://idp.internal/oauth/token", "my-app", "s3cret")
//!     .scope("orders:read")
//!     .build()?;
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let api = ServiceBuilder::new()
//!     // Auth calls go through the bare client; API calls through the layer.
//!     .layer(AuthLayer::new(provider, client.clone()))
//!     .service(client);
//!
//! let request = http::Request::get("http://api.internal/orders").body(Full::default())?;
//! let response = api.oneshot(request).await?;
//! println!("{}", response.status());
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! - **Hot path.** While the token is fresh, a request costs one atomic pointer load (each service
//!   clone caches the slot), a coarse clock read and an integer comparison, a header insert, and
//!   a reference count on the token (so that a 401 can mark it dead); the response future is an
//!   unboxed state machine. With replay on (the default) the request is also copied, which is
//!   what a replay needs. A request waiting for a token holds a small inline entry on the flight,
//!   no timer and no task of its own. Figures are in `BENCHMARKS.md`.
//! - **Time.** Every expiry, refresh and backoff decision reads the layer's [`Clock`]: a coarse
//!   monotonic clock by default, or tokio's ([`Clock::tokio`]), which `tokio::time::pause` stops
//!   and `advance` moves, for tests of code that uses the layer. JWT `exp` claims and
//!   `Retry-After` dates are read against the same clock's wall time.
//! - **Single flight.** All clones of one layer share one slot and one token manager. However many
//!   requests need a token at once, exactly one login or refresh is in flight; it runs as its own
//!   task, so dropping the request that started it cancels nothing, and its outcome (a token or one
//!   shared [`AuthError`]) reaches every waiter.
//! - **Refresh timing.** [`RefreshTiming::Ahead`] refreshes in the background when the token
//!   enters its margin, while requests keep using it; [`RefreshTiming::AfterExpiry`] never sends a
//!   refresh while the token is valid. Expiry comes from `expires_in`, else the JWT `exp` claim
//!   (read, not verified), else [`TokenPolicy::default_lifetime`].
//! - **Rotation and fallback.** A refresh token is used once; the new pair replaces it atomically.
//!   A rejected refresh, or one answered 2xx without a usable token, falls back to login within
//!   the same attempt.
//! - **Failures.** *Transient* ones (5xx, 408, 429, connection failures, timeouts, unusable
//!   answers) are retried inside the flight, at most 1 s apart with full jitter and `Retry-After`
//!   honoured up to a cap, while requests keep waiting (up to a bound, 30 s by default, after
//!   which they fail with [`ErrorKind::Unavailable`] and the last cause); once the auth server
//!   answers again, they are served within a second. *Rejected* credentials wait a longer,
//!   jittered backoff during which requests fail fast with the rejection, so credentials are
//!   never re-sent in a loop. *Ambiguous* answers ([`Failure::Ambiguous`]: an API whose one
//!   error status answers a wrong password and a crash alike) are retried like transient ones
//!   and become a rejection only when they repeat (3 in a row by default); so do unusable 2xx
//!   answers to a login (5 in a row while requests wait). A flight aborted by its runtime's
//!   shutdown is no verdict: the next request starts another. A failed refresh ahead is
//!   retried while the token lasts, and requests keep using the token. See [`AuthLayerBuilder`]
//!   for the settings.
//! - **Replay.** A response that the policy's [`Classifier`] says rejects the token (a 401 by
//!   default, unless its `WWW-Authenticate` challenge names a permission problem; gRPC
//!   `UNAUTHENTICATED` too, which the gRPC adapter presents as a 401) marks the token it was sent with as dead (if the slot still holds it), and the request is replayed
//!   with a new token, by OkHttp's rule: a 401 on the token the slot holds costs one of
//!   [`TokenPolicy::max_replays`] (1 by default) and triggers one refresh; a 401 on a token
//!   already superseded or already known dead is replayed with the current one free of charge; no
//!   request is sent more than [`TokenPolicy::max_sends`] (3) times, or
//!   [`TokenPolicy::max_sends_revoked`] (8, within the wait bound) when every token it was
//!   rejected with had served an earlier request: revocation, not a token the upstream refuses.
//!   The final 401 marks its token dead too and goes back to the caller as a response, as does a
//!   401 for which no new token could be had.
//!
//! Policy (when to refresh, which header, which answers mean a dead token, how often to replay)
//! is changed in one place: [`AuthLayerBuilder::with_policy`].
//!
//! # The two bounds
//!
//! Two bounds trip most first programs. The compiler names both, with the fix.
//!
//! **The auth transport takes `http::Request<Full<Bytes>>`.** The layer sends its own login and
//! refresh calls, requests with a `Full<Bytes>` body, through the client given to
//! [`AuthLayer::new`] (or [`AuthLayerBuilder::build`]): any [`AuthTransport`]. Pass a clone of the
//! client being wrapped when that one is built for `Full<Bytes>`, as the example at the top does;
//! else a second client built for it (clients are cheap):
//! `Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>()`, or
//! `.build::<_, Full<Bytes>>(https_connector)` for `https://` URLs. For reqwest, use
//! `reqwest::ReqwestTransport` (feature `reqwest`). A client of another body type fails to
//! compile:
//!
//! ```text
//! error[E0277]: `Client<HttpConnector, Body>` cannot carry the layer's auth calls
//! ```
//!
//! **Replayed request bodies must be copyable.** A request replayed after its token was rejected
//! is a copy made before the first send, by the layer's [`CloneRequest`] strategy. The default,
//! [`CloneBody`], copies requests whose body is `Clone` (`Full<Bytes>`, `String`, `Bytes`, …). A
//! streaming body (`axum::body::Body`, `hyper::body::Incoming`) fails to compile:
//!
//! ```text
//! error[E0277]: `CloneBody` cannot copy a `Request<axum::body::Body>` for a replay after a 401
//! ```
//!
//! The ways out: send such requests once, never replayed, with [`AuthLayer::without_replay`]
//! (the [`NoReplay`] strategy; a 401 then goes back to the caller as it is); buffer the body
//! into `Full<Bytes>` in front of the layer, with a size limit, so that the default applies (the
//! example on [`CloneRequest`]); or copy requests some other way with [`AuthLayer::replay_with`].
//! A method call such as `svc.oneshot(request)` hides that message behind "the method `oneshot`
//! exists … but its trait bounds were not satisfied"; `tower::ServiceExt::oneshot(svc, request)`
//! shows it.
//!
//! # Other clients
//!
//! - [`TokenHandle`] ([`AuthLayer::handle`]): the layer's token for any other client, sharing its
//!   single flight: [`token`](TokenHandle::token), [`current`](TokenHandle::current),
//!   [`invalidate`](TokenHandle::invalidate), [`force_refresh`](TokenHandle::force_refresh),
//!   [`subscribe`](TokenHandle::subscribe).
//! - Feature `reqwest`: the `reqwest` module's `AuthMiddleware`, a `reqwest-middleware`
//!   middleware on a handle, and `ReqwestTransport`, for auth calls through reqwest.
//! - Feature `tonic` (Rust 1.88, as tonic needs): the `grpc` module's layer over tonic channels.
//!
//! How the token is sent ([`TokenHeader`]) and which answers reject it ([`Classifier`]) are part
//! of the [`TokenPolicy`].
//!
//! # Sessions beyond the process
//!
//! With a [`store::TokenStore`] ([`AuthLayerBuilder::store`]), the session outlives the process
//! and is shared by every process using the same store and key: a restart within the token's
//! lifetime logs in zero times, and a renewal costs the fleet one auth call, the others adopting
//! the stored session (a lease and a re-read decide who renews). [`store::MemoryStore`] shares a
//! session between layers of one process, [`store::FileStore`] between processes on one host.
//! Stored tokens are secrets at rest, kept in plain text (see [`store`]).
//!
//! # Providers
//!
//! Everything that describes an API lives in [`provider`]; what a program names to build, run
//! and diagnose the layer is at the crate root. A [`Provider`] says how an API logs in and
//! refreshes, where its tokens are, and its policy.
//! The [`Preset`]s cover union-service, Simacan, OLI Systems, Tradecloud and Intergiro;
//! [`oauth2`] builds RFC 6749 `password` and `client_credentials` providers;
//! [`provider::HttpProvider`] reads others from data, a TOML or JSON spec file
//! ([`provider::ProviderSpec`], the form the presets themselves take); and the trait can be
//! implemented in code for what no spec describes.
//!
//! # Errors
//!
//! The service's error type is [`BoxError`](tower::BoxError): the inner service's errors pass through, and a failure
//! to obtain a token is an [`AuthError`], recovered with `err.downcast_ref::<AuthError>()`. No
//! error message, `Debug` output or tracing event contains a credential or a token; secrets live in
//! [`Secret`] and header values are marked sensitive.
//!
#![doc = include_str!("events.md")]
//!
//! # Testing against the APIs
//!
//! The repository's `tower-token-auth-emulation` crate (a workspace member, as `tower-test` is in
//! tower's) runs local emulations of the five APIs the presets serve and of a generic OAuth2
//! server, with fault injection; the tests, the benchmarks and the demo drive the layer against
//! them.
//!
//! # Limitations
//!
//! - Auth calls run as tokio tasks: the layer needs a tokio runtime (without one, requests that
//!   need a token fail with [`ErrorKind::Runtime`]).
//! - Only requests whose body can be copied are replayed; see [the two bounds](#the-two-bounds)
//!   for streaming bodies.
//! - Without a store, the token lives in the layer's memory, one session per layer, and is lost
//!   on restart; see [`store`].
//! - An upstream that answers 401 whatever the token (a missing permission, say) costs up to two
//!   refreshes per such request (one charged, one free when another request already replaced the
//!   token): the layer cannot tell a dead token from a refused one. It tells them apart only by
//!   what other requests met: when the same tokens serve other requests, concurrent requests to
//!   such an endpoint look like a revocation each, and a burst of them is replayed up to
//!   [`TokenPolicy::max_sends_revoked`] times, one refresh per round.
//! - A refresh that times out may still have reached the server; its refresh token is kept and
//!   sent again on the next attempt. A strictly single-use server then rejects it, and the layer
//!   logs in within the same attempt.
//! - A 401 cascade longer than [`TokenPolicy::max_sends_revoked`] (tokens revoked again and
//!   again while one request is being replayed) reaches the caller as a 401, as does one longer
//!   than [`TokenPolicy::max_sends`] that met a token no request had been served with.
//! - Each service clone caches the current token; an idle clone keeps the previous one in memory
//!   until its next request.
//! - The auth transport must not be the authenticated stack itself, and must not follow redirects.
//!
//! [`Classifier`]: provider::Classifier
//! [`Failure::Ambiguous`]: provider::Failure::Ambiguous
//! [`Provider`]: provider::Provider
//! [`RefreshTiming::AfterExpiry`]: provider::RefreshTiming::AfterExpiry
//! [`RefreshTiming::Ahead`]: provider::RefreshTiming::Ahead
//! [`TokenHeader`]: provider::TokenHeader
//! [`TokenPolicy`]: provider::TokenPolicy
//! [`TokenPolicy::default_lifetime`]: provider::TokenPolicy::default_lifetime
//! [`TokenPolicy::max_replays`]: provider::TokenPolicy::max_replays
//! [`TokenPolicy::max_sends`]: provider::TokenPolicy::max_sends
//! [`TokenPolicy::max_sends_revoked`]: provider::TokenPolicy::max_sends_revoked
//! [`oauth2`]: provider::oauth2
//! [`Preset`]: provider::Preset
// Nothing that arrives over the network may panic; tests may.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod apply;
mod clock;
mod dpop;
mod error;
mod future;
#[cfg(feature = "tonic")]
pub mod grpc;
mod handle;
#[cfg(feature = "jose")]
pub mod jose;
mod keyed;
mod layer;
mod manager;
mod metrics;
pub mod provider;
mod replay;
#[cfg(feature = "reqwest")]
pub mod reqwest;
mod secret;
mod service;
mod slot;
pub mod store;
pub mod token;

// One public path per item. At the root: what a program names to build, run and diagnose the
// layer. Everything that describes an API (the `Provider` trait, its policy, presets, OAuth2,
// providers built from data) lives in `provider`; token sets and JWT expiry in `token`.
pub use crate::clock::Clock;
pub use crate::error::{AuthCall, AuthError, ErrorKind};
pub use crate::future::ResponseFuture;
pub use crate::handle::TokenHandle;
pub use crate::keyed::{KeyedAuthLayer, KeyedAuthLayerBuilder, KeyedAuthService};
pub use crate::layer::{AuthLayer, AuthLayerBuilder};
pub use crate::manager::AuthTransport;
pub use crate::metrics::MetricsSnapshot;
pub use crate::replay::{CloneBody, CloneRequest, NoReplay};
pub use crate::secret::Secret;
pub use crate::service::AuthService;
pub use crate::token::view::Token;

#[doc = include_str!("../README.md")]
#[cfg(all(doctest, feature = "reqwest", feature = "tonic"))]
pub struct ReadmeDoctests;
