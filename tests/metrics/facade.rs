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

/// The request extension naming a keyed session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Tenant(&'static str);

/// Two keyed sessions of one name: session `a` logs in with a token living 60 s, `b` logs in
/// with one living 120 s, then `a` refreshes to one living 300 s. With the sessions labelled,
/// every metric has one series per session, each with its own counts and its own token's
/// gauges; unlabelled, one series holds both sessions' counts, and the gauges hold the token that
/// landed last (`a`'s refresh).
#[tokio::test(start_paused = true)]
async fn labelled_keyed_sessions_report_a_series_each_and_unlabelled_ones_share_one() {
    use tower::{Layer, ServiceExt};
    use tower_token_auth::KeyedAuthLayer;

    for labelled in [true, false] {
        let (_capture, _tracing) = Capture::start();
        let recorder = DebuggingRecorder::new();
        let _metrics = metrics::set_default_local_recorder(&recorder);
        let server = AuthServer::new(60, AUTH_DELAY);
        // One clock for the sessions, so that their wall-clock expiries compare exactly.
        let clock = Clock::tokio();
        let builder = KeyedAuthLayer::builder(move |_: &Tenant| {
            Ok(AuthLayer::builder(TestProvider::new())
                .clock(clock)
                .metrics_name("orders-api"))
        });
        let builder = match labelled {
            true => builder.label_sessions(|tenant| format!("tenant-{}", tenant.0)),
            false => builder,
        };
        let layer = builder.build(server.transport());
        let svc = layer.layer(server.upstream());
        let send = |tenant: &'static str| {
            let mut request = crate::support::get();
            request.extensions_mut().insert(Tenant(tenant));
            svc.clone().oneshot(request)
        };

        assert_eq!(send("a").await.unwrap().status(), StatusCode::OK);
        server.set_expires_in(Some(120));
        assert_eq!(send("b").await.unwrap().status(), StatusCode::OK);
        server.set_expires_in(Some(300));
        layer
            .handle(&Tenant("a"))
            .unwrap()
            .force_refresh()
            .await
            .unwrap();
        assert_eq!(send("a").await.unwrap().status(), StatusCode::OK);
        assert_eq!((server.logins(), server.refreshes()), (2, 1));

        let reported = reported(&recorder);
        let series: BTreeMap<&str, Vec<&str>> =
            reported
                .keys()
                .fold(BTreeMap::new(), |mut series, (name, labels)| {
                    series
                        .entry(name.as_str())
                        .or_insert_with(Vec::new)
                        .push(labels.as_str());
                    series
                });
        let lifetime = "tower_token_auth_token_lifetime_seconds";
        let expiry = "tower_token_auth_token_expiry_timestamp_seconds";
        let calls = "tower_token_auth_auth_calls_total";
        let waits = "tower_token_auth_token_waits_total";
        if labelled {
            let (a, b) = (
                "provider=orders-api,session=tenant-a",
                "provider=orders-api,session=tenant-b",
            );
            for name in [lifetime, expiry, waits] {
                assert_eq!(series[name], [a, b], "{name}");
            }
            assert_eq!(
                series[calls],
                [
                    "provider=orders-api,session=tenant-a,kind=login,outcome=ok",
                    "provider=orders-api,session=tenant-a,kind=refresh,outcome=ok",
                    "provider=orders-api,session=tenant-b,kind=login,outcome=ok",
                ]
            );
            for (labels, n) in [
                ("session=tenant-a,kind=login", 1),
                ("session=tenant-a,kind=refresh", 1),
                ("session=tenant-b,kind=login", 1),
            ] {
                let labels = format!("provider=orders-api,{labels},outcome=ok");
                assert_eq!(counter(&reported, calls, &labels), n, "{labels}");
            }
            // Each session's first request waited for its login; `a`'s second found its token.
            assert_eq!(
                (counter(&reported, waits, a), counter(&reported, waits, b)),
                (1, 1)
            );
            // Each session's own token: stated lifetime less the auth server's delay.
            let (a_lifetime, b_lifetime) =
                (gauge(&reported, lifetime, a), gauge(&reported, lifetime, b));
            assert!((a_lifetime - 299.95).abs() < 1e-6, "{a_lifetime}");
            assert!((b_lifetime - 119.95).abs() < 1e-6, "{b_lifetime}");
            // `a`'s refresh was sent after `b`'s login landed (50 ms) and `b`'s request was
            // answered (10 ms), and lives 180 s longer.
            let ahead = gauge(&reported, expiry, a) - gauge(&reported, expiry, b);
            assert!((ahead - 180.06).abs() < 1e-3, "{ahead}");
        } else {
            let provider = "provider=orders-api";
            for name in [lifetime, expiry, waits] {
                assert_eq!(series[name], [provider], "{name}");
            }
            assert_eq!(
                series[calls],
                [
                    "provider=orders-api,kind=login,outcome=ok",
                    "provider=orders-api,kind=refresh,outcome=ok",
                ]
            );
            let logins = counter(
                &reported,
                calls,
                "provider=orders-api,kind=login,outcome=ok",
            );
            let refreshes = counter(
                &reported,
                calls,
                "provider=orders-api,kind=refresh,outcome=ok",
            );
            assert_eq!((logins, refreshes), (2, 1));
            assert_eq!(counter(&reported, waits, provider), 2);
            // The token that landed last: `a`'s refresh.
            let last = gauge(&reported, lifetime, provider);
            assert!((last - 299.95).abs() < 1e-6, "{last}");
        }
        // The snapshots are per session either way.
        let a = layer.handle(&Tenant("a")).unwrap().metrics();
        let b = layer.handle(&Tenant("b")).unwrap().metrics();
        assert_eq!(
            ((a.logins, a.refreshes), (b.logins, b.refreshes)),
            ((1, 1), (1, 0))
        );
    }
}
