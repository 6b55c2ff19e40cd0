//! The HTTP/1 server under every emulation: accept loop, routing, body limits; faults are
//! decided and answered in [`super::faults`].

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::config::{Api, Config, Fault};
use super::faults::{self, FaultKind, Reset};
use super::mtls::{self, ClientCertificate, PeerCertificate};
use super::state::Shared;
use super::stats::{bump, Stats};
use super::strict::{DISCOVERY_PATHS, INTROSPECT_PATH, REVOKE_PATH};
use super::wire::{self, Resp};
use super::{
    discovery, intergiro, introspect, oauth2, oli, revoke, simacan, tradecloud, union_service,
};

/// Auth request bodies are a few hundred bytes; anything this large is abuse, not a login.
const AUTH_BODY_LIMIT: usize = 64 * 1024;
/// Resource bodies are counted and dropped, so a load test may send large ones.
const RESOURCE_BODY_LIMIT: u64 = 64 * 1024 * 1024;
/// Bounds how long a client may dribble a request head (slowloris) before the connection closes.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// Where a [`Fault::Redirect`] points: the auth endpoint's own path and query behind this.
pub(super) const REDIRECT_PREFIX: &str = "/redirected";

/// A running emulation: an HTTP/1 server on `127.0.0.1` speaking one [`Api`].
///
/// Dropping it stops the server: the accept loop and every open connection are aborted.
pub struct Emulation {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
    /// The mutual TLS listener's address and accept loop, with [`OAuthExtensions::mtls`](super::OAuthExtensions::mtls).
    tls: Option<(SocketAddr, JoinHandle<()>)>,
}

impl fmt::Debug for Emulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulation")
            .field("api", &self.shared.api)
            .field("addr", &self.addr)
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Emulation {
    /// Binds `127.0.0.1:0` and starts serving `api` with `config` on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// The error of binding the listener or reading its address; `InvalidInput` for extensions
    /// configured unusably (a `private_key_jwt` JWK that is no public key, a mutual TLS method
    /// without [`OAuthExtensions::mtls`](super::OAuthExtensions::mtls) or its CA, a PEM that holds
    /// no certificate).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with IO and time enabled (`#[tokio::main]` and `#[tokio::test]`
    /// enable both), as any tokio socket or timer would.
    pub async fn start(api: Api, config: Config) -> std::io::Result<Emulation> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let extensions = &config.extensions;
        let mtls = match &extensions.mtls {
            Some(settings) if api == Api::OAuth2 => {
                let tls = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
                let origin = format!("https://{}", tls.local_addr()?);
                let settings = mtls::listener(origin, settings, &extensions.client_auth)?;
                Some((tls, settings))
            }
            _ if api == Api::OAuth2 && extensions.client_auth.is_mtls() => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a mutual TLS client authentication method needs OAuthExtensions::mtls",
                ))
            }
            _ => None,
        };
        let (tls, settings) = match mtls {
            Some((tls, settings)) => {
                let acceptor = TlsAcceptor::from(settings.config.clone());
                (Some((tls, acceptor)), Some(settings))
            }
            None => (None, None),
        };
        let shared = Arc::new(Shared::new(api, config, format!("http://{addr}"), settings));
        if let Some(Err(error)) = shared.strict.as_ref().map(|s| &s.client_key) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the private_key_jwt client's jwk is not a usable public key: {error:?}"),
            ));
        }
        let tls = match tls {
            Some((listener, acceptor)) => {
                let tls_addr = listener.local_addr()?;
                let task = tokio::spawn(serve(listener, shared.clone(), Some(acceptor)));
                Some((tls_addr, task))
            }
            None => None,
        };
        let task = tokio::spawn(serve(listener, shared.clone(), None));
        Ok(Emulation {
            shared,
            addr,
            task,
            tls,
        })
    }

    /// With [`OAuthExtensions::mtls`](super::OAuthExtensions::mtls): the token endpoint on the
    /// TLS listener, `https://127.0.0.1:TLS_PORT/oauth/token`, which discovery publishes as the
    /// `token_endpoint` of its `mtls_endpoint_aliases`. The listener serves every endpoint the
    /// plain one does, at the same paths.
    pub fn mtls_base_url(&self) -> Option<String> {
        let (addr, _) = self.tls.as_ref()?;
        Some(format!("https://{addr}{}", oauth2::TOKEN_PATH))
    }

    /// With [`OAuthExtensions::mtls`](super::OAuthExtensions::mtls): the protected resource on
    /// the TLS listener, where a certificate-bound token must be presented (over a connection
    /// with its certificate).
    pub fn mtls_resource_url(&self) -> Option<String> {
        let (addr, _) = self.tls.as_ref()?;
        Some(format!("https://{addr}{}", resource_path(self.shared.api)))
    }

    /// With [`OAuthExtensions::mtls`](super::OAuthExtensions::mtls): the PEM certificate of the
    /// CA, made at start, that signed the TLS listener's certificate (for `127.0.0.1` and
    /// `localhost`): what a client must trust to reach it.
    pub fn server_ca_pem(&self) -> Option<&str> {
        let strict = self.shared.strict.as_ref()?;
        Some(strict.mtls.as_ref()?.ca_pem.as_str())
    }

    /// The API this emulation speaks.
    pub fn api(&self) -> Api {
        self.shared.api
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `{base}` the matching preset is configured with, as its API documentation writes it:
    ///
    /// | API | base URL |
    /// |---|---|
    /// | [`Api::UnionService`] | `http://127.0.0.1:PORT` |
    /// | [`Api::Simacan`] | `http://127.0.0.1:PORT/api/v1` |
    /// | [`Api::Oli`] | `http://127.0.0.1:PORT/auth/realms/api/protocol/openid-connect/token` |
    /// | [`Api::Tradecloud`] | `http://127.0.0.1:PORT/v2` |
    /// | [`Api::Intergiro`] | `http://127.0.0.1:PORT/v3` |
    /// | [`Api::OAuth2`] | `http://127.0.0.1:PORT/oauth/token` |
    pub fn base_url(&self) -> String {
        let base = match self.shared.api {
            Api::UnionService => "",
            Api::Simacan => "/api/v1",
            Api::Oli => oli::TOKEN_PATH,
            Api::Tradecloud => "/v2",
            Api::Intergiro => "/v3",
            Api::OAuth2 => oauth2::TOKEN_PATH,
        };
        format!("http://{}{base}", self.addr)
    }

    /// The URL of the protected resource: 200 for a live access token of this emulation, else
    /// 401 with `WWW-Authenticate: Bearer error="invalid_token"` (just `Bearer` when the request
    /// had no `Authorization` header). Any method; a body is read and discarded.
    ///
    /// With [`OAuthExtensions`](super::OAuthExtensions) on, a DPoP-bound token must come as
    /// `Authorization: DPoP` with a proof, and the challenges name the `DPoP` scheme where DPoP
    /// is on (see the [crate documentation](super#oauth2-extensions)).
    pub fn resource_url(&self) -> String {
        format!("http://{}{}", self.addr, resource_path(self.shared.api))
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Each reason a violation was counted for so far, with how often, in the order each was
    /// first seen: what [`Stats::violations`] adds up, for a test to name the one it expects.
    pub fn violation_reasons(&self) -> Vec<(&'static str, u64)> {
        self.shared.violation_reasons()
    }

    /// The server's own base URL, `http://127.0.0.1:PORT`: the issuer of its tokens and of its
    /// discovery documents (unless [`Discovery::issuer_override`](super::Discovery::issuer_override)
    /// says otherwise), and an audience a client assertion may name.
    ///
    /// With [`Api::OAuth2`] and its [`OAuthExtensions`](super::OAuthExtensions) on, the
    /// revocation endpoint is `{issuer}/oauth/revoke` and the discovery documents are
    /// `{issuer}/.well-known/openid-configuration` and
    /// `{issuer}/.well-known/oauth-authorization-server`.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the current DPoP nonce of each end that demands nonces now, as the configured
    /// rotation period would; the one replaced stays good for the grace period. Does nothing
    /// without DPoP nonces.
    pub fn rotate_dpop_nonces(&self) {
        let dpop = self.shared.strict.as_ref().and_then(|s| s.dpop.as_ref());
        if let Some(dpop) = dpop {
            for nonces in [&dpop.token_nonces, &dpop.resource_nonces]
                .into_iter()
                .flatten()
            {
                nonces.rotate();
            }
        }
    }

    /// Every access token issued so far dies now: the resource answers 401 for it (a token dying
    /// before its `exp`, as Simacan warns can happen).
    pub fn revoke_access_tokens(&self) {
        self.shared.tokens.revoke_access();
    }

    /// Makes each following answer of the protected resource to a live access token revoke that
    /// token with probability `rate` (clamped to `0.0..=1.0`; 0 or NaN turns it off), drawn
    /// independently per answer: the answer itself is the 200 it was going to be, and every
    /// request carrying the token from then on is answered 401, requests already in flight whose
    /// answer is not yet decided included. Replaces any earlier rate.
    ///
    /// Independent draws cluster as chance has it (two revocations a few requests apart, or
    /// several tokens in a row each dying soon after it was issued), which one revocation every
    /// N requests never does. The draws follow [`Config::fault_seed`] when it is set, in a stream
    /// of their own. Auth endpoints are never affected; [`revocations`](Emulation::revocations)
    /// counts the tokens revoked so.
    ///
    /// ```
    /// use tower_token_auth_emulation::{Api, Config, Emulation};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let emulation = Emulation::start(Api::Simacan, Config::default()).await?;
    /// // One answer in 200, at random, kills the token it served.
    /// emulation.set_revocation_rate(0.005);
    /// assert_eq!(emulation.revocations(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_revocation_rate(&self, rate: f64) {
        self.shared.revocations.set_rate(rate);
    }

    /// How many access tokens random revocation ([`set_revocation_rate`](Emulation::set_revocation_rate))
    /// has revoked so far.
    pub fn revocations(&self) -> u64 {
        self.shared.revocations.revoked()
    }

    /// Every refresh token issued so far dies now: refreshing with it is rejected as an expired
    /// token would be (not counted as a violation).
    pub fn revoke_refresh_tokens(&self) {
        self.shared.tokens.revoke_refresh();
    }

    /// Makes every following login and refresh answer with `fault`, until set to `None`.
    ///
    /// A fixed fault takes precedence over an outage window ([`Emulation::set_outage`]) and
    /// random faults ([`Emulation::set_fault_rate`]).
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.shared.faults.set_fixed(fault);
    }

    /// Makes each following login and refresh (for OLI and OAuth2: each token endpoint call)
    /// fail with probability `rate` (clamped to `0.0..=1.0`), with a kind drawn uniformly from
    /// `kinds`; see [`FaultKind`] for what each does. A `rate` of 0 (or NaN) or no `kinds`
    /// turns random faults off. Replaces any earlier rate.
    ///
    /// The draws follow [`Config::fault_seed`] when it is set. Calls answered by a fixed fault
    /// or the outage window draw nothing.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_token_auth_emulation::{Api, Config, Emulation, FaultKind};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let emulation = Emulation::start(Api::Oli, Config::default()).await?;
    /// // A fifth of the token calls fail, transiently.
    /// emulation.set_fault_rate(
    ///     0.2,
    ///     &[FaultKind::Unavailable, FaultKind::Reset, FaultKind::Slow(Duration::from_millis(500))],
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_fault_rate(&self, rate: f64, kinds: &[FaultKind]) {
        self.shared.faults.set_rate(rate, kinds);
    }

    /// An auth server outage: from `start` after now until `end` after now, every login and
    /// refresh is answered 503 with an HTML page, before any processing. The protected resource
    /// keeps working. Replaces any earlier window; a window with `end <= start` holds no call.
    ///
    /// Calls arriving inside the window count in [`Stats::outage_calls`] (and in
    /// [`Stats::faults`] when the outage answered them, which a fixed fault would pre-empt).
    pub fn set_outage(&self, start: Duration, end: Duration) {
        self.shared.faults.set_outage(start, end);
    }

    /// Ends the outage window now, or cancels it before it begins.
    pub fn clear_outage(&self) {
        self.shared.faults.clear_outage();
    }

    /// The configuration this emulation was started with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Holds the next `n` requests to the protected resource until
    /// [`release_held_requests`](Emulation::release_held_requests) lets them go, numbered in the
    /// order they arrive. Requests still held from an earlier call go free.
    ///
    /// A held request's answer is decided when it arrives (its token live or not, its counter in
    /// [`Stats`] bumped, its token recorded for [`resource_tokens`](Emulation::resource_tokens));
    /// only sending it waits. So a test can deliver the 401s for a revoked token while the
    /// client already holds a new one, in the order it chooses. Auth endpoints are never held.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use hyper_util::client::legacy::Client;
    /// use hyper_util::rt::TokioExecutor;
    /// use tower_token_auth_emulation::{Api, Config, Emulation};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let emulation = Emulation::start(Api::OAuth2, Config::default()).await?;
    /// let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    ///
    /// emulation.hold_resource_requests(2);
    /// let mut requests = Vec::new();
    /// for _ in 0..2 {
    ///     let request = http::Request::get(emulation.resource_url()).body(Full::default())?;
    ///     requests.push(tokio::spawn(client.request(request)));
    /// }
    /// emulation.wait_for_held_requests(2).await;
    /// assert_eq!(emulation.stats().resource_unauthorized, 2); // decided, not yet answered
    /// emulation.release_held_requests(2);
    /// for request in requests {
    ///     assert_eq!(request.await??.status(), 401);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn hold_resource_requests(&self, n: usize) {
        self.shared.hold.arm(n);
    }

    /// Waits until `k` of the requests that
    /// [`hold_resource_requests`](Emulation::hold_resource_requests) holds have arrived.
    ///
    /// Waits for ever if fewer arrive; bound it with [`tokio::time::timeout`].
    pub async fn wait_for_held_requests(&self, k: usize) {
        self.shared.hold.arrived(k).await;
    }

    /// Answers the first `k` held requests, in arrival order (counted from the first held
    /// request, so `release_held_requests(10)` then `(20)` lets go ten, then ten more). A `k`
    /// at or below what was released already changes nothing.
    pub fn release_held_requests(&self, k: usize) {
        self.shared.hold.release(k);
    }

    /// The distinct bearer tokens requests to the protected resource carried, each with how many
    /// requests carried it, in the order each was first seen. Live, dead and foreign tokens alike;
    /// requests without a bearer token are not recorded.
    ///
    /// Memory grows with the distinct tokens, not with the requests.
    pub fn resource_tokens(&self) -> Vec<(String, u64)> {
        self.shared.seen_tokens.snapshot()
    }

    /// Waits until requests to the protected resource have carried `n` distinct bearer tokens
    /// (see [`resource_tokens`](Emulation::resource_tokens)), e.g. until a client uses the token
    /// a refresh gave it.
    ///
    /// Waits for ever if fewer turn up; bound it with [`tokio::time::timeout`].
    pub async fn wait_for_resource_tokens(&self, n: usize) {
        self.shared.seen_tokens.distinct(n).await;
    }
}

impl Drop for Emulation {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.task.abort();
        if let Some((_, task)) = &self.tls {
            task.abort();
        }
    }
}

/// Accepts connections until aborted; with `tls`, each connection's handshake first, and its
/// client certificate (if any) goes in every request's extensions.
async fn serve(listener: TcpListener, shared: Arc<Shared>, tls: Option<TlsAcceptor>) {
    let mut connections = JoinSet::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!(%error, "emulation: accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                // Small request/response exchanges: without this, Nagle plus delayed ACKs add
                // tens of milliseconds to every keep-alive round trip.
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%error, "emulation: set_nodelay failed");
                }
                let (shared, http) = (shared.clone(), http.clone());
                match &tls {
                    None => {
                        connections.spawn(connection(http, stream, shared, None));
                    }
                    Some(acceptor) => {
                        let handshake = acceptor.accept(stream);
                        connections.spawn(async move {
                            let stream = match tokio::time::timeout(HEADER_READ_TIMEOUT, handshake).await {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(error)) => {
                                    if mtls::refused_certificate(&error) {
                                        shared.violation("client certificate refused at the TLS handshake");
                                    }
                                    tracing::debug!(%error, "emulation: TLS handshake failed");
                                    return;
                                }
                                Err(_) => return,
                            };
                            let certificate = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|chain| chain.first())
                                .map(|der| Arc::new(ClientCertificate::new(der.clone().into_owned())));
                            let peer = PeerCertificate(certificate);
                            connection(http, stream, shared, Some(peer)).await;
                        });
                    }
                }
            }
            // Reap finished connections so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves one connection; `peer` (TLS only) goes in every request's extensions.
async fn connection<I>(
    http: http1::Builder,
    io: I,
    shared: Arc<Shared>,
    peer: Option<PeerCertificate>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // An `Err` makes hyper close the connection without answering: the Reset fault.
    let service = service_fn(move |mut request: Request<Incoming>| {
        let shared = shared.clone();
        if let Some(peer) = &peer {
            request.extensions_mut().insert(peer.clone());
        }
        async move { handle(&shared, request).await }
    });
    if let Err(error) = http.serve_connection(TokioIo::new(io), service).await {
        tracing::debug!(%error, "emulation: connection ended with an error");
    }
}

#[derive(Clone, Copy)]
enum Route {
    Login,
    Refresh,
    /// OLI's and OAuth2's single token endpoint: login or refresh by `grant_type`.
    Token,
    Resource,
    /// The OAuth2 extensions' revocation endpoint.
    Revoke,
    /// The OAuth2 extensions' introspection endpoint.
    Introspect,
    /// The OAuth2 extensions' discovery documents.
    Discovery,
    NotFound,
}

fn resource_path(api: Api) -> &'static str {
    match api {
        Api::UnionService => union_service::RESOURCE_PATH,
        Api::Simacan => simacan::RESOURCE_PATH,
        Api::Oli => oli::RESOURCE_PATH,
        Api::Tradecloud => tradecloud::RESOURCE_PATH,
        Api::Intergiro => intergiro::RESOURCE_PATH,
        Api::OAuth2 => oauth2::RESOURCE_PATH,
    }
}

fn route(api: Api, path: &str) -> Route {
    if path == resource_path(api) {
        return Route::Resource;
    }
    // `/resource/{audience}` (`OAuthExtensions::audience_per_path`), checked by the resource.
    if api == Api::OAuth2
        && path
            .strip_prefix(oauth2::RESOURCE_PATH)
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/'))
    {
        return Route::Resource;
    }
    let (login, refresh) = match api {
        Api::UnionService => (union_service::LOGIN_PATH, union_service::REFRESH_PATH),
        Api::Simacan => (simacan::LOGIN_PATH, simacan::REFRESH_PATH),
        Api::Tradecloud => (tradecloud::LOGIN_PATH, tradecloud::REFRESH_PATH),
        Api::Intergiro => (intergiro::LOGIN_PATH, intergiro::REFRESH_PATH),
        Api::Oli | Api::OAuth2 => {
            let token = if api == Api::Oli {
                oli::TOKEN_PATH
            } else {
                oauth2::TOKEN_PATH
            };
            return if path == token {
                Route::Token
            } else {
                Route::NotFound
            };
        }
    };
    if path == login {
        Route::Login
    } else if path == refresh {
        Route::Refresh
    } else {
        Route::NotFound
    }
}

/// The endpoints the OAuth2 extensions add, where they are on.
fn extension_route(shared: &Shared, path: &str) -> Route {
    let Some(strict) = &shared.strict else {
        return Route::NotFound;
    };
    if strict.config.revocation && path == REVOKE_PATH {
        Route::Revoke
    } else if strict.config.introspection && path == INTROSPECT_PATH {
        Route::Introspect
    } else if strict.config.discovery.is_some() && DISCOVERY_PATHS.contains(&path) {
        Route::Discovery
    } else {
        Route::NotFound
    }
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Result<Resp, Reset> {
    let (parts, body) = request.into_parts();
    // The target of a `Fault::Redirect`: the auth endpoint behind the prefix, never faulted.
    let (path, redirected) = match parts.uri.path().strip_prefix(REDIRECT_PREFIX) {
        Some(rest) if rest.starts_with('/') => (rest, true),
        _ => (parts.uri.path(), false),
    };
    let route = match route(shared.api, path) {
        Route::Resource if redirected => Route::NotFound,
        Route::NotFound if !redirected => extension_route(shared, path),
        route => route,
    };
    Ok(match route {
        Route::NotFound => wire::text(StatusCode::NOT_FOUND, "Not Found"),
        Route::Resource => match drain(body).await {
            Ok(length) => {
                let answer = shared.resource(&parts, length);
                // Revoked once its answer is decided: the 200 stands, later requests get 401.
                if answer.status() == StatusCode::OK && shared.revocations.draw() {
                    if let Some((_, token)) = wire::access_token(&parts.headers) {
                        shared.tokens.forget(token, None);
                    }
                }
                shared.hold.pass().await;
                answer
            }
            Err(answer) => answer,
        },
        Route::Discovery => match shared
            .strict
            .as_ref()
            .and_then(|s| Some((s, s.config.discovery.as_ref()?)))
        {
            Some((strict, settings)) => {
                discovery::document(shared, strict, settings, &parts.method)
            }
            None => wire::text(StatusCode::NOT_FOUND, "Not Found"),
        },
        Route::Login | Route::Refresh | Route::Token | Route::Revoke | Route::Introspect => {
            let body = match Limited::new(body, AUTH_BODY_LIMIT).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                    shared.violation("auth request body over the size limit");
                    return Ok(wire::text(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "Payload Too Large",
                    ));
                }
                // The client went away or sent a broken body; nobody will read the answer.
                Err(_) => return Ok(wire::text(StatusCode::BAD_REQUEST, "Bad Request")),
            };
            // Only the token endpoint meets injected faults.
            if matches!(route, Route::Revoke) {
                return Ok(revoke::revoke(shared, &parts, &body));
            }
            if matches!(route, Route::Introspect) {
                return Ok(introspect::introspect(shared, &parts, &body));
            }
            let process = || auth(shared, route, &parts, &body);
            if redirected {
                bump(&shared.counters.redirects_followed);
                return Ok(process());
            }
            match shared.faults.draw(&shared.counters) {
                Some(injected) => {
                    return faults::answer(shared, injected, &parts.uri, process).await
                }
                None => process(),
            }
        }
    })
}

fn auth(shared: &Shared, route: Route, parts: &Parts, body: &Bytes) -> Resp {
    match (shared.api, route) {
        (Api::UnionService, Route::Login) => union_service::login(shared, parts, body),
        (Api::UnionService, Route::Refresh) => union_service::refresh(shared, parts, body),
        (Api::Simacan, Route::Login) => simacan::login(shared, parts, body),
        (Api::Simacan, Route::Refresh) => simacan::refresh(shared, parts, body),
        (Api::Tradecloud, Route::Login) => tradecloud::login(shared, parts, body),
        (Api::Tradecloud, Route::Refresh) => tradecloud::refresh(shared, parts, body),
        (Api::Intergiro, Route::Login) => intergiro::login(shared, parts, body),
        (Api::Intergiro, Route::Refresh) => intergiro::refresh(shared, parts, body),
        (Api::Oli, Route::Token) => oli::token(shared, parts, body),
        (Api::OAuth2, Route::Token) => oauth2::token(shared, parts, body),
        // `route` never pairs an API with another API's endpoint kind.
        _ => wire::text(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// Reads and discards a resource request body, returning its length.
async fn drain(mut body: Incoming) -> Result<u64, Resp> {
    let mut length = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(wire::text(StatusCode::BAD_REQUEST, "Bad Request"));
        };
        if let Some(data) = frame.data_ref() {
            length = length.saturating_add(data.len() as u64);
            if length > RESOURCE_BODY_LIMIT {
                return Err(wire::text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Payload Too Large",
                ));
            }
        }
    }
    Ok(length)
}
