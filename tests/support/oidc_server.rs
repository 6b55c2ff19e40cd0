//! A real OpenID provider for the tests: panva's `oidc-provider` (npm), run by Node.js from
//! `tests/oidc/server.mjs` on a free loopback port, killed on drop. `scripts/test` installs Node.js
//! and the package when they are missing; no mock stands in for it.
//!
//! Its clients, all for the client credentials grant with the scope `read`: `orders`
//! (`private_key_jwt`, keys from [`Options::jwks`]), `orders-basic`, `orders-post` and
//! `orders-jwt` (`client_secret_basic`, `client_secret_post`, `client_secret_jwt`, secrets made
//! at start: [`OidcServer::secret`]), `orders-exchange` (`client_secret_basic`, the token exchange
//! grant alone, which the server registers with the provider: a live access token of the provider
//! as the subject, such as one minted for `workload`: [`OidcServer::subject`]), and over HTTPS ([`Options::tls`]) `orders-mtls` (`tls_client_auth`) and
//! `orders-self-signed` (`self_signed_tls_client_auth`), which must go to the `mtls_endpoint_aliases`
//! the metadata names (a listener of their own: the issuer's asks for no certificate). Any
//! absolute URI is a resource indicator the provider issues tokens for. Beside the provider,
//! protected resources that look every token up in the provider: `/resource` (DPoP),
//! `/bearer-resource/CLIENT` and `/mtls-resource/CLIENT` ([`OidcServer::bearer_resource`],
//! [`OidcServer::mtls_resource`]); and on a listener of their own, the tests' controls
//! ([`OidcServer::stats`], [`OidcServer::revoke`], [`OidcServer::mint`],
//! [`OidcServer::destroy`]).

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

/// What the provider is started with (`tests/oidc/server.mjs` reads them as one JSON argument).
#[derive(Debug, Default)]
pub struct Options {
    /// The public keys of `orders` (`private_key_jwt`, ES256), a JWK Set; without them, no
    /// `orders`.
    pub jwks: Option<serde_json::Value>,
    /// Serve HTTPS, asking every client for its certificate, with the mutual TLS clients.
    pub tls: Option<Tls>,
    /// Faults at the token endpoint and revocations at the resources.
    pub faults: Option<Faults>,
    /// Access tokens' lifetime in seconds (600 when absent).
    pub token_ttl: Option<u64>,
    /// Mint an access token for the client `workload` at start: [`OidcServer::subject`].
    pub subject: bool,
}

/// The provider over HTTPS, and what its mutual TLS clients are registered with (all PEM).
#[derive(Debug)]
pub struct Tls {
    /// The server's certificate chain, for `127.0.0.1`.
    pub cert_pem: String,
    pub key_pem: String,
    /// The authority whose certificates `tls_client_auth` takes.
    pub client_ca_pem: String,
    /// The SAN DNS name registered for `orders-mtls` (`tls_client_auth_san_dns`).
    pub san_dns: String,
    /// The certificate registered for `orders-self-signed`.
    pub self_signed_pem: String,
}

/// Seeded faults, each drawn from a sequence of its own.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// The share of token endpoint calls answered 503 before the provider sees them.
    pub token_rate: f64,
    /// The share of resource answers (200s) after which the token served is destroyed in the
    /// provider's store.
    pub revocation_rate: f64,
    pub seed: u64,
}

/// What the provider and its resources did (`stats` in `tests/oidc/server.mjs`).
#[derive(Debug, Default, Deserialize)]
pub struct Stats {
    /// Tokens issued at the token endpoint, by client.
    pub logins: BTreeMap<String, u64>,
    /// Token endpoint errors, by error code (`use_dpop_nonce`, `invalid_client`, ...).
    pub token_errors: BTreeMap<String, u64>,
    /// Token endpoint calls answered 503 by the fault injection.
    pub token_faults: u64,
    /// Requests served 200, by client.
    pub served: BTreeMap<String, u64>,
    /// Requests refused for a token the provider issued and no longer holds.
    pub refused: u64,
    /// Requests the DPoP resource answered with its nonce challenge.
    pub nonce_challenges: u64,
    /// Tokens issued by exchange, by the `audience` asked for (`none` without one).
    pub exchanges: BTreeMap<String, u64>,
    /// Tokens issued for a resource indicator, by the `resource` asked for.
    pub resources: BTreeMap<String, u64>,
    /// What no correct client sends, by reason.
    pub violations: BTreeMap<String, u64>,
    /// Tokens destroyed after a resource answer, by the fault injection.
    pub random_revocations: u64,
    /// Live tokens destroyed by [`OidcServer::revoke`].
    pub admin_revocations: u64,
    /// Access tokens destroyed in the provider's store, whatever the cause: the revocation
    /// endpoint, [`OidcServer::revoke`], the fault injection.
    pub destroyed: u64,
}

impl Stats {
    /// Tokens issued to `client`.
    pub fn logins(&self, client: &str) -> u64 {
        self.logins.get(client).copied().unwrap_or(0)
    }

    /// Requests served for `client`.
    pub fn served(&self, client: &str) -> u64 {
        self.served.get(client).copied().unwrap_or(0)
    }

    /// Token endpoint errors with the code `error`.
    pub fn token_errors(&self, error: &str) -> u64 {
        self.token_errors.get(error).copied().unwrap_or(0)
    }
}

/// A running provider.
pub struct OidcServer {
    child: Child,
    issuer: String,
    mtls: Option<String>,
    admin: String,
    secrets: BTreeMap<String, String>,
    subject: Option<String>,
}

#[derive(Deserialize)]
struct Ready {
    issuer: String,
    mtls: Option<String>,
    admin: String,
    secrets: BTreeMap<String, String>,
    subject: Option<String>,
}

impl OidcServer {
    /// Starts the provider with `options`, and waits until it says where it listens.
    ///
    /// Panics, naming the command to run, when Node.js or the package is missing.
    pub fn with(options: Options) -> Self {
        let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "oidc"]
            .iter()
            .collect();
        assert!(
            dir.join("node_modules").join("oidc-provider").is_dir(),
            "oidc-provider is not installed: run scripts/test --deps (or npm ci in {})",
            dir.display()
        );
        let mut argument = serde_json::json!({});
        if let Some(jwks) = options.jwks {
            argument["jwks"] = jwks;
        }
        if let Some(tls) = options.tls {
            argument["tls"] = serde_json::json!({
                "cert": tls.cert_pem,
                "key": tls.key_pem,
                "ca": tls.client_ca_pem,
                "san_dns": tls.san_dns,
                "self_signed": tls.self_signed_pem,
            });
        }
        if let Some(ttl) = options.token_ttl {
            argument["token_ttl"] = ttl.into();
        }
        argument["subject"] = options.subject.into();
        if let Some(faults) = options.faults {
            argument["faults"] = serde_json::json!({
                "token_rate": faults.token_rate,
                "revocation_rate": faults.revocation_rate,
                "seed": faults.seed,
            });
        }
        let mut child = Command::new("node")
            .current_dir(&dir)
            .arg("server.mjs")
            .arg(argument.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs: install Node.js (scripts/test --deps)");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("the provider says where it listens");
        // Whatever it prints later is read and dropped: a closed pipe would end it.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let ready: Ready = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("the provider did not start: {line:?}"));
        Self {
            child,
            issuer: ready.issuer,
            mtls: ready.mtls,
            admin: ready.admin,
            secrets: ready.secrets,
            subject: ready.subject,
        }
    }

    /// The provider's issuer, `http://127.0.0.1:PORT` (`https://` with [`Options::tls`]).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The secret of `client` (`orders-basic`, `orders-post`, `orders-jwt`).
    pub fn secret(&self, client: &str) -> String {
        self.secrets
            .get(client)
            .unwrap_or_else(|| panic!("no secret for {client}"))
            .clone()
    }

    /// The access token minted for `workload` at start, with [`Options::subject`].
    pub fn subject(&self) -> &str {
        self.subject
            .as_deref()
            .expect("the provider was started with a subject")
    }

    /// The DPoP resource.
    pub fn dpop_resource(&self) -> String {
        format!("{}/resource", self.issuer)
    }

    /// The resource taking bearer tokens issued to `client`.
    pub fn bearer_resource(&self, client: &str) -> String {
        format!("{}/bearer-resource/{client}", self.issuer)
    }

    /// The origin of the listener that asks clients for their certificates (the metadata's
    /// `mtls_endpoint_aliases` name its endpoints), with [`Options::tls`].
    pub fn mtls_origin(&self) -> &str {
        self.mtls
            .as_deref()
            .expect("the provider was started with TLS")
    }

    /// The resource taking tokens issued to `client` and bound to the connection's certificate,
    /// on the listener that asks for it.
    pub fn mtls_resource(&self, client: &str) -> String {
        format!("{}/mtls-resource/{client}", self.mtls_origin())
    }

    /// What the provider and its resources did so far.
    pub async fn stats(&self) -> Stats {
        let body = self.control(Method::GET, "stats").await;
        serde_json::from_slice(&body).expect("the stats are JSON")
    }

    /// Destroys every live access token of `client` in the provider's store, as an early
    /// revocation: how many there were.
    pub async fn revoke(&self, client: &str) -> u64 {
        let body = self
            .control(Method::POST, &format!("revoke/{client}"))
            .await;
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        answer["revoked"].as_u64().expect("a count")
    }

    /// A new access token for `client`, put in the provider's store without a call at the token
    /// endpoint (a subject token to exchange, as another system would hand it over).
    pub async fn mint(&self, client: &str) -> String {
        let body = self.control(Method::POST, &format!("mint/{client}")).await;
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        answer["token"].as_str().expect("a token").to_owned()
    }

    /// Destroys the access token `token` in the provider's store: whether it lived.
    pub async fn destroy(&self, token: &str) -> bool {
        let body = self
            .control(Method::POST, &format!("destroy/{token}"))
            .await;
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        answer["destroyed"].as_bool().expect("a flag")
    }

    async fn control(&self, method: Method, path: &str) -> Bytes {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let request = Request::builder()
            .method(method)
            .uri(format!("{}/{path}", self.admin))
            .body(Full::default())
            .expect("a valid request");
        let response = client.request(request).await.expect("the controls answer");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes()
    }
}

impl Drop for OidcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
