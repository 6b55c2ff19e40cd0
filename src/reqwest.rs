//! [reqwest] clients: [`AuthMiddleware`], a [`reqwest_middleware`] middleware on a
//! [`TokenHandle`], and [`ReqwestTransport`], to send the auth calls through reqwest too.
//!
//! The middleware shares the layer's slot and single flight with every other user of the handle
//! (tower stacks, other middleware instances): one login or refresh however many requests need a
//! token. It applies the token as the policy's
//! [`TokenHeader`](crate::provider::TokenHeader) says and replays a request whose token the
//! upstream refused (per the policy's [`Classifier`](crate::provider::Classifier)) by the
//! layer's rule, the same decision the tower service makes: a refusal of the current token
//! costs one of [`TokenPolicy::max_replays`](crate::provider::TokenPolicy::max_replays) and one
//! refresh, a refusal of a token already replaced is replayed free, and no request is sent more
//! than [`TokenPolicy::max_sends`](crate::provider::TokenPolicy::max_sends) times
//! ([`max_sends_revoked`](crate::provider::TokenPolicy::max_sends_revoked) when every token it
//! was refused with had served a request before). Answers through the middleware count as such
//! service for the whole session. A request whose body cannot be copied (`Request::try_clone`
//! fails: a stream) is sent once.
//!
//! Errors getting a token reach the caller as [`reqwest_middleware::Error::Middleware`], holding
//! the [`AuthError`], which a downcast reaches:
//!
//! ```
//! use tower_token_auth::{AuthError, ErrorKind};
//!
//! fn auth_error(error: &reqwest_middleware::Error) -> Option<&AuthError> {
//!     match error {
//!         reqwest_middleware::Error::Middleware(inner) => inner.downcast_ref::<AuthError>(),
//!         _ => None,
//!     }
//! }
//!
//! let error = reqwest_middleware::Error::middleware(AuthError::config("no credentials"));
//! assert_eq!(auth_error(&error).map(|e| e.kind()), Some(ErrorKind::Config));
//! ```
//!
//! ```no_run
//! use reqwest_middleware::ClientBuilder;
//! use tower_token_auth::reqwest::{AuthMiddleware, ReqwestTransport};
//! use tower_token_auth::AuthLayer;
//! use tower_token_auth::provider::{Credentials, Preset};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let credentials = Credentials::new().username("user").password("password");
//! let provider = Preset::Simacan.provider("https://auth-service.services.simacan.com/api/v1", &credentials)?;
//! // Auth calls through a reqwest client that follows no redirect.
//! let layer = AuthLayer::new(provider, ReqwestTransport::new(reqwest::Client::builder())?);
//!
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     .with(AuthMiddleware::new(layer.handle()))
//!     .build();
//! let response = client.get("https://api.example.com/v1/trips").send().await?;
//! println!("{}", response.status());
//! # Ok(())
//! # }
//! ```
//!
//! # Mutual TLS
//!
//! A client that authenticates by its TLS certificate (RFC 8705: `tls_client_auth`,
//! `self_signed_tls_client_auth`) gets tokens bound to it, which a resource takes only over a
//! connection presenting the same certificate. The certificate is the clients' business, not
//! the layer's: give one `reqwest::Identity` to the builder [`ReqwestTransport`] makes the auth
//! calls' client from, and to the client [`AuthMiddleware`] sends the requests with.
//! `reqwest::Identity::from_pem` needs one of reqwest's rustls features (`rustls`, or
//! `rustls-no-provider` with a crypto provider installed), which this crate leaves to the
//! application: its `reqwest` feature asks reqwest for no TLS at all.
//!
//! ```no_run
//! use reqwest_middleware::ClientBuilder;
//! use tower_token_auth::AuthLayer;
//! use tower_token_auth::provider::oauth2::{Builder, ClientAuth};
//! use tower_token_auth::reqwest::{AuthMiddleware, ReqwestTransport};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // The client's certificate chain and its private key, PEM, in one buffer.
//! let mut pem = std::fs::read("client.pem")?;
//! pem.extend(std::fs::read("client.key")?);
//! let identity = reqwest::Identity::from_pem(&pem)?;
//!
//! // No secret: the certificate authenticates, the token request carries `client_id` alone.
//! let provider = Builder::client_credentials_grant("https://mtls.idp.example.com/oauth/token")
//!     .public_client("orders")
//!     .client_auth(ClientAuth::TlsClientAuth)
//!     .build()?;
//! let transport = ReqwestTransport::new(reqwest::Client::builder().identity(identity.clone()))?;
//! let layer = AuthLayer::new(provider, transport);
//!
//! // The tokens are bound to the certificate: the requests present it too.
//! let client = ClientBuilder::new(reqwest::Client::builder().identity(identity).build()?)
//!     .with(AuthMiddleware::new(layer.handle()))
//!     .build();
//! let response = client.get("https://api.example.com/v1/orders").send().await?;
//! println!("{}", response.status());
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Extensions;
use http_body_util::BodyExt;
use reqwest_middleware::{Middleware, Next};
use tower_service::Service;

use crate::error::{AuthError, BoxError};
use crate::handle::TokenHandle;
use crate::keyed::KeyedAuthLayer;
use crate::provider::outside_origins;
use crate::provider::AuthRequest;
use crate::replay::{Sends, Verdict};

/// A [`reqwest_middleware::Middleware`] that puts the token of a [`TokenHandle`] on every
/// request and replays a request whose token the upstream refused (see the
/// [module docs](self)).
///
/// ```
/// # use tower_token_auth::AuthLayer;
/// # use tower_token_auth::provider::Provider;
/// use tower_token_auth::reqwest::AuthMiddleware;
///
/// # fn run<P: Provider>(layer: AuthLayer) {
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(AuthMiddleware::new(layer.handle()))
///     .build();
/// # let _ = client;
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct AuthMiddleware {
    sessions: Sessions,
}

/// A keyed layer's sessions: the one a request's key names.
type SessionOf =
    dyn Fn(&reqwest::Request, &Extensions) -> Result<TokenHandle, AuthError> + Send + Sync;

/// Where a request's session comes from.
#[derive(Clone)]
enum Sessions {
    One(TokenHandle),
    Keyed(Arc<SessionOf>),
}

impl AuthMiddleware {
    /// A middleware sharing `handle`'s session (usually [`AuthLayer::handle`](crate::AuthLayer::handle)).
    pub fn new(handle: TokenHandle) -> Self {
        Self {
            sessions: Sessions::One(handle),
        }
    }

    /// A middleware on `layer`'s sessions: a request goes out with the token of the session
    /// its key names, as through the layer's tower service: a value of type `K` in the
    /// request's middleware [`Extensions`] (`ClientWithMiddleware`'s `.with_extension(key)`), or
    /// what the layer's [`key_from`](crate::KeyedAuthLayerBuilder::key_from) says of its URL and
    /// headers. A request naming no session fails with
    /// [`ErrorKind::Config`](crate::ErrorKind::Config).
    pub fn keyed<K>(layer: &KeyedAuthLayer<K>) -> Self
    where
        K: Clone + Eq + Hash + Send + Sync + 'static,
    {
        let layer = layer.clone();
        Self {
            sessions: Sessions::Keyed(Arc::new(move |request, extensions| {
                layer.handle_for(extensions, || {
                    let uri = request.url().as_str().parse().unwrap_or_default();
                    (uri, request.headers().clone())
                })
            })),
        }
    }
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sessions::One(handle) => f.debug_tuple("One").field(handle).finish(),
            Sessions::Keyed(_) => f.write_str("Keyed"),
        }
    }
}

#[async_trait::async_trait]
impl Middleware for AuthMiddleware {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let handle = match &self.sessions {
            Sessions::One(handle) => handle.clone(),
            Sessions::Keyed(session) => {
                session(&request, extensions).map_err(reqwest_middleware::Error::middleware)?
            }
        };
        let manager = handle.manager();
        if let Some(origins) = &manager.policy.origins {
            let url = request.url();
            // NOTE: `host_str` writes an IPv6 host in brackets, as `Uri` does.
            let host = url.host_str().unwrap_or_default();
            let outside = !origins.allows_origin(url.scheme(), host, url.port_or_known_default());
            if outside {
                if origins.refuses_others() {
                    return Err(reqwest_middleware::Error::middleware(outside_origins()));
                }
                return next.run(request, extensions).await;
            }
        }
        let mut sends = Sends::new(manager.clock().read());
        let mut token = handle
            .token()
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        loop {
            let copy = if sends.keep_copy(manager, token.state()) {
                request.try_clone()
            } else {
                None
            };
            // A DPoP proof names the request's URI; reqwest's is a `Url`.
            let uri = match token.state().dpop {
                true => request
                    .url()
                    .as_str()
                    .parse::<http::Uri>()
                    .map_err(|_| AuthError::config("the request URL is not a valid URI"))
                    .map_err(reqwest_middleware::Error::middleware)?,
                false => http::Uri::default(),
            };
            let method = request.method().clone();
            token
                .apply_to(&method, &uri, request.headers_mut())
                .map_err(reqwest_middleware::Error::middleware)?;
            sends.sent(manager, token.state(), &uri);
            let response = next.clone().run(request, extensions).await?;
            let verdict = sends.answered(
                manager,
                response.status(),
                response.headers(),
                copy.is_some(),
            );
            let Some(copy) = copy else {
                return Ok(response);
            };
            match verdict {
                Verdict::Accepted | Verdict::Spent => return Ok(response),
                // The same token, with the nonce the answer gave.
                Verdict::Nonce => {}
                // No new token: the caller gets the refusal, as without a replay.
                Verdict::Replay => match handle.replacing(sends.refused()).await {
                    Ok(next_token) => token = next_token,
                    Err(_) => return Ok(response),
                },
            }
            request = copy;
        }
    }
}

/// An [`AuthTransport`](crate::AuthTransport) on a reqwest client that follows no redirect, so
/// that credentials go only to the configured endpoint.
///
/// ```no_run
/// # fn run() -> Result<(), reqwest::Error> {
/// use std::time::Duration;
/// use tower_token_auth::reqwest::ReqwestTransport;
///
/// let transport = ReqwestTransport::new(reqwest::Client::builder().connect_timeout(Duration::from_secs(3)))?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// Builds the client from `builder`, with redirects turned off whatever the builder said.
    pub fn new(builder: reqwest::ClientBuilder) -> Result<Self, reqwest::Error> {
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { client })
    }
}

impl Service<AuthRequest> for ReqwestTransport {
    type Response = http::Response<reqwest::Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: AuthRequest) -> Self::Future {
        let client = self.client.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            // A `Full` body: one frame, at hand.
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            // NOTE: reqwest's errors quote the URL, whose query may hold a secret (an API key):
            // dropped.
            let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
                .map_err(reqwest::Error::without_url)?;
            let response = client
                .execute(request)
                .await
                .map_err(reqwest::Error::without_url)?;
            Ok(http::Response::from(response))
        })
    }
}
