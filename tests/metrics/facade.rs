//! The facade's metrics and the `auth_call` span for a scripted sequence: a login, a refresh
//! that fails transiently then succeeds, and a refresh and a login rejected. Every count and
//! label is exact; the clock is paused, so the durations are too.

use std::collections::BTreeMap;

use http::StatusCode;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio::time::{advance, Duration};
use tower_token_auth::{AuthLayer, Clock, ErrorKind};

use crate::support::capture::Capture;
use crate::support::{
    auth_error, send, service, AuthServer, Fault, TestProvider, AUTH_DELAY, MARK,
};

/// Each metric of the snapshot by name and labels (`k=v,...`, in the order reported).
type Reported = BTreeMap<(String, String), DebugValue>;

fn reported(recorder: &DebuggingRecorder) -> Reported {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (name, labels) = key.key().clone().into_parts();
            let labels: Vec<String> = labels
                .iter()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            ((name.as_str().to_owned(), labels.join(",")), value)
        })
        .collect()
}

/// `later` added to `earlier`: a snapshot drains the recorder's counters and histograms.
fn merged(mut earlier: Reported, later: Reported) -> Reported {
    for (key, value) in later {
        let merged = match (earlier.remove(&key), value) {
            (Some(DebugValue::Counter(a)), DebugValue::Counter(b)) => DebugValue::Counter(a + b),
            (Some(DebugValue::Histogram(mut a)), DebugValue::Histogram(b)) => {
                a.extend(b);
                DebugValue::Histogram(a)
            }
            (_, value) => value,
        };
        earlier.insert(key, merged);
    }
    earlier
}

fn counter(reported: &Reported, name: &str, labels: &str) -> u64 {
    match reported.get(&(name.to_owned(), labels.to_owned())) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{name}{{{labels}}}: {other:?} in {reported:#?}"),
    }
}

fn samples(reported: &Reported, name: &str, labels: &str) -> Vec<f64> {
    match reported.get(&(name.to_owned(), labels.to_owned())) {
        Some(DebugValue::Histogram(values)) => values.iter().map(|v| v.into_inner()).collect(),
        other => panic!("{name}{{{labels}}}: {other:?} in {reported:#?}"),
    }
}

fn gauge(reported: &Reported, name: &str, labels: &str) -> f64 {
    match reported.get(&(name.to_owned(), labels.to_owned())) {
        Some(DebugValue::Gauge(value)) => value.into_inner(),
        other => panic!("{name}{{{labels}}}: {other:?} in {reported:#?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn auth_calls_waits_and_the_token_gauges_are_reported_with_exact_labels() {
    let (capture, _tracing) = Capture::start_with_spans();
    let recorder = DebuggingRecorder::new();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    let server = AuthServer::new(60, AUTH_DELAY);
    let clock = Clock::tokio();
    let layer = AuthLayer::builder(TestProvider::new())
        .clock(clock)
        .metrics_name("orders-api")
        .build(server.transport());
    let svc = service(&server, &layer);

    // A login.
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    let reported_now = reported(&recorder);
    let lifetime = gauge(
        &reported_now,
        "tower_token_auth_token_lifetime_seconds",
        "provider=orders-api",
    );
    // The token lives 60 s from when the login was sent, and landed AUTH_DELAY later.
    assert!((lifetime - 59.95).abs() < 1e-6, "{lifetime}");
    let expiry = gauge(
        &reported_now,
        "tower_token_auth_token_expiry_timestamp_seconds",
        "provider=orders-api",
    );
    let now = clock
        .wall()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // Read after the request's answer, which the paused upstream gives 10 ms later.
    assert!((expiry - (now + 59.94)).abs() < 1e-3, "{expiry} vs {now}");

    // The token expires; its refresh meets a 503 once, then succeeds.
    advance(Duration::from_secs(61)).await;
    server.set_fault(Some(Fault::Reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "text/plain",
        "down".into(),
    )));
    server.clear_fault_after(1);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);

    // The next expiry: the refresh token and then the credentials are refused.
    advance(Duration::from_secs(61)).await;
    server.set_reject_refreshes(true);
    server.set_reject_logins(true);
    let error = send(&svc).await.unwrap_err();
    assert_eq!(auth_error(&error).kind(), ErrorKind::LoginRejected);

    let reported = merged(reported_now, reported(&recorder));
    let calls = "tower_token_auth_auth_calls_total";
    let durations = "tower_token_auth_auth_call_duration_seconds";
    let mut by_outcome = BTreeMap::new();
    for ((name, labels), value) in &reported {
        if name == calls {
            let DebugValue::Counter(n) = value else {
                panic!("{value:?}")
            };
            by_outcome.insert(labels.as_str(), *n);
            // Every call's duration is one sample: the paused auth server's delay.
            let taken = samples(&reported, durations, labels);
            assert_eq!(
                taken,
                vec![AUTH_DELAY.as_secs_f64(); *n as usize],
                "{labels}"
            );
        }
    }
    assert_eq!(
        by_outcome,
        BTreeMap::from([
            ("provider=orders-api,kind=login,outcome=ok", 1),
            ("provider=orders-api,kind=login,outcome=rejected", 1),
            ("provider=orders-api,kind=refresh,outcome=ok", 1),
            ("provider=orders-api,kind=refresh,outcome=rejected", 1),
            ("provider=orders-api,kind=refresh,outcome=transient", 1),
        ])
    );
    // Three requests found no token and waited for a flight.
    let provider = "provider=orders-api";
    assert_eq!(
        counter(&reported, "tower_token_auth_token_waits_total", provider),
        3
    );
    let waited = samples(
        &reported,
        "tower_token_auth_token_wait_duration_seconds",
        provider,
    );
    assert_eq!(waited.len(), 3, "{waited:?}");
    // Nothing else was reported: no replay, adoption, store failure or nonce retry.
    let names: Vec<&str> = reported.keys().map(|(name, _)| name.as_str()).collect();
    let mut names = names;
    names.dedup();
    assert_eq!(
        names,
        [
            "tower_token_auth_auth_call_duration_seconds",
            "tower_token_auth_auth_calls_total",
            "tower_token_auth_token_expiry_timestamp_seconds",
            "tower_token_auth_token_lifetime_seconds",
            "tower_token_auth_token_wait_duration_seconds",
            "tower_token_auth_token_waits_total",
        ]
    );

    // The snapshot counts the same calls, by kind; its failures are the logins and refreshes
    // that did not end `ok`.
    let snapshot = layer.handle().metrics();
    assert_eq!(
        (snapshot.logins, snapshot.refreshes, snapshot.auth_failures),
        (2, 3, 3)
    );
    assert_eq!(snapshot.token_waits, 3);

    // One span per call, with its outcome and duration, and no secret.
    let text = capture.text();
    let closed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("auth_call{") && l.contains(": close "))
        .collect();
    let spans: Vec<String> = closed
        .iter()
        .map(|l| {
            let start = l.find("auth_call{").unwrap();
            let end = l[start..].find('}').unwrap();
            l[start..start + end + 1].to_owned()
        })
        .collect();
    assert_eq!(
        spans,
        [
            r#"auth_call{provider="orders-api" kind="login" outcome="ok" duration_ms=50}"#,
            r#"auth_call{provider="orders-api" kind="refresh" outcome="transient" duration_ms=50}"#,
            r#"auth_call{provider="orders-api" kind="refresh" outcome="ok" duration_ms=50}"#,
            r#"auth_call{provider="orders-api" kind="refresh" outcome="rejected" duration_ms=50}"#,
            r#"auth_call{provider="orders-api" kind="login" outcome="rejected" duration_ms=50}"#,
        ],
        "{text}"
    );
    assert!(!text.contains(MARK), "{text}");
}

#[tokio::test(start_paused = true)]
async fn an_unnamed_layer_is_labelled_default() {
    let (_capture, _tracing) = Capture::start();
    let recorder = DebuggingRecorder::new();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    let server = AuthServer::new(60, AUTH_DELAY);
    let layer = crate::support::paused_layer(&server, TestProvider::new());
    assert_eq!(
        send(&service(&server, &layer)).await.unwrap(),
        StatusCode::OK
    );
    let reported = reported(&recorder);
    assert_eq!(
        counter(
            &reported,
            "tower_token_auth_auth_calls_total",
            "provider=default,kind=login,outcome=ok"
        ),
        1
    );
}
