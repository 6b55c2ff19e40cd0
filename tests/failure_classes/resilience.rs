//! The unhappy path over real HTTP, against the emulations with fault injection: random
//! transient auth faults, an auth outage, early revocation under load, and rejected credentials.

use crate::support::emulated;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt};
use tower_token_auth::{AuthError, AuthLayer, ErrorKind};
use tower_token_auth_emulation::{Api, Config, Emulation, FaultKind};

use crate::support::emulated::{client, get, preset, Authed};

/// What a load run saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    unauthorized: AtomicU64,
    other: AtomicU64,
    errors: AtomicU64,
    bad_bodies: AtomicU64,
    /// (completion time since the start, ok?) of every request.
    completions: Mutex<Vec<(Duration, bool)>>,
}

impl std::fmt::Debug for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tally")
            .field("ok", &self.ok)
            .field("unauthorized", &self.unauthorized)
            .field("other", &self.other)
            .field("errors", &self.errors)
            .field("bad_bodies", &self.bad_bodies)
            .finish_non_exhaustive()
    }
}

impl Tally {
    fn total(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
            + self.unauthorized.load(Ordering::Relaxed)
            + self.other.load(Ordering::Relaxed)
            + self.errors.load(Ordering::Relaxed)
    }
}

struct Load {
    workers: usize,
    duration: Option<Duration>,
    requests: Option<u64>,
    /// Every `revoke_every`th request revokes every access token before it goes out (0: never).
    revoke_every: u64,
    /// Every other request is a POST with a body of this many bytes.
    post_bytes: usize,
}

/// Drives `load` through `svc` and counts the outcomes.
async fn run(svc: &Authed, emulation: &Arc<Emulation>, load: Load) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..load.workers {
        let (svc, emulation, tally, sent) = (
            svc.clone(),
            Arc::clone(emulation),
            Arc::clone(&tally),
            Arc::clone(&sent),
        );
        let (duration, requests, revoke_every, post_bytes) = (
            load.duration,
            load.requests,
            load.revoke_every,
            load.post_bytes,
        );
        workers.push(tokio::spawn(async move {
            loop {
                let n = sent.fetch_add(1, Ordering::Relaxed);
                if requests.is_some_and(|r| n >= r)
                    || duration.is_some_and(|d| start.elapsed() >= d)
                {
                    break;
                }
                if revoke_every > 0 && n % revoke_every == revoke_every - 1 {
                    emulation.revoke_access_tokens();
                }
                let post = post_bytes > 0 && n % 2 == 1;
                let request = if post {
                    Request::builder()
                        .method(Method::POST)
                        .uri(emulation.resource_url())
                        .body(Full::new(Bytes::from(vec![b'x'; post_bytes])))
                } else {
                    Request::get(emulation.resource_url()).body(Full::default())
                }
                .unwrap();
                let outcome = svc.clone().oneshot(request).await;
                let ok = match outcome {
                    Ok(response) => {
                        let status = response.status();
                        let body = response.into_body().collect().await.unwrap().to_bytes();
                        if status == StatusCode::OK {
                            let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
                            let expected = if post { post_bytes } else { 0 };
                            if echo["body_bytes"] != expected {
                                tally.bad_bodies.fetch_add(1, Ordering::Relaxed);
                            }
                            tally.ok.fetch_add(1, Ordering::Relaxed);
                            true
                        } else {
                            let counter = if status == StatusCode::UNAUTHORIZED {
                                &tally.unauthorized
                            } else {
                                &tally.other
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                            false
                        }
                    }
                    Err(err) => {
                        eprintln!("request failed: {err}");
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                        false
                    }
                };
                tally
                    .completions
                    .lock()
                    .unwrap()
                    .push((start.elapsed(), ok));
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    tally
}

async fn start(api: Api, config: Config) -> (Arc<Emulation>, AuthLayer, Authed) {
    let emulation = Arc::new(Emulation::start(api, config).await.unwrap());
    let client = client();
    let layer = AuthLayer::new(preset(api, &emulation), client.clone());
    let svc = layer.layer(client);
    (emulation, layer, svc)
}

fn short_tokens() -> Config {
    Config {
        access_lifetime: Duration::from_secs(2),
        ..Config::default()
    }
}

/// 30 % of auth calls fail, of every kind; 32 requests in flight, 2 s tokens, 10 s: at least
/// 99.9 % of requests succeed, no refresh token is presented twice, and no login happens while a
/// refresh token is alive (except on union-service, which documents a single error status).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_auth_faults_are_ridden_out() {
    let _load = crate::support::one_load_at_a_time().await;
    let runs = Api::ALL.map(|api| {
        tokio::spawn(async move {
            // Seeded: the faults fall on the same calls every run.
            let config = Config {
                fault_seed: Some(api as u64 + 1),
                ..short_tokens()
            };
            let (emulation, layer, svc) = start(api, config).await;
            emulation.set_fault_rate(0.3, &FaultKind::all());
            let load = Load {
                workers: 32,
                duration: Some(Duration::from_secs(10)),
                requests: None,
                revoke_every: 0,
                post_bytes: 0,
            };
            let tally = run(&svc, &emulation, load).await;
            (api, emulation, layer, tally)
        })
    });
    for run in runs {
        let (api, emulation, layer, tally) = run.await.unwrap();
        let stats = emulation.stats();
        let total = tally.total();
        let ok = tally.ok.load(Ordering::Relaxed);
        eprintln!(
            "{api:?}: {ok}/{total} ok, {stats:?}, {:?}",
            layer.handle().metrics()
        );
        assert!(total >= 1000, "{api:?}: {total} requests");
        assert!(ok * 1000 >= total * 999, "{api:?}: {ok}/{total} ok");
        assert!(stats.faults >= 2, "{api:?}: faults were injected");
        assert_eq!(stats.refresh_token_reuse, 0, "{api:?}");
        assert_eq!(stats.violations, 0, "{api:?}");
        if api != Api::UnionService {
            assert_eq!(stats.needless_logins, 0, "{api:?}");
        }
    }
}

/// A 5 s auth outage: requests wait instead of failing; the first one that needed a new token is
/// served within 1 s of the server's return; while it is down, at most one auth call per 100 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_second_auth_outage_recovers_within_a_second() {
    let _load = crate::support::one_load_at_a_time().await;
    let (emulation, _layer, svc) = start(Api::Simacan, short_tokens()).await;
    let (from, to) = (Duration::from_secs(1), Duration::from_secs(6));
    emulation.set_outage(from, to);
    let load = Load {
        workers: 32,
        duration: Some(Duration::from_secs(9)),
        requests: None,
        revoke_every: 0,
        post_bytes: 0,
    };
    let tally = run(&svc, &emulation, load).await;
    let stats = emulation.stats();
    assert_eq!(
        tally.errors.load(Ordering::Relaxed),
        0,
        "nobody failed: they waited"
    );
    assert_eq!(tally.total(), tally.ok.load(Ordering::Relaxed));
    // The token issued before the outage expired within it: requests then waited.
    let completions = tally.completions.lock().unwrap();
    let waited = completions.iter().any(|(t, _)| *t > to);
    assert!(waited);
    let gap_start = from + Duration::from_secs(2);
    assert!(
        !completions.iter().any(|(t, _)| *t > gap_start && *t < to),
        "no request could be served between the token's expiry and the return"
    );
    let first_after = completions
        .iter()
        .filter(|(t, ok)| *ok && *t >= to)
        .map(|(t, _)| *t)
        .min()
        .unwrap();
    let recovered = first_after - to;
    eprintln!("recovered {recovered:?} after the return; {stats:?}");
    assert!(
        recovered <= Duration::from_secs(1),
        "recovered after {recovered:?}"
    );
    assert!(
        stats.outage_calls <= 50,
        "{} auth calls in 5 s",
        stats.outage_calls
    );
    assert!(
        stats.outage_calls >= 5,
        "retried all along: {}",
        stats.outage_calls
    );
}

/// Tokens revoked early by 0.5 % of requests (every 200th revokes all access tokens as it goes
/// out), 64 in flight, GETs and 4 KiB POSTs: no request ends with a 401, and every body arrives
/// intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_revocation_never_reaches_the_caller() {
    let _load = crate::support::one_load_at_a_time().await;
    for api in [Api::Simacan, Api::Oli] {
        let config = Config {
            access_lifetime: Duration::from_secs(300),
            ..Config::default()
        };
        let (emulation, layer, svc) = start(api, config).await;
        let load = Load {
            workers: 64,
            duration: None,
            requests: Some(10_000),
            revoke_every: 200,
            post_bytes: 4096,
        };
        let tally = run(&svc, &emulation, load).await;
        let stats = emulation.stats();
        let metrics = layer.handle().metrics();
        eprintln!("{api:?}: {tally:?} {stats:?} {metrics:?}");
        assert_eq!(tally.total(), 10_000);
        assert_eq!(
            tally.unauthorized.load(Ordering::Relaxed),
            0,
            "{api:?}: final 401s"
        );
        assert_eq!(tally.errors.load(Ordering::Relaxed), 0, "{api:?}");
        assert_eq!(tally.ok.load(Ordering::Relaxed), 10_000, "{api:?}");
        assert_eq!(tally.bad_bodies.load(Ordering::Relaxed), 0, "{api:?}");
        assert!(
            stats.resource_unauthorized > 0,
            "{api:?}: tokens were revoked"
        );
        assert_eq!(stats.refresh_token_reuse, 0, "{api:?}");
        assert_eq!(stats.violations, 0, "{api:?}");
    }
}

/// A wrong password: credentials go out once per rejection backoff, and requests in between fail
/// fast with the rejection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_password_is_sent_once_per_backoff() {
    let _load = crate::support::one_load_at_a_time().await;
    let emulation = Emulation::start(Api::Oli, Config::default()).await.unwrap();
    let wrong = Config {
        password: "not-the-password".into(),
        ..Config::default()
    };
    let client = client();
    let provider = emulated::preset_with(Api::Oli, &emulation.base_url(), &wrong);
    // 400 ms doubling (to at most 10 s): the nominal delay after the `n`th rejection.
    let nominal = |n: u32| Duration::from_millis(400) * 2u32.pow(n - 1);
    let layer = AuthLayer::builder(provider)
        .rejection_backoff(Duration::from_millis(400), Duration::from_secs(10))
        .build(client.clone());
    let svc = layer.layer(client);
    let started = Instant::now();
    let mut fast = 0;
    let mut sends = Vec::new();
    while started.elapsed() < Duration::from_secs(3) {
        let before = emulation.stats().rejected_logins;
        let err = get(&svc, &emulation).await.unwrap_err();
        let err = err.downcast_ref::<AuthError>().unwrap();
        assert!(err.kind() == ErrorKind::LoginRejected, "{err}");
        if emulation.stats().rejected_logins > before {
            sends.push(started.elapsed());
            assert!(err.retry_in().is_none());
        } else {
            assert!(err.retry_in().is_some());
            fast += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 400 ms, 800 ms, 1.6 s (each plus up to half again): at most 4 sends in 3 s.
    assert!(
        (2..=4).contains(&sends.len()),
        "credentials sent at {sends:?}"
    );
    for (i, pair) in sends.windows(2).enumerate() {
        assert!(pair[1] - pair[0] >= nominal(i as u32 + 1), "{sends:?}");
    }
    assert!(fast >= 50, "{fast} requests failed fast");
    assert_eq!(emulation.stats().logins, 0);
    assert_eq!(emulation.stats().violations, 0);
}
