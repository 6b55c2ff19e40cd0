//! The demo's `--metrics-addr` against an emulation: the auth calls its Prometheus endpoint
//! reports, by kind and outcome, are the auth server's own counts, exactly.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tower_token_auth_emulation::{Api, Config, Emulation, Stats};

use crate::support::demo::demo_binary;

/// `(kind, outcome)` → count, from `tower_token_auth_auth_calls_total{provider="simacan",...}`.
type Calls = BTreeMap<(String, String), u64>;

/// One GET of the metrics page: the status line and the body.
fn scrape(addr: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("the metrics endpoint accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// The auth-call counters of the `simacan` layer in a Prometheus text page.
fn auth_calls(page: &str) -> Calls {
    let mut calls = Calls::new();
    for line in page.lines() {
        let Some(rest) = line.strip_prefix("tower_token_auth_auth_calls_total{") else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").expect("labels then a value");
        let labels: BTreeMap<&str, &str> = labels
            .split(',')
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        assert_eq!(labels.len(), 3, "{line}: provider, kind, outcome");
        assert_eq!(labels["provider"], "simacan", "{line}");
        let value: f64 = value.trim().parse().expect("a number");
        calls.insert(
            (labels["kind"].to_owned(), labels["outcome"].to_owned()),
            value as u64,
        );
    }
    calls
}

/// What the auth server counted, as the layer's metrics say it: successful logins and
/// refreshes, and the failed ones (an outage's 503s and refusals).
fn expected(stats: &Stats) -> (u64, u64, u64) {
    let failed = stats.faults + stats.rejected_logins + stats.rejected_refreshes;
    (stats.logins, stats.refreshes, failed)
}

fn reported(calls: &Calls) -> (u64, u64, u64) {
    let count = |kind: &str, ok: bool| -> u64 {
        calls
            .iter()
            .filter(|((k, outcome), _)| k == kind && (outcome == "ok") == ok)
            .map(|(_, n)| n)
            .sum()
    };
    (
        count("login", true),
        count("refresh", true),
        count("login", false) + count("refresh", false),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demos_metrics_agree_with_the_auth_servers_counts() {
    let _load = crate::support::one_load_at_a_time().await;
    let config = Config {
        access_lifetime: Duration::from_secs(2),
        refresh_lifetime: Duration::from_secs(120),
        ..Config::default()
    };
    let emulation = Emulation::start(Api::Simacan, config).await.unwrap();
    let c = emulation.config().clone();
    let demo = demo_binary();
    let mut child = Command::new(demo)
        .args(["--provider", "simacan", "--auth-url", &emulation.base_url()])
        .args(["--api-url", &emulation.resource_url()])
        .args(["--username", &c.username, "--password", &c.password])
        .args(["--concurrency", "4", "--duration", "5", "--json"])
        .args(["--metrics-addr", "127.0.0.1:0", "--metrics-hold"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo starts");
    // The auth server goes down while the first token's renewal is due, and comes back.
    emulation.set_outage(Duration::from_secs(1), Duration::from_secs(3));
    let (stderr, stdout) = (child.stderr.take().unwrap(), child.stdout.take().unwrap());
    let (addr_tx, addr_rx) = mpsc::channel();
    let stderr_lines = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("metrics: http://") {
                let _ = addr_tx.send(url.trim_end_matches("/metrics").to_owned());
            }
            all.push(line);
        }
        all
    });
    let (report_tx, report_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with('{') {
                let _ = report_tx.send(line);
            }
        }
    });

    let finished = tokio::task::spawn_blocking(move || {
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the demo prints its metrics address");
        // During the run, the endpoint answers.
        let (status, _) = scrape(&addr);
        assert!(status.contains(" 200 "), "{status}");
        let report = report_rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the demo's report");
        (addr, report)
    })
    .await;
    let (addr, report) = match finished {
        Ok(done) => done,
        Err(panic) => {
            let _ = child.kill();
            let _ = child.wait();
            std::panic::resume_unwind(panic.into_panic());
        }
    };
    let report: serde_json::Value = serde_json::from_str(&report).expect("JSON");

    // An auth call may still be landing (a renewal that the last request started): the counts
    // are compared once both sides have seen it, within a bound.
    let mut last = (Calls::new(), expected(&emulation.stats()));
    for _ in 0..300 {
        let addr = addr.clone();
        let page = tokio::task::spawn_blocking(move || scrape(&addr).1)
            .await
            .unwrap();
        let stats = emulation.stats();
        last = (auth_calls(&page), expected(&stats));
        if reported(&last.0) == last.1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(child.stdin.take());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    let stderr = stderr_lines.join().unwrap();
    let (calls, (logins, refreshes, failed)) = last;
    assert!(status.success(), "{status}: {stderr:#?}");
    assert_eq!(
        reported(&calls),
        (logins, refreshes, failed),
        "the metrics {calls:?} against the server's {:?}",
        emulation.stats()
    );
    println!(
        "auth calls by kind and outcome: {calls:?}; the server: {:?}",
        emulation.stats()
    );
    // The run exercised each count.
    assert!(logins >= 1 && refreshes >= 1 && failed >= 1, "{calls:?}");
    // The report's counts are the snapshot's: every call started, whatever its outcome.
    let started = |kind: &str| -> u64 {
        calls
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|(_, n)| n)
            .sum()
    };
    assert_eq!(report["logins"], started("login"), "{report}");
    assert_eq!(report["refreshes"], started("refresh"), "{report}");
    assert_eq!(
        emulation.stats().violations,
        0,
        "{:?}",
        emulation.violation_reasons()
    );
}
