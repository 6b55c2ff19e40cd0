//! A spec's OAuth2 keys: `client_auth` by secret or by an assertion file (no `jose` needed),
//! `resource`, `audience` and `issuer`, on the wire and against the emulation's strict token
//! endpoint; every wrong combination an error when the spec is read, naming the key and
//! quoting no value. The signing methods are in `tests/assertions/specs.rs`.

use http::StatusCode;
use tower_token_auth::provider::{Credentials, HttpProvider, Provider, ProviderSpec, SpecError};
use tower_token_auth::ErrorKind;
use tower_token_auth_emulation::{Api, ClientAuth, Config, Discovery, Emulation, OAuthExtensions};

use crate::spec::{credentials, login, refresh, show, MARK};
use crate::support::emulated::{get, layered, login_and_refresh};

/// The emulation's credentials.
fn credentials_of(emulation: &Emulation) -> Credentials {
    crate::support::emulated::credentials(emulation.config())
}

/// The password grant, renewed with the refresh token; the keys go in front.
fn password_grant(keys: &str) -> String {
    format!(
        "{keys}\n\
         [login]\n\
         url = \"https://idp.example.com/token\"\n\
         form = {{ grant_type = \"password\", username = \"${{username}}\", password = \"${{password}}\" }}\n\
         [refresh]\n\
         url = \"https://idp.example.com/token\"\n\
         form = {{ grant_type = \"refresh_token\", refresh_token = \"${{refresh_token}}\" }}\n"
    )
}

fn built(text: &str, credentials: &Credentials) -> HttpProvider {
    ProviderSpec::from_toml(text)
        .and_then(|spec| spec.build(credentials))
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn secret_methods_and_targets_reach_the_wire() {
    let post = built(
        &password_grant(
            "client_auth = \"client_secret_post\"\n\
             resource = [\"https://a.example.com/\", \"urn:example:b\"]\n\
             audience = \"orders\"",
        ),
        &credentials(),
    );
    let targets =
        "resource=https%3A%2F%2Fa.example.com%2F&resource=urn%3Aexample%3Ab&audience=orders";
    assert_eq!(
        login(&post).await,
        format!(
            "POST https://idp.example.com/token\n\
             content-type: application/x-www-form-urlencoded\naccept: application/json\n\n\
             grant_type=password&username=alice&password=pw-SECRET&client_id=app&client_secret=cs-SECRET&{targets}"
        )
    );
    assert_eq!(
        refresh(&post).await,
        format!(
            "POST https://idp.example.com/token\n\
             content-type: application/x-www-form-urlencoded\naccept: application/json\n\n\
             grant_type=refresh_token&refresh_token=rt-SECRET&client_id=app&client_secret=cs-SECRET&{targets}"
        )
    );
    let shown = format!("{post:?}");
    assert!(!shown.contains(MARK), "{shown}");

    let basic = built(
        &password_grant("client_auth = \"client_secret_basic\""),
        &credentials(),
    );
    let header = "authorization: Basic YXBwOmNzLVNFQ1JFVA== (sensitive)";
    for call in [login(&basic).await, refresh(&basic).await] {
        assert!(call.contains(header), "{call}");
        assert!(!call.contains("client_"), "{call}");
    }
}

#[tokio::test]
async fn an_assertion_file_is_read_at_every_call_without_the_jose_feature() {
    let dir = std::env::temp_dir().join(format!("tta-spec-assertion-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("token");
    let text = password_grant(&format!(
        "client_auth = \"private_key_jwt\"\nclient_assertion_file = \"{}\"",
        path.display()
    ));
    let provider = built(&text, &credentials());
    std::fs::write(&path, "eyJ.first.SECRET\n").unwrap();
    let first = login(&provider).await;
    assert!(
        first.ends_with(
            "grant_type=password&username=alice&password=pw-SECRET&client_id=app\
             &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
             &client_assertion=eyJ.first.SECRET"
        ),
        "{first}"
    );
    assert!(!first.contains("authorization"), "{first}");
    std::fs::write(&path, "eyJ.second.SECRET").unwrap();
    let second = refresh(&provider).await;
    assert!(
        second.ends_with("&client_assertion=eyJ.second.SECRET"),
        "{second}"
    );
    std::fs::remove_file(&path).unwrap();
    let err = provider.login_request().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(!err.to_string().contains(MARK), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The emulation's OAuth2 server with `extensions`.
async fn strict(extensions: OAuthExtensions) -> Emulation {
    let config = Config {
        extensions,
        ..Config::default()
    };
    Emulation::start(Api::OAuth2, config).await.unwrap()
}

/// The password grant at the emulation's token endpoint (a base URL the spec leaves out).
fn emulated_password_grant(keys: &str) -> String {
    password_grant(keys).replace("url = \"https://idp.example.com/token\"\n", "")
}

#[tokio::test]
async fn each_secret_method_is_the_one_the_strict_server_registered() {
    for (method, registered) in [
        ("client_secret_basic", ClientAuth::SecretBasic),
        ("client_secret_post", ClientAuth::SecretPost),
    ] {
        let emulation = strict(OAuthExtensions {
            client_auth: registered,
            ..OAuthExtensions::default()
        })
        .await;
        let text = emulated_password_grant(&format!("client_auth = \"{method}\""));
        let spec = ProviderSpec::from_toml(&text).unwrap();
        let provider = spec
            .base_url(&emulation.base_url())
            .build(&credentials_of(&emulation))
            .unwrap();
        login_and_refresh(&emulation, provider).await;
    }
}

const RESOURCE: &str = "https://orders.example.com/";

#[tokio::test]
async fn an_issuer_and_targets_get_a_token_for_the_resource_that_requires_it() {
    let emulation = strict(OAuthExtensions {
        client_auth: ClientAuth::SecretPost,
        discovery: Some(Discovery::default()),
        resource_indicators: true,
        resource_audience: Some(RESOURCE.to_owned()),
        ..OAuthExtensions::default()
    })
    .await;
    let text = emulated_password_grant(&format!(
        "issuer = \"https://idp.example.com\"\n\
         client_auth = \"client_secret_post\"\n\
         resource = \"{RESOURCE}\"\n\
         audience = [\"orders\", \"billing\"]"
    ));
    let spec = ProviderSpec::from_toml(&text).unwrap();
    let provider = spec
        .issuer(&emulation.issuer())
        .build(&credentials_of(&emulation))
        .unwrap();
    login_and_refresh(&emulation, provider).await;
    assert_eq!(emulation.stats().discovery_fetches, 1);

    // Without the resource, the token is not for it: the request ends 401, no data served.
    let emulation = strict(OAuthExtensions {
        discovery: Some(Discovery::default()),
        resource_indicators: true,
        resource_audience: Some(RESOURCE.to_owned()),
        ..OAuthExtensions::default()
    })
    .await;
    let text = emulated_password_grant(
        "issuer = \"https://idp.example.com\"\nclient_auth = \"client_secret_basic\"",
    );
    let provider = ProviderSpec::from_toml(&text)
        .unwrap()
        .issuer(&emulation.issuer())
        .build(&credentials_of(&emulation))
        .unwrap();
    let (_, svc) = layered(provider);
    assert_eq!(
        get(&svc, &emulation).await.unwrap(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_issuer_naming_another_in_its_metadata_gets_no_credentials() {
    let emulation = strict(OAuthExtensions {
        discovery: Some(Discovery {
            issuer_override: Some("https://evil.example.com".to_owned()),
            ..Discovery::default()
        }),
        ..OAuthExtensions::default()
    })
    .await;
    let text = emulated_password_grant("client_auth = \"client_secret_basic\"");
    let provider = ProviderSpec::from_toml(&text)
        .unwrap()
        .issuer(&emulation.issuer())
        .build(&credentials_of(&emulation))
        .unwrap();
    let (layer, _) = layered(provider);
    let err = layer.handle().token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let stats = emulation.stats();
    assert_eq!(
        (stats.discovery_fetches, stats.logins, stats.rejected_logins),
        (1, 0, 0)
    );
}

/// A spec whose OAuth2 keys are wrong, checked to quote no value.
fn read_error(text: &str) -> SpecError {
    let err = ProviderSpec::from_toml(text).unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(MARK), "{shown}");
    let as_auth: tower_token_auth::AuthError = err.clone().into();
    assert_eq!(as_auth.kind(), ErrorKind::Config);
    err
}

#[test]
fn wrong_oauth2_keys_are_errors_when_read() {
    let form_login = |keys: &str| {
        format!(
            "{keys}\n[login]\nurl = \"https://idp.test/token\"\nform = {{ grant_type = \"client_credentials\" }}\n"
        )
    };
    let issuer_login = |keys: &str| {
        format!("issuer = \"https://idp.test\"\n{keys}\n[login]\nform = {{ grant_type = \"client_credentials\" }}\n")
    };
    let many: Vec<String> = (0..101)
        .map(|n| format!("\"https://r{n}.test/\""))
        .collect();
    let cases: Vec<(String, &str, &str)> = vec![
        (
            form_login("client_auth = \"SECRET_basic\""),
            "client_auth",
            "unknown variant, expected one of `client_secret_basic`, `client_secret_post`, `client_secret_jwt`, `private_key_jwt`",
        ),
        (
            form_login("client_auth = \"private_key_jwt\""),
            "client_auth",
            "private_key_jwt needs its key",
        ),
        (
            form_login(
                "client_auth = \"private_key_jwt\"\n\
                 client_key = { pem_file = \"k.pem\", alg = \"ES256\" }\n\
                 client_assertion_file = \"/t\"",
            ),
            "client_assertion_file",
            "not both",
        ),
        (
            form_login(
                "client_auth = \"client_secret_post\"\n\
                 client_key = { pem_file = \"k.pem\", alg = \"ES256\" }",
            ),
            "client_key",
            "which is not the method",
        ),
        (
            form_login("client_assertion_file = \"/t\""),
            "client_assertion_file",
            "which is not the method",
        ),
        (
            form_login(
                "client_auth = \"private_key_jwt\"\n\
                 client_key = { pem_file = \"k.pem\", alg = \"ES256\", bogus = 1 }",
            ),
            "client_key.bogus",
            "unknown field",
        ),
        (
            format!("base_url = \"https://idp.test\"\n{}", issuer_login("")),
            "base_url",
            "with `issuer`, the token endpoint comes from the issuer's metadata: remove `base_url`",
        ),
        (
            form_login("issuer = \"https://idp.test\""),
            "login.url",
            "remove `url`",
        ),
        (
            form_login("issuer = \"https://idp.test/?SECRET\""),
            "issuer",
            "an issuer takes no query or fragment",
        ),
        (
            form_login("resource = \"SECRET\""),
            "resource",
            "a resource is an absolute URI",
        ),
        (
            form_login("resource = [\"https://a.test/\", \"https://b.test/#SECRET\"]"),
            "resource[1]",
            "without fragment",
        ),
        (
            form_login("audience = \"\""),
            "audience",
            "not empty",
        ),
        (
            form_login(&format!("resource = [{}]", many.join(", "))),
            "resource",
            "more than 100 entries",
        ),
        (
            "client_auth = \"client_secret_post\"\n[login]\nurl = \"https://idp.test/token\"\njson = { grant_type = \"client_credentials\" }\n"
                .to_owned(),
            "login",
            "`client_auth` is sent in the form of the token request: the call needs a `form`",
        ),
        (
            "audience = \"a\"\n[login]\nurl = \"https://idp.test/token\"\n".to_owned(),
            "login",
            "`audience` is sent in the form",
        ),
        (
            "client_auth = \"client_secret_post\"\n[login]\nurl = \"https://idp.test/token\"\n\
             form = { grant_type = \"client_credentials\" }\n\
             basic = { username = \"${client_id}\", password = \"${client_secret}\" }\n"
                .to_owned(),
            "login.basic",
            "the client authenticates by `client_auth = \"client_secret_post\"`: remove `basic`",
        ),
        (
            "client_auth = \"client_secret_basic\"\n[login]\nurl = \"https://idp.test/token\"\n\
             headers = { Authorization = \"Basic ${client_secret}\" }\n"
                .to_owned(),
            "login.headers.authorization",
            "remove the header",
        ),
        (
            format!(
                "{}[refresh]\nno_authorization = true\nform = {{ refresh_token = \"${{refresh_token}}\" }}\n",
                form_login("client_auth = \"client_secret_basic\"\nbase_url = \"https://idp.test\"")
            ),
            "refresh.no_authorization",
            "which is an `Authorization` header",
        ),
        (
            "client_auth = \"private_key_jwt\"\nclient_assertion_file = \"/t\"\n[login]\nurl = \"https://idp.test/token\"\n\
             form = { grant_type = \"client_credentials\", client_secret = \"${client_secret}\" }\n"
                .to_owned(),
            "login.form.client_secret",
            "remove the field",
        ),
        (
            "resource = \"https://a.test/\"\n[login]\nurl = \"https://idp.test/token\"\n\
             form = { grant_type = \"client_credentials\", resource = \"https://b.test/\" }\n"
                .to_owned(),
            "login.form.resource",
            "the spec's OAuth2 keys send this field",
        ),
    ];
    for (text, path, says) in &cases {
        let err = read_error(text);
        assert_eq!(err.path(), *path, "{text}\n{err}");
        assert!(err.message().contains(says), "{text}\n{err}");
    }
    // The same in JSON.
    let err = ProviderSpec::from_json(
        r#"{"client_auth": "client_secret_post", "login": {"url": "https://idp.test/token"}}"#,
    )
    .unwrap_err();
    assert_eq!(err.path(), "login");
    // An unknown value names its line and column.
    let err = read_error(&form_login("client_auth = \"SECRET\""));
    assert_eq!((err.line(), err.column()), (Some(1), Some(15)));
}

/// Without the `jose` feature, the methods that sign are errors naming it, and an assertion
/// file still works.
#[cfg(not(feature = "jose"))]
#[test]
fn signing_without_the_jose_feature_is_an_error_naming_it() {
    let spec = |keys: &str| {
        format!("{keys}\n[login]\nurl = \"https://idp.test/token\"\nform = {{ grant_type = \"client_credentials\" }}\n")
    };
    let err = read_error(&spec("client_auth = \"client_secret_jwt\""));
    assert_eq!(err.path(), "client_auth");
    assert_eq!(
        err.message(),
        "client_secret_jwt signs assertions: it needs the crate's `jose` feature"
    );
    let err = read_error(&spec(
        "client_auth = \"private_key_jwt\"\nclient_key = { pem_file = \"k.pem\", alg = \"ES256\" }",
    ));
    assert_eq!(err.path(), "client_key");
    assert!(err.message().contains("`jose` feature"), "{err}");
    ProviderSpec::from_toml(&spec(
        "client_auth = \"private_key_jwt\"\nclient_assertion_file = \"/t\"",
    ))
    .unwrap();
}

#[tokio::test]
async fn an_issuer_given_to_a_spec_is_checked_when_built() {
    let text = password_grant("");
    let err = ProviderSpec::from_toml(&text)
        .unwrap()
        .issuer("https://idp.example.com")
        .build(&credentials())
        .unwrap_err();
    assert_eq!(err.path(), "login.url");
    let relative = "base_url = \"https://idp.test\"\n[login]\nform = { grant_type = \"client_credentials\" }\n";
    let err = ProviderSpec::from_toml(relative)
        .unwrap()
        .issuer("https://idp.example.com")
        .build(&credentials())
        .unwrap_err();
    assert_eq!(err.path(), "base_url");
    let err = ProviderSpec::from_toml(&emulated_password_grant(""))
        .unwrap()
        .issuer("not a URL")
        .build(&credentials())
        .unwrap_err();
    assert_eq!(err.path(), "issuer");
    // Discovery first, to the issuer's OpenID Connect document; no token call before it.
    let provider = ProviderSpec::from_toml(&emulated_password_grant(""))
        .unwrap()
        .issuer("https://idp.example.com/realms/a")
        .build(&credentials())
        .unwrap();
    let discovery = provider.discovery_request().unwrap().unwrap();
    assert_eq!(
        show(discovery).await,
        "GET https://idp.example.com/realms/a/.well-known/openid-configuration\n\
         accept: application/json\n\n"
    );
    let err = provider.login_request().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}

#[test]
fn the_readme_shows_the_shipped_oauth2_spec() {
    let readme = include_str!("../../README.md");
    let spec = include_str!("../../specs/oauth2-client-credentials-jwt.toml");
    assert!(
        readme.contains(&format!("```toml\n{spec}```")),
        "README must show specs/oauth2-client-credentials-jwt.toml verbatim"
    );
}
