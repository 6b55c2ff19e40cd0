//! The demo's external mode with `--client-auth tls_client_auth`: the client certificate from
//! PEM files presented by the auth transport and the API transport alike, the endpoints from the
//! issuer's metadata (its mTLS aliases), the server's CA trusted with `--ca-cert`, against the
//! emulation and the real provider (oidc-provider, clean and under faults), by the flags and by
//! the shipped spec file; and a key file that is no key refused with a message that names the
//! file, not its content.

use std::path::{Path, PathBuf};
use std::process::Output;

use tower_token_auth_emulation::{
    ClientAuth as Registered, Config, Discovery, Emulation, OAuthExtensions,
};

use crate::certs::{self, Ca, Identity, CLIENT_NAME};
use crate::oidc::Setup;
use crate::support::demo;
use crate::support::oidc_runs::demo_agrees;

const REQUESTS: u64 = 300;

/// A fresh directory for this test's files.
fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tta-mtls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// The demo's arguments: `how` (the provider flags), then the issuer, the API, the client and
/// the TLS files (`identity` and the server's CA, written into `files`), 300 requests, `--json`.
fn args(
    how: &[&str],
    (issuer, api_url, client_id): (&str, &str, &str),
    files: &Path,
    identity: &Identity,
    server_ca_pem: &str,
) -> Vec<String> {
    let cert = write(files, "client.pem", &identity.cert_pem);
    let key = write(files, "client.key", &identity.key_pem);
    let server_ca = write(files, "server-ca.pem", server_ca_pem);
    let mut args: Vec<String> = how.iter().map(|a| a.to_string()).collect();
    let path = |p: &Path| p.display().to_string();
    args.extend([
        "--issuer".to_owned(),
        issuer.to_owned(),
        "--api-url".to_owned(),
        api_url.to_owned(),
        "--client-id".to_owned(),
        client_id.to_owned(),
        "--client-cert".to_owned(),
        path(&cert),
        "--client-key".to_owned(),
        path(&key),
        "--ca-cert".to_owned(),
        path(&server_ca),
        "--requests".to_owned(),
        REQUESTS.to_string(),
        "--json".to_owned(),
    ]);
    args
}

/// The shipped mTLS spec file's path.
fn spec_path() -> String {
    let spec =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/oauth2-client-credentials-mtls.toml");
    spec.display().to_string()
}

/// The emulation with discovery, its client registered for `tls_client_auth` by a certificate of
/// `ca` for [`CLIENT_NAME`].
async fn discovering_emulation(ca: &Ca) -> Emulation {
    let registered = Registered::TlsClientAuth {
        san_dns: CLIENT_NAME.to_owned(),
    };
    let config = Config {
        extensions: OAuthExtensions {
            discovery: Some(Discovery::default()),
            ..OAuthExtensions::default()
        },
        ..Config::default()
    };
    certs::emulation(registered, Some(ca), config).await
}

/// [`args`] against `emulation`: its issuer, mutual TLS resource, client and server CA.
fn emulation_args(
    how: &[&str],
    emulation: &Emulation,
    files: &Path,
    identity: &Identity,
) -> Vec<String> {
    let server = (
        &*emulation.issuer(),
        &*emulation.mtls_resource_url().unwrap(),
        &*emulation.config().client_id,
    );
    args(
        how,
        server,
        files,
        identity,
        emulation.server_ca_pem().unwrap(),
    )
}

/// What a run of the demo against the discovering emulation did (`output`): every request
/// served; one discovery and one login, by the certificate; every request with a token bound to
/// it; no violation.
fn served_by_one_certificate_login(emulation: &Emulation, output: &Output) {
    let report = demo::report(output);
    assert_eq!(report["requests"], REQUESTS, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["logins"], 1, "{report}");
    let stats = emulation.stats();
    assert_eq!(stats.violations, 0, "{:?}", emulation.violation_reasons());
    assert_eq!(
        (
            stats.discovery_fetches,
            stats.logins,
            stats.client_certificates,
            stats.certificate_bound_uses
        ),
        (1, 1, 1, REQUESTS),
        "{stats:?}"
    );
}

async fn run(args: Vec<String>) -> Output {
    demo::run(args, Vec::<(String, String)>::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_authenticates_with_its_client_certificate() {
    let ca = Ca::new("clients CA");
    let emulation = discovering_emulation(&ca).await;
    let files = dir("demo");
    let identity = ca.client(CLIENT_NAME);
    let how = [
        "--provider",
        "oauth2-client-credentials",
        "--client-auth",
        "tls_client_auth",
    ];
    let mut args = emulation_args(&how, &emulation, &files, &identity);
    served_by_one_certificate_login(&emulation, &run(args.clone()).await);

    // A key file that holds no key: a clear error naming the file, never quoting it; no call.
    let secretish = "MC4CAQAwBQYDK2VwBCIEIKEYMATERIALKEYMATERIAL";
    let bad = write(&files, "bad.key", secretish);
    let at = args.iter().position(|a| a == "--client-key").unwrap() + 1;
    args[at] = bad.display().to_string();
    let output = run(args).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: not a PEM private key", bad.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("KEYMATERIAL"), "{stderr}");
    assert_eq!(emulation.stats().logins, 1);
    std::fs::remove_dir_all(&files).unwrap();
}

/// The demo with `specs/oauth2-client-credentials-mtls.toml`: the spec says how the client
/// authenticates (`tls_client_auth`, `client_id` alone), the flags give the certificate the
/// connections present, and the endpoint comes from the issuer's `mtls_endpoint_aliases`. A
/// client secret given beside the spec's method is refused, naming `client_auth`, quoting
/// nothing, before any call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_the_mtls_spec_file() {
    let ca = Ca::new("clients CA");
    let emulation = discovering_emulation(&ca).await;
    let files = dir("spec");
    let identity = ca.client(CLIENT_NAME);
    let how = ["--provider-file", &spec_path()];
    let mut args = emulation_args(&how, &emulation, &files, &identity);
    served_by_one_certificate_login(&emulation, &run(args.clone()).await);

    let secret = "cs-KEYMATERIAL";
    args.extend(["--client-secret".to_owned(), secret.to_owned()]);
    let output = run(args).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("client_auth"), "{stderr}");
    assert!(stderr.contains("sends no client secret"), "{stderr}");
    assert!(!stderr.contains("KEYMATERIAL"), "{stderr}");
    assert_eq!(emulation.stats().discovery_fetches, 1);
    assert_eq!(emulation.stats().logins, 1);
    std::fs::remove_dir_all(&files).unwrap();
}

/// The demo against the real provider over HTTPS, `orders-mtls` authenticating by its
/// certificate, by the flags (`--client-auth tls_client_auth`) or by the shipped spec file:
/// its auth calls at the `mtls_endpoint_aliases` the metadata names (the issuer's listener asks
/// for no certificate), every request to the resource checking the token's binding to the
/// connection's certificate; clean, then under faults; the report's counts the provider's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_authenticates_with_its_certificate_against_oidc_provider() {
    let spec = spec_path();
    for (by, faults) in [
        ("flags", false),
        ("flags", true),
        ("spec", false),
        ("spec", true),
    ] {
        let setup = Setup::start(faults);
        let files = dir(&format!("oidc-{by}-{faults}"));
        let how = match by {
            "flags" => [
                "--provider",
                "oauth2-client-credentials",
                "--client-auth",
                "tls_client_auth",
            ],
            _ => ["--provider-file", &spec, "--concurrency", "8"],
        };
        let resource = setup.server.mtls_resource("orders-mtls");
        let server = (setup.server.issuer(), &*resource, "orders-mtls");
        let args = args(&how, server, &files, &setup.mtls, &setup.server_ca.pem);
        let report = demo::report(&run(args).await);
        let stats = setup.server.stats().await;
        let what = format!(
            "by the {by}, {}",
            if faults { "under faults" } else { "clean" }
        );
        demo_agrees(&report, &stats, "orders-mtls", REQUESTS, faults, &what);
        assert!(stats.token_errors.is_empty(), "{what}: {stats:?}");
        std::fs::remove_dir_all(&files).unwrap();
    }
}
