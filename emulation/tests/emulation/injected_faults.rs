//! Injected faults: each kind, the rate, the outage window, and what they count.

use crate::support::*;

/// The counters fault injection added.
fn fault_stats(s: Stats) -> (u64, u64, u64, u64) {
    (
        s.faults,
        s.outage_calls,
        s.needless_logins,
        s.refresh_token_reuse,
    )
}

/// Refreshes with `refresh` as a correct client would now: Intergiro refuses a refresh while
/// the access token lives, so its access tokens are revoked first.
async fn refresh_now(client: &HttpClient, emulation: &Emulation, refresh: &str) -> Reply {
    if emulation.api() == Api::Intergiro {
        emulation.revoke_access_tokens();
    }
    send(client, refresh_request(emulation, refresh)).await
}

fn assert_html(reply: &Reply, status: StatusCode, api: Api) {
    assert_eq!(reply.status, status, "{api:?}");
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/html"),
        "{api:?}: {content_type}"
    );
    assert!(
        String::from_utf8_lossy(&reply.body).contains("<html>"),
        "{api:?}: {reply:?}"
    );
}

/// `request` as raw HTTP/1.1 bytes, with `Connection: close` so the answer ends at EOF.
async fn raw_bytes(request: Request<Full<Bytes>>) -> Vec<u8> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let target = parts.uri.path_and_query().unwrap().as_str();
    let mut head = format!(
        "{} {target} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: {}\r\n",
        parts.method,
        body.len()
    );
    for (name, value) in &parts.headers {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}

/// Sends one raw request and reads until the server closes the connection.
async fn raw_exchange(emulation: &Emulation, request: Request<Full<Bytes>>) -> Vec<u8> {
    let mut stream = TcpStream::connect(emulation.addr()).await.unwrap();
    stream.write_all(&raw_bytes(request).await).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("the server neither answered nor closed")
        .unwrap_or_default();
    answer
}

#[test]
fn fault_kinds_all_lists_every_kind_once() {
    let all = FaultKind::all();
    assert_eq!(all.len(), 10);
    assert!(all.contains(&FaultKind::Slow(Duration::from_millis(300))));
    assert!(all.contains(&FaultKind::TooManyRequests {
        retry_after_secs: 1
    }));
    for (i, kind) in all.iter().enumerate() {
        assert!(!all[i + 1..].contains(kind), "{kind:?} twice");
    }
}

#[tokio::test]
async fn status_and_reset_faults_answer_before_any_work() {
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        let (access, refresh) = login(&client, &emulation).await;
        let before = emulation.stats();

        emulation.set_fault_rate(1.0, &[FaultKind::InternalError]);
        for req in [
            login_request(&emulation),
            refresh_request(&emulation, &refresh),
        ] {
            let reply = send(&client, req).await;
            assert_html(&reply, StatusCode::INTERNAL_SERVER_ERROR, api);
        }
        emulation.set_fault_rate(1.0, &[FaultKind::Unavailable]);
        for req in [
            login_request(&emulation),
            refresh_request(&emulation, &refresh),
        ] {
            let reply = send(&client, req).await;
            assert_html(&reply, StatusCode::SERVICE_UNAVAILABLE, api);
        }
        emulation.set_fault_rate(1.0, &[FaultKind::ApiError]);
        for req in [
            login_request(&emulation),
            refresh_request(&emulation, &refresh),
        ] {
            let reply = send(&client, req).await;
            assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{api:?}");
            let body = reply.json();
            if api == Api::UnionService {
                assert_eq!(body["title"], "Internal Error", "{api:?}: {body}");
            } else {
                assert_eq!(body["error"], "server_error", "{api:?}: {body}");
            }
        }
        emulation.set_fault_rate(
            1.0,
            &[FaultKind::TooManyRequests {
                retry_after_secs: 7,
            }],
        );
        for req in [
            login_request(&emulation),
            refresh_request(&emulation, &refresh),
        ] {
            let reply = send(&client, req).await;
            assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{api:?}");
            assert_eq!(reply.header("retry-after"), Some("7"), "{api:?}");
            assert!(reply
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/plain")));
            assert_eq!(&reply.body[..], b"Too Many Requests");
        }

        emulation.set_fault_rate(1.0, &[FaultKind::Reset]);
        for req in [
            login_request(&emulation),
            refresh_request(&emulation, &refresh),
        ] {
            let outcome = tokio::time::timeout(DEADLINE, client.request(req))
                .await
                .expect("a reset must not hang");
            let error = outcome.expect_err("a reset connection answered");
            assert!(!error.is_connect(), "{api:?}: {error:?}");
        }
        // On the wire: the connection closes with not one byte written.
        let answer = raw_exchange(&emulation, login_request(&emulation)).await;
        assert!(
            answer.is_empty(),
            "{api:?}: {:?}",
            String::from_utf8_lossy(&answer)
        );

        // The resource is never faulted; no token was issued or consumed, nothing was counted
        // but the faults.
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::OK
        );
        let after = emulation.stats();
        assert_eq!(auth_stats(after), auth_stats(before), "{api:?}");
        assert_eq!(fault_stats(after), (11, 0, 0, 0), "{api:?}");

        emulation.set_fault_rate(0.0, &[]);
        // The same raw exchange answers normally once faults are off: the empty answer above was
        // the fault, not the helper.
        let answer = raw_exchange(&emulation, login_request(&emulation)).await;
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{api:?}");
        let reply = refresh_now(&client, &emulation, &refresh).await;
        assert_eq!(reply.status, StatusCode::OK, "{api:?}");
        assert_eq!(
            auth_stats(emulation.stats()),
            stats(2, 1, 0, 0, 0),
            "{api:?}"
        );
    }
}

#[tokio::test]
async fn slow_fault_delays_then_processes_the_call() {
    const SLOW: Duration = Duration::from_millis(150);
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        emulation.set_fault_rate(1.0, &[FaultKind::Slow(SLOW)]);
        let started = std::time::Instant::now();
        let (access, refresh) = login(&client, &emulation).await;
        assert!(
            started.elapsed() >= SLOW,
            "{api:?}: {:?}",
            started.elapsed()
        );
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::OK
        );
        let started = std::time::Instant::now();
        let reply = refresh_now(&client, &emulation, &refresh).await;
        assert!(
            started.elapsed() >= SLOW,
            "{api:?}: {:?}",
            started.elapsed()
        );
        let (access, _) = tokens(api, &reply);
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::OK
        );
        let s = emulation.stats();
        assert_eq!(auth_stats(s), stats(1, 1, 0, 0, 0), "{api:?}");
        assert_eq!(fault_stats(s), (2, 0, 0, 0), "{api:?}");
    }
}

/// Checks the faulty 200 of `kind` and returns nothing a client could use.
fn assert_spoiled(api: Api, kind: FaultKind, reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "{api:?} {kind:?}");
    assert!(reply.header("set-authorization").is_none(), "{api:?}");
    assert!(reply.header("set-refresh-token").is_none(), "{api:?}");
    match kind {
        FaultKind::Malformed => {
            assert_eq!(reply.header("content-type"), Some("application/json"));
            assert!(
                serde_json::from_slice::<Value>(&reply.body).is_err(),
                "{api:?}: {:?}",
                reply.body
            );
        }
        _ if api == Api::Tradecloud => assert!(reply.body.is_empty(), "{api:?} {kind:?}"),
        FaultKind::NoToken => {
            let body = reply.json();
            assert!(body.is_object(), "{api:?}: {body}");
            assert!(body.get("access_token").is_none(), "{api:?}: {body}");
            assert!(body.get("refresh_token").is_none(), "{api:?}: {body}");
        }
        FaultKind::CrLfToken => {
            let body = reply.json();
            assert_eq!(body["access_token"], "abc\r\ndef", "{api:?}");
            assert!(body.get("refresh_token").is_none(), "{api:?}: {body}");
        }
        FaultKind::StringExpiry => {
            let body = reply.json();
            assert_eq!(body["access_token"], "never-issued", "{api:?}");
            assert_eq!(body["expires_in"], "soon", "{api:?}");
            assert!(body.get("refresh_token").is_none(), "{api:?}: {body}");
        }
        _ => unreachable!("not a 2xx fault: {kind:?}"),
    }
}

#[tokio::test]
async fn two_hundred_faults_do_the_work_and_deliver_nothing_usable() {
    let client = client();
    let kinds = [
        FaultKind::Malformed,
        FaultKind::NoToken,
        FaultKind::CrLfToken,
        FaultKind::StringExpiry,
    ];
    for api in ALL {
        let emulation = start(api).await;
        let (_, mut refresh) = login(&client, &emulation).await;
        for kind in kinds {
            emulation.set_fault_rate(1.0, &[kind]);
            let reply = send(&client, login_request(&emulation)).await;
            assert_spoiled(api, kind, &reply);
            let reply = refresh_now(&client, &emulation, &refresh).await;
            assert_spoiled(api, kind, &reply);

            // The refresh was done: the token it presented is spent, re-sending it is reuse.
            emulation.set_fault_rate(0.0, &[]);
            let again = refresh_now(&client, &emulation, &refresh).await;
            assert!(!again.status.is_success(), "{api:?} {kind:?}");
            // The refresh tokens issued in the two spoiled calls are dead too: this login finds
            // no live refresh token, so it is not needless (the spoiled login was: it came while
            // `refresh` was still good).
            let needless = emulation.stats().needless_logins;
            refresh = login(&client, &emulation).await.1;
            assert_eq!(
                emulation.stats().needless_logins,
                needless,
                "{api:?} {kind:?}"
            );
        }
        let s = emulation.stats();
        // Logins: the first, then per kind one spoiled and one clean.
        assert_eq!(auth_stats(s), stats(9, 4, 0, 0, 4), "{api:?}");
        assert_eq!(fault_stats(s), (8, 0, 4, 4), "{api:?}");
    }
}

#[tokio::test]
async fn two_hundred_faults_leave_rejections_and_violations_alone() {
    let client = client();
    let kinds = [
        FaultKind::Malformed,
        FaultKind::NoToken,
        FaultKind::CrLfToken,
        FaultKind::StringExpiry,
    ];
    for api in ALL {
        let emulation = start(api).await;
        let (_, used) = login(&client, &emulation).await;
        let refresh = tokens(api, &refresh_now(&client, &emulation, &used).await)
            .1
            .unwrap();
        emulation.set_fault_rate(1.0, &[FaultKind::Malformed]);
        // Rejected: an unknown refresh token. A violation: a spent one.
        let rejected = refresh_now(&client, &emulation, "no-such-token").await;
        assert!(!rejected.status.is_success(), "{api:?}");
        let reused = refresh_now(&client, &emulation, &used).await;
        assert!(!reused.status.is_success(), "{api:?}");
        let s = emulation.stats();
        assert_eq!(auth_stats(s), stats(1, 1, 0, 1, 1), "{api:?}");
        assert_eq!(fault_stats(s), (0, 0, 0, 1), "{api:?}");
        // Still good: neither answer was a success to spoil.
        let reply = refresh_now(&client, &emulation, &refresh).await;
        assert_spoiled(api, FaultKind::Malformed, &reply);
        assert_eq!(emulation.stats().faults, 1, "{api:?}");
    }

    // Tradecloud's quirk is a violation answered 200 without tokens: nothing to spoil either.
    let emulation = start(Api::Tradecloud).await;
    let (access, refresh) = login(&client, &emulation).await;
    emulation.set_fault_rate(1.0, &kinds);
    let mut quirk = refresh_request(&emulation, &refresh);
    quirk.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {access}")).unwrap(),
    );
    let reply = send(&client, quirk).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    let s = emulation.stats();
    assert_eq!((s.violations, s.faults), (1, 0));
}

#[tokio::test]
async fn rate_one_faults_every_call_and_rate_zero_none() {
    let client = client();
    let emulation = Emulation::start(
        Api::Simacan,
        Config {
            fault_seed: Some(11),
            ..Config::default()
        },
    )
    .await
    .unwrap();
    emulation.set_fault_rate(1.0, &[FaultKind::Unavailable]);
    for _ in 0..20 {
        let reply = send(&client, login_request(&emulation)).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(auth_stats(emulation.stats()), stats(0, 0, 0, 0, 0));
    assert_eq!(emulation.stats().faults, 20);

    emulation.set_fault_rate(0.0, &FaultKind::all());
    for _ in 0..20 {
        login(&client, &emulation).await;
    }
    let s = emulation.stats();
    assert_eq!((s.logins, s.faults), (20, 20));

    // Every kind at rate 1: every call counts a fault, whatever its kind.
    emulation.set_fault_rate(1.0, &FaultKind::all());
    for _ in 0..24 {
        let _ = tokio::time::timeout(DEADLINE, client.request(login_request(&emulation)))
            .await
            .expect("no fault kind hangs");
    }
    assert_eq!(emulation.stats().faults, 44);
}

/// What a sequence of logins met, as far as a client can tell (Slow answers normally).
async fn outcomes(seed: u64, calls: usize) -> (Vec<String>, u64) {
    let client = client();
    let emulation = Emulation::start(
        Api::OAuth2,
        Config {
            fault_seed: Some(seed),
            ..Config::default()
        },
    )
    .await
    .unwrap();
    emulation.set_fault_rate(
        0.5,
        &[
            FaultKind::InternalError,
            FaultKind::Unavailable,
            FaultKind::Reset,
            FaultKind::Malformed,
            FaultKind::NoToken,
            FaultKind::CrLfToken,
        ],
    );
    let mut seen = Vec::new();
    for _ in 0..calls {
        let outcome = tokio::time::timeout(DEADLINE, client.request(login_request(&emulation)))
            .await
            .expect("no fault kind hangs");
        seen.push(match outcome {
            Err(_) => "reset".to_owned(),
            Ok(response) => {
                let status = response.status();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                let usable = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["access_token"].as_str().map(|t| !t.contains('\n')))
                    .unwrap_or(false);
                format!("{status} {usable}")
            }
        });
    }
    (seen, emulation.stats().faults)
}

#[tokio::test]
async fn a_fault_seed_makes_the_draws_repeatable() {
    let (first, faults) = outcomes(5, 40).await;
    assert_eq!(outcomes(5, 40).await, (first.clone(), faults));
    // Half the calls, give or take, and every fault is visible to the client here.
    let plain = first.iter().filter(|o| *o == "200 OK true").count() as u64;
    assert_eq!(faults, 40 - plain, "{first:?}");
    assert!((8..=32).contains(&faults), "{first:?}");
}

#[tokio::test]
async fn outage_answers_503_inside_its_window_only() {
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        let (access, refresh) = login(&client, &emulation).await;
        let set_at = std::time::Instant::now();
        emulation.set_outage(Duration::ZERO, Duration::from_millis(300));
        for req in [
            login_request(&emulation),
            refresh_request(&emulation, &refresh),
        ] {
            let reply = send(&client, req).await;
            assert_html(&reply, StatusCode::SERVICE_UNAVAILABLE, api);
        }
        // The protected resource keeps working through an auth outage.
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::OK
        );
        let s = emulation.stats();
        assert_eq!(auth_stats(s), stats(1, 0, 0, 0, 0), "{api:?}");
        assert_eq!(fault_stats(s), (2, 2, 0, 0), "{api:?}");

        tokio::time::sleep(Duration::from_millis(400).saturating_sub(set_at.elapsed())).await;
        // The refresh token was not consumed by the outage.
        let reply = refresh_now(&client, &emulation, &refresh).await;
        assert_eq!(reply.status, StatusCode::OK, "{api:?}");
        login(&client, &emulation).await;
        let s = emulation.stats();
        assert_eq!(auth_stats(s), stats(2, 1, 0, 0, 0), "{api:?}");
        // That last login was made while the refreshed pair's refresh token was live.
        assert_eq!(fault_stats(s), (2, 2, 1, 0), "{api:?}");
    }
}

#[tokio::test]
async fn outage_window_can_lie_ahead_be_cleared_and_yield_to_a_fixed_fault() {
    let client = client();
    let emulation = start(Api::Oli).await;
    emulation.set_outage(Duration::from_secs(60), Duration::from_secs(120));
    login(&client, &emulation).await;
    assert_eq!(fault_stats(emulation.stats()), (0, 0, 0, 0));

    emulation.set_outage(Duration::ZERO, Duration::from_secs(60));
    let reply = send(&client, login_request(&emulation)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    // A fixed fault takes precedence; the call still arrived inside the window.
    emulation.set_fault(Some(Fault::Status(502, "bad gateway", "text/plain")));
    let reply = send(&client, login_request(&emulation)).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    emulation.set_fault(None);
    // An outage takes precedence over random faults.
    emulation.set_fault_rate(1.0, &[FaultKind::Reset]);
    let reply = send(&client, login_request(&emulation)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    emulation.set_fault_rate(0.0, &[]);
    assert_eq!(fault_stats(emulation.stats()), (3, 3, 0, 0));

    emulation.clear_outage();
    login(&client, &emulation).await;
    let s = emulation.stats();
    assert_eq!(auth_stats(s), stats(2, 0, 0, 0, 0));
    assert_eq!(fault_stats(s), (3, 3, 1, 0));
}

#[tokio::test]
async fn needless_logins_are_logins_while_a_refresh_token_is_live() {
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        login(&client, &emulation).await;
        assert_eq!(emulation.stats().needless_logins, 0, "{api:?}");
        // The first refresh token is still good: this login was needless.
        let (_, refresh) = login(&client, &emulation).await;
        assert_eq!(emulation.stats().needless_logins, 1, "{api:?}");
        refresh_now(&client, &emulation, &refresh).await;
        emulation.revoke_refresh_tokens();
        // Every refresh token is revoked (or used): logging in is the only way.
        login(&client, &emulation).await;
        let s = emulation.stats();
        assert_eq!(auth_stats(s), stats(3, 1, 0, 0, 0), "{api:?}");
        assert_eq!(s.needless_logins, 1, "{api:?}");
    }

    // Expired refresh tokens do not make a login needless.
    let emulation = Emulation::start(
        Api::Simacan,
        Config {
            refresh_lifetime: Duration::from_millis(200),
            ..Config::default()
        },
    )
    .await
    .unwrap();
    login(&client, &emulation).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    login(&client, &emulation).await;
    assert_eq!(emulation.stats().needless_logins, 0);

    // Client credentials issue no refresh token, so their logins are never needless; without
    // rotation the refresh token outlives its use, so a login after a refresh still is.
    let emulation = start(Api::OAuth2).await;
    let c = emulation.config();
    for _ in 0..3 {
        let req = post_form(
            &emulation.base_url(),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
            ],
        );
        assert_eq!(send(&client, req).await.status, StatusCode::OK);
    }
    assert_eq!(emulation.stats().needless_logins, 0);
    let config = Config {
        rotate_refresh_tokens: false,
        ..Config::default()
    };
    let emulation = Emulation::start(Api::OAuth2, config).await.unwrap();
    let (_, refresh) = login(&client, &emulation).await;
    let reply = refresh_now(&client, &emulation, &refresh).await;
    assert_eq!(reply.status, StatusCode::OK);
    login(&client, &emulation).await;
    assert_eq!(emulation.stats().needless_logins, 1);
}
