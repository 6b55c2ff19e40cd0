//! What the benches share: the token, the request every stack sends, and an in-process auth
//! server with its provider.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, Uri};
use http_body_util::Full;
use tower::Service;
use tower_token_auth::provider::Provider;
use tower_token_auth::{AuthError, AuthLayer, Secret};

pub mod hot;

pub type Req = Request<Full<Bytes>>;

pub const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.bench-access-token.c2lnbmF0dXJl";
pub const TOKEN_JSON: &[u8] = br#"{"access_token":"eyJhbGciOiJIUzI1NiJ9.bench-access-token.c2lnbmF0dXJl","refresh_token":"bench-refresh-token","token_type":"Bearer","expires_in":3600}"#;

/// A 1 KiB request body. Static, so copying it costs the same for every contender (no refcount).
pub static BODY: [u8; 1024] = [b'x'; 1024];

/// The request every stack sends, to `uri`: a POST with a 1 KiB JSON body and one header already
/// set.
pub fn request(uri: &Uri) -> Req {
    let mut request = Request::new(Full::new(Bytes::from_static(&BODY)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri.clone();
    request
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    request
}

/// A provider for the in-process auth server, which ignores what it is sent.
#[derive(Debug, Clone, Copy)]
pub struct BenchProvider;

fn post(body: &'static str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut request = Request::new(Full::new(Bytes::from_static(body.as_bytes())));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = Uri::from_static("http://auth.test/token");
    request
}

impl Provider for BenchProvider {
    fn login_request(
        &self,
    ) -> Result<http::Request<http_body_util::Full<bytes::Bytes>>, AuthError> {
        Ok(post("grant_type=client_credentials"))
    }

    fn refresh_request(
        &self,
        _: &Secret,
    ) -> Result<http::Request<http_body_util::Full<bytes::Bytes>>, AuthError> {
        Ok(post("grant_type=refresh_token"))
    }
}

/// An auth server that answers every call with a token living an hour, after `delay`, counting
/// the calls.
#[derive(Clone)]
pub struct AuthServer {
    calls: Arc<AtomicUsize>,
    delay: Duration,
    answer: &'static [u8],
}

impl AuthServer {
    pub fn new(delay: Duration) -> Self {
        Self::answering(delay, TOKEN_JSON)
    }

    /// A server whose every answer is `answer`.
    pub fn answering(delay: Duration, answer: &'static [u8]) -> Self {
        Self {
            calls: Arc::new(AtomicUsize::new(0)),
            delay,
            answer,
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn transport(
        &self,
    ) -> impl Service<
        http::Request<http_body_util::Full<bytes::Bytes>>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Send + 'static,
    > + Clone
           + Send
           + Sync
           + 'static {
        let server = self.clone();
        tower::service_fn(
            move |_: http::Request<http_body_util::Full<bytes::Bytes>>| {
                server.calls.fetch_add(1, Ordering::SeqCst);
                let (delay, answer) = (server.delay, server.answer);
                async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let mut response = Response::new(Full::new(Bytes::from_static(answer)));
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    Ok::<_, Infallible>(response)
                }
            },
        )
    }
}

/// A fresh layer (its own slot and manager) replaying at most `max_replays` times.
pub fn auth_layer(server: &AuthServer, max_replays: u32) -> AuthLayer {
    AuthLayer::builder(BenchProvider)
        .with_policy(|p| p.max_replays = max_replays)
        .build(server.transport())
}
