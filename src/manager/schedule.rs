//! When to try again: the transient retry schedule and the backoff after rejected credentials.
//!
//! Two failure classes get two schedules. A *transient* failure (5xx, 429, a reset, a timeout, an
//! unusable answer) is retried inside the flight with full-jitter exponential delays, short enough
//! that waiting requests are served within one delay of the auth server's return. A *rejection*
//! (the credentials are refused) waits a long jittered backoff during which requests fail fast, so
//! that credentials are never re-sent in a loop.

use std::time::{Duration, SystemTime};

use http::header::RETRY_AFTER;
use http::HeaderMap;

use crate::token::MAX_LIFETIME;

/// Exponential backoff: `initial * multiplier^(n-1)` after the `n`th consecutive failure, capped
/// at `max`.
///
/// The layer uses two, set with [`AuthLayerBuilder`](crate::AuthLayerBuilder)'s `retry_backoff`
/// and `rejection_backoff`: [`Backoff::TRANSIENT`] spaces retries of transient failures, with
/// *full jitter* (each delay is drawn uniformly between zero and the nominal one);
/// [`Backoff::REJECTION`] spaces logins after rejected credentials, with jitter *added* (each
/// delay is drawn between the nominal one and half as much again), so credentials are never sent
/// more often than the nominal delay says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// Delay after the first failure.
    pub(crate) initial: Duration,
    /// Upper bound of the nominal delay.
    pub(crate) max: Duration,
    /// Growth factor per consecutive failure.
    pub(crate) multiplier: u32,
}

impl Backoff {
    /// Retries of transient auth failures: 100 ms, doubling, at most 1 s apart. The cap is what
    /// bounds recovery: once the auth server answers again, waiting requests get a token within
    /// one delay (plus the auth call itself).
    pub(crate) const TRANSIENT: Backoff =
        Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 2);

    /// Logins after rejected credentials: 5 s, doubling, at most 5 minutes apart (plus up to half
    /// as much again of jitter).
    pub(crate) const REJECTION: Backoff =
        Backoff::new(Duration::from_secs(5), Duration::from_secs(300), 2);

    /// A backoff starting at `initial`, growing by `multiplier` per failure, capped at `max`.
    pub(crate) const fn new(initial: Duration, max: Duration, multiplier: u32) -> Self {
        Self {
            initial,
            max,
            multiplier,
        }
    }

    /// The nominal delay after `failures` consecutive failures (zero for none), before jitter.
    /// Never more than ten years, whatever the settings, so that it can always be added to an
    /// instant.
    pub(crate) fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = self.multiplier.max(1).saturating_pow(failures - 1);
        self.initial
            .saturating_mul(factor)
            .min(self.max)
            .min(MAX_LIFETIME)
    }
}

/// The layer's two schedules and the cap on a server's `Retry-After`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Schedule {
    pub(crate) transient: Backoff,
    pub(crate) rejection: Backoff,
    pub(crate) retry_after_cap: Duration,
}

impl Schedule {
    /// The delay before retrying after the `failures`th consecutive transient failure.
    ///
    /// `retry_after` (the server's own wish) lengthens it, up to the cap. `valid_for` is the
    /// remaining lifetime of a token still in use (a refresh ahead failed): the retry then
    /// comes no later than half of it (but not sooner than the initial delay, while the token
    /// lasts that long), and never after it, so the token is renewed before it dies whenever the
    /// server allows.
    pub(crate) fn transient_delay(
        &self,
        rng: &mut fastrand::Rng,
        failures: u32,
        retry_after: Option<Duration>,
        valid_for: Option<Duration>,
    ) -> Duration {
        let nominal = self.transient.delay(failures);
        let mut delay = full_jitter(rng, nominal);
        if let Some(wish) = retry_after {
            delay = delay.max(wish.min(self.retry_after_cap));
        }
        if let Some(valid_for) = valid_for {
            let half = valid_for / 2;
            if delay > half {
                // NOTE: not below the initial delay while the token lasts, so that the retries do
                // not crowd together as the remaining lifetime shrinks toward zero.
                delay = half.max(self.transient.initial.min(valid_for));
            }
        }
        delay
    }

    /// How long credentials wait after the `strikes`th consecutive rejection.
    pub(crate) fn rejection_delay(&self, rng: &mut fastrand::Rng, strikes: u32) -> Duration {
        let nominal = self.rejection.delay(strikes);
        nominal
            .saturating_add(full_jitter(rng, nominal / 2))
            .min(MAX_LIFETIME)
    }
}

/// Uniform in `[0, max]`.
fn full_jitter(rng: &mut fastrand::Rng, max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.u64(0..=nanos))
}

/// `Retry-After` as a delay from `now`: delta-seconds or an HTTP date (RFC 9110 §10.2.3).
/// Unparseable values are ignored; a date in the past means "now".
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX_LIFETIME));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_LIFETIME),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn schedule() -> Schedule {
        Schedule {
            transient: Backoff::TRANSIENT,
            rejection: Backoff::REJECTION,
            retry_after_cap: Duration::from_secs(10),
        }
    }

    #[test]
    fn backoff_grows_and_caps() {
        let backoff = Backoff::new(100 * MS, Duration::from_secs(1), 3);
        assert_eq!(backoff.delay(0), Duration::ZERO);
        assert_eq!(backoff.delay(1), 100 * MS);
        assert_eq!(backoff.delay(2), 300 * MS);
        assert_eq!(backoff.delay(3), 900 * MS);
        assert_eq!(backoff.delay(4), Duration::from_secs(1));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(1));
        let never = Backoff::new(Duration::MAX, Duration::MAX, u32::MAX);
        assert_eq!(never.delay(7), MAX_LIFETIME, "clamped: always addable");
    }

    #[test]
    fn transient_delays_have_full_jitter_within_the_cap() {
        let mut rng = fastrand::Rng::with_seed(7);
        let s = schedule();
        for failures in 1..40 {
            let nominal = s.transient.delay(failures);
            let d = s.transient_delay(&mut rng, failures, None, None);
            assert!(d <= nominal && nominal <= Duration::from_secs(1), "{d:?}");
        }
        let draws: Vec<_> = (0..1000)
            .map(|_| s.transient_delay(&mut rng, 10, None, None))
            .collect();
        let mean = draws.iter().sum::<Duration>() / 1000;
        assert!(
            mean > 400 * MS && mean < 600 * MS,
            "uniform in [0, 1 s]: {mean:?}"
        );
        assert!(draws.iter().any(|d| *d < 100 * MS), "jitter reaches low");
    }

    #[test]
    fn retry_after_lengthens_up_to_the_cap() {
        let mut rng = fastrand::Rng::with_seed(1);
        let s = schedule();
        let wish = Some(Duration::from_secs(3));
        assert_eq!(
            s.transient_delay(&mut rng, 1, wish, None),
            Duration::from_secs(3)
        );
        let greedy = Some(Duration::from_secs(3600));
        assert_eq!(
            s.transient_delay(&mut rng, 1, greedy, None),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn a_valid_token_bounds_the_delay_by_half_its_remaining_life() {
        let mut rng = fastrand::Rng::with_seed(3);
        let s = schedule();
        let wish = Some(Duration::from_secs(10));
        let d = s.transient_delay(&mut rng, 1, wish, Some(Duration::from_secs(4)));
        assert_eq!(d, Duration::from_secs(2));
        // Near expiry: never below the initial delay, never past expiry.
        let d = s.transient_delay(&mut rng, 1, wish, Some(150 * MS));
        assert_eq!(d, 100 * MS);
        let d = s.transient_delay(&mut rng, 1, wish, Some(40 * MS));
        assert_eq!(d, 40 * MS);
    }

    #[test]
    fn rejection_delays_never_undercut_the_nominal_one() {
        let mut rng = fastrand::Rng::with_seed(5);
        let s = schedule();
        for strikes in 1..12 {
            let nominal = s.rejection.delay(strikes);
            let d = s.rejection_delay(&mut rng, strikes);
            assert!(
                d >= nominal && d <= nominal + nominal / 2,
                "{strikes}: {d:?}"
            );
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let headers = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, http::HeaderValue::from_static(v));
            h
        };
        assert_eq!(
            retry_after(&headers("120"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(&headers(" 2 "), now),
            Some(Duration::from_secs(2))
        );
        // 1445412480 is Wed, 21 Oct 2015 07:28:00 GMT.
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:28:30 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:27:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&headers("-3"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
