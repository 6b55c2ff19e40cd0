//! Provider specs through the public API: the presets built from the shipped specs sending exactly
//! their documented requests, the shipped specs as TOML and as JSON, every part of the format on
//! the wire, errors that name field, line and column without quoting a value, and no
//! panic on any input.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::BodyExt;
use proptest::prelude::*;
use tower_token_auth::provider::{Classifier, Failure, Preset, Provider, RefreshTiming};
use tower_token_auth::provider::{Credentials, HttpProvider, ProviderSpec, SpecError};
use tower_token_auth::{AuthCall, Secret};

const SHIPPED: [(&str, &str); 6] = [
    (
        "union-service",
        include_str!("../../specs/union-service.toml"),
    ),
    ("simacan", include_str!("../../specs/simacan.toml")),
    ("oli", include_str!("../../specs/oli.toml")),
    ("tradecloud", include_str!("../../specs/tradecloud.toml")),
    ("intergiro", include_str!("../../specs/intergiro.toml")),
    (
        "oauth2-password",
        include_str!("../../specs/oauth2-password.toml"),
    ),
];

/// Every secret in these tests carries this marker, so leak checks can search for it.
pub(crate) const MARK: &str = "SECRET";

pub(crate) fn credentials() -> Credentials {
    Credentials::new()
        .username("alice")
        .password("pw-SECRET")
        .api_key("key-SECRET")
        .client_id("app")
        .client_secret("cs-SECRET")
        .scope("read")
}

/// The TOML spec as JSON text, through the `toml` crate.
fn as_json(toml_text: &str) -> String {
    // Through `toml::Table`, which keeps the order (form fields go out as written).
    let table: toml::Table = toml::from_str(toml_text).unwrap();
    serde_json::to_string_pretty(&table).unwrap()
}

/// The request as text: method, URI, headers in order (sensitive ones marked), body.
pub(crate) async fn show(request: http::Request<http_body_util::Full<bytes::Bytes>>) -> String {
    let mut out = format!("{} {}\n", request.method(), request.uri());
    for (name, value) in request.headers() {
        let mark = if value.is_sensitive() {
            " (sensitive)"
        } else {
            ""
        };
        out.push_str(&format!("{name}: {}{mark}\n", value.to_str().unwrap()));
    }
    let body = request.into_body().collect().await.unwrap().to_bytes();
    out + "\n" + std::str::from_utf8(&body).unwrap()
}

/// The login and refresh requests of `provider`, as text.
async fn calls(provider: &HttpProvider) -> (String, String) {
    let login = show(provider.login_request().unwrap()).await;
    let refresh = show(provider.refresh_request(&Secret::from("rt-1")).unwrap()).await;
    (login, refresh)
}

fn rejects(provider: &HttpProvider, call: AuthCall, status: u16, body: &'static str) -> bool {
    classify(provider, call, status, body) == Failure::Rejected
}

fn classify(provider: &HttpProvider, call: AuthCall, status: u16, body: &'static str) -> Failure {
    let mut response = http::Response::<Bytes>::new(Bytes::from_static(body.as_bytes()));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    provider.classify_failure(call, &response)
}

#[tokio::test]
async fn each_preset_sends_exactly_its_documented_requests() {
    let p = Preset::UnionService
        .provider(
            "https://env.example.com/",
            &Credentials::new().username("u").password("pw"),
        )
        .unwrap();
    assert_eq!(
        calls(&p).await,
        (
            "POST https://env.example.com/union-service/auth/token?api-version=1.0\n\
             accept: application/vnd.restful+json\ncontent-type: application/json\n\n\
             {\"password\":\"pw\",\"username\":\"u\"}"
                .to_owned(),
            "POST https://env.example.com/union-service/auth/refresh-token?api-version=1.0\n\
             accept: application/vnd.restful+json\ncontent-type: application/json\n\n\
             {\"refreshToken\":\"rt-1\"}"
                .to_owned()
        )
    );
    // A login's JSON 500 (or 404) is ambiguous, three in a row a rejection; a refresh's rejects
    // (a login follows in the same attempt).
    for status in [500, 404] {
        assert_eq!(
            classify(&p, AuthCall::Login, status, "{}"),
            Failure::Ambiguous { repeats: 3 }
        );
        assert!(rejects(&p, AuthCall::Refresh, status, "{}"));
    }
    for call in [AuthCall::Login, AuthCall::Refresh] {
        assert_eq!(classify(&p, call, 500, "<html>"), Failure::Transient);
        assert_eq!(classify(&p, call, 502, "{}"), Failure::Transient);
    }

    let p = Preset::Simacan
        .provider(
            "https://a.example.com/api/v1",
            &Credentials::new().username("u").password("p w"),
        )
        .unwrap();
    assert_eq!(
        calls(&p).await,
        (
            "POST https://a.example.com/api/v1/auth/password\n\
             content-type: application/x-www-form-urlencoded\naccept: application/json\n\n\
             username=u&password=p+w"
                .to_owned(),
            "POST https://a.example.com/api/v1/auth/refresh\n\
             content-type: application/x-www-form-urlencoded\naccept: application/json\n\n\
             refresh_token=rt-1"
                .to_owned()
        )
    );
    assert!(!p.policy().keep_unrotated_refresh_token);

    let p = Preset::Oli
        .provider(
            "https://kc.example.com/token",
            &Credentials::new().username("u").password("pw"),
        )
        .unwrap();
    let (login, refresh) = calls(&p).await;
    assert!(login.ends_with("\n\ngrant_type=password&client_id=apiclient&username=u&password=pw"));
    assert!(
        refresh.ends_with("\n\ngrant_type=refresh_token&client_id=apiclient&refresh_token=rt-1")
    );
    assert!(login.starts_with("POST https://kc.example.com/token\n"));
    let p = Preset::Oli
        .provider(
            "https://kc.example.com/token",
            &Credentials::new()
                .client_id("other")
                .username("u")
                .password("pw"),
        )
        .unwrap();
    assert!(calls(&p).await.0.contains("&client_id=other&"));
    assert!(rejects(
        &p,
        AuthCall::Refresh,
        400,
        r#"{"error":"invalid_grant"}"#
    ));
    assert!(p.policy().keep_unrotated_refresh_token);

    let p = Preset::Tradecloud
        .provider(
            "https://api.example.com/v2",
            &Credentials::new().username("me@example.com").password("pw"),
        )
        .unwrap();
    assert_eq!(
        calls(&p).await,
        (
            "GET https://api.example.com/v2/authentication/login\n\
             authorization: Basic bWVAZXhhbXBsZS5jb206cHc= (sensitive)\n\
             accept: application/json\n\n"
                .to_owned(),
            "GET https://api.example.com/v2/authentication/refresh\n\
             accept: application/json\nrefresh-token: rt-1 (sensitive)\n\n"
                .to_owned()
        )
    );
    assert!(!p.policy().keep_unrotated_refresh_token);

    let p = Preset::Intergiro
        .provider(
            "https://api.example.com/v3",
            &Credentials::new().api_key("k-1"),
        )
        .unwrap();
    assert_eq!(
        calls(&p).await,
        (
            "POST https://api.example.com/v3/auth/login\n\
             content-type: application/json\naccept: application/json\n\n\
             {\"api_key\":\"k-1\"}"
                .to_owned(),
            "POST https://api.example.com/v3/auth/refresh\n\
             content-type: application/json\naccept: application/json\n\n\
             {\"refresh_token\":\"rt-1\"}"
                .to_owned()
        )
    );
    assert_eq!(p.policy().refresh, RefreshTiming::AfterExpiry);
    assert!(rejects(&p, AuthCall::Login, 403, ""));
    assert!(!rejects(&p, AuthCall::Refresh, 400, "{}"));
}

#[test]
fn a_bad_base_url_is_a_config_error() {
    for base in ["not a url", "/relative", ""] {
        let err = Preset::Simacan
            .provider(base, &Credentials::new().username("u").password("pw"))
            .unwrap_err();
        assert_eq!(err.kind(), tower_token_auth::ErrorKind::Config, "{base}");
        assert!(err.to_string().contains("`base_url`"), "{err}");
    }
}

pub(crate) async fn login(provider: &HttpProvider) -> String {
    show(provider.login_request().unwrap()).await
}

pub(crate) async fn refresh(provider: &HttpProvider) -> String {
    show(
        provider
            .refresh_request(&Secret::from("rt-SECRET"))
            .unwrap(),
    )
    .await
}

fn answer(status: u16, body: &str) -> http::Response<bytes::Bytes> {
    let mut response = http::Response::<Bytes>::new(Bytes::from(body.to_owned()));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    response
}

#[tokio::test]
async fn shipped_specs_read_the_same_as_toml_and_as_json() {
    for (name, text) in SHIPPED {
        let toml = ProviderSpec::from_toml(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let json =
            ProviderSpec::from_json(&as_json(text)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(toml.name(), Some(name));
        assert_eq!(json.name(), Some(name));
        let base = "https://auth.example.com/base";
        let toml = toml.base_url(base).build(&credentials()).unwrap();
        let json = json.base_url(base).build(&credentials()).unwrap();
        assert_eq!(login(&toml).await, login(&json).await, "{name}");
        assert_eq!(refresh(&toml).await, refresh(&json).await, "{name}");
        assert_eq!(toml.policy(), json.policy(), "{name}");
        let shown = format!("{toml:?}");
        assert!(!shown.contains(MARK), "{name}: {shown}");
    }
}

const EVERYTHING: &str = r#"
name = "everything"
base_url = "https://auth.example.com/v9/"

[defaults]
client_id = "default-app"

[login]
method = "put"
url = "/session"
query = { key = "${api_key}", v = "2" }
headers = { X-Client = "${client_id}", X-Tenant = "t-$$1" }
json = { user = { name = "${username}", password = "${password}" }, remember = true, n = 3, tags = ["a", "b"], empty = {} }

[refresh]
url = "https://other.example.com/renew"
query = { token = "${refresh_token}" }
headers = { Authorization = "Bearer ${refresh_token}" }
rejects = { statuses = [400], errors = ["invalid_grant", "expired"] }

[tokens]
access = { pointer = "/data/jwt" }
refresh = { header = "X-Renew" }
expires_at = { pointer = "/data/until", format = "rfc3339" }
refresh_expires_in = { pointer = "/data/renew_ms", unit = "milliseconds" }

[token_header]
name = "X-Api-Token"
raw = true

[policy]
margin_secs = 12.5
default_lifetime_secs = 600
max_replays = 2
max_sends = 4
classifier = [401, 419]
login_on_refresh_rejected = false
keep_unrotated_refresh_token = false
"#;

#[tokio::test]
async fn every_part_of_the_format_reaches_the_wire() {
    let provider = ProviderSpec::from_toml(EVERYTHING)
        .and_then(|spec| spec.build(&credentials()))
        .unwrap();
    assert_eq!(
        login(&provider).await,
        "PUT https://auth.example.com/v9/session?key=key-SECRET&v=2\n\
         x-client: app\nx-tenant: t-$1\ncontent-type: application/json\n\
         accept: application/json\n\n\
         {\"empty\":{},\"n\":3,\"remember\":true,\"tags\":[\"a\",\"b\"],\
         \"user\":{\"name\":\"alice\",\"password\":\"pw-SECRET\"}}"
    );
    assert_eq!(
        refresh(&provider).await,
        "POST https://other.example.com/renew?token=rt-SECRET\n\
         accept: application/json\nauthorization: Bearer rt-SECRET (sensitive)\n\n"
    );
    // The secret query parameter is added only when the request is built.
    let shown = format!("{provider:?}");
    assert!(!shown.contains(MARK), "{shown}");

    // Without the credential, `[defaults]` gives the client id.
    let provider = ProviderSpec::from_toml(EVERYTHING)
        .and_then(|spec| {
            spec.build(
                &Credentials::new()
                    .username("bob")
                    .password("p")
                    .api_key("k"),
            )
        })
        .unwrap();
    assert!(login(&provider).await.contains("x-client: default-app\n"));

    let policy = provider.policy();
    assert_eq!(
        policy.refresh,
        RefreshTiming::Ahead {
            margin: Duration::from_millis(12_500)
        }
    );
    assert_eq!(policy.default_lifetime, Duration::from_secs(600));
    assert_eq!((policy.max_replays, policy.max_sends), (2, 4));
    assert_eq!(
        policy.classifier,
        Classifier::statuses([401, 419].map(|c| http::StatusCode::from_u16(c).unwrap()))
    );
    assert!(!policy.login_on_refresh_rejected && !policy.keep_unrotated_refresh_token);
    assert_eq!(policy.header.name(), "x-api-token");
    assert_eq!(policy.header.scheme(), None);

    // Answers: the access token from the body, the refresh token from a header, expiries of
    // both kinds.
    let mut ok = answer(
        200,
        r#"{"data":{"jwt":"at","until":"2030-01-01T00:00:00Z","renew_ms":90000}}"#,
    );
    ok.headers_mut()
        .insert("x-renew", http::HeaderValue::from_static("rt2"));
    let tokens = provider.parse_response(AuthCall::Login, &ok).unwrap();
    assert_eq!(tokens.access_token().expose(), "at");
    assert_eq!(tokens.refresh_token().map(Secret::expose), Some("rt2"));
    assert_eq!(
        tokens.expires_at(),
        Some(UNIX_EPOCH + Duration::from_secs(1_893_456_000))
    );
    assert_eq!(tokens.refresh_expires_in(), Some(Duration::from_secs(90)));
    let err = provider
        .parse_response(AuthCall::Login, &answer(200, r#"{"data":{}}"#))
        .unwrap_err();
    assert_eq!(err.kind(), tower_token_auth::ErrorKind::Malformed, "{err}");

    // Rejections by error code on the refresh call; the login keeps 400/401/403.
    let rejected = |call, status, body| provider.classify_failure(call, &answer(status, body));
    let grant = r#"{"error":"invalid_grant"}"#;
    assert_eq!(rejected(AuthCall::Refresh, 400, grant), Failure::Rejected);
    // Other answers reject nothing: an outage is transient, anything else unexpected.
    assert_eq!(
        rejected(AuthCall::Refresh, 400, r#"{"error":"slow_down"}"#),
        Failure::Unexpected
    );
    assert_eq!(rejected(AuthCall::Refresh, 401, grant), Failure::Unexpected);
    assert_eq!(rejected(AuthCall::Refresh, 503, grant), Failure::Transient);
    assert_eq!(rejected(AuthCall::Login, 403, ""), Failure::Rejected);
}

#[tokio::test]
async fn a_spec_without_refresh_only_logs_in() {
    let spec = r#"
        [login]
        url = "https://idp.example.com/token"
        form = { grant_type = "client_credentials", scope = "${scope}" }
        basic = { username = "${client_id}", password = "${client_secret}", form_encoded = true }

        [token_header]
        scheme = "JWT"
    "#;
    let credentials = Credentials::new()
        .client_id("a:b")
        .client_secret("s&SECRET")
        .scope("x y");
    let provider = ProviderSpec::from_toml(spec)
        .and_then(|spec| spec.build(&credentials))
        .unwrap();
    let err = provider.refresh_request(&Secret::from("r")).unwrap_err();
    assert_eq!(err.kind(), tower_token_auth::ErrorKind::Config);
    assert!(err.to_string().contains("no refresh call"), "{err}");
    assert_eq!(
        login(&provider).await,
        "POST https://idp.example.com/token\n\
         authorization: Basic YSUzQWI6cyUyNlNFQ1JFVA== (sensitive)\n\
         content-type: application/x-www-form-urlencoded\naccept: application/json\n\n\
         grant_type=client_credentials&scope=x+y"
    );
    let tokens = provider
        .parse_response(
            AuthCall::Login,
            &answer(200, r#"{"access_token":"a","refresh_token":"r"}"#),
        )
        .unwrap();
    assert!(tokens.refresh_token().is_none());
    assert_eq!(provider.policy().header.scheme(), Some("JWT"));
}

#[tokio::test]
async fn environment_placeholders_are_read_at_build_and_kept_secret() {
    // Names unique to this test: the process environment is shared by the tests.
    std::env::set_var("TTA_SPEC_TEST_KEY", "env-SECRET-value");
    let spec = r#"
        [login]
        url = "https://api.example.com/login"
        headers = { X-Api-Key = "${env:TTA_SPEC_TEST_KEY}" }
        json = { key = "${env:TTA_SPEC_TEST_KEY}" }
    "#;
    let provider = ProviderSpec::from_toml(spec)
        .and_then(|spec| spec.build(&Credentials::new()))
        .unwrap();
    let shown = format!("{provider:?}");
    assert!(!shown.contains(MARK), "{shown}");
    assert_eq!(
        login(&provider).await,
        "POST https://api.example.com/login\n\
         x-api-key: env-SECRET-value (sensitive)\ncontent-type: application/json\n\
         accept: application/json\n\n{\"key\":\"env-SECRET-value\"}"
    );
    let spec = spec.replace("TTA_SPEC_TEST_KEY", "TTA_SPEC_TEST_UNSET");
    let err = ProviderSpec::from_toml(&spec)
        .and_then(|spec| spec.build(&Credentials::new()))
        .unwrap_err();
    assert_eq!(err.path(), "login.headers.x-api-key");
    assert_eq!(
        err.message(),
        "${env:TTA_SPEC_TEST_UNSET}: the environment variable is not set"
    );
}

#[test]
fn build_errors_name_the_field_and_placeholder() {
    let simacan = include_str!("../../specs/simacan.toml");
    let err = ProviderSpec::from_toml(simacan)
        .and_then(|spec| spec.build(&Credentials::new().username("u")))
        .unwrap_err();
    assert_eq!(err.path(), "login.form.password");
    assert_eq!(err.message(), "${password}: not given in the credentials");
    assert_eq!((err.line(), err.column()), (None, None));

    let union = include_str!("../../specs/union-service.toml");
    let err = ProviderSpec::from_toml(union)
        .and_then(|spec| spec.build(&credentials()))
        .unwrap_err();
    assert_eq!(err.path(), "login.url");
    assert!(err.message().contains("needs a base URL"), "{err}");

    let err = ProviderSpec::from_toml(simacan)
        .unwrap()
        .base_url("not a url")
        .build(&credentials())
        .unwrap_err();
    assert_eq!(err.path(), "base_url");
    let auth: tower_token_auth::AuthError = err.into();
    assert_eq!(auth.kind(), tower_token_auth::ErrorKind::Config);
}

/// A bad spec, and what its error says: the path, the line and column, a part of the message.
type Case = (String, &'static str, Option<(usize, usize)>, &'static str);

/// A bad TOML spec's error, checked to quote no secret.
fn toml_error(text: &str) -> SpecError {
    let err = ProviderSpec::from_toml(text).unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(MARK), "{shown}");
    err
}

#[test]
fn bad_toml_specs_name_field_line_and_column() {
    let call = "[login]\nurl = \"https://a.test/login\"\n";
    let refresh =
        "[refresh]\nurl = \"/refresh\"\nform = { refresh_token = \"${refresh_token}\" }\n";
    let cases: Vec<Case> = vec![
        (format!("nmae = \"x\"\n{call}"), "nmae", Some((1, 1)), "unknown field `nmae`"),
        (format!("{call}methd = \"GET\"\n"), "login.methd", Some((3, 1)), "unknown field `methd`"),
        (format!("{call}method = \"SECRET\"\n"), "login.method", Some((3, 10)), "GET, POST or PUT"),
        ("[login]\nurl = \"login\"\n".into(), "login.url", Some((2, 7)), "starts with `/`"),
        ("[login]\nurl = \"https://a.test/${password}\"\n".into(), "login.url", Some((2, 7)), "no placeholders"),
        ("[login]\nurl = \"ftp://a.test/\"\n".into(), "login.url", Some((2, 7)), "http or https"),
        (format!("{call}headers = {{ \"Bad Name\" = \"x\" }}\n"), "login.headers.Bad Name", Some((3, 13)), "header name"),
        (format!("{call}form = {{ pw = \"${{passwd}}\" }}\n"), "login.form.pw", Some((3, 15)), "unknown placeholder"),
        (format!("{call}form = {{ pw = \"${{password\" }}\n"), "login.form.pw", Some((3, 15)), "not closed"),
        (format!("{call}json = {{ a = {{ b = \"${{nope}}\" }} }}\n"), "login.json.a.b", Some((3, 20)), "unknown placeholder"),
        (format!("{call}json = {{ a = [\"${{password}}\"] }}\n"), "login.json.a", Some((3, 14)), "inside arrays"),
        (format!("{call}form = {{ a = \"x\" }}\njson = {{ a = \"x\" }}\n"), "login", Some((1, 1)), "not both"),
        (format!("{call}json = {{ a = \"${{refresh_token}}\" }}\n"), "login", Some((1, 1)), "no `${refresh_token}`"),
        (format!("{call}[refresh]\nurl = \"/refresh\"\n"), "refresh", Some((3, 1)), "must send `${refresh_token}`"),
        (format!("{call}rejects = {{ statuses = [200] }}\n"), "login.rejects.statuses[0]", Some((3, 24)), "2xx"),
        (format!("{call}rejects = {{ any = true, statuses = [401] }}\n"), "login.rejects", Some((3, 11)), "`any`"),
        (format!("{call}basic = {{ username = \"u\", password = \"p\" }}\nheaders = {{ Authorization = \"x\" }}\n"), "login", Some((1, 1)), "choose one"),
        (format!("{call}{refresh}no_authorization = true\nheaders = {{ Authorization = \"${{refresh_token}}\" }}\n"), "refresh", Some((3, 1)), "no_authorization"),
        (format!("{call}[tokens]\naccess = {{ pointer = \"token\" }}\n"), "tokens.access.pointer", Some((4, 22)), "starts with `/`"),
        (format!("{call}[tokens]\naccess = {{ pointer = \"/t\", header = \"T\" }}\n"), "tokens.access", Some((4, 10)), "one of them"),
        (format!("{call}[tokens]\naccess = {{ pointer = \"/t\" }}\nexpires_in = {{ pointer = \"/e\" }}\nexpires_at = {{ pointer = \"/a\", format = \"rfc3339\" }}\n"), "tokens", Some((3, 1)), "not both"),
        (format!("{call}[tokens]\naccess = {{ pointer = \"/t\" }}\nexpires_at = {{ pointer = \"/a\", format = \"iso\" }}\n"), "tokens.expires_at.format", Some((5, 41)), "unknown variant, expected one of `rfc3339`"),
        (format!("{call}[token_header]\nraw = true\nscheme = \"Token\"\n"), "token_header", Some((3, 1)), "no `scheme`"),
        (format!("{call}[policy]\nrefresh = \"after_expiry\"\nmargin_secs = 5\n"), "policy", Some((3, 1)), "margin_secs"),
        (format!("{call}[policy]\nmargin_secs = \"SECRET\"\n"), "policy.margin_secs", Some((4, 15)), "invalid type: string, expected f64"),
        (format!("{call}[policy]\nmargin_secs = -1\n"), "policy.margin_secs", Some((4, 15)), "seconds from 0"),
        (format!("{call}[policy]\nmax_sends = 0\n"), "policy", Some((3, 1)), "at least 1"),
        (format!("{call}[policy]\ndefault_lifetime_secs = 0\n"), "policy", Some((3, 1)), "`default_lifetime` must be positive"),
        (format!("{call}[defaults]\npassword = \"SECRET\"\n"), "defaults.password", Some((4, 1)), "unknown field `password`"),
        ("base_url = \"/relative\"\n[login]\n".into(), "base_url", Some((1, 12)), "needs the scheme http or https"),
        ("[refresh]\nurl = \"/r\"\nform = { t = \"${refresh_token}\" }\n".into(), "", Some((1, 1)), "missing field `login`"),
        ("[login\nurl = \"x\"\n".into(), "", Some((1, 7)), "unclosed table"),
        (format!("{call}url = \"/again\"\n"), "", Some((3, 1)), "duplicate key"),
        (format!("{call}[policy]\nclassifier = [200]\n"), "policy", Some((3, 1)), "error status codes"),
        ("base_url = \"https://a.test/api?v=1\"\n[login]\nurl = \"/login\"\n".into(), "base_url", Some((1, 12)), "no query"),
        (format!("{call}basic = {{ username = \"u\", password = \"${{refresh_token}}\" }}\n"), "login", Some((1, 1)), "no `${refresh_token}`"),
        (format!("{call}json = {{ at = 1979-05-27T07:32:00Z }}\n"), "login.json.at", Some((3, 15)), "TOML datetimes"),
        (format!("{call}[policy]\nmargin_secs = \"a, expected SECRET\"\n"), "policy.margin_secs", Some((4, 15)), "invalid type: string, expected f64"),
    ];
    let mut wrong = Vec::new();
    for (text, path, at, says) in cases {
        let err = toml_error(&text);
        let found = (err.path(), err.line().zip(err.column()));
        if found != (path, at) || !err.message().contains(says) {
            wrong.push(format!("{text}\n  {found:?} {err}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn cross_table_rules_name_the_field() {
    let call = "[login]\nurl = \"https://a.test/login\"\n";
    let refresh = "[refresh]\nurl = \"/r\"\nform = { t = \"${refresh_token}\" }\n";
    let err = toml_error(&format!(
        "{call}{refresh}[tokens]\naccess = {{ header = \"T\" }}\n"
    ));
    assert_eq!(err.path(), "tokens.refresh");
    assert!(err.message().contains("needs a refresh token"), "{err}");
    let err = toml_error(&format!(
        "{call}[tokens]\naccess = {{ header = \"T\" }}\nrefresh = {{ header = \"R\" }}\n"
    ));
    assert_eq!(err.path(), "tokens.refresh");
    assert!(err.message().contains("no [refresh] call"), "{err}");
}

#[test]
fn bad_json_specs_name_field_line_and_column() {
    let mut wrong = Vec::new();
    for (text, path, at, says) in [
        (
            "{\"login\": {\"url\": \"https://a.test/\",\n  \"method\": \"SECRET\"}}",
            "login.method",
            Some((2, 21)),
            "GET, POST or PUT",
        ),
        (
            "{\"login\": {\"url\": \"https://a.test/\"},\n \"policy\": {\"margin_secs\": \"SECRET\"}}",
            "policy.margin_secs",
            Some((2, 35)),
            "invalid type: string, expected f64",
        ),
        (
            "{\"login\": {\"url\": \"https://a.test/\", \"form\": {\"a\": \"1\", \"a\": \"2\"}}}",
            "login.form",
            Some((1, 59)),
            "a key written twice",
        ),
        ("{\"login\": {}} trailing", "", Some((1, 15)), "trailing characters"),
        ("{\"login\": ", "login", Some((1, 10)), "EOF"),
    ] {
        let err = ProviderSpec::from_json(text).unwrap_err();
        assert!(!format!("{err} {err:?}").contains(MARK), "{err}");
        let found = (err.path(), err.line().zip(err.column()));
        if found != (path, at) || !err.message().contains(says) {
            wrong.push(format!("{text}\n  {found:?} {err}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_readme_spec_is_the_shipped_intergiro_spec() {
    let readme = include_str!("../../README.md");
    let spec = include_str!("../../specs/intergiro.toml");
    assert!(
        readme.contains(spec),
        "README must show specs/intergiro.toml verbatim"
    );
}

/// A spec with `n` entries in the login call's `table` (`headers`, `query`, `form` or `json`),
/// as TOML.
fn oversized(table: &str, n: usize) -> String {
    let mut text = format!("[login]\nurl = \"https://a.test/login\"\n[login.{table}]\n");
    for i in 0..n {
        text.push_str(&format!("x-{i} = \"${{password}}\"\n"));
    }
    text
}

/// Specs past the format's limits are refused with an error naming the table, as TOML and as
/// JSON; the limits themselves are accepted. (40,000 headers used to panic when built, in the
/// `http` crate's header map; 40,000 form fields took seconds to check for duplicates.)
#[test]
fn specs_past_the_limits_are_errors_naming_the_table() {
    for (table, limit) in [
        ("headers", 100),
        ("query", 1000),
        ("form", 1000),
        ("json", 1000),
    ] {
        for n in [limit + 1, 40_000] {
            let text = oversized(table, n);
            for err in [
                toml_error(&text),
                ProviderSpec::from_json(&as_json(&text)).unwrap_err(),
            ] {
                assert_eq!(err.path(), format!("login.{table}"), "{table} × {n}: {err}");
                assert!(
                    err.message()
                        .contains(&format!("more than {limit} entries")),
                    "{table} × {n}: {err}"
                );
            }
        }
        let provider = ProviderSpec::from_toml(&oversized(table, limit))
            .and_then(|spec| spec.build(&credentials()));
        assert!(provider.is_ok(), "{table} × {limit}: {:?}", provider.err());
    }
    // Nesting: the body and 15 objects (or arrays) inside it, not one more.
    let nested = |depth: usize, open: &str, close: &str| {
        format!(
            "[login]\nurl = \"https://a.test/login\"\njson = {{ a = {}1{} }}\n",
            open.repeat(depth - 1),
            close.repeat(depth - 1)
        )
    };
    for (open, close, path) in [
        ("{ a = ", " }", "login.json.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a"),
        (
            "[",
            "]",
            "login.json.a[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]",
        ),
    ] {
        let deep = nested(17, open, close);
        for err in [
            toml_error(&deep),
            ProviderSpec::from_json(&as_json(&deep)).unwrap_err(),
        ] {
            assert_eq!(err.path(), path, "{err}");
            assert!(err.message().contains("at most 16"), "{err}");
        }
        assert!(ProviderSpec::from_toml(&nested(16, open, close)).is_ok());
    }
}

/// Names are sent as written: a placeholder in one is refused, naming the field, instead of
/// going out literally (`{"${password}":"v"}`).
#[test]
fn placeholders_in_names_are_errors_naming_the_field() {
    let call = "[login]\nurl = \"https://a.test/login\"\n";
    for (table, path) in [
        (
            "json = { \"${password}\" = \"v\" }",
            "login.json.${password}",
        ),
        (
            "json = { a = { \"k-${api_key}\" = 1 } }",
            "login.json.a.k-${api_key}",
        ),
        (
            "form = { \"${username}\" = \"${password}\" }",
            "login.form.${username}",
        ),
        (
            "query = { \"${env:KEY}\" = \"v\" }",
            "login.query.${env:KEY}",
        ),
        (
            "headers = { \"X-${client_id}\" = \"v\" }",
            "login.headers.X-${client_id}",
        ),
    ] {
        let text = format!("{call}{table}\n");
        for err in [
            toml_error(&text),
            ProviderSpec::from_json(&as_json(&text)).unwrap_err(),
        ] {
            assert_eq!(err.path(), path, "{table}: {err}");
            assert!(
                err.message().contains("a name takes no placeholders"),
                "{table}: {err}"
            );
        }
    }
    // A `$` alone is text, in names as in values.
    let text = format!("{call}json = {{ \"$type\" = \"a$b\" }}\n");
    assert!(ProviderSpec::from_toml(&text).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn garbage_never_panics(text in "\\PC{0,200}") {
        let _ = ProviderSpec::from_toml(&text);
        let _ = ProviderSpec::from_json(&text);
    }

    #[test]
    fn mangled_shipped_specs_never_panic_and_errors_point_inside(
        which in 0..SHIPPED.len(),
        cut in 0usize..2000,
        len in 0usize..12,
        insert in "[\\[\\]{}=\"$/.a-z0-9 \n]{0,6}",
    ) {
        for text in [SHIPPED[which].1.to_owned(), as_json(SHIPPED[which].1)] {
            let cut = text.char_indices().map(|(i, _)| i).nth(cut % text.chars().count()).unwrap_or(0);
            let end = text[cut..].char_indices().map(|(i, _)| cut + i).nth(len).unwrap_or(text.len());
            let mangled = format!("{}{insert}{}", &text[..cut], &text[end..]);
            for result in [ProviderSpec::from_toml(&mangled), ProviderSpec::from_json(&mangled)] {
                match result {
                    Ok(spec) => {
                        let _ = spec.base_url("https://a.test").build(&credentials());
                    }
                    Err(err) => {
                        if let Some(line) = err.line() {
                            prop_assert!(line <= mangled.lines().count() + 1, "{}", err);
                        }
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Tables of any size, with names and values drawn from what specs hold: never a panic, and
    /// past the limit an error naming the table.
    #[test]
    fn tables_of_any_size_never_panic(
        table in prop::sample::select(vec!["headers", "query", "form", "json"]),
        names in prop::collection::vec("[a-z$_{}-]{1,6}", 0..1200),
        value in "[a-z${}:_]{0,12}",
    ) {
        let mut text = format!("[login]\nurl = \"https://a.test/login\"\n[login.{table}]\n");
        for (i, name) in names.iter().enumerate() {
            text.push_str(&format!("\"{name}{i}\" = \"{value}\"\n"));
        }
        let limit = if table == "headers" { 100 } else { 1000 };
        for result in [ProviderSpec::from_toml(&text), ProviderSpec::from_json(&as_json(&text))] {
            match result {
                Ok(spec) => {
                    prop_assert!(names.len() <= limit);
                    let _ = spec.build(&credentials());
                }
                Err(err) if names.len() > limit && err.message().contains("entries") => {
                    prop_assert_eq!(err.path(), format!("login.{table}"));
                }
                Err(err) => prop_assert!(err.path().starts_with("login."), "{}", err),
            }
        }
    }
}

#[test]
fn absolute_expiry_from_epoch_fields() {
    let spec = r#"
        [login]
        url = "https://a.test/login"
        [tokens]
        access = { pointer = "/t" }
        expires_at = { pointer = "/exp", format = "unix_millis" }
    "#;
    let provider = ProviderSpec::from_toml(spec)
        .and_then(|spec| spec.build(&Credentials::new()))
        .unwrap();
    let tokens = provider
        .parse_response(
            AuthCall::Login,
            &answer(200, r#"{"t":"a","exp":"1700000000250"}"#),
        )
        .unwrap();
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
    assert_eq!(tokens.expires_at(), Some(at));
}

/// A `Content-Type` the spec names (a vendor media type) is sent as named, over the body's own.
#[tokio::test]
async fn a_content_type_the_spec_names_stands() {
    let spec = r#"
        [login]
        url = "https://a.test/login"
        headers = { Content-Type = "application/vnd.example+json" }
        json = { user = "${username}" }
    "#;
    let provider = ProviderSpec::from_toml(spec)
        .and_then(|spec| spec.build(&credentials()))
        .unwrap();
    let request = provider.login_request().unwrap();
    let types: Vec<_> = request
        .headers()
        .get_all(http::header::CONTENT_TYPE)
        .iter()
        .collect();
    assert_eq!(types, ["application/vnd.example+json"]);
}

/// A base URL given in place of the spec's is checked as the spec's would be.
#[test]
fn an_overriding_base_url_is_checked_when_built() {
    let spec = ProviderSpec::from_toml("[login]\nurl = \"/login\"\n").unwrap();
    for (base, says) in [
        ("https://a.test/api?v=1", "no query"),
        ("/relative", "http or https"),
    ] {
        let err = spec
            .clone()
            .base_url(base)
            .build(&credentials())
            .unwrap_err();
        assert_eq!(err.path(), "base_url", "{base}");
        assert!(err.message().contains(says), "{base}: {err}");
    }
    let provider = spec.base_url("https://a.test/api").build(&credentials());
    assert!(provider.is_ok());
}
