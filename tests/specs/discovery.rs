//! A provider that learns its token endpoint from the auth server's metadata: the document is
//! fetched through the auth transport before the first login, not again while it holds, again
//! once the endpoint answers 404, retried in the flight when the server is down, and refused
//! when it names another issuer. Paused clock, in-process servers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;
use tower_token_auth::provider::{Failure, Provider, TokenPolicy};
use tower_token_auth::{AuthCall, AuthError, AuthLayer, Clock, ErrorKind, Secret};

use crate::support::{AuthBody, AuthServer, TestProvider};

const AUTH_DELAY: Duration = Duration::from_millis(50);
const ISSUER: &str = "http://auth.test";
const METADATA: &str = "http://auth.test/.well-known/oauth-authorization-server";

/// The metadata the auth server serves, and how often it was asked for it.
#[derive(Clone, Default)]
struct Metadata {
    document: Arc<Mutex<(StatusCode, serde_json::Value)>>,
    fetches: Arc<Mutex<u32>>,
}

impl Metadata {
    fn serve(&self, status: StatusCode, token_endpoint: &str, issuer: &str) {
        let document = serde_json::json!({ "issuer": issuer, "token_endpoint": token_endpoint });
        *self.document.lock().unwrap() = (status, document);
    }

    fn fetches(&self) -> u32 {
        *self.fetches.lock().unwrap()
    }

    /// The auth server's transport, answering the metadata path itself.
    fn transport(
        &self,
        server: &AuthServer,
    ) -> BoxCloneSyncService<Request<Full<Bytes>>, Response<AuthBody>, tower::BoxError> {
        let (metadata, inner) = (self.clone(), server.transport());
        BoxCloneSyncService::new(tower::service_fn(move |request: Request<Full<Bytes>>| {
            let (metadata, inner) = (metadata.clone(), inner.clone());
            async move {
                if request.uri() == METADATA {
                    *metadata.fetches.lock().unwrap() += 1;
                    tokio::time::sleep(AUTH_DELAY).await;
                    let (status, document) = metadata.document.lock().unwrap().clone();
                    let body = Full::new(Bytes::from(document.to_string()));
                    return Ok(Response::builder()
                        .status(status)
                        .body(Either::Left(body))?);
                }
                if request.uri().path() == "/moved" {
                    // The endpoint the first document named, since moved.
                    return Ok(Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body(Either::Left(Full::default()))?);
                }
                inner.oneshot(request).await
            }
        }))
    }
}

/// [`TestProvider`]'s logins, sent to the token endpoint the metadata names.
#[derive(Debug)]
struct Discovering {
    inner: TestProvider,
    /// The token endpoint read from the metadata; `None` until read, and again once stale.
    endpoint: Mutex<Option<String>>,
}

impl Provider for Discovering {
    fn login_request(&self) -> Result<Request<Full<Bytes>>, AuthError> {
        let endpoint = self.endpoint.lock().unwrap().clone();
        let endpoint = endpoint.ok_or_else(|| AuthError::config("no token endpoint yet"))?;
        let mut request = self.inner.login_request()?;
        *request.uri_mut() = endpoint
            .parse()
            .map_err(|_| AuthError::config("bad endpoint"))?;
        Ok(request)
    }

    fn refresh_request(&self, refresh_token: &Secret) -> Result<Request<Full<Bytes>>, AuthError> {
        self.inner.refresh_request(refresh_token)
    }

    fn classify_failure(&self, call: AuthCall, response: &Response<Bytes>) -> Failure {
        if response.status() == StatusCode::NOT_FOUND {
            *self.endpoint.lock().unwrap() = None;
        }
        self.inner.classify_failure(call, response)
    }

    fn policy(&self) -> TokenPolicy {
        self.inner.policy()
    }

    fn discovery_request(&self) -> Option<Result<Request<Full<Bytes>>, AuthError>> {
        if self.endpoint.lock().unwrap().is_some() {
            return None;
        }
        Some(
            Request::get(METADATA)
                .body(Full::default())
                .map_err(|_| AuthError::config("uri")),
        )
    }

    fn discovered(&self, response: &Response<Bytes>) -> Result<(), AuthError> {
        let document: serde_json::Value = serde_json::from_slice(response.body())
            .map_err(|_| AuthError::malformed("metadata is not JSON"))?;
        if document["issuer"] != ISSUER {
            return Err(AuthError::config("metadata names another issuer"));
        }
        let endpoint = document["token_endpoint"].as_str();
        let endpoint = endpoint.ok_or_else(|| AuthError::malformed("no token_endpoint"))?;
        *self.endpoint.lock().unwrap() = Some(endpoint.to_owned());
        Ok(())
    }
}

fn layer(server: &AuthServer, metadata: &Metadata) -> AuthLayer {
    let provider = Discovering {
        inner: TestProvider::new(),
        endpoint: Mutex::new(None),
    };
    AuthLayer::builder(provider)
        .clock(Clock::tokio())
        .retry_backoff(Duration::from_millis(100), Duration::from_millis(100))
        .build(metadata.transport(server))
}

#[tokio::test(start_paused = true)]
async fn the_metadata_is_read_once_then_again_when_the_endpoint_moves() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let metadata = Metadata::default();
    metadata.serve(StatusCode::OK, "http://auth.test/moved", ISSUER);
    let layer = layer(&server, &metadata);
    let handle = layer.handle();

    // The first document names an endpoint that answers 404: the provider finds it stale, the
    // next attempt reads the document again and logs in where it now says.
    let error = handle.token().await.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::NOT_FOUND), "{error}");
    metadata.serve(StatusCode::OK, "http://auth.test/login", ISSUER);
    tokio::time::sleep(Duration::from_secs(600)).await;
    let first = handle.token().await.unwrap();
    assert_eq!((metadata.fetches(), server.logins()), (2, 1));
    assert_eq!(handle.metrics().discoveries, 2);

    // While it holds, renewals read nothing.
    handle.force_refresh().await.unwrap();
    let later = handle.force_refresh().await.unwrap();
    assert!(later.generation() > first.generation());
    assert_eq!((metadata.fetches(), server.refreshes()), (2, 2));
}

#[tokio::test(start_paused = true)]
async fn a_metadata_outage_is_retried_in_the_flight() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let metadata = Metadata::default();
    metadata.serve(StatusCode::SERVICE_UNAVAILABLE, "", ISSUER);
    let layer = layer(&server, &metadata);
    let handle = layer.handle();
    let waiting = tokio::spawn(async move { handle.token().await });
    while metadata.fetches() < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    metadata.serve(StatusCode::OK, "http://auth.test/login", ISSUER);
    // The third fetch, answered after the server came back, lets the waiting call log in.
    waiting.await.unwrap().unwrap();
    assert_eq!((metadata.fetches(), server.logins()), (3, 1));
}

#[tokio::test(start_paused = true)]
async fn metadata_naming_another_issuer_is_refused_and_no_credentials_are_sent() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let metadata = Metadata::default();
    metadata.serve(StatusCode::OK, "http://evil.test/login", "http://evil.test");
    let layer = layer(&server, &metadata);
    let error = layer.handle().token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config, "{error}");
    assert_eq!(error.call(), Some(AuthCall::Discovery));
    assert_eq!((metadata.fetches(), server.logins()), (1, 0));
}

/// The emulation with its discovery documents and revocation endpoint on.
async fn discovering_emulation(
    issuer_override: Option<&str>,
) -> tower_token_auth_emulation::Emulation {
    use tower_token_auth_emulation::{Api, Config, Discovery, Emulation, OAuthExtensions};
    let config = Config {
        extensions: OAuthExtensions {
            discovery: Some(Discovery {
                issuer_override: issuer_override.map(str::to_owned),
                ..Discovery::default()
            }),
            revocation: true,
            ..OAuthExtensions::default()
        },
        ..Config::default()
    };
    Emulation::start(Api::OAuth2, config).await.unwrap()
}

fn oauth2_layer(emulation: &tower_token_auth_emulation::Emulation) -> AuthLayer {
    let (issuer, c) = (emulation.issuer(), emulation.config());
    let provider = tower_token_auth::provider::oauth2::Builder::client_credentials(
        &issuer,
        &c.client_id,
        c.client_secret.clone(),
    )
    .discover(&issuer)
    .build()
    .unwrap();
    AuthLayer::new(provider, crate::support::emulated::client())
}

/// Over real HTTP: an OAuth2 provider given only the issuer reads the metadata once, logs in at
/// the token endpoint it names, revokes at its revocation endpoint, and logs in again without
/// reading it again.
#[tokio::test]
async fn an_oauth2_provider_learns_its_endpoints_from_the_issuer() {
    let emulation = discovering_emulation(None).await;
    let layer = oauth2_layer(&emulation);
    let handle = layer.handle();
    handle.token().await.unwrap();
    let stats = emulation.stats();
    assert_eq!((stats.discovery_fetches, stats.logins), (1, 1), "{stats:?}");

    handle.revoke().await.unwrap();
    handle.token().await.unwrap();
    let stats = emulation.stats();
    assert_eq!(
        (
            stats.discovery_fetches,
            stats.logins,
            stats.revocation_requests
        ),
        (1, 2, 1),
        "{stats:?}"
    );
    assert_eq!(stats.violations, 0, "{:?}", emulation.violation_reasons());
}

#[tokio::test]
async fn metadata_naming_another_issuer_is_refused_over_http() {
    let emulation = discovering_emulation(Some("http://evil.example.com")).await;
    let layer = oauth2_layer(&emulation);
    let error = layer.handle().token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config, "{error}");
    assert_eq!(error.call(), Some(AuthCall::Discovery));
    assert!(
        error.to_string().contains("http://evil.example.com"),
        "{error}"
    );
    let stats = emulation.stats();
    assert_eq!((stats.discovery_fetches, stats.logins), (1, 0), "{stats:?}");
}
