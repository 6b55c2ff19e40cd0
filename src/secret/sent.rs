//! What an auth request sent that may be a secret: the values server text is scrubbed of.

use base64::engine::{general_purpose::STANDARD, Engine as _};
use http_body_util::BodyExt;

use crate::provider::AuthRequest;

/// Fields whose values are protocol words, not secrets: "password" as a grant type would
/// otherwise be hidden from every message that names the password.
const PROTOCOL_FIELDS: [&str; 1] = ["grant_type"];

/// Every value `request` carries that may be a secret: query parameters, body fields (JSON
/// strings and numbers, or form values) and header values, with the HTTP Basic credentials
/// decoded and the password apart. Server text is scrubbed of them, in every encoding (see
/// `crate::secret::scrub`).
///
/// Left out, as protocol words and no secret: [`PROTOCOL_FIELDS`] and the representation headers
/// (`Content-Type`, `Accept`, ...).
pub(crate) async fn sent_values(request: &AuthRequest) -> Vec<String> {
    const PROTOCOL_HEADERS: [http::HeaderName; 5] = [
        http::header::ACCEPT,
        http::header::ACCEPT_ENCODING,
        http::header::CONTENT_LENGTH,
        http::header::CONTENT_TYPE,
        http::header::USER_AGENT,
    ];
    let form = |bytes: &[u8], values: &mut Vec<String>| {
        values.extend(
            form_urlencoded::parse(bytes)
                .filter(|(name, _)| !PROTOCOL_FIELDS.contains(&name.as_ref()))
                .map(|(_, v)| v.into_owned()),
        )
    };
    let mut values = Vec::new();
    form(
        request.uri().query().unwrap_or_default().as_bytes(),
        &mut values,
    );
    for (name, value) in request.headers() {
        if PROTOCOL_HEADERS.contains(name) {
            continue;
        }
        let Ok(value) = value.to_str() else { continue };
        let credentials = value.split_once(' ').map_or(value, |(_, rest)| rest);
        if let Some(decoded) = STANDARD
            .decode(credentials)
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
        {
            values.extend(
                decoded
                    .split_once(':')
                    .map(|(_, password)| password.to_owned()),
            );
            values.push(decoded);
            values.push(credentials.trim_end_matches('=').to_owned());
        }
        values.push(credentials.to_owned());
    }
    // `Full` is collected at once and never fails.
    let body = match request.body().clone().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(json) => json_strings(&json, &mut values),
        Err(_) => form(&body, &mut values),
    }
    values.retain(|v| !v.is_empty());
    values.sort_unstable();
    values.dedup();
    values
}

fn json_strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Number(n) => out.push(n.to_string()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| json_strings(v, out)),
        serde_json::Value::Object(map) => map
            .iter()
            .filter(|(name, _)| !PROTOCOL_FIELDS.contains(&name.as_str()))
            .for_each(|(_, v)| json_strings(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn every_sent_value_is_known_for_scrubbing() {
        let request = http::Request::post("http://auth.test/token?key=q-9012&v=1")
            .header(
                "authorization",
                format!("Basic {}", STANDARD.encode("me:pw-1234")),
            )
            .header("refresh-token", "rt-5678")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(Bytes::from_static(
                b"grant_type=password&password=hunter2",
            )))
            .unwrap();
        let values = sent_values(&request).await;
        for v in ["pw-1234", "me:pw-1234", "rt-5678", "hunter2", "q-9012"] {
            assert!(values.iter().any(|s| s == v), "{v} missing from {values:?}");
        }
        // The grant type and the representation headers are protocol words, not secrets.
        for v in ["password", "application/x-www-form-urlencoded"] {
            assert!(!values.iter().any(|s| s == v), "{v} in {values:?}");
        }
        let json = http::Request::post("http://auth.test/token")
            .body(http_body_util::Full::new(Bytes::from_static(
                br#"{"auth":{"api_key":"k-1"},"list":["x-2"]}"#,
            )))
            .unwrap();
        let values = sent_values(&json).await;
        assert!(values.contains(&"k-1".to_owned()) && values.contains(&"x-2".to_owned()));
    }
}
