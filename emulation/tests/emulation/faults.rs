//! Faults: what each configured fault answers.

use crate::support::*;

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
