//! Malformed input: requests no client should send, answered with typed errors and counted.

use crate::support::*;

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
