//! Waiting for a flight: what a flight shares with its waiters, and the future a request waits
//! with.
//!
//! A waiter costs one `Arc` and one intrusive [`Notify`] entry, inline in the response future: no
//! box and no timer of its own. The flight's task keeps time for all of its waiters (see
//! [`Flight::keep_time`]): their deadlines queue up in join order, and the flight wakes them when
//! the earliest passes, so a request still fails exactly when its wait bound is up.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;

use super::{Join, Manager, Outcome};
use crate::clock::{Clock, Moment};
use crate::error::AuthError;
use crate::provider::Provider;
use crate::slot::Generation;

/// One flight, as its waiters see it.
#[derive(Debug)]
pub(crate) struct Flight {
    notify: Arc<Notify>,
    outcome: OnceLock<Outcome>,
    /// The latest transient failure (an earlier flight's, until this one fails): what a waiter
    /// that runs out of time is told.
    last_error: Mutex<Option<AuthError>>,
    /// When each waiter gives up, in join order, so the earliest is first.
    deadlines: Mutex<VecDeque<Moment>>,
    clock: Clock,
    max_wait: Duration,
}

/// Who holds a flight besides its waiters: the manager's `current`, and the flight's task.
const HOLDERS: usize = 2;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data, written in single statements: a poisoned lock is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Flight {
    pub(super) fn new(last_error: Option<AuthError>, clock: Clock, max_wait: Duration) -> Self {
        Self {
            notify: Arc::new(Notify::new()),
            outcome: OnceLock::new(),
            last_error: Mutex::new(last_error),
            deadlines: Mutex::new(VecDeque::new()),
            clock,
            max_wait,
        }
    }

    /// A new waiter's deadline, queued for [`keep_time`](Self::keep_time).
    ///
    /// NOTE: called under the flights lock, so deadlines queue in order.
    pub(super) fn enqueue(&self) -> Moment {
        let deadline = self.clock.moment() + self.max_wait;
        lock(&self.deadlines).push_back(deadline);
        deadline
    }

    /// Whether a request waits for this flight (`self` is the flight's own handle).
    ///
    /// NOTE: decided under the flights lock, which every joiner takes.
    pub(super) fn has_waiters(self: &Arc<Self>) -> bool {
        Arc::strong_count(self) > HOLDERS
    }

    /// Records the latest transient failure.
    pub(super) fn failed(&self, error: AuthError) {
        let replaced = lock(&self.last_error).replace(error);
        drop(replaced);
    }

    /// Publishes the outcome to every waiter.
    pub(super) fn land(&self, outcome: Outcome) {
        if self.outcome.set(outcome).is_ok() {
            self.notify.notify_waiters();
        }
    }

    /// Wakes the waiters whenever the earliest deadline passes, so that they give up on time;
    /// never returns. Polled by the flight's task beside the flight.
    pub(super) async fn keep_time(&self) {
        // Nobody can be due before a full wait bound has passed.
        let mut at = self.clock.moment() + self.max_wait;
        loop {
            tokio::time::sleep_until(self.clock.instant(at)).await;
            let now = self.clock.moment();
            let mut deadlines = lock(&self.deadlines);
            let before = deadlines.len();
            while deadlines.front().is_some_and(|&deadline| deadline <= now) {
                deadlines.pop_front();
            }
            let due = deadlines.len() < before;
            // Whoever joins from now on is due a full bound later. A coarse clock may read a
            // little behind the timer: never sleep for less than a millisecond.
            let next = deadlines.front().copied().unwrap_or(now + self.max_wait);
            drop(deadlines);
            at = next.max(now + Duration::from_millis(1));
            if due {
                self.notify.notify_waiters();
            }
        }
    }

    fn unavailable(&self) -> AuthError {
        AuthError::unavailable(self.max_wait, lock(&self.last_error).clone())
    }
}

pin_project! {
    /// A request's wait for a token: joins (or starts) the flight on first poll, then waits for
    /// its outcome or its deadline, whichever comes first.
    pub(crate) struct TokenWait<P> {
        #[pin]
        state: State<P>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<P> {
        Join { manager: Arc<Manager<P>>, rejected: Option<Generation> },
        Waiting {
            flight: Arc<Flight>,
            deadline: Moment,
            #[pin]
            notified: OwnedNotified,
        },
        Done,
    }
}

impl<P: Provider> TokenWait<P> {
    /// A usable token: as [`Manager::join`] decides. With `rejected = Some(g)`, the upstream
    /// rejected the token of generation `g`.
    pub(crate) fn new(manager: Arc<Manager<P>>, rejected: Option<Generation>) -> Self {
        Self {
            state: State::Join { manager, rejected },
        }
    }
}

impl<P: Provider> Future for TokenWait<P> {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Join { manager, rejected } => {
                    let (flight, deadline) = match manager.join(*rejected) {
                        Ok(Join::Ready(token)) => return finish(state, Ok(token)),
                        Err(error) => return finish(state, Err(error)),
                        Ok(Join::Wait(flight, deadline)) => (flight, deadline),
                        Ok(Join::Start(flight, deadline, launch)) => {
                            launch.spawn();
                            (flight, deadline)
                        }
                    };
                    // NOTE: the entry exists before the outcome is first checked, so a landing
                    // in between still wakes this waiter.
                    let notified = Arc::clone(&flight.notify).notified_owned();
                    state.set(State::Waiting {
                        flight,
                        deadline,
                        notified,
                    });
                }
                StateProj::Waiting {
                    flight,
                    deadline,
                    mut notified,
                } => {
                    if let Some(outcome) = flight.outcome.get() {
                        let outcome = outcome.clone();
                        return finish(state, outcome);
                    }
                    if flight.clock.moment() >= *deadline {
                        let error = flight.unavailable();
                        return finish(state, Err(error));
                    }
                    ready!(notified.as_mut().poll(cx));
                    notified.set(Arc::clone(&flight.notify).notified_owned());
                }
                StateProj::Done => return Poll::Ready(Err(AuthError::aborted())),
            }
        }
    }
}

fn finish<P>(mut state: Pin<&mut State<P>>, outcome: Outcome) -> Poll<Outcome> {
    state.set(State::Done);
    Poll::Ready(outcome)
}
