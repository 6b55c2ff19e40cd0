//! The `[login]` and `[refresh]` tables: each field checked as it is read, so that an error
//! names its line.

use http::{HeaderName, Method, StatusCode};
use serde::Deserialize;

use super::json::{JsonNode, Ordered};
use super::template::{Name, Template, NAME_WITH_PLACEHOLDER};
use crate::provider::generic::MAX_HEADERS;
use crate::provider::{Rejects, CLIENT_ERRORS};

/// How many query parameters one call sends at most.
pub(super) const MAX_QUERY: usize = 1000;

/// How many fields a form body holds at most.
pub(super) const MAX_FORM_FIELDS: usize = 1000;

/// A call's query parameters.
pub(super) type Query = Ordered<Name, Template, MAX_QUERY>;

/// A call's headers.
pub(super) type Headers = Ordered<HeaderKey, Template, MAX_HEADERS>;

/// A form body.
pub(super) type Form = Ordered<Name, Template, MAX_FORM_FIELDS>;

/// The login call.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "Call")]
pub(super) struct Login(pub(super) Call);

impl TryFrom<Call> for Login {
    type Error = String;

    fn try_from(call: Call) -> Result<Self, String> {
        if call.templates().any(Template::uses_refresh_token) {
            return Err("a login call has no `${refresh_token}` to send".to_owned());
        }
        Ok(Self(call))
    }
}

/// The refresh call.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "Call")]
pub(super) struct Refresh(pub(super) Call);

impl TryFrom<Call> for Refresh {
    type Error = String;

    fn try_from(call: Call) -> Result<Self, String> {
        let basic = call.basic.iter().flat_map(|b| [&b.username, &b.password]);
        if basic.into_iter().any(Template::uses_refresh_token) {
            return Err("HTTP Basic cannot carry `${refresh_token}`".to_owned());
        }
        if !call.templates().any(Template::uses_refresh_token) {
            return Err(
                "a refresh call must send `${refresh_token}` (in `form`, `json`, `headers` or `query`)"
                    .to_owned(),
            );
        }
        Ok(Self(call))
    }
}

/// One auth call, checked.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "RawCall")]
pub(super) struct Call {
    pub(super) method: Method,
    pub(super) url: Url,
    pub(super) query: Query,
    pub(super) headers: Headers,
    pub(super) body: Body,
    pub(super) basic: Option<Basic>,
    pub(super) no_authorization: bool,
    pub(super) rejects: Rejects,
}

impl Call {
    /// Every template the call sends.
    pub(super) fn templates(&self) -> impl Iterator<Item = &Template> {
        let basic = self.basic.iter().flat_map(|b| [&b.username, &b.password]);
        let query = self.query.iter().map(|(_, t)| t);
        let headers = self.headers.iter().map(|(_, t)| t);
        let mut body = Vec::new();
        match &self.body {
            Body::Json(entries) => entries
                .iter()
                .for_each(|(_, node)| node_templates(node, &mut body)),
            Body::Form(form) => body.extend(form.iter().map(|(_, t)| t)),
            Body::None => {}
        }
        basic.chain(query).chain(headers).chain(body)
    }
}

fn node_templates<'a>(node: &'a JsonNode, out: &mut Vec<&'a Template>) {
    match node {
        JsonNode::Text(template) => out.push(template),
        JsonNode::Object(entries) => entries.iter().for_each(|(_, n)| node_templates(n, out)),
        JsonNode::Literal(_) => {}
    }
}

/// A call's body.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Body {
    None,
    Json(Vec<(String, JsonNode)>),
    Form(Form),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCall {
    #[serde(default)]
    method: MethodName,
    #[serde(default)]
    url: Url,
    #[serde(default)]
    query: Query,
    #[serde(default)]
    headers: Headers,
    json: Option<JsonNode>,
    form: Option<Form>,
    basic: Option<Basic>,
    #[serde(default)]
    no_authorization: bool,
    rejects: Option<RejectsSpec>,
}

impl TryFrom<RawCall> for Call {
    type Error = String;

    fn try_from(raw: RawCall) -> Result<Self, String> {
        let body = match (raw.json, raw.form) {
            (Some(_), Some(_)) => return Err("a call has `json` or `form`, not both".to_owned()),
            (Some(JsonNode::Object(entries)), None) => Body::Json(entries),
            (Some(_), None) => return Err("`json` must be a table (a JSON object)".to_owned()),
            (None, Some(form)) => Body::Form(form),
            (None, None) => Body::None,
        };
        let authorization = raw
            .headers
            .iter()
            .any(|(name, _)| name.0 == http::header::AUTHORIZATION);
        if raw.basic.is_some() && authorization {
            return Err("`basic` and an `Authorization` header: choose one".to_owned());
        }
        if raw.no_authorization && (raw.basic.is_some() || authorization) {
            return Err("`no_authorization` with `basic` or an `Authorization` header".to_owned());
        }
        Ok(Self {
            method: raw.method.0,
            url: raw.url,
            query: raw.query,
            headers: raw.headers,
            body,
            basic: raw.basic,
            no_authorization: raw.no_authorization,
            rejects: raw.rejects.map_or_else(Rejects::client_errors, |r| r.0),
        })
    }
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct MethodName(Method);

impl Default for MethodName {
    fn default() -> Self {
        Self(Method::POST)
    }
}

impl TryFrom<String> for MethodName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.to_ascii_uppercase().as_str() {
            "GET" => Ok(Self(Method::GET)),
            "POST" => Ok(Self(Method::POST)),
            "PUT" => Ok(Self(Method::PUT)),
            _ => Err("the method is GET, POST or PUT".to_owned()),
        }
    }
}

/// A call's URL: absolute, or a path appended to the base URL (the base itself when empty).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(super) enum Url {
    #[default]
    Base,
    Relative(String),
    Absolute(String),
}

impl TryFrom<String> for Url {
    type Error = String;

    fn try_from(url: String) -> Result<Self, String> {
        if url.contains("${") {
            return Err(
                "a URL takes no placeholders: give the base URL to the spec, and secrets in `query`"
                    .to_owned(),
            );
        }
        if url.contains("://") {
            return absolute(&url).map(|()| Url::Absolute(url));
        }
        match url.chars().next() {
            None => Ok(Url::Base),
            Some('/' | '?') => Ok(Url::Relative(url)),
            Some(_) => Err(
                "a relative URL starts with `/` (it is appended to the base URL), an absolute one with a scheme"
                    .to_owned(),
            ),
        }
    }
}

/// Checks that `url` is an absolute `http` or `https` URL.
pub(super) fn absolute(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|_| "not a valid URL".to_owned())?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => Ok(()),
        _ => Err("an absolute URL needs the scheme http or https, and a host".to_owned()),
    }
}

/// Checks a base URL: absolute, and without a query (relative call URLs are appended to it).
pub(super) fn base(url: &str) -> Result<(), String> {
    absolute(url)?;
    if url.contains(['?', '#']) {
        return Err("a base URL takes no query or fragment: put them on the calls".to_owned());
    }
    Ok(())
}

/// An HTTP header name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct HeaderKey(pub(super) HeaderName);

impl TryFrom<String> for HeaderKey {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        if name.contains("${") {
            return Err(NAME_WITH_PLACEHOLDER.to_owned());
        }
        HeaderName::try_from(name)
            .map(Self)
            .map_err(|_| "not a valid HTTP header name".to_owned())
    }
}

/// HTTP Basic credentials.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Basic {
    pub(super) username: Template,
    pub(super) password: Template,
    /// Form-urlencode both before the Basic encoding, as RFC 6749 §2.3.1 wants of OAuth2 clients.
    #[serde(default)]
    pub(super) form_encoded: bool,
}

/// `rejects = { statuses = [400, 401], errors = ["invalid_grant"] }`, or `{ any = true }`; either
/// with `repeats = N` for answers that reject only N times in a row.
#[derive(Deserialize)]
#[serde(try_from = "RawRejects")]
struct RejectsSpec(Rejects);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRejects {
    #[serde(default)]
    any: bool,
    statuses: Option<Vec<FailureStatus>>,
    #[serde(default)]
    errors: Vec<String>,
    error_pointer: Option<Pointer>,
    #[serde(default)]
    json_only: bool,
    repeats: Option<u32>,
}

impl TryFrom<RawRejects> for RejectsSpec {
    type Error = String;

    fn try_from(raw: RawRejects) -> Result<Self, String> {
        let narrowed = raw.statuses.is_some() || !raw.errors.is_empty() || raw.json_only;
        if raw.any && narrowed {
            return Err(
                "`any` rejects every failure: it takes no `statuses`, `errors` or `json_only`"
                    .to_owned(),
            );
        }
        if raw.error_pointer.is_some() && raw.errors.is_empty() {
            return Err("`error_pointer` without `errors`".to_owned());
        }
        if raw.repeats == Some(0) {
            return Err(
                "`repeats` is how many answers in a row make a rejection: at least 1".to_owned(),
            );
        }
        let statuses = raw.statuses.map_or_else(
            || CLIENT_ERRORS.to_vec(),
            |list| list.into_iter().map(|s| s.0).collect(),
        );
        let rejects = if raw.any {
            Rejects::AnyFailure
        } else if !raw.errors.is_empty() {
            Rejects::ErrorCodes {
                statuses,
                pointer: raw
                    .error_pointer
                    .map_or_else(|| "/error".to_owned(), |p| p.0),
                errors: raw.errors,
            }
        } else if raw.json_only {
            Rejects::ApiAnswers(statuses)
        } else {
            Rejects::Statuses(statuses)
        };
        Ok(Self(match raw.repeats {
            Some(repeats) if repeats > 1 => Rejects::Repeated {
                rejects: Box::new(rejects),
                repeats,
            },
            _ => rejects,
        }))
    }
}

/// A status an auth call can fail with: 1xx, 3xx, 4xx or 5xx.
#[derive(Deserialize)]
#[serde(try_from = "u16")]
struct FailureStatus(StatusCode);

impl TryFrom<u16> for FailureStatus {
    type Error = String;

    fn try_from(code: u16) -> Result<Self, String> {
        match StatusCode::from_u16(code) {
            Ok(status) if !status.is_success() => Ok(Self(status)),
            Ok(_) => Err("a 2xx status is a success, never a rejection".to_owned()),
            Err(_) => Err("a status code is from 100 to 999".to_owned()),
        }
    }
}

/// A JSON pointer (RFC 6901): `/error`, `/data/token`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Pointer(pub(super) String);

impl TryFrom<String> for Pointer {
    type Error = String;

    fn try_from(pointer: String) -> Result<Self, String> {
        if pointer.starts_with('/') {
            Ok(Self(pointer))
        } else {
            Err("a JSON pointer starts with `/` (`/access_token`, `/data/token`)".to_owned())
        }
    }
}
