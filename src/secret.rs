//! A string that never shows itself in `Debug` output.
//!
//! Every credential and token this crate holds (passwords, API keys, client secrets, access and
//! refresh tokens) lives in a [`Secret`]. There is no `Display` impl: reading the value takes an
//! explicit [`Secret::expose`], which makes every place that sends a secret easy to audit.

use std::fmt;
use std::sync::Arc;

/// A redacting, cheaply cloneable secret string.
///
/// `Debug` prints `[redacted]`; there is deliberately no `Display`. Clones share one allocation.
///
/// ```
/// use tower_token_auth::Secret;
///
/// let password = Secret::new("hunter2");
/// assert_eq!(format!("{password:?}"), "[redacted]");
/// assert_eq!(password.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// Returns the secret value. Call this only where the value is sent to its destination.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let secret = Secret::from("s3cr3t-value".to_owned());
        let debug = format!("{secret:?} {:#?}", Some(&secret));
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert_eq!(secret.expose(), "s3cr3t-value");
    }
}
