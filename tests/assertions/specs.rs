//! Spec files whose client signs its assertions (`client_secret_jwt`, `private_key_jwt` with a
//! key file): the assertions as `jsonwebtoken` verifies them, a fresh one for every call, the
//! strict emulation taking them with no violation, the key's errors, and the shipped example
//! spec end to end.

use std::collections::HashSet;

use http::StatusCode;
use jsonwebtoken::DecodingKey;
use tower_token_auth::jose::{Algorithm, SigningKey};
use tower_token_auth::provider::{Credentials, HttpProvider, Provider, ProviderSpec, SpecError};
use tower_token_auth::{ErrorKind, Secret};
use tower_token_auth_emulation::{
    Api, ClientAuth, Config, Discovery, Emulation, OAuthExtensions, SigningAlg,
};

use crate::emulated::signing_alg;
use crate::signed::{field, form, verify, TOKEN_URL};
use crate::support::emulated::{self, get, layered, login_and_refresh};
use crate::{decoding_key, jwt_alg, key_file, key_path, PEM_KEYS};

/// Secrets in these tests carry this marker, so leak checks can search for it.
const MARK: &str = "SECRET";

/// The password grant at `token_url` (the base URL when empty), renewed with the refresh token,
/// the keys in front.
fn password_grant(keys: &str, token_url: &str) -> String {
    let url = match token_url {
        "" => String::new(),
        url => format!("url = \"{url}\"\n"),
    };
    format!(
        "{keys}\n\
         [login]\n{url}\
         form = {{ grant_type = \"password\", username = \"${{username}}\", password = \"${{password}}\" }}\n\
         [refresh]\n{url}\
         form = {{ grant_type = \"refresh_token\", refresh_token = \"${{refresh_token}}\" }}\n"
    )
}

/// `private_key_jwt` with the key file `file` for `alg`, named `kid`.
fn key_keys(alg: Algorithm, file: &str, kid: &str) -> String {
    format!(
        "client_auth = \"private_key_jwt\"\n\
         client_key = {{ pem_file = \"{}\", alg = \"{alg}\", kid = \"{kid}\" }}",
        key_path(file).display()
    )
}

fn credentials(client_id: &str) -> Credentials {
    Credentials::new()
        .username("alice")
        .password("pw-SECRET")
        .client_id(client_id)
        .client_secret("cs-SECRET-of-32-bytes-at-the-least")
}

fn built(text: &str, credentials: &Credentials) -> Result<HttpProvider, SpecError> {
    ProviderSpec::from_toml(text).and_then(|spec| spec.build(credentials))
}

/// Every login and refresh of a spec's provider carries a new assertion, signed with the
/// spec's key and `kid`, for the login URL: five calls, five distinct `jti`s, with every
/// algorithm.
#[tokio::test]
async fn a_spec_signs_a_fresh_assertion_for_every_call() {
    for (alg, file, public) in PEM_KEYS {
        let text = password_grant(&key_keys(alg, file, "spec-1"), TOKEN_URL);
        let provider = built(&text, &credentials("my-app")).unwrap();
        let decoding = decoding_key(alg, public);
        let mut jtis = HashSet::new();
        for n in 0..5 {
            let request = match n {
                4 => provider.refresh_request(&Secret::from("rt-1")).unwrap(),
                _ => provider.login_request().unwrap(),
            };
            assert!(!request.headers().contains_key(http::header::AUTHORIZATION));
            let form = form(request).await;
            assert_eq!(field(&form, "client_id"), "my-app");
            let jws = field(&form, "client_assertion");
            let header = jsonwebtoken::decode_header(jws).unwrap();
            assert_eq!(header.kid.as_deref(), Some("spec-1"), "{alg}");
            let claims = verify(jws, &decoding, jwt_alg(alg), TOKEN_URL);
            jtis.insert(claims.jti);
        }
        assert_eq!(jtis.len(), 5, "{alg}");
        let shown = format!("{provider:?}");
        assert!(!shown.contains(MARK), "{shown}");
    }
}

/// `client_secret_jwt`: HS256 keyed with `${client_secret}`, which is never sent.
#[tokio::test]
async fn a_client_secret_jwt_spec_never_sends_the_secret() {
    let text = password_grant("client_auth = \"client_secret_jwt\"", TOKEN_URL);
    let provider = built(&text, &credentials("my-app")).unwrap();
    let form = form(provider.login_request().unwrap()).await;
    assert!(
        !form.iter().any(|(_, v)| v.contains("cs-SECRET")),
        "{form:?}"
    );
    let secret = DecodingKey::from_secret(b"cs-SECRET-of-32-bytes-at-the-least");
    let jws = field(&form, "client_assertion");
    verify(jws, &secret, jsonwebtoken::Algorithm::HS256, TOKEN_URL);
}

/// The strict emulation takes the spec's assertions, by every algorithm and by the client
/// secret, at the login and the refresh: two assertions, no violation.
#[tokio::test]
async fn signing_specs_against_the_strict_emulation() {
    let mut cases: Vec<(ClientAuth, &str, String)> = PEM_KEYS
        .iter()
        .map(|&(alg, file, _)| {
            let key = SigningKey::from_pkcs8_pem(&key_file(file), alg)
                .unwrap()
                .with_kid("spec-1");
            let registered = ClientAuth::PrivateKeyJwt {
                jwk: key.public_jwk(),
                alg: signing_alg(alg),
            };
            let text = password_grant(&key_keys(alg, file, "spec-1"), "");
            (registered, "client-secret", text)
        })
        .collect();
    cases.push((
        ClientAuth::SecretJwt,
        "an-emulated-client-secret-of-40-bytes-xx",
        password_grant("client_auth = \"client_secret_jwt\"", ""),
    ));
    for (registered, client_secret, text) in cases {
        let config = Config {
            extensions: OAuthExtensions {
                client_auth: registered,
                ..OAuthExtensions::default()
            },
            client_secret: client_secret.to_owned(),
            ..Config::default()
        };
        let emulation = Emulation::start(Api::OAuth2, config).await.unwrap();
        let provider = ProviderSpec::from_toml(&text)
            .unwrap()
            .base_url(&emulation.base_url())
            .build(&emulated::credentials(emulation.config()))
            .unwrap();
        let stats = login_and_refresh(&emulation, provider).await;
        assert_eq!(stats.client_assertions, 2, "{text}");
    }
}

/// Key errors name the key and quote neither the key nor its path: an unsupported algorithm
/// when the spec is read; a missing or unreadable key file, a key of another type than `alg`,
/// a short secret or a missing client id when it is built.
#[test]
fn key_errors_name_the_key_and_quote_nothing() {
    let quotes_nothing = |err: &SpecError| {
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(MARK), "{shown}");
        assert!(!shown.contains("keys/"), "{shown}");
        let auth: tower_token_auth::AuthError = err.clone().into();
        assert_eq!(auth.kind(), ErrorKind::Config);
    };
    for alg in ["HS256", "none", "es256"] {
        let text = password_grant(
            &format!(
                "client_auth = \"private_key_jwt\"\n\
                 client_key = {{ pem_file = \"k.pem\", alg = \"{alg}\" }}"
            ),
            TOKEN_URL,
        );
        let err = ProviderSpec::from_toml(&text).unwrap_err();
        quotes_nothing(&err);
        assert_eq!(err.path(), "client_key.alg", "{alg}");
        assert_eq!(
            err.message(),
            "an unsupported algorithm: use ES256, RS256, PS256 or EdDSA"
        );
        assert_eq!((err.line(), err.column()), (Some(2), Some(42)), "{alg}");
    }

    let dir = std::env::temp_dir().join(format!("tta-spec-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage-SECRET.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let cases = [
        (
            key_keys(Algorithm::ES256, "missing-SECRET.pem", "k"),
            "client_key.pem_file",
            "the key file cannot be read: entity not found",
        ),
        (
            key_keys(Algorithm::EdDSA, "es256.pem", "k"),
            "client_key.pem_file",
            "invalid auth configuration",
        ),
        (
            format!(
                "client_auth = \"private_key_jwt\"\n\
                 client_key = {{ pem_file = \"{}\", alg = \"ES256\" }}",
                garbage.display()
            ),
            "client_key.pem_file",
            "invalid auth configuration",
        ),
    ];
    for (keys, path, says) in &cases {
        let err = built(&password_grant(keys, TOKEN_URL), &credentials("my-app")).unwrap_err();
        quotes_nothing(&err);
        assert_eq!(err.path(), *path, "{err}");
        assert!(err.message().starts_with(says), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();

    let secret_jwt = password_grant("client_auth = \"client_secret_jwt\"", TOKEN_URL);
    let short = Credentials::new()
        .username("alice")
        .password("pw")
        .client_id("my-app")
        .client_secret("short-SECRET");
    let err = built(&secret_jwt, &short).unwrap_err();
    quotes_nothing(&err);
    assert_eq!(err.path(), "client_auth");
    assert!(err.message().contains("32 bytes"), "{err}");
    let no_client = Credentials::new().username("alice").password("pw");
    let err = built(&secret_jwt, &no_client).unwrap_err();
    assert_eq!(err.path(), "client_auth");
    assert_eq!(err.message(), "${client_id}: not given in the credentials");
}

/// The shipped example's resource, which the emulation's resource requires.
pub(crate) const RESOURCE: &str = "https://orders.example.com/";

/// `specs/oauth2-client-credentials-jwt.toml`.
pub(crate) const EXAMPLE: &str = include_str!("../../specs/oauth2-client-credentials-jwt.toml");

/// What the shipped example is for: `private_key_jwt` with the ES256 test key, discovery, and
/// a resource that requires [`RESOURCE`].
pub(crate) fn example_extensions() -> OAuthExtensions {
    OAuthExtensions {
        client_auth: ClientAuth::PrivateKeyJwt {
            jwk: crate::pem_key(Algorithm::ES256).public_jwk(),
            alg: SigningAlg::ES256,
        },
        discovery: Some(Discovery::default()),
        resource_indicators: true,
        resource_audience: Some(RESOURCE.to_owned()),
        ..OAuthExtensions::default()
    }
}

/// The strict emulation with [`example_extensions`].
pub(crate) async fn example_emulation() -> Emulation {
    let config = Config {
        extensions: example_extensions(),
        ..Config::default()
    };
    Emulation::start(Api::OAuth2, config).await.unwrap()
}

/// The shipped example, as TOML and as JSON, pointed at the emulation's issuer with the key
/// file in `CLIENT_KEY_FILE`: one discovery, then a login per token with a fresh assertion,
/// and the token good at the resource that requires the example's `resource`.
#[tokio::test]
async fn the_shipped_example_runs_against_the_strict_emulation() {
    // The only test that reads this variable; its value never changes.
    std::env::set_var("CLIENT_KEY_FILE", key_path("es256.pem"));
    let table: toml::Table = toml::from_str(EXAMPLE).unwrap();
    let json = serde_json::to_string(&table).unwrap();
    for spec in [
        ProviderSpec::from_toml(EXAMPLE),
        ProviderSpec::from_json(&json),
    ] {
        let spec = spec.unwrap();
        assert_eq!(spec.name(), Some("oauth2-client-credentials-jwt"));
        let emulation = example_emulation().await;
        let credentials = Credentials::new().client_id(emulation.config().client_id.clone());
        let provider = spec
            .issuer(&emulation.issuer())
            .build(&credentials)
            .unwrap();
        let (_, svc) = layered(provider);
        assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);
        emulation.revoke_access_tokens();
        assert_eq!(get(&svc, &emulation).await.unwrap(), StatusCode::OK);
        let stats = emulation.stats();
        assert_eq!(
            (
                stats.discovery_fetches,
                stats.logins,
                stats.client_assertions
            ),
            (1, 2, 2),
            "{stats:?}"
        );
        assert_eq!(stats.violations, 0, "{:?}", emulation.violation_reasons());
    }
}

/// `dpop` in a spec: a generated key of the `alg` named (or one read from `pem_file`) binds the
/// tokens, with nonces at both ends of the strict emulation answered (one retry each) and the
/// refresh carrying a proof; an unsupported `alg` or an unknown field is an error naming the
/// key, and an unreadable key file names `dpop.pem_file` without quoting the path.
#[tokio::test]
async fn dpop_in_a_spec_binds_tokens_to_its_key() {
    use tower_token_auth_emulation::{Dpop, DpopNonces};

    let start = || async {
        let config = Config {
            extensions: OAuthExtensions {
                dpop: Some(Dpop {
                    required: true,
                    nonces: Some(DpopNonces::default()),
                    ..Dpop::default()
                }),
                ..OAuthExtensions::default()
            },
            ..Config::default()
        };
        Emulation::start(Api::OAuth2, config).await.unwrap()
    };
    let c = Config::default();
    let credentials = Credentials::new()
        .username(&c.username)
        .password(&*c.password)
        .client_id(&c.client_id)
        .client_secret(&*c.client_secret);
    for dpop in [
        r#"dpop = { alg = "EdDSA" }"#.to_owned(),
        format!(
            r#"dpop = {{ alg = "ES256", pem_file = "{}" }}"#,
            key_path("es256.pem").display()
        ),
    ] {
        let emulation = start().await;
        let keys = format!("client_auth = \"client_secret_post\"\n{dpop}");
        let spec = password_grant(&keys, &emulation.base_url());
        let provider = built(&spec, &credentials).unwrap();
        // One login, one refresh, no violation (checked by the helper).
        let stats = login_and_refresh(&emulation, provider).await;
        // The token endpoint's nonce challenge once (the refresh knew it), the resource's once.
        assert_eq!(stats.dpop_nonce_challenges, 2, "{dpop}");
        // Login, refresh, two requests: every call and request proved the key.
        assert_eq!(stats.dpop_proofs, 4, "{dpop}");
    }

    let emulation = start().await;
    let errors = [
        (r#"dpop = { alg = "HS256" }"#, "dpop.alg"),
        (r#"dpop = { alg = "ES256", key = "x" }"#, "dpop"),
        (
            r#"dpop = { alg = "ES256", pem_file = "/nonexistent/SECRET.pem" }"#,
            "dpop.pem_file",
        ),
    ];
    for (dpop, at) in errors {
        let spec = password_grant(dpop, &emulation.base_url());
        let err = built(&spec, &credentials).unwrap_err();
        let shown = format!("{err}");
        assert!(shown.contains(at), "{dpop}: {shown}");
        assert!(!shown.contains(MARK), "{shown}");
    }
}
