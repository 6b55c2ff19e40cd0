//! The layer's clock: what "now" is for expiry, refresh and backoff decisions.

use std::fmt;
use std::ops::{Add, Sub};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::token::MAX_LIFETIME;

/// What time it is, for every decision the layer makes: whether the token is still fresh, when to
/// refresh it, when a backoff ends, how long a JWT `exp` leaves.
///
/// Two clocks, set with [`AuthLayerBuilder::clock`](crate::AuthLayerBuilder::clock):
///
/// - `Clock::default()` reads the monotonic clock at the resolution of the
///   operating system's tick (`CLOCK_MONOTONIC_COARSE` on Linux: 1–10 ms). Every request reads
///   the clock, and a coarse read costs a fraction of a precise one; expiry decisions have margins
///   of seconds, so milliseconds of resolution change nothing.
/// - [`Clock::tokio`] is tokio's clock: it stops under `tokio::time::pause` and jumps with
///   `tokio::time::advance`, so that tests (the layer's and yours) can expire tokens, run out
///   backoffs and pass JWT `exp` claims without waiting. It needs tokio's `test-util` feature to be
///   paused, and costs a precise clock read per request.
///
/// Sleeps (backoff, retry delays, waiting requests' deadlines) always run on tokio's timer, so
/// under a paused runtime they advance with it whichever clock is set.
///
/// # Paused time and the coarse clock
///
/// A clock that does not stop while tokio's timer does would have the layer sleep until a moment
/// that its clock never reaches (tokio jumps to the timer at once; the clock still reads the
/// system's time), in a loop. So once tokio's time has been seen paused in a process, the coarse
/// clock reads tokio's clock instead, and behaves as [`Clock::tokio`] does, wall-clock time
/// included. Before that, a request pays one branch on a flag for the check: nothing measurable.
///
/// A coarse clock looks when it is made and whenever the layer is about to sleep until one of its
/// moments (an auth call's retry, a waiting request's deadline). A layer built inside a paused
/// runtime (`#[tokio::test(start_paused = true)]`, or after `tokio::time::pause()`) follows
/// tokio's clock from its first request. A layer built earlier (outside the runtime, or before
/// the pause) reads the system's time until it first sleeps: a token it holds does not expire by
/// `tokio::time::advance` before then, and a deadline set before then counts on the system's
/// time, so paused time already advanced past it ends it at once. Build the layer after pausing,
/// or set [`Clock::tokio`].
///
/// Tokio's clock only ever pauses with its `test-util` feature, in tests: a process that never
/// pauses it keeps the coarse clock.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use tower_token_auth::Clock;
///
/// let clock = Clock::tokio();
/// let start = clock.wall();
/// tokio::time::sleep(Duration::from_millis(5)).await;
/// assert!(clock.wall() >= start + Duration::from_millis(5));
/// # }
/// ```
#[derive(Clone, Copy)]
pub struct Clock(Source);

#[derive(Clone, Copy)]
enum Source {
    /// Coarse ticks, counted from `ticks` and placed on tokio's timeline at `origin`; once tokio's
    /// time has been paused, as `Tokio`.
    Coarse {
        origin: Instant,
        ticks: u64,
        wall: SystemTime,
    },
    /// tokio's clock; wall-clock time is `wall` plus what tokio's clock advanced since `origin`.
    Tokio { origin: Instant, wall: SystemTime },
}

/// Whether tokio's clock has been seen apart from the system's in this process: it then stopped
/// (`tokio::time::pause`) or jumped (`tokio::time::advance`), and coarse clocks read it instead
/// of the system's. Process-wide and never reset, as tokio's own record that a clock was ever
/// paused is; set only in processes that paused tokio's time, which are tests.
static TOKIO_TIME_PAUSED: AtomicBool = AtomicBool::new(false);

/// Whether tokio's time has been paused (in this process, as far as can be seen from here).
///
/// NOTE: unpaused, tokio's `Instant::now()` is the system's monotonic clock (tokio reads it, or
/// with `test-util` adds its elapsed time to the same base), so read between two system reads it
/// lies between them. Paused, it is frozen in the past or advanced into the future: outside them.
/// The check costs three clock reads; it runs when a clock is made and before the layer sleeps
/// until a moment, never per request.
fn tokio_time_paused() -> bool {
    if TOKIO_TIME_PAUSED.load(Ordering::Relaxed) {
        return true;
    }
    let before = std::time::Instant::now();
    let tokio = Instant::now().into_std();
    let after = std::time::Instant::now();
    let paused = tokio < before || tokio > after;
    if paused {
        TOKIO_TIME_PAUSED.store(true, Ordering::Relaxed);
    }
    paused
}

impl Clock {
    /// The monotonic clock at the resolution of the system's tick: the default. Under paused
    /// tokio time, tokio's clock (see [above](Self#paused-time-and-the-coarse-clock)).
    fn coarse() -> Self {
        tokio_time_paused();
        let ticks = coarsetime::Instant::now_without_cache_update().as_ticks();
        Self(Source::Coarse {
            origin: Instant::now(),
            ticks,
            wall: SystemTime::now(),
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
    #[cfg(test)]
    pub(crate) fn now(&self) -> Instant {
        self.at(self.moment())
    }

    /// The current moment: what the layer compares deadlines with (a `u64`, so that the check
    /// every request makes is one integer comparison).
    #[inline]
    pub(crate) fn moment(&self) -> Moment {
        self.moment_of(self.read())
    }

    /// The clock, read once: a coarse clock's ticks as they are (see [`Reading`]), else the
    /// moment.
    #[inline]
    pub(crate) fn read(&self) -> Reading {
        match self.0 {
            Source::Coarse { .. } if !TOKIO_TIME_PAUSED.load(Ordering::Relaxed) => {
                Reading::Ticks(coarsetime::Instant::now_without_cache_update().as_ticks())
            }
            Source::Coarse { origin, .. } | Source::Tokio { origin, .. } => {
                Reading::Moment(tokio_since(origin))
            }
        }
    }

    /// The moment of a reading of this clock.
    #[inline]
    pub(crate) fn moment_of(&self, reading: Reading) -> Moment {
        match (reading, self.0) {
            (Reading::Moment(moment), _) => moment,
            (Reading::Ticks(now), Source::Coarse { ticks, .. }) => since(ticks, now),
            // Not made by this clock: read it afresh.
            (Reading::Ticks(_), Source::Tokio { origin, .. }) => tokio_since(origin),
        }
    }

    /// The least coarse tick count whose moment ([`Clock::moment_of`]) is `at` or later:
    /// comparing a reading's ticks with it decides `moment >= at` without converting them.
    /// `u64::MAX` when no reading reaches `at`, or when the clock gives no ticks.
    pub(crate) fn first_tick_at(&self, at: Moment) -> u64 {
        let Source::Coarse { ticks: origin, .. } = self.0 else {
            return u64::MAX;
        };
        // NOTE: found by bisection over coarsetime's own conversion, so that the comparison
        // agrees with `moment_of` to the nanosecond whatever fixed-point scale coarsetime uses
        // (the conversion only has to be monotonic). Once per token per thread: 64 steps.
        let elapsed = |d: u64| coarsetime::Duration::from_ticks(d).as_nanos();
        if at.0 == 0 {
            return 0;
        }
        if elapsed(u64::MAX) < at.0 {
            return u64::MAX;
        }
        // elapsed(low) < at <= elapsed(high)
        let (mut low, mut high) = (0u64, u64::MAX);
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if elapsed(mid) >= at.0 {
                high = mid;
            } else {
                low = mid;
            }
        }
        // Saturating: a count past u64::MAX is never read (2^32 seconds of uptime).
        origin.saturating_add(high)
    }

    /// `moment` as a tokio instant, to sleep until; far in the future for a moment too far to
    /// represent.
    ///
    /// NOTE: whoever sleeps until a moment reads the clock again when woken, and sleeps again if
    /// the moment has not come: that loop spins unless the clock and tokio's timer agree, so this
    /// is where a coarse clock checks whether tokio's time is paused.
    pub(crate) fn instant(&self, moment: Moment) -> Instant {
        self.notice_paused_time();
        self.at(moment)
    }

    /// `moment` as a tokio instant; far in the future for a moment too far to represent.
    fn at(&self, moment: Moment) -> Instant {
        let origin = match self.0 {
            Source::Coarse { origin, .. } | Source::Tokio { origin, .. } => origin,
        };
        let after = Duration::from_nanos(moment.0);
        origin
            .checked_add(after)
            .or_else(|| origin.checked_add(MAX_LIFETIME))
            .unwrap_or(origin)
    }

    /// For a coarse clock, checks whether tokio's time is paused, so that moments read from now
    /// on follow it (see [`Clock`](Clock#paused-time-and-the-coarse-clock)). Three clock reads:
    /// for cold paths only, before a deadline is computed or slept until.
    pub(crate) fn notice_paused_time(&self) {
        if let Source::Coarse { .. } = self.0 {
            tokio_time_paused();
        }
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
            Source::Coarse { .. } if !TOKIO_TIME_PAUSED.load(Ordering::Relaxed) => {
                SystemTime::now()
            }
            Source::Coarse { origin, wall, .. } | Source::Tokio { origin, wall } => {
                let elapsed = Instant::now().saturating_duration_since(origin);
                wall.checked_add(elapsed).unwrap_or(wall)
            }
        }
    }
}

/// A coarse clock's moment at tick count `now`, counting from `origin`.
#[inline]
fn since(origin: u64, now: u64) -> Moment {
    Moment(coarsetime::Duration::from_ticks(now.saturating_sub(origin)).as_nanos())
}

/// Tokio's clock's moment now, counting from `origin`.
#[inline]
fn tokio_since(origin: Instant) -> Moment {
    Moment::after(Instant::now().saturating_duration_since(origin))
}

/// A clock read once, for one request.
///
/// NOTE: a coarse clock's reading is kept in its ticks: the hot path compares them with a limit
/// converted once per token ([`Clock::first_tick_at`]), which spares each request the
/// conversion to nanoseconds; the moment is computed only when a decision needs it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reading {
    /// A coarse clock's tick count, as coarsetime reads it.
    Ticks(u64),
    /// Any other clock's moment.
    Moment(Moment),
}

/// A point in time on a [`Clock`]: nanoseconds since the clock was made. Arithmetic saturates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Moment(u64);

impl Moment {
    fn after(elapsed: Duration) -> Self {
        Self(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
    }

    /// Nanoseconds since the clock was made.
    pub(crate) fn as_nanos(self) -> u64 {
        self.0
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
    /// The monotonic clock at the resolution of the system's tick. Under paused tokio time,
    /// tokio's clock (see [above](Self#paused-time-and-the-coarse-clock)).
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
    async fn the_coarse_clock_follows_a_paused_runtime_wall_time_included() {
        let clock = Clock::default();
        let (start, wall) = (clock.now(), clock.wall());
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(clock.now() - start, Duration::from_secs(3600));
        assert_eq!(
            clock.wall().duration_since(wall).ok(),
            Some(Duration::from_secs(3600))
        );
        // Sleeping until a moment wakes when the clock has reached it: no spinning.
        let at = clock.moment() + Duration::from_secs(5);
        tokio::time::sleep_until(clock.instant(at)).await;
        assert_eq!(clock.moment(), at);
    }

    #[test]
    fn a_coarse_clock_made_before_the_pause_follows_it_once_it_sleeps() {
        let clock = Clock::default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::time::advance(Duration::from_secs(600)).await;
            let at = clock.moment() + Duration::from_secs(30);
            tokio::time::sleep_until(clock.instant(at)).await;
            let woken = clock.moment();
            // Its moments now count tokio's time: the sleep ended at or past the moment, and
            // another 30 s of paused time is another 30 s of moments.
            assert!(woken >= at, "{woken:?} < {at:?}");
            tokio::time::advance(Duration::from_secs(30)).await;
            assert_eq!(
                clock.moment().duration_since(woken),
                Duration::from_secs(30)
            );
        });
    }

    #[test]
    fn a_reading_reaches_a_moment_exactly_from_its_first_tick() {
        let clock = Clock::coarse();
        let Source::Coarse { ticks: origin, .. } = clock.0 else {
            unreachable!()
        };
        let moments = [
            0,
            1,
            2,
            999,
            1_000_000_007,
            3_600_000_000_000,
            u64::MAX / 5,
            u64::MAX,
        ];
        for at in moments.map(Moment) {
            let first = clock.first_tick_at(at);
            for ticks in [first.saturating_sub(1), first, first.saturating_add(1)] {
                let reached = clock.moment_of(Reading::Ticks(ticks)) >= at;
                assert_eq!(
                    reached,
                    ticks >= first && first != u64::MAX,
                    "{at:?} at {ticks}"
                );
            }
            assert!(first == 0 || first == u64::MAX || first > origin);
        }
        assert_eq!(Clock::tokio().first_tick_at(Moment(1)), u64::MAX);
    }

    #[test]
    fn moments_too_far_to_represent_are_far_in_the_future() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            for clock in [Clock::default(), Clock::tokio()] {
                let never = clock.moment() + Duration::MAX;
                assert_eq!(never, Moment(u64::MAX));
                assert!(clock.instant(never) > clock.now() + MAX_LIFETIME);
                assert!(clock.wall_at(never) > clock.wall());
                assert_eq!(clock.moment() - Duration::MAX, Moment(0));
                let sleep = tokio::time::sleep_until(clock.instant(never));
                assert!(tokio::time::timeout(Duration::from_millis(1), sleep)
                    .await
                    .is_err());
            }
        });
    }

    #[test]
    fn the_coarse_clock_is_monotonic_and_within_a_tick_of_the_precise_one() {
        // A tick is at most 10 ms (HZ=100); ordering the reads makes the bounds scheduling-proof.
        const TICK: Duration = Duration::from_millis(10);
        let clock = Clock::default();
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
