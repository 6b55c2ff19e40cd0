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
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::apply::Applied;
use crate::clock::Reading;
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
        state: State<S::Future, Box<Replay<S, B, R>>, TokenWait>,
    }
}

// NOTE: the replay state is boxed: inline, it made every response future ~400 bytes, copied
// (memcpy) several times per request whether or not replay is on. How a request went out is the
// variant itself (`Sent` or `Replayable`): a separate field saying what to do with the answer,
// with a value for "already handled", cost the hot path a replace and a match on every answer.

pin_project! {
    #[project = StateProj]
    enum State<F, X, W> {
        // The hot path: the request went out with this thread's copy of the token and no copy
        // to replay; the answer is reported to the token (see `Applied::answered`), once.
        Sent { #[pin] future: F, token: Option<Arc<Applied>> },
        // The request went out with a copy kept: a dead-token answer may lead to a replay.
        Replayable { #[pin] future: F, replay: Option<X> },
        // Waiting for a token: the first one, or a replay's.
        Waiting { #[pin] token: W, replay: Option<X> },
        // A token is at hand; waiting for the service to be ready to send.
        Ready { replay: Option<X> },
        // Answered from a cold state; polling again is an error, not a panic.
        Done,
    }
}

impl<S, B, R> ResponseFuture<S, B, R>
where
    S: Service<Request<B>>,
{
    /// The hot path: the request went out with this thread's copy of the token, and no copy
    /// of it was kept.
    #[inline]
    pub(crate) fn sent(future: S::Future, token: Arc<Applied>) -> Self {
        Self {
            state: State::Sent {
                future,
                token: Some(token),
            },
        }
    }

    /// The request went out with the slot's token, and `replay` holds its copy.
    #[inline]
    pub(crate) fn replayable(future: S::Future, replay: Box<Replay<S, B, R>>) -> Self {
        Self {
            state: State::Replayable {
                future,
                replay: Some(replay),
            },
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
                StateProj::Sent { future, token } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    if let Some(token) = token.take() {
                        token.answered(response.status(), response.headers());
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Replayable { future, replay } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    let Some(mut replay) = replay.take() else {
                        return Poll::Ready(Ok(response));
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
                    state.set(State::Replayable {
                        future,
                        replay: Some(replay),
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
            State::Sent { .. } => "sent",
            State::Replayable { .. } => "sent (replayable)",
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
        started: Reading,
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
        started: Reading,
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
