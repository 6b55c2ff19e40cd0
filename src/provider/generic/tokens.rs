//! Where an auth answer keeps the tokens and their expiry: the standard JSON fields, response
//! headers, or any JSON pointer and header an API chose.

use std::time::{Duration, UNIX_EPOCH};

use http::HeaderName;
use serde_json::Value;

use super::rfc3339;
use crate::error::AuthError;
use crate::provider::AuthResponse;
use crate::token::{json_error, number, TokenSet, MAX_LIFETIME};

/// Where an auth response keeps the tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum TokenSource {
    /// A standard JSON token response ([`TokenSet::from_json`]).
    JsonBody,
    /// Response headers holding the bare tokens (an optional `Bearer ` prefix is accepted).
    /// A success without the access header is an error: the server issued no new pair.
    #[cfg(test)]
    Headers {
        /// The access token header.
        access: HeaderName,
        /// The refresh token header.
        refresh: HeaderName,
    },
    /// Each part where [`TokenFields`] says.
    Fields(TokenFields),
}

impl TokenSource {
    pub(super) fn parse(&self, response: &AuthResponse) -> Result<TokenSet, AuthError> {
        match self {
            TokenSource::JsonBody => TokenSet::from_json(response.body()),
            #[cfg(test)]
            TokenSource::Headers { access, refresh } => {
                TokenFields::new(Location::Header(access.clone()))
                    .refresh(Location::Header(refresh.clone()))
                    .parse(response)
            }
            TokenSource::Fields(fields) => fields.parse(response),
        }
    }
}

/// Where a value is in an auth response.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Location {
    /// A JSON pointer (RFC 6901) into the body: `/access_token`, `/data/session/token`.
    Pointer(String),
    /// A response header. A token read from a header may carry a `Bearer ` prefix, which is
    /// dropped.
    Header(HeaderName),
}

/// How an answer states when the access (or refresh) token expires.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Expiry {
    /// A lifetime in seconds (a number, fractions kept, or a numeric string).
    Seconds(Location),
    /// A lifetime in milliseconds (a number or a numeric string).
    Millis(Location),
    /// An absolute instant.
    At(Location, Timestamp),
}

/// How an absolute instant is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Timestamp {
    /// An RFC 3339 date-time string: `2025-01-31T12:00:00Z`, `2025-01-31T14:00:00.5+02:00`.
    Rfc3339,
    /// Seconds since the Unix epoch (a number or a numeric string).
    UnixSeconds,
    /// Milliseconds since the Unix epoch (a number or a numeric string).
    UnixMillis,
}

/// Where an answer keeps each part of a token set, for APIs whose answer is not the standard
/// JSON one.
///
/// The access token is required (a success without it is an error: the server issued no new
/// pair); the refresh token and the expiries are read when present. Without a stated expiry the
/// layer reads the access token's JWT `exp`, else assumes
/// [`TokenPolicy::default_lifetime`](crate::provider::TokenPolicy::default_lifetime).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TokenFields {
    access: Location,
    refresh: Option<Location>,
    expires: Option<Expiry>,
    refresh_expires: Option<Expiry>,
}

impl TokenFields {
    /// The access token at `access`; no refresh token, no stated expiry.
    pub(crate) fn new(access: Location) -> Self {
        Self {
            access,
            refresh: None,
            expires: None,
            refresh_expires: None,
        }
    }

    /// The refresh token at `location`.
    pub(crate) fn refresh(mut self, location: Location) -> Self {
        self.refresh = Some(location);
        self
    }

    /// How the access token's expiry is stated.
    pub(crate) fn expires(mut self, expiry: Expiry) -> Self {
        self.expires = Some(expiry);
        self
    }

    /// How the refresh token's expiry is stated.
    pub(crate) fn refresh_expires(mut self, expiry: Expiry) -> Self {
        self.refresh_expires = Some(expiry);
        self
    }

    /// Whether a refresh token can be read from an answer.
    pub(crate) fn has_refresh(&self) -> bool {
        self.refresh.is_some()
    }

    fn parse(&self, response: &AuthResponse) -> Result<TokenSet, AuthError> {
        let answer = Answer::new(response, self)?;
        let access = answer
            .token(&self.access)?
            .ok_or_else(|| AuthError::malformed(format!("success without {}", self.access)))?;
        let mut tokens = TokenSet::new(access);
        if let Some(location) = &self.refresh {
            if let Some(refresh) = answer.token(location)? {
                tokens = tokens.with_refresh_token(refresh);
            }
        }
        if let Some(expiry) = &self.expires {
            match answer.expiry(expiry)? {
                Some(Stated::In(d)) if d.is_zero() => {
                    return Err(AuthError::malformed(format!("{expiry} is not positive")))
                }
                Some(Stated::In(d)) => tokens = tokens.with_expires_in(d),
                Some(Stated::At(at)) => tokens = tokens.with_expires_at(at),
                None => {}
            }
        }
        if let Some(expiry) = &self.refresh_expires {
            match answer.expiry(expiry)? {
                Some(Stated::In(d)) if !d.is_zero() => tokens = tokens.with_refresh_expires_in(d),
                Some(Stated::At(at)) => tokens = tokens.with_refresh_expires_at(at),
                _ => {}
            }
        }
        Ok(tokens)
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Pointer(p) => write!(f, "`{p}` in the body"),
            Location::Header(h) => write!(f, "a `{h}` header"),
        }
    }
}

impl Expiry {
    fn location(&self) -> &Location {
        match self {
            Expiry::Seconds(l) | Expiry::Millis(l) | Expiry::At(l, _) => l,
        }
    }
}

impl std::fmt::Display for Expiry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.location().fmt(f)
    }
}

/// An expiry as the answer stated it.
enum Stated {
    In(Duration),
    At(std::time::SystemTime),
}

/// One auth answer, its body parsed once if any value is read from it.
struct Answer<'a> {
    response: &'a AuthResponse,
    body: Option<Value>,
}

impl<'a> Answer<'a> {
    fn new(response: &'a AuthResponse, fields: &TokenFields) -> Result<Self, AuthError> {
        let expiries = [&fields.expires, &fields.refresh_expires];
        let reads_body = [Some(&fields.access), fields.refresh.as_ref()]
            .into_iter()
            .chain(expiries.map(|e| e.as_ref().map(Expiry::location)))
            .flatten()
            .any(|l| matches!(l, Location::Pointer(_)));
        let body = reads_body
            .then(|| serde_json::from_slice(response.body()).map_err(json_error))
            .transpose()?;
        Ok(Self { response, body })
    }

    /// The raw value at `location`, if present (JSON `null` counts as absent).
    fn value(&self, location: &Location) -> Result<Option<Value>, AuthError> {
        Ok(match location {
            Location::Pointer(pointer) => self
                .body
                .as_ref()
                .and_then(|b| b.pointer(pointer))
                .filter(|v| !v.is_null())
                .cloned(),
            Location::Header(name) => match self.response.headers().get(name) {
                None => None,
                Some(value) => Some(Value::String(
                    value
                        .to_str()
                        .map_err(|_| {
                            AuthError::invalid_token(format!("`{name}` is not visible ASCII"))
                        })?
                        .trim()
                        .to_owned(),
                )),
            },
        })
    }

    /// A token at `location`: a non-empty string (a header's `Bearer ` prefix dropped).
    fn token(&self, location: &Location) -> Result<Option<String>, AuthError> {
        let token = match self.value(location)? {
            None => return Ok(None),
            Some(Value::String(token)) => token,
            Some(_) => return Err(AuthError::malformed(format!("{location} is not a string"))),
        };
        let token = match (location, token.get(..7)) {
            (Location::Header(_), Some(p)) if p.eq_ignore_ascii_case("bearer ") => {
                token[7..].trim_start().to_owned()
            }
            _ => token,
        };
        Ok(Some(token).filter(|t| !t.is_empty()))
    }

    fn expiry(&self, expiry: &Expiry) -> Result<Option<Stated>, AuthError> {
        let (scale, absolute) = match expiry {
            Expiry::Seconds(_) => (1.0, false),
            Expiry::Millis(_) => (1e-3, false),
            Expiry::At(_, Timestamp::UnixSeconds) => (1.0, true),
            Expiry::At(_, Timestamp::UnixMillis) => (1e-3, true),
            Expiry::At(l, Timestamp::Rfc3339) => {
                return match self.value(l)? {
                    None => Ok(None),
                    Some(Value::String(text)) => rfc3339::parse(&text)
                        .map(|at| Some(Stated::At(at)))
                        .ok_or_else(|| {
                            AuthError::malformed(format!("{expiry} is not an RFC 3339 date-time"))
                        }),
                    Some(_) => Err(AuthError::malformed(format!("{expiry} is not a string"))),
                };
            }
        };
        let Some(value) = self.value(expiry.location())? else {
            return Ok(None);
        };
        let not_a_number = || AuthError::malformed(format!("{expiry} is not a number"));
        let number = number(&value).map_err(|()| not_a_number())?;
        let Some(number) = number.map(|n| n * scale) else {
            return Ok(None);
        };
        Ok(Some(if absolute {
            // Up to the end of year 9999: beyond, a clock cannot hold it.
            let secs = (0.0..=253_402_300_799.0)
                .contains(&number)
                .then_some(number)
                .ok_or_else(not_a_number)?;
            Stated::At(UNIX_EPOCH + Duration::from_secs_f64(secs))
        } else {
            Stated::In(Duration::from_secs_f64(
                number.clamp(0.0, MAX_LIFETIME.as_secs_f64()),
            ))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::HeaderValue;

    /// Fields read from a nested answer, with an RFC 3339 expiry.
    #[test]
    fn fields_describe_a_nested_answer() {
        // {"data":{"token":"…","renew":"…","valid_until":"2025-01-31T12:00:00Z"}}
        let source = TokenSource::Fields(
            TokenFields::new(Location::Pointer("/data/token".into()))
                .refresh(Location::Pointer("/data/renew".into()))
                .expires(Expiry::At(
                    Location::Pointer("/data/valid_until".into()),
                    Timestamp::Rfc3339,
                )),
        );
        assert!(matches!(source, TokenSource::Fields(_)));
    }

    use crate::secret::Secret;
    use crate::ErrorKind;

    fn answer(body: &str) -> AuthResponse {
        AuthResponse::new(Bytes::from(body.to_owned()))
    }

    fn pointer(p: &str) -> Location {
        Location::Pointer(p.to_owned())
    }

    #[test]
    fn header_tokens() {
        let source = TokenSource::Headers {
            access: HeaderName::from_static("set-authorization"),
            refresh: HeaderName::from_static("set-refresh-token"),
        };
        let mut response = AuthResponse::new(Bytes::new());
        let err = source.parse(&response).unwrap_err();
        assert!(err.kind() == ErrorKind::Malformed);
        response
            .headers_mut()
            .insert("set-authorization", HeaderValue::from_static("Bearer at"));
        response
            .headers_mut()
            .insert("set-refresh-token", HeaderValue::from_static("rt"));
        let tokens = source.parse(&response).unwrap();
        assert_eq!(tokens.access_token().expose(), "at");
        assert_eq!(tokens.refresh_token().map(Secret::expose), Some("rt"));
    }

    #[test]
    fn nested_fields_and_every_expiry_form() {
        let fields = |expiry: Expiry| {
            TokenFields::new(pointer("/data/token"))
                .refresh(pointer("/data/renew"))
                .expires(expiry)
        };
        let body = r#"{"data":{"token":"at","renew":"rt","in":90,"ms":"1500",
            "at":"2023-11-14T22:13:20Z","epoch":1700000000,"epoch_ms":1700000000500}}"#;
        let parse = |e| fields(e).parse(&answer(body)).unwrap();
        let t = parse(Expiry::Seconds(pointer("/data/in")));
        assert_eq!(t.access_token().expose(), "at");
        assert_eq!(t.refresh_token().map(Secret::expose), Some("rt"));
        assert_eq!(t.expires_in(), Some(Duration::from_secs(90)));
        let t = parse(Expiry::Millis(pointer("/data/ms")));
        assert_eq!(t.expires_in(), Some(Duration::from_millis(1500)));
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let t = parse(Expiry::At(pointer("/data/at"), Timestamp::Rfc3339));
        assert_eq!((t.expires_in(), t.expires_at()), (None, Some(at)));
        let t = parse(Expiry::At(pointer("/data/epoch"), Timestamp::UnixSeconds));
        assert_eq!(t.expires_at(), Some(at));
        let t = parse(Expiry::At(pointer("/data/epoch_ms"), Timestamp::UnixMillis));
        assert_eq!(t.expires_at(), Some(at + Duration::from_millis(500)));
        // Absent: no stated expiry.
        let t = parse(Expiry::Seconds(pointer("/data/none")));
        assert_eq!((t.expires_in(), t.expires_at()), (None, None));
    }

    #[test]
    fn bad_answers_are_malformed_and_name_the_place() {
        let fields = TokenFields::new(pointer("/token"))
            .expires(Expiry::At(pointer("/until"), Timestamp::Rfc3339));
        for (body, says) in [
            (r#"{"other":"x"}"#, "success without `/token` in the body"),
            (r#"{"token":7}"#, "`/token` in the body is not a string"),
            (r#"{"token":""}"#, "success without `/token` in the body"),
            (
                r#"{"token":"a","until":"soon"}"#,
                "`/until` in the body is not an RFC 3339 date-time",
            ),
            ("<html>", "invalid JSON at line 1 column 1"),
        ] {
            let err = fields.parse(&answer(body)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Malformed, "{body}");
            assert!(err.to_string().ends_with(says), "{err}");
        }
        let zero = TokenFields::new(pointer("/t")).expires(Expiry::Seconds(pointer("/in")));
        let err = zero.parse(&answer(r#"{"t":"a","in":0}"#)).unwrap_err();
        assert!(err
            .to_string()
            .ends_with("`/in` in the body is not positive"));
    }

    #[test]
    fn header_expiry() {
        let fields = TokenFields::new(Location::Header(HeaderName::from_static("x-token")))
            .expires(Expiry::Seconds(Location::Header(HeaderName::from_static(
                "x-expires-in",
            ))));
        let mut response = AuthResponse::new(Bytes::new());
        response
            .headers_mut()
            .insert("x-token", HeaderValue::from_static("at"));
        response
            .headers_mut()
            .insert("x-expires-in", HeaderValue::from_static(" 60 "));
        let t = fields.parse(&response).unwrap();
        assert_eq!(t.expires_in(), Some(Duration::from_secs(60)));
    }
}
