//! What is wrong with a provider spec, and where: the field's path, and the line and column when
//! the problem is in the text.

use std::fmt;

use crate::error::AuthError;

/// A provider spec that cannot be read or built.
///
/// Names the field (`login.form.password`), the line and column where the parser found the
/// problem, and what is wrong. It never quotes a value from the spec, the credentials or the
/// environment: a message a parser would write with a value in it is cut down to the kind of
/// value (`invalid type: string, expected a boolean`).
///
/// ```
/// use tower_token_auth::provider::ProviderSpec;
///
/// let err = ProviderSpec::from_toml("[login]\nurl = \"/login\"\nmethd = \"GET\"\n").unwrap_err();
/// assert_eq!(err.path(), "login.methd");
/// assert_eq!((err.line(), err.column()), (Some(3), Some(1)));
/// assert!(err.to_string().starts_with("provider spec: `login.methd` at line 3, column 1: unknown field"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    path: String,
    line: Option<usize>,
    column: Option<usize>,
    message: String,
}

impl SpecError {
    /// An error at the field `path` (dotted), with no position in the text.
    pub(super) fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// An error from the TOML parser or deserializer: `span` is a byte range of `text`.
    pub(super) fn toml(
        path: String,
        text: &str,
        span: Option<std::ops::Range<usize>>,
        message: &str,
    ) -> Self {
        let (line, column) = match span {
            Some(span) => {
                let before = text.get(..span.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        Self {
            path: root_is_empty(path),
            line,
            column,
            message: redact(message),
        }
    }

    /// An error from the JSON deserializer.
    pub(super) fn json(path: String, err: &serde_json::Error) -> Self {
        let shown = err.to_string();
        let suffix = format!(" at line {} column {}", err.line(), err.column());
        let message = shown.strip_suffix(&suffix).unwrap_or(&shown);
        let position = (err.line() > 0).then_some(());
        Self {
            path: root_is_empty(path),
            line: position.map(|()| err.line()),
            column: position.map(|()| err.column()),
            message: redact(message),
        }
    }

    /// The dotted path of the field at fault (`policy.margin_secs`), empty for the document as a
    /// whole.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The line (from 1) where the problem was found, when it is in the text.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The column (from 1) where the problem was found, when it is in the text: in characters for
    /// TOML, in bytes for JSON (as `serde_json` counts).
    pub fn column(&self) -> Option<usize> {
        self.column
    }

    /// What is wrong, without position or path.
    pub fn message(&self) -> &str {
        &self.message
    }
}

fn root_is_empty(path: String) -> String {
    if path == "." {
        String::new()
    } else {
        path
    }
}

/// Cuts the value out of serde's messages: `invalid type: string "hunter2", expected u64`
/// becomes `invalid type: string, expected u64`, `unknown variant `x`, expected …` becomes
/// `unknown variant, expected …`. The expectation, from the spec format itself, stays.
fn redact(message: &str) -> String {
    const VALUED: [&str; 3] = ["invalid type: ", "invalid value: ", "invalid length "];
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        // The last one: the value before it may itself hold ", expected".
        let expected = rest.rfind(", expected").map_or("", |at| &rest[at..]);
        return format!("unknown variant{expected}");
    }
    for prefix in VALUED {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (unexpected, expected) = rest
                .rfind(", expected")
                .map_or((rest, ""), |at| rest.split_at(at));
            let kind = unexpected
                .split(['"', '`', '\''])
                .next()
                .unwrap_or_default()
                .trim();
            return format!("{prefix}{kind}{expected}");
        }
    }
    message.to_owned()
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("provider spec")?;
        if !self.path.is_empty() {
            write!(f, ": `{}`", self.path)?;
        }
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, " at line {line}, column {column}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for SpecError {}

impl From<SpecError> for AuthError {
    /// A configuration error ([`ErrorKind::Config`](crate::ErrorKind::Config)) with the spec
    /// error's message.
    fn from(err: SpecError) -> Self {
        AuthError::config(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_lose_their_values() {
        for (message, redacted) in [
            (
                r#"invalid type: string "hunter2", expected u64"#,
                "invalid type: string, expected u64",
            ),
            (
                "invalid value: integer `-1`, expected u64",
                "invalid value: integer, expected u64",
            ),
            (
                "unknown variant `hunter2`, expected `GET` or `POST`",
                "unknown variant, expected `GET` or `POST`",
            ),
            (
                "invalid length 2, expected a pair",
                "invalid length 2, expected a pair",
            ),
            (
                "unknown field `methd`, expected one of `url`",
                "unknown field `methd`, expected one of `url`",
            ),
        ] {
            assert_eq!(redact(message), redacted);
        }
    }

    #[test]
    fn toml_spans_become_lines_and_columns() {
        let text = "a = 1\nbé = 2\n";
        let err = SpecError::toml("bé".into(), text, Some(12..13), "bad");
        assert_eq!((err.line, err.column), (Some(2), Some(6)));
        assert_eq!(
            err.to_string(),
            "provider spec: `bé` at line 2, column 6: bad"
        );
        let err = SpecError::toml(".".into(), text, None, "bad");
        assert_eq!(err.to_string(), "provider spec: bad");
    }
}
