//! Issuing JWTs and remembering which ones are still good.
//!
//! Tokens are JWTs whose payload carries `iss`, `sub`, `typ`, `iat`, `exp` and `jti`, so clients
//! that read the `exp` claim (Tradecloud, Intergiro) see the real expiry. The signature is an
//! opaque random-looking string: no client can check it, and validity is decided here, by
//! lookup, never by decoding what the client sent.
//!
//! NOTE: the one lock is a `std` mutex held only for map operations; JWTs are built before it is
//! taken and nothing awaits while it is held.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Maps are swept of dead entries when they reach this size, then at twice their live size, so
/// sweeping costs O(1) per issued token and memory stays bounded by the live tokens.
const PRUNE_FLOOR: usize = 1024;

/// A lifetime too large for `Instant` arithmetic is treated as this (about a century).
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Token issuer and validity store of one emulation.
pub(super) struct Tokens {
    issuer: String,
    access_lifetime: Duration,
    refresh_lifetime: Duration,
    next_jti: AtomicU64,
    /// Keys the signatures, so two emulations never issue the same token string.
    seed: RandomState,
    maps: Mutex<Maps>,
}

struct Maps {
    access: HashMap<String, AccessEntry>,
    refresh: HashMap<String, RefreshEntry>,
    /// Access tokens the client revoked (RFC 7009), until they would have expired.
    revoked: HashMap<String, Instant>,
    access_prune_at: usize,
    refresh_prune_at: usize,
    revoked_prune_at: usize,
}

struct AccessEntry {
    expires: Instant,
    sub: Arc<str>,
    bound: Option<Arc<Bound>>,
}

/// What an access token of the OAuth2 extensions is bound to: a DPoP key, a client
/// certificate, audiences.
#[derive(Debug, Default)]
pub(super) struct Bound {
    /// The RFC 7638 thumbprint of the DPoP key that obtained the token (`cnf.jkt`).
    pub(super) jkt: Option<String>,
    /// The SHA-256 thumbprint of the client certificate it was issued over (`cnf.x5t#S256`,
    /// RFC 8705 3.1).
    pub(super) x5t: Option<String>,
    /// The audiences and resources it was issued for (`aud`).
    pub(super) audiences: Vec<String>,
}

/// A live access token as the resource sees it.
pub(super) struct Access {
    pub(super) sub: Arc<str>,
    pub(super) bound: Option<Arc<Bound>>,
}

struct RefreshEntry {
    expires: Instant,
    state: RefreshState,
    grant: Grant,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RefreshState {
    Live,
    /// Exchanged already (rotation); sending it again is misuse, not bad luck.
    Used,
    Revoked,
}

/// What a refresh token was issued for, handed back when it is redeemed.
#[derive(Clone)]
pub(super) struct Grant {
    pub(super) sub: Arc<str>,
    pub(super) scope: Option<Arc<str>>,
    /// The access token issued together with this refresh token (Intergiro's premature check).
    paired_access: Arc<str>,
}

/// A freshly issued token pair.
pub(super) struct Issued {
    pub(super) access: String,
    pub(super) refresh: Option<String>,
}

/// How to redeem a refresh token.
#[derive(Clone, Copy)]
pub(super) struct Redeem<'a> {
    /// Retire the token (single-use) instead of leaving it valid.
    pub(super) rotate: bool,
    /// Refuse while the access token issued with it is still valid (Intergiro).
    pub(super) refuse_while_access_live: bool,
    /// Refuse when this space-separated scope is not a subset of the granted one (OAuth2).
    pub(super) requested_scope: Option<&'a str>,
}

impl Redeem<'static> {
    /// A plain single-use refresh: retire the token, issue a new pair.
    pub(super) const SINGLE_USE: Self = Self {
        rotate: true,
        refuse_while_access_live: false,
        requested_scope: None,
    };
}

/// The outcome of redeeming a refresh token.
pub(super) enum Redeemed {
    /// Good: issue new tokens for this grant.
    Granted(Grant),
    /// Expired, revoked or never issued: a normal rejection.
    Dead,
    /// Already exchanged: the client re-sent a rotated token.
    Reused,
    /// The paired access token is still valid; the refresh token stays valid.
    Premature,
    /// The requested scope exceeds the grant; the refresh token stays valid.
    ScopeExceeded,
}

fn lock(maps: &Mutex<Maps>) -> MutexGuard<'_, Maps> {
    // A panic elsewhere must not take every later request down with it; the maps stay coherent
    // because every critical section is a handful of infallible map operations.
    maps.lock().unwrap_or_else(PoisonError::into_inner)
}

fn deadline(now: Instant, lifetime: Duration) -> Instant {
    now.checked_add(lifetime)
        .or_else(|| now.checked_add(FOREVER))
        .unwrap_or(now)
}

impl Tokens {
    pub(super) fn new(
        issuer: String,
        access_lifetime: Duration,
        refresh_lifetime: Duration,
    ) -> Self {
        Self {
            issuer,
            access_lifetime,
            refresh_lifetime,
            next_jti: AtomicU64::new(1),
            seed: RandomState::new(),
            maps: Mutex::new(Maps {
                access: HashMap::new(),
                refresh: HashMap::new(),
                revoked: HashMap::new(),
                access_prune_at: PRUNE_FLOOR,
                refresh_prune_at: PRUNE_FLOOR,
                revoked_prune_at: PRUNE_FLOOR,
            }),
        }
    }

    /// Builds a JWT of type `typ` for `sub` living `lifetime`.
    pub(super) fn mint(
        &self,
        typ: &str,
        sub: &str,
        lifetime: Duration,
        scope: Option<&str>,
    ) -> String {
        self.mint_bound(typ, sub, lifetime, scope, None)
    }

    /// [`mint`](Self::mint), with the `cnf` and `aud` claims of a bound token.
    fn mint_bound(
        &self,
        typ: &str,
        sub: &str,
        lifetime: Duration,
        scope: Option<&str>,
        bound: Option<&Bound>,
    ) -> String {
        let jti = self.next_jti.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let end = now.saturating_add(lifetime);
        // Rounded up: a client computing expiry from `exp` must never think a token died before
        // the server's `Instant` deadline, or an after-expiry client (Intergiro) would refresh
        // prematurely through no fault of its own.
        let exp = end
            .as_secs()
            .saturating_add(u64::from(end.subsec_nanos() > 0));
        let mut payload = serde_json::json!({
            "iss": self.issuer,
            "sub": sub,
            "typ": typ,
            "iat": now.as_secs(),
            "exp": exp,
            "jti": jti.to_string(),
        });
        if let Some(map) = payload.as_object_mut() {
            if let Some(scope) = scope {
                map.insert("scope".to_owned(), scope.into());
            }
            let mut cnf = serde_json::Map::new();
            if let Some(jkt) = bound.and_then(|b| b.jkt.as_deref()) {
                cnf.insert("jkt".to_owned(), jkt.into());
            }
            if let Some(x5t) = bound.and_then(|b| b.x5t.as_deref()) {
                cnf.insert("x5t#S256".to_owned(), x5t.into());
            }
            if !cnf.is_empty() {
                map.insert("cnf".to_owned(), cnf.into());
            }
            if let Some(bound) = bound.filter(|b| !b.audiences.is_empty()) {
                map.insert("aud".to_owned(), bound.audiences.clone().into());
            }
        }
        let mut signature = [0u8; 32];
        for (i, chunk) in signature.chunks_mut(8).enumerate() {
            let word = self.seed.hash_one((jti, i, typ)).to_le_bytes();
            chunk.copy_from_slice(&word);
        }
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        format!(
            "{header}.{}.{}",
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    /// A fresh UUID-shaped opaque id (Keycloak's `session_state`).
    pub(super) fn session_id(&self) -> String {
        let n = self.next_jti.fetch_add(1, Ordering::Relaxed);
        let hi = self.seed.hash_one((n, "session-hi"));
        let lo = self.seed.hash_one((n, "session-lo"));
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xfff,
            lo >> 52,
            lo & 0xffff_ffff_ffff
        )
    }

    /// Issues an access token and, if `with_refresh`, a refresh token, and records both.
    pub(super) fn issue(
        &self,
        sub: &Arc<str>,
        scope: Option<Arc<str>>,
        with_refresh: bool,
    ) -> Issued {
        self.issue_bound(sub, scope, with_refresh, None)
    }

    /// [`issue`](Self::issue), the access token bound as `bound` says (the refresh token is
    /// never bound).
    pub(super) fn issue_bound(
        &self,
        sub: &Arc<str>,
        scope: Option<Arc<str>>,
        with_refresh: bool,
        bound: Option<Arc<Bound>>,
    ) -> Issued {
        let access = self.mint_bound(
            "Bearer",
            sub,
            self.access_lifetime,
            scope.as_deref(),
            bound.as_deref(),
        );
        let refresh = with_refresh
            .then(|| self.mint("Refresh", sub, self.refresh_lifetime, scope.as_deref()));
        let now = Instant::now();
        let mut maps = lock(&self.maps);
        maps.prune(now);
        maps.access.insert(
            access.clone(),
            AccessEntry {
                expires: deadline(now, self.access_lifetime),
                sub: sub.clone(),
                bound,
            },
        );
        if let Some(refresh) = &refresh {
            maps.refresh.insert(
                refresh.clone(),
                RefreshEntry {
                    expires: deadline(now, self.refresh_lifetime),
                    state: RefreshState::Live,
                    grant: Grant {
                        sub: sub.clone(),
                        scope,
                        paired_access: Arc::from(access.as_str()),
                    },
                },
            );
        }
        drop(maps);
        Issued { access, refresh }
    }

    /// The subject of `token` if it is a live access token.
    pub(super) fn access_subject(&self, token: &str) -> Option<Arc<str>> {
        let now = Instant::now();
        let maps = lock(&self.maps);
        maps.access
            .get(token)
            .filter(|entry| entry.expires > now)
            .map(|entry| entry.sub.clone())
    }

    /// The live access token `token`, with what it is bound to.
    pub(super) fn access(&self, token: &str) -> Option<Access> {
        let now = Instant::now();
        let maps = lock(&self.maps);
        maps.access
            .get(token)
            .filter(|entry| entry.expires > now)
            .map(|entry| Access {
                sub: entry.sub.clone(),
                bound: entry.bound.clone(),
            })
    }

    /// Whether `token` is an access token the client revoked (RFC 7009) that would otherwise
    /// still live.
    pub(super) fn revoked_by_client(&self, token: &str) -> bool {
        let now = Instant::now();
        lock(&self.maps)
            .revoked
            .get(token)
            .is_some_and(|expires| *expires > now)
    }

    /// RFC 7009 revocation of `token`, an access or a refresh token (a string is never both, so
    /// the client's `token_type_hint` changes nothing). A refresh token takes the access token
    /// issued with it along. Whether a live token was revoked.
    pub(super) fn revoke_token(&self, token: &str) -> bool {
        let now = Instant::now();
        let mut guard = lock(&self.maps);
        let maps = &mut *guard;
        maps.prune(now);
        maps.revoke_access_token(token, now) || maps.revoke_refresh_token(token, now)
    }

    /// Checks `token` and, when it is good and `how.rotate`, retires it, all under one lock so
    /// two concurrent uses of one token see exactly one `Granted`.
    pub(super) fn redeem(&self, token: &str, how: Redeem<'_>) -> Redeemed {
        let now = Instant::now();
        let mut guard = lock(&self.maps);
        let maps = &mut *guard;
        let Some(entry) = maps.refresh.get_mut(token) else {
            return Redeemed::Dead;
        };
        // Expiry first: an expired token is a normal rejection even if it was also used.
        if entry.expires <= now {
            return Redeemed::Dead;
        }
        match entry.state {
            RefreshState::Used => return Redeemed::Reused,
            RefreshState::Revoked => return Redeemed::Dead,
            RefreshState::Live => {}
        }
        if how.refuse_while_access_live {
            let paired = maps.access.get(&*entry.grant.paired_access);
            if paired.is_some_and(|access| access.expires > now) {
                return Redeemed::Premature;
            }
        }
        if let Some(requested) = how.requested_scope {
            let granted = entry.grant.scope.as_deref().unwrap_or("");
            if !requested
                .split(' ')
                .filter(|s| !s.is_empty())
                .all(|s| granted.split(' ').any(|g| g == s))
            {
                return Redeemed::ScopeExceeded;
            }
        }
        if how.rotate {
            entry.state = RefreshState::Used;
        }
        Redeemed::Granted(entry.grant.clone())
    }

    /// Every access token issued so far dies now.
    pub(super) fn revoke_access(&self) {
        lock(&self.maps).access.clear();
    }

    /// Every refresh token issued so far dies now. Used ones stay known, so re-sending one is
    /// still reported as reuse.
    pub(super) fn revoke_refresh(&self) {
        for entry in lock(&self.maps).refresh.values_mut() {
            if entry.state == RefreshState::Live {
                entry.state = RefreshState::Revoked;
            }
        }
    }

    /// Kills the tokens of one answer that was never delivered (a 2xx fault replaced it).
    pub(super) fn forget(&self, access: &str, refresh: Option<&str>) {
        let mut maps = lock(&self.maps);
        maps.access.remove(access);
        if let Some(entry) = refresh.and_then(|r| maps.refresh.get_mut(r)) {
            if entry.state == RefreshState::Live {
                entry.state = RefreshState::Revoked;
            }
        }
    }

    /// Whether some refresh token could still be redeemed: issued, not used, expired or revoked.
    ///
    /// A scan of the refresh map; called once per successful login, which a correct client makes
    /// rarely, so the resource path never pays for it beyond the shared lock.
    pub(super) fn has_live_refresh(&self) -> bool {
        let now = Instant::now();
        lock(&self.maps)
            .refresh
            .values()
            .any(|entry| entry.state == RefreshState::Live && entry.expires > now)
    }
}

impl Maps {
    fn revoke_access_token(&mut self, token: &str, now: Instant) -> bool {
        match self.access.remove(token) {
            Some(entry) if entry.expires > now => {
                self.revoked.insert(token.to_owned(), entry.expires);
                true
            }
            _ => false,
        }
    }

    fn revoke_refresh_token(&mut self, token: &str, now: Instant) -> bool {
        let Some(entry) = self.refresh.get_mut(token) else {
            return false;
        };
        if entry.state != RefreshState::Live || entry.expires <= now {
            return false;
        }
        entry.state = RefreshState::Revoked;
        let paired = entry.grant.paired_access.clone();
        self.revoke_access_token(&paired, now);
        true
    }

    fn prune(&mut self, now: Instant) {
        if self.revoked.len() >= self.revoked_prune_at {
            self.revoked.retain(|_, expires| *expires > now);
            self.revoked_prune_at = (self.revoked.len() * 2).max(PRUNE_FLOOR);
        }
        if self.access.len() >= self.access_prune_at {
            self.access.retain(|_, e| e.expires > now);
            self.access_prune_at = (self.access.len() * 2).max(PRUNE_FLOOR);
        }
        if self.refresh.len() >= self.refresh_prune_at {
            self.refresh.retain(|_, e| e.expires > now);
            self.refresh_prune_at = (self.refresh.len() * 2).max(PRUNE_FLOOR);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(access: Duration) -> Tokens {
        Tokens::new("test".into(), access, Duration::from_secs(60))
    }

    fn claims(jwt: &str) -> serde_json::Value {
        let payload = jwt.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    #[test]
    fn jwt_carries_rounded_up_exp() {
        let t = tokens(Duration::from_millis(1500));
        let jwt = t.mint("Bearer", "alice", Duration::from_millis(1500), None);
        assert_eq!(jwt.split('.').count(), 3);
        let c = claims(&jwt);
        let (iat, exp) = (c["iat"].as_u64().unwrap(), c["exp"].as_u64().unwrap());
        assert!(exp >= iat + 2 && exp <= iat + 3, "iat {iat} exp {exp}");
        assert_eq!(c["sub"], "alice");
        assert_eq!(c["jti"], "1");
    }

    #[test]
    fn rotation_reuse_and_revocation() {
        let t = tokens(Duration::from_secs(60));
        let sub: Arc<str> = Arc::from("alice");
        let issued = t.issue(&sub, None, true);
        let refresh = issued.refresh.unwrap();
        let rotate = Redeem {
            rotate: true,
            refuse_while_access_live: false,
            requested_scope: None,
        };
        assert!(matches!(t.redeem(&refresh, rotate), Redeemed::Granted(_)));
        assert!(matches!(t.redeem(&refresh, rotate), Redeemed::Reused));
        assert!(matches!(t.redeem("nope", rotate), Redeemed::Dead));
        let second = t.issue(&sub, None, true).refresh.unwrap();
        t.revoke_refresh();
        assert!(matches!(t.redeem(&second, rotate), Redeemed::Dead));
        assert!(matches!(t.redeem(&refresh, rotate), Redeemed::Reused));
        assert!(t.access_subject(&issued.access).is_some());
        t.revoke_access();
        assert!(t.access_subject(&issued.access).is_none());
    }

    #[test]
    fn forgotten_tokens_die_and_live_refresh_is_tracked() {
        let t = tokens(Duration::from_secs(60));
        let sub: Arc<str> = Arc::from("alice");
        assert!(!t.has_live_refresh());
        let issued = t.issue(&sub, None, true);
        assert!(t.has_live_refresh());
        let refresh = issued.refresh.unwrap();
        t.forget(&issued.access, Some(&refresh));
        assert!(!t.has_live_refresh());
        assert!(t.access_subject(&issued.access).is_none());
        assert!(matches!(
            t.redeem(&refresh, Redeem::SINGLE_USE),
            Redeemed::Dead
        ));
        // A used token stays used: forgetting it later does not turn reuse into a rejection.
        let used = t.issue(&sub, None, true).refresh.unwrap();
        assert!(matches!(
            t.redeem(&used, Redeem::SINGLE_USE),
            Redeemed::Granted(_)
        ));
        assert!(!t.has_live_refresh());
        t.forget("unknown", Some(&used));
        assert!(matches!(
            t.redeem(&used, Redeem::SINGLE_USE),
            Redeemed::Reused
        ));
    }

    #[test]
    fn pruning_keeps_live_tokens() {
        let t = tokens(Duration::from_secs(60));
        let sub: Arc<str> = Arc::from("alice");
        let first = t.issue(&sub, None, true);
        for _ in 0..3 * PRUNE_FLOOR {
            t.issue(&sub, None, false);
        }
        assert!(t.access_subject(&first.access).is_some());
    }
}
