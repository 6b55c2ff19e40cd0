//! A session as stores keep it, and its checked JSON encoding.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use http::{HeaderName, HeaderValue};

use crate::clock::{Clock, Moment};
use crate::error::AuthError;
use crate::secret::Secret;
use crate::token::Issued;

/// What the `format` field of every encoded session says; anything else is foreign.
const FORMAT: &str = "tower-token-auth/session/2";

/// A session as a [`TokenStore`](super::TokenStore) keeps it: the access token, the refresh
/// token, their expiries as wall-clock times (whole milliseconds, rounded down), and what identifies
/// this token among the session's tokens.
///
/// The layer decides "is the stored session still the one I hold" by `id`, a random
/// value drawn for every token saved, and orders sessions by `version`, which
/// every save raises by one.
///
/// `Debug` shows the expiries, id and version; the tokens print as `[redacted]`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_token_auth::store::StoredSession;
/// use tower_token_auth::ErrorKind;
///
/// let expires = SystemTime::now() + Duration::from_secs(300);
/// let session = StoredSession::new("access-token", expires)
///     .with_refresh_token("refresh-token", Some(expires + Duration::from_secs(3600)));
/// assert!(!format!("{session:?}").contains("access-token"));
///
/// let json = session.to_json("api/alice");
/// assert_eq!(StoredSession::from_json("api/alice", &json)?, session);
/// // An entry written for another key is refused.
/// assert_eq!(StoredSession::from_json("api/bob", &json).unwrap_err().kind(), ErrorKind::Store);
/// # Ok::<(), tower_token_auth::AuthError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSession {
    access_token: Secret,
    expires_at: SystemTime,
    refresh_token: Option<Secret>,
    refresh_expires_at: Option<SystemTime>,
    id: u64,
    version: u64,
    /// The thumbprint of the DPoP key the access token is bound to (RFC 9449), if it is.
    dpop_jkt: Option<String>,
}

impl StoredSession {
    /// A session with this access token, valid until `expires_at`, no refresh token, a random
    /// `id` and `version` 0.
    pub fn new(access_token: impl Into<Secret>, expires_at: SystemTime) -> Self {
        Self {
            access_token: access_token.into(),
            expires_at: whole_millis(expires_at),
            refresh_token: None,
            refresh_expires_at: None,
            id: fastrand::u64(..),
            version: 0,
            dpop_jkt: None,
        }
    }

    /// With a refresh token, valid until `expires_at` (`None`: until the server refuses it).
    pub fn with_refresh_token(
        mut self,
        refresh_token: impl Into<Secret>,
        expires_at: Option<SystemTime>,
    ) -> Self {
        self.refresh_token = Some(refresh_token.into());
        self.refresh_expires_at = expires_at.map(whole_millis);
        self
    }

    /// The thumbprint of the DPoP key the access token is bound to, if it is.
    pub(crate) fn dpop_jkt(&self) -> Option<&str> {
        self.dpop_jkt.as_deref()
    }

    /// With this version.
    pub(crate) fn with_version(mut self, version: u64) -> Self {
        self.version = version;
        self
    }

    /// The access token.
    pub(crate) fn access_token(&self) -> &Secret {
        &self.access_token
    }

    /// When the access token expires.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// The refresh token, if the session has one.
    pub(crate) fn refresh_token(&self) -> Option<&Secret> {
        self.refresh_token.as_ref()
    }

    /// When the refresh token expires, if known.
    pub fn refresh_expires_at(&self) -> Option<SystemTime> {
        self.refresh_expires_at
    }

    /// Which token of the session this is: drawn at random for every token saved.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// How many saves led to this token: each save is one more than the session it replaced.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// The session as JSON, for a store that keeps bytes: a format tag, `key`, the tokens in
    /// plain text, expiries in milliseconds since the Unix epoch.
    ///
    /// The bytes hold the tokens: treat them as the secrets they are.
    pub fn to_json(&self, key: &str) -> Vec<u8> {
        let entry = Entry {
            format: Cow::Borrowed(FORMAT),
            key: Cow::Borrowed(key),
            id: Cow::Owned(format!("{:016x}", self.id)),
            version: self.version,
            access_token: Cow::Borrowed(self.access_token.expose()),
            expires_at_ms: unix_millis(self.expires_at),
            refresh_token: self
                .refresh_token
                .as_ref()
                .map(|t| Cow::Borrowed(t.expose())),
            refresh_expires_at_ms: self.refresh_expires_at.map(unix_millis),
            dpop_jkt: self.dpop_jkt.as_deref().map(Cow::Borrowed),
        };
        // A struct of strings and integers always serializes.
        serde_json::to_vec(&entry).unwrap_or_default()
    }

    /// Reads what [`to_json`](Self::to_json) wrote for `key`. Anything else fails with
    /// [`ErrorKind::Store`](crate::ErrorKind::Store): bytes that are not JSON, JSON of another
    /// format or version, a missing or mistyped field, an entry written for another key. The
    /// error never quotes the content.
    pub fn from_json(key: &str, json: &[u8]) -> Result<Self, AuthError> {
        let unusable = |what: &'static str| AuthError::store(what, None);
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|_| unusable("session entry is not JSON"))?;
        if value.get("format").and_then(serde_json::Value::as_str) != Some(FORMAT) {
            return Err(unusable(
                "session entry has a foreign format (not a tower-token-auth session, version 2)",
            ));
        }
        // NOTE: serde's messages quote the values they refuse, tokens included: not passed on.
        let entry = Entry::deserialize(value)
            .map_err(|_| unusable("session entry has a missing or mistyped field"))?;
        if entry.key != key {
            return Err(unusable("session entry belongs to another session key"));
        }
        let id = u64::from_str_radix(&entry.id, 16)
            .map_err(|_| unusable("session entry has a malformed id"))?;
        let time = |millis: u64| {
            UNIX_EPOCH
                .checked_add(Duration::from_millis(millis))
                .ok_or_else(|| unusable("session entry has an expiry out of range"))
        };
        if entry.access_token.is_empty() {
            return Err(unusable("session entry has an empty access token"));
        }
        Ok(Self {
            access_token: Secret::from(entry.access_token.into_owned()),
            expires_at: time(entry.expires_at_ms)?,
            refresh_token: entry
                .refresh_token
                .filter(|t| !t.is_empty())
                .map(|t| Secret::from(t.into_owned())),
            refresh_expires_at: entry.refresh_expires_at_ms.map(time).transpose()?,
            id,
            version: entry.version,
            dpop_jkt: entry.dpop_jkt.map(Cow::into_owned),
        })
    }
}

/// The encoded form.
#[derive(Serialize, Deserialize)]
struct Entry<'a> {
    format: Cow<'a, str>,
    key: Cow<'a, str>,
    id: Cow<'a, str>,
    version: u64,
    access_token: Cow<'a, str>,
    expires_at_ms: u64,
    refresh_token: Option<Cow<'a, str>>,
    refresh_expires_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dpop_jkt: Option<Cow<'a, str>>,
}

/// Conversion to and from the token a layer holds.
impl StoredSession {
    /// The stored token as if just issued, sent in `header`: its lifetimes count from now, zero
    /// when already past.
    pub(crate) fn issued(&self, header: (HeaderName, HeaderValue), clock: &Clock) -> Issued {
        let refresh = self
            .refresh_token()
            .map(|token| (token.clone(), self.refresh_expires_at()));
        let mut issued = Issued::stored(
            self.access_token().clone(),
            header,
            self.expires_at(),
            refresh,
            clock,
        );
        issued.dpop = self.dpop_jkt.is_some();
        issued
    }

    /// What a store keeps of `issued`, renewed with `refresh` (the refresh token and when it
    /// expires), bound to the DPoP key of thumbprint `jkt` if it is: expiries as wall-clock
    /// times by `clock`.
    pub(crate) fn of(
        issued: &Issued,
        refresh: (Option<&Secret>, Option<Moment>),
        jkt: Option<&str>,
        clock: &Clock,
    ) -> Self {
        let mut session = Self::new(
            issued.access_token.clone(),
            clock.wall_at(issued.expires_at()),
        );
        session.dpop_jkt = jkt.filter(|_| issued.dpop).map(str::to_owned);
        match refresh {
            (Some(token), at) => {
                session.with_refresh_token(token.clone(), at.map(|at| clock.wall_at(at)))
            }
            (None, _) => session,
        }
    }
}

pub(super) fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `at`, rounded down to whole milliseconds (as stored): a token is never believed valid later
/// than it was.
fn whole_millis(at: SystemTime) -> SystemTime {
    // Representable, as `at` is, wherever `SystemTime` counts in milliseconds or finer.
    UNIX_EPOCH
        .checked_add(Duration::from_millis(unix_millis(at)))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn session() -> StoredSession {
        let at = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        StoredSession::new("at-SECRET", at).with_refresh_token("rt-SECRET", Some(at))
    }

    #[test]
    fn a_session_round_trips_for_its_key_only() {
        let s = session().with_version(7);
        let json = s.to_json("k");
        assert_eq!(StoredSession::from_json("k", &json).unwrap(), s);
        let err = StoredSession::from_json("other", &json).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Store);
    }

    #[test]
    fn unusable_entries_are_typed_errors_that_quote_nothing() {
        let good = String::from_utf8(session().to_json("k")).unwrap();
        let cases = [
            b"\x00\xffgarbage SECRET".to_vec(),
            br#"{"format":"other/1","access_token":"at-SECRET"}"#.to_vec(),
            good.replace("\"expires_at_ms\":", "\"expires_at_ms\":\"SECRET\",\"x\":")
                .into_bytes(),
            good.replace("\"id\":\"", "\"id\":\"zz").into_bytes(),
            good.as_bytes()[..good.len() / 2].to_vec(),
            Vec::new(),
        ];
        for json in cases {
            let err = StoredSession::from_json("k", &json).unwrap_err();
            assert!(err.kind() == ErrorKind::Store, "{err:?}");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("SECRET"), "{shown}");
        }
    }

    #[test]
    fn debug_hides_the_tokens_and_expiries_round_down() {
        let s = StoredSession::new("at-SECRET", UNIX_EPOCH + Duration::from_micros(1_999_999));
        assert_eq!(s.expires_at(), UNIX_EPOCH + Duration::from_millis(1999));
        let debug = format!("{:?}", session());
        assert!(
            !debug.contains("SECRET") && debug.contains("[redacted]"),
            "{debug}"
        );
    }
}
