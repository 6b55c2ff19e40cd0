//! A real OpenID provider for the tests: panva's `oidc-provider` (npm), run by Node.js from
//! `tests/oidc/server.mjs` on a free loopback port, killed on drop. `scripts/test` installs Node.js
//! and the package when they are missing; no mock stands in for it.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running provider with one client, `orders`, authenticating with `private_key_jwt`.
pub struct OidcServer {
    child: Child,
    issuer: String,
}

impl OidcServer {
    /// Starts the provider with `jwks` (a JWK Set of public keys) as the client's keys, and
    /// waits until it says where it listens.
    ///
    /// Panics, naming the command to run, when Node.js or the package is missing.
    pub fn start(jwks: &serde_json::Value) -> Self {
        let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "oidc"]
            .iter()
            .collect();
        assert!(
            dir.join("node_modules").join("oidc-provider").is_dir(),
            "oidc-provider is not installed: run scripts/test --deps (or npm ci in {})",
            dir.display()
        );
        let mut child = Command::new("node")
            .current_dir(&dir)
            .arg("server.mjs")
            .arg(jwks.to_string())
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
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("the provider did not start: {line:?}"));
        let issuer = ready["issuer"].as_str().expect("an issuer").to_owned();
        Self { child, issuer }
    }

    /// The provider's issuer, `http://127.0.0.1:PORT`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}

impl Drop for OidcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
