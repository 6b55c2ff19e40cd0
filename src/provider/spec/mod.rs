//! Providers from spec files: a new API as a reviewable TOML (or JSON) file instead of code.
//! [`ProviderSpec`] documents the format; its main invariant is that a spec is checked whole
//! when it is read, and a bad one names its field and never quotes a value.

mod build;
mod call;
mod credentials;
mod error;
mod json;
mod oauth2;
mod policy;
mod template;
mod tokens;

pub use self::credentials::Credentials;
pub use self::error::SpecError;

use serde::Deserialize;

use self::call::{Login, Refresh};
use self::oauth2::{
    Audience, ClientAuth, DpopSpec, Issuer, KeySpec, Keys, OAuth, OneOrMany, Resource,
};
use self::policy::PolicySpec;
use self::template::Template;
use self::tokens::{TokenHeaderSpec, Tokens};
use crate::provider::TokenSource;

/// A provider spec: a new API as a reviewable TOML (or JSON) file instead of code.
///
/// A spec says how an API logs in and refreshes, where its answers keep the tokens, which
/// failures reject, how the token goes on requests, and the policy. It reads into a
/// `ProviderSpec`, checked as it is read; [`ProviderSpec::build`] then fills its placeholders from
/// [`Credentials`] and the environment and gives an [`HttpProvider`](crate::provider::HttpProvider). The five
/// [presets](crate::provider::Preset) are built from the spec files in the repository's `specs/`.
///
/// Reading and building are two steps so that a spec file can be checked before its credentials
/// are at hand, and pointed at another base URL ([`ProviderSpec::base_url`]: a staging server, a
/// local emulation).
///
/// ```
/// use tower_token_auth::provider::{Credentials, ProviderSpec};
///
/// let spec = r#"
/// base_url = "https://api.example.com/v3"
///
/// [login]
/// url = "/auth/login"
/// json = { api_key = "${api_key}" }
///
/// [refresh]
/// url = "/auth/refresh"
/// json = { refresh_token = "${refresh_token}" }
/// rejects = { statuses = [401] }
///
/// [policy]
/// refresh = "after_expiry"
/// "#;
/// let provider = ProviderSpec::from_toml(spec)?.build(&Credentials::new().api_key("k-123"))?;
/// # Ok::<(), tower_token_auth::provider::SpecError>(())
/// ```
///
/// # The format
///
/// TOML, or the same structure as JSON ([`ProviderSpec::from_json`]). Unknown fields are errors.
///
/// | field | meaning | default |
/// |---|---|---|
/// | `name` | a name for the API, for people | none |
/// | `base_url` | the base URL relative call URLs are appended to; [`ProviderSpec::base_url`] overrides it | none |
/// | `issuer` | OAuth2: learn the token endpoint from this issuer's metadata (below); [`ProviderSpec::issuer`] overrides it | none |
/// | `client_auth` | OAuth2: how the client authenticates to the token endpoint (below), with `client_key` or `client_assertion_file` for `private_key_jwt`; by the auth transport's TLS client certificate for `tls_client_auth` and `self_signed_tls_client_auth` | the calls as written |
/// | `resource`, `audience` | OAuth2: a string or an array of strings, sent on every token request (below) | none |
/// | `dpop` | OAuth2: bind tokens to a DPoP key (below) | bearer tokens |
/// | `defaults` | `username`, `client_id`, `scope` to use when the credentials give none | none |
/// | `login` | the login call (below) | required |
/// | `refresh` | the refresh call; without it the provider only logs in, and logs in again when the token is due | none |
/// | `tokens` | where answers keep the tokens (below) | the standard JSON answer ([`TokenSet::from_json`](crate::token::TokenSet::from_json)) |
/// | `token_header` | `name` (`Authorization`), `scheme` (`Bearer`), or `raw = true` for the bare token | `Authorization: Bearer <token>` |
/// | `policy` | refresh timing, lifetimes, replay and fallback (below) | [`TokenPolicy::default`](crate::provider::TokenPolicy) |
///
/// ## Calls: `[login]` and `[refresh]`
///
/// | field | meaning | default |
/// |---|---|---|
/// | `method` | `GET`, `POST` or `PUT` | `POST` |
/// | `url` | absolute (`https://…`), or starting with `/` to append to the base URL | the base URL |
/// | `query` | query parameters to append, a table of strings | none |
/// | `headers` | a table of header names and strings | none |
/// | `json` | a JSON object body: a table, nested tables for nested objects; strings may hold placeholders, other values are sent as they are | no body |
/// | `form` | a form body (`application/x-www-form-urlencoded`): a table of strings, sent in the order written | no body |
/// | `basic` | HTTP Basic: `{ username = "…", password = "…" }`, plus `form_encoded = true` to form-urlencode both first (RFC 6749 §2.3.1) | none |
/// | `no_authorization` | the call must carry no `Authorization` header (Tradecloud's refresh) | `false` |
/// | `rejects` | which failures mean the credentials (login) or the refresh token (refresh) are refused: `{ statuses = [400, 401, 403] }`, plus `errors = ["invalid_grant"]` to require one of these JSON `error` codes (at `error_pointer`, `/error` by default), or `json_only = true` to require a JSON object body (a proxy's error page is then transient); `{ any = true }` for every failure; with `repeats = N`, what matches is ambiguous (an API whose one error status answers refused credentials and server faults alike): retried like a transient failure, a rejection only when it comes N times in a row within one flight | `{ statuses = [400, 401, 403] }` |
///
/// `json` and `form` exclude each other; a call with neither has no body. The refresh call must
/// send `${refresh_token}` (in a body field, a header or the query), and the login call must not.
///
/// ## Placeholders
///
/// Strings in `query`, `headers`, `json`, `form` and `basic` may hold placeholders:
///
/// - `${username}`, `${client_id}`, `${scope}`: from [`Credentials`], else `[defaults]`; plain
///   text;
/// - `${password}`, `${api_key}`, `${client_secret}`: from [`Credentials`]; secrets;
/// - `${refresh_token}`: the refresh token being exchanged (refresh call only); a secret;
/// - `${env:NAME}`: the environment variable `NAME`, read when the provider is built; a secret.
///
/// `$$` is a literal `$`; any other `$` is itself. A string may mix text and placeholders
/// (`"Bearer ${refresh_token}"`): it is secret when any placeholder in it is. Secrets show in no
/// `Debug` output, error or log, and headers carrying them are marked sensitive. Values written
/// literally in the spec are configuration, not secrets: give secrets through placeholders. URLs
/// take no placeholders, and neither do names (of query parameters, headers, form and JSON
/// fields): they are sent as written, and a name holding `${` is an error.
///
/// ## OAuth2: `client_auth`, `issuer`, `resource`, `audience`
///
/// Top-level keys for a token endpoint that speaks RFC 6749 and its extensions; they apply to
/// the login and the refresh call alike, which send a `form`. What `oauth2::Builder` does in
/// Rust, a spec says with these (`specs/oauth2-client-credentials-jwt.toml` is an example):
///
/// | key | meaning |
/// |---|---|
/// | `client_auth = "client_secret_basic"` | HTTP Basic with `${client_id}` and `${client_secret}`, form-urlencoded first (RFC 6749 §2.3.1) |
/// | `client_auth = "client_secret_post"` | `client_id` and `client_secret` in the form |
/// | `client_auth = "client_secret_jwt"` | a JWT assertion signed with HS256 keyed with `${client_secret}` (at least 32 bytes), which is never sent; feature `jose` |
/// | `client_auth = "tls_client_auth"` | mutual TLS (RFC 8705 §2.1): the TLS client certificate a certificate authority issued the client authenticates it; the calls send `client_id` alone. The certificate is the auth transport's, not the spec's (below) |
/// | `client_auth = "self_signed_tls_client_auth"` | mutual TLS (RFC 8705 §2.2) with a self-signed certificate the client registered; as `tls_client_auth` |
/// | `client_auth = "private_key_jwt"` | a JWT assertion signed with `client_key = { pem_file = "…", alg = "ES256", kid = "…" }` (a PKCS#8 PEM file, read when the provider is built; `alg` one of `ES256`, `RS256`, `PS256`, `EdDSA`; `kid` optional; feature `jose`), or made elsewhere and read from `client_assertion_file = "…"` at every call (a workload identity token; no feature needed) |
/// | `issuer = "https://…"` | the token endpoint comes from the issuer's metadata (OpenID Connect Discovery, then RFC 8414), fetched before the first login and again when the endpoint answers 404; a document naming another issuer fails the login, and no credentials are sent. `base_url` and the calls' `url` are then left out |
/// | `resource = ["https://…"]` | RFC 8707 resource indicators: absolute URIs, each sent as a `resource` field |
/// | `audience = ["…"]` | audiences, each sent as an `audience` field |
/// | `dpop = { alg = "ES256" }` | DPoP (RFC 9449, feature `jose`): the policy's key ([`TokenPolicy::dpop`](crate::provider::TokenPolicy)), generated when the provider is built, or read from `pem_file = "…"` (PKCS#8 PEM) so that processes sharing a session share it; `alg` one of `ES256`, `EdDSA`, `RS256`, `PS256` |
///
/// Without `client_auth` the calls send what they say, as ever. With it, a call must not
/// authenticate the client itself (`basic`, an `Authorization` header, a `client_secret` or
/// `client_assertion` field), and no call writes a field the keys send. The assertion
/// methods send `client_id`, `client_assertion_type` and a `client_assertion` made anew for
/// every call (retries included): `iss` and `sub` the client id, `aud` the issuer with
/// `issuer`, else the login call's URL, a fresh `jti`, and `exp` 60 seconds after `iat`.
/// `pem_file` and `client_assertion_file` are strings with placeholders (`"${env:KEY_FILE}"`).
///
/// With a mutual TLS method, a spec holds no certificate and no key: a provider only builds the
/// auth calls, and the connection they go over is the auth transport's (the `AuthLayer`'s
/// client), which presents the client's certificate; requests sent with a token bound to it
/// (RFC 8705 §3) must go over a client presenting it too. (The demo example takes the
/// certificate from `--client-cert` and `--client-key`, and the server's CA from `--ca-cert`,
/// for both.) With `issuer`, the token endpoint is the metadata's `mtls_endpoint_aliases` one
/// where it names one, and a server whose metadata lists its authentication methods without
/// the spec's fails the login before the certificate is presented. A `client_key`, a
/// `client_assertion_file`, a `${client_secret}` in a call, or a `client_secret` in the
/// credentials beside a mutual TLS method is an error naming the key: it would be a second
/// authentication method. `specs/oauth2-client-credentials-mtls.toml` is an example.
///
/// Read without the `jose` feature, a spec that signs assertions is an error naming the
/// feature. A missing key, an unsupported `alg`, a key and an assertion file at once, or a key
/// without `private_key_jwt` are errors when the spec is read; a key file that cannot be read
/// or is not a key of `alg` is one when the provider is built.
///
/// ## Limits
///
/// | what | at most |
/// |---|---|
/// | `headers` of one call | 100 |
/// | `query` parameters of one call | 1,000 |
/// | `form` fields | 1,000 |
/// | fields of one `json` object | 1,000 |
/// | nesting of a `json` body (objects and arrays; the body itself is one level) | 16 levels |
/// | `resource` values, `audience` values | 100 each |
///
/// A spec past a limit is an error naming the table. Checking a spec costs time in proportion to
/// its size.
///
/// ## Answers: `[tokens]`
///
/// Without `[tokens]`, answers are standard JSON token responses. Otherwise each part is
/// `{ pointer = "/json/pointer" }` into the JSON body or `{ header = "Name" }` (a `Bearer ` prefix
/// is dropped from header tokens):
///
/// | field | meaning |
/// |---|---|
/// | `access` | the access token (required) |
/// | `refresh` | the refresh token; required with a `[refresh]` call |
/// | `expires_in` | a lifetime, with `unit = "seconds"` (default) or `"milliseconds"` |
/// | `expires_at` | an instant, with `format = "rfc3339"`, `"unix_seconds"` or `"unix_millis"` |
/// | `refresh_expires_in`, `refresh_expires_at` | the same for the refresh token |
///
/// Without a stated expiry the layer reads the access token's JWT `exp`, else uses
/// `policy.default_lifetime_secs`. Lifetimes count from when the auth request was sent.
///
/// ## `[policy]`
///
/// | field | meaning | default |
/// |---|---|---|
/// | `refresh` | `"ahead"`: refresh in the background before expiry; `"after_expiry"`: never refresh a valid token | `"ahead"` |
/// | `margin_secs` | how long before expiry to refresh (`ahead` only) | 30 |
/// | `default_lifetime_secs` | the lifetime of a token whose expiry is neither stated nor in a JWT | 300 |
/// | `max_replays` | replays per request charged to a rejected current token | 1 |
/// | `max_sends` | sends per request, replays included | 3 |
/// | `classifier` | upstream statuses that mean the token is dead (refresh and replay); `[]` never | `[401]` |
/// | `login_on_refresh_rejected` | log in within the same attempt when a refresh is rejected | `true` |
/// | `keep_unrotated_refresh_token` | keep the refresh token when a refresh answer carries none | `true` |
///
/// # Errors
///
/// A spec that cannot be read gives a [`SpecError`] naming the field, and the line and column
/// when the problem is in the text; it never quotes a value. So does building one whose
/// credentials or environment variables are missing.
#[derive(Clone, Debug)]
pub struct ProviderSpec {
    name: Option<String>,
    base_url: Option<String>,
    defaults: Defaults,
    login: call::Call,
    refresh: Option<call::Call>,
    tokens: TokenSource,
    policy: crate::provider::TokenPolicy,
    oauth: OAuth,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    name: Option<String>,
    base_url: Option<BaseUrl>,
    issuer: Option<Issuer>,
    client_auth: Option<ClientAuth>,
    client_key: Option<KeySpec>,
    client_assertion_file: Option<Template>,
    #[serde(default)]
    resource: OneOrMany<Resource>,
    #[serde(default)]
    audience: OneOrMany<Audience>,
    dpop: Option<DpopSpec>,
    #[serde(default)]
    defaults: Defaults,
    login: Login,
    refresh: Option<Refresh>,
    tokens: Option<Tokens>,
    #[serde(default)]
    token_header: TokenHeaderSpec,
    #[serde(default)]
    policy: PolicySpec,
}

/// Values for the non-secret placeholders when the credentials give none.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    username: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct BaseUrl(String);

impl TryFrom<String> for BaseUrl {
    type Error = String;

    fn try_from(url: String) -> Result<Self, String> {
        call::base(&url).map(|()| Self(url))
    }
}

impl ProviderSpec {
    /// Reads a TOML spec.
    pub fn from_toml(text: &str) -> Result<Self, SpecError> {
        let error = |path: String, err: toml::de::Error| {
            SpecError::toml(path, text, err.span(), err.message())
        };
        let deserializer = toml::Deserializer::parse(text).map_err(|e| error(String::new(), e))?;
        let document: Document = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            error(path, e.into_inner())
        })?;
        Self::check(document)
    }

    /// Reads a JSON spec: the structure of the TOML one.
    pub fn from_json(text: &str) -> Result<Self, SpecError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let document: Document = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|e| SpecError::json(e.path().to_string(), e.inner()))?;
        deserializer
            .end()
            .map_err(|e| SpecError::json(String::new(), &e))?;
        Self::check(document)
    }

    /// The rules that span tables: a refresh call needs an answer to take the refresh token
    /// from, and an answer's refresh token needs a refresh call to go to; the OAuth2 keys are
    /// checked against the calls and folded into them.
    fn check(mut document: Document) -> Result<Self, SpecError> {
        let reads_refresh = document.tokens.as_ref().map(|t| t.0.has_refresh());
        match (&document.refresh, reads_refresh) {
            (Some(_), Some(false)) => {
                return Err(SpecError::at(
                    "tokens.refresh",
                    "the refresh call needs a refresh token: say where answers keep it",
                ))
            }
            (None, Some(true)) => {
                return Err(SpecError::at(
                    "tokens.refresh",
                    "a refresh token is read, but there is no [refresh] call to send it to",
                ))
            }
            _ => {}
        }
        let keys = Keys {
            issuer: document.issuer,
            client_auth: document.client_auth,
            client_key: document.client_key,
            client_assertion_file: document.client_assertion_file,
            resource: document.resource,
            audience: document.audience,
            dpop: document.dpop,
        };
        let base_url = document.base_url.map(|b| b.0);
        let refresh = document.refresh.as_mut().map(|r| &mut r.0);
        let oauth = keys.fold(&mut document.login.0, refresh)?;
        let calls = [
            ("login", Some(&document.login.0)),
            ("refresh", document.refresh.as_ref().map(|r| &r.0)),
        ];
        oauth2::issuer_rules(oauth.issuer.as_deref(), base_url.as_deref(), calls)?;
        let mut policy = document.policy.0;
        policy.header = document.token_header.0;
        Ok(Self {
            name: document.name,
            base_url,
            defaults: document.defaults,
            login: document.login.0,
            refresh: document.refresh.map(|r| r.0),
            tokens: document
                .tokens
                .map_or(TokenSource::JsonBody, |t| TokenSource::Fields(t.0)),
            policy,
            oauth,
        })
    }

    /// Relative call URLs are appended to `base_url` instead of the spec's own. It is checked as
    /// the spec's own is (absolute http or https, no query) when the provider is built.
    pub fn base_url(mut self, base_url: &str) -> Self {
        self.base_url = Some(base_url.to_owned());
        self
    }

    /// Discovers the token endpoint from `issuer`'s metadata instead of the spec's `issuer` (or
    /// instead of its calls' URLs, when it has none): an identity provider of another
    /// environment, a local emulation. It is checked as the spec's own is (absolute http or
    /// https, no query, and neither `base_url` nor a call's `url` beside it) when the provider
    /// is built.
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.oauth.issuer = Some(issuer.to_owned());
        self
    }

    /// The spec's `name`.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}
