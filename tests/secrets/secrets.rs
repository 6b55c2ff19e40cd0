//! Secrets an auth server echoes back never reach an error or a log (ARCHITECTURE.md
//! invariant 11), over real HTTP: a server on 127.0.0.1 answers every auth call with the request it got
//! (body, headers, request line), in a 401, a 400, a 404 or a 503, as an OAuth2 error body
//! (in `error_description` or in `error` itself) or as plain text, as it came, uppercased, or
//! with non-ASCII characters `\u`-escaped. Every error's `Display` and `Debug`, down its whole
//! source chain, and every tracing event are searched for each secret, case-insensitively.
//!
//! Its test binary (`tests/secrets/`) captures tracing output in every test (see
//! `support::capture`).

use std::convert::Infallible;
use std::error::Error as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower_token_auth::provider::{oauth2, Credentials, HttpProvider, ProviderSpec};
use tower_token_auth::{AuthError, AuthLayer, ErrorKind};

use crate::support::capture::Capture;

/// How the server wraps what it echoes.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// `{"error":"invalid_grant","error_description":"<echo>"}`
    Description,
    /// `{"error":"<echo>"}`
    Error,
    /// The echo as the whole `text/plain` body.
    Plain,
}

#[derive(Clone, Copy, Debug)]
struct Reply {
    status: u16,
    shape: Shape,
    uppercase: bool,
    /// Non-ASCII characters as `\uXXXX`, as a server's JSON encoder with `ensure_ascii` writes
    /// them.
    ascii: bool,
}

/// An auth server on 127.0.0.1 that answers every call with what it was sent.
struct Echo {
    url: String,
    calls: Arc<AtomicU32>,
    reply: Arc<Mutex<Reply>>,
}

impl Echo {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let calls = Arc::new(AtomicU32::new(0));
        let reply = Arc::new(Mutex::new(Reply {
            status: 401,
            shape: Shape::Description,
            uppercase: false,
            ascii: false,
        }));
        let (counter, replies) = (Arc::clone(&calls), Arc::clone(&reply));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (counter, replies) = (Arc::clone(&counter), Arc::clone(&replies));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let reply = *replies.lock().unwrap();
                        async move { Ok::<_, Infallible>(echo(request, reply).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, calls, reply }
    }

    fn set(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }
}

async fn echo(request: Request<Incoming>, reply: Reply) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    // Most telling first, as messages are shortened: the body, the credentials header, the rest.
    let mut echo = format!("{}\n", String::from_utf8_lossy(&body));
    let mut headers: Vec<_> = parts.headers.iter().collect();
    headers.sort_by_key(|(name, _)| *name != http::header::AUTHORIZATION);
    for (name, value) in headers {
        echo.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    echo.push_str(&format!("{} {}", parts.method, parts.uri));
    if reply.uppercase {
        echo = echo.to_uppercase();
    }
    if reply.ascii {
        echo = echo
            .chars()
            .map(|c| match c.is_ascii() {
                true => c.to_string(),
                false => {
                    let mut units = [0; 2];
                    c.encode_utf16(&mut units)
                        .iter()
                        .map(|u| format!("\\u{u:04x}"))
                        .collect()
                }
            })
            .collect();
    }
    let (content_type, body) = match reply.shape {
        Shape::Description => (
            "application/json",
            serde_json::json!({"error": "invalid_grant", "error_description": echo}).to_string(),
        ),
        Shape::Error => (
            "application/json",
            serde_json::json!({ "error": echo }).to_string(),
        ),
        Shape::Plain => ("text/plain", echo),
    };
    Response::builder()
        .status(reply.status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A layer on `provider`, sending through a real client, giving up on transient failures soon.
fn layer(provider: HttpProvider) -> AuthLayer {
    AuthLayer::builder(provider)
        .max_wait(Duration::from_millis(150))
        .build(client())
}

/// `Display` and `Debug` of `err` and of every error down its source chain.
fn shown(err: &AuthError) -> String {
    let mut text = format!("{err}\n{err:?}");
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(&format!("\n{s}\n{s:?}"));
        source = s.source();
    }
    text
}

/// The secrets that `text` shows, case-insensitively.
fn leaked<'a>(text: &str, secrets: &'a [String]) -> Vec<&'a str> {
    let lower = text.to_lowercase();
    secrets
        .iter()
        .filter(|secret| lower.contains(&secret.to_lowercase()))
        .map(String::as_str)
        .collect()
}

fn assert_hidden(text: &str, secrets: &[String], context: &str) {
    let shown = leaked(text, secrets);
    assert!(shown.is_empty(), "{shown:?} shown ({context}):\n{text}");
}

/// Every status, shape and transformation of the echo (36 in all), against a fresh layer each:
/// the login fails, and nothing it shows holds any of `secrets`.
async fn every_echo(echo: &Echo, provider: &HttpProvider, secrets: &[String]) {
    let before = echo.calls.load(Ordering::SeqCst);
    let mut leaks = Vec::new();
    let mut cases = 0;
    for status in [401, 400, 404, 503] {
        for shape in [Shape::Description, Shape::Error, Shape::Plain] {
            for (uppercase, ascii) in [(false, false), (true, false), (false, true)] {
                let reply = Reply {
                    status,
                    shape,
                    uppercase,
                    ascii,
                };
                echo.set(reply);
                cases += 1;
                let err = layer(provider.clone()).handle().token().await.unwrap_err();
                let expected = match status {
                    401 | 400 => ErrorKind::LoginRejected,
                    404 => ErrorKind::Status,
                    _ => ErrorKind::Unavailable,
                };
                assert_eq!(err.kind(), expected, "{reply:?}: {err}");
                let shown = shown(&err);
                let secrets = leaked(&shown, secrets);
                if !secrets.is_empty() {
                    leaks.push(format!("{reply:?} shows {secrets:?}:\n{shown}"));
                }
            }
        }
    }
    assert_eq!(cases, 36);
    // One call per case, more for the retried 503s.
    assert!(echo.calls.load(Ordering::SeqCst) - before >= 36);
    assert!(
        leaks.is_empty(),
        "{} of {cases} echoes showed a secret:\n{}",
        leaks.len(),
        leaks.join("\n\n")
    );
}

/// A JSON login at `url` (only), sending user `alice` and `password`, and with `api_key`, the
/// key in its query.
fn json_login(url: &str, api_key: Option<&str>, password: &str) -> HttpProvider {
    let query = if api_key.is_some() {
        "query = { api_key = \"${api_key}\" }\n"
    } else {
        ""
    };
    let spec = format!(
        "[login]\nurl = \"{url}\"\n{query}json = {{ username = \"alice\", password = \"${{password}}\" }}\n"
    );
    let mut credentials = Credentials::new().password(password);
    if let Some(key) = api_key {
        credentials = credentials.api_key(key);
    }
    ProviderSpec::from_toml(&spec)
        .and_then(|spec| spec.build(&credentials))
        .expect("the spec builds")
}

/// A JSON login whose password needs JSON escapes (and an API key in the query): echoed in every
/// way, it is never shown.
#[tokio::test]
async fn an_echoed_json_login_shows_no_secret() {
    let (capture, _guard) = Capture::start();
    let echo = Echo::start().await;
    let password = r#"Pq"x\y-SECRET9"#;
    let provider = json_login(&echo.url, Some("k-SECRET5"), password);
    let secrets = [password, r#"Pq\"x\\y-SECRET9"#, "SECRET9", "k-SECRET5"].map(String::from);
    every_echo(&echo, &provider, &secrets).await;
    let logs = capture.text();
    assert!(logs.contains("auth call failed"), "{logs}");
    assert_hidden(&logs, &secrets, "logs");
}

/// A password with non-ASCII characters, which a Python server's JSON escapes
/// (`p\u00e4ssw\u00f6rd-SECRET6`): echoed in every way, it is never shown.
#[tokio::test]
async fn an_echoed_non_ascii_password_shows_no_secret() {
    let (capture, _guard) = Capture::start();
    let echo = Echo::start().await;
    let password = "pässwörd-SECRET6";
    let provider = json_login(&echo.url, None, password);
    let secrets = [password, "SECRET6", "p\\u00e4ssw"].map(String::from);
    every_echo(&echo, &provider, &secrets).await;
    let logs = capture.text();
    assert!(logs.contains("auth call failed"), "{logs}");
    assert_hidden(&logs, &secrets, "logs");
}

/// A form login (`password=hunter2%21SECRET8`) from a confidential client with HTTP Basic
/// (`Basic base64(apiclient:cs-SECRET7)`): echoed in every way, neither is shown.
#[tokio::test]
async fn an_echoed_form_login_with_basic_shows_no_secret() {
    let (capture, _guard) = Capture::start();
    let echo = Echo::start().await;
    let provider = oauth2::Builder::password(&echo.url, "alice", "hunter2!SECRET8")
        .confidential_client("apiclient", "cs-SECRET7")
        .scope("read write")
        .build()
        .unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode("apiclient:cs-SECRET7");
    let secrets = [
        "hunter2!SECRET8".to_owned(),
        "hunter2%21SECRET8".to_owned(),
        "SECRET8".to_owned(),
        "SECRET7".to_owned(),
        basic.trim_end_matches('=').to_owned(),
    ];
    every_echo(&echo, &provider, &secrets).await;
    let logs = capture.text();
    assert!(logs.contains("auth call failed"), "{logs}");
    assert_hidden(&logs, &secrets, "logs");
}

/// A 3-character password cannot be redacted in place without being guessable: the server's
/// text is withheld whole, in every echo.
#[tokio::test]
async fn an_echoed_short_password_withholds_the_server_text() {
    let (capture, _guard) = Capture::start();
    let echo = Echo::start().await;
    let provider = oauth2::Builder::password(&echo.url, "alice", "Zq9")
        .public_client("apiclient")
        .build()
        .unwrap();
    let secrets = ["Zq9".to_owned()];
    every_echo(&echo, &provider, &secrets).await;
    echo.set(Reply {
        status: 401,
        shape: Shape::Description,
        uppercase: true,
        ascii: false,
    });
    let err = layer(provider).handle().token().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "login rejected by the auth server (401 Unauthorized): [text withheld: it may quote a \
         credential]"
    );
    let logs = capture.text();
    assert!(logs.contains("auth call failed"), "{logs}");
    assert_hidden(&logs, &secrets, "logs");
}

/// A provider's own error may quote the answer it could not parse, and so the request the
/// answer echoed: the sent values are redacted from it too.
#[tokio::test]
async fn a_provider_parse_error_quoting_the_echo_shows_no_secret() {
    let (capture, _guard) = Capture::start();
    let echo = Echo::start().await;
    echo.set(Reply {
        status: 200,
        shape: Shape::Plain,
        uppercase: false,
        ascii: false,
    });
    let provider = json_login(&echo.url, None, "hunter2!SECRET8").parse_with(|_, response| {
        Err(AuthError::malformed(format!(
            "unexpected answer {}",
            String::from_utf8_lossy(response.body())
        )))
    });
    let err = layer(provider).handle().token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let shown = shown(&err);
    assert!(
        shown.contains(r#"unexpected answer {"password":"[redacted]","username":"[redacted]"}"#),
        "{shown}"
    );
    let secrets = ["SECRET8".to_owned()];
    assert_hidden(&shown, &secrets, "parse error");
    assert_hidden(&capture.text(), &secrets, "logs");
}

/// A sent value is redacted where it stands as a whole word, not inside a longer one: a user
/// named "user" leaves "username" alone.
#[tokio::test]
async fn whole_values_are_redacted_not_parts_of_words() {
    let (_capture, _guard) = Capture::start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    let body = r#"{"error":"invalid_grant","error_description":"username or password wrong for user"}"#;
                    Ok::<_, Infallible>(
                        Response::builder()
                            .status(StatusCode::UNAUTHORIZED)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(body.as_bytes())))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let provider = oauth2::Builder::password(&url, "user", "hunter2!SECRET8")
        .public_client("apiclient")
        .build()
        .unwrap();
    let err = layer(provider).handle().token().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "login rejected by the auth server (401 Unauthorized): invalid_grant (username or \
         password wrong for [redacted])"
    );
}
