//! A provider assembled from data: where each auth call goes, how it encodes its parameters, and
//! where the answer keeps the tokens. Every preset in this crate is one of these, and so is every
//! provider read from a spec file. The Rust builder here is crate-private: users describe an API
//! in a spec file, and code what no spec describes as a [`Provider`].

mod call;
mod discovered;
mod param;
mod rejects;
mod rfc3339;
mod tokens;

use std::fmt;
use std::sync::Arc;

pub(crate) use self::call::{basic, basic_form_encoded, MAX_HEADERS};
pub(crate) use self::call::{CallSpec, Encoding};
pub(crate) use self::discovered::Discovered;
pub(crate) use self::param::Param;
pub(crate) use self::rejects::Rejects;
pub(crate) use self::tokens::{Expiry, Location, Timestamp, TokenFields, TokenSource};

use crate::error::{AuthCall, AuthError};
use crate::provider::oauth2::Mint;
use crate::provider::{AuthRequest, AuthResponse, Failure, Provider, TokenPolicy};
use crate::secret::Secret;
use crate::token::TokenSet;

/// A custom parse step: turns a successful auth answer into a [`TokenSet`].
type ParseFn = Arc<dyn Fn(AuthCall, &AuthResponse) -> Result<TokenSet, AuthError> + Send + Sync>;

/// A provider read from a spec file ([`ProviderSpec`](super::ProviderSpec) documents the format):
/// [`ProviderSpec::build`](super::ProviderSpec::build). Presets are spec files too; an API
/// whose answers no `[tokens]` table describes takes a parse step of its own
/// ([`HttpProvider::parse_with`]), and one that no spec describes at all implements [`Provider`].
///
/// Its policy is [`TokenPolicy::default`] changed by the spec's `[policy]`; the layer changes it
/// further with [`AuthLayerBuilder::with_policy`](crate::AuthLayerBuilder::with_policy).
///
/// ```
/// use tower_token_auth::provider::{Credentials, ProviderSpec, RefreshTiming};
/// use tower_token_auth::AuthLayer;
/// # fn build(client: tower::util::BoxCloneSyncService<http::Request<http_body_util::Full<bytes::Bytes>>, http::Response<http_body_util::Full<bytes::Bytes>>, tower::BoxError>) -> Result<(), tower_token_auth::provider::SpecError> {
///
/// let spec = r#"
/// base_url = "https://api.example.com/v1"
///
/// [login]
/// url = "/login"
/// json = { api_key = "${api_key}" }
///
/// [refresh]
/// url = "/refresh"
/// json = { refresh_token = "${refresh_token}" }
/// "#;
/// let provider = ProviderSpec::from_toml(spec)?.build(&Credentials::new().api_key("k"))?;
/// let layer = AuthLayer::builder(provider)
///     .with_policy(|p| p.refresh = RefreshTiming::AfterExpiry)
///     .build(client);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HttpProvider {
    login: CallSpec,
    refresh: Option<CallSpec>,
    tokens: TokenSource,
    parse: Option<ParseFn>,
    login_rejects: Rejects,
    refresh_rejects: Rejects,
    policy: TokenPolicy,
    /// The revocation calls (RFC 7009), for an access token and for a refresh token: each takes
    /// the token where a refresh call takes the refresh token.
    revoke: Option<Arc<[CallSpec; 2]>>,
    /// Endpoints read from the auth server's metadata, which replace the calls' own: the token
    /// endpoint always, the revocation endpoint when `revoke_discovered`.
    discovery: Option<Arc<Discovered>>,
    revoke_discovered: bool,
    /// Where a token exchange's subject token comes from: called for every login, its token
    /// sent where a refresh call sends the refresh token.
    subject: Option<SubjectFn>,
    /// The client assertion (RFC 7523) each token and revocation call carries, made anew for
    /// every call.
    assertion: Option<Arc<Mint>>,
}

/// The source of a token exchange's subject token.
pub(crate) type SubjectFn = Arc<dyn Fn() -> Result<Secret, AuthError> + Send + Sync>;

impl HttpProvider {
    /// A provider logging in with `login` and refreshing with `refresh`; tokens in a JSON body,
    /// 400/401/403 rejecting, default policy.
    pub(crate) fn new(login: CallSpec, refresh: CallSpec) -> Self {
        Self {
            refresh: Some(refresh),
            ..Self::login_only(login)
        }
    }

    /// A provider that only logs in, for APIs without a refresh call (an OAuth2 client
    /// credentials grant, an API key exchange): a refresh token in an answer is ignored, and
    /// the layer logs in again when the token is due.
    pub(crate) fn login_only(login: CallSpec) -> Self {
        Self {
            login,
            refresh: None,
            tokens: TokenSource::JsonBody,
            parse: None,
            login_rejects: Rejects::client_errors(),
            refresh_rejects: Rejects::client_errors(),
            policy: TokenPolicy::default(),
            revoke: None,
            discovery: None,
            revoke_discovered: false,
            subject: None,
            assertion: None,
        }
    }

    /// Logs in with the token `subject` returns at each login, in the login call's refresh-token
    /// place (a token exchange's `subject_token`).
    pub(crate) fn with_subject(mut self, subject: SubjectFn) -> Self {
        self.subject = Some(subject);
        self
    }

    /// Sends the token calls to the endpoint `discovery` reads from the metadata, and the
    /// revocation calls too when `revocations` (their configured URL then stands in).
    pub(crate) fn discovering(mut self, discovery: Discovered, revocations: bool) -> Self {
        self.discovery = Some(Arc::new(discovery));
        self.revoke_discovered = revocations;
        self
    }

    /// Authenticates the client of every token and revocation call with an assertion `mint`
    /// makes for that call (form bodies only: the assertion is appended to the form).
    pub(crate) fn client_assertion(mut self, mint: Mint) -> Self {
        self.assertion = Some(Arc::new(mint));
        self
    }

    /// `request` sent where the metadata says token calls go, when the provider discovers, with
    /// its client assertion when the client authenticates with one.
    fn to_token_endpoint(
        &self,
        request: AuthRequest,
        call: AuthCall,
    ) -> Result<AuthRequest, AuthError> {
        let request = match &self.discovery {
            Some(discovery) => discovery.to_token_endpoint(request)?,
            None => request,
        };
        self.authenticated(request, call)
    }

    /// `request` with a fresh client assertion, when the client authenticates with one.
    fn authenticated(
        &self,
        request: AuthRequest,
        call: AuthCall,
    ) -> Result<AuthRequest, AuthError> {
        match &self.assertion {
            Some(mint) => mint.attach(request, call),
            None => Ok(request),
        }
    }

    /// Revokes tokens with `access` (for `token_type_hint=access_token`) and `refresh` (for
    /// `refresh_token`), each built with the token in its refresh-token place.
    pub(crate) fn revocation(mut self, access: CallSpec, refresh: CallSpec) -> Self {
        self.revoke = Some(Arc::new([access, refresh]));
        self
    }

    /// Where responses keep the tokens.
    pub(crate) fn tokens(mut self, source: TokenSource) -> Self {
        self.tokens = source;
        self
    }

    /// Parses successful answers with `parse` instead of the spec's `[tokens]` table, for an answer that
    /// none describes. `parse` runs on the auth call's task, once per successful login or
    /// refresh; a [`TokenSet`] without an access token cannot be built, and an error it returns
    /// counts as an unusable answer (retried as transient). Build errors with
    /// [`AuthError::malformed`], naming fields, never their values.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime, UNIX_EPOCH};
    /// use tower_token_auth::provider::{Credentials, ProviderSpec};
    /// use tower_token_auth::AuthError;
    /// use tower_token_auth::token::TokenSet;
    ///
    /// let spec = r#"
    /// [login]
    /// url = "https://api.example.com/session"
    /// json = { api_key = "${api_key}" }
    /// "#;
    /// // {"session":{"jwt":"…","valid_until_ms":1700000000000}}
    /// let provider = ProviderSpec::from_toml(spec)?.build(&Credentials::new().api_key("k-123"))?
    ///     .parse_with(|_call, response| {
    ///     let body: serde_json::Value = serde_json::from_slice(response.body())
    ///         .map_err(|_| AuthError::malformed("not JSON"))?;
    ///     let token = body["session"]["jwt"]
    ///         .as_str()
    ///         .ok_or_else(|| AuthError::malformed("missing `session.jwt`"))?;
    ///     let until = body["session"]["valid_until_ms"]
    ///         .as_u64()
    ///         .ok_or_else(|| AuthError::malformed("missing `session.valid_until_ms`"))?;
    ///     Ok(TokenSet::new(token).with_expires_at(UNIX_EPOCH + Duration::from_millis(until)))
    ///     });
    /// # Ok::<(), tower_token_auth::provider::SpecError>(())
    /// ```
    pub fn parse_with(
        mut self,
        parse: impl Fn(AuthCall, &AuthResponse) -> Result<TokenSet, AuthError> + Send + Sync + 'static,
    ) -> Self {
        self.parse = Some(Arc::new(parse));
        self
    }

    /// Which login failures are rejections of the credentials.
    pub(crate) fn login_rejects(mut self, rejects: Rejects) -> Self {
        self.login_rejects = rejects;
        self
    }

    /// Which refresh failures are rejections of the refresh token (leading to a login).
    pub(crate) fn refresh_rejects(mut self, rejects: Rejects) -> Self {
        self.refresh_rejects = rejects;
        self
    }

    /// Changes the refresh, replay and fallback policy in place (for presets and specs; users
    /// change it on the layer).
    pub(crate) fn with_policy(mut self, f: impl FnOnce(&mut TokenPolicy)) -> Self {
        f(&mut self.policy);
        self
    }

    #[cfg(test)]
    /// The refresh call, unless the provider only logs in.
    pub(crate) fn refresh_call(&self) -> Option<&CallSpec> {
        self.refresh.as_ref()
    }
}

impl Provider for HttpProvider {
    fn login_request(&self) -> Result<AuthRequest, AuthError> {
        let subject = match &self.subject {
            Some(subject) => Some(subject()?),
            None => None,
        };
        self.to_token_endpoint(self.login.build(subject.as_ref())?, AuthCall::Login)
    }

    fn discovery_request(&self) -> Option<Result<AuthRequest, AuthError>> {
        self.discovery.as_ref()?.request()
    }

    fn discovered(&self, response: &AuthResponse) -> Result<(), AuthError> {
        match &self.discovery {
            Some(discovery) => discovery.read(response),
            None => Ok(()),
        }
    }

    fn revocation_request(
        &self,
        token: &Secret,
        hint: &str,
    ) -> Result<Option<AuthRequest>, AuthError> {
        let Some(calls) = &self.revoke else {
            return Ok(None);
        };
        let [access, refresh] = &**calls;
        let call = if hint == "refresh_token" {
            refresh
        } else {
            access
        };
        let request = call.build(Some(token))?;
        let request = match (&self.discovery, self.revoke_discovered) {
            (Some(discovery), true) => discovery.to_revocation_endpoint(request),
            _ => Some(request),
        };
        request
            .map(|request| self.authenticated(request, AuthCall::Revoke))
            .transpose()
    }

    fn refresh_request(&self, refresh_token: &Secret) -> Result<AuthRequest, AuthError> {
        match &self.refresh {
            Some(refresh) => {
                self.to_token_endpoint(refresh.build(Some(refresh_token))?, AuthCall::Refresh)
            }
            None => Err(AuthError::config("the provider has no refresh call")),
        }
    }

    fn parse_response(
        &self,
        call: AuthCall,
        response: &AuthResponse,
    ) -> Result<TokenSet, AuthError> {
        let tokens = match &self.parse {
            Some(parse) => parse(call, response)?,
            None => self.tokens.parse(response)?,
        };
        Ok(match self.refresh {
            Some(_) => tokens,
            // NOTE: a refresh token kept here would only make the layer try a call that does
            // not exist before each login.
            None => tokens.without_refresh_token(),
        })
    }

    fn classify_failure(&self, call: AuthCall, response: &AuthResponse) -> Failure {
        if let (Some(discovery), http::StatusCode::NOT_FOUND) = (&self.discovery, response.status())
        {
            if matches!(call, AuthCall::Login | AuthCall::Refresh) {
                discovery.stale();
            }
        }
        match call {
            AuthCall::Login => self.login_rejects.classify(response),
            AuthCall::Refresh => self.refresh_rejects.classify(response),
            AuthCall::Revoke | AuthCall::Discovery => Failure::of_status(response.status()),
        }
    }

    fn policy(&self) -> TokenPolicy {
        self.policy.clone()
    }
}

impl fmt::Debug for HttpProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpProvider")
            .field("login", &self.login)
            .field("refresh", &self.refresh)
            .field("tokens", &self.tokens)
            .field("parse", &self.parse.as_ref().map(|_| "custom"))
            .field("login_rejects", &self.login_rejects)
            .field("refresh_rejects", &self.refresh_rejects)
            .field("policy", &self.policy)
            .field("revoke", &self.revoke)
            .field("discovery", &self.discovery)
            .field("subject", &self.subject.as_ref().map(|_| "a function"))
            .field("assertion", &self.assertion)
            .finish()
    }
}

/// Joins a base URL as an API document writes it with an endpoint path.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn ok(body: &'static str) -> AuthResponse {
        AuthResponse::new(Bytes::from_static(body.as_bytes()))
    }

    fn login() -> CallSpec {
        CallSpec::post("http://a.test/login").unwrap()
    }

    #[test]
    fn parse_hook_replaces_the_token_source() {
        let provider = HttpProvider::new(login(), login()).parse_with(|call, response| {
            let body = std::str::from_utf8(response.body()).unwrap();
            let (access, refresh) = body.split_once(' ').unwrap();
            let tokens = TokenSet::new(access).with_refresh_token(refresh);
            Ok(match call {
                AuthCall::Login => tokens,
                _ => tokens.with_expires_in(std::time::Duration::from_secs(7)),
            })
        });
        let tokens = provider
            .parse_response(AuthCall::Login, &ok("at rt"))
            .unwrap();
        assert_eq!(tokens.access_token().expose(), "at");
        assert_eq!(tokens.refresh_token().map(Secret::expose), Some("rt"));
        assert_eq!(tokens.expires_in(), None);
        let tokens = provider
            .parse_response(AuthCall::Refresh, &ok("at rt"))
            .unwrap();
        assert_eq!(tokens.expires_in(), Some(std::time::Duration::from_secs(7)));
        assert!(format!("{provider:?}").contains(r#"parse: Some("custom")"#));
    }

    #[test]
    fn login_only_ignores_refresh_tokens() {
        let provider = HttpProvider::login_only(login());
        assert!(provider.refresh_call().is_none());
        let tokens = provider
            .parse_response(
                AuthCall::Login,
                &ok(r#"{"access_token":"at","refresh_token":"rt"}"#),
            )
            .unwrap();
        assert_eq!(tokens.access_token().expose(), "at");
        assert!(tokens.refresh_token().is_none());
        let err = provider.refresh_request(&Secret::from("rt")).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
    }
}
