//! What a test can see and steer of the protected resource: the bearer tokens it was shown, a
//! gate that holds requests after their answer has been decided, and random revocation.
//!
//! The first two are `watch` channels, so a test can wait for a state instead of polling for it.
//!
//! NOTE: a request's answer is decided when it arrives and the gate only delays sending it, so a
//! test can make a client see the 401 for a token long after the token was replaced, in the order
//! the test chooses. Nothing here awaits while holding a lock: `watch` runs each update closure
//! under its own lock, and the closures only count.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;

/// The hold gate's state: of the `armed` requests of this `generation`, `arrived` have come in
/// and the first `released` may be answered.
#[derive(Default)]
struct Gate {
    generation: u64,
    armed: usize,
    arrived: usize,
    released: usize,
}

/// Holds the next `n` resource requests, numbered in arrival order, until released.
pub(super) struct Hold {
    gate: watch::Sender<Gate>,
}

impl Hold {
    pub(super) fn new() -> Self {
        Self {
            gate: watch::Sender::new(Gate::default()),
        }
    }

    /// Holds the next `n` requests; requests still held from an earlier call go free.
    pub(super) fn arm(&self, n: usize) {
        self.gate.send_modify(|gate| {
            *gate = Gate {
                generation: gate.generation.wrapping_add(1),
                armed: n,
                ..Gate::default()
            };
        });
    }

    /// Waits until this request may be answered: at once unless the gate takes it.
    pub(super) async fn pass(&self) {
        let mut ticket = None;
        self.gate.send_if_modified(|gate| {
            if gate.arrived >= gate.armed {
                return false;
            }
            ticket = Some((gate.generation, gate.arrived));
            gate.arrived += 1;
            true
        });
        let Some((generation, index)) = ticket else {
            return;
        };
        // `Shared` owns the sender and outlives every connection, so this never ends in `Err`.
        let _ = self
            .gate
            .subscribe()
            .wait_for(|gate| gate.generation != generation || gate.released > index)
            .await;
    }

    /// Waits until `k` requests of the current hold have arrived.
    pub(super) async fn arrived(&self, k: usize) {
        let _ = self
            .gate
            .subscribe()
            .wait_for(|gate| gate.arrived >= k)
            .await;
    }

    /// Lets the first `k` held requests go; fewer than already released changes nothing.
    pub(super) fn release(&self, k: usize) {
        self.gate.send_if_modified(|gate| {
            let more = k > gate.released;
            gate.released = gate.released.max(k);
            more
        });
    }
}

#[derive(Default)]
struct Seen {
    /// Each distinct token with the number of requests that carried it, in first-seen order.
    uses: Vec<(String, u64)>,
    /// Where each token stands in `uses`.
    index: HashMap<String, usize>,
}

/// The bearer tokens resource requests carried.
pub(super) struct SeenTokens {
    seen: watch::Sender<Seen>,
}

impl SeenTokens {
    pub(super) fn new() -> Self {
        Self {
            seen: watch::Sender::new(Seen::default()),
        }
    }

    /// Counts one request carrying `token`; waiters wake only for a token not seen before.
    pub(super) fn record(&self, token: &str) {
        self.seen.send_if_modified(|seen| {
            if let Some(uses) = seen.index.get(token).and_then(|&i| seen.uses.get_mut(i)) {
                uses.1 += 1;
                return false;
            }
            seen.index.insert(token.to_owned(), seen.uses.len());
            seen.uses.push((token.to_owned(), 1));
            true
        });
    }

    pub(super) fn snapshot(&self) -> Vec<(String, u64)> {
        self.seen.borrow().uses.clone()
    }

    /// Waits until `n` distinct tokens have been seen.
    pub(super) async fn distinct(&self, n: usize) {
        let _ = self
            .seen
            .subscribe()
            .wait_for(|seen| seen.uses.len() >= n)
            .await;
    }
}

/// Random revocation: each answer the resource gives to a live token revokes that token with a
/// probability, drawn independently per answer (so revocations cluster as chance has it, not
/// one in every N).
pub(super) struct Revocations {
    /// The probability, as `f64` bits; 0 (the default) draws nothing.
    rate: AtomicU64,
    rng: Mutex<fastrand::Rng>,
    revoked: AtomicU64,
}

impl Revocations {
    pub(super) fn new(seed: Option<u64>) -> Self {
        // Its own stream, apart from the auth faults': turning one on leaves the other's draws
        // as they were.
        let rng = seed.map_or_else(fastrand::Rng::new, |seed| {
            fastrand::Rng::with_seed(seed ^ 0x5245_564f_4b45)
        });
        Self {
            rate: AtomicU64::new(0f64.to_bits()),
            rng: Mutex::new(rng),
            revoked: AtomicU64::new(0),
        }
    }

    /// Sets the probability, clamped to `0.0..=1.0`; 0 or NaN turns revocation off.
    pub(super) fn set_rate(&self, rate: f64) {
        // NaN compares false: off.
        let rate = if rate > 0.0 { rate.min(1.0) } else { 0.0 };
        self.rate.store(rate.to_bits(), Ordering::Relaxed);
    }

    /// Whether the answer being given to a live token revokes it; counts the ones that do.
    pub(super) fn draw(&self) -> bool {
        let rate = f64::from_bits(self.rate.load(Ordering::Relaxed));
        if rate <= 0.0 {
            return false;
        }
        // One draw under the lock, never held across an await.
        let hit = self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .f64()
            < rate;
        if hit {
            self.revoked.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// How many tokens random revocation has revoked.
    pub(super) fn revoked(&self) -> u64 {
        self.revoked.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn revocations_are_drawn_at_the_rate_and_repeat_with_a_seed() {
        let off = Revocations::new(Some(3));
        assert!((0..1000).all(|_| !off.draw()));
        off.set_rate(f64::NAN);
        assert!((0..1000).all(|_| !off.draw()));
        off.set_rate(7.0);
        assert!((0..1000).all(|_| off.draw()));
        assert_eq!(off.revoked(), 1000);

        let draws = |seed| {
            let revocations = Revocations::new(Some(seed));
            revocations.set_rate(0.05);
            (0..20_000).map(|_| revocations.draw()).collect::<Vec<_>>()
        };
        let first = draws(9);
        assert_eq!(first, draws(9));
        let hits = first.iter().filter(|&&hit| hit).count();
        assert!((800..=1200).contains(&hits), "{hits} of 20,000 at 5 %");
    }

    #[test]
    fn tokens_are_counted_in_first_seen_order() {
        let seen = SeenTokens::new();
        for token in ["b", "a", "b", "b", "c", "a"] {
            seen.record(token);
        }
        let expected = [("b", 3), ("a", 2), ("c", 1)].map(|(t, n)| (t.to_owned(), n));
        assert_eq!(seen.snapshot(), expected);
    }

    #[tokio::test]
    async fn held_requests_go_in_arrival_order_and_rearming_frees_them() {
        let hold = Arc::new(Hold::new());
        hold.arm(3);
        let (done, mut finished) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..3 {
            let (gate, done) = (hold.clone(), done.clone());
            tokio::spawn(async move {
                gate.pass().await;
                let _ = done.send(i);
            });
            // Arrival order is spawn order only if each arrives before the next is spawned.
            hold.arrived(i + 1).await;
        }
        // Not armed for a fourth: it passes at once.
        hold.pass().await;
        // One at a time: two released together may finish in either order.
        hold.release(1);
        assert_eq!(finished.recv().await, Some(0));
        hold.release(2);
        assert_eq!(finished.recv().await, Some(1));
        hold.release(1);
        let late = tokio::time::timeout(Duration::from_millis(50), finished.recv()).await;
        assert!(late.is_err(), "the third request went early");
        hold.arm(0);
        assert_eq!(finished.recv().await, Some(2));
    }
}
