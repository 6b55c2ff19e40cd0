//! Shared helpers: a plain hyper-util client, the requests a correct client sends, and readers
//! of the answers.

pub(crate) use std::time::Duration;

pub(crate) use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
pub(crate) use base64::Engine as _;
pub(crate) use bytes::Bytes;
pub(crate) use http::header::{HeaderMap, HeaderValue};
pub(crate) use http::{Method, Request, StatusCode};
pub(crate) use http_body_util::{BodyExt, Full};
pub(crate) use hyper_util::client::legacy::connect::HttpConnector;
pub(crate) use hyper_util::client::legacy::Client;
pub(crate) use hyper_util::rt::TokioExecutor;
pub(crate) use serde_json::{json, Value};
pub(crate) use tokio::io::{AsyncReadExt, AsyncWriteExt};
pub(crate) use tokio::net::TcpStream;
pub(crate) use tower_token_auth_emulation::{Api, Config, Emulation, Fault, FaultKind, Stats};

pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Upper bound for any one request: a hang is a test failure, not a stuck CI job.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

pub(crate) const ALL: [Api; 6] = Api::ALL;

pub(crate) fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub(crate) async fn send(client: &HttpClient, request: Request<Full<Bytes>>) -> Reply {
    let response = tokio::time::timeout(DEADLINE, client.request(request))
        .await
        .expect("request timed out")
        .expect("request failed");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body failed").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub(crate) fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(body.into())).unwrap()
}

pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

pub(crate) fn post_form(url: &str, pairs: &[(&str, &str)]) -> Request<Full<Bytes>> {
    request(
        Method::POST,
        url,
        &[("content-type", "application/x-www-form-urlencoded")],
        form(pairs),
    )
}

pub(crate) fn post_json(url: &str, body: Value) -> Request<Full<Bytes>> {
    request(
        Method::POST,
        url,
        &[("content-type", "application/json")],
        body.to_string(),
    )
}

pub(crate) fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// RFC 6749 2.3.1 `client_secret_basic`: each half form-urlencoded before base64.
pub(crate) fn client_basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    basic(&enc(id), &enc(secret))
}

pub(crate) fn union_url(emulation: &Emulation, endpoint: &str) -> String {
    format!(
        "{}/union-service/auth/{endpoint}?api-version=1.0",
        emulation.base_url()
    )
}

/// The login request a correct client sends.
pub(crate) fn login_request(emulation: &Emulation) -> Request<Full<Bytes>> {
    let c = emulation.config();
    let base = emulation.base_url();
    match emulation.api() {
        Api::UnionService => request(
            Method::POST,
            &union_url(emulation, "token"),
            &[
                ("content-type", "application/json-patch+json"),
                ("accept", "application/vnd.restful+json"),
            ],
            json!({ "username": c.username, "password": c.password }).to_string(),
        ),
        Api::Simacan => post_form(
            &format!("{base}/auth/password"),
            &[("username", &c.username), ("password", &c.password)],
        ),
        Api::Oli => post_form(
            &base,
            &[
                ("grant_type", "password"),
                ("client_id", &c.client_id),
                ("username", &c.username),
                ("password", &c.password),
            ],
        ),
        Api::Tradecloud => request(
            Method::GET,
            &format!("{base}/authentication/login"),
            &[("authorization", &basic(&c.username, &c.password))],
            "",
        ),
        Api::Intergiro => post_json(
            &format!("{base}/auth/login"),
            json!({ "api_key": c.api_key }),
        ),
        Api::OAuth2 => {
            let mut req = post_form(
                &base,
                &[
                    ("grant_type", "password"),
                    ("username", &c.username),
                    ("password", &c.password),
                ],
            );
            req.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(&client_basic(&c.client_id, &c.client_secret)).unwrap(),
            );
            req
        }
    }
}

/// The refresh request a correct client sends.
pub(crate) fn refresh_request(emulation: &Emulation, refresh_token: &str) -> Request<Full<Bytes>> {
    let c = emulation.config();
    let base = emulation.base_url();
    match emulation.api() {
        Api::UnionService => request(
            Method::POST,
            &union_url(emulation, "refresh-token"),
            &[("content-type", "application/json-patch+json")],
            json!({ "refreshToken": refresh_token }).to_string(),
        ),
        Api::Simacan => post_form(
            &format!("{base}/auth/refresh"),
            &[("refresh_token", refresh_token)],
        ),
        Api::Oli => post_form(
            &base,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &c.client_id),
                ("refresh_token", refresh_token),
            ],
        ),
        Api::Tradecloud => request(
            Method::GET,
            &format!("{base}/authentication/refresh"),
            &[("refresh-token", refresh_token)],
            "",
        ),
        Api::Intergiro => post_json(
            &format!("{base}/auth/refresh"),
            json!({ "refresh_token": refresh_token }),
        ),
        Api::OAuth2 => post_form(
            &base,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
            ],
        ),
    }
}

/// The access and refresh token of a successful login or refresh answer.
pub(crate) fn tokens(api: Api, reply: &Reply) -> (String, Option<String>) {
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply);
    if api == Api::Tradecloud {
        return (
            reply.header("set-authorization").unwrap().to_owned(),
            reply.header("set-refresh-token").map(str::to_owned),
        );
    }
    let body = reply.json();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().map(str::to_owned),
    )
}

pub(crate) async fn login(client: &HttpClient, emulation: &Emulation) -> (String, String) {
    let reply = send(client, login_request(emulation)).await;
    let (access, refresh) = tokens(emulation.api(), &reply);
    (access, refresh.expect("login issues a refresh token"))
}

pub(crate) async fn resource(
    client: &HttpClient,
    emulation: &Emulation,
    authorization: Option<&str>,
) -> Reply {
    let headers: Vec<(&str, &str)> = authorization
        .map(|value| vec![("authorization", value)])
        .unwrap_or_default();
    send(
        client,
        request(Method::GET, &emulation.resource_url(), &headers, ""),
    )
    .await
}

pub(crate) async fn resource_status(
    client: &HttpClient,
    emulation: &Emulation,
    access: &str,
) -> StatusCode {
    resource(client, emulation, Some(&format!("Bearer {access}")))
        .await
        .status
}

pub(crate) fn claims(jwt: &str) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWT: {jwt}");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

pub(crate) fn stats(
    logins: u64,
    refreshes: u64,
    rejected_logins: u64,
    rejected_refreshes: u64,
    violations: u64,
) -> (u64, u64, u64, u64, u64) {
    (
        logins,
        refreshes,
        rejected_logins,
        rejected_refreshes,
        violations,
    )
}

pub(crate) fn auth_stats(s: Stats) -> (u64, u64, u64, u64, u64) {
    (
        s.logins,
        s.refreshes,
        s.rejected_logins,
        s.rejected_refreshes,
        s.violations,
    )
}

pub(crate) async fn start(api: Api) -> Emulation {
    Emulation::start(api, Config::default()).await.unwrap()
}
