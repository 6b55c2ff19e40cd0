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

const REDACTED: &str = "[redacted]";

/// Longest server text that reaches an error message.
const MAX_SERVER_TEXT: usize = 160;

/// Opaque words at least this long are taken for tokens or keys and redacted.
const OPAQUE_WORD: usize = 24;

/// Makes text from an auth server fit for an error message or a log line: control characters
/// removed, every value the request sent (`sent`: credentials, refresh tokens) and every long
/// opaque word (a JWT, a key) replaced by `[redacted]`, and the whole shortened.
///
/// NOTE: a server may echo what it was sent; the layer cannot tell a password from prose, so it
/// redacts everything it sent that is long enough to be a secret.
pub(crate) fn scrub(text: &str, sent: &[String]) -> String {
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    // Every occurrence of every sent value, found in the original text and redacted as one union,
    // so that a short value inside a longer one (a user name inside a password) cannot leave the
    // rest of the longer one behind.
    let mut hidden = vec![false; text.len()];
    for value in sent.iter().filter(|v| v.chars().count() >= 4) {
        for (at, _) in text.match_indices(value.as_str()) {
            hidden[at..at + value.len()]
                .iter_mut()
                .for_each(|h| *h = true);
        }
    }
    let mut clean = String::with_capacity(text.len());
    let mut redacting = false;
    for (at, c) in text.char_indices() {
        if hidden[at] {
            if !redacting {
                clean.push_str(REDACTED);
            }
            redacting = true;
        } else {
            redacting = false;
            clean.push(c);
        }
    }
    let mut out = String::with_capacity(clean.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.chars().count() >= OPAQUE_WORD {
            out.push_str(REDACTED);
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in clean.chars() {
        if c.is_ascii_alphanumeric() || "-._~+/=".contains(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    if out.chars().count() > MAX_SERVER_TEXT {
        out = out.chars().take(MAX_SERVER_TEXT).collect();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_is_scrubbed() {
        let sent = vec!["hunter2-pw".to_owned(), "abc".to_owned()];
        assert_eq!(
            scrub("bad password hunter2-pw for abc\r\n", &sent),
            "bad password [redacted] for abc"
        );
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        assert_eq!(
            scrub(&format!("token {jwt} expired"), &[]),
            "token [redacted] expired"
        );
        assert_eq!(
            scrub("key c5f90f4b-9d69-416a-8611-8a8c8d605c36 unknown", &[]),
            "key [redacted] unknown"
        );
        assert_eq!(scrub("Token is not active", &[]), "Token is not active");
        // A shorter sent value inside a longer one: the whole of both is hidden, in any order.
        let sent = ["password", "apiclient", "alice", "alice-Winter2024!"].map(String::from);
        assert_eq!(
            scrub("invalid password alice-Winter2024! for user alice", &sent),
            "invalid [redacted] [redacted] for user [redacted]"
        );
        let long = "word ".repeat(100);
        let short = scrub(&long, &[]);
        assert_eq!(short.chars().count(), MAX_SERVER_TEXT + 1);
        assert!(short.ends_with('…'));
    }

    #[test]
    fn debug_is_redacted() {
        let secret = Secret::from("s3cr3t-value".to_owned());
        let debug = format!("{secret:?} {:#?}", Some(&secret));
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert_eq!(secret.expose(), "s3cr3t-value");
    }
}
