//! mTLS under load with early revocation and a faulty token endpoint: every request served,
//! no violation, one login per token lost.

use std::time::Duration;

use http::StatusCode;
use tower::Layer;
use tower_token_auth::provider::oauth2::{Builder, ClientAuth};
use tower_token_auth::AuthLayer;
use tower_token_auth_emulation::{ClientAuth as Registered, Config, FaultKind};

use crate::certs::{self, Ca, CLIENT_NAME};
use crate::layer::get;

const REQUESTS: usize = 600;
const CONCURRENCY: usize = 8;
const SEED: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_served_under_revocation_and_token_endpoint_faults() {
    let ca = Ca::new("clients CA");
    let registered = Registered::TlsClientAuth {
        san_dns: CLIENT_NAME.to_owned(),
    };
    // Seeded: logins are one at a time, and every request is answered 200 once, so the draws
    // of faults and revocations, and so the counts below, are the same on every run.
    let config = Config {
        fault_seed: Some(SEED),
        ..Config::default()
    };
    let emulation = certs::emulation(registered, Some(&ca), config).await;
    let client = certs::client(
        emulation.server_ca_pem().unwrap(),
        Some(&ca.client(CLIENT_NAME)),
    );
    let provider = Builder::client_credentials_grant(&emulation.mtls_base_url().unwrap())
        .public_client(&emulation.config().client_id)
        .client_auth(ClientAuth::TlsClientAuth)
        .build()
        .unwrap();
    let layer = AuthLayer::builder(provider)
        .retry_backoff(Duration::from_millis(5), Duration::from_millis(50))
        .build(client.clone());
    let svc = layer.layer(client.clone());
    emulation.set_revocation_rate(0.002);
    emulation.set_fault_rate(
        0.3,
        &[
            FaultKind::Unavailable,
            FaultKind::InternalError,
            FaultKind::Reset,
        ],
    );
    let url = emulation.mtls_resource_url().unwrap();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..CONCURRENCY {
        let (svc, url) = (svc.clone(), url.clone());
        workers.spawn(async move {
            let mut ok = 0;
            for _ in (worker..REQUESTS).step_by(CONCURRENCY) {
                if get(&svc, &url).await == StatusCode::OK {
                    ok += 1;
                }
            }
            ok
        });
    }
    let ok: usize = workers.join_all().await.into_iter().sum();
    assert_eq!(ok, REQUESTS);
    let stats = emulation.stats();
    assert_eq!(stats.violations, 0, "{:?}", emulation.violation_reasons());
    // One login at the start and one for each token revoked early; the faulted calls were
    // answered before processing, so they count in `faults` only.
    assert_eq!(stats.logins, 1 + emulation.revocations(), "{stats:?}");
    // What the seed draws: one token revoked early, three token calls faulted.
    assert_eq!((emulation.revocations(), stats.faults), (1, 3), "{stats:?}");
    assert_eq!(stats.client_certificates, stats.logins, "{stats:?}");
    assert_eq!(stats.certificate_bound_uses, REQUESTS as u64, "{stats:?}");
    // Every faulted call was a login sent and failed, and retried.
    let metrics = layer.handle().metrics();
    assert_eq!(
        (metrics.logins, metrics.auth_failures),
        (stats.logins + stats.faults, stats.faults),
        "{metrics:?} {stats:?}"
    );
}
