//! The `[tokens]` table (where answers keep the tokens) and the `[token_header]` table (how the
//! token goes on API requests).

use http::header::AUTHORIZATION;
use serde::Deserialize;

use super::call::{HeaderKey, Pointer};
use crate::provider::TokenHeader;
use crate::provider::{Expiry, Location, Timestamp, TokenFields};

/// `[tokens]`: where a non-standard answer keeps each part.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "RawTokens")]
pub(super) struct Tokens(pub(super) TokenFields);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    access: At,
    refresh: Option<At>,
    expires_in: Option<LifetimeAt>,
    expires_at: Option<InstantAt>,
    refresh_expires_in: Option<LifetimeAt>,
    refresh_expires_at: Option<InstantAt>,
}

impl TryFrom<RawTokens> for Tokens {
    type Error = String;

    fn try_from(raw: RawTokens) -> Result<Self, String> {
        let expiry = |lifetime: Option<LifetimeAt>, instant: Option<InstantAt>, what: &str| match (
            lifetime, instant,
        ) {
            (Some(_), Some(_)) => Err(format!(
                "`{what}_in` or `{what}_at`, not both: an answer states one expiry"
            )),
            (Some(l), None) => Ok(Some(l.0)),
            (None, Some(i)) => Ok(Some(i.0)),
            (None, None) => Ok(None),
        };
        let mut fields = TokenFields::new(raw.access.0);
        if let Some(refresh) = raw.refresh {
            fields = fields.refresh(refresh.0);
        }
        if let Some(expires) = expiry(raw.expires_in, raw.expires_at, "expires")? {
            fields = fields.expires(expires);
        }
        let refresh_expires = expiry(
            raw.refresh_expires_in,
            raw.refresh_expires_at,
            "refresh_expires",
        )?;
        if let Some(expires) = refresh_expires {
            fields = fields.refresh_expires(expires);
        }
        Ok(Self(fields))
    }
}

fn location(pointer: Option<Pointer>, header: Option<HeaderKey>) -> Result<Location, String> {
    match (pointer, header) {
        (Some(p), None) => Ok(Location::Pointer(p.0)),
        (None, Some(h)) => Ok(Location::Header(h.0)),
        _ => Err("give `pointer` (into the JSON body) or `header`, one of them".to_owned()),
    }
}

/// `{ pointer = "/access_token" }` or `{ header = "Set-Authorization" }`.
#[derive(Deserialize)]
#[serde(try_from = "RawAt")]
struct At(Location);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAt {
    pointer: Option<Pointer>,
    header: Option<HeaderKey>,
}

impl TryFrom<RawAt> for At {
    type Error = String;

    fn try_from(raw: RawAt) -> Result<Self, String> {
        location(raw.pointer, raw.header).map(Self)
    }
}

/// `{ pointer = "/expires_in", unit = "seconds" }`.
#[derive(Deserialize)]
#[serde(try_from = "RawLifetimeAt")]
struct LifetimeAt(Expiry);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLifetimeAt {
    pointer: Option<Pointer>,
    header: Option<HeaderKey>,
    #[serde(default)]
    unit: Unit,
}

#[derive(Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Unit {
    #[default]
    Seconds,
    Milliseconds,
}

impl TryFrom<RawLifetimeAt> for LifetimeAt {
    type Error = String;

    fn try_from(raw: RawLifetimeAt) -> Result<Self, String> {
        let at = location(raw.pointer, raw.header)?;
        Ok(Self(match raw.unit {
            Unit::Seconds => Expiry::Seconds(at),
            Unit::Milliseconds => Expiry::Millis(at),
        }))
    }
}

/// `{ pointer = "/expires_at", format = "rfc3339" }`.
#[derive(Deserialize)]
#[serde(try_from = "RawInstantAt")]
struct InstantAt(Expiry);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstantAt {
    pointer: Option<Pointer>,
    header: Option<HeaderKey>,
    format: Format,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Format {
    Rfc3339,
    UnixSeconds,
    UnixMillis,
}

impl TryFrom<RawInstantAt> for InstantAt {
    type Error = String;

    fn try_from(raw: RawInstantAt) -> Result<Self, String> {
        let format = match raw.format {
            Format::Rfc3339 => Timestamp::Rfc3339,
            Format::UnixSeconds => Timestamp::UnixSeconds,
            Format::UnixMillis => Timestamp::UnixMillis,
        };
        Ok(Self(Expiry::At(location(raw.pointer, raw.header)?, format)))
    }
}

/// `[token_header]`: `name` (default `Authorization`), `scheme` (default `Bearer`) or `raw`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(try_from = "RawTokenHeader")]
pub(super) struct TokenHeaderSpec(pub(super) TokenHeader);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokenHeader {
    name: Option<HeaderKey>,
    scheme: Option<String>,
    #[serde(default)]
    raw: bool,
}

impl TryFrom<RawTokenHeader> for TokenHeaderSpec {
    type Error = String;

    fn try_from(raw: RawTokenHeader) -> Result<Self, String> {
        let header = TokenHeader::new(raw.name.map_or(AUTHORIZATION, |n| n.0));
        match (raw.scheme, raw.raw) {
            (Some(_), true) => Err("`raw` sends the bare token: it takes no `scheme`".to_owned()),
            (None, true) => Ok(Self(header)),
            (scheme, false) => {
                let scheme = scheme.unwrap_or_else(|| "Bearer".to_owned());
                let valid = !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_graphic());
                if valid {
                    Ok(Self(header.with_scheme(scheme)))
                } else {
                    Err(
                        "a scheme is one word of visible ASCII (`Bearer`, `Token`, `JWT`)"
                            .to_owned(),
                    )
                }
            }
        }
    }
}
