//! The demo's external mode against the emulation's strict client authentication: with the
//! OAuth2 flags (`private_key_jwt` from a PEM key file, the endpoints from the issuer's metadata,
//! a token asked for the resource that requires it, and DPoP with nonces at both ends), and with
//! the shipped spec file that says the same but DPoP.

use std::ffi::OsString;

use tower_token_auth_emulation::{Api, Config, Dpop, DpopNonces, Emulation, OAuthExtensions};

use crate::key_path;
use crate::specs::{example_emulation, example_extensions, RESOURCE};
use crate::support::demo::{report, run};

const REQUESTS: u64 = 300;

/// Runs the demo with `args` (and `--api-url`, `--client-id`, `--requests`, `--json`) against
/// `emulation`, with `env` set, and checks its report and the emulation's counts: every request
/// served, one discovery, one login with one assertion, no violation. The report, for more.
async fn run_demo(
    emulation: &Emulation,
    args: Vec<OsString>,
    env: Vec<(&'static str, OsString)>,
) -> serde_json::Value {
    let mut args = args;
    args.extend(
        [
            "--api-url",
            &emulation.resource_url(),
            "--client-id",
            &emulation.config().client_id,
            "--requests",
            &REQUESTS.to_string(),
            "--json",
        ]
        .map(OsString::from),
    );
    let report = report(&run(args, env).await);
    assert_eq!(report["requests"], REQUESTS, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    let stats = emulation.stats();
    assert_eq!((stats.discovery_fetches, stats.logins), (1, 1), "{stats:?}");
    assert_eq!(stats.client_assertions, 1, "{stats:?}");
    assert_eq!(stats.violations, 0, "{:?}", emulation.violation_reasons());
    report
}

/// The strict emulation of the shipped example ([`example_extensions`]), demanding DPoP-bound
/// tokens and nonces at both ends.
async fn dpop_emulation() -> Emulation {
    let config = Config {
        extensions: OAuthExtensions {
            dpop: Some(Dpop {
                required: true,
                nonces: Some(DpopNonces::default()),
                ..Dpop::default()
            }),
            ..example_extensions()
        },
        ..Config::default()
    };
    Emulation::start(Api::OAuth2, config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_signs_assertions_discovers_asks_for_a_resource_and_binds_tokens() {
    let emulation = dpop_emulation().await;
    let mut args = [
        "--provider",
        "oauth2-client-credentials",
        "--client-key-id",
        "demo-1",
    ]
    .map(OsString::from)
    .to_vec();
    args.extend(signed_and_bound(&emulation, "EdDSA"));
    signed_and_bound_agree(&emulation, run_demo(&emulation, args, vec![]).await);
    // One challenge at the token endpoint, one at the resource (requests one at a time).
    assert_eq!(emulation.stats().dpop_nonce_challenges, 2);
}

/// The flags of a run whose logins carry a `private_key_jwt` assertion (ES256, from the PEM key
/// file) and a DPoP proof by a key of `dpop_alg`, from the emulation's issuer, for [`RESOURCE`],
/// one request at a time.
fn signed_and_bound(emulation: &Emulation, dpop_alg: &str) -> Vec<OsString> {
    let mut args = [
        "--issuer",
        &emulation.issuer(),
        "--client-auth",
        "private_key_jwt",
        "--client-key-alg",
        "ES256",
        "--resource",
        RESOURCE,
        "--dpop",
        dpop_alg,
        "--concurrency",
        "1",
        "--client-key",
    ]
    .map(OsString::from)
    .to_vec();
    args.push(key_path("es256.pem").into());
    args
}

/// What such a run's `report` and the emulation agree on: one nonce retry at each end, a proof
/// for the login and each request.
fn signed_and_bound_agree(emulation: &Emulation, report: serde_json::Value) {
    assert_eq!(report["dpop_nonce_retries"], 2, "{report}");
    let stats = emulation.stats();
    assert_eq!(stats.dpop_proofs, 1 + REQUESTS, "{stats:?}");
}

/// `specs/oauth2-client-credentials-jwt.toml` with `--issuer`, its key file in the environment
/// variable the spec names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_the_shipped_assertion_spec() {
    let emulation = example_emulation().await;
    let spec: std::path::PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "specs",
        "oauth2-client-credentials-jwt.toml",
    ]
    .iter()
    .collect();
    let args = vec![
        "--provider-file".into(),
        spec.into(),
        "--issuer".into(),
        emulation.issuer().into(),
    ];
    let env = vec![("CLIENT_KEY_FILE", key_path("es256.pem").into())];
    run_demo(&emulation, args, env).await;
}

/// The same flags with `--provider oauth2-password`: the password grant's login carries the
/// user's credentials, the client's `private_key_jwt` assertion and a DPoP proof (nonces at both
/// ends), its token asked for the resource that requires it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_logs_in_with_a_password_a_signed_assertion_and_dpop() {
    let emulation = dpop_emulation().await;
    let c = emulation.config();
    let mut args = ["--provider", "oauth2-password", "--username", &c.username]
        .map(OsString::from)
        .to_vec();
    args.extend(["--password".into(), c.password.clone().into()]);
    args.extend(signed_and_bound(&emulation, "ES256"));
    signed_and_bound_agree(&emulation, run_demo(&emulation, args, vec![]).await);
}
