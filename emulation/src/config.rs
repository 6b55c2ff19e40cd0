//! What an emulation emulates, with which credentials and lifetimes, and how it misbehaves.

use std::fmt;
use std::time::Duration;

use super::extensions::OAuthExtensions;

/// Which API an [`Emulation`](super::Emulation) speaks.
///
/// Each variant follows its API's published documentation down to the quirks, which the API's
/// spec file in the repository's `specs/` writes down; see the [crate documentation](super) for
/// what the emulation adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// union-service: JSON login and refresh, every failure a JSON 500; its quirks are in
    /// `specs/union-service.toml`.
    UnionService,
    /// Simacan: form login and refresh; its quirks are in `specs/simacan.toml`.
    Simacan,
    /// OLI Systems: a Keycloak OpenID Connect token endpoint; its quirks are in `specs/oli.toml`.
    Oli,
    /// Tradecloud: `GET` login with HTTP Basic, tokens in response headers; its quirks are in
    /// `specs/tradecloud.toml`.
    Tradecloud,
    /// Intergiro: JSON API-key login, no refresh before expiry; its quirks are in
    /// `specs/intergiro.toml`.
    Intergiro,
    /// A generic RFC 6749 token endpoint: `password`, `client_credentials` and `refresh_token`
    /// grants with `client_secret_basic` or `client_secret_post` client authentication; with
    /// [`Config::extensions`], client assertions, DPoP, discovery, revocation, token exchange and
    /// resource indicators too.
    OAuth2,
}

impl Api {
    /// Every API, the five named ones first.
    pub const ALL: [Api; 6] = [
        Api::UnionService,
        Api::Simacan,
        Api::Oli,
        Api::Tradecloud,
        Api::Intergiro,
        Api::OAuth2,
    ];

    /// A short stable name, for logs and the resource's answer.
    pub(super) fn name(self) -> &'static str {
        match self {
            Api::UnionService => "union-service",
            Api::Simacan => "simacan",
            Api::Oli => "oli",
            Api::Tradecloud => "tradecloud",
            Api::Intergiro => "intergiro",
            Api::OAuth2 => "oauth2",
        }
    }
}

/// Credentials and token lifetimes of an emulation.
///
/// Each API uses the fields its protocol knows about: `api_key` only Intergiro, `client_secret`
/// only [`Api::OAuth2`] (OLI's `apiclient` is a public client and sends no secret), and
/// `rotate_refresh_tokens` only [`Api::OAuth2`]; the five named APIs always rotate.
///
/// `Debug` prints `[redacted]` for `password`, `api_key` and `client_secret`.
#[derive(Clone)]
pub struct Config {
    /// How long an access token lives, from the moment it is issued. Default 300 s.
    ///
    /// Sub-second lifetimes work: the server tracks expiry with [`std::time::Instant`]. The JWT
    /// `exp` claim is whole seconds rounded up, so a client never believes a token died before the
    /// server does; `expires_in` is exact (fractional when the lifetime is).
    pub access_lifetime: Duration,
    /// How long a refresh token lives, from the moment it is issued. Default 1800 s.
    pub refresh_lifetime: Duration,
    /// The user name (Tradecloud: the e-mail address). Default `user@example.com`.
    pub username: String,
    /// The password. Default `correct horse battery staple`.
    pub password: String,
    /// Intergiro's API key. Default `c5f90f4b-9d69-416a-8611-8a8c8d605c36` (the documented example).
    pub api_key: String,
    /// The OAuth2 / OIDC client id. Default `apiclient`.
    pub client_id: String,
    /// The OAuth2 client secret ([`Api::OAuth2`] only). Default `client-secret`.
    pub client_secret: String,
    /// [`Api::OAuth2`] only: whether a refresh issues a new refresh token and retires the old one.
    /// With `false` the refresh response has no `refresh_token` and the old one stays valid.
    /// Default `true`.
    pub rotate_refresh_tokens: bool,
    /// Seeds the draws of random faults ([`Emulation::set_fault_rate`](super::Emulation::set_fault_rate)),
    /// so that the same sequence of auth calls meets the same faults on every run. Concurrent
    /// calls draw in the order they arrive, which only a sequential client controls. Default
    /// `None`: a random seed.
    pub fault_seed: Option<u64>,
    /// [`Api::OAuth2`] only: the modern OAuth2 features to verify (client assertions, DPoP,
    /// discovery, revocation, token exchange, resource indicators). Default: none, and the
    /// emulation is the plain RFC 6749 server.
    pub extensions: OAuthExtensions,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            access_lifetime: Duration::from_secs(300),
            refresh_lifetime: Duration::from_secs(1800),
            username: "user@example.com".to_owned(),
            password: "correct horse battery staple".to_owned(),
            api_key: "c5f90f4b-9d69-416a-8611-8a8c8d605c36".to_owned(),
            client_id: "apiclient".to_owned(),
            client_secret: "client-secret".to_owned(),
            rotate_refresh_tokens: true,
            fault_seed: None,
            extensions: OAuthExtensions::default(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const REDACTED: &str = "[redacted]";
        f.debug_struct("Config")
            .field("access_lifetime", &self.access_lifetime)
            .field("refresh_lifetime", &self.refresh_lifetime)
            .field("username", &self.username)
            .field("password", &format_args!("{REDACTED}"))
            .field("api_key", &format_args!("{REDACTED}"))
            .field("client_id", &self.client_id)
            .field("client_secret", &format_args!("{REDACTED}"))
            .field("rotate_refresh_tokens", &self.rotate_refresh_tokens)
            .field("fault_seed", &self.fault_seed)
            .field("extensions", &self.extensions)
            .finish()
    }
}

/// A failure the auth endpoints answer with instead of doing their job.
///
/// Set with [`Emulation::set_fault`](super::Emulation::set_fault); it applies to every login and
/// refresh call (for OLI and OAuth2: every call to the token endpoint) until cleared, ahead of an
/// outage window or random faults. The protected resource is never affected, and of the counters
/// only [`Stats::faults`](super::Stats::faults) (and `outage_calls` inside an outage window)
/// moves for a faulted call. For faults drawn at random, see [`FaultKind`](super::FaultKind).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this status code, body and `Content-Type`.
    ///
    /// A code outside `200..=599` is answered as 500, an invalid content type is left out.
    Status(u16, &'static str, &'static str),
    /// Never answer; the connection stays open until the client gives up or the emulation is
    /// dropped.
    Hang,
    /// Answer 200 with this body (`Content-Type: application/json`), e.g. malformed JSON or a
    /// JSON object without `access_token`.
    Body(Vec<u8>),
    /// Answer 200 with an empty body and this one response header, e.g. a `Set-Authorization`
    /// that is not a JWT, for Tradecloud.
    ///
    /// A name or value that HTTP cannot carry (control characters) is answered as 500.
    Header(&'static str, Vec<u8>),
    /// Answer with this redirect status and a `Location` naming the same endpoint under
    /// `/redirected`, path and query kept: for union-service's login
    /// `/redirected/union-service/auth/token?api-version=1.0`.
    ///
    /// The target would hand out tokens: it does what the endpoint does, without faults, and
    /// counts each call in [`Stats::redirects_followed`](super::Stats::redirects_followed), so a
    /// test can prove a client never sends its credentials or refresh token where a redirect
    /// points. A code outside `300..=399` is answered as 500.
    Redirect(u16),
}
