//! A token just received, with the lifetime it is believed to have, and the moments that follow
//! from it: when it expires, and when to renew it.

use std::time::{Duration, SystemTime};

use http::{HeaderName, HeaderValue};

use super::{jwt_lifetime, Lifetime, TokenSet, MAX_LIFETIME};
use crate::clock::{Clock, Moment};
use crate::secret::Secret;

/// The lifetime assumed for a token whose stated expiry cannot be right: an absolute one (a JWT
/// `exp`, an `expires_at`) already past by the local clock (a skewed clock), or a lifetime under
/// [`MIN_LIFETIME`]. Short, with a 401 as the backstop, rather than a login loop.
const SKEWED_LIFETIME: Duration = Duration::from_secs(60);

/// The shortest lifetime believed: a token stated to live less (`expires_in` of `0.001`, a JWT
/// `exp` a few milliseconds away) has an unknown lifetime instead (see `Issued::new`).
const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// A token just received (or read from a store), sendable, with its lifetime known.
pub(crate) struct Issued {
    pub(crate) access_token: Secret,
    pub(crate) header_name: HeaderName,
    pub(crate) header: HeaderValue,
    /// When the request that obtained the token was sent: lifetimes count from here.
    pub(crate) sent_at: Moment,
    pub(crate) lifetime: Duration,
    pub(crate) refresh_token: Option<Secret>,
    pub(crate) refresh_lifetime: Option<Duration>,
    /// Bound to the layer's DPoP key (`token_type` `DPoP`): sent with a proof per request.
    pub(crate) dpop: bool,
}

impl Issued {
    /// Works out the lifetimes of `tokens`, sent in `header`: `expires_in`, else `expires_at`,
    /// else the JWT `exp`, else `default_lifetime`.
    ///
    /// NOTE: a relative lifetime counts from `sent_at`, not from the response's arrival: the
    /// server issued the token somewhere in between, so the token is never believed valid after
    /// the server's own deadline, however slow the answer was. So does a JWT's `exp - iat`; an
    /// absolute expiry or a JWT with `exp` alone is read against the local clock at arrival.
    pub(crate) fn new(
        tokens: &TokenSet,
        header: (HeaderName, HeaderValue),
        default_lifetime: Duration,
        sent_at: Moment,
        clock: &Clock,
    ) -> Self {
        let received_at = clock.moment();
        let wall = clock.wall();
        let in_flight = received_at.duration_since(sent_at);
        let access = tokens.access_token().expose();
        let stated = match tokens.expires_at() {
            Some(at) => Some(Lifetime::until(at, wall)),
            None => jwt_lifetime(access, wall),
        };
        // The lifetime the server states, counted from `sent_at`: `None` when it states none, or
        // when its absolute expiry has already passed by the local clock.
        let stated = match tokens.expires_in() {
            Some(lifetime) => Some(lifetime),
            None => match stated {
                Some(Lifetime::Issued(lifetime)) => Some(lifetime),
                Some(Lifetime::Remaining(Duration::ZERO)) => Some(Duration::ZERO),
                // Counted from arrival, expressed from `sent_at`.
                Some(Lifetime::Remaining(lifetime)) => Some(lifetime + in_flight),
                None => None,
            },
        };
        let lifetime = match stated {
            None => default_lifetime.min(MAX_LIFETIME),
            Some(lifetime) if lifetime >= MIN_LIFETIME => lifetime,
            Some(stated) => {
                // NOTE: a token believed to die at once would be renewed by every request (an
                // auth-call storm); a skewed clock would make a login loop. Lifetime unknown: a
                // short assumed one, with the upstream's 401 as the backstop.
                let assumed = default_lifetime.min(SKEWED_LIFETIME);
                tracing::warn!(
                    stated_ms = stated.as_millis() as u64,
                    assumed_ms = assumed.as_millis() as u64,
                    "access token's stated lifetime is under a second or already over; lifetime unknown"
                );
                assumed + in_flight
            }
        };
        let refresh_lifetime = tokens.refresh_token().and_then(|token| {
            let stated = match tokens.refresh_expires_at() {
                Some(at) => Some(Lifetime::until(at, wall)),
                None => jwt_lifetime(token.expose(), wall),
            };
            tokens.refresh_expires_in().or_else(|| match stated? {
                Lifetime::Issued(lifetime) => Some(lifetime),
                Lifetime::Remaining(lifetime) => Some(lifetime + in_flight),
            })
        });
        let (header_name, header) = header;
        Self {
            access_token: tokens.access_token().clone(),
            header_name,
            header,
            sent_at,
            lifetime,
            refresh_token: tokens.refresh_token().cloned(),
            refresh_lifetime,
            dpop: false,
        }
    }

    /// A token whose expiries are wall-clock times (a stored session's), as if just issued:
    /// its lifetimes count from now, zero when already past.
    pub(crate) fn stored(
        access_token: Secret,
        header: (HeaderName, HeaderValue),
        expires_at: SystemTime,
        refresh: Option<(Secret, Option<SystemTime>)>,
        clock: &Clock,
    ) -> Self {
        let (sent_at, wall) = (clock.moment(), clock.wall());
        let remaining = |at: SystemTime| {
            at.duration_since(wall)
                .unwrap_or(Duration::ZERO)
                .min(MAX_LIFETIME)
        };
        let (refresh_token, refresh_expires_at) = refresh.unzip();
        let (header_name, header) = header;
        Self {
            access_token,
            header_name,
            header,
            sent_at,
            lifetime: remaining(expires_at),
            refresh_token,
            refresh_lifetime: refresh_expires_at.flatten().map(remaining),
            dpop: false,
        }
    }

    /// Keeps `token`, the refresh token just accepted, when the answer carried no new one (the
    /// server did not rotate it); it expires at `expires_at`, when known.
    pub(crate) fn keep_refresh_token(&mut self, token: &Secret, expires_at: Option<Moment>) {
        if self.refresh_token.is_some() {
            return;
        }
        self.refresh_token = Some(token.clone());
        self.refresh_lifetime = expires_at.map(|at| at.duration_since(self.sent_at));
    }

    /// Whether the access token is still valid.
    pub(crate) fn is_live(&self) -> bool {
        !self.lifetime.is_zero()
    }

    /// The refresh token to renew this token with, and when it expires.
    pub(crate) fn refresh(&self) -> (Option<&Secret>, Option<Moment>) {
        (self.refresh_token.as_ref(), self.refresh_expires_at())
    }

    /// When the access token expires.
    pub(crate) fn expires_at(&self) -> Moment {
        self.sent_at + self.lifetime
    }

    /// When the refresh token expires, if it is known to.
    pub(crate) fn refresh_expires_at(&self) -> Option<Moment> {
        self.refresh_lifetime
            .map(|lifetime| self.sent_at + lifetime)
    }

    /// When to renew the token: `margin` before it expires (no earlier than half its lifetime),
    /// or at expiry without a margin. `jitter` (in `[0, 1)`) spreads renewals over a fifth of the
    /// margin, earlier than the margin says, so that many clients given tokens at the same moment
    /// do not renew in lockstep.
    pub(crate) fn renew_at(&self, margin: Option<Duration>, jitter: f64) -> Moment {
        let expires_at = self.expires_at();
        match margin {
            Some(margin) => {
                let lead = margin.min(self.lifetime / 2);
                let lead = lead + lead.mul_f64(jitter.clamp(0.0, 1.0) / 5.0);
                expires_at - lead.min(self.lifetime)
            }
            None => expires_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lifetime `tokens` get when their request was sent 2 s before the answer arrived.
    async fn lifetime_after_two_seconds(tokens: impl FnOnce(SystemTime) -> TokenSet) -> Duration {
        let clock = Clock::tokio();
        let sent_at = clock.moment();
        let tokens = tokens(clock.wall());
        tokio::time::advance(Duration::from_secs(2)).await;
        let header = (
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer a"),
        );
        Issued::new(&tokens, header, Duration::from_secs(300), sent_at, &clock).lifetime
    }

    #[tokio::test(start_paused = true)]
    async fn relative_lifetimes_count_from_the_sending_absolute_ones_by_the_wall_clock() {
        let secs = Duration::from_secs;
        // `expires_in`: from the sending, however long the answer took.
        let lifetime =
            lifetime_after_two_seconds(|_| TokenSet::new("a").with_expires_in(secs(60))).await;
        assert_eq!(lifetime, secs(60));
        // `expires_at` 60 s after the sending: the same deadline, read at arrival.
        let lifetime =
            lifetime_after_two_seconds(|now| TokenSet::new("a").with_expires_at(now + secs(60)))
                .await;
        assert_eq!(lifetime, secs(60));
        // Already past by the local clock: a short assumed lifetime, not a login loop.
        let lifetime =
            lifetime_after_two_seconds(|now| TokenSet::new("a").with_expires_at(now - secs(5)))
                .await;
        assert_eq!(lifetime, SKEWED_LIFETIME + secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn renewal_comes_a_margin_early_but_never_before_half_the_lifetime() {
        let clock = Clock::tokio();
        let header = (
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer a"),
        );
        let secs = Duration::from_secs;
        let tokens = TokenSet::new("a").with_expires_in(secs(100));
        let issued = Issued::new(&tokens, header, secs(300), clock.moment(), &clock);
        assert_eq!(issued.renew_at(None, 0.5), issued.expires_at());
        assert_eq!(
            issued.renew_at(Some(secs(10)), 0.0),
            issued.expires_at() - secs(10)
        );
        // A fifth of the margin more at most, with the jitter.
        assert_eq!(
            issued.renew_at(Some(secs(10)), 0.5),
            issued.expires_at() - secs(11)
        );
        // A margin over half the lifetime: half the lifetime.
        assert_eq!(
            issued.renew_at(Some(secs(80)), 0.0),
            issued.expires_at() - secs(50)
        );
    }
}
