//! Bad answers from the auth server: typed errors, the valid token kept in use while its refresh
//! fails, and a refresh token consumed by a 2xx that cannot be used.

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use tower_token_auth::{AuthError, AuthLayer, Clock, ErrorKind};

use crate::support::{
    auth_error, bearer, paused_layer as new_layer, send, service, AuthServer, Fault, TestProvider,
    AUTH_DELAY, MARK,
};

pub(crate) fn reply(status: StatusCode, body: &'static [u8]) -> Fault {
    Fault::Reply(status, "application/json", Bytes::from_static(body))
}

/// Each bad answer from the auth server: the waiting request gets the right kind, nothing panics,
/// and a still-valid token keeps being used while its refresh fails.
#[tokio::test(start_paused = true)]
async fn bad_auth_responses_are_typed_errors_and_keep_the_valid_token() {
    let faults: Vec<(&str, Fault, ErrorKind)> = vec![
        (
            "truncated json",
            reply(StatusCode::OK, br#"{"access_token":"at-SECRET"#),
            ErrorKind::Malformed,
        ),
        (
            "html 200",
            Fault::Reply(
                StatusCode::OK,
                "text/html",
                Bytes::from_static(b"<html>hi</html>"),
            ),
            ErrorKind::Malformed,
        ),
        (
            "missing access_token",
            reply(StatusCode::OK, br#"{"refresh_token":"rt-SECRET"}"#),
            ErrorKind::Malformed,
        ),
        (
            "crlf token",
            reply(
                StatusCode::OK,
                b"{\"access_token\":\"at-SECRET\\r\\nX-Evil: 1\"}",
            ),
            ErrorKind::InvalidToken,
        ),
        (
            "oversized",
            reply(StatusCode::OK, &[b' '; 70_000]),
            ErrorKind::ResponseTooLarge,
        ),
        (
            "500 html",
            Fault::Reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/html",
                Bytes::from_static(b"<h1>oops</h1>"),
            ),
            ErrorKind::Status,
        ),
        (
            "503",
            reply(StatusCode::SERVICE_UNAVAILABLE, b""),
            ErrorKind::Status,
        ),
        ("timeout", Fault::Hang, ErrorKind::Timeout),
    ];
    for (name, fault, kind) in faults {
        // No token yet: the request waits, through retries, up to its bound; then it fails as
        // unavailable, with the last failure as the cause.
        let server = AuthServer::new(100, AUTH_DELAY);
        server.set_fault(Some(fault.clone()));
        let layer = AuthLayer::builder(TestProvider::new())
            .clock(Clock::tokio())
            .max_wait(Duration::from_secs(25))
            .build(server.transport());
        let svc = service(&server, &layer);
        let err = send(&svc).await.unwrap_err();
        let err = auth_error(&err);
        let unusable_2xx = name != "500 html" && name != "503" && name != "timeout";
        if unusable_2xx {
            // A 2xx without a usable token, five times in a row while the request waits: no
            // server coming back, but one answering uselessly. Backed off like a rejection, with
            // the answer's own kind; no more credentials meanwhile.
            assert_eq!(err.kind(), kind, "{name}: {err}");
            assert_eq!(server.logins(), 5, "{name}: five logins, then the backoff");
            assert!(!format!("{err} {err:?}").contains(MARK), "{name}: {err}");
            let again = send(&svc).await.unwrap_err();
            assert!(auth_error(&again).retry_in().is_some(), "{name}: {again}");
            assert_eq!(server.logins(), 5, "{name}: failing fast");
            valid_token_survives_failing_refreshes(name, fault).await;
            continue;
        }
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{name}: {err}");
        let cause = std::error::Error::source(err)
            .and_then(|e| e.downcast_ref::<AuthError>())
            .unwrap_or_else(|| panic!("{name}: no cause in {err:?}"));
        assert_eq!(cause.kind(), kind, "{name}: {err}");
        assert!(!format!("{err} {err:?}").contains(MARK), "{name}: {err}");
        let tries = layer.handle().metrics().auth_failures;
        assert!(tries >= 2, "{name}: retried inside the flight ({tries})");
        // Timeouts at 10 s, 20 s: the third login is still out when the request gives up.
        let in_flight = u64::from(matches!(fault, Fault::Hang));
        assert_eq!(
            tries + in_flight,
            server.logins() as u64,
            "{name}: every try a login"
        );
        valid_token_survives_failing_refreshes(name, fault).await;
    }
}

/// A valid token in the slot, its refresh failing with `fault`: requests keep succeeding on it,
/// and the first retry after the fault clears renews it.
async fn valid_token_survives_failing_refreshes(name: &str, fault: Fault) {
    {
        let server = AuthServer::new(100, AUTH_DELAY);
        let layer = new_layer(&server, TestProvider::new());
        let svc = service(&server, &layer);
        assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
        server.set_fault(Some(fault));
        tokio::time::advance(Duration::from_secs(75)).await;
        for _ in 0..3 {
            assert_eq!(send(&svc).await.unwrap(), StatusCode::OK, "{name}");
            tokio::time::sleep(Duration::from_secs(11)).await;
        }
        assert!(
            server.upstream_headers().iter().all(|h| *h == bearer(1)),
            "{name}"
        );
        // Once the fault clears, the next retry (at most 1 s later, while the token is still
        // valid) succeeds, and the requests after it carry the new token.
        server.set_fault(None);
        tokio::time::sleep(Duration::from_secs(1) + AUTH_DELAY * 2).await;
        assert_eq!(send(&svc).await.unwrap(), StatusCode::OK, "{name}");
        assert!(
            server
                .upstream_headers()
                .last()
                .unwrap()
                .starts_with("Bearer at-2"),
            "{name}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn refresh_answered_2xx_but_unusable_consumes_the_refresh_token() {
    let server = AuthServer::new(60, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = service(&server, &layer);
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    // The server takes the refresh token and answers garbage with a 200.
    server.set_fault(Some(reply(StatusCode::OK, br#"{"access_token":"at-SECR"#)));
    server.clear_fault_after(1);
    tokio::time::advance(Duration::from_secs(61)).await;
    // The layer logs in within the same flight: the request succeeds.
    assert_eq!(send(&svc).await.unwrap(), StatusCode::OK);
    // The consumed refresh token was not sent again.
    assert_eq!(server.refresh_tokens_seen(), [format!("rt-1-{MARK}")]);
    assert_eq!((server.logins(), server.refreshes()), (2, 1));
    assert_eq!(layer.handle().metrics().auth_failures, 1);
}
