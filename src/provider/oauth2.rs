//! Generic OAuth2 (RFC 6749) grants: `password` and `client_credentials`, with the
//! `refresh_token` grant for renewal.
//!
//! ```
//! use tower_token_auth::provider::oauth2::{self, ClientAuth};
//!
//! let provider = oauth2::Builder::client_credentials("https://idp.example.com/oauth/token", "my-app", "s3cret")
//!     .client_auth(ClientAuth::SecretPost)
//!     .scope("read write")
//!     .build()?;
//! # Ok::<(), tower_token_auth::AuthError>(())
//! ```
//!
//! Servers differ in details; the providers built here follow the common ground:
//! - a 400 or 401 (or 403) from the refresh grant, with or without a standard error body, means
//!   the refresh token is dead: the layer logs in again;
//! - an `error` / `error_description` body is surfaced in the [`AuthError`] message;
//! - a refresh answer without a new `refresh_token` keeps the old one (the server did not rotate).
//!
//! # Client assertions
//!
//! A client can authenticate with a JWT instead of its secret (RFC 7523 §2.2): a
//! [`ClientAssertion`], which [`Builder::build_with_assertion`] turns into an
//! [`AssertionProvider`]. The assertion is signed by the client's own key (`private_key_jwt`) or
//! secret (`client_secret_jwt`), both with the `jose` feature, or comes ready-made from a file or
//! a function: a workload identity token (a Kubernetes projected service-account token, a CI
//! job's OIDC token) or one signed by a KMS. A new assertion is made for every login and refresh
//! call, and sent as `client_assertion` with
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and the
//! `client_id` in the form body; no `Authorization` header.
//!
//! ```
//! use tower_token_auth::provider::oauth2::{self, ClientAssertion};
//!
//! let assertion = ClientAssertion::file(
//!     "my-app",
//!     "/var/run/secrets/tokens/idp-token",
//! );
//! let provider = oauth2::Builder::client_credentials_grant("https://idp.example.com/oauth/token")
//!     .scope("orders:read")
//!     .build_with_assertion(assertion)?;
//! # let _ = provider;
//! # Ok::<(), tower_token_auth::AuthError>(())
//! ```

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::Request;
use http_body::Body as _;
use http_body_util::Full;

use crate::error::{AuthCall, AuthError};
#[cfg(feature = "jose")]
use crate::jose::{AssertionSigner, Assertions, HmacKey, SigningKey};
use crate::provider::generic::{
    basic_form_encoded, CallSpec, Discovered, Encoding, HttpProvider, SubjectFn,
};
use crate::provider::{AuthResponse, Failure, Provider, TokenPolicy};
use crate::secret::Secret;
use crate::token::TokenSet;

/// How a client authenticates to the token and revocation endpoints (RFC 6749 §2.3.1,
/// RFC 8705 §2), set with [`Builder::client_auth`]. (Client assertions, RFC 7523, are a
/// [`ClientAssertion`] given to [`Builder::build_with_assertion`].)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic with the form-urlencoded client id and secret (`client_secret_basic`).
    #[default]
    SecretBasic,
    /// `client_id` and `client_secret` in the request body (`client_secret_post`).
    SecretPost,
    /// `tls_client_auth` (RFC 8705 §2.1): the client authenticates by the TLS client
    /// certificate a certificate authority issued it, which the auth transport presents; the
    /// request carries `client_id` in the body, and no secret and no `Authorization` header.
    ///
    /// The client has an id and no secret: build it with [`Builder::public_client`] (or
    /// [`Builder::client_credentials_grant`] then `public_client`); a client secret given
    /// beside it ([`Builder::confidential_client`], [`Builder::client_credentials`]) fails
    /// [`Builder::build`] with [`ErrorKind::Config`](crate::ErrorKind::Config), since sending it
    /// would be a second authentication method. With [`Builder::discover`], the endpoints come
    /// from the metadata's `mtls_endpoint_aliases` where it names them. The certificate is the
    /// auth transport's business: see the crate's README, "Mutual TLS".
    TlsClientAuth,
    /// `self_signed_tls_client_auth` (RFC 8705 §2.2): as [`TlsClientAuth`](Self::TlsClientAuth),
    /// with a self-signed certificate the client registered with the server.
    SelfSignedTlsClientAuth,
}

impl ClientAuth {
    /// The method's registered name, as `token_endpoint_auth_methods_supported` lists it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ClientAuth::SecretBasic => "client_secret_basic",
            ClientAuth::SecretPost => "client_secret_post",
            ClientAuth::TlsClientAuth => "tls_client_auth",
            ClientAuth::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    /// Whether the client authenticates by its TLS certificate (RFC 8705).
    pub(crate) fn is_mtls(self) -> bool {
        matches!(
            self,
            ClientAuth::TlsClientAuth | ClientAuth::SelfSignedTlsClientAuth
        )
    }
}

#[derive(Clone)]
enum Grant {
    Password {
        username: String,
        password: Secret,
    },
    ClientCredentials,
    TokenExchange {
        subject_type: String,
        subject: SubjectFn,
    },
}

/// How a provider's calls authenticate the client.
#[derive(Clone, Copy)]
enum Auth {
    /// As the builder says: a secret, a TLS certificate, or only a client id.
    Configured,
    /// By a client assertion added per call; its method's name when known.
    Assertion(Option<&'static str>),
}

/// RFC 8693's grant type.
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// Builds an OAuth2 [`HttpProvider`]. Start with [`Builder::password`],
/// [`Builder::client_credentials`] or [`Builder::client_credentials_grant`].
#[derive(Clone)]
pub struct Builder {
    token_url: String,
    grant: Grant,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    client_auth: ClientAuth,
    scope: Option<String>,
    /// `resource` (RFC 8707) and `audience` parameters, in the order given.
    targets: Vec<(&'static str, String)>,
    revocation_url: Option<String>,
    issuer: Option<String>,
}

impl Builder {
    /// The resource owner password grant: logs in with `username` and `password` at `token_url`.
    ///
    /// Add the client with [`public_client`](Self::public_client) or [`confidential_client`](Self::confidential_client).
    pub fn password(token_url: &str, username: &str, password: impl Into<Secret>) -> Self {
        Self::new(
            token_url,
            Grant::Password {
                username: username.to_owned(),
                password: password.into(),
            },
        )
    }

    /// The client credentials grant for the confidential client `client_id`.
    ///
    /// Servers issue no refresh token for this grant; the layer simply logs in again when the token
    /// expires.
    pub fn client_credentials(
        token_url: &str,
        client_id: &str,
        client_secret: impl Into<Secret>,
    ) -> Self {
        Self::new(token_url, Grant::ClientCredentials).confidential_client(client_id, client_secret)
    }

    /// The client credentials grant, with no client yet: for a client that authenticates with a
    /// [`ClientAssertion`] ([`build_with_assertion`](Self::build_with_assertion)), or by other means than the request
    /// (mutual TLS).
    pub fn client_credentials_grant(token_url: &str) -> Self {
        Self::new(token_url, Grant::ClientCredentials)
    }

    /// Token exchange (RFC 8693): trades the token `subject` returns, of the RFC 8693 type
    /// `subject_token_type` (`urn:ietf:params:oauth:token-type:access_token`, `…:jwt`, …), for
    /// one for the [`audience`](Self::audience), [`resource`](Self::resource) or
    /// [`scope`](Self::scope) given. `subject` is called for every exchange, retries included:
    /// read a file there (a Kubernetes service-account token, rotated on disk), or take another
    /// layer's token from its [`TokenHandle::current`](crate::TokenHandle::current). Renewal is
    /// another exchange; a refresh token in the answer is ignored. An error from `subject` fails
    /// the exchange as a configuration error (backed off), so return one only when no token is
    /// to be had.
    ///
    /// ```
    /// use tower_token_auth::provider::oauth2;
    /// use tower_token_auth::{AuthError, Secret};
    ///
    /// let provider = oauth2::Builder::token_exchange(
    ///     "https://sts.example.com/oauth/token",
    ///     "urn:ietf:params:oauth:token-type:jwt",
    ///     || {
    ///         std::fs::read_to_string("/var/run/secrets/tokens/sts")
    ///             .map(|token| Secret::from(token.trim()))
    ///             .map_err(|_| AuthError::config("the service-account token cannot be read"))
    ///     },
    /// )
    /// .confidential_client("orders", "s3cret")
    /// .audience("billing")
    /// .build()?;
    /// # let _ = provider;
    /// # Ok::<(), AuthError>(())
    /// ```
    pub fn token_exchange(
        token_url: &str,
        subject_token_type: &str,
        subject: impl Fn() -> Result<Secret, AuthError> + Send + Sync + 'static,
    ) -> Self {
        let grant = Grant::TokenExchange {
            subject_type: subject_token_type.to_owned(),
            subject: Arc::new(subject),
        };
        Self::new(token_url, grant)
    }

    fn new(token_url: &str, grant: Grant) -> Self {
        Self {
            token_url: token_url.to_owned(),
            grant,
            client_id: None,
            client_secret: None,
            client_auth: ClientAuth::default(),
            scope: None,
            targets: Vec::new(),
            revocation_url: None,
            issuer: None,
        }
    }

    /// A client with an id and no secret: `client_id` in the body. A public client (as OIDC
    /// servers such as Keycloak use for password logins), or one that authenticates by its TLS
    /// certificate ([`ClientAuth::TlsClientAuth`], [`ClientAuth::SelfSignedTlsClientAuth`]).
    pub fn public_client(mut self, client_id: &str) -> Self {
        self.client_id = Some(client_id.to_owned());
        self.client_secret = None;
        self
    }

    /// A confidential client authenticating with `client_secret`.
    pub fn confidential_client(
        mut self,
        client_id: &str,
        client_secret: impl Into<Secret>,
    ) -> Self {
        self.client_id = Some(client_id.to_owned());
        self.client_secret = Some(client_secret.into());
        self
    }

    /// How the client authenticates: how a confidential client sends its secret, or that it
    /// presents a TLS client certificate. Default: [`ClientAuth::SecretBasic`].
    pub fn client_auth(mut self, client_auth: ClientAuth) -> Self {
        self.client_auth = client_auth;
        self
    }

    /// The `scope` to request at login.
    pub fn scope(mut self, scope: &str) -> Self {
        self.scope = Some(scope.to_owned());
        self
    }

    /// A `resource` the token is for (RFC 8707: an absolute URI, the API it will be sent to),
    /// sent on every token request, login and refresh alike. Call again for a token valid at
    /// several resources.
    pub fn resource(mut self, uri: &str) -> Self {
        self.targets.push(("resource", uri.to_owned()));
        self
    }

    /// An `audience` the token is for, as servers that name audiences rather than resources
    /// take it (Auth0, Keycloak's token exchange), sent on every token request. Call again for
    /// several.
    pub fn audience(mut self, audience: &str) -> Self {
        self.targets.push(("audience", audience.to_owned()));
        self
    }

    /// The revocation endpoint (RFC 7009), for [`TokenHandle::revoke`](crate::TokenHandle::revoke):
    /// the client authenticates there as at the token endpoint, and sends `token` and
    /// `token_type_hint` in the form.
    pub fn revocation_url(mut self, url: &str) -> Self {
        self.revocation_url = Some(url.to_owned());
        self
    }

    /// Learns the endpoints from `issuer`'s metadata (OpenID Connect Discovery, then RFC 8414):
    /// fetched through the auth transport before the first login, its `issuer` checked to be
    /// `issuer` exactly, its `token_endpoint` (and `revocation_endpoint`, unless
    /// [`revocation_url`](Self::revocation_url) names one) used instead of the URL given to the
    /// constructor (pass the issuer there too); fetched again when the token endpoint answers
    /// 404. With a mutual TLS [`ClientAuth`], the endpoints of its `mtls_endpoint_aliases`
    /// (RFC 8705 §5) replace the plain ones where it names them. A document naming another
    /// issuer, or whose `token_endpoint_auth_methods_supported` leaves out the client's method
    /// (`client_secret_basic`, `client_secret_post`, `tls_client_auth`,
    /// `self_signed_tls_client_auth`, or a signed assertion's `private_key_jwt` or
    /// `client_secret_jwt`), fails the login with [`ErrorKind::Config`](crate::ErrorKind::Config),
    /// and no credentials are sent.
    pub fn discover(mut self, issuer: &str) -> Self {
        self.issuer = Some(issuer.to_owned());
        self
    }

    /// Builds the provider; fails with [`ErrorKind::Config`](crate::ErrorKind::Config) on an
    /// invalid token URL, and on a mutual TLS [`ClientAuth`] without a client id or with a
    /// client secret.
    pub fn build(self) -> Result<HttpProvider, AuthError> {
        self.provider(Auth::Configured)
    }

    /// Builds a provider whose client authenticates with `assertion` (RFC 7523 §2.2), made anew
    /// for every login and refresh call: the form carries `client_id` (the assertion's),
    /// `client_assertion_type` and `client_assertion`, and no `Authorization` header goes out.
    /// The assertion's client replaces any set with [`public_client`](Self::public_client) or
    /// [`confidential_client`](Self::confidential_client), whose secret is then never sent.
    ///
    /// Fails on an invalid token URL, for `client_secret_jwt` on a client secret shorter than 32
    /// bytes (RFC 7518 §3.2), and with a mutual TLS [`ClientAuth`] (two authentication methods).
    ///
    /// ```
    /// # #[cfg(feature = "jose")] {
    /// use tower_token_auth::jose::{Algorithm, SigningKey};
    /// use tower_token_auth::provider::oauth2::{self, ClientAssertion};
    ///
    /// // In production: SigningKey::from_pkcs8_pem(&std::fs::read_to_string(path)?, Algorithm::ES256)?
    /// let key = SigningKey::generate(Algorithm::ES256)?.with_kid("my-app-2026");
    /// let provider = oauth2::Builder::client_credentials_grant("https://idp.example.com/oauth/token")
    ///     .scope("orders:read")
    ///     .build_with_assertion(ClientAssertion::private_key_jwt("my-app", key))?;
    /// # let _ = provider;
    /// # }
    /// # Ok::<(), tower_token_auth::AuthError>(())
    /// ```
    pub fn build_with_assertion(
        mut self,
        assertion: ClientAssertion,
    ) -> Result<AssertionProvider, AuthError> {
        if self.client_auth.is_mtls() {
            return Err(AuthError::config(format!(
                "a client assertion and `{}` are two client authentication methods: use one",
                self.client_auth.name()
            )));
        }
        self.client_id = Some(assertion.client_id.clone());
        self.client_secret = None;
        let mint = assertion.mint(&self.token_url)?;
        Ok(AssertionProvider {
            inner: self
                .provider(Auth::Assertion(assertion.method()))?
                .client_assertion(mint),
        })
    }

    /// The client authentication method's registered name, when it is known: what discovery
    /// checks the server supports. A public client's (`none`) is not checked: servers that take
    /// one for the password grant rarely list it.
    fn method(&self, auth: Auth) -> Option<&'static str> {
        match auth {
            Auth::Assertion(method) => method,
            Auth::Configured if self.client_auth.is_mtls() => Some(self.client_auth.name()),
            Auth::Configured => self.client_secret.as_ref().map(|_| self.client_auth.name()),
        }
    }

    /// The provider, its calls authenticating the client as `auth` says.
    fn provider(&self, auth: Auth) -> Result<HttpProvider, AuthError> {
        // A form POST to `url`, the client authenticated as configured: with an assertion,
        // only its `client_id` in the body (the assertion is added per call).
        let call_at = |url: &str, grant_type| match auth {
            Auth::Assertion(_) => self.assertion_call_at(url, grant_type),
            Auth::Configured => self.call_at(url, grant_type),
        };
        let call = |grant_type| call_at(&self.token_url, Some(grant_type));
        let login = match &self.grant {
            Grant::Password { username, password } => call("password")?
                .field("username", username.clone())
                .secret_field("password", password.clone()),
            Grant::ClientCredentials => call("client_credentials")?,
            Grant::TokenExchange { subject_type, .. } => call(TOKEN_EXCHANGE)?
                .refresh_token_field("subject_token")
                .field("subject_token_type", subject_type.clone()),
        };
        let login = match &self.scope {
            Some(scope) => login.field("scope", scope.clone()),
            None => login,
        };
        let refresh = call("refresh_token")?.refresh_token_field("refresh_token");
        let target = |spec: CallSpec| {
            (self.targets.iter()).fold(spec, |spec, (name, value)| spec.field(*name, value.clone()))
        };
        let (login, refresh) = (target(login), target(refresh));
        let provider = match &self.grant {
            // Renewed by exchanging again: a refresh token in the answer is ignored.
            Grant::TokenExchange { subject, .. } => {
                HttpProvider::login_only(login).with_subject(Arc::clone(subject))
            }
            _ => HttpProvider::new(login, refresh),
        };
        let provider = match &self.issuer {
            Some(issuer) => {
                let revocations = self.revocation_url.is_none();
                let discovered = Discovered::new(issuer)?
                    .for_client(self.method(auth), self.client_auth.is_mtls());
                provider.discovering(discovered, revocations)
            }
            None => provider,
        };
        // With discovery and no revocation URL, the token URL stands in for the metadata's.
        let Some(url) = self
            .revocation_url
            .as_ref()
            .or(self.issuer.as_ref().map(|_| &self.token_url))
        else {
            return Ok(provider);
        };
        let revoke = |hint: &'static str| -> Result<CallSpec, AuthError> {
            Ok(call_at(url, None)?
                .refresh_token_field("token")
                .field("token_type_hint", hint))
        };
        Ok(provider.revocation(revoke("access_token")?, revoke("refresh_token")?))
    }

    /// A form POST to `url`, with `grant_type` if given and `client_id` in the body.
    fn assertion_call_at(
        &self,
        url: &str,
        grant_type: Option<&'static str>,
    ) -> Result<CallSpec, AuthError> {
        let spec = form_post(url, grant_type)?;
        Ok(match &self.client_id {
            Some(id) => spec.field("client_id", id.clone()),
            None => spec,
        })
    }

    /// A form POST to `url`, with `grant_type` if given and the client's authentication: the one
    /// place that decides what of the client's credentials a request carries.
    fn call_at(&self, url: &str, grant_type: Option<&'static str>) -> Result<CallSpec, AuthError> {
        let spec = form_post(url, grant_type)?;
        let auth = self.client_auth;
        Ok(match (&self.client_id, &self.client_secret, auth) {
            // RFC 8705 §2: the certificate authenticates; `client_id` says whose it is.
            (None, _, ClientAuth::TlsClientAuth | ClientAuth::SelfSignedTlsClientAuth) => {
                return Err(AuthError::config(format!(
                    "`{}` needs the client id: build the client with `public_client(id)`",
                    auth.name()
                )))
            }
            (Some(_), Some(_), ClientAuth::TlsClientAuth | ClientAuth::SelfSignedTlsClientAuth) => {
                return Err(AuthError::config(format!(
                    "`{}` sends no client secret (the TLS certificate authenticates the client): \
                     build the client with `public_client(id)`, without a secret",
                    auth.name()
                )))
            }
            (None, _, _) => spec,
            (Some(id), None, _) => spec.field("client_id", id.clone()),
            (Some(id), Some(secret), ClientAuth::SecretPost) => spec
                .field("client_id", id.clone())
                .secret_field("client_secret", secret.clone()),
            (Some(id), Some(secret), ClientAuth::SecretBasic) => {
                spec.basic_auth_value(basic_form_encoded(id, secret)?)
            }
        })
    }
}

/// A form POST to `url`, with `grant_type` when given.
fn form_post(url: &str, grant_type: Option<&'static str>) -> Result<CallSpec, AuthError> {
    let spec = CallSpec::post(url)?.encoding(Encoding::Form);
    Ok(match grant_type {
        Some(grant_type) => spec.field("grant_type", grant_type),
        None => spec,
    })
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let grant = match self.grant {
            Grant::Password { .. } => "password",
            Grant::ClientCredentials => "client_credentials",
            Grant::TokenExchange { .. } => "token_exchange",
        };
        f.debug_struct("Builder")
            .field("token_url", &self.token_url)
            .field("grant", &grant)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("client_auth", &self.client_auth)
            .field("scope", &self.scope)
            .field("targets", &self.targets)
            .field("revocation_url", &self.revocation_url)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The most a client assertion file may hold: a service-account token is a few kilobytes.
const MAX_ASSERTION_FILE: u64 = 64 * 1024;

/// A function that returns a client assertion, called for every auth call.
type AssertionFn = dyn Fn() -> Result<Secret, AuthError> + Send + Sync;

/// How a client authenticates with a JWT instead of sending a secret (RFC 7523 §2.2): the JWT,
/// its *client assertion*, is made anew for every login and refresh call. Give it to
/// [`Builder::build_with_assertion`].
///
/// - `private_key_jwt` and `client_secret_jwt` (feature `jose`) sign an assertion here: `iss`
///   and `sub` the client ID, `aud` the token endpoint's URL (or the `audience` set), a random
///   `jti`, `iat` now and `exp` 60 seconds later.
/// - [`file`](Self::file) reads a ready-made one from a file at every call, as workload
///   identity provides it (a Kubernetes projected service-account token, a CI job's OIDC token),
///   so a token the platform rotates is picked up.
/// - [`from_fn`](Self::from_fn) asks a function of yours, for an assertion made elsewhere (a KMS
///   signing it).
///
/// `Debug` shows the client ID and the kind of assertion, never a key, secret or assertion.
#[derive(Clone)]
pub struct ClientAssertion {
    client_id: String,
    source: Source,
    #[cfg_attr(not(feature = "jose"), allow(dead_code))]
    audience: Option<String>,
}

#[derive(Clone)]
enum Source {
    #[cfg(feature = "jose")]
    PrivateKey(SigningKey),
    #[cfg(feature = "jose")]
    Secret(Secret),
    File(PathBuf),
    Function(Arc<AssertionFn>),
}

impl ClientAssertion {
    /// `private_key_jwt` (OpenID Connect Core §9): assertions for `client_id` signed with `key`,
    /// whose `kid`, if any, goes in their header. Register the key's
    /// [`public_jwk`](SigningKey::public_jwk) with the authorization server.
    #[cfg(feature = "jose")]
    pub fn private_key_jwt(client_id: &str, key: SigningKey) -> Self {
        Self::new(client_id, Source::PrivateKey(key))
    }

    /// `client_secret_jwt` (OpenID Connect Core §9): assertions for `client_id` signed with
    /// HS256 keyed with `client_secret`, which must be at least 32 bytes long (RFC 7518 §3.2).
    /// The secret itself is never sent.
    #[cfg(feature = "jose")]
    pub fn client_secret_jwt(client_id: &str, client_secret: impl Into<Secret>) -> Self {
        Self::new(client_id, Source::Secret(client_secret.into()))
    }

    /// The assertion in the file at `path`, read at every auth call (surrounding whitespace
    /// trimmed), for `client_id`.
    ///
    /// A file that cannot be read, is empty or is larger than 64 KiB fails the call with
    /// [`ErrorKind::Config`](crate::ErrorKind::Config), naming the path and the I/O error, never
    /// the content; the layer then backs off as for any configuration error, and reads the file
    /// again at the next attempt. The file is read on the auth call's task with blocking I/O,
    /// which suits the small, local files workload identity writes (not a network file system).
    pub fn file(client_id: &str, path: impl Into<PathBuf>) -> Self {
        Self::new(client_id, Source::File(path.into()))
    }

    /// The assertion `f` returns, called at every auth call, for `client_id`.
    ///
    /// `f` is synchronous because [`Provider`]'s request builders are: it runs on the auth
    /// call's task, and must not block it for long. An assertion that takes a network call to
    /// make (a KMS signing it) is best made ahead by a task of your own that keeps the latest in
    /// memory for `f` to return, well within its lifetime. An error from `f` fails the auth call
    /// as it is: return [`AuthError::config`] (which backs off) for what retrying soon will not
    /// fix.
    ///
    /// ```
    /// use std::sync::{Arc, RwLock};
    /// use tower_token_auth::provider::oauth2::{self, ClientAssertion};
    /// use tower_token_auth::{AuthError, Secret};
    ///
    /// // Kept fresh by a task that has the KMS sign a new assertion every 30 seconds.
    /// let latest: Arc<RwLock<Option<Secret>>> = Arc::default();
    /// let source = Arc::clone(&latest);
    /// let assertion = ClientAssertion::from_fn("my-app", move || {
    ///     source
    ///         .read()
    ///         .ok()
    ///         .and_then(|latest| latest.clone())
    ///         .ok_or_else(|| AuthError::config("no client assertion signed yet"))
    /// });
    /// let provider = oauth2::Builder::client_credentials_grant("https://idp.example.com/token")
    ///     .build_with_assertion(assertion)?;
    /// # let _ = provider;
    /// # Ok::<(), AuthError>(())
    /// ```
    pub fn from_fn(
        client_id: &str,
        f: impl Fn() -> Result<Secret, AuthError> + Send + Sync + 'static,
    ) -> Self {
        Self::new(client_id, Source::Function(Arc::new(f)))
    }

    /// The `aud` of the assertions signed here: by default the token endpoint's URL; some
    /// servers want their issuer identifier instead. (Assertions read from a file or returned
    /// by a function carry the audience they were made with.)
    #[cfg(feature = "jose")]
    pub fn audience(mut self, audience: &str) -> Self {
        self.audience = Some(audience.to_owned());
        self
    }

    fn new(client_id: &str, source: Source) -> Self {
        Self {
            client_id: client_id.to_owned(),
            source,
            audience: None,
        }
    }

    /// The registered name of the method the assertions authenticate by, when it is known (an
    /// assertion from a file or function may be either).
    fn method(&self) -> Option<&'static str> {
        match self.source {
            #[cfg(feature = "jose")]
            Source::PrivateKey(_) => Some("private_key_jwt"),
            #[cfg(feature = "jose")]
            Source::Secret(_) => Some("client_secret_jwt"),
            Source::File(_) | Source::Function(_) => None,
        }
    }

    /// What makes the assertions, for a provider whose token endpoint is `token_url` (their
    /// `aud` unless [`audience`](Self::audience) names another).
    pub(crate) fn mint(&self, token_url: &str) -> Result<Mint, AuthError> {
        #[cfg(feature = "jose")]
        let audience = self.audience.as_deref().unwrap_or(token_url);
        #[cfg(not(feature = "jose"))]
        let _ = token_url;
        Ok(match &self.source {
            #[cfg(feature = "jose")]
            Source::PrivateKey(key) => Mint::Signed(Assertions::new(
                &self.client_id,
                audience,
                AssertionSigner::Key(key.clone()),
            )?),
            #[cfg(feature = "jose")]
            Source::Secret(secret) => Mint::Signed(Assertions::new(
                &self.client_id,
                audience,
                AssertionSigner::Hmac(Arc::new(HmacKey::new(secret)?)),
            )?),
            Source::File(path) => Mint::File(path.clone()),
            Source::Function(f) => Mint::Function(Arc::clone(f)),
        })
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "jose")]
            Source::PrivateKey(key) => f.debug_tuple("PrivateKeyJwt").field(key).finish(),
            #[cfg(feature = "jose")]
            Source::Secret(_) => f.write_str("ClientSecretJwt"),
            Source::File(path) => f.debug_tuple("File").field(path).finish(),
            Source::Function(_) => f.write_str("Function"),
        }
    }
}

impl fmt::Debug for ClientAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAssertion")
            .field("client_id", &self.client_id)
            .field("source", &self.source)
            .field("audience", &self.audience)
            .finish()
    }
}

/// What makes a provider's client assertions: one for every auth call, appended to its form
/// ([`Mint::attach`]).
pub(crate) enum Mint {
    #[cfg(feature = "jose")]
    Signed(Assertions),
    File(PathBuf),
    Function(Arc<AssertionFn>),
}

impl Mint {
    /// A client assertion for one auth call.
    fn assertion(&self) -> Result<Secret, AuthError> {
        match self {
            #[cfg(feature = "jose")]
            Mint::Signed(assertions) => assertions.assertion(),
            Mint::File(path) => read_assertion(path),
            Mint::Function(f) => f(),
        }
    }

    /// `request` (a form POST to the token or revocation endpoint) with a fresh client assertion
    /// appended to its body; an assertion that cannot be had fails `call`.
    pub(crate) fn attach(
        &self,
        request: Request<Full<Bytes>>,
        call: AuthCall,
    ) -> Result<Request<Full<Bytes>>, AuthError> {
        let assertion = self.assertion().map_err(|e| e.during(call))?;
        let (parts, body) = request.into_parts();
        let form = full_bytes(body);
        let mut body = String::with_capacity(form.len() + assertion.expose().len() + 100);
        body.push_str(std::str::from_utf8(&form).unwrap_or_default());
        let mut serializer = form_urlencoded::Serializer::for_suffix(body, 0);
        serializer
            .append_pair("client_assertion_type", JWT_BEARER)
            .append_pair("client_assertion", assertion.expose());
        Ok(Request::from_parts(
            parts,
            Full::new(Bytes::from(serializer.finish())),
        ))
    }
}

/// The trimmed content of the assertion file at `path`. Errors name the path and the I/O
/// error, never the content.
fn read_assertion(path: &Path) -> Result<Secret, AuthError> {
    let failed = |what: &str| {
        AuthError::config(format!(
            "client assertion file `{}`: {what}",
            path.display()
        ))
    };
    let file = std::fs::File::open(path).map_err(|e| failed(&e.to_string()))?;
    let mut content = String::new();
    file.take(MAX_ASSERTION_FILE + 1)
        .read_to_string(&mut content)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => failed("not UTF-8 text"),
            _ => failed(&e.to_string()),
        })?;
    if content.len() as u64 > MAX_ASSERTION_FILE {
        return Err(failed("larger than 64 KiB"));
    }
    match content.trim() {
        "" => Err(failed("empty")),
        trimmed if trimmed.len() == content.len() => Ok(Secret::from(content)),
        trimmed => Ok(Secret::from(trimmed)),
    }
}

/// An OAuth2 provider whose client authenticates with a JWT client assertion (RFC 7523 §2.2),
/// made anew for every login and refresh request; built by [`Builder::build_with_assertion`].
///
/// Everything but the client's authentication is the [`HttpProvider`] that
/// [`Builder::build`] makes: the grant, the answers read, the failures classified, the policy.
#[derive(Clone)]
pub struct AssertionProvider {
    /// The provider, its client assertion attached to each of its calls.
    inner: HttpProvider,
}

/// The bytes of a `Full` body, which yields them at once, whole.
fn full_bytes(mut body: Full<Bytes>) -> Bytes {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    }
}

impl Provider for AssertionProvider {
    fn login_request(&self) -> Result<Request<Full<Bytes>>, AuthError> {
        self.inner.login_request()
    }

    fn refresh_request(&self, refresh_token: &Secret) -> Result<Request<Full<Bytes>>, AuthError> {
        self.inner.refresh_request(refresh_token)
    }

    fn parse_response(
        &self,
        call: AuthCall,
        response: &AuthResponse,
    ) -> Result<TokenSet, AuthError> {
        self.inner.parse_response(call, response)
    }

    fn classify_failure(&self, call: AuthCall, response: &AuthResponse) -> Failure {
        self.inner.classify_failure(call, response)
    }

    fn policy(&self) -> TokenPolicy {
        self.inner.policy()
    }

    fn discovery_request(&self) -> Option<Result<Request<Full<Bytes>>, AuthError>> {
        self.inner.discovery_request()
    }

    fn discovered(&self, response: &AuthResponse) -> Result<(), AuthError> {
        self.inner.discovered(response)
    }

    /// The inner provider's revocation request (RFC 7009), if it has one, authenticated with a
    /// fresh assertion as the token endpoint's calls are.
    fn revocation_request(
        &self,
        token: &Secret,
        hint: &str,
    ) -> Result<Option<Request<Full<Bytes>>>, AuthError> {
        self.inner.revocation_request(token, hint)
    }
}

impl fmt::Debug for Mint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "jose")]
            Mint::Signed(assertions) => fmt::Debug::fmt(assertions, f),
            Mint::File(path) => f.debug_tuple("File").field(path).finish(),
            Mint::Function(_) => f.write_str("Function"),
        }
    }
}

impl fmt::Debug for AssertionProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertionProvider")
            .field("inner", &self.inner)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Provider;
    use http::header::AUTHORIZATION;
    use http_body_util::BodyExt;

    async fn body(request: crate::provider::AuthRequest) -> String {
        let bytes = request.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn password_grant_with_basic_client() {
        let p = Builder::password("https://idp.test/token", "alice", "pw")
            .confidential_client("app:1", "s&cret")
            .scope("a b")
            .build()
            .unwrap();
        let login = p.login_request().unwrap();
        assert_eq!(
            login.headers()[AUTHORIZATION],
            "Basic YXBwJTNBMTpzJTI2Y3JldA=="
        );
        assert_eq!(
            body(login).await,
            "grant_type=password&username=alice&password=pw&scope=a+b"
        );
        let refresh = p.refresh_request(&Secret::from("rt")).unwrap();
        assert!(refresh.headers().contains_key(AUTHORIZATION));
        assert_eq!(
            body(refresh).await,
            "grant_type=refresh_token&refresh_token=rt"
        );
    }

    #[tokio::test]
    async fn client_credentials_with_post_auth() {
        let p = Builder::client_credentials("https://idp.test/token", "app", "sec")
            .client_auth(ClientAuth::SecretPost)
            .build()
            .unwrap();
        let login = p.login_request().unwrap();
        assert!(!login.headers().contains_key(AUTHORIZATION));
        assert_eq!(
            body(login).await,
            "grant_type=client_credentials&client_id=app&client_secret=sec"
        );
    }

    #[tokio::test]
    async fn mtls_methods_send_the_client_id_alone() {
        for auth in [
            ClientAuth::TlsClientAuth,
            ClientAuth::SelfSignedTlsClientAuth,
        ] {
            let p = Builder::client_credentials_grant("https://idp.test/token")
                .public_client("app")
                .client_auth(auth)
                .scope("read")
                .revocation_url("https://idp.test/revoke")
                .build()
                .unwrap();
            let login = p.login_request().unwrap();
            assert!(!login.headers().contains_key(AUTHORIZATION));
            assert_eq!(
                body(login).await,
                "grant_type=client_credentials&client_id=app&scope=read"
            );
            let revoke = p
                .revocation_request(&Secret::from("at"), "access_token")
                .unwrap()
                .unwrap();
            assert!(!revoke.headers().contains_key(AUTHORIZATION));
            assert_eq!(
                body(revoke).await,
                "client_id=app&token=at&token_type_hint=access_token"
            );
        }
    }

    #[test]
    fn mtls_methods_refuse_a_secret_a_missing_id_and_an_assertion() {
        let with_secret = Builder::client_credentials("https://idp.test/token", "app", "s3cret")
            .client_auth(ClientAuth::TlsClientAuth)
            .build()
            .unwrap_err();
        assert_eq!(with_secret.kind(), crate::ErrorKind::Config);
        assert_eq!(
            with_secret.to_string(),
            "invalid auth configuration: `tls_client_auth` sends no client secret (the TLS \
             certificate authenticates the client): build the client with `public_client(id)`, \
             without a secret"
        );
        let without_id = Builder::client_credentials_grant("https://idp.test/token")
            .client_auth(ClientAuth::SelfSignedTlsClientAuth)
            .build()
            .unwrap_err();
        assert_eq!(without_id.kind(), crate::ErrorKind::Config);
        assert!(
            without_id.to_string().contains("needs the client id"),
            "{without_id}"
        );
        let assertion = Builder::client_credentials_grant("https://idp.test/token")
            .client_auth(ClientAuth::TlsClientAuth)
            .build_with_assertion(ClientAssertion::from_fn("app", || Ok(Secret::from("a"))))
            .unwrap_err();
        assert_eq!(assertion.kind(), crate::ErrorKind::Config);
    }

    #[test]
    fn debug_redacts() {
        let b = Builder::password("https://idp.test/token", "alice", "pw-hidden")
            .confidential_client("app", "sec-hidden");
        let shown = format!("{b:?} {:?}", b.clone().build().unwrap());
        assert!(!shown.contains("hidden"), "{shown}");
    }

    /// The form of an assertion request, as pairs.
    async fn form(request: crate::provider::AuthRequest) -> Vec<(String, String)> {
        let body = body(request).await;
        form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect()
    }

    fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
        form.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[tokio::test]
    async fn assertion_from_a_file_is_read_at_every_call_and_trimmed() {
        let dir = std::env::temp_dir().join(format!("tta-assertion-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "  eyJ.first.sig\n").unwrap();
        let p = Builder::password("https://idp.test/token", "alice", "pw")
            .confidential_client("ignored", "secret-never-sent")
            .scope("a b")
            .build_with_assertion(ClientAssertion::file("app", &path))
            .unwrap();
        let login = p.login_request().unwrap();
        assert!(!login.headers().contains_key(AUTHORIZATION));
        let login = form(login).await;
        let names: Vec<&str> = login.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "grant_type",
                "client_id",
                "username",
                "password",
                "scope",
                "client_assertion_type",
                "client_assertion"
            ]
        );
        assert_eq!(field(&login, "client_id"), Some("app"));
        assert_eq!(field(&login, "client_assertion_type"), Some(JWT_BEARER));
        assert_eq!(field(&login, "client_assertion"), Some("eyJ.first.sig"));
        std::fs::write(&path, "eyJ.second.sig").unwrap();
        let refresh = form(p.refresh_request(&Secret::from("rt")).unwrap()).await;
        assert_eq!(field(&refresh, "grant_type"), Some("refresh_token"));
        assert_eq!(field(&refresh, "refresh_token"), Some("rt"));
        assert_eq!(field(&refresh, "client_assertion"), Some("eyJ.second.sig"));
        assert!(!format!("{p:?}").contains("secret-never-sent"));

        // Empty, missing: typed errors naming the path, not the content.
        std::fs::write(&path, " \n").unwrap();
        let err = p.login_request().unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        assert!(err.to_string().contains("token`: empty"), "{err}");
        std::fs::remove_file(&path).unwrap();
        let err = p.refresh_request(&Secret::from("rt")).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        assert_eq!(err.call(), Some(AuthCall::Refresh));
        std::fs::write(&path, vec![b'a'; 64 * 1024 + 1]).unwrap();
        let err = p.login_request().unwrap_err();
        assert!(err.to_string().ends_with("larger than 64 KiB"), "{err}");
        assert!(!err.to_string().contains("aaaa"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn assertion_from_a_function_is_asked_at_every_call() {
        let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = Arc::clone(&calls);
        let p = Builder::client_credentials_grant("https://idp.test/token")
            .build_with_assertion(ClientAssertion::from_fn("app", move || {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                match n {
                    0 | 1 => Ok(Secret::from(format!("assertion-{n}"))),
                    _ => Err(AuthError::config("KMS unreachable")),
                }
            }))
            .unwrap();
        for n in 0..2 {
            let login = form(p.login_request().unwrap()).await;
            let want = format!("assertion-{n}");
            assert_eq!(field(&login, "client_assertion"), Some(want.as_str()));
            assert_eq!(field(&login, "grant_type"), Some("client_credentials"));
        }
        let err = p.login_request().unwrap_err();
        assert_eq!(err.call(), Some(AuthCall::Login));
        assert_eq!(
            err.to_string(),
            "login: invalid auth configuration: KMS unreachable"
        );
        assert!(format!("{p:?}").contains("Function"));
    }

    #[cfg(feature = "jose")]
    #[tokio::test]
    async fn signed_assertions_are_fresh_per_call() {
        use crate::jose::{Algorithm, SigningKey};
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let p = Builder::client_credentials_grant("https://idp.test/token")
            .build_with_assertion(
                ClientAssertion::private_key_jwt("app", key).audience("https://idp.test"),
            )
            .unwrap();
        let a = form(p.login_request().unwrap()).await;
        let b = form(p.login_request().unwrap()).await;
        assert_ne!(field(&a, "client_assertion"), field(&b, "client_assertion"));
        let short = Builder::client_credentials_grant("https://idp.test/token")
            .build_with_assertion(ClientAssertion::client_secret_jwt("app", "too-short"))
            .unwrap_err();
        assert_eq!(short.kind(), crate::ErrorKind::Config);
        assert!(!short.to_string().contains("too-short"));
        let debug = format!(
            "{:?}",
            ClientAssertion::client_secret_jwt("app", "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t")
        );
        assert!(!debug.contains("s3cr3t"), "{debug}");
    }
}
