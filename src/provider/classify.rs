//! Which upstream answers say that the token a request carried is dead.
//!
//! The layer asks on every response; the built-in rules cost a bitset lookup for an ordinary
//! answer and look at headers only for the statuses they name.

use std::fmt;
use std::sync::Arc;

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, StatusCode};

type Custom = Arc<dyn Fn(StatusCode, &HeaderMap) -> bool + Send + Sync>;

/// Decides, from a response's status and headers, whether the upstream rejected the token the
/// request carried: such a token is marked dead (the next requests get a new one) and the request
/// is replayed with a new token when it can be (see [`TokenPolicy`](crate::provider::TokenPolicy)).
///
/// - [`Classifier::http`] (the default): HTTP 401. When the response carries an RFC 6750
///   `WWW-Authenticate: Bearer` challenge with an `error`, only `error="invalid_token"` marks the
///   token dead; another error (`insufficient_scope`, say) is a permission problem, and the 401
///   goes back to the caller with the token kept.
/// - gRPC `UNAUTHENTICATED` needs no classifier of its own: the [`grpc`](crate::grpc) adapter
///   presents it as the HTTP status it maps to, 401.
/// - [`Classifier::statuses`]: other statuses, with the same `WWW-Authenticate` rule.
/// - [`Classifier::custom`]: any function of the status and headers.
/// - [`Classifier::none`]: no answer marks a token dead; nothing is replayed.
///
/// ```
/// use http::{HeaderMap, HeaderValue, StatusCode};
/// use tower_token_auth::provider::Classifier;
///
/// let http = Classifier::http();
/// let mut headers = HeaderMap::new();
/// assert!(http.refuses(StatusCode::UNAUTHORIZED, &headers));
///
/// headers.insert("www-authenticate", HeaderValue::from_static(r#"Bearer error="insufficient_scope""#));
/// assert!(!http.refuses(StatusCode::UNAUTHORIZED, &headers));
/// ```
#[derive(Clone)]
pub struct Classifier {
    statuses: StatusSet,
    custom: Option<Custom>,
}

impl Classifier {
    /// HTTP 401, unless a `WWW-Authenticate: Bearer` challenge names an error other than
    /// `invalid_token`.
    pub fn http() -> Self {
        Self::statuses([StatusCode::UNAUTHORIZED])
    }

    /// These statuses, each with the `WWW-Authenticate` rule of [`Classifier::http`].
    pub fn statuses(statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        let statuses: Vec<StatusCode> = statuses.into_iter().collect();
        Self {
            statuses: StatusSet::new(&statuses),
            custom: None,
        }
    }

    /// No answer marks a token dead, and no request is replayed.
    pub fn none() -> Self {
        Self::statuses([])
    }

    /// `rejects` decides alone. It runs on every response: keep it to a few comparisons. The
    /// built-in rules remain callable from it (`Classifier::http().refuses(status, headers)`).
    ///
    /// ```
    /// use http::StatusCode;
    /// use tower_token_auth::provider::Classifier;
    ///
    /// // An API that answers 419 for an expired session, besides the usual 401.
    /// let http = Classifier::http();
    /// let classifier = Classifier::custom(move |status, headers| {
    ///     status.as_u16() == 419 || http.refuses(status, headers)
    /// });
    /// assert!(classifier.refuses(StatusCode::from_u16(419)?, &http::HeaderMap::new()));
    /// # Ok::<(), http::status::InvalidStatusCode>(())
    /// ```
    pub fn custom(
        rejects: impl Fn(StatusCode, &HeaderMap) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            custom: Some(Arc::new(rejects)),
            ..Self::none()
        }
    }

    /// Whether a response with this status and these headers rejects the token its request
    /// carried.
    #[inline]
    pub fn refuses(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        if self.statuses.contains(status) {
            return bearer_error_allows(headers);
        }
        match &self.custom {
            Some(rejects) => rejects(status, headers),
            None => false,
        }
    }

    /// Whether any answer can reject a token (else replay is pointless).
    pub(crate) fn is_none(&self) -> bool {
        self.custom.is_none() && self.statuses == StatusSet::new(&[])
    }
}

impl Default for Classifier {
    fn default() -> Self {
        Self::http()
    }
}

impl PartialEq for Classifier {
    fn eq(&self, other: &Self) -> bool {
        let same_custom = match (&self.custom, &other.custom) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        };
        self.statuses == other.statuses && same_custom
    }
}

impl Eq for Classifier {}

impl fmt::Debug for Classifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classifier")
            .field("statuses", &self.statuses)
            .field("custom", &self.custom.is_some())
            .finish()
    }
}

/// RFC 6750 §3.1: a `Bearer` challenge whose `error` is not `invalid_token` says the token is
/// fine and something else is wrong (`insufficient_scope`, `invalid_request`). No challenge, or
/// one without an error, leaves the status to speak.
fn bearer_error_allows(headers: &HeaderMap) -> bool {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(bearer_error)
        .all(|error| error.eq_ignore_ascii_case("invalid_token"))
}

/// The `error` parameter of the `Bearer` challenge in one `WWW-Authenticate` value, if any.
///
/// A value is a comma-separated list of challenges (`scheme [token68 | param=value, ...]`), the
/// parameters of one challenge separated by commas too: an item that starts with a word not
/// followed by `=` starts a new challenge.
fn bearer_error(value: &str) -> Option<&str> {
    let mut in_bearer = false;
    for item in split_top_level(value) {
        let item = item.trim();
        let (first, rest) = item.split_once([' ', '\t']).unwrap_or((item, ""));
        let param = if !first.is_empty() && !first.contains('=') {
            in_bearer = first.eq_ignore_ascii_case("bearer");
            rest.trim()
        } else {
            item
        };
        if !in_bearer {
            continue;
        }
        if let Some((key, value)) = param.split_once('=') {
            if key.trim().eq_ignore_ascii_case("error") {
                let value = value.trim();
                return Some(
                    value
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(value),
                );
            }
        }
    }
    None
}

/// Splits at commas outside quoted strings (backslash escapes honoured).
fn split_top_level(value: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    let mut cuts = Vec::new();
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                cuts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    cuts.push(&value[start..]);
    cuts.into_iter()
}

/// Statuses, as a set over 0..1024: the ones that mark a token dead (see
/// [`Classifier`](crate::provider::Classifier)), checked on every response.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatusSet([u64; 16]);

impl StatusSet {
    pub(crate) fn new(statuses: &[StatusCode]) -> Self {
        let mut bits = [0u64; 16];
        for status in statuses {
            let code = usize::from(status.as_u16());
            bits[code / 64] |= 1 << (code % 64);
        }
        Self(bits)
    }

    #[inline]
    pub(crate) fn contains(&self, status: StatusCode) -> bool {
        // `StatusCode` is 100..=999.
        let code = usize::from(status.as_u16());
        self.0[(code / 64) % 16] & (1 << (code % 64)) != 0
    }
}

impl fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codes = (100..1000u16)
            .filter_map(|code| StatusCode::from_u16(code).ok())
            .filter(|&status| self.contains(status))
            .map(|status| status.as_u16());
        f.debug_set().entries(codes).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_set_holds_exactly_its_statuses() {
        let codes = [100, 401, 403, 511, 999].map(|c| StatusCode::from_u16(c).unwrap());
        let set = StatusSet::new(&codes);
        for code in 100..1000 {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(set.contains(status), codes.contains(&status), "{code}");
        }
        assert_eq!(format!("{set:?}"), "{100, 401, 403, 511, 999}");
    }
    use http::HeaderValue;

    fn with_challenge(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(WWW_AUTHENTICATE, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn the_bearer_error_is_found_among_challenges_and_parameters() {
        let cases: [(&str, Option<&str>); 9] = [
            ("Bearer", None),
            (r#"Bearer realm="example""#, None),
            (
                r#"Bearer realm="example", error="invalid_token""#,
                Some("invalid_token"),
            ),
            (
                r#"Bearer error=insufficient_scope"#,
                Some("insufficient_scope"),
            ),
            (
                r#"Basic realm="a, b", Bearer error="invalid_token""#,
                Some("invalid_token"),
            ),
            (r#"Bearer realm="x", Basic error="nope""#, None),
            (r#"Bearer realm="say \"hi\", error=x", scope="a""#, None),
            (r#"Basic realm="x", error="invalid_token""#, None),
            ("bEaReR   ERROR=\"invalid_token\"", Some("invalid_token")),
        ];
        for (value, error) in cases {
            assert_eq!(bearer_error(value), error, "{value}");
        }
    }

    #[test]
    fn a_401_is_a_dead_token_unless_the_challenge_names_another_error() {
        let http = Classifier::http();
        let status = StatusCode::UNAUTHORIZED;
        assert!(http.refuses(status, &HeaderMap::new()));
        assert!(http.refuses(status, &with_challenge(&[r#"Bearer realm="api""#])));
        assert!(http.refuses(
            status,
            &with_challenge(&[r#"Bearer error="invalid_token""#])
        ));
        assert!(!http.refuses(
            status,
            &with_challenge(&[r#"Bearer error="insufficient_scope""#])
        ));
        assert!(!http.refuses(
            status,
            &with_challenge(&["Basic realm=x", r#"Bearer error="invalid_request""#])
        ));
        assert!(!http.refuses(StatusCode::FORBIDDEN, &HeaderMap::new()));
        assert!(!http.refuses(StatusCode::OK, &HeaderMap::new()));
    }

    #[test]
    fn none_and_custom() {
        let none = Classifier::none();
        assert!(none.is_none());
        assert!(!none.refuses(StatusCode::UNAUTHORIZED, &HeaderMap::new()));
        let teapot = Classifier::custom(|status, _| status == StatusCode::IM_A_TEAPOT);
        assert!(!teapot.is_none());
        assert!(teapot.refuses(StatusCode::IM_A_TEAPOT, &HeaderMap::new()));
        assert!(!teapot.refuses(StatusCode::UNAUTHORIZED, &HeaderMap::new()));
        assert_eq!(teapot, teapot.clone());
        assert_ne!(teapot, Classifier::custom(|_, _| false));
        assert_eq!(Classifier::default(), Classifier::http());
        assert_eq!(
            format!("{:?}", Classifier::http()),
            "Classifier { statuses: {401}, custom: false }"
        );
    }
}
