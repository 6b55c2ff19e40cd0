//! Refresh tokens: rotated or kept as the server answers, and a login instead when one cannot be
//! sent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_token_auth::provider::{Classifier, Provider, TokenPolicy};
use tower_token_auth::{AuthError, AuthLayer, Clock, ErrorKind, Secret};

use crate::support::{
    bearer, concurrent, get, paused_layer as new_layer, send, service, AuthServer, Fault,
    TestProvider, AUTH_DELAY, MARK,
};

#[tokio::test(start_paused = true)]
async fn expired_token_is_refreshed_once_and_rotated() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);

    tokio::time::advance(Duration::from_secs(61)).await;
    let results = concurrent(&svc, 100).await;
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!((server.logins(), server.refreshes()), (1, 1));

    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    assert_eq!((server.logins(), server.refreshes()), (1, 2));
    // The rotated refresh token was used; the first one was never sent again.
    assert_eq!(
        server.refresh_tokens_seen(),
        [format!("rt-1-{MARK}"), format!("rt-2-{MARK}")]
    );
    assert_eq!(server.reused_refresh_tokens(), 0);
    assert_eq!(server.upstream_headers().last().unwrap(), &bearer(3));
}

#[tokio::test(start_paused = true)]
async fn unrotated_refresh_token_is_kept() {
    // A server that answers a refresh without a new refresh token did not rotate it.
    let server = AuthServer::new(60, AUTH_DELAY);
    let mut policy = TokenPolicy::default();
    policy.classifier = Classifier::none(); // the upstream does not know the hand-made token
    let layer = new_layer(&server, TestProvider::with_policy(policy));
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    server.set_fault(Some(Fault::Reply(
        StatusCode::OK,
        "application/json",
        Bytes::from_static(br#"{"access_token":"at-9-SECRET","expires_in":60}"#),
    )));
    tokio::time::advance(Duration::from_secs(61)).await;
    let _ = send(&svc).await.unwrap();
    server.set_fault(None);
    tokio::time::advance(Duration::from_secs(61)).await;
    let _ = send(&svc).await.unwrap();
    assert_eq!(
        server.refresh_tokens_seen(),
        [format!("rt-1-{MARK}"), format!("rt-1-{MARK}")]
    );
}

/// [`TestProvider`] whose refresh request, while `failing` is set, cannot be built and fails
/// with `error`.
struct RefreshFails {
    inner: TestProvider,
    error: fn() -> AuthError,
    failing: AtomicBool,
}

impl RefreshFails {
    fn new(error: fn() -> AuthError, failing: bool) -> Arc<Self> {
        let inner = TestProvider::new();
        let failing = AtomicBool::new(failing);
        Arc::new(Self {
            inner,
            error,
            failing,
        })
    }
}

impl Provider for RefreshFails {
    fn login_request(&self) -> Result<Request<Full<Bytes>>, AuthError> {
        self.inner.login_request()
    }
    fn refresh_request(&self, refresh_token: &Secret) -> Result<Request<Full<Bytes>>, AuthError> {
        if self.failing.load(Ordering::Relaxed) {
            return Err((self.error)());
        }
        self.inner.refresh_request(refresh_token)
    }
}

/// A refresh token that cannot be put in a request is dropped in favour of a login, not retried
/// forever.
#[tokio::test(start_paused = true)]
async fn an_unsendable_refresh_token_falls_back_to_login() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let unsendable = || AuthError::malformed("refresh token is not a valid header value");
    let layer = AuthLayer::builder(RefreshFails::new(unsendable, true))
        .clock(Clock::tokio())
        .build(server.transport());
    let svc = layer.layer(server.upstream::<Full<Bytes>>());
    assert_eq!(
        svc.clone().oneshot(get()).await.unwrap().status(),
        StatusCode::OK
    );
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(
        svc.clone().oneshot(get()).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!((server.logins(), server.refreshes()), (2, 0));
}

/// The refresh needs something besides the refresh token (an assertion file, say) that is
/// missing for a while.
#[tokio::test(start_paused = true)]
async fn a_refresh_that_cannot_be_built_for_want_of_its_source_keeps_the_refresh_token() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let missing = || AuthError::config("the assertion file cannot be read");
    let provider = RefreshFails::new(missing, false);
    let layer = AuthLayer::builder(Arc::clone(&provider))
        .clock(Clock::tokio())
        .build(server.transport());
    let svc = layer.layer(server.upstream::<Full<Bytes>>());
    assert_eq!(
        svc.clone().oneshot(get()).await.unwrap().status(),
        StatusCode::OK
    );
    tokio::time::advance(Duration::from_secs(61)).await;
    provider.failing.store(true, Ordering::Relaxed);
    let error = svc.clone().oneshot(get()).await.unwrap_err();
    let error = crate::support::auth_error(&error);
    assert_eq!(error.kind(), ErrorKind::Config, "{error}");
    assert_eq!((server.logins(), server.refreshes()), (1, 0));

    // The source is back: once the backoff ends, the kept refresh token renews the session.
    provider.failing.store(false, Ordering::Relaxed);
    tokio::time::advance(Duration::from_secs(8)).await;
    assert_eq!(
        svc.clone().oneshot(get()).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!((server.logins(), server.refreshes()), (1, 1));
    assert_eq!(server.refresh_tokens_seen(), [format!("rt-1-{MARK}")]);
}
