//! Drives concurrent load through `AuthLayer` over a real hyper client and reports what the layer
//! did: logins, refreshes, replays, latency.
//!
//! Embedded mode (no arguments) starts local emulations of the five APIs with short token
//! lifetimes and runs them all at once:
//!
//! ```text
//! cargo run --release --example demo
//! ```
//!
//! Embedded mode can make the auth servers fail: `--faults 0.2` fails a fifth of the login and
//! refresh calls (every kind of [`FaultKind`]), `--outage 3:8` takes every auth server down from
//! 3 s to 8 s into the run (the protected resources stay up). The report then shows availability,
//! how long after the outage requests succeeded again, and how many auth faults were injected:
//!
//! ```text
//! cargo run --release --example demo -- --faults 0.1 --outage 3:8
//! ```
//!
//! `--store` keeps the session beyond the process: processes given the same store and key share
//! one session (one login for all of them; one auth call per renewal), and a restart within the
//! token's lifetime logs in zero times. `memory` is the default, `file:PATH` a directory of
//! session files, `redis://HOST:PORT[/DB]` a Redis server (build with `--features redis`):
//!
//! ```text
//! cargo run --release --features redis --example demo -- --provider tradecloud \
//!     --auth-url http://127.0.0.1:8080 --api-url http://127.0.0.1:8080/resource \
//!     --username U --password P --store redis://127.0.0.1:6379/0 --json
//! ```
//!
//! `--metrics-addr 127.0.0.1:9090` (build with `--features metrics`) serves the layers' metrics
//! in Prometheus text format at `/metrics` during the run, each layer labelled with its
//! provider; `--metrics-hold` keeps serving after the report until standard input closes.
//!
//! External mode runs against any server:
//!
//! ```text
//! cargo run --release --example demo -- --provider simacan \
//!     --auth-url https://auth-service-stg.services.simacan.com/api/v1 \
//!     --api-url https://example.services.simacan.com/resource \
//!     --username U --password P --duration 30 --json
//! ```
//!
//! With a provider spec file instead of a preset, to probe a new API (`--auth-url`, optional,
//! overrides the spec's `base_url`; credentials come from the flags, or from the environment
//! through `${env:NAME}` placeholders in the spec):
//!
//! ```text
//! cargo run --release --example demo -- --provider-file specs/intergiro.toml \
//!     --auth-url https://api.intergiro.com/v3 --api-url https://api.intergiro.com/v3/accounts \
//!     --api-key K --duration 30
//! ```
//!
//! A spec whose client authenticates by its TLS certificate (`client_auth = "tls_client_auth"`)
//! gets it from `--client-cert` and `--client-key`, presented by every connection, the auth
//! calls' and the requests' (which carry tokens bound to it), and trusts the CA of `--ca-cert`:
//!
//! ```text
//! cargo run --release --example demo -- \
//!     --provider-file specs/oauth2-client-credentials-mtls.toml \
//!     --issuer https://idp.example.com --api-url https://mtls.api.example.com/orders \
//!     --client-id orders --client-cert client.pem --client-key client.key --ca-cert ca.pem
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{ArgGroup, Parser, ValueEnum};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tower::{BoxError, Layer, Service, ServiceExt};
use tower_token_auth::provider::{oauth2, Preset, Provider};
use tower_token_auth::provider::{Credentials, ProviderSpec};
use tower_token_auth::store::{FileStore, MemoryStore};
use tower_token_auth::{
    AuthError, AuthLayer, AuthLayerBuilder, KeyedAuthLayer, MetricsSnapshot, Secret,
};
use tower_token_auth_emulation::{Api, Config, Emulation, FaultKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ProviderName {
    UnionService,
    Simacan,
    Oli,
    Tradecloud,
    Intergiro,
    #[value(name = "oauth2-password")]
    OAuth2Password,
    #[value(name = "oauth2-client-credentials")]
    OAuth2ClientCredentials,
}

/// `--client-auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ClientAuthName {
    Basic,
    Post,
    #[value(name = "client_secret_jwt")]
    ClientSecretJwt,
    #[value(name = "private_key_jwt")]
    PrivateKeyJwt,
    #[value(name = "tls_client_auth")]
    TlsClientAuth,
    #[value(name = "self_signed_tls_client_auth")]
    SelfSignedTlsClientAuth,
}

/// `--client-key-alg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum KeyAlg {
    #[value(name = "ES256")]
    Es256,
    #[value(name = "RS256")]
    Rs256,
    #[value(name = "PS256")]
    Ps256,
    #[value(name = "EdDSA")]
    EdDsa,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "UPPER")]
enum HttpMethod {
    Get,
    Post,
}

/// Load demo for tower-token-auth. Without --provider, runs all five APIs against local
/// emulations.
#[derive(Parser, Debug, Clone)]
#[command(version, about, group(ArgGroup::new("external").args(["provider", "provider_file"])))]
struct Args {
    /// Provider preset to use against an external server.
    #[arg(long, value_enum, requires = "api_url")]
    provider: Option<ProviderName>,
    /// A provider spec file (TOML, or JSON by its `.json` extension) to use against an external
    /// server, instead of a preset.
    #[arg(long, value_name = "PATH", requires = "api_url")]
    provider_file: Option<PathBuf>,
    /// The API's auth base URL as its documentation writes it (the token URL for oli/oauth2);
    /// with --provider-file, overrides the spec's `base_url`. Optional with --issuer.
    #[arg(long, requires = "external")]
    auth_url: Option<String>,
    /// OAuth2: the issuer whose metadata (OpenID Connect Discovery, RFC 8414) names the token
    /// and revocation endpoints; with --provider-file, overrides the spec's `issuer`.
    #[arg(long, value_name = "URL", requires = "external")]
    issuer: Option<String>,
    /// OAuth2: how the client authenticates (default basic, or none without --client-secret;
    /// tls_client_auth with --client-cert).
    #[arg(long, value_enum, requires = "provider")]
    client_auth: Option<ClientAuthName>,
    /// OAuth2 private_key_jwt: the client's key, PKCS#8 PEM (needs `--features jose`); with
    /// --client-cert, the certificate's key (with --provider-file, only that: a spec names its
    /// own signing key).
    #[arg(long, value_name = "PATH", requires = "external")]
    client_key: Option<PathBuf>,
    /// The TLS client certificate (a PEM chain, the client's first) every connection presents,
    /// auth calls and requests alike: for tls_client_auth and self_signed_tls_client_auth
    /// (RFC 8705), with its key in --client-key.
    #[arg(long, value_name = "PATH", requires_all = ["external", "client_key"])]
    client_cert: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for `https://` URLs; none is trusted otherwise.
    #[arg(long, value_name = "PATH", requires = "external")]
    ca_cert: Option<PathBuf>,
    /// The algorithm of --client-key.
    #[arg(long, value_enum, default_value = "ES256", requires = "client_key")]
    client_key_alg: KeyAlg,
    /// The `kid` the assertions name.
    #[arg(long, value_name = "KID", requires = "client_key")]
    client_key_id: Option<String>,
    /// OAuth2: a resource the token is for (RFC 8707), sent on every token request.
    #[arg(long, value_name = "URI", requires = "provider")]
    resource: Option<String>,
    /// OAuth2: an audience the token is for, sent on every token request.
    #[arg(long, value_name = "VALUE", requires = "provider")]
    audience: Option<String>,
    /// OAuth2 client credentials: exchange the token in this file (re-read at each exchange)
    /// instead (RFC 8693 token exchange).
    #[arg(long, value_name = "PATH", requires = "provider")]
    exchange_subject_file: Option<PathBuf>,
    /// The RFC 8693 type of the --exchange-subject-file token: a JWT (a Kubernetes
    /// service-account token, a CI OIDC token) or another server's access token
    /// (`urn:ietf:params:oauth:token-type:access_token`).
    #[arg(
        long,
        value_name = "URN",
        requires = "exchange_subject_file",
        default_value = "urn:ietf:params:oauth:token-type:jwt"
    )]
    exchange_subject_type: String,
    /// DPoP (RFC 9449): bind tokens to a key of this algorithm, generated for the run (or read
    /// from --dpop-key): a proof on every auth call and request, nonces answered (needs
    /// `--features jose`).
    #[arg(long, value_enum, requires = "external")]
    dpop: Option<KeyAlg>,
    /// The DPoP key, PKCS#8 PEM, for processes sharing a session (through --store) to share
    /// the key its tokens are bound to.
    #[arg(long, value_name = "PATH", requires = "dpop")]
    dpop_key: Option<PathBuf>,
    /// The protected URL every request goes to. With --sessions, `{session}` in it names the
    /// request's session (`session-K`).
    #[arg(long, requires = "external")]
    api_url: Option<String>,
    /// N keyed sessions on one layer (a `KeyedAuthLayer`): request K goes out with session
    /// K mod N's token; for the OAuth2 providers session K's token is asked with the audience
    /// `session-K`, and each session has its own store key.
    #[arg(long, value_name = "N", requires = "external", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    sessions: Option<u32>,
    #[arg(long)]
    username: Option<String>,
    #[arg(long)]
    password: Option<String>,
    #[arg(long)]
    api_key: Option<String>,
    #[arg(long)]
    client_id: Option<String>,
    #[arg(long)]
    client_secret: Option<String>,
    #[arg(long)]
    scope: Option<String>,
    /// Requests in flight at once (per provider).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    concurrency: u64,
    /// Stop after this many requests.
    #[arg(long, conflicts_with = "duration")]
    requests: Option<u64>,
    /// Stop after this many seconds (default 10 external; 12 embedded, or 3 past the end of the
    /// outage).
    #[arg(long)]
    duration: Option<f64>,
    #[arg(long, value_enum, default_value = "GET")]
    method: HttpMethod,
    /// Size of each POST body.
    #[arg(long, default_value_t = 0)]
    body_bytes: usize,
    /// Print one JSON summary object as the last line of stdout.
    #[arg(long)]
    json: bool,
    /// Embedded mode: fail this fraction (0.0 to 1.0) of the auth calls, with every fault kind.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    faults: Option<f64>,
    /// Embedded mode: every auth server answers 503 from START to END seconds into the run
    /// (e.g. 3:8).
    #[arg(long, value_name = "START:END", value_parser = parse_outage)]
    outage: Option<Outage>,
    /// Where sessions live: `memory` (the default: this process only), `file:PATH` (a directory
    /// of session files) or `redis://HOST:PORT[/DB]` (needs `--features redis`). Processes given
    /// the same store and key share one session.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// The session's key in the store (default: provider, auth URL and user).
    #[arg(long, value_name = "KEY", requires = "store")]
    store_key: Option<String>,
    /// How long one renewal may hold the store's lease, in seconds (default: twice the auth
    /// timeout); a process that dies holding it holds the others back this long at most.
    #[arg(long, value_name = "SECS", requires = "store", value_parser = parse_secs)]
    lease_ttl: Option<Duration>,
    /// Timeout of one login or refresh call, in seconds (default 10).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    auth_timeout: Option<Duration>,
    /// Serve the layers' metrics in Prometheus text format at http://HOST:PORT/metrics during
    /// the run (needs `--features metrics`); port 0 picks a free one. The address is printed to
    /// stderr as `metrics: http://ADDR/metrics`.
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// After the run and its report, keep serving the metrics until standard input closes
    /// (Ctrl-D), so that a last scrape sees the final counts.
    #[arg(long, requires = "metrics_addr")]
    metrics_hold: bool,
}

fn parse_secs(value: &str) -> Result<Duration, String> {
    match value.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => {
            Ok(Duration::from_secs_f64(secs))
        }
        _ => Err("expected a positive number of seconds, e.g. 2.5".to_owned()),
    }
}

/// An auth outage, in time from the start of the run.
#[derive(Clone, Copy, Debug)]
struct Outage {
    start: Duration,
    end: Duration,
}

fn parse_rate(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err("expected a fault rate from 0.0 to 1.0, e.g. 0.1".to_owned()),
    }
}

fn parse_outage(value: &str) -> Result<Outage, String> {
    let seconds = |s: &str| {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|secs| secs.is_finite() && *secs >= 0.0 && *secs < 1e9)
    };
    match value.split_once(':').map(|(a, b)| (seconds(a), seconds(b))) {
        Some((Some(start), Some(end))) if start < end => Ok(Outage {
            start: Duration::from_secs_f64(start),
            end: Duration::from_secs_f64(end),
        }),
        _ => Err(
            "expected START:END in seconds from the start of the run, with START < END, e.g. 3:8"
                .to_owned(),
        ),
    }
}

/// Plain HTTP, or HTTPS with the CA of `--ca-cert` trusted and the certificate of
/// `--client-cert` presented.
type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

#[derive(Clone, Copy, Debug)]
enum Stop {
    Requests(u64),
    After(Duration),
}

#[derive(Clone, Debug)]
struct Load {
    uri: Uri,
    /// With --sessions: how many, and the URL with `{session}` to fill.
    sessions: Option<(u32, Arc<str>)>,
    method: Method,
    body: Bytes,
    concurrency: u64,
    stop: Stop,
    /// When an auth outage ends, measured from the start of the run.
    outage_end: Option<Duration>,
}

/// One provider's run; serialized as the `--json` summary, fields in the documented order
/// (serde_json writes the status codes as string keys).
#[derive(Debug, Default, serde::Serialize)]
struct Report {
    provider: String,
    requests: u64,
    ok: u64,
    failed: u64,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<String, u64>,
    logins: u64,
    refreshes: u64,
    replays: u64,
    /// Auth calls and requests sent again for a server's DPoP nonce.
    dpop_nonce_retries: u64,
    p50_ms: f64,
    p99_ms: f64,
    elapsed_s: f64,
    /// Sessions taken from the store instead of an auth call (another process's, or this
    /// process's before a restart).
    adopted: u64,
    /// `ok / requests`.
    availability: f64,
    /// From the end of the outage to the first request completing OK after it. The key is
    /// absent without an outage, `null` when no request succeeded after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    recover_ms: Option<Option<f64>>,
    /// Auth calls the emulation answered with an injected fault (embedded mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_faults: Option<u64>,
    /// With --sessions: the sessions' auth calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    sessions: Option<SessionsReport>,
}

/// The sessions of a keyed run: auth calls per session (lowest and highest), and sessions
/// dropped (idle or beyond the bound).
#[derive(Debug, Default, serde::Serialize)]
struct SessionsReport {
    count: u32,
    logins_min: u64,
    logins_max: u64,
    refreshes_min: u64,
    refreshes_max: u64,
    evicted: u64,
}

#[derive(Default)]
struct WorkerStats {
    latencies_us: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<String, u64>,
    /// When the first request that completed OK after the outage's end did, from the run start.
    first_ok_after_outage: Option<Duration>,
}

fn error_kind(err: &tower::BoxError) -> String {
    match err.downcast_ref::<AuthError>() {
        Some(auth) => format!("{:?}", auth.kind()),
        None => "transport".to_owned(),
    }
}

/// Sends requests from `load.concurrency` workers until the stop condition; counts everything.
/// `started` is the start of the run, which the outage window is measured from.
async fn run_load<S>(
    name: &str,
    svc: S,
    metrics: impl FnOnce() -> MetricsSnapshot,
    load: Load,
    bar: ProgressBar,
    started: Instant,
) -> Report
where
    S: Service<Request<Full<Bytes>>, Response = http::Response<Incoming>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let issued = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..load.concurrency {
        let (svc, load, issued, bar) = (svc.clone(), load.clone(), issued.clone(), bar.clone());
        workers.push(tokio::spawn(async move {
            let mut stats = WorkerStats::default();
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                match load.stop {
                    Stop::Requests(max) if n >= max => break,
                    Stop::After(d) if started.elapsed() >= d => break,
                    _ => {}
                }
                let mut request = Request::new(Full::new(load.body.clone()));
                *request.method_mut() = load.method.clone();
                *request.uri_mut() = load.uri.clone();
                if let Some((sessions, url)) = &load.sessions {
                    let session = (n % u64::from(*sessions)) as u32;
                    if let Ok(uri) = session_url(url, session).parse() {
                        *request.uri_mut() = uri;
                    }
                    request.extensions_mut().insert(session);
                }
                let sent = Instant::now();
                let outcome = match svc.clone().oneshot(request).await {
                    // Read the body so the connection goes back to the pool.
                    Ok(response) => {
                        let status = response.status().as_u16();
                        match response.into_body().collect().await {
                            Ok(_) => Ok(status),
                            Err(_) => Err("body".to_owned()),
                        }
                    }
                    Err(err) => Err(error_kind(&err)),
                };
                let micros = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
                stats.latencies_us.push(micros);
                match outcome {
                    Ok(status) => {
                        *stats.statuses.entry(status).or_default() += 1;
                        let done = started.elapsed();
                        let after_outage = load.outage_end.is_some_and(|end| done >= end);
                        if after_outage && (200..300).contains(&status) {
                            let first = stats.first_ok_after_outage.get_or_insert(done);
                            *first = (*first).min(done);
                        }
                    }
                    Err(kind) => {
                        *stats.errors.entry(kind).or_default() += 1;
                        // An error may come back without the future ever waiting (a request
                        // failing fast): without a yield this worker would hold its thread and
                        // starve the other providers' workers, skewing every timing.
                        tokio::task::yield_now().await;
                    }
                }
                bar.inc(1);
            }
            stats
        }));
    }
    let mut latencies = Vec::new();
    let mut report = Report {
        provider: name.to_owned(),
        ..Report::default()
    };
    let mut first_ok_after_outage: Option<Duration> = None;
    for worker in workers {
        let Ok(stats) = worker.await else { continue };
        latencies.extend(stats.latencies_us);
        first_ok_after_outage = match (first_ok_after_outage, stats.first_ok_after_outage) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        for (status, n) in stats.statuses {
            *report.statuses.entry(status).or_default() += n;
        }
        for (kind, n) in stats.errors {
            *report.errors.entry(kind).or_default() += n;
        }
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pick = |q: f64| -> f64 {
        match latencies.len() {
            0 => 0.0,
            len => latencies[((len - 1) as f64 * q).round() as usize] as f64 / 1000.0,
        }
    };
    report.p50_ms = pick(0.50);
    report.p99_ms = pick(0.99);
    report.requests = latencies.len() as u64;
    report.ok = report
        .statuses
        .iter()
        .filter(|(s, _)| (200..300).contains(*s))
        .map(|(_, n)| n)
        .sum();
    report.failed = report.requests - report.ok;
    report.availability = if report.requests == 0 {
        0.0
    } else {
        report.ok as f64 / report.requests as f64
    };
    report.recover_ms = load.outage_end.map(|end| {
        first_ok_after_outage.map(|first| first.saturating_sub(end).as_secs_f64() * 1000.0)
    });
    let metrics = metrics();
    report.logins = metrics.logins;
    report.refreshes = metrics.refreshes;
    report.replays = metrics.replays;
    report.dpop_nonce_retries = metrics.dpop_nonce_retries;
    report.adopted = metrics.adoptions;
    bar.finish_with_message(format!(
        "done: {} requests, {} failed",
        report.requests, report.failed
    ));
    report
}

/// The client every auth call and request goes through: TLS as `--ca-cert` and
/// `--client-cert` say (trusting nothing for `https://` without `--ca-cert`).
fn client(args: Option<&Args>) -> Result<HttpClient, String> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.enforce_http(false);
    let tls = tls_config(args)?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Ok(Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build(connector))
}

/// The rustls configuration of `--ca-cert`, `--client-cert` and `--client-key`. Errors name
/// the file and what is wrong with it, never its content.
fn tls_config(args: Option<&Args>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read =
        |path: &Path| std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()));
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = args.and_then(|a| a.ca_cert.as_deref()) {
        let pem = read(path)?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|_| format!("{}: not a PEM certificate", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("{}: holds no PEM certificate", path.display()));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let Some((cert, key)) =
        args.and_then(|a| Some((a.client_cert.as_deref()?, a.client_key.as_deref()?)))
    else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| format!("{}: not a PEM certificate chain", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: holds no PEM certificate", cert.display()));
    }
    // The key's own parse error could describe its bytes: name only the file.
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|_| format!("{}: not a PEM private key (PKCS#8)", key.display()))?;
    builder.with_client_auth_cert(chain, key_der).map_err(|_| {
        format!(
            "{} and {}: the key does not match the certificate, or is of a kind TLS cannot use",
            cert.display(),
            key.display()
        )
    })
}

fn progress(multi: &MultiProgress, name: &str, stop: Stop, hidden: bool) -> ProgressBar {
    let bar = match stop {
        Stop::Requests(n) => ProgressBar::new(n),
        Stop::After(_) => ProgressBar::no_length(),
    };
    if hidden {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        return bar;
    }
    let bar = multi.add(bar);
    let template = match stop {
        Stop::Requests(_) => {
            "{prefix:>14} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} {msg}"
        }
        Stop::After(_) => "{prefix:>14} [{elapsed_precise}] {spinner} {human_pos} requests {msg}",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_prefix(name.to_owned());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn print_table(reports: &[Report]) {
    println!(
        "{:<16} {:>9} {:>9} {:>7} {:>7} {:>10} {:>8} {:>8} {:>9} {:>9} {:>8} {:>10} {:>11}",
        "provider",
        "requests",
        "ok",
        "failed",
        "logins",
        "refreshes",
        "replays",
        "adopted",
        "p50 ms",
        "p99 ms",
        "avail %",
        "recover ms",
        "auth faults"
    );
    for r in reports {
        let recover = match r.recover_ms {
            None => "-".to_owned(),
            Some(None) => "never".to_owned(),
            Some(Some(ms)) => format!("{ms:.0}"),
        };
        let faults = r
            .auth_faults
            .map_or_else(|| "-".to_owned(), |n| n.to_string());
        println!(
            "{:<16} {:>9} {:>9} {:>7} {:>7} {:>10} {:>8} {:>8} {:>9.2} {:>9.2} {:>8.2} {:>10} {:>11}",
            r.provider,
            r.requests,
            r.ok,
            r.failed,
            r.logins,
            r.refreshes,
            r.replays,
            r.adopted,
            r.p50_ms,
            r.p99_ms,
            r.availability * 100.0,
            recover,
            faults
        );
        if let Some(k) = &r.sessions {
            println!(
                "{:<16} {} sessions: logins {}..{} and refreshes {}..{} per session, {} evicted",
                "",
                k.count,
                k.logins_min,
                k.logins_max,
                k.refreshes_min,
                k.refreshes_max,
                k.evicted
            );
        }
    }
}

fn required<'a>(
    value: &'a Option<String>,
    flag: &str,
    provider: ProviderName,
) -> Result<&'a str, String> {
    value
        .as_deref()
        .ok_or_else(|| format!("--{flag} is required for {provider:?}"))
}

/// Builds the provider named on the command line.
fn external_provider(
    args: &Args,
    name: ProviderName,
    auth_url: &str,
    session: Option<u32>,
) -> Result<Box<dyn Provider>, String> {
    let user = || required(&args.username, "username", name);
    let password = || required(&args.password, "password", name).map(str::to_owned);
    let people = || Ok::<_, String>(Credentials::new().username(user()?).password(password()?));
    let preset = |preset: Preset, credentials: Credentials| preset.provider(auth_url, &credentials);
    let built = match name {
        ProviderName::UnionService => preset(Preset::UnionService, people()?),
        ProviderName::Simacan => preset(Preset::Simacan, people()?),
        ProviderName::Oli => {
            let client_id = args.client_id.as_deref().unwrap_or("apiclient");
            preset(Preset::Oli, people()?.client_id(client_id))
        }
        ProviderName::Tradecloud => preset(Preset::Tradecloud, people()?),
        ProviderName::Intergiro => {
            let api_key = required(&args.api_key, "api-key", name)?.to_owned();
            preset(Preset::Intergiro, Credentials::new().api_key(api_key))
        }
        ProviderName::OAuth2Password => {
            let builder = oauth2::Builder::password(auth_url, user()?, password()?);
            return oauth2_provider(args, builder, session);
        }
        ProviderName::OAuth2ClientCredentials => {
            let builder = match &args.exchange_subject_file {
                Some(path) => {
                    let path = path.clone();
                    let kind = &args.exchange_subject_type;
                    oauth2::Builder::token_exchange(auth_url, kind, move || {
                        std::fs::read_to_string(&path)
                            .map(|token| Secret::from(token.trim()))
                            .map_err(|_| AuthError::config("the subject token file cannot be read"))
                    })
                }
                None => oauth2::Builder::client_credentials_grant(auth_url),
            };
            return oauth2_provider(args, builder, session);
        }
    };
    built
        .map(|p| Box::new(p) as Box<dyn Provider>)
        .map_err(|e| e.to_string())
}

/// An OAuth2 provider from `builder` with what the OAuth2 flags say: the client and how it
/// authenticates, scope, resource, audience, discovery.
fn oauth2_provider(
    args: &Args,
    mut builder: oauth2::Builder,
    session: Option<u32>,
) -> Result<Box<dyn Provider>, String> {
    let auth = args.client_auth.unwrap_or(
        match (&args.client_cert, &args.client_key, &args.client_secret) {
            (Some(_), _, _) => ClientAuthName::TlsClientAuth,
            (None, Some(_), _) => ClientAuthName::PrivateKeyJwt,
            _ => ClientAuthName::Basic,
        },
    );
    if let Some(scope) = &args.scope {
        builder = builder.scope(scope);
    }
    if let Some(resource) = &args.resource {
        builder = builder.resource(resource);
    }
    if let Some(audience) = &args.audience {
        builder = builder.audience(audience);
    }
    // With --sessions, each session's token is for an audience of its own.
    if let Some(k) = session {
        builder = builder.audience(&format!("session-{k}"));
    }
    if let Some(issuer) = &args.issuer {
        builder = builder.discover(issuer);
    }
    let id = args.client_id.as_deref();
    let built = match (auth, id, &args.client_secret) {
        (ClientAuthName::Basic | ClientAuthName::Post, Some(id), Some(secret)) => {
            let how = match auth {
                ClientAuthName::Post => oauth2::ClientAuth::SecretPost,
                _ => oauth2::ClientAuth::SecretBasic,
            };
            let builder = builder
                .confidential_client(id, secret.clone())
                .client_auth(how);
            builder.build().map(|p| Box::new(p) as Box<dyn Provider>)
        }
        (ClientAuthName::Basic | ClientAuthName::Post, Some(id), None) => builder
            .public_client(id)
            .build()
            .map(|p| Box::new(p) as Box<dyn Provider>),
        (ClientAuthName::Basic | ClientAuthName::Post, None, _) => {
            builder.build().map(|p| Box::new(p) as Box<dyn Provider>)
        }
        (_, None, _) => return Err(format!("--client-auth {auth:?} needs --client-id")),
        (ClientAuthName::TlsClientAuth | ClientAuthName::SelfSignedTlsClientAuth, Some(id), _) => {
            if args.client_secret.is_some() {
                return Err(format!(
                    "--client-auth {auth:?} authenticates by the TLS certificate and sends no secret: drop --client-secret"
                ));
            }
            if args.client_cert.is_none() {
                return Err(format!(
                    "--client-auth {auth:?} needs --client-cert and --client-key"
                ));
            }
            let how = match auth {
                ClientAuthName::TlsClientAuth => oauth2::ClientAuth::TlsClientAuth,
                _ => oauth2::ClientAuth::SelfSignedTlsClientAuth,
            };
            builder
                .public_client(id)
                .client_auth(how)
                .build()
                .map(|p| Box::new(p) as Box<dyn Provider>)
        }
        (_, Some(id), _) => {
            let assertion = assertion(args, auth, id)?;
            builder
                .build_with_assertion(assertion)
                .map(|p| Box::new(p) as Box<dyn Provider>)
        }
    };
    built.map_err(|e| e.to_string())
}

/// The client assertion `--client-auth` names.
#[cfg(feature = "jose")]
fn assertion(
    args: &Args,
    auth: ClientAuthName,
    id: &str,
) -> Result<oauth2::ClientAssertion, String> {
    use tower_token_auth::jose::SigningKey;
    if auth == ClientAuthName::ClientSecretJwt {
        let secret = args
            .client_secret
            .clone()
            .ok_or("client_secret_jwt needs --client-secret")?;
        return Ok(oauth2::ClientAssertion::client_secret_jwt(id, secret));
    }
    let path = args
        .client_key
        .as_ref()
        .ok_or("private_key_jwt needs --client-key")?;
    let pem =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let key = SigningKey::from_pkcs8_pem(&pem, jose_alg(args.client_key_alg))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let key = match &args.client_key_id {
        Some(kid) => key.with_kid(kid.clone()),
        None => key,
    };
    let assertion = oauth2::ClientAssertion::private_key_jwt(id, key);
    // With discovery, the issuer is the audience every endpoint it names accepts.
    Ok(match &args.issuer {
        Some(issuer) => assertion.audience(issuer),
        None => assertion,
    })
}

#[cfg(not(feature = "jose"))]
fn assertion(_: &Args, auth: ClientAuthName, _: &str) -> Result<oauth2::ClientAssertion, String> {
    Err(format!(
        "--client-auth {auth:?} signs assertions: cargo run --release --features jose --example demo -- ..."
    ))
}

/// The layer for `provider`, with the auth timeout and store the command line asks for. The
/// store key defaults to the provider's name, its auth URL and the account.
fn layer_builder(
    args: &Args,
    provider: Box<dyn Provider>,
    name: &str,
    default_key: &str,
) -> Result<AuthLayerBuilder, String> {
    let mut builder = AuthLayer::builder(provider).metrics_name(name.to_owned());
    if let Some(alg) = args.dpop {
        builder = with_dpop(builder, alg, args.dpop_key.as_deref())?;
    }
    if let Some(timeout) = args.auth_timeout {
        builder = builder.timeout(timeout);
    }
    if let Some(url) = &args.store {
        let key = match (&args.store_key, args.sessions) {
            (Some(key), None) => key.clone(),
            (Some(key), Some(_)) => format!("{key}/{name}"),
            (None, _) => default_key.to_owned(),
        };
        builder = with_store(builder, url, key)?;
    }
    if let Some(ttl) = args.lease_ttl {
        builder = builder.lease_ttl(ttl);
    }
    Ok(builder)
}

/// `builder` with a DPoP key of `alg`: read from `path`, or generated.
#[cfg(feature = "jose")]
fn with_dpop(
    builder: AuthLayerBuilder,
    alg: KeyAlg,
    path: Option<&std::path::Path>,
) -> Result<AuthLayerBuilder, String> {
    use tower_token_auth::jose::{DpopKey, SigningKey};
    let alg = jose_alg(alg);
    let key = match path {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            SigningKey::from_pkcs8_pem(&pem, alg).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => SigningKey::generate(alg).map_err(|e| e.to_string())?,
    };
    let key = DpopKey::new(key);
    Ok(builder.with_policy(move |p| p.dpop = Some(key)))
}

#[cfg(not(feature = "jose"))]
fn with_dpop(
    _: AuthLayerBuilder,
    _: KeyAlg,
    _: Option<&std::path::Path>,
) -> Result<AuthLayerBuilder, String> {
    Err("--dpop signs proofs: cargo run --release --features jose --example demo -- ...".to_owned())
}

/// The `jose` algorithm of `alg`.
#[cfg(feature = "jose")]
fn jose_alg(alg: KeyAlg) -> tower_token_auth::jose::Algorithm {
    use tower_token_auth::jose::Algorithm;
    match alg {
        KeyAlg::Es256 => Algorithm::ES256,
        KeyAlg::Rs256 => Algorithm::RS256,
        KeyAlg::Ps256 => Algorithm::PS256,
        KeyAlg::EdDsa => Algorithm::EdDSA,
    }
}

/// `builder` with the store `--store` names, under `key`.
fn with_store(
    builder: AuthLayerBuilder,
    url: &str,
    key: String,
) -> Result<AuthLayerBuilder, String> {
    if url == "memory" {
        return Ok(builder.store(MemoryStore::default(), key));
    }
    if let Some(dir) = url.strip_prefix("file:") {
        if dir.is_empty() {
            return Err("--store file:PATH needs a directory, e.g. file:/tmp/sessions".to_owned());
        }
        return Ok(builder.store(FileStore::new(dir), key));
    }
    if url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("redis+unix:")
    {
        return with_redis_store(builder, url, key);
    }
    Err("--store takes memory, file:PATH or redis://HOST:PORT[/DB]".to_owned())
}

#[cfg(feature = "redis")]
fn with_redis_store(
    builder: AuthLayerBuilder,
    url: &str,
    key: String,
) -> Result<AuthLayerBuilder, String> {
    let store = tower_token_auth::store::RedisStore::open(url).map_err(|e| e.to_string())?;
    Ok(builder.store(store, key))
}

#[cfg(not(feature = "redis"))]
fn with_redis_store(_: AuthLayerBuilder, _: &str, _: String) -> Result<AuthLayerBuilder, String> {
    Err("a Redis store needs the redis feature: cargo run --release --features redis --example demo -- ...".to_owned())
}

fn load_from(args: &Args, uri: Uri, default_duration: f64) -> Result<Load, String> {
    let stop = match (args.requests, args.duration) {
        (Some(n), _) => Stop::Requests(n),
        (None, Some(secs)) if secs.is_finite() && secs > 0.0 => {
            Stop::After(Duration::from_secs_f64(secs))
        }
        (None, Some(_)) => return Err("--duration must be a positive number of seconds".to_owned()),
        (None, None) => Stop::After(Duration::from_secs_f64(default_duration)),
    };
    let (method, body) = match args.method {
        HttpMethod::Get => (Method::GET, Bytes::new()),
        HttpMethod::Post => (Method::POST, Bytes::from(vec![b'x'; args.body_bytes])),
    };
    Ok(Load {
        uri,
        sessions: None,
        method,
        body,
        concurrency: args.concurrency,
        stop,
        outage_end: None,
    })
}

/// The spec file's provider, with the credentials the flags give. A spec's mutual TLS client
/// (`client_auth = "tls_client_auth"`) authenticates by the certificate of `--client-cert`,
/// which the client every auth call and request goes through presents.
fn spec_provider(args: &Args, path: &Path) -> Result<(String, Box<dyn Provider>), String> {
    if args.client_key.is_some() && args.client_cert.is_none() {
        return Err(
            "with --provider-file, --client-key is the key of --client-cert (a spec names its own signing key in `client_key`)"
                .to_owned(),
        );
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let spec = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => ProviderSpec::from_json(&text),
        _ => ProviderSpec::from_toml(&text),
    }
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let label = spec.name().map_or_else(
        || {
            path.file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
        },
        str::to_owned,
    );
    let spec = match &args.auth_url {
        Some(base) => spec.base_url(base),
        None => spec,
    };
    let spec = match &args.issuer {
        Some(issuer) => spec.issuer(issuer),
        None => spec,
    };
    let mut credentials = Credentials::new();
    if let Some(v) = &args.username {
        credentials = credentials.username(v.clone());
    }
    if let Some(v) = &args.password {
        credentials = credentials.password(v.clone());
    }
    if let Some(v) = &args.api_key {
        credentials = credentials.api_key(v.clone());
    }
    if let Some(v) = &args.client_id {
        credentials = credentials.client_id(v.clone());
    }
    if let Some(v) = &args.client_secret {
        credentials = credentials.client_secret(v.clone());
    }
    if let Some(v) = &args.scope {
        credentials = credentials.scope(v.clone());
    }
    let provider = spec
        .build(&credentials)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((label, Box::new(provider)))
}

/// The provider for external mode: the preset named, or the spec file's.
fn external_provider_of(
    args: &Args,
    session: Option<u32>,
) -> Result<(String, Box<dyn Provider>), String> {
    match (args.provider, &args.provider_file) {
        (Some(name), _) => {
            let auth_url = [&args.auth_url, &args.issuer]
                .into_iter()
                .find_map(Option::as_deref)
                .ok_or("--auth-url (or, for OAuth2, --issuer) is required with --provider")?;
            let label = name
                .to_possible_value()
                .map(|v| v.get_name().to_owned())
                .unwrap_or_default();
            Ok((label, external_provider(args, name, auth_url, session)?))
        }
        (None, Some(path)) => spec_provider(args, path),
        (None, None) => Err("external mode needs --provider or --provider-file".to_owned()),
    }
}

async fn external(args: &Args) -> Result<Vec<Report>, String> {
    if args.faults.is_some() || args.outage.is_some() {
        return Err(
            "--faults and --outage make the local emulations fail; they apply to the embedded run only, not with --provider or --provider-file"
                .to_owned(),
        );
    }
    let Some(api_url) = &args.api_url else {
        return Err("--api-url is required with --provider and --provider-file".to_owned());
    };
    if let Some(sessions) = args.sessions {
        return Ok(vec![external_keyed(args, api_url, sessions).await?]);
    }
    let uri: Uri = api_url
        .parse()
        .map_err(|_| "--api-url is not a valid URL".to_owned())?;
    let load = load_from(args, uri, 10.0)?;
    let (label, provider) = external_provider_of(args, None)?;
    let user = [&args.username, &args.client_id]
        .into_iter()
        .find_map(Option::as_deref)
        .unwrap_or("api-key");
    let client = client(Some(args))?;
    let layer = layer_builder(args, provider, &label, &session_key(args, &label, user))?
        .build(client.clone());
    let handle = layer.handle();
    let svc = layer.layer(client);
    let multi = MultiProgress::new();
    let bar = progress(&multi, &label, load.stop, args.json);
    let metrics = move || handle.metrics();
    Ok(vec![
        run_load(&label, svc, metrics, load, bar, Instant::now()).await,
    ])
}

/// The session's default store key: the provider, where it logs in, and as whom.
fn session_key(args: &Args, label: &str, user: &str) -> String {
    let spec_file = args.provider_file.as_ref().map(|p| p.display().to_string());
    let auth = [&args.auth_url, &spec_file]
        .into_iter()
        .find_map(Option::as_deref)
        .unwrap_or_default();
    format!("{label}:{auth}:{user}")
}

/// `url` with `{session}` naming session `k`.
fn session_url(url: &str, k: u32) -> String {
    url.replace("{session}", &format!("session-{k}"))
}

/// External mode with `--sessions`: one keyed layer, a session per key `K` in `0..sessions`,
/// each built from the flags as the one session of a plain run is (with the audience
/// `session-K` for OAuth2, and a store key of its own).
async fn external_keyed(args: &Args, api_url: &str, sessions: u32) -> Result<Report, String> {
    let uri: Uri = session_url(api_url, 0)
        .parse()
        .map_err(|_| "--api-url is not a valid URL".to_owned())?;
    let mut load = load_from(args, uri, 10.0)?;
    load.sessions = Some((sessions, Arc::from(api_url)));
    // Checked once here, so that the factory's errors are the sessions' own.
    let (label, _) = external_provider_of(args, Some(0))?;
    let shared = Arc::new(args.clone());
    let factory_args = Arc::clone(&shared);
    let keyed = KeyedAuthLayer::builder(move |k: &u32| {
        let args = &*factory_args;
        let (label, provider) = external_provider_of(args, Some(*k)).map_err(AuthError::config)?;
        let user = format!("session-{k}");
        layer_builder(args, provider, &label, &session_key(args, &label, &user))
            .map_err(AuthError::config)
    })
    .max_sessions(sessions as usize)
    .build(client(Some(args))?);
    let svc = keyed.clone().layer(client(Some(args))?);
    let multi = MultiProgress::new();
    let bar = progress(&multi, &label, load.stop, args.json);
    let totals = keyed.clone();
    let metrics = move || {
        let mut sum = MetricsSnapshot::default();
        for k in 0..sessions {
            if let Ok(m) = totals.handle(&k).map(|h| h.metrics()) {
                sum.logins += m.logins;
                sum.refreshes += m.refreshes;
                sum.replays += m.replays;
                sum.dpop_nonce_retries += m.dpop_nonce_retries;
                sum.adoptions += m.adoptions;
            }
        }
        sum
    };
    let mut report = run_load(&label, svc, metrics, load, bar, Instant::now()).await;
    let per_session: Vec<MetricsSnapshot> = (0..sessions)
        .filter_map(|k| keyed.handle(&k).ok().map(|h| h.metrics()))
        .collect();
    let range = |f: fn(&MetricsSnapshot) -> u64| {
        let values = per_session.iter().map(f);
        (values.clone().min().unwrap_or(0), values.max().unwrap_or(0))
    };
    let (logins_min, logins_max) = range(|m| m.logins);
    let (refreshes_min, refreshes_max) = range(|m| m.refreshes);
    report.sessions = Some(SessionsReport {
        count: sessions,
        logins_min,
        logins_max,
        refreshes_min,
        refreshes_max,
        evicted: keyed.sessions().1,
    });
    Ok(report)
}

/// The embedded run's length unless `--duration` or `--requests` says otherwise.
const EMBEDDED_SECS: f64 = 12.0;
/// How long an embedded run goes on after an outage, to show the recovery.
const AFTER_OUTAGE_SECS: f64 = 3.0;

async fn embedded(args: &Args) -> Result<Vec<Report>, String> {
    let config = Config {
        access_lifetime: Duration::from_secs(2),
        refresh_lifetime: Duration::from_secs(120),
        ..Config::default()
    };
    let apis = [
        ("union-service", Api::UnionService),
        ("simacan", Api::Simacan),
        ("oli", Api::Oli),
        ("tradecloud", Api::Tradecloud),
        ("intergiro", Api::Intergiro),
    ];
    let default_secs = args.outage.map_or(EMBEDDED_SECS, |outage| {
        EMBEDDED_SECS.max(outage.end.as_secs_f64() + AFTER_OUTAGE_SECS)
    });
    if let (Some(outage), Some(secs)) = (args.outage, args.duration) {
        if secs < outage.end.as_secs_f64() {
            eprintln!("warning: the run ends before the outage does; there is no recovery to see");
        }
    }
    if !args.json {
        println!(
            "Embedded run: five local API emulations, access tokens living {:?}, {} concurrent requests each.",
            config.access_lifetime, args.concurrency
        );
        if let Some(rate) = args.faults {
            println!(
                "Auth faults: {:.1}% of login and refresh calls fail (5xx, 429, reset, slow, malformed, no or bad token).",
                rate * 100.0
            );
        }
        if let Some(outage) = args.outage {
            println!(
                "Auth outage: every auth server answers 503 from {:.1} s to {:.1} s into the run.",
                outage.start.as_secs_f64(),
                outage.end.as_secs_f64()
            );
        }
    }
    let multi = MultiProgress::new();
    let client = client(None)?;
    let mut emulations = Vec::new();
    let mut loads = Vec::new();
    for (name, api) in apis {
        let emulation = Emulation::start(api, config.clone())
            .await
            .map_err(|e| format!("starting the {name} emulation: {e}"))?;
        let base = emulation.base_url();
        let c = emulation.config();
        let credentials = Credentials::new()
            .username(&c.username)
            .password(c.password.clone())
            .client_id(&c.client_id)
            .api_key(c.api_key.clone());
        let preset = match api {
            Api::UnionService => Preset::UnionService,
            Api::Simacan => Preset::Simacan,
            Api::Oli => Preset::Oli,
            Api::Tradecloud => Preset::Tradecloud,
            _ => Preset::Intergiro,
        };
        let provider = preset
            .provider(&base, &credentials)
            .map_err(|e| e.to_string())?;
        let uri: Uri = emulation
            .resource_url()
            .parse()
            .map_err(|_| "emulation resource URL".to_owned())?;
        let mut load = load_from(args, uri, default_secs)?;
        load.outage_end = args.outage.map(|outage| outage.end);
        if let Some(rate) = args.faults {
            emulation.set_fault_rate(rate, &FaultKind::all());
        }
        let user = match api {
            Api::Intergiro => "api-key",
            _ => &c.username,
        };
        let key = format!("{name}:{base}:{user}");
        let layer = layer_builder(args, Box::new(provider), name, &key)?.build(client.clone());
        let handle = layer.handle();
        let svc = layer.layer(client.clone());
        loads.push((name, svc, handle, load));
        emulations.push(Arc::new(emulation));
    }
    // One start for every provider, so that the outage window is the same for all.
    let started = Instant::now();
    if let Some(outage) = args.outage {
        for emulation in &emulations {
            emulation.set_outage(outage.start, outage.end);
        }
    }
    let mut runs = Vec::new();
    for (name, svc, handle, load) in loads {
        let bar = progress(&multi, name, load.stop, args.json);
        runs.push(tokio::spawn(async move {
            let metrics = move || handle.metrics();
            run_load(name, svc, metrics, load, bar, started).await
        }));
    }
    // Simacan's tokens may die before `expires_in`: kill them now and then to exercise
    // refresh + replay on 401.
    let simacan = emulations.iter().position(|e| e.api() == Api::Simacan);
    let killer = simacan.map(|i| {
        let emulation = Arc::clone(&emulations[i]);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                emulation.revoke_access_tokens();
            }
        })
    });
    let mut reports = Vec::new();
    for run in runs {
        reports.push(run.await.map_err(|e| format!("load task failed: {e}"))?);
    }
    if let Some(killer) = killer {
        killer.abort();
    }
    for (report, emulation) in reports.iter_mut().zip(&emulations) {
        report.auth_faults = Some(emulation.stats().faults);
    }
    if !args.json {
        println!();
        for (report, emulation) in reports.iter().zip(&emulations) {
            let stats = emulation.stats();
            println!(
                "{:<16} server saw {} logins ({} needless), {} refreshes, {} protocol violations, {} injected faults",
                report.provider,
                stats.logins,
                stats.needless_logins,
                stats.refreshes,
                stats.violations,
                stats.faults
            );
        }
        println!();
    }
    Ok(reports)
}

/// `--metrics-addr`: installs a Prometheus recorder for the layers' metrics, and serves them at
/// `/metrics` on `addr` for as long as the process runs. Returns the address bound.
async fn serve_metrics(addr: std::net::SocketAddr) -> Result<std::net::SocketAddr, String> {
    if !cfg!(feature = "metrics") {
        return Err(
            "--metrics-addr needs the layer's metrics: cargo run --release --features metrics --example demo -- ..."
                .to_owned(),
        );
    }
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("installing the metrics recorder: {e}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
    let render = move || {
        let handle = handle.clone();
        async move {
            // Without the exporter's own upkeep task, each scrape does its upkeep.
            handle.run_upkeep();
            handle.render()
        }
    };
    let app = axum::Router::new().route("/metrics", axum::routing::get(render));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("error: serving metrics: {e}");
        }
    });
    eprintln!("metrics: http://{bound}/metrics");
    Ok(bound)
}

/// `--metrics-hold`: waits until standard input closes, the metrics still served meanwhile.
async fn hold_metrics() {
    let drained = tokio::task::spawn_blocking(|| {
        std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())
    });
    let _ = drained.await;
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(addr) = args.metrics_addr {
        if let Err(message) = serve_metrics(addr).await {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    }
    let result = match (&args.provider, &args.provider_file) {
        (None, None) => embedded(&args).await,
        _ => external(&args).await,
    };
    let reports = match result {
        Ok(reports) => reports,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        let line = match reports.as_slice() {
            [one] => serde_json::to_string(one),
            many => serde_json::to_string(many),
        };
        match line {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print_table(&reports);
    }
    if args.metrics_hold {
        hold_metrics().await;
    }
    ExitCode::SUCCESS
}
