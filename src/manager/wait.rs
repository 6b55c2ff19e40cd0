//! Waiting for a token: the decision to take the slot's, join the flight in progress or start
//! one; what a flight shares with its waiters; and the future a request waits with.
//!
//! A waiter costs one `Arc`, one intrusive [`Notify`](tokio::sync::Notify) entry and one boxed timer of its own, on
//! its own runtime: its deadline holds whatever happens to the flight, to the runtime the flight
//! runs on, or to that runtime's scheduling (a flight started from an idle runtime that never
//! polls it again). Waiting is a cold path; the box is the price of that guarantee.
//!
//! NOTE: the timer needs tokio's time driver on the waiter's runtime, as the auth calls' timeouts
//! do on the flight's.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tokio::sync::futures::OwnedNotified;
use tokio::time::Sleep;

use super::flight::{Flight, Flights, Launch};
use super::{Manager, Outcome};
use crate::clock::Moment;
use crate::error::AuthError;
use crate::slot::{Generation, TokenState};

/// What a request that needs a token does next.
enum Join {
    Ready(Arc<TokenState>),
    /// Wait for the flight in progress, until the deadline.
    Wait(Arc<Flight>, Moment),
    /// Spawn the flight just opened, then wait for it.
    Start(Arc<Flight>, Moment, Launch),
}

impl Manager {
    /// What a request that needs a token does next: take the slot's, wait for the flight in
    /// progress, or start one. Waiters get their deadline, queued on the flight.
    ///
    /// With `refused = Some(g)`, the upstream refused the token of generation `g`: a newer token
    /// is returned as is; if the slot still holds `g`, it is marked dead and one refresh starts
    /// (or is joined) for everybody.
    ///
    /// Fails fast while a rejection backoff holds; otherwise [`TokenWait`] waits up to the wait
    /// bound, through any number of transient failures, and then fails with
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) carrying the last one.
    fn join(self: &Arc<Self>, refused: Option<Generation>) -> Result<Join, AuthError> {
        // A cold path: before any deadline is computed, a layer built before tokio's time was
        // paused learns of it here (see `Clock::notice_paused_time`).
        self.settings.clock.notice_paused_time();
        let mut flights = self.lock();
        let (join, invalidated) = self.join_locked(&mut flights, refused);
        drop(flights);
        if let Some(invalidated) = invalidated {
            tracing::debug!(
                generation = invalidated.generation.get(),
                "token refused upstream"
            );
        }
        join
    }

    /// [`join`](Self::join)'s decision, under the flights lock; the token it marked dead, if
    /// any, to report (and drop) once the lock is released.
    // NOTE: one critical section from the refusal to the flight: released in between, the
    // flight another request opened could land its token meanwhile, and this request would
    // open a second one for a token nobody refused.
    fn join_locked(
        self: &Arc<Self>,
        flights: &mut Flights,
        refused: Option<Generation>,
    ) -> (Result<Join, AuthError>, Option<Arc<TokenState>>) {
        let now = self.settings.clock.moment();
        let mut invalidated = None;
        if let Some(current) = self.slot.load_full() {
            if now < current.expires_at {
                if refused != Some(current.generation) {
                    return (Ok(Join::Ready(current)), None);
                }
                self.slot.store(Arc::new(current.expired_at(now)));
                // An older invalidation it replaces is plain data: dropped here, under the lock.
                drop(flights.invalidated.replace(Arc::clone(&current)));
                invalidated = Some(current);
            }
        }
        // Each waiter keeps its own deadline (see `wait`).
        let deadline = now + self.settings.max_wait;
        if let Some(flight) = flights.join() {
            return (Ok(Join::Wait(flight, deadline)), invalidated);
        }
        if let Some(error) = flights.failing_fast(now) {
            return (Err(error), invalidated);
        }
        let join = self
            .open(flights)
            .map(|(flight, launch)| Join::Start(flight, deadline, launch));
        (join, invalidated)
    }
}

pin_project! {
    /// A request's wait for a token: joins (or starts) the flight on first poll, then waits for
    /// its outcome or its deadline, whichever comes first. Polled with the manager, which the
    /// request holds anyway.
    pub(crate) struct TokenWait {
        #[pin]
        state: State,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        Join { refused: Option<Generation> },
        Waiting {
            flight: Arc<Flight>,
            // The waiter's own deadline, on its own runtime's timer.
            timer: Pin<Box<Sleep>>,
            #[pin]
            notified: OwnedNotified,
        },
        Done,
    }
}

impl TokenWait {
    /// A usable token, as `Manager::join` decides. With `refused = Some(g)`, the upstream
    /// refused the token of generation `g`.
    pub(crate) fn new(refused: Option<Generation>) -> Self {
        Self {
            state: State::Join { refused },
        }
    }

    /// Polls the wait; `manager` is the same on every call.
    pub(crate) fn poll_with(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        manager: &Arc<Manager>,
    ) -> Poll<Outcome> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Join { refused } => {
                    let (flight, deadline) = match manager.join(*refused) {
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
                    let notified = flight.notified();
                    let timer =
                        Box::pin(tokio::time::sleep_until(manager.clock().instant(deadline)));
                    state.set(State::Waiting {
                        flight,
                        timer,
                        notified,
                    });
                }
                StateProj::Waiting {
                    flight,
                    timer,
                    mut notified,
                } => {
                    if let Some(outcome) = flight.outcome() {
                        manager
                            .metrics
                            .token_waited(timer.deadline(), manager.max_wait());
                        return finish(state, outcome);
                    }
                    if notified.as_mut().poll(cx).is_ready() {
                        // Landed (checked above on the next turn) or woken for nothing.
                        notified.set(flight.notified());
                        continue;
                    }
                    // NOTE: the timer alone decides that time is up, not a clock read: a coarse
                    // clock may read a little behind the timer, and a waiter must not spin.
                    ready!(timer.as_mut().poll(cx));
                    let error = flight.unavailable(manager.max_wait());
                    manager
                        .metrics
                        .token_waited(timer.deadline(), manager.max_wait());
                    return finish(state, Err(error));
                }
                StateProj::Done => return Poll::Ready(Err(AuthError::aborted())),
            }
        }
    }
}

fn finish(mut state: Pin<&mut State>, outcome: Outcome) -> Poll<Outcome> {
    state.set(State::Done);
    Poll::Ready(outcome)
}
