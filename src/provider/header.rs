//! How a token is put on a request: which header, and with which scheme.

use bytes::{BufMut, BytesMut};
use http::header::AUTHORIZATION;
use http::{HeaderName, HeaderValue};

use crate::error::AuthError;
use crate::secret::Secret;

/// The header a token travels in, part of a provider's
/// [`TokenPolicy`](crate::provider::TokenPolicy).
///
/// `Authorization: Bearer <token>` by default; an API may want another scheme, another header,
/// or the bare token. The value is always marked sensitive, so that it shows in no `Debug`
/// output and HTTP/2 does not index it.
///
/// ```
/// use http::HeaderName;
/// use tower_token_auth::provider::TokenHeader;
///
/// let bearer = TokenHeader::default(); // `Authorization: Bearer <token>`;
/// let scheme = TokenHeader::new(http::header::AUTHORIZATION).with_scheme("Token");
/// let raw = TokenHeader::new(HeaderName::from_static("x-api-token"));
/// # let _ = (bearer, scheme, raw);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenHeader {
    name: HeaderName,
    scheme: Option<String>,
}

impl TokenHeader {
    /// `Authorization: Bearer <token>` (RFC 6750).
    pub(crate) fn bearer() -> Self {
        Self::new(AUTHORIZATION).with_scheme("Bearer")
    }

    /// The bare token in header `name`.
    pub fn new(name: HeaderName) -> Self {
        Self { name, scheme: None }
    }

    /// `<scheme> <token>` instead of the bare token. A token response whose `token_type` names
    /// this scheme (in any case) is accepted, as `bearer` always is: see
    /// [`TokenSet::from_json`](crate::token::TokenSet::from_json).
    pub fn with_scheme(mut self, scheme: impl Into<String>) -> Self {
        self.scheme = Some(scheme.into());
        self
    }

    /// The header's name.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// The scheme, if the token is not sent bare.
    pub fn scheme(&self) -> Option<&str> {
        self.scheme.as_deref()
    }

    /// The header value for `token`, marked sensitive.
    ///
    /// Fails with [`ErrorKind::InvalidToken`](crate::ErrorKind::InvalidToken) when the scheme
    /// and token do not make a valid header value (a control character, say); the message never
    /// contains the token.
    pub(crate) fn value(&self, token: &Secret) -> Result<HeaderValue, AuthError> {
        let token = token.expose();
        let scheme = self.scheme.as_deref().unwrap_or_default();
        let mut bytes = BytesMut::with_capacity(scheme.len() + 1 + token.len());
        if !scheme.is_empty() {
            bytes.put_slice(scheme.as_bytes());
            bytes.put_u8(b' ');
        }
        bytes.put_slice(token.as_bytes());
        let mut value = HeaderValue::from_maybe_shared(bytes.freeze()).map_err(|_| {
            AuthError::invalid_token("the token (with its scheme) is not a valid header value")
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl TokenHeader {
    /// The header and its [`value`](Self::value) for `token`: what a request carries.
    pub(crate) fn pair(&self, token: &Secret) -> Result<(HeaderName, HeaderValue), AuthError> {
        Ok((self.name.clone(), self.value(token)?))
    }

    /// Whether a token the server typed `token_type` may be sent in this header: `bearer` always
    /// (RFC 6750: whoever holds it may use it); another type when it names this header's scheme
    /// (both in any case), or when the token goes bare, with no scheme to disagree with.
    pub(crate) fn accepts(&self, token_type: &str) -> bool {
        token_type.eq_ignore_ascii_case("bearer")
            || self
                .scheme
                .as_deref()
                .is_none_or(|scheme| scheme.eq_ignore_ascii_case(token_type))
    }
}

impl Default for TokenHeader {
    /// `Authorization: Bearer <token>` (RFC 6750).
    fn default() -> Self {
        Self::bearer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_the_scheme_and_are_sensitive() {
        let token = Secret::from("abc.def");
        let bearer = TokenHeader::bearer().value(&token).unwrap();
        assert_eq!(bearer, "Bearer abc.def");
        assert!(bearer.is_sensitive());
        let raw = TokenHeader::new(HeaderName::from_static("x-token"));
        assert_eq!(raw.value(&token).unwrap(), "abc.def");
        assert_eq!(raw.name(), "x-token");
        assert_eq!(raw.scheme(), None);
        let scheme = TokenHeader::new(AUTHORIZATION).with_scheme("Token");
        assert_eq!(scheme.value(&token).unwrap(), "Token abc.def");
        assert_eq!(TokenHeader::default(), TokenHeader::bearer());
    }

    #[test]
    fn token_types_follow_the_scheme() {
        let bearer = TokenHeader::bearer();
        assert!(bearer.accepts("bearer") && bearer.accepts("Bearer") && bearer.accepts("BEARER"));
        assert!(!bearer.accepts("JWT") && !bearer.accepts("mac") && !bearer.accepts(""));
        let jwt = TokenHeader::new(AUTHORIZATION).with_scheme("JWT");
        assert!(jwt.accepts("JWT") && jwt.accepts("jwt") && jwt.accepts("bearer"));
        assert!(!jwt.accepts("mac"));
        let bare = TokenHeader::new(HeaderName::from_static("x-token"));
        assert!(bare.accepts("JWT") && bare.accepts("mac") && bare.accepts("bearer"));
    }

    #[test]
    fn an_unsendable_token_is_a_typed_error_that_hides_it() {
        let error = TokenHeader::bearer()
            .value(&Secret::from("line\nbreak-secret"))
            .unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::InvalidToken);
        assert!(!format!("{error} {error:?}").contains("secret"));
    }
}
