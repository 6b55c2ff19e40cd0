//! A fleet of demo processes sharing one session through a real Redis server, against the
//! emulations whose refresh tokens are single-use (Tradecloud, OLI), with 2 s access tokens.
//!
//! Ignored by default (each run takes about half a minute of wall time and several processes);
//! `.ci/run` runs it in release:
//!
//! ```text
//! cargo test --release --all-features --test stores -- --ignored --nocapture fleet::
//! ```
//!
//! The demo binary is built (or found up to date) with the test's own profile and features.
#![cfg(all(unix, feature = "redis"))]

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tower_token_auth_emulation::{Api, Config, Emulation, Fault, Stats};

use crate::support::demo::demo_binary;
use crate::support::redis_server::RedisServer;

const TOKEN_LIFETIME: Duration = Duration::from_secs(2);
const RUN_SECS: u64 = 20;
const PROCESSES: usize = 3;
const IN_FLIGHT: u32 = 32;

fn emulation_config() -> Config {
    Config {
        access_lifetime: TOKEN_LIFETIME,
        refresh_lifetime: Duration::from_secs(600),
        ..Config::default()
    }
}

/// One demo process in external mode against `emulation`, sharing `store`.
struct Demo {
    child: Child,
}

impl Demo {
    fn start(binary: &PathBuf, emulation: &Emulation, store: &str, extra: &[&str]) -> Self {
        let c = emulation.config();
        let provider = match emulation.api() {
            Api::Tradecloud => "tradecloud",
            Api::Oli => "oli",
            other => panic!("no fleet run for {other:?}"),
        };
        let child = Command::new(binary)
            .args(["--provider", provider, "--auth-url", &emulation.base_url()])
            .args(["--api-url", &emulation.resource_url()])
            .args(["--username", &c.username, "--password", &c.password])
            .args(["--client-id", &c.client_id])
            .args(["--store", store, "--concurrency", &IN_FLIGHT.to_string()])
            .args(["--json"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the demo starts");
        Self { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process and reads its `--json` report.
    fn report(mut self) -> serde_json::Value {
        let mut out = String::new();
        let mut stdout = self.child.stdout.take().expect("piped stdout");
        stdout.read_to_string(&mut out).expect("demo output");
        let status = self.child.wait().expect("the demo exits");
        assert!(status.success(), "demo failed: {status}\n{out}");
        let last = out.lines().last().expect("a report line");
        serde_json::from_str(last).expect("a JSON report")
    }
}

fn field(report: &serde_json::Value, name: &str) -> u64 {
    report[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} in {report}"))
}

fn print_run(name: &str, stats: &Stats, reports: &[serde_json::Value]) {
    println!(
        "{name}: server saw {} logins, {} refreshes, {} refresh-token reuses, {} violations",
        stats.logins, stats.refreshes, stats.refresh_token_reuse, stats.violations
    );
    for r in reports {
        println!(
            "  process: {} requests, {} failed, {} logins, {} refreshes, {} adopted, p99 {} ms",
            field(r, "requests"),
            field(r, "failed"),
            field(r, "logins"),
            field(r, "refreshes"),
            field(r, "adopted"),
            r["p99_ms"]
        );
    }
}

/// Three processes per API for 20 s, 32 requests in flight each: the fleet logs in once and
/// renews about as often as one process would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 20 s fleet run; .ci/run runs it in release"]
async fn three_processes_share_one_session_per_api() {
    let binary = demo_binary();
    let redis = RedisServer::start();
    let store = redis.url(0);
    let duration = RUN_SECS.to_string();
    let mut runs = Vec::new();
    for api in [Api::Tradecloud, Api::Oli] {
        let emulation = Emulation::start(api, emulation_config()).await.unwrap();
        let demos: Vec<_> = (0..PROCESSES)
            .map(|_| Demo::start(&binary, &emulation, &store, &["--duration", &duration]))
            .collect();
        // Beside it, one process on its own: what one renewal schedule costs.
        let alone = Emulation::start(api, emulation_config()).await.unwrap();
        let lone = Demo::start(&binary, &alone, "memory", &["--duration", &duration]);
        runs.push((api, emulation, demos, alone, lone));
    }
    for (api, emulation, demos, alone, lone) in runs {
        let (reports, lone) = tokio::task::spawn_blocking(move || {
            let reports: Vec<_> = demos.into_iter().map(Demo::report).collect();
            (reports, lone.report())
        })
        .await
        .unwrap();
        let stats = emulation.stats();
        print_run(&format!("{api:?}, {PROCESSES} processes"), &stats, &reports);
        let baseline = alone.stats();
        print_run(&format!("{api:?}, one process alone"), &baseline, &[lone]);

        assert_eq!(stats.logins, 1, "{api:?}: one login for the fleet");
        assert_eq!(stats.refresh_token_reuse, 0, "{api:?}");
        assert_eq!(stats.violations, 0, "{api:?}");
        assert_eq!(stats.rejected_refreshes, 0, "{api:?}");
        for report in &reports {
            assert_eq!(field(report, "failed"), 0, "{api:?}: {report}");
            assert!(field(report, "requests") > 0, "{api:?}: {report}");
        }
        let client_logins: u64 = reports.iter().map(|r| field(r, "logins")).sum();
        let client_refreshes: u64 = reports.iter().map(|r| field(r, "refreshes")).sum();
        assert_eq!(
            (client_logins, client_refreshes),
            (stats.logins, stats.refreshes)
        );
        // One process renews a 2 s token no more often than every 0.8 s (its lead ahead of expiry is
        // at most half the lifetime, plus a fifth of that as jitter): 25 renewals in 20 s. Three
        // processes renewing on their own would need three times as many.
        let one_process_at_most = RUN_SECS * 1000 / (TOKEN_LIFETIME.as_millis() as u64 * 2 / 5);
        assert!(
            stats.refreshes <= one_process_at_most,
            "{api:?}: {} refreshes in {RUN_SECS} s, more than one process needs ({one_process_at_most})",
            stats.refreshes
        );
        // And about as many as the process alone needed (its jitter differs by a few).
        assert!(
            stats.refreshes <= baseline.refreshes + baseline.refreshes / 4 + 1,
            "{api:?}: the fleet refreshed {} times, one process alone {}",
            stats.refreshes,
            baseline.refreshes
        );
        let adopted: u64 = reports.iter().map(|r| field(r, "adopted")).sum();
        assert!(adopted >= stats.refreshes, "{api:?}: {adopted} adopted");
    }
}

/// The process holding the lease dies (SIGKILL) in the middle of its refresh: the others renew
/// once its lease lapses, and none of their requests fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a fleet run with a killed process; .ci/run runs it in release"]
async fn a_killed_lease_holder_holds_the_others_back_for_its_lease_ttl_only() {
    const LEASE_TTL: Duration = Duration::from_secs(4);
    let binary = demo_binary();
    let redis = RedisServer::start();
    let store = redis.url(0);
    let emulation = Emulation::start(Api::Tradecloud, emulation_config())
        .await
        .unwrap();
    let lease_ttl = LEASE_TTL.as_secs_f64().to_string();
    let extra = [
        "--duration",
        "12",
        "--lease-ttl",
        &lease_ttl,
        "--auth-timeout",
        "2",
    ];
    let mut demos: Vec<_> = (0..PROCESSES)
        .map(|_| Demo::start(&binary, &emulation, &store, &extra))
        .collect();
    // Running and sharing the session.
    while emulation.stats().resource_ok < 100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The next renewal hangs (the server never answers, nor processes it) ...
    let faults_before = emulation.stats().faults;
    emulation.set_fault(Some(Fault::Hang));
    while emulation.stats().faults == faults_before {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lease_key = "tower-token-auth:lease:tradecloud:";
    let holder = loop {
        let keys = redis.command(&format!("KEYS {lease_key}*"));
        if let Some(key) = keys.lines().find(|l| l.starts_with(lease_key)) {
            let value = redis.command(&format!("GET {key}"));
            if let Some(pid) = value.lines().nth(1).and_then(|v| v.split(':').nth(1)) {
                break pid.parse::<u32>().expect("a process id");
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // ... and the process holding the lease dies in it.
    let refreshes_before = emulation.stats().refreshes;
    let at = demos
        .iter()
        .position(|d| d.pid() == holder)
        .expect("a demo");
    let mut killed = demos.remove(at);
    killed.child.kill().expect("SIGKILL");
    let killed_at = Instant::now();
    let _ = killed.child.wait();
    emulation.set_fault(None);

    while emulation.stats().refreshes == refreshes_before {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let renewed_after = killed_at.elapsed();
    let reports: Vec<_> = tokio::task::spawn_blocking(move || {
        demos.into_iter().map(Demo::report).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let stats = emulation.stats();
    print_run("Tradecloud, lease holder killed", &stats, &reports);
    println!(
        "  renewed {} ms after the kill (lease TTL {} ms)",
        renewed_after.as_millis(),
        LEASE_TTL.as_millis()
    );
    assert!(renewed_after <= LEASE_TTL + Duration::from_secs(1));
    assert_eq!(stats.logins, 1, "the hung refresh never spent its token");
    assert_eq!(stats.refresh_token_reuse, 0);
    assert_eq!(stats.violations, 0);
    for report in &reports {
        assert_eq!(field(report, "failed"), 0, "{report}");
    }
}

/// A process restarted within its token's lifetime, with a file store: no login on restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs the demo binary; .ci/run runs it in release"]
async fn a_restart_with_a_file_store_logs_in_zero_times() {
    let binary = demo_binary();
    let config = Config {
        access_lifetime: Duration::from_secs(300),
        ..emulation_config()
    };
    let emulation = Emulation::start(Api::Tradecloud, config).await.unwrap();
    let dir = std::env::temp_dir().join(format!("tower-token-auth-fleet-{}", std::process::id()));
    let store = format!("file:{}", dir.display());
    let run = || Demo::start(&binary, &emulation, &store, &["--requests", "2000"]).report();
    let first = tokio::task::block_in_place(run);
    let second = tokio::task::block_in_place(run);
    let _ = std::fs::remove_dir_all(&dir);
    print_run(
        "Tradecloud, restarted",
        &emulation.stats(),
        &[first.clone(), second.clone()],
    );

    assert_eq!((field(&first, "logins"), field(&first, "adopted")), (1, 0));
    assert_eq!(
        (field(&second, "logins"), field(&second, "adopted")),
        (0, 1)
    );
    assert_eq!(field(&second, "failed"), 0);
    let stats = emulation.stats();
    assert_eq!((stats.logins, stats.refreshes), (1, 0));
}
