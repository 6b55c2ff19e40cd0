//! A provider assembled from data: where each auth call goes, how it encodes its parameters, and
//! where the answer keeps the tokens. Every preset in this crate is one of these.

use std::borrow::Cow;
use std::fmt;

use base64::engine::{general_purpose::STANDARD, Engine as _};
use bytes::Bytes;
use http::header::{HeaderName, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::Full;

use crate::error::{AuthCall, AuthError};
use crate::provider::{AuthRequest, AuthResponse, Failure, Provider, TokenPolicy, CLIENT_ERRORS};
use crate::secret::Secret;
use crate::token::TokenSet;

/// How a request body carries its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Encoding {
    /// A JSON object, `Content-Type: application/json`.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

#[derive(Clone)]
enum Value {
    Plain(Cow<'static, str>),
    Secret(Secret),
    RefreshToken,
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Plain(v) => fmt::Debug::fmt(v, f),
            Value::Secret(s) => fmt::Debug::fmt(s, f),
            Value::RefreshToken => f.write_str("<refresh token>"),
        }
    }
}

/// One auth call: method, URL, static headers, and body fields.
///
/// ```
/// use tower_token_auth::provider::{CallSpec, Encoding};
/// use tower_token_auth::Secret;
///
/// let login = CallSpec::post("https://auth.example.com/token")?
///     .encoding(Encoding::Form)
///     .field("grant_type", "password")
///     .secret_field("password", Secret::new("hunter2"));
/// let refresh = CallSpec::get("https://auth.example.com/refresh")?
///     .refresh_token_header("Refresh-Token")?;
/// # Ok::<(), tower_token_auth::AuthError>(())
/// ```
#[derive(Clone, Debug)]
pub struct CallSpec {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    encoding: Option<Encoding>,
    fields: Vec<(Cow<'static, str>, Value)>,
    refresh_header: Option<HeaderName>,
}

impl CallSpec {
    /// A call with `method` to the absolute `url`.
    pub fn new(method: Method, url: &str) -> Result<Self, AuthError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| AuthError::config("auth URL is not a valid URI"))?;
        if uri.scheme().is_none() || uri.authority().is_none() {
            return Err(AuthError::config(
                "auth URL must be absolute (scheme and host)",
            ));
        }
        Ok(Self {
            method,
            uri,
            headers: HeaderMap::new(),
            encoding: None,
            fields: Vec::new(),
            refresh_header: None,
        })
    }

    /// A `POST` to `url`.
    pub fn post(url: &str) -> Result<Self, AuthError> {
        Self::new(Method::POST, url)
    }

    /// A `GET` to `url`.
    pub fn get(url: &str) -> Result<Self, AuthError> {
        Self::new(Method::GET, url)
    }

    /// Encodes the fields as `encoding` (and sets `Content-Type`).
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = Some(encoding);
        self
    }

    /// Adds a non-secret body field.
    pub fn field(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Self {
        self.fields.push((name.into(), Value::Plain(value.into())));
        self
    }

    /// Adds a secret body field (a password, an API key, a client secret).
    pub fn secret_field(mut self, name: impl Into<Cow<'static, str>>, value: Secret) -> Self {
        self.fields.push((name.into(), Value::Secret(value)));
        self
    }

    /// Sends the refresh token as the body field `name`.
    pub fn refresh_token_field(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.fields.push((name.into(), Value::RefreshToken));
        self
    }

    /// Sends the refresh token in the header `name`.
    pub fn refresh_token_header(mut self, name: &str) -> Result<Self, AuthError> {
        let name = HeaderName::try_from(name)
            .map_err(|_| AuthError::config("refresh token header name is invalid"))?;
        self.refresh_header = Some(name);
        Ok(self)
    }

    /// Adds a static header.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, AuthError> {
        let name =
            HeaderName::try_from(name).map_err(|_| AuthError::config("invalid header name"))?;
        let value =
            HeaderValue::try_from(value).map_err(|_| AuthError::config("invalid header value"))?;
        self.headers.append(name, value);
        Ok(self)
    }

    /// Adds a secret header (an API key header, say): marked sensitive, never shown by `Debug`.
    pub fn secret_header(mut self, name: &str, value: &Secret) -> Result<Self, AuthError> {
        let name =
            HeaderName::try_from(name).map_err(|_| AuthError::config("invalid header name"))?;
        let mut value = HeaderValue::try_from(value.expose())
            .map_err(|_| AuthError::config("secret header value is not a valid header value"))?;
        value.set_sensitive(true);
        self.headers.append(name, value);
        Ok(self)
    }

    /// Authenticates the call with HTTP Basic (RFC 7617) over `user:password`.
    pub fn basic_auth(self, user: &str, password: &Secret) -> Result<Self, AuthError> {
        Ok(self.basic_auth_value(basic(user, password)?))
    }

    pub(crate) fn basic_auth_value(mut self, value: HeaderValue) -> Self {
        self.headers.insert(AUTHORIZATION, value);
        self
    }

    fn build(&self, refresh_token: Option<&Secret>) -> Result<AuthRequest, AuthError> {
        let value = |v: &Value| -> Result<String, AuthError> {
            Ok(match v {
                Value::Plain(s) => s.to_string(),
                Value::Secret(s) => s.expose().to_owned(),
                Value::RefreshToken => refresh_token
                    .ok_or_else(|| AuthError::config("refresh token field on a login call"))?
                    .expose()
                    .to_owned(),
            })
        };
        let (body, content_type) = match self.encoding {
            None => (Bytes::new(), None),
            Some(Encoding::Json) => {
                let mut object = serde_json::Map::new();
                for (name, v) in &self.fields {
                    object.insert(name.to_string(), value(v)?.into());
                }
                let body = serde_json::Value::Object(object).to_string();
                (Bytes::from(body), Some("application/json"))
            }
            Some(Encoding::Form) => {
                let mut form = form_urlencoded::Serializer::new(String::new());
                for (name, v) in &self.fields {
                    form.append_pair(name, &value(v)?);
                }
                (
                    Bytes::from(form.finish()),
                    Some("application/x-www-form-urlencoded"),
                )
            }
        };
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        *headers = self.headers.clone();
        if let Some(content_type) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        if !headers.contains_key(ACCEPT) {
            headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        }
        if let (Some(name), Some(token)) = (&self.refresh_header, refresh_token) {
            let mut value = HeaderValue::try_from(token.expose()).map_err(|_| {
                AuthError::invalid_token("refresh token is not a valid header value")
            })?;
            value.set_sensitive(true);
            headers.insert(name.clone(), value);
        }
        Ok(request)
    }
}

/// `Basic base64(user:password)`, marked sensitive.
pub(crate) fn basic(user: &str, password: &Secret) -> Result<HeaderValue, AuthError> {
    let encoded = STANDARD.encode(format!("{user}:{}", password.expose()));
    let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
        .map_err(|_| AuthError::config("Basic credentials are not a valid header value"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Where an auth response keeps the tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// A standard JSON token response ([`TokenSet::from_json`]).
    JsonBody,
    /// Response headers holding the bare tokens (an optional `Bearer ` prefix is accepted).
    /// A success without the access header is an error: the server issued no new pair.
    Headers {
        /// The access token header.
        access: HeaderName,
        /// The refresh token header.
        refresh: HeaderName,
    },
}

impl TokenSource {
    fn parse(&self, response: &AuthResponse) -> Result<TokenSet, AuthError> {
        match self {
            TokenSource::JsonBody => TokenSet::from_json(response.body()),
            TokenSource::Headers { access, refresh } => {
                let read = |name: &HeaderName| -> Result<Option<String>, AuthError> {
                    let Some(value) = response.headers().get(name) else {
                        return Ok(None);
                    };
                    let value = value
                        .to_str()
                        .map_err(|_| AuthError::invalid_token("token header is not visible ASCII"))?
                        .trim();
                    let value = match value.get(..7) {
                        Some(p) if p.eq_ignore_ascii_case("bearer ") => value[7..].trim_start(),
                        _ => value,
                    };
                    Ok(Some(value).filter(|v| !v.is_empty()).map(str::to_owned))
                };
                let token = read(access)?.ok_or_else(|| {
                    AuthError::malformed(format!("success without a `{access}` header"))
                })?;
                let mut tokens = TokenSet::new(token);
                if let Some(refresh) = read(refresh)? {
                    tokens = tokens.with_refresh_token(refresh);
                }
                Ok(tokens)
            }
        }
    }
}

/// Which failure statuses mean "rejected" for one call.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejects {
    /// Exactly these statuses; all others are transient.
    Statuses(Vec<StatusCode>),
    /// Every non-2xx answer (for APIs that document a single error status for everything).
    AnyFailure,
    /// These statuses when the answer is the API's own: a JSON object. The same status with any
    /// other body (the HTML or empty error page of a proxy, a load balancer or a crashed server)
    /// is not a rejection. For APIs that answer refused credentials with a 500.
    ApiAnswers(Vec<StatusCode>),
}

impl Rejects {
    /// 400, 401 and 403: what RFC 6749 servers answer to dead credentials and grants.
    pub fn client_errors() -> Self {
        Rejects::Statuses(CLIENT_ERRORS.to_vec())
    }

    fn classify(&self, response: &AuthResponse) -> Failure {
        let status = response.status();
        let rejected = match self {
            Rejects::AnyFailure => true,
            Rejects::Statuses(list) => list.contains(&status),
            Rejects::ApiAnswers(list) => {
                list.contains(&status)
                    && serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(
                        response.body(),
                    )
                    .is_ok()
            }
        };
        if rejected {
            Failure::Rejected
        } else {
            Failure::Transient
        }
    }
}

/// A [`Provider`] made of two [`CallSpec`]s, a [`TokenSource`], rejection rules and a [`TokenPolicy`].
///
/// ```
/// use tower_token_auth::provider::{CallSpec, Encoding, HttpProvider};
/// use tower_token_auth::{TokenPolicy, RefreshTiming, Secret};
///
/// let base = "https://api.example.com/v1";
/// let provider = HttpProvider::new(
///     CallSpec::post(&format!("{base}/login"))?
///         .encoding(Encoding::Json)
///         .secret_field("api_key", Secret::new("k")),
///     CallSpec::post(&format!("{base}/refresh"))?
///         .encoding(Encoding::Json)
///         .refresh_token_field("refresh_token"),
/// )
/// .with_policy(|p| p.refresh = RefreshTiming::AfterExpiry);
/// # Ok::<(), tower_token_auth::AuthError>(())
/// ```
#[derive(Clone, Debug)]
pub struct HttpProvider {
    login: CallSpec,
    refresh: CallSpec,
    tokens: TokenSource,
    login_rejects: Rejects,
    refresh_rejects: Rejects,
    policy: TokenPolicy,
}

impl HttpProvider {
    /// A provider logging in with `login` and refreshing with `refresh`; tokens in a JSON body,
    /// 400/401/403 rejecting, default policy.
    pub fn new(login: CallSpec, refresh: CallSpec) -> Self {
        Self {
            login,
            refresh,
            tokens: TokenSource::JsonBody,
            login_rejects: Rejects::client_errors(),
            refresh_rejects: Rejects::client_errors(),
            policy: TokenPolicy::default(),
        }
    }

    /// Where responses keep the tokens.
    pub fn tokens(mut self, source: TokenSource) -> Self {
        self.tokens = source;
        self
    }

    /// Which login failures are rejections of the credentials.
    pub fn login_rejects(mut self, rejects: Rejects) -> Self {
        self.login_rejects = rejects;
        self
    }

    /// Which refresh failures are rejections of the refresh token (leading to a login).
    pub fn refresh_rejects(mut self, rejects: Rejects) -> Self {
        self.refresh_rejects = rejects;
        self
    }

    /// Changes the refresh, replay and fallback policy in place.
    pub fn with_policy(mut self, f: impl FnOnce(&mut TokenPolicy)) -> Self {
        f(&mut self.policy);
        self
    }

    /// The login call.
    pub fn login_call(&self) -> &CallSpec {
        &self.login
    }

    /// The refresh call.
    pub fn refresh_call(&self) -> &CallSpec {
        &self.refresh
    }
}

impl Provider for HttpProvider {
    fn login_request(&self) -> Result<AuthRequest, AuthError> {
        self.login.build(None)
    }

    fn refresh_request(&self, refresh_token: &Secret) -> Result<AuthRequest, AuthError> {
        self.refresh.build(Some(refresh_token))
    }

    fn parse_response(&self, _: AuthCall, response: &AuthResponse) -> Result<TokenSet, AuthError> {
        self.tokens.parse(response)
    }

    fn classify_failure(&self, call: AuthCall, response: &AuthResponse) -> Failure {
        match call {
            AuthCall::Login => self.login_rejects.classify(response),
            AuthCall::Refresh => self.refresh_rejects.classify(response),
        }
    }

    fn policy(&self) -> TokenPolicy {
        self.policy.clone()
    }
}

/// Joins a base URL as an API document writes it with an endpoint path.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(request: AuthRequest) -> String {
        let bytes = request.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn json_and_form_bodies() {
        let spec = CallSpec::post("http://a.test/login")
            .unwrap()
            .encoding(Encoding::Json)
            .field("username", "u")
            .secret_field("password", Secret::new("p&w=\"x"));
        let req = spec.build(None).unwrap();
        assert_eq!(req.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(body(req).await, r#"{"password":"p&w=\"x","username":"u"}"#);

        let spec = CallSpec::post("http://a.test/refresh")
            .unwrap()
            .encoding(Encoding::Form)
            .field("grant_type", "refresh_token")
            .refresh_token_field("refresh_token");
        let req = spec.build(Some(&Secret::new("r t&1"))).unwrap();
        assert_eq!(
            req.headers()[CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(
            body(req).await,
            "grant_type=refresh_token&refresh_token=r+t%261"
        );
    }

    #[test]
    fn basic_and_header_tokens() {
        let spec = CallSpec::get("http://a.test/login")
            .unwrap()
            .basic_auth("Aladdin", &Secret::new("open sesame"))
            .unwrap();
        let req = spec.build(None).unwrap();
        assert_eq!(
            req.headers()[AUTHORIZATION],
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert!(req.headers()[AUTHORIZATION].is_sensitive());
        assert!(format!("{spec:?}").contains("Sensitive"));

        let spec = CallSpec::get("http://a.test/refresh")
            .unwrap()
            .refresh_token_header("Refresh-Token")
            .unwrap();
        let req = spec.build(Some(&Secret::new("rt"))).unwrap();
        assert_eq!(req.headers()["refresh-token"], "rt");
        assert!(!req.headers().contains_key(AUTHORIZATION));
        let err = spec.build(Some(&Secret::new("r\nt"))).unwrap_err();
        assert!(err.is_invalid_token());
    }

    #[test]
    fn bad_urls_are_config_errors() {
        for url in ["", "/relative", "not a url", "http://"] {
            let err = CallSpec::post(url).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Config, "{url}");
        }
    }

    #[test]
    fn header_tokens() {
        let source = TokenSource::Headers {
            access: HeaderName::from_static("set-authorization"),
            refresh: HeaderName::from_static("set-refresh-token"),
        };
        let mut response = AuthResponse::new(Bytes::new());
        let err = source.parse(&response).unwrap_err();
        assert!(err.is_malformed());
        response
            .headers_mut()
            .insert("set-authorization", HeaderValue::from_static("Bearer at"));
        response
            .headers_mut()
            .insert("set-refresh-token", HeaderValue::from_static("rt"));
        let tokens = source.parse(&response).unwrap();
        assert_eq!(tokens.access_token().expose(), "at");
        assert_eq!(tokens.refresh_token().map(Secret::expose), Some("rt"));
    }

    #[test]
    fn debug_redacts_secret_fields() {
        let spec = CallSpec::post("http://a.test/login")
            .unwrap()
            .secret_field("password", Secret::new("hunter2"));
        assert!(!format!("{spec:?}").contains("hunter2"));
    }
}
