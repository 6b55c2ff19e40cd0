//! The demo's external mode with the OAuth2 flags, against the emulation's strict client
//! authentication: `private_key_jwt` from a PEM key file, the endpoints from the issuer's
//! metadata, a token asked for the resource that requires it, and DPoP with nonces at both ends.

use std::process::{Command, Stdio};

use tower_token_auth::jose::Algorithm;
use tower_token_auth_emulation::{
    Api, ClientAuth, Config, Discovery, Dpop, DpopNonces, Emulation, OAuthExtensions, SigningAlg,
};

use crate::pem_key;
use crate::support::demo::demo_binary;

const RESOURCE: &str = "https://orders.example.com/";
const REQUESTS: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_signs_assertions_discovers_asks_for_a_resource_and_binds_tokens() {
    let key = pem_key(Algorithm::ES256);
    let config = Config {
        extensions: OAuthExtensions {
            client_auth: ClientAuth::PrivateKeyJwt {
                jwk: key.public_jwk(),
                alg: SigningAlg::ES256,
            },
            discovery: Some(Discovery::default()),
            resource_indicators: true,
            resource_audience: Some(RESOURCE.to_owned()),
            dpop: Some(Dpop {
                required: true,
                nonces: Some(DpopNonces::default()),
                ..Dpop::default()
            }),
            ..OAuthExtensions::default()
        },
        ..Config::default()
    };
    let emulation = Emulation::start(Api::OAuth2, config).await.unwrap();
    let key_path = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "assertions",
        "keys",
        "es256.pem",
    ]
    .iter()
    .collect::<std::path::PathBuf>();
    let demo = demo_binary();
    let (issuer, resource_url) = (emulation.issuer(), emulation.resource_url());
    let client_id = emulation.config().client_id.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(demo)
            .args([
                "--provider",
                "oauth2-client-credentials",
                "--issuer",
                &issuer,
            ])
            .args(["--api-url", &resource_url, "--client-id", &client_id])
            .args([
                "--client-auth",
                "private_key_jwt",
                "--client-key-alg",
                "ES256",
            ])
            .arg("--client-key")
            .arg(&key_path)
            .args(["--client-key-id", "demo-1", "--resource", RESOURCE])
            .args(["--dpop", "EdDSA", "--concurrency", "1"])
            .args(["--requests", &REQUESTS.to_string(), "--json"])
            .stdin(Stdio::null())
            .output()
            .expect("the demo runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a report line")).expect("JSON");
    assert_eq!(report["requests"], REQUESTS, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    // One challenge at the token endpoint, one at the resource (requests one at a time).
    assert_eq!(report["dpop_nonce_retries"], 2, "{report}");
    let stats = emulation.stats();
    assert_eq!((stats.discovery_fetches, stats.logins), (1, 1), "{stats:?}");
    assert_eq!(stats.client_assertions, 1, "{stats:?}");
    assert_eq!(stats.dpop_nonce_challenges, 2, "{stats:?}");
    assert_eq!(stats.dpop_proofs, 1 + REQUESTS, "{stats:?}");
    assert_eq!(stats.violations, 0, "{:?}", emulation.violation_reasons());
}
