//! A spec's mutual TLS client authentication (RFC 8705): `client_auth = "tls_client_auth"` and
//! `"self_signed_tls_client_auth"` send the `client_id` alone; the certificate is the auth
//! transport's. A secret, a key or an assertion beside them is an error naming the key and
//! quoting no value. (Over real TLS, with the demo: `tests/mtls/demo.rs`.)

use tower_token_auth::provider::{Credentials, HttpProvider, ProviderSpec, SpecError};
use tower_token_auth::ErrorKind;

use crate::spec::{credentials, login, MARK};

const METHODS: [&str; 2] = ["tls_client_auth", "self_signed_tls_client_auth"];

/// A client credentials grant at `https://idp.test/token`; `keys` in front, `login` in the call.
fn spec(keys: &str, login: &str) -> String {
    format!(
        "{keys}\n[login]\nurl = \"https://mtls.idp.test/token\"\n\
         form = {{ grant_type = \"client_credentials\" }}\n{login}"
    )
}

/// The credentials of a client that authenticates by its certificate: an id, no secret.
fn client_id_only() -> Credentials {
    Credentials::new().client_id("app")
}

fn built(text: &str, credentials: &Credentials) -> Result<HttpProvider, SpecError> {
    ProviderSpec::from_toml(text).and_then(|spec| spec.build(credentials))
}

/// An error that names `path`, says `says`, quotes no secret and is a configuration error.
fn check(err: SpecError, path: &str, says: &str) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(MARK), "{shown}");
    assert_eq!(err.path(), path, "{err}");
    assert!(err.message().contains(says), "{err}");
    let as_auth: tower_token_auth::AuthError = err.into();
    assert_eq!(as_auth.kind(), ErrorKind::Config);
}

#[tokio::test]
async fn mtls_methods_send_the_client_id_alone() {
    for method in METHODS {
        let text = spec(&format!("client_auth = \"{method}\""), "");
        let provider = built(&text, &client_id_only()).unwrap();
        assert_eq!(
            login(&provider).await,
            "POST https://mtls.idp.test/token\n\
             content-type: application/x-www-form-urlencoded\naccept: application/json\n\n\
             grant_type=client_credentials&client_id=app",
            "{method}"
        );
    }
}

#[test]
fn the_shipped_mtls_spec_reads_and_builds_with_a_client_id() {
    let text = include_str!("../../specs/oauth2-client-credentials-mtls.toml");
    let spec = ProviderSpec::from_toml(text).unwrap();
    assert_eq!(spec.name(), Some("oauth2-client-credentials-mtls"));
    spec.build(&client_id_only()).unwrap();
}

#[test]
fn a_secret_key_or_assertion_beside_an_mtls_method_is_an_error_naming_it() {
    for method in METHODS {
        let keys = format!("client_auth = \"{method}\"");
        let read = |keys: &str, login: &str| ProviderSpec::from_toml(&spec(keys, login));
        let with = |more: &str| format!("{keys}\n{more}");
        let cases = [
            (
                read(
                    &with("client_key = { pem_file = \"SECRET.pem\", alg = \"ES256\" }"),
                    "",
                ),
                "client_key",
                "remove `client_key`",
            ),
            (
                read(&with("client_assertion_file = \"/run/SECRET\""), ""),
                "client_assertion_file",
                "remove `client_assertion_file`",
            ),
            (
                read(
                    &keys,
                    "basic = { username = \"${client_id}\", password = \"${client_secret}\" }",
                ),
                "login.basic",
                "remove `basic`",
            ),
            (
                read(
                    &keys,
                    "headers = { authorization = \"Bearer ${env:SECRET}\" }",
                ),
                "login.headers.authorization",
                "remove the header",
            ),
            (
                read(
                    &keys,
                    "headers = { x-client-secret = \"${client_secret}\" }",
                ),
                "login",
                "sends no client secret: remove `${client_secret}`",
            ),
        ];
        for (result, path, says) in cases {
            check(result.unwrap_err(), path, says);
        }
        // A form field of the client's own secret.
        let text = format!(
            "{keys}\n[login]\nurl = \"https://mtls.idp.test/token\"\n\
             form = {{ grant_type = \"client_credentials\", client_secret = \"${{client_secret}}\" }}\n"
        );
        check(
            ProviderSpec::from_toml(&text).unwrap_err(),
            "login.form.client_secret",
            "remove the field",
        );

        // When built: a secret in the credentials, or no client id.
        let text = spec(&keys, "");
        check(
            built(&text, &credentials()).unwrap_err(),
            "client_auth",
            "sends no client secret",
        );
        check(
            built(&text, &Credentials::new()).unwrap_err(),
            "client_auth",
            "${client_id}: not given in the credentials",
        );
    }
}
