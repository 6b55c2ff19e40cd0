//! Token exchange (RFC 8693) against the real provider: oidc-provider's token endpoint with the
//! exchange grant the test server registers (`tests/oidc/server.mjs`: the subject token must be
//! an access token the provider issued and still holds; the new token is issued by the
//! provider's own client credentials grant, for the `resource` asked for). The client
//! `orders-exchange` authenticates with its secret, its endpoints from the issuer's metadata;
//! its tokens serve `/bearer-resource/orders-exchange`. (Its load runs, clean and under faults,
//! through the tower layer, reqwest and tonic: `oidc_method::Method::Exchange`.)

use std::path::PathBuf;

use tower::Layer;
use tower_token_auth::provider::oauth2::Builder;
use tower_token_auth::provider::HttpProvider;
use tower_token_auth::{AuthError, AuthLayer, ErrorKind, Secret};

use crate::oidc::get;
use crate::support::emulated::client;
use crate::support::oidc_runs::serves_and_survives_revocations;
use crate::support::oidc_server::{OidcServer, Options};

const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const EXCHANGER: &str = "orders-exchange";
const AUDIENCE: &str = "billing";
const RESOURCE: &str = "https://billing.example.com/";

/// The exchange of the subject token `subject` returns, by `orders-exchange`, for [`AUDIENCE`]
/// and [`RESOURCE`].
fn exchange(
    server: &OidcServer,
    subject: impl Fn() -> Result<Secret, AuthError> + Send + Sync + 'static,
) -> HttpProvider {
    let issuer = server.issuer();
    Builder::token_exchange(issuer, ACCESS_TOKEN, subject)
        .confidential_client(EXCHANGER, server.secret(EXCHANGER))
        .discover(issuer)
        .audience(AUDIENCE)
        .resource(RESOURCE)
        .build()
        .unwrap()
}

/// A subject token file, re-read at every exchange.
struct SubjectFile(PathBuf);

impl SubjectFile {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("tta-subject-{name}-{}", std::process::id()));
        Self(path)
    }

    fn write(&self, token: &str) {
        std::fs::write(&self.0, format!("{token}\n")).unwrap();
    }

    /// The subject function reading the file.
    fn reader(&self) -> impl Fn() -> Result<Secret, AuthError> + Send + Sync + 'static {
        let path = self.0.clone();
        move || {
            std::fs::read_to_string(&path)
                .map(|token| Secret::from(token.trim()))
                .map_err(|_| AuthError::config("the subject token file cannot be read"))
        }
    }
}

impl Drop for SubjectFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The subject is another layer's token (`orders-basic`'s, client credentials), taken from its
/// handle at each exchange. The course of every method (3 exchanges: the first, one after the
/// exchanged token was destroyed early, one after `TokenHandle::revoke`), each asking for the
/// audience and the resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanges_another_handles_token_against_oidc_provider() {
    let server = OidcServer::with(Options::default());
    let issuer = server.issuer();
    let subject_provider =
        Builder::client_credentials(issuer, "orders-basic", server.secret("orders-basic"))
            .discover(issuer)
            .build()
            .unwrap();
    let subject = AuthLayer::new(subject_provider, client()).handle();
    subject.token().await.unwrap();
    let from_handle = {
        let subject = subject.clone();
        move || {
            subject
                .current()
                .map(|token| token.access_token().clone())
                .ok_or_else(|| AuthError::config("no subject token yet"))
        }
    };
    let layer = AuthLayer::new(exchange(&server, from_handle), client());
    let svc = layer.layer(client());
    let url = server.bearer_resource(EXCHANGER);
    serves_and_survives_revocations(&server, EXCHANGER, &layer.handle(), || get(&svc, &url)).await;

    let stats = server.stats().await;
    assert_eq!(stats.logins("orders-basic"), 1, "{stats:?}");
    assert_eq!(stats.exchanges.get(AUDIENCE), Some(&3), "{stats:?}");
    assert_eq!(stats.resources.get(RESOURCE), Some(&3), "{stats:?}");
}

/// The subject from a file, re-read at every exchange: rotated on disk (the old subject
/// destroyed at the provider), the next exchange sends the new one. A subject the provider no
/// longer holds is refused: `invalid_grant`, a typed `LoginRejected`, no token issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanges_the_subject_file_as_it_is_rotated_against_oidc_provider() {
    let server = OidcServer::with(Options::default());
    let file = SubjectFile::new("rotated");
    let first = server.mint("orders-basic").await;
    file.write(&first);
    let layer = AuthLayer::new(exchange(&server, file.reader()), client());
    let handle = layer.handle();
    let svc = layer.layer(client());
    let url = server.bearer_resource(EXCHANGER);
    for _ in 0..5 {
        assert_eq!(get(&svc, &url).await, http::StatusCode::OK);
    }
    // Rotated: the old subject dies, the exchanged token too; the replay exchanges the new one.
    file.write(&server.mint("orders-basic").await);
    assert!(server.destroy(&first).await);
    assert_eq!(server.revoke(EXCHANGER).await, 1);
    for _ in 0..5 {
        assert_eq!(get(&svc, &url).await, http::StatusCode::OK);
    }
    let m = handle.metrics();
    assert_eq!((m.logins, m.replays, m.auth_failures), (2, 1, 0), "{m:?}");

    // A dead subject: refused, and nothing issued for it.
    let dead = SubjectFile::new("dead");
    dead.write(&first);
    let refused = AuthLayer::new(exchange(&server, dead.reader()), client());
    let error = refused.handle().token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::LoginRejected, "{error}");
    assert!(!error.to_string().contains(&first), "{error}");

    let stats = server.stats().await;
    assert_eq!(
        (
            stats.logins(EXCHANGER),
            stats.served(EXCHANGER),
            stats.refused
        ),
        (2, 10, 1),
        "{stats:?}"
    );
    assert_eq!(stats.token_errors("invalid_grant"), 1, "{stats:?}");
    assert!(stats.violations.is_empty(), "{stats:?}");
}
