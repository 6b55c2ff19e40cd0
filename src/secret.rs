//! A string that never shows itself in `Debug` output.
//!
//! Every credential and token this crate holds (passwords, API keys, client secrets, access and
//! refresh tokens) lives in a [`Secret`]. There is no `Display` impl: reading the value takes an
//! explicit [`Secret::expose`], which makes every place that sends a secret easy to audit.

mod scrub;
mod sent;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

pub(crate) use self::scrub::{redact_sent, scrub};
pub(crate) use self::sent::sent_values;

/// A redacting, cheaply cloneable secret string.
///
/// `Debug` prints `[redacted]`; there is deliberately no `Display`. Clones share one allocation.
///
/// ```
/// use tower_token_auth::Secret;
///
/// let password = Secret::from("hunter2");
/// assert_eq!(format!("{password:?}"), "[redacted]");
/// assert_eq!(password.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret value.
    pub(crate) fn new(value: impl Into<Arc<str>>) -> Self {
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

/// A `&String` is what a secret read from the environment usually is by the time it is passed.
///
/// ```
/// use tower_token_auth::provider::oauth2;
///
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// # std::env::set_var("CLIENT_SECRET", "s3cr3t");
/// let secret = std::env::var("CLIENT_SECRET")?;
/// let provider = oauth2::Builder::client_credentials("https://idp.example.com/token", "id", &secret)
///     .build()?;
/// # let _ = provider;
/// # Ok(())
/// # }
/// # run().unwrap();
/// ```
impl From<&String> for Secret {
    fn from(value: &String) -> Self {
        Self::new(value.as_str())
    }
}

impl From<Box<str>> for Secret {
    fn from(value: Box<str>) -> Self {
        Self::new(value)
    }
}

impl From<Cow<'_, str>> for Secret {
    fn from(value: Cow<'_, str>) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form a string arrives in converts, `&String` (from `std::env::var`) first.
    #[test]
    fn string_forms_convert() {
        fn takes(secret: impl Into<Secret>) -> Secret {
            secret.into()
        }
        let owned = String::from("v-1");
        let from_env: &String = &owned;
        for secret in [
            takes(from_env),
            takes("v-1"),
            takes(owned.clone()),
            takes(Box::<str>::from("v-1")),
            takes(Cow::Borrowed("v-1")),
            takes(Cow::<str>::Owned(owned.clone())),
        ] {
            assert_eq!(secret.expose(), "v-1");
        }
    }

    #[test]
    fn debug_is_redacted() {
        let secret = Secret::from("s3cr3t-value".to_owned());
        let debug = format!("{secret:?} {:#?}", Some(&secret));
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert_eq!(secret.expose(), "s3cr3t-value");
    }
}
