//! A value an auth call sends, plain or secret, possibly the refresh token being exchanged.

use std::borrow::Cow;
use std::fmt;

use http::HeaderValue;

use crate::error::AuthError;
use crate::secret::Secret;

#[derive(Clone)]
enum Part {
    Plain(Cow<'static, str>),
    Secret(Secret),
    RefreshToken,
}

#[derive(Clone)]
enum ParamKind {
    /// Text made of parts, concatenated when the request is built.
    Text(Vec<Part>),
    /// A JSON value other than a string (a number, a boolean, an array, `null`), sent as is.
    Json(serde_json::Value),
}

/// A value an auth call sends: in a body field, a header or a query parameter.
///
/// Plain text, a [`Secret`], the refresh token being exchanged, a JSON literal, or text made of
/// several of these (`Bearer ` and the refresh token, say). A value holding a secret or the
/// refresh token is secret as a whole: `Debug` shows `[redacted]` for it, and a header carrying
/// it is marked sensitive.
#[derive(Clone)]
pub(crate) struct Param(ParamKind);

impl Param {
    /// Plain text, shown by `Debug`.
    pub(crate) fn text(value: impl Into<Cow<'static, str>>) -> Self {
        Self(ParamKind::Text(vec![Part::Plain(value.into())]))
    }

    /// A secret: a password, an API key, a client secret.
    pub(crate) fn secret(value: Secret) -> Self {
        Self(ParamKind::Text(vec![Part::Secret(value)]))
    }

    /// The refresh token being exchanged. Only a refresh call can send it.
    pub(crate) fn refresh_token() -> Self {
        Self(ParamKind::Text(vec![Part::RefreshToken]))
    }

    /// A JSON literal for a JSON body. A JSON string is the same as [`Param::text`]; other values
    /// go into a JSON body as they are, and as their JSON text in a form, header or query.
    pub(crate) fn json(value: serde_json::Value) -> Self {
        match value {
            serde_json::Value::String(s) => Self::text(s),
            other => Self(ParamKind::Json(other)),
        }
    }

    /// This text followed by `next`'s. A JSON literal on either side counts as its JSON text.
    pub(crate) fn then(self, next: Param) -> Self {
        let mut parts = self.into_parts();
        parts.extend(next.into_parts());
        Self(ParamKind::Text(parts))
    }

    fn into_parts(self) -> Vec<Part> {
        match self.0 {
            ParamKind::Text(parts) => parts,
            ParamKind::Json(value) => vec![Part::Plain(value.to_string().into())],
        }
    }

    fn parts(&self) -> &[Part] {
        match &self.0 {
            ParamKind::Text(parts) => parts,
            ParamKind::Json(_) => &[],
        }
    }

    /// Whether the value holds a secret or the refresh token.
    pub(crate) fn is_secret(&self) -> bool {
        self.parts().iter().any(|p| !matches!(p, Part::Plain(_)))
    }

    /// Whether the value holds the refresh token.
    pub(crate) fn uses_refresh_token(&self) -> bool {
        self.parts().iter().any(|p| matches!(p, Part::RefreshToken))
    }

    /// The value as text, with `refresh_token` in place of the refresh token.
    pub(crate) fn render(&self, refresh_token: Option<&Secret>) -> Result<String, AuthError> {
        let parts = match &self.0 {
            ParamKind::Json(value) => return Ok(value.to_string()),
            ParamKind::Text(parts) => parts,
        };
        let mut out = String::new();
        for part in parts {
            out.push_str(match part {
                Part::Plain(s) => s,
                Part::Secret(s) => s.expose(),
                Part::RefreshToken => refresh_token
                    .ok_or_else(|| AuthError::config("the refresh token in a login call"))?
                    .expose(),
            });
        }
        Ok(out)
    }

    /// The value as JSON: a literal as it is, text as a JSON string.
    pub(super) fn render_json(
        &self,
        refresh_token: Option<&Secret>,
    ) -> Result<serde_json::Value, AuthError> {
        match &self.0 {
            ParamKind::Json(value) => Ok(value.clone()),
            ParamKind::Text(_) => self.render(refresh_token).map(serde_json::Value::String),
        }
    }

    /// A header value, marked sensitive when the value is secret.
    pub(super) fn header_value(
        &self,
        refresh_token: Option<&Secret>,
    ) -> Result<HeaderValue, AuthError> {
        let mut value = HeaderValue::try_from(self.render(refresh_token)?).map_err(|_| {
            if self.uses_refresh_token() {
                AuthError::invalid_token("refresh token is not a valid header value")
            } else {
                AuthError::config("header value is not a valid header value")
            }
        })?;
        value.set_sensitive(self.is_secret());
        Ok(value)
    }
}

impl fmt::Debug for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.0, self.uses_refresh_token()) {
            (ParamKind::Json(value), _) => fmt::Debug::fmt(value, f),
            (_, true) => f.write_str("<refresh token>"),
            (ParamKind::Text(_), false) if self.is_secret() => f.write_str("[redacted]"),
            (ParamKind::Text(parts), false) => {
                let text: String = parts
                    .iter()
                    .filter_map(|p| match p {
                        Part::Plain(s) => Some(&**s),
                        _ => None,
                    })
                    .collect();
                fmt::Debug::fmt(&text, f)
            }
        }
    }
}

impl From<Secret> for Param {
    fn from(value: Secret) -> Self {
        Self::secret(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value mixing text and the refresh token is secret; a secret shows redacted.
    #[test]
    fn secret_values_are_redacted() {
        let bearer_refresh = Param::text("Bearer ").then(Param::refresh_token());
        assert!(bearer_refresh.uses_refresh_token() && bearer_refresh.is_secret());
        let key = Param::secret(Secret::from("k-123"));
        assert_eq!(format!("{key:?}"), "[redacted]");
    }
}
