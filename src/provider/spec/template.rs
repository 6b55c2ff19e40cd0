//! Spec strings with placeholders: `"${password}"`, `"Bearer ${refresh_token}"`,
//! `"${env:API_KEY}"`; `$$` is a literal `$`.

use std::fmt;

use serde::Deserialize;

/// A value a spec leaves to the caller or the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Var {
    Username,
    Password,
    ApiKey,
    ClientId,
    ClientSecret,
    Scope,
    RefreshToken,
    Env(String),
}

/// The credential placeholders, as a spec writes them.
pub(super) const CREDENTIALS: [(&str, Var); 7] = [
    ("username", Var::Username),
    ("password", Var::Password),
    ("api_key", Var::ApiKey),
    ("client_id", Var::ClientId),
    ("client_secret", Var::ClientSecret),
    ("scope", Var::Scope),
    ("refresh_token", Var::RefreshToken),
];

impl Var {
    fn parse(name: &str) -> Result<Self, String> {
        if let Some(env) = name.strip_prefix("env:") {
            let mut chars = env.chars();
            let valid = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            return if valid {
                Ok(Var::Env(env.to_owned()))
            } else {
                Err("an environment variable name is letters, digits and `_`, not starting with a digit".to_owned())
            };
        }
        CREDENTIALS
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, var)| var.clone())
            .ok_or_else(|| {
                let known: Vec<_> = CREDENTIALS.iter().map(|(n, _)| *n).collect();
                format!(
                    "unknown placeholder; use one of {} or env:NAME",
                    known.join(", ")
                )
            })
    }
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Var::Env(name) => write!(f, "${{env:{name}}}"),
            var => {
                let name = CREDENTIALS
                    .iter()
                    .find(|(_, v)| v == var)
                    .map_or("?", |(n, _)| n);
                write!(f, "${{{name}}}")
            }
        }
    }
}

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Piece {
    Text(String),
    Var(Var),
}

/// A spec string: literal text and placeholders.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Template(pub(super) Vec<Piece>);

impl Template {
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            literal.push_str(&rest[..at]);
            rest = &rest[at..];
            if let Some(after) = rest.strip_prefix("$$") {
                literal.push('$');
                rest = after;
            } else if let Some(after) = rest.strip_prefix("${") {
                let end = after
                    .find('}')
                    .ok_or("a placeholder `${` is not closed by `}`")?;
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Var(Var::parse(&after[..end])?));
                rest = &after[end + 1..];
            } else {
                literal.push('$');
                rest = &rest[1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() || pieces.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Self(pieces))
    }

    /// The placeholders in the template.
    pub(super) fn vars(&self) -> impl Iterator<Item = &Var> {
        self.0.iter().filter_map(|p| match p {
            Piece::Var(var) => Some(var),
            Piece::Text(_) => None,
        })
    }

    pub(super) fn uses_refresh_token(&self) -> bool {
        self.vars().any(|v| *v == Var::RefreshToken)
    }

    /// The template's text when it has no placeholder.
    pub(super) fn as_literal(&self) -> Option<&str> {
        match self.0.as_slice() {
            [Piece::Text(text)] => Some(text),
            _ => None,
        }
    }
}

impl TryFrom<String> for Template {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

/// A name a spec gives a value (a query parameter, a form or JSON field): literal text, sent as
/// written.
///
/// NOTE: placeholders fill values only, so a name holding one is refused rather than sent with
/// the placeholder as its literal text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Name(pub(super) String);

/// Why a name holding a placeholder is refused.
pub(super) const NAME_WITH_PLACEHOLDER: &str =
    "a name takes no placeholders (`${`): they go in values";

impl TryFrom<String> for Name {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        if name.contains("${") {
            return Err(NAME_WITH_PLACEHOLDER.to_owned());
        }
        Ok(Self(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Piece {
        Piece::Text(s.to_owned())
    }

    #[test]
    fn placeholders_and_escapes() {
        let t = Template::parse("Bearer ${refresh_token}").unwrap();
        assert_eq!(t.0, [text("Bearer "), Piece::Var(Var::RefreshToken)]);
        assert!(t.uses_refresh_token());
        let t = Template::parse("${username}@${env:DOMAIN_1}").unwrap();
        assert_eq!(
            t.0,
            [
                Piece::Var(Var::Username),
                text("@"),
                Piece::Var(Var::Env("DOMAIN_1".into()))
            ]
        );
        assert_eq!(Template::parse("a$$b$c$").unwrap().0, [text("a$b$c$")]);
        assert_eq!(Template::parse("").unwrap().as_literal(), Some(""));
        assert_eq!(
            Template::parse("${password}").unwrap().to_string_for_test(),
            "${password}"
        );
    }

    #[test]
    fn bad_placeholders_are_named_not_echoed() {
        for (bad, says) in [
            ("${passwd}", "unknown placeholder"),
            ("x${password", "not closed"),
            ("${env:1A}", "environment variable name"),
            ("${env:}", "environment variable name"),
            ("${}", "unknown placeholder"),
        ] {
            let err = Template::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    impl Template {
        fn to_string_for_test(&self) -> String {
            self.0
                .iter()
                .map(|p| match p {
                    Piece::Text(t) => t.clone(),
                    Piece::Var(v) => v.to_string(),
                })
                .collect()
        }
    }
}
