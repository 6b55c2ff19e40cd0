//! Reading requests and building responses, without ever trusting the bytes.
//!
//! Every parser here returns `None`/an error variant for anything malformed; the endpoint turns
//! that into a 4xx (or union-service's 500). Nothing here can panic on input.

use std::collections::HashMap;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode, Uri};
use http_body_util::Full;

/// Every answer the emulation gives.
pub(super) type Resp = Response<Full<Bytes>>;

/// Basic credentials are decoded with or without `=` padding: real servers are lenient here and
/// padding is not what an emulation should test.
const BASIC_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub(super) fn respond(status: StatusCode, content_type: Option<HeaderValue>, body: Bytes) -> Resp {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}

pub(super) fn json(status: StatusCode, value: &serde_json::Value) -> Resp {
    respond(
        status,
        Some(HeaderValue::from_static("application/json")),
        Bytes::from(value.to_string()),
    )
}

/// A JSON answer from a token endpoint: RFC 6749 5.1 forbids caching it, success or error.
pub(super) fn token_json(status: StatusCode, value: &serde_json::Value) -> Resp {
    let mut response = json(status, value);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

pub(super) fn text(status: StatusCode, body: &'static str) -> Resp {
    respond(
        status,
        Some(HeaderValue::from_static("text/plain; charset=utf-8")),
        Bytes::from_static(body.as_bytes()),
    )
}

pub(super) fn empty(status: StatusCode) -> Resp {
    respond(status, None, Bytes::new())
}

pub(super) fn method_not_allowed(allow: &'static str) -> Resp {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// The media type of the request body, lowercased, without parameters.
pub(super) fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim();
    Some(essence.to_ascii_lowercase())
}

pub(super) fn is_form(headers: &HeaderMap) -> bool {
    media_type(headers).as_deref() == Some("application/x-www-form-urlencoded")
}

pub(super) fn is_json(headers: &HeaderMap) -> bool {
    media_type(headers).as_deref() == Some("application/json")
}

/// Decoded form parameters by name.
pub(super) type FormMap = HashMap<String, String>;

/// A form body. Duplicate parameters are refused: RFC 6749 3.2 says parameters MUST NOT repeat,
/// and a repeated one usually means the client built its body wrong.
pub(super) enum Form {
    Params(FormMap),
    Duplicate,
}

pub(super) fn form(body: &[u8]) -> Form {
    let mut params = HashMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        if params
            .insert(name.into_owned(), value.into_owned())
            .is_some()
        {
            return Form::Duplicate;
        }
    }
    Form::Params(params)
}

/// Every value of the parameters that may repeat, by name, in order.
pub(super) type Repeated = Vec<(String, String)>;

/// A form body in which the parameters named in `repeatable` may repeat (RFC 8707 `resource`,
/// RFC 8693 `audience`): the map holds the first value of each, and the list every value of the
/// repeatable ones, in order. `None` when any other parameter repeats.
pub(super) fn form_repeatable(body: &[u8], repeatable: &[&str]) -> Option<(FormMap, Repeated)> {
    let mut params = HashMap::new();
    let mut repeated = Vec::new();
    for (name, value) in form_urlencoded::parse(body) {
        if repeatable.contains(&&*name) {
            repeated.push((name.clone().into_owned(), value.clone().into_owned()));
            params
                .entry(name.into_owned())
                .or_insert_with(|| value.into_owned());
        } else if params
            .insert(name.into_owned(), value.into_owned())
            .is_some()
        {
            return None;
        }
    }
    Some((params, repeated))
}

/// How an access token was presented to a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scheme {
    Bearer,
    /// RFC 9449 7.1: `Authorization: DPoP <token>`.
    Dpop,
}

/// The token of an `Authorization: Bearer …` or `Authorization: DPoP …` header (scheme
/// case-insensitive), with its scheme.
pub(super) fn access_token(headers: &HeaderMap) -> Option<(Scheme, &str)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    if token.is_empty() {
        return None;
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Some((Scheme::Bearer, token))
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Some((Scheme::Dpop, token))
    } else {
        None
    }
}

/// A JSON object body, or `None` for anything else (including invalid JSON).
pub(super) fn json_object(body: &[u8]) -> Option<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// A string member of a JSON object.
pub(super) fn str_field<'a>(
    object: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a str> {
    object.get(name)?.as_str()
}

pub(super) fn query_param(uri: &Uri, name: &str) -> Option<String> {
    let query = uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive).
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// What an `Authorization` header says about HTTP Basic credentials.
pub(super) enum Basic {
    /// No `Authorization` header.
    Absent,
    /// An `Authorization` header with another scheme.
    OtherScheme,
    /// `Basic` with something that does not decode to `user:password`.
    Malformed,
    Credentials {
        user: String,
        password: String,
    },
}

/// Parses Basic credentials. With `form_decoded`, both halves are additionally
/// `application/x-www-form-urlencoded`-decoded, as RFC 6749 2.3.1 prescribes for client ids and
/// secrets; Tradecloud takes them verbatim (RFC 7617).
pub(super) fn basic(headers: &HeaderMap, form_decoded: bool) -> Basic {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Basic::Absent;
    };
    if values.next().is_some() {
        return Basic::Malformed;
    }
    let Ok(value) = value.to_str() else {
        return Basic::Malformed;
    };
    let value = value.trim();
    let (scheme, encoded) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Basic::OtherScheme;
    }
    let Ok(decoded) = BASIC_ENGINE.decode(encoded.trim()) else {
        return Basic::Malformed;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return Basic::Malformed;
    };
    let Some((user, password)) = decoded.split_once(':') else {
        return Basic::Malformed;
    };
    if !form_decoded {
        return Basic::Credentials {
            user: user.to_owned(),
            password: password.to_owned(),
        };
    }
    match (form_decode(user), form_decode(password)) {
        (Some(user), Some(password)) => Basic::Credentials { user, password },
        _ => Basic::Malformed,
    }
}

/// Strict `application/x-www-form-urlencoded` decoding of one component: `+` is a space, `%XX`
/// must be two hex digits, the result must be UTF-8.
fn form_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                // Not `from_str_radix` alone: it accepts a sign, so `%+1` would decode.
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decode_is_strict() {
        assert_eq!(form_decode("a+b%2Bc%3A").as_deref(), Some("a b+c:"));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None);
        assert_eq!(form_decode("%+1"), None);
        assert_eq!(form_decode("%ff"), None);
    }

    #[test]
    fn basic_variants() {
        let mut headers = HeaderMap::new();
        assert!(matches!(basic(&headers, false), Basic::Absent));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(matches!(basic(&headers, false), Basic::OtherScheme));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert!(matches!(basic(&headers, false), Basic::Malformed));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("basic dTpwOnE"),
        );
        match basic(&headers, false) {
            Basic::Credentials { user, password } => assert_eq!((&*user, &*password), ("u", "p:q")),
            _ => panic!("expected credentials"),
        }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bEaReR  tok "),
        );
        assert_eq!(bearer(&headers), Some("tok"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&headers), None);
    }
}
