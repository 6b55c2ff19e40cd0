//! Token sets as auth servers return them, and how long they live.
//!
//! A token's lifetime comes from, in order: the response's `expires_in` (a number or a numeric
//! string), the access token's JWT `exp` claim, or the layer's configured default. A 401 from the
//! upstream remains the backstop whichever source was used.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::alphabet;
use base64::engine::{DecodePaddingMode, Engine as _, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use serde_json::Value;

use crate::error::AuthError;
use crate::secret::Secret;

mod issued;
pub(crate) mod view;

pub(crate) use self::issued::Issued;

/// Lifetimes above this are clamped, so that `Instant` arithmetic can never overflow.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// A freshly issued access token, with its refresh token and lifetimes when the server gave them.
///
/// Providers build one from an auth response, usually with [`TokenSet::from_json`].
///
/// # When a lifetime counts from
///
/// A relative lifetime ([`with_expires_in`](Self::with_expires_in), the answer's `expires_in`)
/// counts from the moment the auth request was **sent**, not from when the answer arrived: the
/// server issued the token somewhere in between, so the layer never believes a token valid past
/// the server's own deadline, however slow the answer. An absolute expiry
/// ([`with_expires_at`](Self::with_expires_at)) is read against the layer's wall clock when the
/// answer arrives. Without either, the lifetime comes from the access token's JWT `exp` (its
/// `exp - iat` also counts from the sending), else from
/// [`TokenPolicy::default_lifetime`](crate::provider::TokenPolicy::default_lifetime).
///
/// ```
/// use std::time::Duration;
/// use tower_token_auth::token::TokenSet;
///
/// let tokens = TokenSet::from_json(
///     br#"{"access_token":"abc","token_type":"bearer","expires_in":"3600","refresh_token":"r1"}"#,
/// )?;
/// assert_eq!(tokens.access_token().expose(), "abc");
/// assert_eq!(tokens.expires_in(), Some(Duration::from_secs(3600)));
/// # Ok::<(), tower_token_auth::AuthError>(())
/// ```
#[derive(Clone)]
pub struct TokenSet {
    access_token: Secret,
    refresh_token: Option<Secret>,
    expires_in: Option<Duration>,
    expires_at: Option<SystemTime>,
    refresh_expires_in: Option<Duration>,
    refresh_expires_at: Option<SystemTime>,
    token_type: Option<String>,
}

impl TokenSet {
    /// A token set holding only an access token.
    pub fn new(access_token: impl Into<Secret>) -> Self {
        Self {
            access_token: access_token.into(),
            refresh_token: None,
            expires_in: None,
            expires_at: None,
            refresh_expires_in: None,
            refresh_expires_at: None,
            token_type: None,
        }
    }

    /// Sets the refresh token.
    pub fn with_refresh_token(mut self, refresh_token: impl Into<Secret>) -> Self {
        self.refresh_token = Some(refresh_token.into());
        self
    }

    /// Sets the access token's lifetime (clamped to ten years), counted from when the auth
    /// request was sent. Replaces an expiry set with [`with_expires_at`](Self::with_expires_at).
    pub fn with_expires_in(mut self, expires_in: Duration) -> Self {
        self.expires_in = Some(expires_in.min(MAX_LIFETIME));
        self.expires_at = None;
        self
    }

    /// Sets the instant the access token expires, for APIs that state an absolute expiry (an
    /// RFC 3339 `expires_at`, an epoch timestamp). Read against the layer's wall clock
    /// ([`Clock::wall`](crate::Clock::wall)) when the answer arrives; an instant already past is
    /// taken for clock skew, and the token is assumed to live a short while, with a 401 as the
    /// backstop. Replaces a lifetime set with [`with_expires_in`](Self::with_expires_in).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use tower_token_auth::token::TokenSet;
    ///
    /// let at = SystemTime::now() + Duration::from_secs(3600);
    /// let tokens = TokenSet::new("abc").with_expires_at(at);
    /// assert_eq!((tokens.expires_at(), tokens.expires_in()), (Some(at), None));
    /// ```
    pub fn with_expires_at(mut self, expires_at: SystemTime) -> Self {
        self.expires_at = Some(expires_at);
        self.expires_in = None;
        self
    }

    /// Sets the refresh token's lifetime (clamped to ten years), counted from when the auth
    /// request was sent.
    pub fn with_refresh_expires_in(mut self, refresh_expires_in: Duration) -> Self {
        self.refresh_expires_in = Some(refresh_expires_in.min(MAX_LIFETIME));
        self.refresh_expires_at = None;
        self
    }

    /// Sets the instant the refresh token expires (see [`with_expires_at`](Self::with_expires_at)).
    pub fn with_refresh_expires_at(mut self, refresh_expires_at: SystemTime) -> Self {
        self.refresh_expires_at = Some(refresh_expires_at);
        self.refresh_expires_in = None;
        self
    }

    /// The same set without its refresh token.
    pub(crate) fn without_refresh_token(mut self) -> Self {
        self.refresh_token = None;
        self.refresh_expires_in = None;
        self.refresh_expires_at = None;
        self
    }

    /// Sets the token type the server stated (`token_type`), which the layer checks against the
    /// scheme it sends the token with (see [`from_json`](Self::from_json)).
    pub fn with_token_type(mut self, token_type: impl Into<String>) -> Self {
        self.token_type = Some(token_type.into());
        self
    }

    /// The access token.
    pub fn access_token(&self) -> &Secret {
        &self.access_token
    }

    /// The refresh token, if one was issued.
    pub fn refresh_token(&self) -> Option<&Secret> {
        self.refresh_token.as_ref()
    }

    /// The access token's lifetime, if the server stated one, counted from when the auth request
    /// was sent.
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    /// The instant the access token expires, if the server stated one.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// The refresh token's lifetime, if the server stated one, counted from when the auth request
    /// was sent.
    pub fn refresh_expires_in(&self) -> Option<Duration> {
        self.refresh_expires_in
    }

    /// The instant the refresh token expires, if the server stated one.
    pub(crate) fn refresh_expires_at(&self) -> Option<SystemTime> {
        self.refresh_expires_at
    }

    /// The token type, if the server stated it (`"Bearer"`, `"JWT"`, …).
    pub(crate) fn token_type(&self) -> Option<&str> {
        self.token_type.as_deref()
    }

    /// Parses a standard token response body (RFC 6749 §5.1, as Keycloak and most APIs send it).
    ///
    /// - `access_token`: required, a non-empty string;
    /// - `token_type`: optional, kept (see [`with_token_type`](Self::with_token_type)). The layer accepts
    ///   `bearer` (RFC 6750) in any case, and any other type only when it names the scheme the
    ///   token is sent with
    ///   ([`TokenHeader::with_scheme`](crate::provider::TokenHeader::with_scheme), also in any
    ///   case), or when the token is sent bare
    ///   ([`TokenHeader::new`](crate::provider::TokenHeader::new), no scheme to disagree with). So `"token_type": "JWT"` works once the policy sends
    ///   `Authorization: JWT <token>`; with the default `Bearer` scheme it fails with
    ///   [`ErrorKind::TokenType`](crate::ErrorKind::TokenType), rather than sending a token in a
    ///   scheme it was not issued for;
    /// - `expires_in`, `refresh_expires_in`: optional, seconds as a number or a numeric string;
    ///   fractions are kept. A zero or negative `expires_in` is malformed; a zero
    ///   `refresh_expires_in` means "no stated expiry", as Keycloak uses it;
    /// - `refresh_token`: optional string.
    ///
    /// Unknown fields are ignored. Errors name the field that was wrong, never its value.
    pub fn from_json(body: &[u8]) -> Result<Self, AuthError> {
        #[derive(Deserialize)]
        struct Raw {
            access_token: Option<String>,
            refresh_token: Option<String>,
            token_type: Option<String>,
            expires_in: Option<Value>,
            refresh_expires_in: Option<Value>,
        }
        let raw: Raw = serde_json::from_slice(body).map_err(json_error)?;
        let access_token = match raw.access_token {
            Some(token) if !token.is_empty() => token,
            Some(_) => return Err(AuthError::malformed("`access_token` is empty")),
            None => return Err(AuthError::malformed("missing `access_token`")),
        };
        let mut tokens = TokenSet::new(access_token);
        tokens.token_type = raw.token_type.filter(|t| !t.is_empty());
        tokens.refresh_token = raw
            .refresh_token
            .filter(|t| !t.is_empty())
            .map(Secret::from);
        tokens.expires_in = match raw.expires_in.as_ref().map_or(Ok(None), seconds) {
            Ok(Some(d)) if d.is_zero() => {
                return Err(AuthError::malformed("`expires_in` is not positive"))
            }
            Ok(d) => d,
            Err(()) => {
                return Err(AuthError::malformed(
                    "`expires_in` is not a number of seconds",
                ))
            }
        };
        tokens.refresh_expires_in = match raw.refresh_expires_in.as_ref().map_or(Ok(None), seconds)
        {
            Ok(d) => d.filter(|d| !d.is_zero()),
            Err(()) => {
                return Err(AuthError::malformed(
                    "`refresh_expires_in` is not a number of seconds",
                ))
            }
        };
        Ok(tokens)
    }
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &self.access_token)
            .field("refresh_token", &self.refresh_token)
            .field("expires_in", &self.expires_in)
            .field("expires_at", &self.expires_at)
            .field("refresh_expires_in", &self.refresh_expires_in)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .field("token_type", &self.token_type)
            .finish()
    }
}

/// Reads seconds from a JSON number or numeric string. `null` is "not given"; a negative value
/// reads as zero so that callers reject it together with zero.
fn seconds(value: &Value) -> Result<Option<Duration>, ()> {
    Ok(number(value)?
        .map(|secs| Duration::from_secs_f64(secs.clamp(0.0, MAX_LIFETIME.as_secs_f64()))))
}

/// A finite number from a JSON number or numeric string; `null` is "not given".
pub(crate) fn number(value: &Value) -> Result<Option<f64>, ()> {
    let number = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_f64().ok_or(())?,
        Value::String(s) => s.trim().parse::<f64>().map_err(|_| ())?,
        _ => return Err(()),
    };
    if number.is_finite() {
        Ok(Some(number))
    } else {
        Err(())
    }
}

/// Describes a JSON error by category and position only: serde's messages may quote input, and
/// the input may hold a token.
pub(crate) fn json_error(err: serde_json::Error) -> AuthError {
    use serde_json::error::Category;
    let what = match err.classify() {
        Category::Io => "I/O error",
        Category::Syntax => "invalid JSON",
        Category::Eof => "truncated JSON",
        Category::Data => "unexpected JSON shape",
    };
    AuthError::malformed(format!(
        "{what} at line {} column {}",
        err.line(),
        err.column()
    ))
}

/// Base64url, as JWTs use it, accepting padded and unpadded input.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The `exp` and, when present, `iat` claims of a JWT: only the payload is decoded; the signature
/// is **not** checked. A client has no key to check it with, and it does not need one: the expiry
/// only decides when to ask for a new token early. The server still validates every token, and a
/// 401 still triggers a refresh.
fn jwt_times(token: &str) -> Option<(u64, Option<u64>)> {
    #[derive(Deserialize)]
    struct Claims {
        exp: Option<Value>,
        iat: Option<Value>,
    }
    fn seconds(value: Value) -> Option<u64> {
        match value {
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            }),
            _ => None,
        }
    }
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        // Five parts: an encrypted JWT (JWE), whose claims a client cannot read.
        return None;
    }
    let payload = BASE64URL.decode(payload).ok()?;
    let claims: Claims = serde_json::from_slice(&payload).ok()?;
    Some((seconds(claims.exp?)?, claims.iat.and_then(seconds)))
}

/// How long a token lives, read from its JWT claims or an absolute expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lifetime {
    /// `exp - iat`: the lifetime the issuer gave it, to count from when it was requested. Immune
    /// to a skewed local clock.
    Issued(Duration),
    /// `exp - now` by the local clock (no `iat`, or an absolute expiry): to count from its
    /// arrival. Zero when passed.
    Remaining(Duration),
}

impl Lifetime {
    /// What remains until `at` by the local clock's `now`.
    pub(crate) fn until(at: SystemTime, now: SystemTime) -> Self {
        Lifetime::Remaining(
            at.duration_since(now)
                .unwrap_or(Duration::ZERO)
                .min(MAX_LIFETIME),
        )
    }
}

/// The lifetime of `token` if it is a JWT with an `exp` claim.
pub(crate) fn jwt_lifetime(token: &str, now: SystemTime) -> Option<Lifetime> {
    let (exp, iat) = jwt_times(token)?;
    if let Some(iat) = iat.filter(|iat| *iat < exp) {
        return Some(Lifetime::Issued(
            Duration::from_secs(exp - iat).min(MAX_LIFETIME),
        ));
    }
    let exp = UNIX_EPOCH.checked_add(Duration::from_secs(exp))?;
    Some(Lifetime::until(exp, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.sig",
            BASE64URL.encode(r#"{"alg":"HS256"}"#),
            BASE64URL.encode(payload)
        )
    }

    #[test]
    fn parses_keycloak_response() {
        let t = TokenSet::from_json(
            br#"{"access_token":"a","expires_in":300,"refresh_expires_in":1800,
                "refresh_token":"r","token_type":"Bearer","not-before-policy":0,"scope":"x"}"#,
        )
        .unwrap();
        assert_eq!(t.access_token().expose(), "a");
        assert_eq!(t.refresh_token().map(Secret::expose), Some("r"));
        assert_eq!(t.expires_in(), Some(Duration::from_secs(300)));
        assert_eq!(t.refresh_expires_in(), Some(Duration::from_secs(1800)));
    }

    #[test]
    fn expires_in_forms() {
        let parse = |v: &str| {
            TokenSet::from_json(format!(r#"{{"access_token":"a","expires_in":{v}}}"#).as_bytes())
        };
        assert_eq!(
            parse(r#""3600""#).unwrap().expires_in(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            parse("1.5").unwrap().expires_in(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse("null").unwrap().expires_in(), None);
        assert_eq!(parse("1e300").unwrap().expires_in(), Some(MAX_LIFETIME));
        for bad in ["0", "-5", r#""soon""#, "true", "[1]"] {
            assert_eq!(
                parse(bad).unwrap_err().kind(),
                ErrorKind::Malformed,
                "{bad}"
            );
        }
    }

    #[test]
    fn token_type_is_kept_for_the_layer_to_check() {
        for (json, kept) in [
            (r#""JWT""#, Some("JWT")),
            (r#""bearer""#, Some("bearer")),
            (r#""""#, None),
            ("null", None),
        ] {
            let body = format!(r#"{{"access_token":"a","token_type":{json}}}"#);
            let tokens = TokenSet::from_json(body.as_bytes()).unwrap();
            assert_eq!(tokens.token_type(), kept, "{json}");
        }
        let err = TokenSet::from_json(br#"{"access_token":"a","token_type":7}"#).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Malformed);
    }

    #[test]
    fn malformed_bodies_never_echo_input() {
        for body in [
            &br#"{"access_token": 12345678}"#[..],
            br#"{"access_token":"SECRETVALUE""#,
            br#"{"refresh_token":"SECRETVALUE"}"#,
            b"<html>SECRETVALUE</html>",
            br#""SECRETVALUE""#,
            b"",
        ] {
            let err = TokenSet::from_json(body).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Malformed);
            let shown = format!("{err} {err:?}");
            assert!(
                !shown.contains("SECRETVALUE") && !shown.contains("12345678"),
                "{shown}"
            );
        }
    }

    /// The `exp` claim alone.
    fn jwt_exp(token: &str) -> Option<u64> {
        jwt_times(token).map(|(exp, _)| exp)
    }

    #[test]
    fn jwt_exp_decoding() {
        // {"alg":"none"} . {"exp":1700000000} . (no signature)
        assert_eq!(
            jwt_exp("eyJhbGciOiJub25lIn0.eyJleHAiOjE3MDAwMDAwMDB9."),
            Some(1_700_000_000)
        );
        assert_eq!(jwt_exp("not-a-jwt"), None);
        assert_eq!(
            jwt_exp(&jwt(r#"{"exp":1700000000,"sub":"x"}"#)),
            Some(1_700_000_000)
        );
        assert_eq!(
            jwt_exp(&jwt(r#"{"exp":1700000000.7}"#)),
            Some(1_700_000_000)
        );
        assert_eq!(jwt_exp(&jwt(r#"{"sub":"x"}"#)), None);
        assert_eq!(jwt_exp(&jwt(r#"{"exp":"soon"}"#)), None);
        assert_eq!(jwt_exp(&jwt(r#"{"exp":-1}"#)), None);
        assert_eq!(jwt_exp("a.%%%.c"), None);
        assert_eq!(jwt_exp("a.b.c.d.e"), None);
        assert_eq!(jwt_exp(""), None);
        let padded = format!(
            "h.{}.s",
            base64::engine::general_purpose::URL_SAFE.encode(r#"{"exp":5}"#)
        );
        assert_eq!(jwt_exp(&padded), Some(5));
    }

    #[test]
    fn jwt_lifetimes() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let life = |claims: &str| jwt_lifetime(&jwt(claims), now);
        let secs = Duration::from_secs;
        assert_eq!(
            life(r#"{"exp":1600}"#),
            Some(Lifetime::Remaining(secs(600)))
        );
        assert_eq!(
            life(r#"{"exp":10}"#),
            Some(Lifetime::Remaining(Duration::ZERO))
        );
        // With `iat`, the local clock does not matter.
        assert_eq!(
            life(r#"{"exp":1600,"iat":1300}"#),
            Some(Lifetime::Issued(secs(300)))
        );
        assert_eq!(
            life(r#"{"exp":700,"iat":400}"#),
            Some(Lifetime::Issued(secs(300)))
        );
        // A nonsensical `iat` is ignored.
        assert_eq!(
            life(r#"{"exp":1600,"iat":1700}"#),
            Some(Lifetime::Remaining(secs(600)))
        );
        assert_eq!(jwt_lifetime("opaque", now), None);
    }

    #[test]
    fn debug_redacts_tokens() {
        let t = TokenSet::new("ACCESS").with_refresh_token("REFRESH");
        let shown = format!("{t:?}");
        assert!(
            !shown.contains("ACCESS") && !shown.contains("REFRESH"),
            "{shown}"
        );
    }

    mod properties {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn jwt_exp_never_panics_on_strings(token in ".{0,300}") {
                let _ = jwt_exp(&token);
            }

            #[test]
            fn jwt_exp_never_panics_on_payload_bytes(payload in prop::collection::vec(any::<u8>(), 0..300)) {
                let _ = jwt_exp(&format!("h.{}.s", URL_SAFE_NO_PAD.encode(&payload)));
            }

            #[test]
            fn jwt_exp_never_panics_on_claims(
                claims in prop::collection::btree_map(".{0,8}", prop_oneof![
                    any::<i64>().prop_map(serde_json::Value::from),
                    any::<f64>().prop_map(serde_json::Value::from),
                    ".{0,20}".prop_map(serde_json::Value::from),
                ], 0..4),
                exp in prop_oneof![
                    Just(serde_json::Value::Null),
                    any::<i64>().prop_map(serde_json::Value::from),
                    any::<f64>().prop_map(serde_json::Value::from),
                    ".{0,20}".prop_map(serde_json::Value::from),
                ],
            ) {
                let mut claims: serde_json::Map<_, _> = claims.into_iter().collect();
                claims.insert("exp".to_owned(), exp);
                let _ = jwt_exp(&format!("h.{}.s", URL_SAFE_NO_PAD.encode(serde_json::Value::Object(claims).to_string())));
            }

            #[test]
            fn jwt_exp_round_trips(exp in any::<u64>(), sub in ".{0,20}") {
                let claims = serde_json::json!({ "sub": sub, "exp": exp });
                let token = format!("h.{}.s", URL_SAFE_NO_PAD.encode(claims.to_string()));
                prop_assert_eq!(jwt_exp(&token), Some(exp));
            }
        }
    }
}
