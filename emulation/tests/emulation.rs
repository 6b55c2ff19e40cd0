//! The emulations driven by a plain hyper-util client (never through the layer): each API's
//! endpoints and quirks, rotation and reuse, revocation, real-time expiry, faults, malformed input
//! and concurrent load.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower_token_auth_emulation::{Api, Config, Emulation, Fault, FaultKind, Stats};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Upper bound for any one request: a hang is a test failure, not a stuck CI job.
const DEADLINE: Duration = Duration::from_secs(10);

const ALL: [Api; 6] = Api::ALL;

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn send(client: &HttpClient, request: Request<Full<Bytes>>) -> Reply {
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

fn request(
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

fn form(pairs: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

fn post_form(url: &str, pairs: &[(&str, &str)]) -> Request<Full<Bytes>> {
    request(
        Method::POST,
        url,
        &[("content-type", "application/x-www-form-urlencoded")],
        form(pairs),
    )
}

fn post_json(url: &str, body: Value) -> Request<Full<Bytes>> {
    request(
        Method::POST,
        url,
        &[("content-type", "application/json")],
        body.to_string(),
    )
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// RFC 6749 2.3.1 `client_secret_basic`: each half form-urlencoded before base64.
fn client_basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    basic(&enc(id), &enc(secret))
}

fn union_url(emulation: &Emulation, endpoint: &str) -> String {
    format!(
        "{}/union-service/auth/{endpoint}?api-version=1.0",
        emulation.base_url()
    )
}

/// The login request a correct client sends.
fn login_request(emulation: &Emulation) -> Request<Full<Bytes>> {
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
fn refresh_request(emulation: &Emulation, refresh_token: &str) -> Request<Full<Bytes>> {
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
fn tokens(api: Api, reply: &Reply) -> (String, Option<String>) {
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

async fn login(client: &HttpClient, emulation: &Emulation) -> (String, String) {
    let reply = send(client, login_request(emulation)).await;
    let (access, refresh) = tokens(emulation.api(), &reply);
    (access, refresh.expect("login issues a refresh token"))
}

async fn resource(
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

async fn resource_status(client: &HttpClient, emulation: &Emulation, access: &str) -> StatusCode {
    resource(client, emulation, Some(&format!("Bearer {access}")))
        .await
        .status
}

fn claims(jwt: &str) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWT: {jwt}");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

fn stats(
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

fn auth_stats(s: Stats) -> (u64, u64, u64, u64, u64) {
    (
        s.logins,
        s.refreshes,
        s.rejected_logins,
        s.rejected_refreshes,
        s.violations,
    )
}

async fn start(api: Api) -> Emulation {
    Emulation::start(api, Config::default()).await.unwrap()
}

// ------------------------------------------------------------------------------------------------
// Every API
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn urls_follow_the_documents() {
    for (api, base, resource) in [
        (Api::UnionService, "", "/union-service/resource"),
        (Api::Simacan, "/api/v1", "/api/v1/resource"),
        (
            Api::Oli,
            "/auth/realms/api/protocol/openid-connect/token",
            "/api/resource",
        ),
        (Api::Tradecloud, "/v2", "/v2/resource"),
        (Api::Intergiro, "/v3", "/v3/resource"),
        (Api::OAuth2, "/oauth/token", "/resource"),
    ] {
        let emulation = start(api).await;
        let host = format!("http://127.0.0.1:{}", emulation.addr().port());
        assert_eq!(emulation.api(), api);
        assert_eq!(emulation.base_url(), format!("{host}{base}"));
        assert_eq!(emulation.resource_url(), format!("{host}{resource}"));
    }
}

#[tokio::test]
async fn every_api_logs_in_refreshes_and_serves_the_resource() {
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        let (access, refresh) = login(&client, &emulation).await;
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::OK
        );
        if api == Api::Intergiro {
            // Refreshing is allowed only once the access token is dead.
            emulation.revoke_access_tokens();
        }
        let reply = send(&client, refresh_request(&emulation, &refresh)).await;
        let (new_access, new_refresh) = tokens(api, &reply);
        assert_ne!(new_access, access, "{api:?}");
        assert_ne!(new_refresh.as_deref(), Some(refresh.as_str()), "{api:?}");
        assert_eq!(
            resource_status(&client, &emulation, &new_access).await,
            StatusCode::OK
        );
        let s = emulation.stats();
        assert_eq!(auth_stats(s), stats(1, 1, 0, 0, 0), "{api:?}");
        assert_eq!((s.resource_ok, s.resource_unauthorized), (2, 0), "{api:?}");
    }
}

#[tokio::test]
async fn refresh_tokens_are_single_use_and_reuse_is_a_violation() {
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        let (_, refresh) = login(&client, &emulation).await;
        emulation.revoke_access_tokens();
        let first = send(&client, refresh_request(&emulation, &refresh)).await;
        assert_eq!(first.status, StatusCode::OK, "{api:?}");
        let again = send(&client, refresh_request(&emulation, &refresh)).await;
        let expected = match api {
            Api::UnionService => StatusCode::INTERNAL_SERVER_ERROR,
            Api::Oli | Api::OAuth2 => StatusCode::BAD_REQUEST,
            _ => StatusCode::UNAUTHORIZED,
        };
        assert_eq!(again.status, expected, "{api:?}");
        let s = emulation.stats();
        assert_eq!(auth_stats(s), stats(1, 1, 0, 0, 1), "{api:?}");
        assert_eq!(s.refresh_token_reuse, 1, "{api:?}");
    }
}

#[tokio::test]
async fn tokens_are_jwts_with_exp_iat_jti_and_sub() {
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        let (access, refresh) = login(&client, &emulation).await;
        let (a, r) = (claims(&access), claims(&refresh));
        let (iat, exp) = (a["iat"].as_u64().unwrap(), a["exp"].as_u64().unwrap());
        assert!((300..=301).contains(&(exp - iat)), "{api:?}: {a}");
        let (iat, exp) = (r["iat"].as_u64().unwrap(), r["exp"].as_u64().unwrap());
        assert!((1800..=1801).contains(&(exp - iat)), "{api:?}: {r}");
        assert_ne!(a["jti"], r["jti"]);
        assert!(a["sub"].as_str().is_some_and(|s| !s.is_empty()));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(iat.abs_diff(now) <= 2);
    }
}

#[tokio::test]
async fn revoked_tokens_die_and_their_rejection_is_not_a_violation() {
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        let (access, refresh) = login(&client, &emulation).await;
        emulation.revoke_access_tokens();
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::UNAUTHORIZED
        );
        emulation.revoke_refresh_tokens();
        let reply = send(&client, refresh_request(&emulation, &refresh)).await;
        assert!(reply.status.is_client_error() || reply.status.is_server_error());
        // The documented fallback: log in again.
        let (access, _) = login(&client, &emulation).await;
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::OK
        );
        let s = emulation.stats();
        assert_eq!(auth_stats(s), stats(2, 0, 0, 1, 0), "{api:?}");
        assert_eq!((s.resource_ok, s.resource_unauthorized), (1, 1), "{api:?}");
    }
}

#[tokio::test]
async fn random_revocation_kills_the_token_an_answer_served_and_keeps_that_answer() {
    let client = client();
    for api in ALL {
        let emulation = Emulation::start(
            api,
            Config {
                fault_seed: Some(5),
                ..Config::default()
            },
        )
        .await
        .unwrap();
        let (access, _) = login(&client, &emulation).await;
        for _ in 0..20 {
            assert_eq!(
                resource_status(&client, &emulation, &access).await,
                StatusCode::OK
            );
        }
        assert_eq!(emulation.revocations(), 0, "{api:?}: off by default");

        // Every answer revokes: the first request is served, and it is held so that the second
        // one, sent while the first is still in flight, meets the revoked token.
        emulation.set_revocation_rate(1.0);
        emulation.hold_resource_requests(1);
        let first = tokio::spawn({
            let (client, url) = (client.clone(), emulation.resource_url());
            let authorization = format!("Bearer {access}");
            async move {
                let headers = [("authorization", authorization.as_str())];
                let request = request(Method::GET, &url, &headers, "");
                send(&client, request).await.status
            }
        });
        tokio::time::timeout(DEADLINE, emulation.wait_for_held_requests(1))
            .await
            .expect("the first request arrives");
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::UNAUTHORIZED,
            "{api:?}"
        );
        emulation.release_held_requests(1);
        assert_eq!(first.await.unwrap(), StatusCode::OK, "{api:?}");
        // A 401 revokes nothing: the count is the one token served.
        assert_eq!(emulation.revocations(), 1, "{api:?}");

        // A new token dies after its first answer too; the auth endpoints are untouched.
        let (again, _) = login(&client, &emulation).await;
        assert_eq!(
            resource_status(&client, &emulation, &again).await,
            StatusCode::OK
        );
        assert_eq!(
            resource_status(&client, &emulation, &again).await,
            StatusCode::UNAUTHORIZED
        );
        let s = emulation.stats();
        assert_eq!(emulation.revocations(), 2, "{api:?}");
        assert_eq!((s.resource_ok, s.resource_unauthorized), (22, 2), "{api:?}");
        assert_eq!(auth_stats(s), stats(2, 0, 0, 0, 0), "{api:?}");

        emulation.set_revocation_rate(0.0);
        let (last, _) = login(&client, &emulation).await;
        for _ in 0..20 {
            assert_eq!(
                resource_status(&client, &emulation, &last).await,
                StatusCode::OK
            );
        }
        assert_eq!(emulation.revocations(), 2, "{api:?}: off again");
    }
}

#[tokio::test]
async fn random_revocation_is_drawn_per_answer_at_the_rate() {
    let client = client();
    let emulation = Emulation::start(
        Api::OAuth2,
        Config {
            fault_seed: Some(8),
            ..Config::default()
        },
    )
    .await
    .unwrap();
    emulation.set_revocation_rate(0.25);
    // One new token per answer served: each 200 draws once.
    let (mut served, mut revoked) = (0, 0);
    let (mut access, _) = login(&client, &emulation).await;
    while served < 400 {
        match resource_status(&client, &emulation, &access).await {
            StatusCode::OK => served += 1,
            _ => {
                revoked += 1;
                access = login(&client, &emulation).await.0;
            }
        }
    }
    // Each revocation showed as exactly one 401, bar the last token's, which may be dead unseen.
    assert!(
        emulation.revocations() == revoked || emulation.revocations() == revoked + 1,
        "{} revoked, {revoked} seen",
        emulation.revocations()
    );
    assert!(
        (60..=140).contains(&emulation.revocations()),
        "{} of 400 at 25 %",
        emulation.revocations()
    );
}

#[tokio::test]
async fn tokens_expire_in_real_time() {
    // The APIs run side by side: the test is mostly sleeping.
    let mut runs = tokio::task::JoinSet::new();
    for api in ALL {
        runs.spawn(expire_in_real_time(api));
    }
    while let Some(run) = runs.join_next().await {
        run.unwrap();
    }
}

async fn expire_in_real_time(api: Api) {
    let client = client();
    let config = Config {
        access_lifetime: Duration::from_millis(150),
        refresh_lifetime: Duration::from_millis(600),
        ..Config::default()
    };
    let emulation = Emulation::start(api, config).await.unwrap();
    let (access, refresh) = login(&client, &emulation).await;
    assert_eq!(
        resource_status(&client, &emulation, &access).await,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        resource_status(&client, &emulation, &access).await,
        StatusCode::UNAUTHORIZED,
        "{api:?}"
    );
    // After access expiry even Intergiro accepts a refresh.
    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    let (_, refresh) = tokens(api, &reply);
    tokio::time::sleep(Duration::from_millis(650)).await;
    let reply = send(&client, refresh_request(&emulation, &refresh.unwrap())).await;
    assert_ne!(reply.status, StatusCode::OK, "{api:?}");
    assert_eq!(
        auth_stats(emulation.stats()),
        stats(1, 1, 0, 1, 0),
        "{api:?}"
    );
}

#[tokio::test]
async fn resource_takes_only_live_bearer_tokens_case_insensitively() {
    let client = client();
    let emulation = start(Api::Simacan).await;
    let (access, _) = login(&client, &emulation).await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let reply = resource(&client, &emulation, Some(&format!("{scheme} {access}"))).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["ok"], true);
    }
    let reply = resource(&client, &emulation, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    for bad in [
        format!("Token {access}"),
        "Bearer".to_owned(),
        "Bearer not-a-token".to_owned(),
        format!("Bearer {access}x"),
    ] {
        let reply = resource(&client, &emulation, Some(&bad)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(r#"Bearer error="invalid_token""#)
        );
    }
    // A token of another emulation of the same API is unknown here.
    let other = start(Api::Simacan).await;
    let (foreign, _) = login(&client, &other).await;
    assert_eq!(
        resource_status(&client, &emulation, &foreign).await,
        StatusCode::UNAUTHORIZED
    );
    // Any method, with a body.
    let reply = send(
        &client,
        request(
            Method::POST,
            &emulation.resource_url(),
            &[("authorization", &format!("Bearer {access}"))],
            vec![7u8; 100_000],
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["body_bytes"], 100_000);
    let s = emulation.stats();
    assert_eq!((s.resource_ok, s.resource_unauthorized), (4, 6));
    assert_eq!(s.violations, 0);
}

// ------------------------------------------------------------------------------------------------
// Union Service
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn union_service_answers_keycloak_json() {
    let client = client();
    let emulation = start(Api::UnionService).await;
    let body = send(&client, login_request(&emulation)).await.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["refresh_expires_in"], 1800);
    assert_eq!(body["not-before-policy"], 0);
    assert!(body["session_state"].as_str().is_some());
    assert!(body["scope"].as_str().is_some());
    // Plain application/json, as the prose says, is accepted too.
    let c = emulation.config();
    let reply = send(
        &client,
        post_json(
            &union_url(&emulation, "token"),
            json!({ "username": c.username, "password": c.password }),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(auth_stats(emulation.stats()), stats(2, 0, 0, 0, 0));
}

#[tokio::test]
async fn union_service_failures_are_500_and_api_version_is_required() {
    let client = client();
    let emulation = start(Api::UnionService).await;
    let c = emulation.config().clone();

    let bad = json!({ "username": c.username, "password": "wrong" });
    let reply = send(&client, post_json(&union_url(&emulation, "token"), bad)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.json().is_object());

    let reply = send(&client, refresh_request(&emulation, "unknown")).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(auth_stats(emulation.stats()), stats(0, 0, 1, 1, 0));

    let good = json!({ "username": c.username, "password": c.password });
    let no_version = format!("{}/union-service/auth/token", emulation.base_url());
    let reply = send(&client, post_json(&no_version, good.clone())).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = send(
        &client,
        post_json(&format!("{no_version}?api-version=9.9"), good.clone()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(emulation.stats().violations, 2);

    let reply = send(
        &client,
        request(
            Method::POST,
            &union_url(&emulation, "token"),
            &[("content-type", "text/plain")],
            good.to_string(),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);

    let (_, refresh) = login(&client, &emulation).await;
    let leaky = json!({ "refreshToken": refresh, "username": c.username, "password": c.password });
    let reply = send(
        &client,
        post_json(&union_url(&emulation, "refresh-token"), leaky),
    )
    .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    let reply = send(
        &client,
        post_json(
            &union_url(&emulation, "refresh-token"),
            json!({ "refresh_token": refresh }),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(auth_stats(emulation.stats()), stats(1, 0, 1, 1, 5));
}

// ------------------------------------------------------------------------------------------------
// Simacan
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn simacan_answers_lowercase_bearer_with_an_id_token() {
    let client = client();
    let emulation = start(Api::Simacan).await;
    let reply = send(&client, login_request(&emulation)).await;
    let body = reply.json();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 300);
    claims(body["id_token"].as_str().unwrap());
    assert_eq!(reply.header("cache-control"), Some("no-store"));

    let c = emulation.config().clone();
    let bad = post_form(
        &format!("{}/auth/password", emulation.base_url()),
        &[("username", &c.username), ("password", "nope")],
    );
    assert_eq!(send(&client, bad).await.status, StatusCode::UNAUTHORIZED);
    let reply = send(&client, refresh_request(&emulation, "expired-or-unknown")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(auth_stats(emulation.stats()), stats(1, 0, 1, 1, 0));
}

#[tokio::test]
async fn simacan_wants_forms_not_json() {
    let client = client();
    let emulation = start(Api::Simacan).await;
    let c = emulation.config().clone();
    let base = emulation.base_url();
    let reply = send(
        &client,
        post_json(
            &format!("{base}/auth/password"),
            json!({ "username": c.username, "password": c.password }),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (_, refresh) = login(&client, &emulation).await;
    let reply = send(
        &client,
        post_json(
            &format!("{base}/auth/refresh"),
            json!({ "refresh_token": refresh }),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let leaky = post_form(
        &format!("{base}/auth/refresh"),
        &[("refresh_token", &refresh), ("password", &c.password)],
    );
    assert_eq!(send(&client, leaky).await.status, StatusCode::BAD_REQUEST);
    let twice = request(
        Method::POST,
        &format!("{base}/auth/refresh"),
        &[("content-type", "application/x-www-form-urlencoded")],
        format!("refresh_token={refresh}&refresh_token={refresh}"),
    );
    assert_eq!(send(&client, twice).await.status, StatusCode::BAD_REQUEST);
    // None of that consumed the refresh token.
    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(auth_stats(emulation.stats()), stats(1, 1, 0, 0, 4));
}

// ------------------------------------------------------------------------------------------------
// OLI (Keycloak)
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn oli_speaks_keycloak() {
    let client = client();
    let emulation = start(Api::Oli).await;
    let body = send(&client, login_request(&emulation)).await.json();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["scope"], "oli_user_role");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["refresh_expires_in"], 1800);
    assert!(body["not-before-policy"].is_number());
    assert!(body["session_state"]
        .as_str()
        .is_some_and(|s| s.len() == 36));
}

#[tokio::test]
async fn oli_errors_are_keycloak_errors() {
    let client = client();
    let emulation = start(Api::Oli).await;
    let c = emulation.config().clone();
    let url = emulation.base_url();
    let token_call = |pairs: &[(&str, &str)]| post_form(&url, pairs);

    let reply = send(&client, refresh_request(&emulation, "dead")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json(),
        json!({ "error": "invalid_grant", "error_description": "Token is not active" })
    );

    let reply = send(
        &client,
        token_call(&[
            ("grant_type", "password"),
            ("client_id", &c.client_id),
            ("username", &c.username),
            ("password", "wrong"),
        ]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.json(),
        json!({ "error": "invalid_grant", "error_description": "Invalid user credentials" })
    );

    let reply = send(
        &client,
        token_call(&[
            ("grant_type", "password"),
            ("client_id", "someone-else"),
            ("username", &c.username),
            ("password", &c.password),
        ]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_client");
    assert_eq!(auth_stats(emulation.stats()), stats(0, 0, 2, 1, 0));

    // Misuse from here on.
    let reply = send(
        &client,
        token_call(&[
            ("grant_type", "password"),
            ("username", &c.username),
            ("password", &c.password),
        ]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_client");

    let reply = send(
        &client,
        token_call(&[
            ("grant_type", "authorization_code"),
            ("client_id", &c.client_id),
        ]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "unsupported_grant_type");

    let reply = send(&client, token_call(&[("client_id", &c.client_id)])).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_request");

    let reply = send(
        &client,
        token_call(&[("grant_type", "refresh_token"), ("client_id", &c.client_id)]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_request");

    let (_, refresh) = login(&client, &emulation).await;
    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_grant");
    assert_eq!(auth_stats(emulation.stats()), stats(1, 1, 2, 1, 5));
}

// ------------------------------------------------------------------------------------------------
// Tradecloud
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn tradecloud_puts_tokens_in_headers_only() {
    let client = client();
    let emulation = start(Api::Tradecloud).await;
    let reply = send(&client, login_request(&emulation)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    let access = reply.header("set-authorization").unwrap().to_owned();
    let refresh = reply.header("set-refresh-token").unwrap().to_owned();
    assert!(claims(&access)["exp"].is_u64());
    assert_eq!(
        resource_status(&client, &emulation, &access).await,
        StatusCode::OK
    );

    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    assert!(reply.header("set-authorization").is_some());
    assert!(reply.header("set-refresh-token").is_some());

    let c = emulation.config().clone();
    let bad = request(
        Method::GET,
        &format!("{}/authentication/login", emulation.base_url()),
        &[("authorization", &basic(&c.username, "wrong"))],
        "",
    );
    let reply = send(&client, bad).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(&reply.body[..], b"Not authenticated");
    assert_eq!(auth_stats(emulation.stats()), stats(1, 1, 1, 0, 0));
}

#[tokio::test]
async fn tradecloud_refresh_with_authorization_is_the_documented_quirk() {
    let client = client();
    let emulation = start(Api::Tradecloud).await;
    let (access, refresh) = login(&client, &emulation).await;
    let url = format!("{}/authentication/refresh", emulation.base_url());

    // A valid access token: 200 without a new pair, whatever the refresh token.
    let reply = send(
        &client,
        request(
            Method::GET,
            &url,
            &[
                ("authorization", &format!("Bearer {access}")),
                ("refresh-token", &refresh),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header("set-authorization").is_none());
    assert!(reply.header("set-refresh-token").is_none());
    assert_eq!(emulation.stats().violations, 1);

    // A corrupted one: 401, whatever the refresh token.
    let reply = send(
        &client,
        request(
            Method::GET,
            &url,
            &[
                ("authorization", "Bearer corrupted"),
                ("refresh-token", &refresh),
            ],
            "",
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(emulation.stats().violations, 2);

    // Neither consumed the refresh token.
    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    assert!(reply.header("set-authorization").is_some());
    assert_eq!(auth_stats(emulation.stats()), stats(1, 1, 0, 0, 2));

    // No Refresh-Token header at all.
    let reply = send(&client, request(Method::GET, &url, &[], "")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(emulation.stats().violations, 3);
}

#[tokio::test]
async fn tradecloud_login_needs_well_formed_basic() {
    let client = client();
    let emulation = start(Api::Tradecloud).await;
    let url = format!("{}/authentication/login", emulation.base_url());
    for authorization in [
        None,
        Some("Basic !!!not-base64!!!"),
        Some("Basic bm8tY29sb24"), // "no-colon"
        Some("Basic /w=="),        // not UTF-8
        Some("Bearer whatever"),
    ] {
        let headers: Vec<(&str, &str)> = authorization
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let reply = send(&client, request(Method::GET, &url, &headers, "")).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{authorization:?}");
    }
    let reply = send(&client, request(Method::POST, &url, &[], "")).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(auth_stats(emulation.stats()), stats(0, 0, 0, 0, 6));
    login(&client, &emulation).await;
}

// ------------------------------------------------------------------------------------------------
// Intergiro
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn intergiro_answers_two_tokens_and_nothing_else() {
    let client = client();
    let emulation = start(Api::Intergiro).await;
    let body = send(&client, login_request(&emulation)).await.json();
    let fields: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["access_token", "refresh_token"]);
    let wrong = post_json(
        &format!("{}/auth/login", emulation.base_url()),
        json!({ "api_key": "wrong" }),
    );
    assert_eq!(send(&client, wrong).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(auth_stats(emulation.stats()), stats(1, 0, 1, 0, 0));
}

#[tokio::test]
async fn intergiro_premature_refresh_is_an_error_that_keeps_the_refresh_token() {
    let client = client();
    let emulation = start(Api::Intergiro).await;
    let (_, refresh) = login(&client, &emulation).await;
    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.json()["error"].is_object());
    assert_eq!(auth_stats(emulation.stats()), stats(1, 0, 0, 0, 1));

    // Once the access token is dead the same refresh token works.
    emulation.revoke_access_tokens();
    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    let (_, latest) = tokens(Api::Intergiro, &reply);
    // Re-sending the old one is reuse, the latest one is still premature.
    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = send(&client, refresh_request(&emulation, &latest.unwrap())).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // Fraud prevention counts logins: there was exactly one.
    assert_eq!(auth_stats(emulation.stats()), stats(1, 1, 0, 0, 3));
}

#[tokio::test]
async fn intergiro_refresh_after_expiry_by_jwt_exp_is_clean() {
    let client = client();
    let config = Config {
        access_lifetime: Duration::from_millis(1200),
        ..Config::default()
    };
    let emulation = Emulation::start(Api::Intergiro, config).await.unwrap();
    let (access, refresh) = login(&client, &emulation).await;
    // A client waits for the `exp` the JWT states; the server must agree it is dead by then.
    let exp = claims(&access)["exp"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let wait = Duration::from_secs(exp).saturating_sub(now);
    assert!(wait >= Duration::from_millis(1100), "{wait:?}");
    tokio::time::sleep(wait).await;
    let reply = send(&client, refresh_request(&emulation, &refresh)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(auth_stats(emulation.stats()), stats(1, 1, 0, 0, 0));
}

// ------------------------------------------------------------------------------------------------
// OAuth2
// ------------------------------------------------------------------------------------------------

fn oauth2_config() -> Config {
    Config {
        // Characters that must be form-urlencoded inside Basic credentials.
        client_id: "my client:1".to_owned(),
        client_secret: "s&cret/ü+%".to_owned(),
        ..Config::default()
    }
}

#[tokio::test]
async fn oauth2_accepts_basic_or_post_but_not_both() {
    let client = client();
    let emulation = Emulation::start(Api::OAuth2, oauth2_config())
        .await
        .unwrap();
    let c = emulation.config().clone();
    let url = emulation.base_url();
    let grant = [("grant_type", "client_credentials")];

    // client_secret_basic
    let mut req = post_form(&url, &grant);
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&client_basic(&c.client_id, &c.client_secret)).unwrap(),
    );
    let reply = send(&client, req).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));

    // client_secret_post
    let post = [
        ("grant_type", "client_credentials"),
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_str()),
    ];
    assert_eq!(
        send(&client, post_form(&url, &post)).await.status,
        StatusCode::OK
    );

    // Wrong secret: a rejection, not a violation.
    let mut req = post_form(&url, &grant);
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&client_basic(&c.client_id, "wrong")).unwrap(),
    );
    let reply = send(&client, req).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_client");
    assert!(reply.header("www-authenticate").is_some());
    assert_eq!(auth_stats(emulation.stats()), stats(2, 0, 1, 0, 0));

    // Both methods at once.
    let mut req = post_form(&url, &post);
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&client_basic(&c.client_id, &c.client_secret)).unwrap(),
    );
    let reply = send(&client, req).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_request");

    // Neither.
    let reply = send(&client, post_form(&url, &grant)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "invalid_client");

    // Bad base64 in Basic.
    let req = request(
        Method::POST,
        &url,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", "Basic %%%"),
        ],
        "grant_type=client_credentials",
    );
    let reply = send(&client, req).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // Unsupported grant and JSON body.
    let reply = send(
        &client,
        post_form(&url, &[("grant_type", "implicit"), post[1], post[2]]),
    )
    .await;
    assert_eq!(reply.json()["error"], "unsupported_grant_type");
    let reply = send(
        &client,
        post_json(&url, json!({ "grant_type": "client_credentials" })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(auth_stats(emulation.stats()), stats(2, 0, 1, 0, 5));
}

#[tokio::test]
async fn oauth2_client_credentials_issue_no_refresh_token_and_echo_scope() {
    let client = client();
    let emulation = start(Api::OAuth2).await;
    let c = emulation.config().clone();
    let reply = send(
        &client,
        post_form(
            &emulation.base_url(),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read write"),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
            ],
        ),
    )
    .await;
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "read write");
    assert!(body.get("refresh_token").is_none());
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["sub"], c.client_id.as_str());
    assert_eq!(
        resource_status(&client, &emulation, access).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn oauth2_password_grant_rotates_and_checks_scope() {
    let client = client();
    let emulation = start(Api::OAuth2).await;
    let c = emulation.config().clone();
    let url = emulation.base_url();
    let reply = send(
        &client,
        post_form(
            &url,
            &[
                ("grant_type", "password"),
                ("username", &c.username),
                ("password", &c.password),
                ("scope", "a b"),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
            ],
        ),
    )
    .await;
    let body = reply.json();
    assert_eq!(body["scope"], "a b");
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let refresh_with_scope = |token: &str, scope: &str| {
        post_form(
            &url,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("scope", scope),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
            ],
        )
    };
    // Widening the scope on refresh is refused and leaves the token valid.
    let reply = send(&client, refresh_with_scope(&refresh, "a c")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_scope");
    let reply = send(&client, refresh_with_scope(&refresh, "b")).await;
    let body = reply.json();
    assert_eq!(body["scope"], "b");
    assert!(body["refresh_token"].is_string());
    // Wrong resource-owner password: invalid_grant.
    let reply = send(
        &client,
        post_form(
            &url,
            &[
                ("grant_type", "password"),
                ("username", &c.username),
                ("password", "wrong"),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
            ],
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_grant");
    // A dead refresh token: invalid_grant, a rejection.
    let reply = send(&client, refresh_request(&emulation, "dead")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "invalid_grant");
    assert_eq!(auth_stats(emulation.stats()), stats(1, 1, 1, 1, 1));
}

#[tokio::test]
async fn oauth2_without_rotation_keeps_the_refresh_token() {
    let client = client();
    let config = Config {
        rotate_refresh_tokens: false,
        ..Config::default()
    };
    let emulation = Emulation::start(Api::OAuth2, config).await.unwrap();
    let (_, refresh) = login(&client, &emulation).await;
    for _ in 0..3 {
        let reply = send(&client, refresh_request(&emulation, &refresh)).await;
        let (access, new_refresh) = tokens(Api::OAuth2, &reply);
        assert_eq!(new_refresh, None);
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::OK
        );
    }
    assert_eq!(auth_stats(emulation.stats()), stats(1, 3, 0, 0, 0));
}

// ------------------------------------------------------------------------------------------------
// Faults
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn faults_answer_login_and_refresh_until_cleared() {
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        let (access, refresh) = login(&client, &emulation).await;
        let before = emulation.stats();

        emulation.set_fault(Some(Fault::Status(503, "try later", "text/plain")));
        for req in [
            login_request(&emulation),
            refresh_request(&emulation, &refresh),
        ] {
            let reply = send(&client, req).await;
            assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{api:?}");
            assert_eq!(&reply.body[..], b"try later");
            assert_eq!(reply.header("content-type"), Some("text/plain"));
        }

        emulation.set_fault(Some(Fault::Body(b"{\"access_token\":".to_vec())));
        let reply = send(&client, login_request(&emulation)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(&reply.body[..], b"{\"access_token\":");

        emulation.set_fault(Some(Fault::Hang));
        for req in [
            login_request(&emulation),
            refresh_request(&emulation, &refresh),
        ] {
            let outcome =
                tokio::time::timeout(Duration::from_millis(200), client.request(req)).await;
            assert!(outcome.is_err(), "{api:?}: a hanging endpoint answered");
        }

        // The resource is never faulted, and faulted calls count nothing.
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::OK
        );
        let after = emulation.stats();
        assert_eq!(auth_stats(after), auth_stats(before), "{api:?}");

        emulation.set_fault(None);
        if api == Api::Intergiro {
            emulation.revoke_access_tokens();
        }
        let reply = send(&client, refresh_request(&emulation, &refresh)).await;
        assert_eq!(reply.status, StatusCode::OK, "{api:?}");
    }
}

#[tokio::test]
async fn fault_header_and_odd_statuses() {
    let client = client();
    let emulation = start(Api::Tradecloud).await;
    emulation.set_fault(Some(Fault::Header(
        "Set-Authorization",
        b"not a jwt".to_vec(),
    )));
    let reply = send(&client, login_request(&emulation)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("set-authorization"), Some("not a jwt"));
    assert!(reply.header("set-refresh-token").is_none());

    // Bytes HTTP cannot carry, and statuses outside 200..=599, become a 500.
    emulation.set_fault(Some(Fault::Header("Set-Authorization", b"a\nb".to_vec())));
    let reply = send(&client, login_request(&emulation)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    emulation.set_fault(Some(Fault::Header("bad header name", b"x".to_vec())));
    let reply = send(&client, login_request(&emulation)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    for code in [0, 42, 101, 600, 1000] {
        emulation.set_fault(Some(Fault::Status(code, "", "\u{7f}bad")));
        let reply = send(&client, login_request(&emulation)).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{code}");
    }
    emulation.set_fault(Some(Fault::Status(429, "{}", "application/json")));
    assert_eq!(
        send(&client, login_request(&emulation)).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    emulation.set_fault(None);
    login(&client, &emulation).await;
}

#[tokio::test]
async fn redirect_fault_points_at_a_target_that_would_hand_out_tokens() {
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        let (_, refresh) = login(&client, &emulation).await;
        emulation.set_fault(Some(Fault::Redirect(302)));
        for (mut req, code) in [
            (login_request(&emulation), 302),
            (refresh_request(&emulation, &refresh), 307),
        ] {
            emulation.set_fault(Some(Fault::Redirect(code)));
            let target = req.uri().path_and_query().unwrap().to_string();
            let reply = send(&client, clone_request(&req)).await;
            assert_eq!(reply.status.as_u16(), code, "{api:?}");
            let location = reply.header("location").unwrap().to_owned();
            assert_eq!(location, format!("/redirected{target}"), "{api:?}");
            // Following it works although the fault is still set: the target is never faulted.
            *req.uri_mut() = format!("http://{}{location}", emulation.addr())
                .parse()
                .unwrap();
            if api == Api::Intergiro {
                emulation.revoke_access_tokens();
            }
            let (access, _) = tokens(api, &send(&client, req).await);
            assert_eq!(
                resource_status(&client, &emulation, &access).await,
                StatusCode::OK
            );
        }
        let s = emulation.stats();
        assert_eq!(auth_stats(s), stats(2, 1, 0, 0, 0), "{api:?}");
        assert_eq!((s.faults, s.redirects_followed), (2, 2), "{api:?}");

        // Not a redirect status: a 500. The resource has no redirect target.
        emulation.set_fault(Some(Fault::Redirect(200)));
        let reply = send(&client, login_request(&emulation)).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{api:?}");
        let resource = emulation.resource_url();
        let path = resource.trim_start_matches(&format!("http://{}", emulation.addr()));
        let redirected = format!("http://{}/redirected{path}", emulation.addr());
        let reply = send(&client, request(Method::GET, &redirected, &[], "")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{api:?}");
        assert_eq!(emulation.stats().redirects_followed, 2, "{api:?}");
    }
}

/// A copy of a request with a full body.
fn clone_request(req: &Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let mut copy = Request::builder()
        .method(req.method().clone())
        .uri(req.uri().clone())
        .body(req.body().clone())
        .unwrap();
    *copy.headers_mut() = req.headers().clone();
    copy
}

// ------------------------------------------------------------------------------------------------
// Injected faults: each kind, the rate, the outage window, and what they count
// ------------------------------------------------------------------------------------------------

/// The counters fault injection added.
fn fault_stats(s: Stats) -> (u64, u64, u64, u64) {
    (
        s.faults,
        s.outage_calls,
        s.needless_logins,
        s.refresh_token_reuse,
    )
}

/// Refreshes with `refresh` as a correct client would now: Intergiro refuses a refresh while
/// the access token lives, so its access tokens are revoked first.
async fn refresh_now(client: &HttpClient, emulation: &Emulation, refresh: &str) -> Reply {
    if emulation.api() == Api::Intergiro {
        emulation.revoke_access_tokens();
    }
    send(client, refresh_request(emulation, refresh)).await
}

fn assert_html(reply: &Reply, status: StatusCode, api: Api) {
    assert_eq!(reply.status, status, "{api:?}");
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/html"),
        "{api:?}: {content_type}"
    );
    assert!(
        String::from_utf8_lossy(&reply.body).contains("<html>"),
        "{api:?}: {reply:?}"
    );
}

/// `request` as raw HTTP/1.1 bytes, with `Connection: close` so the answer ends at EOF.
async fn raw_bytes(request: Request<Full<Bytes>>) -> Vec<u8> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let target = parts.uri.path_and_query().unwrap().as_str();
    let mut head = format!(
        "{} {target} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: {}\r\n",
        parts.method,
        body.len()
    );
    for (name, value) in &parts.headers {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}

/// Sends one raw request and reads until the server closes the connection.
async fn raw_exchange(emulation: &Emulation, request: Request<Full<Bytes>>) -> Vec<u8> {
    let mut stream = TcpStream::connect(emulation.addr()).await.unwrap();
    stream.write_all(&raw_bytes(request).await).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("the server neither answered nor closed")
        .unwrap_or_default();
    answer
}

#[test]
fn fault_kinds_all_lists_every_kind_once() {
    let all = FaultKind::all();
    assert_eq!(all.len(), 10);
    assert!(all.contains(&FaultKind::Slow(Duration::from_millis(300))));
    assert!(all.contains(&FaultKind::TooManyRequests {
        retry_after_secs: 1
    }));
    for (i, kind) in all.iter().enumerate() {
        assert!(!all[i + 1..].contains(kind), "{kind:?} twice");
    }
}

#[tokio::test]
async fn status_and_reset_faults_answer_before_any_work() {
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        let (access, refresh) = login(&client, &emulation).await;
        let before = emulation.stats();

        emulation.set_fault_rate(1.0, &[FaultKind::InternalError]);
        for req in [
            login_request(&emulation),
            refresh_request(&emulation, &refresh),
        ] {
            let reply = send(&client, req).await;
            assert_html(&reply, StatusCode::INTERNAL_SERVER_ERROR, api);
        }
        emulation.set_fault_rate(1.0, &[FaultKind::Unavailable]);
        for req in [
            login_request(&emulation),
            refresh_request(&emulation, &refresh),
        ] {
            let reply = send(&client, req).await;
            assert_html(&reply, StatusCode::SERVICE_UNAVAILABLE, api);
        }
        emulation.set_fault_rate(1.0, &[FaultKind::ApiError]);
        for req in [
            login_request(&emulation),
            refresh_request(&emulation, &refresh),
        ] {
            let reply = send(&client, req).await;
            assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{api:?}");
            let body = reply.json();
            if api == Api::UnionService {
                assert_eq!(body["title"], "Internal Error", "{api:?}: {body}");
            } else {
                assert_eq!(body["error"], "server_error", "{api:?}: {body}");
            }
        }
        emulation.set_fault_rate(
            1.0,
            &[FaultKind::TooManyRequests {
                retry_after_secs: 7,
            }],
        );
        for req in [
            login_request(&emulation),
            refresh_request(&emulation, &refresh),
        ] {
            let reply = send(&client, req).await;
            assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{api:?}");
            assert_eq!(reply.header("retry-after"), Some("7"), "{api:?}");
            assert!(reply
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/plain")));
            assert_eq!(&reply.body[..], b"Too Many Requests");
        }

        emulation.set_fault_rate(1.0, &[FaultKind::Reset]);
        for req in [
            login_request(&emulation),
            refresh_request(&emulation, &refresh),
        ] {
            let outcome = tokio::time::timeout(DEADLINE, client.request(req))
                .await
                .expect("a reset must not hang");
            let error = outcome.expect_err("a reset connection answered");
            assert!(!error.is_connect(), "{api:?}: {error:?}");
        }
        // On the wire: the connection closes with not one byte written.
        let answer = raw_exchange(&emulation, login_request(&emulation)).await;
        assert!(
            answer.is_empty(),
            "{api:?}: {:?}",
            String::from_utf8_lossy(&answer)
        );

        // The resource is never faulted; no token was issued or consumed, nothing was counted
        // but the faults.
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::OK
        );
        let after = emulation.stats();
        assert_eq!(auth_stats(after), auth_stats(before), "{api:?}");
        assert_eq!(fault_stats(after), (11, 0, 0, 0), "{api:?}");

        emulation.set_fault_rate(0.0, &[]);
        // The same raw exchange answers normally once faults are off: the empty answer above was
        // the fault, not the helper.
        let answer = raw_exchange(&emulation, login_request(&emulation)).await;
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{api:?}");
        let reply = refresh_now(&client, &emulation, &refresh).await;
        assert_eq!(reply.status, StatusCode::OK, "{api:?}");
        assert_eq!(
            auth_stats(emulation.stats()),
            stats(2, 1, 0, 0, 0),
            "{api:?}"
        );
    }
}

#[tokio::test]
async fn slow_fault_delays_then_processes_the_call() {
    const SLOW: Duration = Duration::from_millis(150);
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        emulation.set_fault_rate(1.0, &[FaultKind::Slow(SLOW)]);
        let started = std::time::Instant::now();
        let (access, refresh) = login(&client, &emulation).await;
        assert!(
            started.elapsed() >= SLOW,
            "{api:?}: {:?}",
            started.elapsed()
        );
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::OK
        );
        let started = std::time::Instant::now();
        let reply = refresh_now(&client, &emulation, &refresh).await;
        assert!(
            started.elapsed() >= SLOW,
            "{api:?}: {:?}",
            started.elapsed()
        );
        let (access, _) = tokens(api, &reply);
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::OK
        );
        let s = emulation.stats();
        assert_eq!(auth_stats(s), stats(1, 1, 0, 0, 0), "{api:?}");
        assert_eq!(fault_stats(s), (2, 0, 0, 0), "{api:?}");
    }
}

/// Checks the faulty 200 of `kind` and returns nothing a client could use.
fn assert_spoiled(api: Api, kind: FaultKind, reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "{api:?} {kind:?}");
    assert!(reply.header("set-authorization").is_none(), "{api:?}");
    assert!(reply.header("set-refresh-token").is_none(), "{api:?}");
    match kind {
        FaultKind::Malformed => {
            assert_eq!(reply.header("content-type"), Some("application/json"));
            assert!(
                serde_json::from_slice::<Value>(&reply.body).is_err(),
                "{api:?}: {:?}",
                reply.body
            );
        }
        _ if api == Api::Tradecloud => assert!(reply.body.is_empty(), "{api:?} {kind:?}"),
        FaultKind::NoToken => {
            let body = reply.json();
            assert!(body.is_object(), "{api:?}: {body}");
            assert!(body.get("access_token").is_none(), "{api:?}: {body}");
            assert!(body.get("refresh_token").is_none(), "{api:?}: {body}");
        }
        FaultKind::CrLfToken => {
            let body = reply.json();
            assert_eq!(body["access_token"], "abc\r\ndef", "{api:?}");
            assert!(body.get("refresh_token").is_none(), "{api:?}: {body}");
        }
        FaultKind::StringExpiry => {
            let body = reply.json();
            assert_eq!(body["access_token"], "never-issued", "{api:?}");
            assert_eq!(body["expires_in"], "soon", "{api:?}");
            assert!(body.get("refresh_token").is_none(), "{api:?}: {body}");
        }
        _ => unreachable!("not a 2xx fault: {kind:?}"),
    }
}

#[tokio::test]
async fn two_hundred_faults_do_the_work_and_deliver_nothing_usable() {
    let client = client();
    let kinds = [
        FaultKind::Malformed,
        FaultKind::NoToken,
        FaultKind::CrLfToken,
        FaultKind::StringExpiry,
    ];
    for api in ALL {
        let emulation = start(api).await;
        let (_, mut refresh) = login(&client, &emulation).await;
        for kind in kinds {
            emulation.set_fault_rate(1.0, &[kind]);
            let reply = send(&client, login_request(&emulation)).await;
            assert_spoiled(api, kind, &reply);
            let reply = refresh_now(&client, &emulation, &refresh).await;
            assert_spoiled(api, kind, &reply);

            // The refresh was done: the token it presented is spent, re-sending it is reuse.
            emulation.set_fault_rate(0.0, &[]);
            let again = refresh_now(&client, &emulation, &refresh).await;
            assert!(!again.status.is_success(), "{api:?} {kind:?}");
            // The refresh tokens issued in the two spoiled calls are dead too: this login finds
            // no live refresh token, so it is not needless (the spoiled login was: it came while
            // `refresh` was still good).
            let needless = emulation.stats().needless_logins;
            refresh = login(&client, &emulation).await.1;
            assert_eq!(
                emulation.stats().needless_logins,
                needless,
                "{api:?} {kind:?}"
            );
        }
        let s = emulation.stats();
        // Logins: the first, then per kind one spoiled and one clean.
        assert_eq!(auth_stats(s), stats(9, 4, 0, 0, 4), "{api:?}");
        assert_eq!(fault_stats(s), (8, 0, 4, 4), "{api:?}");
    }
}

#[tokio::test]
async fn two_hundred_faults_leave_rejections_and_violations_alone() {
    let client = client();
    let kinds = [
        FaultKind::Malformed,
        FaultKind::NoToken,
        FaultKind::CrLfToken,
        FaultKind::StringExpiry,
    ];
    for api in ALL {
        let emulation = start(api).await;
        let (_, used) = login(&client, &emulation).await;
        let refresh = tokens(api, &refresh_now(&client, &emulation, &used).await)
            .1
            .unwrap();
        emulation.set_fault_rate(1.0, &[FaultKind::Malformed]);
        // Rejected: an unknown refresh token. A violation: a spent one.
        let rejected = refresh_now(&client, &emulation, "no-such-token").await;
        assert!(!rejected.status.is_success(), "{api:?}");
        let reused = refresh_now(&client, &emulation, &used).await;
        assert!(!reused.status.is_success(), "{api:?}");
        let s = emulation.stats();
        assert_eq!(auth_stats(s), stats(1, 1, 0, 1, 1), "{api:?}");
        assert_eq!(fault_stats(s), (0, 0, 0, 1), "{api:?}");
        // Still good: neither answer was a success to spoil.
        let reply = refresh_now(&client, &emulation, &refresh).await;
        assert_spoiled(api, FaultKind::Malformed, &reply);
        assert_eq!(emulation.stats().faults, 1, "{api:?}");
    }

    // Tradecloud's quirk is a violation answered 200 without tokens: nothing to spoil either.
    let emulation = start(Api::Tradecloud).await;
    let (access, refresh) = login(&client, &emulation).await;
    emulation.set_fault_rate(1.0, &kinds);
    let mut quirk = refresh_request(&emulation, &refresh);
    quirk.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {access}")).unwrap(),
    );
    let reply = send(&client, quirk).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    let s = emulation.stats();
    assert_eq!((s.violations, s.faults), (1, 0));
}

#[tokio::test]
async fn rate_one_faults_every_call_and_rate_zero_none() {
    let client = client();
    let emulation = Emulation::start(
        Api::Simacan,
        Config {
            fault_seed: Some(11),
            ..Config::default()
        },
    )
    .await
    .unwrap();
    emulation.set_fault_rate(1.0, &[FaultKind::Unavailable]);
    for _ in 0..20 {
        let reply = send(&client, login_request(&emulation)).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(auth_stats(emulation.stats()), stats(0, 0, 0, 0, 0));
    assert_eq!(emulation.stats().faults, 20);

    emulation.set_fault_rate(0.0, &FaultKind::all());
    for _ in 0..20 {
        login(&client, &emulation).await;
    }
    let s = emulation.stats();
    assert_eq!((s.logins, s.faults), (20, 20));

    // Every kind at rate 1: every call counts a fault, whatever its kind.
    emulation.set_fault_rate(1.0, &FaultKind::all());
    for _ in 0..24 {
        let _ = tokio::time::timeout(DEADLINE, client.request(login_request(&emulation)))
            .await
            .expect("no fault kind hangs");
    }
    assert_eq!(emulation.stats().faults, 44);
}

/// What a sequence of logins met, as far as a client can tell (Slow answers normally).
async fn outcomes(seed: u64, calls: usize) -> (Vec<String>, u64) {
    let client = client();
    let emulation = Emulation::start(
        Api::OAuth2,
        Config {
            fault_seed: Some(seed),
            ..Config::default()
        },
    )
    .await
    .unwrap();
    emulation.set_fault_rate(
        0.5,
        &[
            FaultKind::InternalError,
            FaultKind::Unavailable,
            FaultKind::Reset,
            FaultKind::Malformed,
            FaultKind::NoToken,
            FaultKind::CrLfToken,
        ],
    );
    let mut seen = Vec::new();
    for _ in 0..calls {
        let outcome = tokio::time::timeout(DEADLINE, client.request(login_request(&emulation)))
            .await
            .expect("no fault kind hangs");
        seen.push(match outcome {
            Err(_) => "reset".to_owned(),
            Ok(response) => {
                let status = response.status();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                let usable = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["access_token"].as_str().map(|t| !t.contains('\n')))
                    .unwrap_or(false);
                format!("{status} {usable}")
            }
        });
    }
    (seen, emulation.stats().faults)
}

#[tokio::test]
async fn a_fault_seed_makes_the_draws_repeatable() {
    let (first, faults) = outcomes(5, 40).await;
    assert_eq!(outcomes(5, 40).await, (first.clone(), faults));
    // Half the calls, give or take, and every fault is visible to the client here.
    let plain = first.iter().filter(|o| *o == "200 OK true").count() as u64;
    assert_eq!(faults, 40 - plain, "{first:?}");
    assert!((8..=32).contains(&faults), "{first:?}");
}

#[tokio::test]
async fn outage_answers_503_inside_its_window_only() {
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        let (access, refresh) = login(&client, &emulation).await;
        let set_at = std::time::Instant::now();
        emulation.set_outage(Duration::ZERO, Duration::from_millis(300));
        for req in [
            login_request(&emulation),
            refresh_request(&emulation, &refresh),
        ] {
            let reply = send(&client, req).await;
            assert_html(&reply, StatusCode::SERVICE_UNAVAILABLE, api);
        }
        // The protected resource keeps working through an auth outage.
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::OK
        );
        let s = emulation.stats();
        assert_eq!(auth_stats(s), stats(1, 0, 0, 0, 0), "{api:?}");
        assert_eq!(fault_stats(s), (2, 2, 0, 0), "{api:?}");

        tokio::time::sleep(Duration::from_millis(400).saturating_sub(set_at.elapsed())).await;
        // The refresh token was not consumed by the outage.
        let reply = refresh_now(&client, &emulation, &refresh).await;
        assert_eq!(reply.status, StatusCode::OK, "{api:?}");
        login(&client, &emulation).await;
        let s = emulation.stats();
        assert_eq!(auth_stats(s), stats(2, 1, 0, 0, 0), "{api:?}");
        // That last login was made while the refreshed pair's refresh token was live.
        assert_eq!(fault_stats(s), (2, 2, 1, 0), "{api:?}");
    }
}

#[tokio::test]
async fn outage_window_can_lie_ahead_be_cleared_and_yield_to_a_fixed_fault() {
    let client = client();
    let emulation = start(Api::Oli).await;
    emulation.set_outage(Duration::from_secs(60), Duration::from_secs(120));
    login(&client, &emulation).await;
    assert_eq!(fault_stats(emulation.stats()), (0, 0, 0, 0));

    emulation.set_outage(Duration::ZERO, Duration::from_secs(60));
    let reply = send(&client, login_request(&emulation)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    // A fixed fault takes precedence; the call still arrived inside the window.
    emulation.set_fault(Some(Fault::Status(502, "bad gateway", "text/plain")));
    let reply = send(&client, login_request(&emulation)).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    emulation.set_fault(None);
    // An outage takes precedence over random faults.
    emulation.set_fault_rate(1.0, &[FaultKind::Reset]);
    let reply = send(&client, login_request(&emulation)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    emulation.set_fault_rate(0.0, &[]);
    assert_eq!(fault_stats(emulation.stats()), (3, 3, 0, 0));

    emulation.clear_outage();
    login(&client, &emulation).await;
    let s = emulation.stats();
    assert_eq!(auth_stats(s), stats(2, 0, 0, 0, 0));
    assert_eq!(fault_stats(s), (3, 3, 1, 0));
}

#[tokio::test]
async fn needless_logins_are_logins_while_a_refresh_token_is_live() {
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        login(&client, &emulation).await;
        assert_eq!(emulation.stats().needless_logins, 0, "{api:?}");
        // The first refresh token is still good: this login was needless.
        let (_, refresh) = login(&client, &emulation).await;
        assert_eq!(emulation.stats().needless_logins, 1, "{api:?}");
        refresh_now(&client, &emulation, &refresh).await;
        emulation.revoke_refresh_tokens();
        // Every refresh token is revoked (or used): logging in is the only way.
        login(&client, &emulation).await;
        let s = emulation.stats();
        assert_eq!(auth_stats(s), stats(3, 1, 0, 0, 0), "{api:?}");
        assert_eq!(s.needless_logins, 1, "{api:?}");
    }

    // Expired refresh tokens do not make a login needless.
    let emulation = Emulation::start(
        Api::Simacan,
        Config {
            refresh_lifetime: Duration::from_millis(200),
            ..Config::default()
        },
    )
    .await
    .unwrap();
    login(&client, &emulation).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    login(&client, &emulation).await;
    assert_eq!(emulation.stats().needless_logins, 0);

    // Client credentials issue no refresh token, so their logins are never needless; without
    // rotation the refresh token outlives its use, so a login after a refresh still is.
    let emulation = start(Api::OAuth2).await;
    let c = emulation.config();
    for _ in 0..3 {
        let req = post_form(
            &emulation.base_url(),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &c.client_id),
                ("client_secret", &c.client_secret),
            ],
        );
        assert_eq!(send(&client, req).await.status, StatusCode::OK);
    }
    assert_eq!(emulation.stats().needless_logins, 0);
    let config = Config {
        rotate_refresh_tokens: false,
        ..Config::default()
    };
    let emulation = Emulation::start(Api::OAuth2, config).await.unwrap();
    let (_, refresh) = login(&client, &emulation).await;
    let reply = refresh_now(&client, &emulation, &refresh).await;
    assert_eq!(reply.status, StatusCode::OK);
    login(&client, &emulation).await;
    assert_eq!(emulation.stats().needless_logins, 1);
}

// ------------------------------------------------------------------------------------------------
// Watching and pacing the resource
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn held_requests_keep_the_answer_of_their_arrival_and_go_in_order() {
    let client = client();
    let emulation = start(Api::OAuth2).await;
    let (access, _) = login(&client, &emulation).await;
    let bearer = format!("Bearer {access}");
    emulation.hold_resource_requests(3);
    let mut held = Vec::new();
    for i in 0..3 {
        if i == 1 {
            // The first request arrived with a live token, the others with a dead one.
            emulation.revoke_access_tokens();
        }
        let request = request(
            Method::GET,
            &emulation.resource_url(),
            &[("authorization", &bearer)],
            "",
        );
        let client = client.clone();
        held.push(tokio::spawn(
            async move { send(&client, request).await.status },
        ));
        // One at a time, so that arrival order is spawn order.
        emulation.wait_for_held_requests(i + 1).await;
    }
    // Decided and counted on arrival; a fourth request is not held.
    let s = emulation.stats();
    assert_eq!((s.resource_ok, s.resource_unauthorized), (1, 2));
    assert_eq!(
        resource_status(&client, &emulation, &access).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(held.iter().all(|task| !task.is_finished()));

    emulation.release_held_requests(1);
    let mut held = held.into_iter();
    let first = held.next().unwrap();
    // Its token died while it was held: it keeps the answer it had on arrival.
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    emulation.release_held_requests(1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (second, third) = (held.next().unwrap(), held.next().unwrap());
    assert!(!second.is_finished() && !third.is_finished());
    emulation.release_held_requests(2);
    assert_eq!(second.await.unwrap(), StatusCode::UNAUTHORIZED);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!third.is_finished());

    // Arming again frees what an earlier hold still holds.
    emulation.hold_resource_requests(0);
    assert_eq!(third.await.unwrap(), StatusCode::UNAUTHORIZED);
    let s = emulation.stats();
    assert_eq!((s.resource_ok, s.resource_unauthorized), (1, 3));
}

#[tokio::test]
async fn resource_tokens_are_counted_in_first_seen_order() {
    let client = client();
    let emulation = start(Api::UnionService).await;
    let (first, _) = login(&client, &emulation).await;
    let (second, _) = login(&client, &emulation).await;
    for token in [&first, &first, &second, "not-a-token", &first] {
        resource_status(&client, &emulation, token).await;
    }
    // Requests without a bearer token are not recorded.
    resource(&client, &emulation, None).await;
    resource(&client, &emulation, Some("Basic dTpw")).await;
    let expected = [(&*first, 3), (&*second, 1), ("not-a-token", 1)];
    assert_eq!(
        emulation.resource_tokens(),
        expected.map(|(token, uses)| (token.to_owned(), uses))
    );

    tokio::time::timeout(DEADLINE, emulation.wait_for_resource_tokens(3))
        .await
        .expect("three tokens were seen");
    let waiting = emulation.wait_for_resource_tokens(4);
    tokio::pin!(waiting);
    let early = tokio::time::timeout(Duration::from_millis(50), &mut waiting).await;
    assert!(early.is_err(), "woke before a fourth token was seen");
    let (third, _) = login(&client, &emulation).await;
    resource_status(&client, &emulation, &third).await;
    tokio::time::timeout(DEADLINE, waiting)
        .await
        .expect("woke for the fourth token");
    assert_eq!(emulation.resource_tokens().len(), 4);
}

// ------------------------------------------------------------------------------------------------
// Malformed input
// ------------------------------------------------------------------------------------------------

/// Sends raw bytes on a fresh connection and returns whatever comes back (maybe nothing).
async fn raw(emulation: &Emulation, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(emulation.addr()).await.unwrap();
    // The server may close before reading everything; that is a fine answer to garbage.
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer)).await;
    answer
}

fn auth_urls(emulation: &Emulation) -> Vec<String> {
    let base = emulation.base_url();
    match emulation.api() {
        Api::UnionService => vec![
            union_url(emulation, "token"),
            union_url(emulation, "refresh-token"),
        ],
        Api::Simacan => vec![
            format!("{base}/auth/password"),
            format!("{base}/auth/refresh"),
        ],
        Api::Tradecloud => vec![
            format!("{base}/authentication/login"),
            format!("{base}/authentication/refresh"),
        ],
        Api::Intergiro => vec![format!("{base}/auth/login"), format!("{base}/auth/refresh")],
        Api::Oli | Api::OAuth2 => vec![base],
    }
}

#[tokio::test]
async fn malformed_input_gets_4xx_and_never_crashes_the_server() {
    let client = client();
    // Deeper than serde_json's recursion limit, smaller than the body limit.
    let mut nested = "[".repeat(20_000);
    nested.push_str(&"]".repeat(20_000));
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\x00\xff\xfe garbage \x80".to_vec(),
        b"{".to_vec(),
        b"[1,2,3]".to_vec(),
        b"null".to_vec(),
        br#"{"username":7,"password":null,"api_key":[],"refreshToken":{},"refresh_token":1}"#
            .to_vec(),
        b"grant_type=%ZZ&&&==&client_id=%".to_vec(),
        b"grant_type=password&grant_type=password".to_vec(),
        nested.into_bytes(),
        vec![b'a'; 70 * 1024],
    ];
    let content_types = [
        "application/json",
        "application/x-www-form-urlencoded",
        "application/json-patch+json",
        "text/plain; charset=\u{7f}",
    ];
    for api in ALL {
        let emulation = start(api).await;
        for url in auth_urls(&emulation) {
            for method in [Method::POST, Method::GET, Method::DELETE] {
                for body in &bodies {
                    for content_type in content_types {
                        let mut req = request(method.clone(), &url, &[], body.clone());
                        if let Ok(value) = HeaderValue::from_str(content_type) {
                            req.headers_mut().insert("content-type", value);
                        }
                        let reply = send(&client, req).await;
                        assert!(
                            reply.status.is_client_error()
                                || reply.status == StatusCode::INTERNAL_SERVER_ERROR,
                            "{api:?} {url} {}: {}",
                            method,
                            reply.status
                        );
                    }
                }
            }
            // Authorization and token headers that are not text, or not what they claim.
            for value in [
                &b"Basic \xff\xfe"[..],
                b"Bearer \xff",
                b"Basic",
                b"Basic Og==",
                b"   ",
            ] {
                let mut req = request(Method::GET, &url, &[], "");
                let value = HeaderValue::from_bytes(value).unwrap();
                req.headers_mut().insert("authorization", value.clone());
                req.headers_mut().insert("refresh-token", value);
                let reply = send(&client, req).await;
                assert!(reply.status.is_client_error() || reply.status.is_server_error());
            }
        }
        // A resource request with a non-UTF-8 Authorization.
        let mut req = request(Method::GET, &emulation.resource_url(), &[], "");
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
        );
        assert_eq!(send(&client, req).await.status, StatusCode::UNAUTHORIZED);

        // Huge headers: hyper refuses them (431) or drops the connection; either way the
        // server lives on.
        let mut req = login_request(&emulation);
        req.headers_mut().insert(
            "x-huge",
            HeaderValue::from_str(&"h".repeat(1 << 20)).unwrap(),
        );
        if let Ok(Ok(response)) = tokio::time::timeout(DEADLINE, client.request(req)).await {
            assert!(response.status().is_client_error());
        }
        let mut req = login_request(&emulation);
        for i in 0..500 {
            req.headers_mut().insert(
                http::HeaderName::try_from(format!("x-many-{i}")).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        if let Ok(Ok(response)) = tokio::time::timeout(DEADLINE, client.request(req)).await {
            assert!(response.status().is_client_error());
        }

        // Raw garbage on the socket.
        for garbage in [
            &b"GARBAGE\r\n\r\n"[..],
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", // a TLS ClientHello
            b"POST /oauth/token HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"POST /v3/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort",
            b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"",
        ] {
            raw(&emulation, garbage).await;
        }
        let answer = raw(&emulation, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(answer.starts_with(b"HTTP/1.1 404"), "{api:?}");

        // Still serving.
        let (access, _) = login(&client, &emulation).await;
        assert_eq!(
            resource_status(&client, &emulation, &access).await,
            StatusCode::OK
        );
        assert!(emulation.stats().violations > 0);
        assert_eq!(emulation.stats().logins, 1);
    }
}

// ------------------------------------------------------------------------------------------------
// Load and lifecycle
// ------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_with_one_token_grant_exactly_one() {
    let client = client();
    for api in ALL {
        let emulation = start(api).await;
        let (_, refresh) = login(&client, &emulation).await;
        emulation.revoke_access_tokens();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let request = refresh_request(&emulation, &refresh);
            let client = client.clone();
            tasks.spawn(async move { send(&client, request).await.status });
        }
        let mut ok = 0;
        while let Some(status) = tasks.join_next().await {
            ok += u32::from(status.unwrap() == StatusCode::OK);
        }
        assert_eq!(ok, 1, "{api:?}");
        let s = emulation.stats();
        assert_eq!(auth_stats(s), stats(1, 1, 0, 0, 31), "{api:?}");
        assert_eq!(s.refresh_token_reuse, 31, "{api:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serves_thousands_of_concurrent_resource_requests() {
    const REQUESTS: usize = 4000;
    const CONCURRENCY: usize = 64;
    let client = client();
    let emulation = start(Api::OAuth2).await;
    let (access, _) = login(&client, &emulation).await;
    let url = emulation.resource_url();
    let bearer = format!("Bearer {access}");
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..CONCURRENCY {
        let (client, url, bearer) = (client.clone(), url.clone(), bearer.clone());
        tasks.spawn(async move {
            for _ in (worker..REQUESTS).step_by(CONCURRENCY) {
                let req = request(Method::GET, &url, &[("authorization", &bearer)], "");
                assert_eq!(send(&client, req).await.status, StatusCode::OK);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(emulation.stats().resource_ok, REQUESTS as u64);
    // Generous: even a debug build on a busy CI box does thousands per second.
    assert!(
        elapsed < Duration::from_secs(20),
        "{REQUESTS} requests took {elapsed:?}"
    );
}

#[tokio::test]
async fn dropping_the_emulation_stops_the_server() {
    let emulation = start(Api::Simacan).await;
    let addr = emulation.addr();
    // Keep a connection open across the drop: it must be closed too.
    let mut open = TcpStream::connect(addr).await.unwrap();
    drop(emulation);
    let deadline = std::time::Instant::now() + DEADLINE;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = open
        .write_all(b"GET /api/v1/resource HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(DEADLINE, open.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the open connection was not closed");
    assert!(answer.is_empty());
}

#[tokio::test]
async fn debug_output_redacts_secrets() {
    let config = Config {
        password: "pw-SECRET".into(),
        api_key: "key-SECRET".into(),
        client_secret: "cs-SECRET".into(),
        ..Config::default()
    };
    let printed = format!("{config:?}");
    assert!(!printed.contains("SECRET"), "{printed}");
    assert!(printed.contains("[redacted]"));
    assert!(printed.contains("user@example.com"));
    let emulation = Emulation::start(Api::OAuth2, config).await.unwrap();
    let printed = format!("{emulation:?}");
    assert!(!printed.contains("SECRET"), "{printed}");
    assert_eq!(
        format!("{:?}", emulation.config()),
        format!("{:?}", {
            let mut c = emulation.config().clone();
            c.password = "other".into();
            c
        })
    );
    let fault = format!("{:?}", Fault::Status(500, "x", "text/plain"));
    assert!(fault.contains("500"));
}

#[test]
fn config_defaults_match_the_documents() {
    let c = Config::default();
    assert_eq!(c.access_lifetime, Duration::from_secs(300));
    assert_eq!(c.refresh_lifetime, Duration::from_secs(1800));
    assert_eq!(c.username, "user@example.com");
    assert_eq!(c.password, "correct horse battery staple");
    assert_eq!(c.api_key, "c5f90f4b-9d69-416a-8611-8a8c8d605c36");
    assert_eq!(c.client_id, "apiclient");
    assert_eq!(c.client_secret, "client-secret");
    assert!(c.rotate_refresh_tokens);
    assert_eq!(Stats::default().violations, 0);
}
