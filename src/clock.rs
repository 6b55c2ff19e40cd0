//! The layer's clock: what "now" is for expiry, refresh and backoff decisions.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// What time it is, for every decision the layer makes: whether the token is still fresh, when to
/// refresh it, when a backoff ends, how long a JWT `exp` leaves.
///
/// Two clocks, set with [`AuthLayerBuilder::clock`](crate::AuthLayerBuilder::clock):
///
/// - [`Clock::coarse`] (the default) reads the monotonic clock at the resolution of the
///   operating system's tick (`CLOCK_MONOTONIC_COARSE` on Linux: 1–10 ms). Every request reads
///   the clock, and a coarse read costs a fraction of a precise one; expiry decisions have margins
///   of seconds, so milliseconds of resolution change nothing.
/// - [`Clock::tokio`] is tokio's clock: it stops under `tokio::time::pause` and jumps with
///   `tokio::time::advance`, so that tests (the layer's and yours) can expire tokens, run out
///   backoffs and pass JWT `exp` claims without waiting. It needs tokio's `test-util` feature to be
///   paused, and costs a precise clock read per request.
///
/// Sleeps (backoff, retry delays) always run on tokio's timer, so under a paused runtime they
/// advance with it whichever clock is set.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use tower_token_auth::Clock;
///
/// let clock = Clock::tokio();
/// let start = clock.now();
/// tokio::time::sleep(Duration::from_millis(5)).await;
/// assert!(clock.now() >= start + Duration::from_millis(5));
/// # }
/// ```
#[derive(Clone, Copy)]
pub struct Clock(Source);

#[derive(Clone, Copy)]
enum Source {
    /// Coarse ticks, counted from `ticks` and placed on the precise timeline at `origin`.
    Coarse { origin: Instant, ticks: u64 },
    /// tokio's clock; wall-clock time is `wall` plus what tokio's clock advanced since `origin`.
    Tokio { origin: Instant, wall: SystemTime },
}

impl Clock {
    /// The monotonic clock at the resolution of the system's tick: the default.
    pub fn coarse() -> Self {
        let ticks = coarsetime::Instant::now_without_cache_update().as_ticks();
        Self(Source::Coarse {
            origin: Instant::from_std(std::time::Instant::now()),
            ticks,
        })
    }

    /// tokio's clock, which `tokio::time::pause` stops and `tokio::time::advance` moves; the
    /// wall-clock time it reports (for JWT `exp` and `Retry-After` dates) moves with it.
    pub fn tokio() -> Self {
        Self(Source::Tokio {
            origin: Instant::now(),
            wall: SystemTime::now(),
        })
    }

    /// The current instant.
    pub fn now(&self) -> Instant {
        self.instant(self.moment())
    }

    /// The current moment: what the layer compares deadlines with (a `u64`, so that the check
    /// every request makes is one integer comparison).
    #[inline]
    pub(crate) fn moment(&self) -> Moment {
        match self.0 {
            Source::Coarse { ticks, .. } => {
                let now = coarsetime::Instant::now_without_cache_update().as_ticks();
                Moment(coarsetime::Duration::from_ticks(now.saturating_sub(ticks)).as_nanos())
            }
            Source::Tokio { origin, .. } => Moment::after(Instant::now() - origin),
        }
    }

    /// `moment` as a tokio instant, to sleep until.
    pub(crate) fn instant(&self, moment: Moment) -> Instant {
        let origin = match self.0 {
            Source::Coarse { origin, .. } | Source::Tokio { origin, .. } => origin,
        };
        origin + Duration::from_nanos(moment.0)
    }

    /// `moment` as wall-clock time, as far as the two clocks agree now.
    pub(crate) fn wall_at(&self, moment: Moment) -> SystemTime {
        let (now, wall) = (self.moment(), self.wall());
        let at = if moment >= now {
            wall.checked_add(moment.duration_since(now))
        } else {
            wall.checked_sub(now.duration_since(moment))
        };
        at.unwrap_or(wall)
    }

    /// The current wall-clock time: for JWT `exp` claims and `Retry-After` dates.
    pub fn wall(&self) -> SystemTime {
        match self.0 {
            Source::Coarse { .. } => SystemTime::now(),
            Source::Tokio { origin, wall } => {
                wall + Instant::now().saturating_duration_since(origin)
            }
        }
    }
}

/// A point in time on a [`Clock`]: nanoseconds since the clock was made. Arithmetic saturates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Moment(u64);

impl Moment {
    fn after(elapsed: Duration) -> Self {
        Self(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The time from `earlier` to this moment; zero if `earlier` is later (as
    /// `Instant::duration_since` now is).
    pub(crate) fn duration_since(self, earlier: Moment) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Moment {
    type Output = Moment;

    fn add(self, rhs: Duration) -> Moment {
        Moment(self.0.saturating_add(Moment::after(rhs).0))
    }
}

impl Sub<Duration> for Moment {
    type Output = Moment;

    fn sub(self, rhs: Duration) -> Moment {
        Moment(self.0.saturating_sub(Moment::after(rhs).0))
    }
}

impl Default for Clock {
    /// [`Clock::coarse`].
    fn default() -> Self {
        Self::coarse()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Source::Coarse { .. } => "Clock::coarse",
            Source::Tokio { .. } => "Clock::tokio",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_follows_a_paused_runtime_wall_time_included() {
        let clock = Clock::tokio();
        let (start, wall) = (clock.now(), clock.wall());
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(clock.now() - start, Duration::from_secs(3600));
        assert_eq!(
            clock.wall().duration_since(wall).ok(),
            Some(Duration::from_secs(3600))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_coarse_clock_ignores_a_paused_runtime() {
        let clock = Clock::coarse();
        let start = clock.now();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(clock.now() - start < Duration::from_secs(60));
    }

    #[test]
    fn the_coarse_clock_is_monotonic_and_within_a_tick_of_the_precise_one() {
        // A tick is at most 10 ms (HZ=100); ordering the reads makes the bounds scheduling-proof.
        const TICK: Duration = Duration::from_millis(10);
        let clock = Clock::coarse();
        let (start, precise) = (clock.now(), std::time::Instant::now());
        let mut last = start;
        for _ in 0..100_000 {
            let before = precise.elapsed();
            let now = clock.now();
            let after = precise.elapsed();
            assert!(now >= last);
            assert!(
                now - start + 2 * TICK >= before,
                "{:?} < {before:?}",
                now - start
            );
            assert!(
                now - start <= after + 2 * TICK,
                "{:?} > {after:?}",
                now - start
            );
            last = now;
        }
    }
}
