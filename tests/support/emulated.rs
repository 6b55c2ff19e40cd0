//! Shared helpers for the tests against the emulations over real HTTP: the client, each API's
//! preset pointed at its emulation, and a request.
#![allow(dead_code, unreachable_pub)]

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_token_auth::provider::{oauth2, Preset, Provider};
use tower_token_auth::provider::{Credentials, HttpProvider, ProviderSpec};
use tower_token_auth::{AuthLayer, AuthService};
use tower_token_auth_emulation::{Api, Config, Emulation, Stats};

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;
pub type Authed = AuthService<HttpClient>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The preset for `api`, pointed at `base`, with the credentials in `c`.
pub fn preset_with(api: Api, base: &str, c: &Config) -> HttpProvider {
    let people = Credentials::new()
        .username(&c.username)
        .password(c.password.clone());
    let provider = match api {
        Api::UnionService => Preset::UnionService.provider(base, &people),
        Api::Simacan => Preset::Simacan.provider(base, &people),
        Api::Oli => Preset::Oli.provider(base, &people),
        Api::Tradecloud => Preset::Tradecloud.provider(base, &people),
        Api::Intergiro => {
            Preset::Intergiro.provider(base, &Credentials::new().api_key(c.api_key.clone()))
        }
        _ => oauth2::Builder::password(base, &c.username, c.password.clone())
            .confidential_client(&c.client_id, c.client_secret.clone())
            .build(),
    };
    provider.expect("preset builds from the emulation's URL")
}

/// The preset for `emulation`'s API, with its credentials.
pub fn preset(api: Api, emulation: &Emulation) -> HttpProvider {
    preset_with(api, &emulation.base_url(), emulation.config())
}

/// How a spec file is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecFormat {
    Toml,
    /// The TOML file converted to JSON, keys in the same order.
    Json,
}

/// The spec file of `api` in `specs/` (the presets are built from the same files).
pub fn spec_file(api: Api) -> &'static str {
    match api {
        Api::UnionService => include_str!("../../specs/union-service.toml"),
        Api::Simacan => include_str!("../../specs/simacan.toml"),
        Api::Oli => include_str!("../../specs/oli.toml"),
        Api::Tradecloud => include_str!("../../specs/tradecloud.toml"),
        Api::Intergiro => include_str!("../../specs/intergiro.toml"),
        _ => include_str!("../../specs/oauth2-password.toml"),
    }
}

/// The provider `api`'s spec file describes, read as `format`, pointed at `emulation`, with
/// every credential the emulation has (each spec takes the ones it names).
pub fn spec_provider(api: Api, emulation: &Emulation, format: SpecFormat) -> HttpProvider {
    let text = spec_file(api);
    let spec = match format {
        SpecFormat::Toml => ProviderSpec::from_toml(text),
        SpecFormat::Json => {
            let table: toml::Table = toml::from_str(text).expect("the spec is TOML");
            ProviderSpec::from_json(&serde_json::to_string(&table).expect("TOML converts to JSON"))
        }
    };
    spec.expect("the spec reads")
        .base_url(&emulation.base_url())
        .build(&credentials(emulation.config()))
        .expect("the spec builds")
}

/// Every credential the emulation configured with `c` takes (each spec takes the ones it
/// names).
pub fn credentials(c: &Config) -> Credentials {
    Credentials::new()
        .username(c.username.clone())
        .password(c.password.clone())
        .api_key(c.api_key.clone())
        .client_id(c.client_id.clone())
        .client_secret(c.client_secret.clone())
}

/// A layer for `provider` over a fresh client, and its service over another.
pub fn layered(provider: impl Provider) -> (AuthLayer, Authed) {
    let layer = AuthLayer::new(provider, client());
    let svc = layer.layer(client());
    (layer, svc)
}

/// A request to `emulation`'s resource through `provider`, a forced refresh and another
/// request: both served, one login and one refresh, no violation. The counts, for more checks.
pub async fn login_and_refresh(emulation: &Emulation, provider: impl Provider) -> Stats {
    let (layer, svc) = layered(provider);
    assert_eq!(get(&svc, emulation).await.unwrap(), StatusCode::OK);
    layer.handle().force_refresh().await.unwrap();
    assert_eq!(get(&svc, emulation).await.unwrap(), StatusCode::OK);
    let stats = emulation.stats();
    assert_eq!((stats.logins, stats.refreshes), (1, 1), "{stats:?}");
    assert_eq!(stats.violations, 0, "{:?}", emulation.violation_reasons());
    stats
}

/// GETs the protected resource; the body is read to the end.
pub async fn get(svc: &Authed, emulation: &Emulation) -> Result<StatusCode, tower::BoxError> {
    get_url(svc.clone(), emulation.resource_url()).await
}

/// GETs the protected resource `n` times at once, each from a task of its own; the statuses
/// in the order the requests finished.
///
/// # Panics
///
/// When a request fails.
pub async fn get_concurrently(svc: &Authed, emulation: &Emulation, n: usize) -> Vec<StatusCode> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        tasks.spawn(get_url(svc.clone(), emulation.resource_url()));
    }
    let mut statuses = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        statuses.push(done.expect("request task").expect("request succeeds"));
    }
    statuses
}

async fn get_url(svc: Authed, url: String) -> Result<StatusCode, tower::BoxError> {
    let request = Request::get(url).body(Full::default())?;
    let response = svc.oneshot(request).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status)
}

/// A load [`spawn_load`] started: its workers and what they count.
pub struct Load {
    workers: Vec<tokio::task::JoinHandle<()>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ok: std::sync::Arc<std::sync::atomic::AtomicU64>,
    failed: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Load {
    /// Stops the workers, waits for them, and returns (2xx final answers, everything else).
    pub async fn finish(self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.expect("load worker");
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

/// `workers` tasks GETting `emulation`'s resource through `svc` until [`Load::finish`], counting
/// outcomes; `before_each(n)` runs before the `n`th request (counted across workers, from 0).
pub fn spawn_load(
    svc: &Authed,
    emulation: &std::sync::Arc<Emulation>,
    workers: usize,
    before_each: impl Fn(u64) + Send + Sync + 'static,
) -> Load {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let sent = Arc::new(AtomicU64::new(0));
    let before_each = Arc::new(before_each);
    let workers = (0..workers)
        .map(|_| {
            let (svc, emulation, stop) = (svc.clone(), Arc::clone(emulation), Arc::clone(&stop));
            let (ok, failed) = (Arc::clone(&ok), Arc::clone(&failed));
            let (sent, before_each) = (Arc::clone(&sent), Arc::clone(&before_each));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    before_each(sent.fetch_add(1, Ordering::Relaxed));
                    let counter = match get(&svc, &emulation).await {
                        Ok(status) if status.is_success() => &ok,
                        _ => &failed,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    // A request failing fast never yields: without this, a failing test's
                    // runtime could not stop the workers.
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    Load {
        workers,
        stop,
        ok,
        failed,
    }
}
