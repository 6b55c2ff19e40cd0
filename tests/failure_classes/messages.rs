//! Errors that name their cause, over real loopback HTTP: a transport that cannot speak the auth
//! URL's scheme fails fast as a configuration error with the fix in its message; a transient
//! transport failure puts its root cause in the top-level message; an auth endpoint answered with
//! a status backed off as configuration (a 404) is named, origin and path, never its query.
//!
//! The transient cases wait `max_wait` (kept short here) before failing: the tests assert what
//! the errors say and how many calls were made, never how long anything took.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::ServiceExt;
use tower_token_auth::provider::{oauth2, Credentials, HttpProvider, ProviderSpec};
use tower_token_auth::{AuthError, AuthLayer, AuthTransport, ErrorKind};

/// A plain-HTTP hyper-util client counting the requests it is given.
fn counting_client(sent: &Arc<AtomicU32>) -> impl AuthTransport {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let sent = Arc::clone(sent);
    tower::service_fn(move |request: Request<Full<Bytes>>| {
        sent.fetch_add(1, Ordering::SeqCst);
        client.clone().oneshot(request)
    })
}

/// A server on 127.0.0.1 answering every request with `status` and an OAuth2 error body;
/// counts the connections it accepts.
async fn server(status: StatusCode) -> (String, Arc<AtomicU32>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(
                                br#"{"error":"not_found","error_description":"no such realm"}"#,
                            )))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, accepted)
}

/// A JSON login at `url`, with an API key in its query; with `rejects`, its `rejects` table.
fn keyed_login(url: &str, rejects: Option<&str>) -> HttpProvider {
    let rejects = rejects.map_or_else(String::new, |r| format!("rejects = {r}\n"));
    let spec = format!(
        "[login]\nurl = \"{url}\"\nquery = {{ api_key = \"${{api_key}}\" }}\n\
         json = {{ username = \"alice\", password = \"${{password}}\" }}\n{rejects}"
    );
    let credentials = Credentials::new()
        .api_key("k-SECRET4")
        .password("pw-SECRET3");
    ProviderSpec::from_toml(&spec)
        .and_then(|spec| spec.build(&credentials))
        .expect("the spec builds")
}

/// An `https://` token URL given to hyper-util's plain-HTTP client: one auth call, failed at
/// once as a configuration error that says to build the client on a TLS connector; requests
/// fail fast on it, with no further call, instead of each waiting out `max_wait`.
#[tokio::test]
async fn an_https_url_through_a_plain_http_client_fails_fast_with_the_fix() {
    let (addr, accepted) = server(StatusCode::OK).await;
    let sent = Arc::new(AtomicU32::new(0));
    let provider =
        oauth2::Builder::client_credentials(&format!("https://{addr}/token"), "id", "cs-1234")
            .build()
            .unwrap();
    let layer = AuthLayer::builder(provider)
        .max_wait(Duration::from_secs(2))
        .build(counting_client(&sent));
    let handle = layer.handle();

    let err = handle.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    // Not retried: the request fails at once, without a backoff of its own to report.
    assert_eq!(err.retry_in(), None);
    assert_eq!(
        err.to_string(),
        format!(
            "login: invalid auth configuration: the auth transport cannot send to \
             https://{addr}/token (client error (Connect): invalid URL, scheme is not http): \
             build its client on a TLS connector, such as hyper-rustls's or hyper-tls's \
             `HttpsConnector` (`Client::builder(TokioExecutor::new()).build::<_, \
             Full<Bytes>>(https)`), or enable a TLS feature of reqwest for `ReqwestTransport`"
        )
    );
    // The connector's own error stays the source, for code that inspects it.
    let cause = std::error::Error::source(&err).expect("the transport's error");
    assert_eq!(cause.to_string(), "client error (Connect)");

    for _ in 0..5 {
        let again = handle.token().await.unwrap_err();
        assert!(again.retry_in().is_some(), "{again}");
        assert_eq!(again.kind(), ErrorKind::Config);
        assert!(again.to_string().contains("TLS connector"), "{again}");
    }
    assert_eq!(sent.load(Ordering::SeqCst), 1);
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
    assert_eq!(
        (
            layer.handle().metrics().logins,
            layer.handle().metrics().auth_failures
        ),
        (1, 1)
    );
}

/// The mirror mistake through reqwest: a plain `http://` auth URL given to an HTTPS-only
/// client is the same configuration error, at the first call, and nothing reaches the server.
///
/// (reqwest built without a TLS feature, given an `https://` URL, fails with hyper-util's
/// "scheme is not http", the case of the hyper-util test above; this suite builds reqwest with
/// rustls for the mutual TLS tests, so that build cannot be made here.)
#[cfg(feature = "reqwest")]
#[tokio::test]
async fn an_http_url_through_an_https_only_reqwest_client_fails_fast_too() {
    use tower_token_auth::reqwest::ReqwestTransport;

    let (addr, accepted) = server(StatusCode::OK).await;
    let provider =
        oauth2::Builder::client_credentials(&format!("http://{addr}/token"), "id", "cs-1234")
            .build()
            .unwrap();
    let transport = ReqwestTransport::new(reqwest::Client::builder().https_only(true)).unwrap();
    let layer = AuthLayer::builder(provider)
        .max_wait(Duration::from_secs(2))
        .build(transport);
    let err = layer.handle().token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(
        err.to_string().contains("URL scheme is not allowed"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("give the auth endpoint's `https://` URL"),
        "{err}"
    );
    assert!(!err.to_string().contains("cs-1234"), "{err}");
    assert!(layer
        .handle()
        .token()
        .await
        .unwrap_err()
        .retry_in()
        .is_some());
    assert_eq!(layer.handle().metrics().logins, 1);
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
}

/// An auth URL nobody listens on: retried as transient (rightly), and the request's
/// `Unavailable` error says why in its own message: the connection was refused. The URL's query
/// (an API key) is nowhere.
#[tokio::test]
async fn a_refused_connection_is_named_in_the_top_level_message() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let sent = Arc::new(AtomicU32::new(0));
    let layer = AuthLayer::builder(keyed_login(&format!("http://{addr}/token"), None))
        .max_wait(Duration::from_millis(300))
        .build(counting_client(&sent));

    let err = layer.handle().token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let shown = err.to_string();
    assert!(
        shown.starts_with(
            "no token: the auth server is unavailable after waiting 300ms; last failure: \
             login: auth request failed: client error (Connect): tcp connect error: "
        ),
        "{shown}"
    );
    assert!(shown.contains("Connection refused"), "{shown}");
    let last = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<AuthError>())
        .expect("the last failure");
    assert_eq!(last.kind(), ErrorKind::Transport, "{last:?}");
    let everything = format!("{err} {err:?}");
    assert!(!everything.contains("SECRET"), "{everything}");
    assert!(!everything.contains("api_key"), "{everything}");
    assert!(sent.load(Ordering::SeqCst) >= 1);
}

/// A 404 from the token endpoint is backed off as configuration, and its message names the
/// endpoint (origin and path), never the query with its API key; so does every request failing
/// fast on it.
#[tokio::test]
async fn a_404_names_the_endpoint_without_its_query() {
    let (addr, accepted) = server(StatusCode::NOT_FOUND).await;
    let sent = Arc::new(AtomicU32::new(0));
    let layer = AuthLayer::builder(keyed_login(&format!("http://{addr}/realms/x/token"), None))
        .build(counting_client(&sent));
    let handle = layer.handle();

    let err = handle.token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Status);
    assert_eq!(
        err.to_string(),
        format!(
            "login: unexpected auth server response (404 Not Found) from \
             http://{addr}/realms/x/token: not_found (no such realm)"
        )
    );
    let again = handle.token().await.unwrap_err();
    assert!(again.retry_in().is_some());
    assert!(
        again.to_string().starts_with(&format!(
            "login: unexpected auth server response (404 Not Found) from \
             http://{addr}/realms/x/token: not_found (no such realm); backing off"
        )),
        "{again}"
    );
    for shown in [format!("{err} {err:?}"), format!("{again} {again:?}")] {
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(!shown.contains("api_key"), "{shown}");
    }
    assert_eq!(sent.load(Ordering::SeqCst), 1);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

/// An API that takes every failure for a rejection (as union-service documents its errors):
/// its 404 is a rejection, and still names the endpoint, as no credentials were refused.
#[tokio::test]
async fn a_404_taken_for_a_rejection_names_the_endpoint_too() {
    let (addr, _accepted) = server(StatusCode::NOT_FOUND).await;
    let sent = Arc::new(AtomicU32::new(0));
    let provider = keyed_login(&format!("http://{addr}/auth/token"), Some("{ any = true }"));
    let layer = AuthLayer::builder(provider).build(counting_client(&sent));
    let err = layer.handle().token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LoginRejected);
    assert_eq!(
        err.to_string(),
        format!(
            "login rejected by the auth server (404 Not Found) from http://{addr}/auth/token: \
             not_found (no such realm)"
        )
    );
    // A refusal of the credentials is about them, not about the URL.
    let (addr, _accepted) = server(StatusCode::UNAUTHORIZED).await;
    let provider = keyed_login(&format!("http://{addr}/auth/token"), Some("{ any = true }"));
    let layer = AuthLayer::builder(provider).build(counting_client(&sent));
    let err = layer.handle().token().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "login rejected by the auth server (401 Unauthorized): not_found (no such realm)"
    );
}

/// A transient status (a 503) does not name the endpoint: the server was found, it is down.
#[tokio::test]
async fn a_transient_status_is_not_blamed_on_the_endpoint() {
    let (addr, _accepted) = server(StatusCode::SERVICE_UNAVAILABLE).await;
    let sent = Arc::new(AtomicU32::new(0));
    let layer = AuthLayer::builder(keyed_login(&format!("http://{addr}/token"), None))
        .max_wait(Duration::from_millis(100))
        .build(counting_client(&sent));
    let err = layer.handle().token().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        err.to_string().ends_with(
            "last failure: login: unexpected auth server response (503 Service Unavailable): \
             not_found (no such realm)"
        ),
        "{err}"
    );
}
