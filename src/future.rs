//! The response future: one state machine for the hot path, the wait for a token and replays.
//!
//! ```text
//!            token in the slot                         no usable token
//! call ───────────────────────────▶ Sent ◀──── Ready ◀──── Waiting ◀──────────── call
//!                                    │          ▲ (service ready,   ▲
//!                                    │          │  token attached)  │
//!                                    └── dead token, replay allowed ┘
//! ```
//!
//! The hot path is `Sent` alone: the inner future and what to do with a dead-token answer
//! (invalidate, or a boxed [`Replay`] when the request was copied). Waiting for a token is the
//! one boxed future, on cold paths only.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::apply::Applied;
use crate::clock::Moment;
use crate::error::BoxError;
use crate::manager::{Manager, TokenWait};
use crate::replay::{CloneRequest, Sends, Verdict};
use crate::slot::{Generation, TokenState};

pin_project! {
    /// Response future of [`AuthService`](crate::AuthService).
    pub struct ResponseFuture<S, B, R>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future, After<S, B, R>, Box<Replay<S, B, R>>, TokenWait>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, A, X, W> {
        // The request went out; `after` says what a dead-token answer leads to.
        Sent { #[pin] future: F, after: A },
        // Waiting for a token: the first one, or a replay's.
        Waiting { #[pin] token: W, replay: Option<X> },
        // A token is at hand; waiting for the service to be ready to send.
        Ready { replay: Option<X> },
        // Answered from a cold state; polling again is an error, not a panic.
        Done,
    }
}

/// What to do when the upstream answers that the token is dead.
// NOTE: the replay state is boxed: inline, it made every response future ~400 bytes, copied
// (memcpy) several times per request whether or not replay is on.
pub(crate) enum After<S, B, R>
where
    S: Service<Request<B>>,
{
    /// Nothing (already handled).
    Return,
    /// No copy to replay: report the answer to the token (see `Applied::answered`): a dead
    /// token is marked dead so that later requests get a new one.
    Answer(Arc<Applied>),
    /// Replay a copy with a new token, per the replay budget.
    Replay(Box<Replay<S, B, R>>),
}

impl<S, B, R> ResponseFuture<S, B, R>
where
    S: Service<Request<B>>,
{
    /// The hot path: the request went out with the slot's token.
    #[inline]
    pub(crate) fn sent(future: S::Future, after: After<S, B, R>) -> Self {
        Self {
            state: State::Sent { future, after },
        }
    }

    /// The cold path: the request waits for a token, then goes out through `replay`'s service.
    pub(crate) fn waiting(replay: Box<Replay<S, B, R>>) -> Self {
        let token = TokenWait::new(None);
        Self {
            state: State::Waiting {
                token,
                replay: Some(replay),
            },
        }
    }
}

/// The future was polled again after it completed.
fn spent() -> BoxError {
    "tower-token-auth: response future polled after completion".into()
}

impl<S, B, R, RB> Future for ResponseFuture<S, B, R>
where
    S: Service<Request<B>, Response = Response<RB>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Send + 'static,
    R: CloneRequest<B>,
{
    type Output = Result<Response<RB>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Sent { future, after } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    let mut replay = match mem::replace(after, After::Return) {
                        After::Replay(replay) => replay,
                        After::Answer(token) => {
                            token.answered(response.status(), response.headers());
                            return Poll::Ready(Ok(response));
                        }
                        After::Return => return Poll::Ready(Ok(response)),
                    };
                    let copy = replay.next.is_some();
                    let verdict = replay.sends.answered(
                        &replay.shared,
                        response.status(),
                        response.headers(),
                        copy,
                    );
                    if verdict != Verdict::Replay {
                        return Poll::Ready(Ok(response));
                    }
                    // Kept for the caller, should no token come for the replay.
                    replay.held = Some(Box::new(response));
                    let token = TokenWait::new(Some(replay.sends.refused()));
                    state.set(State::Waiting {
                        token,
                        replay: Some(replay),
                    });
                }
                StateProj::Waiting { token, replay } => {
                    let shared = &replay.as_ref().ok_or_else(spent)?.shared;
                    let outcome = ready!(token.poll_with(cx, shared));
                    let mut replay = replay.take().ok_or_else(spent)?;
                    match outcome {
                        Ok(token) => replay.token = Some(token),
                        // NOTE: no token for a replay: the caller gets the dead-token answer it
                        // would have had without the layer's replay, not an error.
                        Err(error) => {
                            state.set(State::Done);
                            let held = replay.held.take().map(|held| *held);
                            return Poll::Ready(held.ok_or_else(|| error.into()));
                        }
                    }
                    state.set(State::Ready {
                        replay: Some(replay),
                    });
                }
                StateProj::Ready { replay } => {
                    let ready = replay.as_mut().ok_or_else(spent)?;
                    let readiness = ready!(ready.service.poll_ready(cx));
                    let mut replay = replay.take().ok_or_else(spent)?;
                    if let Err(error) = readiness {
                        // A replay that cannot go out: the dead-token answer, as above.
                        state.set(State::Done);
                        let held = replay.held.take().map(|held| *held);
                        return Poll::Ready(held.ok_or_else(|| error.into()));
                    }
                    let future = replay.send().ok_or_else(spent)?;
                    state.set(State::Sent {
                        future,
                        after: After::Replay(replay),
                    });
                }
                StateProj::Done => return Poll::Ready(Err(spent())),
            }
        }
    }
}

impl<S, B, R> fmt::Debug for ResponseFuture<S, B, R>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Sent { after, .. } => match after {
                After::Replay(_) => "sent (replayable)",
                _ => "sent",
            },
            State::Waiting { .. } => "waiting for a token",
            State::Ready { .. } => "ready to send",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

/// Everything needed to send a request (again) with a new token: the service, the request to
/// send next, and the budget.
pub(crate) struct Replay<S, B, R>
where
    S: Service<Request<B>>,
{
    shared: Arc<Manager>,
    service: S,
    cloner: R,
    /// The request to send next: the original while waiting for the first token, then a copy.
    next: Option<Request<B>>,
    /// The token to send `next` with, once obtained.
    token: Option<Arc<TokenState>>,
    /// The sends so far, and the replay rule.
    sends: Sends,
    /// The dead-token answer being replayed: the caller's if no token can be had.
    /// (Boxed: the state of every waiting request is this struct, and replays are rare.)
    held: Option<Box<S::Response>>,
}

impl<S, B, R> Replay<S, B, R>
where
    S: Service<Request<B>>,
    R: CloneRequest<B>,
{
    /// A request that reached the layer at `started` and went out once, with token
    /// `generation`, and its copy.
    pub(crate) fn sent(
        copy: Request<B>,
        generation: Generation,
        started: Moment,
        service: S,
        shared: Arc<Manager>,
        cloner: R,
    ) -> Self {
        Self {
            sends: Sends::once(started, generation),
            ..Self::unsent(copy, started, service, shared, cloner)
        }
    }

    /// A request that reached the layer at `started` and has not gone out yet: it waits for a
    /// token.
    pub(crate) fn unsent(
        request: Request<B>,
        started: Moment,
        service: S,
        shared: Arc<Manager>,
        cloner: R,
    ) -> Self {
        Self {
            shared,
            service,
            cloner,
            next: Some(request),
            token: None,
            sends: Sends::new(started),
            held: None,
        }
    }

    /// Sends `next` with the token at hand, keeping a copy when another send may follow.
    fn send(&mut self) -> Option<S::Future> {
        let token = self.token.take()?;
        let mut request = self.next.take()?;
        // The dead-token answer is replaced by this send's.
        self.held = None;
        if self.sends.keep_copy(&self.shared) {
            self.next = self.cloner.clone_request(&request);
        }
        token.apply(&mut request);
        self.sends.sent(&self.shared, token.generation);
        Some(self.service.call(request))
    }
}
