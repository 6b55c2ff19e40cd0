//! Load and lifecycle: concurrent clients, shutdown.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_with_one_token_grant_exactly_one() {
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        let (_, refresh) = login(&client, &emulation).await;
        emulation.revoke_access_tokens();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let request = refresh_request(&emulation, &refresh);
            let client = client.clone();
            tasks.spawn(async move { send(&client, request).await.status });
        }
        let mut ok = 0;
        while let Some(status) = tasks.join_next().await {
            ok += u32::from(status.unwrap() == StatusCode::OK);
        }
        assert_eq!(ok, 1, "{api:?}");
        let s = emulation.stats();
        assert_eq!(auth_stats(s), stats(1, 1, 0, 0, 31), "{api:?}");
        assert_eq!(s.refresh_token_reuse, 31, "{api:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serves_thousands_of_concurrent_resource_requests() {
    const REQUESTS: usize = 4000;
    const CONCURRENCY: usize = 64;
    let client = client();
    let emulation = start(Api::OAuth2).await;
    let (access, _) = login(&client, &emulation).await;
    let url = emulation.resource_url();
    let bearer = format!("Bearer {access}");
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..CONCURRENCY {
        let (client, url, bearer) = (client.clone(), url.clone(), bearer.clone());
        tasks.spawn(async move {
            for _ in (worker..REQUESTS).step_by(CONCURRENCY) {
                let req = request(Method::GET, &url, &[("authorization", &bearer)], "");
                assert_eq!(send(&client, req).await.status, StatusCode::OK);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(emulation.stats().resource_ok, REQUESTS as u64);
    // Generous: even a debug build on a busy CI box does thousands per second.
    assert!(
        elapsed < Duration::from_secs(20),
        "{REQUESTS} requests took {elapsed:?}"
    );
}

#[tokio::test]
async fn dropping_the_emulation_stops_the_server() {
    let emulation = start(Api::Simacan).await;
    let addr = emulation.addr();
    // Keep a connection open across the drop: it must be closed too.
    let mut open = TcpStream::connect(addr).await.unwrap();
    drop(emulation);
    let deadline = std::time::Instant::now() + DEADLINE;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = open
        .write_all(b"GET /api/v1/resource HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(DEADLINE, open.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the open connection was not closed");
    assert!(answer.is_empty());
}

#[tokio::test]
async fn debug_output_redacts_secrets() {
    let config = Config {
        password: "pw-SECRET".into(),
        api_key: "key-SECRET".into(),
        client_secret: "cs-SECRET".into(),
        ..Config::default()
    };
    let printed = format!("{config:?}");
    assert!(!printed.contains("SECRET"), "{printed}");
    assert!(printed.contains("[redacted]"));
    assert!(printed.contains("user@example.com"));
    let emulation = Emulation::start(Api::OAuth2, config).await.unwrap();
    let printed = format!("{emulation:?}");
    assert!(!printed.contains("SECRET"), "{printed}");
    assert_eq!(
        format!("{:?}", emulation.config()),
        format!("{:?}", {
            let mut c = emulation.config().clone();
            c.password = "other".into();
            c
        })
    );
    let fault = format!("{:?}", Fault::Status(500, "x", "text/plain"));
    assert!(fault.contains("500"));
}

#[test]
fn config_defaults_match_the_documents() {
    let c = Config::default();
    assert_eq!(c.access_lifetime, Duration::from_secs(300));
    assert_eq!(c.refresh_lifetime, Duration::from_secs(1800));
    assert_eq!(c.username, "user@example.com");
    assert_eq!(c.password, "correct horse battery staple");
    assert_eq!(c.api_key, "c5f90f4b-9d69-416a-8611-8a8c8d605c36");
    assert_eq!(c.client_id, "apiclient");
    assert_eq!(c.client_secret, "client-secret");
    assert!(c.rotate_refresh_tokens);
    assert_eq!(Stats::default().violations, 0);
}
