//! Injected auth failures: a fixed [`Fault`], an outage window, and random faults at a rate.
//!
//! Each auth call meets at most one, decided when its body has been read, in that order of
//! precedence. Failures the server would give *before* doing any work (5xx, 429, a reset
//! connection, the outage) leave every token and every protocol counter as they were; 2xx
//! failures come *after* the work, as on a real server whose answer broke on the way out: the
//! call is processed (a presented refresh token is consumed), the tokens it issued are revoked
//! because nobody received them, and the client gets a useless 200.
//!
//! NOTE: the settings are read lock-free on every auth call; the random generator sits behind a
//! `std` mutex held only for one draw, never across an await.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{StatusCode, Uri};
use http_body_util::BodyExt;

use super::config::{Api, Fault};
use super::server::REDIRECT_PREFIX;
use super::state::Shared;
use super::stats::{bump, Counters};
use super::wire::{self, Resp};

/// One kind of injected auth failure, for [`Emulation::set_fault_rate`](super::Emulation::set_fault_rate).
///
/// The first four answer before the call is processed: no token is issued or consumed and no
/// protocol counter moves. `Slow` processes the call after a delay. The 2xx kinds process the
/// call, then revoke the tokens it issued and answer a 200 the client cannot use; a call that
/// was rejected or a violation gets its real answer instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultKind {
    /// 500 with an HTML error page (`text/html`), as a proxy or a crashed server answers.
    InternalError,
    /// 503 with an HTML error page.
    Unavailable,
    /// 429 with `Retry-After: <secs>` (whole seconds) and a short text body.
    TooManyRequests {
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u32,
    },
    /// The connection is closed without any answer: the client sees a transport error.
    Reset,
    /// The answer is delayed by this long, then the call is processed normally.
    Slow(Duration),
    /// 200 with a body that is not valid JSON (a truncated token response).
    Malformed,
    /// 200 with a JSON token response lacking `access_token` (Tradecloud: 200 without token
    /// headers).
    NoToken,
    /// 200 with an access token containing CR/LF (`"abc\r\ndef"`, JSON-escaped). Tradecloud
    /// answers as for [`NoToken`](FaultKind::NoToken): a header cannot carry CR/LF.
    CrLfToken,
    /// 200 whose `expires_in` is a string that is no number (`"soon"`), beside an access token
    /// the server never issued. Tradecloud answers as for [`NoToken`](FaultKind::NoToken).
    StringExpiry,
    /// 500 with the API's own JSON error body, before any work: the answer an API that documents
    /// one error status gives to a fault of its own, indistinguishable from its answer to refused
    /// credentials (union-service: `{"status":500,"title":"Internal Error",…}`; the others: an
    /// RFC 6749 `server_error`).
    ApiError,
}

impl FaultKind {
    /// Every kind, for "all kinds" plans: `Slow` with a delay of 300 ms, `TooManyRequests` with
    /// `retry_after_secs` 1.
    pub fn all() -> Vec<FaultKind> {
        vec![
            FaultKind::InternalError,
            FaultKind::Unavailable,
            FaultKind::TooManyRequests {
                retry_after_secs: 1,
            },
            FaultKind::Reset,
            FaultKind::Slow(Duration::from_millis(300)),
            FaultKind::Malformed,
            FaultKind::NoToken,
            FaultKind::CrLfToken,
            FaultKind::StringExpiry,
            FaultKind::ApiError,
        ]
    }
}

/// What the hyper service returns to make hyper drop the connection without an answer.
#[derive(Debug)]
pub(super) struct Reset;

impl fmt::Display for Reset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("injected fault: connection reset")
    }
}

impl std::error::Error for Reset {}

struct Random {
    rate: f64,
    kinds: Vec<FaultKind>,
}

struct Window {
    start: Instant,
    end: Instant,
}

/// The fault settings of one emulation.
pub(super) struct Faults {
    fixed: ArcSwapOption<Fault>,
    random: ArcSwapOption<Random>,
    outage: ArcSwapOption<Window>,
    rng: Mutex<fastrand::Rng>,
}

/// The fault one auth call meets.
pub(super) enum Injected {
    Fixed(Arc<Fault>),
    Outage,
    Kind(FaultKind),
}

impl Faults {
    pub(super) fn new(seed: Option<u64>) -> Self {
        let rng = seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
        Self {
            fixed: ArcSwapOption::empty(),
            random: ArcSwapOption::empty(),
            outage: ArcSwapOption::empty(),
            rng: Mutex::new(rng),
        }
    }

    pub(super) fn set_fixed(&self, fault: Option<Fault>) {
        self.fixed.store(fault.map(Arc::new));
    }

    pub(super) fn set_rate(&self, rate: f64, kinds: &[FaultKind]) {
        // NaN compares false: it turns faults off too.
        let on = rate > 0.0 && !kinds.is_empty();
        let plan = if !on {
            None
        } else {
            Some(Arc::new(Random {
                rate: rate.min(1.0),
                kinds: kinds.to_vec(),
            }))
        };
        self.random.store(plan);
    }

    pub(super) fn set_outage(&self, start: Duration, end: Duration) {
        let now = Instant::now();
        let at = |offset| {
            now.checked_add(offset)
                .or_else(|| now.checked_add(FAR))
                .unwrap_or(now)
        };
        self.outage.store(Some(Arc::new(Window {
            start: at(start),
            end: at(end),
        })));
    }

    pub(super) fn clear_outage(&self) {
        self.outage.store(None);
    }

    /// The fault an auth call arriving now meets, if any; counts the call as an outage call when
    /// it arrived inside the window, whatever answers it.
    pub(super) fn draw(&self, counters: &Counters) -> Option<Injected> {
        let in_outage = self.outage.load().as_ref().is_some_and(|window| {
            let now = Instant::now();
            window.start <= now && now < window.end
        });
        if in_outage {
            bump(&counters.outage_calls);
        }
        if let Some(fault) = self.fixed.load_full() {
            return Some(Injected::Fixed(fault));
        }
        if in_outage {
            return Some(Injected::Outage);
        }
        let plan = self.random.load();
        let plan = plan.as_ref()?;
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        if rng.f64() >= plan.rate {
            return None;
        }
        plan.kinds
            .get(rng.usize(..plan.kinds.len()))
            .copied()
            .map(Injected::Kind)
    }
}

/// About a century: an outage offset too large for `Instant` arithmetic.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

const HTML: &str = "text/html; charset=utf-8";
const INTERNAL_ERROR_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>\n<body><h1>Internal Server Error</h1><p>The server encountered an internal error and was unable to complete your request.</p></body></html>\n";
const UNAVAILABLE_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n<body><h1>Service Unavailable</h1><p>The server is temporarily unable to service your request. Please try again later.</p></body></html>\n";
/// A token response cut off in the middle of the access token.
const TRUNCATED_JSON: &str = r#"{"access_token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIi"#;
const CRLF_TOKEN: &str = "abc\r\ndef";
/// An access token no emulation issues.
const NEVER_ISSUED: &str = "never-issued";

/// [`FaultKind::ApiError`]'s answer.
fn api_error(api: Api) -> Resp {
    let body = if api == Api::UnionService {
        serde_json::json!({ "status": 500, "title": "Internal Error",
            "detail": "An unexpected error occurred" })
    } else {
        serde_json::json!({ "error": "server_error",
            "error_description": "An unexpected error occurred" })
    };
    wire::json(StatusCode::INTERNAL_SERVER_ERROR, &body)
}

const SET_AUTHORIZATION: HeaderName = HeaderName::from_static("set-authorization");
const SET_REFRESH_TOKEN: HeaderName = HeaderName::from_static("set-refresh-token");

fn html(status: StatusCode, page: &'static str) -> Resp {
    wire::respond(
        status,
        Some(HeaderValue::from_static(HTML)),
        Bytes::from_static(page.as_bytes()),
    )
}

/// The outage's answer: an auth server that is down behind its proxy.
pub(super) fn outage_response() -> Resp {
    html(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE_PAGE)
}

/// Answers an auth call to `uri` that met `injected`; `process` is the call's normal handling.
///
/// # Errors
///
/// [`Reset`], for the hyper service to drop the connection.
pub(super) async fn answer(
    shared: &Shared,
    injected: Injected,
    uri: &Uri,
    process: impl FnOnce() -> Resp,
) -> Result<Resp, Reset> {
    let counted = |name: &str| {
        bump(&shared.counters.faults);
        tracing::debug!(api = shared.api.name(), fault = name, "emulation: fault");
    };
    let kind = match injected {
        Injected::Fixed(fault) => {
            counted("fixed");
            return Ok(fixed_response(&fault, uri).await);
        }
        Injected::Outage => {
            counted("outage");
            return Ok(outage_response());
        }
        Injected::Kind(kind) => kind,
    };
    Ok(match kind {
        FaultKind::InternalError => {
            counted("internal error");
            html(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR_PAGE)
        }
        FaultKind::Unavailable => {
            counted("unavailable");
            html(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE_PAGE)
        }
        FaultKind::TooManyRequests { retry_after_secs } => {
            counted("too many requests");
            let mut response = wire::text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        FaultKind::Reset => {
            counted("reset");
            return Err(Reset);
        }
        FaultKind::Slow(delay) => {
            counted("slow");
            tokio::time::sleep(delay).await;
            process()
        }
        FaultKind::ApiError => {
            counted("api error");
            api_error(shared.api)
        }
        FaultKind::Malformed
        | FaultKind::NoToken
        | FaultKind::CrLfToken
        | FaultKind::StringExpiry => {
            let real = process();
            let (real, spoiled) = spoil(shared, kind, real).await;
            if spoiled {
                counted("spoiled 200");
            }
            real
        }
    })
}

/// Replaces a successful token answer by the faulty 200 of `kind`, revoking the tokens it
/// carried; any other answer comes back unchanged. The flag says whether it was replaced.
async fn spoil(shared: &Shared, kind: FaultKind, real: Resp) -> (Resp, bool) {
    if !real.status().is_success() {
        return (real, false);
    }
    let (parts, body) = real.into_parts();
    // A `Full` body is one ready frame: this never waits and never fails.
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let (access, refresh, json) = if shared.api == Api::Tradecloud {
        let header = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        (header(SET_AUTHORIZATION), header(SET_REFRESH_TOKEN), None)
    } else {
        let json = wire::json_object(&body);
        let field = |name| {
            json.as_ref()
                .and_then(|j| wire::str_field(j, name))
                .map(str::to_owned)
        };
        (field("access_token"), field("refresh_token"), json)
    };
    // No token in a 2xx: Tradecloud's quirk (a violation) already answered uselessly.
    let Some(access) = access else {
        let real = http::Response::from_parts(parts, http_body_util::Full::new(body));
        return (real, false);
    };
    shared.tokens.forget(&access, refresh.as_deref());
    let answer = match (kind, json) {
        (FaultKind::Malformed, _) => wire::respond(
            StatusCode::OK,
            Some(HeaderValue::from_static("application/json")),
            Bytes::from_static(TRUNCATED_JSON.as_bytes()),
        ),
        // Tradecloud: its tokens travel in headers, which cannot carry CR/LF.
        (_, None) => wire::empty(StatusCode::OK),
        (_, Some(mut json)) => {
            // Everything else of the real answer stays (`expires_in`, `token_type`, …); no token
            // that was revoked is handed out.
            for name in ["access_token", "refresh_token", "id_token"] {
                json.remove(name);
            }
            if kind == FaultKind::CrLfToken {
                json.insert("access_token".to_owned(), CRLF_TOKEN.into());
            }
            if kind == FaultKind::StringExpiry {
                json.insert("access_token".to_owned(), NEVER_ISSUED.into());
                json.insert("expires_in".to_owned(), "soon".into());
            }
            wire::token_json(StatusCode::OK, &serde_json::Value::Object(json))
        }
    };
    (answer, true)
}

/// The answer of a fixed [`Fault`] to a call to `uri`.
async fn fixed_response(fault: &Fault, uri: &Uri) -> Resp {
    match fault {
        Fault::Status(code, body, content_type) => {
            let status = StatusCode::from_u16(*code)
                .ok()
                .filter(|s| (200..=599).contains(&s.as_u16()))
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let content_type = HeaderValue::from_str(content_type).ok();
            wire::respond(status, content_type, Bytes::from_static(body.as_bytes()))
        }
        Fault::Hang => std::future::pending().await,
        Fault::Body(body) => wire::respond(
            StatusCode::OK,
            Some(HeaderValue::from_static("application/json")),
            Bytes::from(body.clone()),
        ),
        Fault::Header(name, value) => {
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                (Ok(name), Ok(value)) => {
                    let mut response = wire::empty(StatusCode::OK);
                    response.headers_mut().insert(name, value);
                    response
                }
                _ => wire::text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "fault header cannot be sent over HTTP",
                ),
            }
        }
        Fault::Redirect(code) => {
            let status = StatusCode::from_u16(*code)
                .ok()
                .filter(StatusCode::is_redirection);
            // Origin-form request targets are visible ASCII, which a header value can carry.
            let location = uri.path_and_query().and_then(|target| {
                HeaderValue::from_str(&format!("{REDIRECT_PREFIX}{target}")).ok()
            });
            match (status, location) {
                (Some(status), Some(location)) => {
                    let mut response = wire::empty(status);
                    response.headers_mut().insert(header::LOCATION, location);
                    response
                }
                _ => wire::text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "fault redirect status is not 3xx",
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    /// A successful token answer of `api`, as the endpoint builds it, and its two tokens.
    fn real_answer(shared: &Shared) -> (Resp, String, String) {
        let issued = shared.tokens.issue(&Arc::from("alice"), None, true);
        let (access, refresh) = (issued.access, issued.refresh.unwrap());
        let answer = if shared.api == Api::Tradecloud {
            let mut answer = wire::empty(StatusCode::OK);
            let headers = answer.headers_mut();
            headers.insert(SET_AUTHORIZATION, access.parse().unwrap());
            headers.insert(SET_REFRESH_TOKEN, refresh.parse().unwrap());
            answer
        } else {
            wire::token_json(
                StatusCode::OK,
                &serde_json::json!({ "access_token": access, "refresh_token": refresh,
                    "token_type": "bearer", "expires_in": 300 }),
            )
        };
        (answer, access, refresh)
    }

    #[test]
    fn spoiled_answers_revoke_the_tokens_they_carried() {
        use super::super::tokens::{Redeem, Redeemed};
        for api in [Api::Simacan, Api::Tradecloud] {
            for kind in [
                FaultKind::Malformed,
                FaultKind::NoToken,
                FaultKind::CrLfToken,
            ] {
                let shared = Shared::new(api, Config::default(), "test".into(), None);
                let (answer, access, refresh) = real_answer(&shared);
                let (spoiled, replaced) = block_on(spoil(&shared, kind, answer));
                assert!(replaced);
                assert_eq!(spoiled.status(), StatusCode::OK);
                assert!(spoiled.headers().get(SET_AUTHORIZATION).is_none());
                let body = block_on(spoiled.into_body().collect()).unwrap().to_bytes();
                let text = String::from_utf8_lossy(&body);
                assert!(
                    !text.contains(&access) && !text.contains(&refresh),
                    "{text}"
                );
                assert!(shared.tokens.access_subject(&access).is_none(), "{api:?}");
                assert!(matches!(
                    shared.tokens.redeem(&refresh, Redeem::SINGLE_USE),
                    Redeemed::Dead
                ));
            }
        }
    }

    #[test]
    fn answers_without_tokens_are_not_spoiled() {
        let shared = Shared::new(Api::Oli, Config::default(), "test".into(), None);
        for answer in [
            wire::text(StatusCode::BAD_REQUEST, "invalid_grant"),
            wire::empty(StatusCode::OK),
            wire::json(StatusCode::OK, &serde_json::json!({ "ok": true })),
        ] {
            let status = answer.status();
            let (answer, replaced) = block_on(spoil(&shared, FaultKind::NoToken, answer));
            assert!(!replaced);
            assert_eq!(answer.status(), status);
        }
    }

    fn kinds(faults: &Faults, counters: &Counters, n: usize) -> Vec<Option<FaultKind>> {
        (0..n)
            .map(|_| match faults.draw(counters) {
                Some(Injected::Kind(kind)) => Some(kind),
                Some(_) => panic!("no fixed fault or outage was set"),
                None => None,
            })
            .collect()
    }

    #[test]
    fn rate_bounds_and_seeded_draws() {
        let counters = Counters::default();
        let faults = Faults::new(Some(7));
        assert!(kinds(&faults, &counters, 100).iter().all(Option::is_none));
        faults.set_rate(1.0, &FaultKind::all());
        assert!(kinds(&faults, &counters, 1000).iter().all(Option::is_some));
        faults.set_rate(0.0, &FaultKind::all());
        assert!(kinds(&faults, &counters, 1000).iter().all(Option::is_none));
        faults.set_rate(f64::NAN, &FaultKind::all());
        assert!(kinds(&faults, &counters, 100).iter().all(Option::is_none));
        faults.set_rate(1.0, &[]);
        assert!(kinds(&faults, &counters, 100).iter().all(Option::is_none));

        let seeded = |seed| {
            let faults = Faults::new(Some(seed));
            faults.set_rate(0.5, &FaultKind::all());
            kinds(&faults, &counters, 200)
        };
        let draws = seeded(42);
        assert_eq!(draws, seeded(42));
        assert_ne!(draws, seeded(43));
        // Every kind turns up, at roughly the rate.
        let hits = draws.iter().flatten().count();
        assert!((60..=140).contains(&hits), "{hits} of 200");
        for kind in FaultKind::all() {
            assert!(draws.contains(&Some(kind)), "{kind:?} never drawn");
        }
    }

    #[test]
    fn precedence_fixed_then_outage_then_random() {
        let counters = Counters::default();
        let faults = Faults::new(None);
        faults.set_rate(1.0, &[FaultKind::Reset]);
        faults.set_outage(Duration::ZERO, Duration::from_secs(60));
        faults.set_fixed(Some(Fault::Hang));
        assert!(matches!(faults.draw(&counters), Some(Injected::Fixed(_))));
        faults.set_fixed(None);
        assert!(matches!(faults.draw(&counters), Some(Injected::Outage)));
        faults.clear_outage();
        assert!(matches!(
            faults.draw(&counters),
            Some(Injected::Kind(FaultKind::Reset))
        ));
        assert_eq!(counters.snapshot().outage_calls, 2);
        // A window that has not begun, or is empty, holds no call.
        faults.set_outage(Duration::from_secs(60), Duration::from_secs(120));
        faults.draw(&counters);
        faults.set_outage(Duration::from_secs(1), Duration::ZERO);
        faults.draw(&counters);
        faults.set_outage(Duration::MAX, Duration::MAX);
        faults.draw(&counters);
        assert_eq!(counters.snapshot().outage_calls, 2);
    }
}
