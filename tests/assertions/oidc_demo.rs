//! The demo's external mode against the real provider (oidc-provider), as a user would point it
//! at their server: each client authentication method by its flags (`--client-auth basic`,
//! `post`, `client_secret_jwt`, `private_key_jwt` with a PEM key file), DPoP (`--dpop`), token
//! exchange (`--exchange-subject-file`) and the shipped `private_key_jwt` spec file, every one
//! with `--issuer` (discovery) and `--resource`, clean and with 30 % of the token endpoint's
//! calls answered 503 and 0.2 % of the answers followed by the token's destruction. (Mutual TLS
//! by the demo's flags against the same provider: `tests/mtls/demo.rs`.)

use std::ffi::OsString;
use std::path::PathBuf;

use crate::key_path;
use crate::support::demo::{report, run};
use crate::support::oidc_runs::{demo_agrees, FAULTS};
use crate::support::oidc_server::{OidcServer, Options};

const REQUESTS: u64 = 300;
const RESOURCE: &str = "https://orders.example.com/";

/// A run of the demo: what it is given, and the client the provider knows it as.
#[derive(Clone, Copy, Debug)]
enum Case {
    Basic,
    Post,
    SecretJwt,
    PrivateKeyJwt,
    /// `private_key_jwt` with DPoP-bound tokens (EdDSA), to the DPoP resource.
    Dpop,
    /// `orders-exchange` exchanging an access token the provider minted for `orders-basic`.
    Exchange,
    /// `specs/oauth2-client-credentials-jwt.toml`, its key file in `CLIENT_KEY_FILE`.
    Spec,
}

impl Case {
    fn client(self) -> &'static str {
        match self {
            Case::Basic => "orders-basic",
            Case::Post => "orders-post",
            Case::SecretJwt => "orders-jwt",
            Case::PrivateKeyJwt | Case::Dpop | Case::Spec => "orders",
            Case::Exchange => "orders-exchange",
        }
    }

    /// The demo's arguments and environment for a run against `server`.
    async fn args(self, server: &OidcServer) -> (Vec<OsString>, Vec<(&'static str, OsString)>) {
        let client = self.client();
        let mut args: Vec<OsString> = match self {
            Case::Spec => vec![
                "--provider-file".into(),
                spec_path().into(),
                "--client-id".into(),
                client.into(),
            ],
            _ => [
                "--provider",
                "oauth2-client-credentials",
                "--client-id",
                client,
            ]
            .map(OsString::from)
            .to_vec(),
        };
        let api_url = match self {
            Case::Dpop => server.dpop_resource(),
            _ => server.bearer_resource(client),
        };
        let common = ["--issuer", server.issuer(), "--api-url", &api_url];
        args.extend(common.map(OsString::from));
        let requests = REQUESTS.to_string();
        let run = ["--requests", &requests, "--concurrency", "8", "--json"];
        args.extend(run.map(OsString::from));
        let secret = |args: &mut Vec<OsString>, auth: &str| {
            let flags = [
                "--client-auth",
                auth,
                "--client-secret",
                &server.secret(client),
            ];
            args.extend(flags.map(OsString::from));
        };
        let private_key_jwt = |args: &mut Vec<OsString>| {
            let flags = [
                "--client-auth",
                "private_key_jwt",
                "--client-key-alg",
                "ES256",
                "--client-key-id",
                "ec-jwk-1",
                "--client-key",
            ];
            args.extend(flags.map(OsString::from));
            args.push(key_path("es256.pem").into());
        };
        let mut env = Vec::new();
        match self {
            Case::Basic => secret(&mut args, "basic"),
            Case::Post => secret(&mut args, "post"),
            Case::SecretJwt => secret(&mut args, "client_secret_jwt"),
            Case::PrivateKeyJwt => private_key_jwt(&mut args),
            Case::Dpop => {
                private_key_jwt(&mut args);
                args.extend(["--dpop", "EdDSA"].map(OsString::from));
            }
            Case::Exchange => {
                secret(&mut args, "basic");
                let subject =
                    std::env::temp_dir().join(format!("tta-demo-subject-{}", std::process::id()));
                std::fs::write(&subject, server.mint("orders-basic").await).unwrap();
                args.extend(
                    [
                        "--exchange-subject-type",
                        "urn:ietf:params:oauth:token-type:access_token",
                        "--exchange-subject-file",
                    ]
                    .map(OsString::from),
                );
                args.push(subject.into());
            }
            Case::Spec => env.push(("CLIENT_KEY_FILE", key_path("es256.pem").into())),
        }
        if !matches!(self, Case::Spec) {
            args.extend(["--resource", RESOURCE].map(OsString::from));
        }
        (args, env)
    }
}

fn spec_path() -> PathBuf {
    [
        env!("CARGO_MANIFEST_DIR"),
        "specs",
        "oauth2-client-credentials-jwt.toml",
    ]
    .iter()
    .collect()
}

/// Runs the demo for `case` against a provider of its own, clean or under faults: every
/// request served, nothing wrong seen by the provider, and the report agreeing with the
/// provider's counts exactly (logins: the tokens issued and the faulted calls; replays: the
/// requests refused; DPoP nonce retries: the challenges).
async fn demo_against_oidc_provider(case: Case, faults: bool) {
    let key =
        tower_token_auth::jose::SigningKey::from_jwk(&crate::key_file("es256.jwk.json")).unwrap();
    let server = OidcServer::with(Options {
        jwks: Some(serde_json::json!({ "keys": [key.public_jwk()] })),
        faults: faults.then_some(FAULTS),
        ..Options::default()
    });
    let what = format!("{case:?} {}", if faults { "under faults" } else { "clean" });
    let (args, env) = case.args(&server).await;
    let report = report(&run(args, env).await);
    let stats = server.stats().await;
    let client = case.client();
    demo_agrees(&report, &stats, client, REQUESTS, faults, &what);
    assert_eq!(
        stats.resources.get(RESOURCE),
        Some(&stats.logins(client)),
        "{what}: every token asked for the resource: {stats:?}"
    );
    let challenges = stats.token_errors("use_dpop_nonce") + stats.nonce_challenges;
    match case {
        Case::Dpop => assert!(challenges >= 2, "{what}: {stats:?}"),
        _ => assert!(stats.token_errors.is_empty(), "{what}: {stats:?}"),
    }
    if let Case::Exchange = case {
        assert_eq!(stats.exchanges.values().sum::<u64>(), stats.logins(client));
    }
}

/// Each case clean, then under faults.
async fn clean_then_faults(case: Case) {
    demo_against_oidc_provider(case, false).await;
    demo_against_oidc_provider(case, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_with_client_secret_basic_against_oidc_provider() {
    clean_then_faults(Case::Basic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_with_client_secret_post_against_oidc_provider() {
    clean_then_faults(Case::Post).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_with_client_secret_jwt_against_oidc_provider() {
    clean_then_faults(Case::SecretJwt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_with_private_key_jwt_against_oidc_provider() {
    clean_then_faults(Case::PrivateKeyJwt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_with_private_key_jwt_and_dpop_against_oidc_provider() {
    clean_then_faults(Case::Dpop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_exchanging_a_subject_file_against_oidc_provider() {
    clean_then_faults(Case::Exchange).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_the_shipped_assertion_spec_against_oidc_provider() {
    clean_then_faults(Case::Spec).await;
}
