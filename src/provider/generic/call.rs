//! One auth call as data: method, URL, query, headers and body, each value a [`Param`].

use std::borrow::Cow;

use base64::engine::{general_purpose::STANDARD, Engine as _};
use bytes::Bytes;
use http::header::{HeaderName, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::Full;

use super::Param;
use crate::error::AuthError;
use crate::provider::AuthRequest;
use crate::secret::Secret;

/// How many headers one auth call carries at most (besides `Authorization`, `Content-Type` and
/// `Accept`): a handful is the norm, and the bound keeps every request buildable (a header map
/// holds a bounded number of entries, and overflowing it panics).
pub(crate) const MAX_HEADERS: usize = 100;

/// How a request body carries its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Encoding {
    /// A JSON object, `Content-Type: application/json`. Fields may nest
    /// ([`CallSpec::field_at`]).
    Json,
    /// `application/x-www-form-urlencoded`. Fields are flat text.
    Form,
}

/// One auth call: method, URL, query, headers, and body fields.
#[derive(Clone, Debug)]
pub(crate) struct CallSpec {
    method: Method,
    uri: Uri,
    query: Vec<(Cow<'static, str>, Param)>,
    headers: HeaderMap,
    /// Headers carrying the refresh token, rendered per request.
    token_headers: Vec<(HeaderName, Param)>,
    encoding: Option<Encoding>,
    fields: Vec<(Vec<Cow<'static, str>>, Param)>,
    without_authorization: bool,
}

impl CallSpec {
    /// A call with `method` to the absolute `url`.
    pub(crate) fn new(method: Method, url: &str) -> Result<Self, AuthError> {
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
            query: Vec::new(),
            headers: HeaderMap::new(),
            token_headers: Vec::new(),
            encoding: None,
            fields: Vec::new(),
            without_authorization: false,
        })
    }

    /// A `POST` to `url`.
    pub(crate) fn post(url: &str) -> Result<Self, AuthError> {
        Self::new(Method::POST, url)
    }

    #[cfg(test)]
    /// A `GET` to `url`.
    pub(crate) fn get(url: &str) -> Result<Self, AuthError> {
        Self::new(Method::GET, url)
    }

    #[cfg(test)]
    /// A `PUT` to `url`.
    pub(crate) fn put(url: &str) -> Result<Self, AuthError> {
        Self::new(Method::PUT, url)
    }

    /// Encodes the fields as `encoding` (and sets `Content-Type`). Without an encoding the call
    /// has no body, and its fields are not sent.
    pub(crate) fn encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = Some(encoding);
        self
    }

    /// Adds a non-secret body field.
    pub(crate) fn field(
        self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Self {
        self.field_at([name], Param::text(value))
    }

    /// Adds a secret body field (a password, an API key, a client secret).
    pub(crate) fn secret_field(self, name: impl Into<Cow<'static, str>>, value: Secret) -> Self {
        self.field_at([name], Param::secret(value))
    }

    /// Sends the refresh token as the body field `name`.
    pub(crate) fn refresh_token_field(self, name: impl Into<Cow<'static, str>>) -> Self {
        self.field_at([name], Param::refresh_token())
    }

    /// Adds a body field at `path`: one name for a top-level field, more for a field of nested
    /// JSON objects (`["auth", "key"]` is `{"auth":{"key":…}}`).
    ///
    /// A form body takes only top-level fields, and a path that runs through a field that is not
    /// an object cannot be encoded: building such a request fails with
    /// [`ErrorKind::Config`](crate::ErrorKind::Config).
    pub(crate) fn field_at<I, S>(mut self, path: I, value: Param) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Cow<'static, str>>,
    {
        let path = path.into_iter().map(Into::into).collect();
        self.fields.push((path, value));
        self
    }

    /// Appends the query parameter `name` to the URL. A secret value is added only when the
    /// request is built, so it shows in no `Debug` output of the call.
    pub(crate) fn query(mut self, name: impl Into<Cow<'static, str>>, value: Param) -> Self {
        self.query.push((name.into(), value));
        self
    }

    #[cfg(test)]
    /// Sends the refresh token as the query parameter `name`.
    pub(crate) fn refresh_token_query(self, name: impl Into<Cow<'static, str>>) -> Self {
        self.query(name, Param::refresh_token())
    }

    #[cfg(test)]
    /// Sends the refresh token in the header `name`.
    pub(crate) fn refresh_token_header(self, name: &str) -> Result<Self, AuthError> {
        self.header_param(name, Param::refresh_token())
    }

    #[cfg(test)]
    /// Adds a static header.
    pub(crate) fn header(self, name: &str, value: &str) -> Result<Self, AuthError> {
        self.header_param(name, Param::text(value.to_owned()))
    }

    /// Adds the header `name` with `value`: marked sensitive when the value is secret; one
    /// holding the refresh token is rendered for each refresh. A call takes at most 100 headers
    /// this way.
    pub(crate) fn header_param(mut self, name: &str, value: Param) -> Result<Self, AuthError> {
        let name =
            HeaderName::try_from(name).map_err(|_| AuthError::config("invalid header name"))?;
        if self.headers.len() + self.token_headers.len() >= MAX_HEADERS {
            return Err(AuthError::config(format!(
                "an auth call takes at most {MAX_HEADERS} headers"
            )));
        }
        if value.uses_refresh_token() {
            self.token_headers.push((name, value));
        } else {
            let value = value.header_value(None)?;
            self.headers.append(name, value);
        }
        Ok(self)
    }

    #[cfg(test)]
    /// Authenticates the call with HTTP Basic (RFC 7617) over `user:password`.
    pub(crate) fn basic_auth(self, user: &str, password: &Secret) -> Result<Self, AuthError> {
        Ok(self.basic_auth_value(basic(user, password)?))
    }

    pub(crate) fn basic_auth_value(mut self, value: HeaderValue) -> Self {
        self.headers.insert(AUTHORIZATION, value);
        self
    }

    /// Makes sure the call carries no `Authorization` header, for APIs whose refresh endpoint
    /// misbehaves when it sees one (Tradecloud's answers 200 without a new token pair). The
    /// request is built without one whatever the call's headers say; the auth transport must not
    /// add one either.
    pub(crate) fn without_authorization(mut self) -> Self {
        self.without_authorization = true;
        self
    }

    /// The request, with `refresh_token` wherever the call sends it.
    pub(super) fn build(&self, refresh_token: Option<&Secret>) -> Result<AuthRequest, AuthError> {
        let (body, content_type) = match self.encoding {
            None => (Bytes::new(), None),
            Some(Encoding::Json) => (self.json_body(refresh_token)?, Some("application/json")),
            Some(Encoding::Form) => (
                self.form_body(refresh_token)?,
                Some("application/x-www-form-urlencoded"),
            ),
        };
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri(refresh_token)?;
        let headers = request.headers_mut();
        *headers = self.headers.clone();
        if let Some(content_type) = content_type {
            // A media type the API names (`application/vnd.x+json`) stands.
            if !headers.contains_key(CONTENT_TYPE) {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            }
        }
        if !headers.contains_key(ACCEPT) {
            headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        }
        for (name, value) in &self.token_headers {
            headers.insert(name.clone(), value.header_value(refresh_token)?);
        }
        if self.without_authorization {
            headers.remove(AUTHORIZATION);
        }
        Ok(request)
    }

    fn uri(&self, refresh_token: Option<&Secret>) -> Result<Uri, AuthError> {
        if self.query.is_empty() {
            return Ok(self.uri.clone());
        }
        let mut uri = self.uri.to_string();
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &self.query {
            query.append_pair(name, &value.render(refresh_token)?);
        }
        uri.push(if self.uri.query().is_some() { '&' } else { '?' });
        uri.push_str(&query.finish());
        uri.parse()
            .map_err(|_| AuthError::config("auth URL with its query is not a valid URI"))
    }

    fn json_body(&self, refresh_token: Option<&Secret>) -> Result<Bytes, AuthError> {
        let mut root = serde_json::Map::new();
        for (path, value) in &self.fields {
            let Some((leaf, parents)) = path.split_last() else {
                return Err(AuthError::config("a body field without a name"));
            };
            let mut object = &mut root;
            for name in parents {
                let child = object
                    .entry(name.to_string())
                    .or_insert_with(|| serde_json::Value::Object(Default::default()));
                object = child.as_object_mut().ok_or_else(|| {
                    AuthError::config(format!("body field `{name}` is not an object"))
                })?;
            }
            object.insert(leaf.to_string(), value.render_json(refresh_token)?);
        }
        Ok(Bytes::from(serde_json::Value::Object(root).to_string()))
    }

    fn form_body(&self, refresh_token: Option<&Secret>) -> Result<Bytes, AuthError> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (path, value) in &self.fields {
            let [name] = path.as_slice() else {
                return Err(AuthError::config("a form body takes only top-level fields"));
            };
            form.append_pair(name, &value.render(refresh_token)?);
        }
        Ok(Bytes::from(form.finish()))
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

/// HTTP Basic over the form-urlencoded `user` and `password`, as RFC 6749 §2.3.1 wants of OAuth2
/// clients.
pub(crate) fn basic_form_encoded(user: &str, password: &Secret) -> Result<HeaderValue, AuthError> {
    let user: String = form_urlencoded::byte_serialize(user.as_bytes()).collect();
    let password = Secret::from(
        form_urlencoded::byte_serialize(password.expose().as_bytes()).collect::<String>(),
    );
    basic(&user, &password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// The builder's shapes: a form login, a GET refresh with the token in a header, a nested
    /// JSON body with a query parameter.
    #[test]
    fn calls_build_in_every_shape() -> Result<(), AuthError> {
        let login = CallSpec::post("https://auth.example.com/token")?
            .encoding(Encoding::Form)
            .field("grant_type", "password")
            .secret_field("password", Secret::from("hunter2"));
        let refresh = CallSpec::get("https://auth.example.com/refresh")?
            .refresh_token_header("Refresh-Token")?;
        let nested = CallSpec::post("https://auth.example.com/session")?
            .encoding(Encoding::Json)
            .field_at(["auth", "key"], Param::secret(Secret::from("k")))
            .query("version", Param::text("2"));
        let _ = (login, refresh, nested);
        Ok(())
    }

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
            .secret_field("password", Secret::from("p&w=\"x"));
        let req = spec.build(None).unwrap();
        assert_eq!(req.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(body(req).await, r#"{"password":"p&w=\"x","username":"u"}"#);

        let spec = CallSpec::post("http://a.test/refresh")
            .unwrap()
            .encoding(Encoding::Form)
            .field("grant_type", "refresh_token")
            .refresh_token_field("refresh_token");
        let req = spec.build(Some(&Secret::from("r t&1"))).unwrap();
        assert_eq!(
            req.headers()[CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(
            body(req).await,
            "grant_type=refresh_token&refresh_token=r+t%261"
        );
    }

    #[tokio::test]
    async fn nested_json_with_literals() {
        let spec = CallSpec::put("http://a.test/session")
            .unwrap()
            .encoding(Encoding::Json)
            .field_at(["auth", "key"], Param::secret(Secret::from("k")))
            .field_at(["auth", "remember"], Param::json(serde_json::json!(true)))
            .field_at(["grant", "token"], Param::refresh_token())
            .field_at(["n"], Param::json(serde_json::json!(3)));
        let req = spec.build(Some(&Secret::from("rt"))).unwrap();
        assert_eq!(req.method(), Method::PUT);
        assert_eq!(
            body(req).await,
            r#"{"auth":{"key":"k","remember":true},"grant":{"token":"rt"},"n":3}"#
        );
        // A login never has a refresh token to send.
        assert_eq!(
            spec.build(None).unwrap_err().kind(),
            crate::ErrorKind::Config
        );
    }

    #[test]
    fn unencodable_fields_are_config_errors() {
        let clash = CallSpec::post("http://a.test/x")
            .unwrap()
            .encoding(Encoding::Json)
            .field("a", "text")
            .field_at(["a", "b"], Param::text("x"));
        assert_eq!(
            clash.build(None).unwrap_err().kind(),
            crate::ErrorKind::Config
        );
        let nested_form = CallSpec::post("http://a.test/x")
            .unwrap()
            .encoding(Encoding::Form)
            .field_at(["a", "b"], Param::text("x"));
        assert_eq!(
            nested_form.build(None).unwrap_err().kind(),
            crate::ErrorKind::Config
        );
    }

    #[test]
    fn query_parameters_secret_ones_hidden_until_sent() {
        let spec = CallSpec::get("http://a.test/refresh?v=1")
            .unwrap()
            .query("key", Param::secret(Secret::from("s3cr3t&")))
            .refresh_token_query("token");
        let shown = format!("{spec:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        let req = spec.build(Some(&Secret::from("r t"))).unwrap();
        assert_eq!(
            req.uri().to_string(),
            "http://a.test/refresh?v=1&key=s3cr3t%26&token=r+t"
        );
        let spec = CallSpec::get("http://a.test/login")
            .unwrap()
            .query("api-version", Param::text("1.0"));
        let req = spec.build(None).unwrap();
        assert_eq!(req.uri(), "http://a.test/login?api-version=1.0");
    }

    #[test]
    fn basic_and_header_tokens() {
        let spec = CallSpec::get("http://a.test/login")
            .unwrap()
            .basic_auth("Aladdin", &Secret::from("open sesame"))
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
        let req = spec.build(Some(&Secret::from("rt"))).unwrap();
        assert_eq!(req.headers()["refresh-token"], "rt");
        assert!(req.headers()["refresh-token"].is_sensitive());
        assert!(!req.headers().contains_key(AUTHORIZATION));
        let err = spec.build(Some(&Secret::from("r\nt"))).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidToken);

        let bearer = CallSpec::post("http://a.test/refresh")
            .unwrap()
            .header_param(
                "authorization",
                Param::text("Bearer ").then(Param::refresh_token()),
            )
            .unwrap();
        let req = bearer.build(Some(&Secret::from("rt"))).unwrap();
        assert_eq!(req.headers()[AUTHORIZATION], "Bearer rt");
    }

    #[test]
    fn headers_past_the_bound_are_config_errors_not_panics() {
        // 40,000 headers used to overflow the header map (which panics past 32,768 entries).
        let full = || {
            (0..MAX_HEADERS).fold(CallSpec::get("http://a.test/login").unwrap(), |spec, i| {
                spec.header(&format!("x-{i}"), "v").unwrap()
            })
        };
        let mut spec = Ok(full());
        for i in MAX_HEADERS..40_000 {
            spec = spec.and_then(|spec| spec.header(&format!("x-{i}"), "v"));
        }
        assert_eq!(spec.unwrap_err().kind(), crate::ErrorKind::Config);
        let err = full().refresh_token_header("refresh-token").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        let req = full().build(None).unwrap();
        assert_eq!(req.headers().len(), MAX_HEADERS + 1, "and `Accept`");
    }

    #[test]
    fn without_authorization_drops_the_header() {
        let spec = CallSpec::get("http://a.test/refresh")
            .unwrap()
            .header("Authorization", "Bearer x")
            .unwrap()
            .without_authorization();
        let req = spec.build(Some(&Secret::from("rt"))).unwrap();
        assert!(!req.headers().contains_key(AUTHORIZATION));
    }

    #[test]
    fn bad_urls_are_config_errors() {
        for url in ["", "/relative", "not a url", "http://"] {
            let err = CallSpec::post(url).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Config, "{url}");
        }
    }

    #[test]
    fn debug_redacts_secret_fields() {
        let spec = CallSpec::post("http://a.test/login")
            .unwrap()
            .secret_field("password", Secret::from("hunter2"))
            .field_at(
                ["k"],
                Param::text("Key ").then(Param::secret(Secret::from("hunter3"))),
            );
        let shown = format!("{spec:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("hunter3"),
            "{shown}"
        );
    }
}
