//! The response future: one state machine for the hot path, the wait for a token and replays.
//!
//! ```text
//!            token in the slot                            no usable token
//! call ───────────────────────────▶ Sent ◀──────── Cold ◀─────────────────── call
//!                                    │   (token, service ready,  ▲
//!                                    │    copy sent)             │
//!                                    └── dead token, replay allowed ┘
//! ```
//!
//! The hot path is `Sent` alone: the inner future and this thread's copy of the token, which
//! the answer is reported to (a dead token is marked dead), or the boxed [`Replay`] when the
//! request was copied. `Cold` is the box alone: waiting for a token, then for the service to be
//! ready; on cold paths only.

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
use crate::error::{AuthError, BoxError};
use crate::manager::{Manager, TokenWait};
use crate::replay::{CloneRequest, Sends, Verdict};
use crate::slot::{Generation, TokenState};

/// The boxed replay state.
type Boxed<S, B, R> = Pin<Box<Replay<S, B, R>>>;

/// The future's state, as its `poll` sees it.
type Pinned<'a, S, B, R> = Pin<&'a mut State<<S as Service<Request<B>>>::Future, Boxed<S, B, R>>>;

pin_project! {
    /// Response future of [`AuthService`](crate::AuthService).
    pub struct ResponseFuture<S, B, R>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future, Boxed<S, B, R>>,
    }
}

// NOTE: two states, the one the hot path uses and a box for everything else (waiting for a
// token, for the service, the replay's copy). Every cold state inline (a token wait, variants of
// their own) made the future's drop a call of its own, and the answer was copied around it;
// with the replay state inline, every response future was ~400 bytes, copied (memcpy) several
// times per request whether or not replay is on.
pin_project! {
    #[project = StateProj]
    enum State<F, X> {
        // The request went out. With this thread's copy of the token (`token`, the hot path:
        // the answer is reported to it, once) or with a copy kept for a replay (`replay`).
        Sent { #[pin] future: F, token: Option<Arc<Applied>>, replay: Option<X> },
        // Waiting for a token, or for the service to be ready to send, in the box; `None` once
        // answered, when polling again is an error, not a panic. Without a box, `refused` is
        // the answer of a request that never went out (an origin the token may not go to, no
        // session): a field of this state rather than a state of its own, so that the future
        // stays two states (see `poll` and `poll_cold`).
        Cold { replay: Option<X>, refused: Option<Box<AuthError>> },
    }
}

impl<S, B, R> ResponseFuture<S, B, R>
where
    S: Service<Request<B>>,
{
    /// The request went out with the slot's token, as `sending` says.
    #[inline]
    pub(crate) fn sent(future: S::Future, sending: Sending<S, B, R>) -> Self {
        Self {
            state: State::Sent {
                future,
                token: sending.token,
                replay: sending.replay,
            },
        }
    }

    /// The request went out without the token (its origin is not the token's): the answer is
    /// the caller's as it comes.
    pub(crate) fn passed(future: S::Future) -> Self {
        Self {
            state: State::Sent {
                future,
                token: None,
                replay: None,
            },
        }
    }

    /// The request did not go out: `error` is the answer.
    pub(crate) fn refused(error: AuthError) -> Self {
        Self {
            state: State::Cold {
                replay: None,
                refused: Some(Box::new(error)),
            },
        }
    }

    /// The cold path: the request waits for a token, then goes out through `replay`'s service.
    pub(crate) fn waiting(replay: Boxed<S, B, R>) -> Self {
        Self {
            state: State::Cold {
                replay: Some(replay),
                refused: None,
            },
        }
    }
}

/// How a request goes out with the slot's token: with this thread's copy of the token (the hot
/// path: the answer is reported to it), or with a copy of the request kept for a replay.
pub(crate) struct Sending<S, B, R>
where
    S: Service<Request<B>>,
{
    token: Option<Arc<Applied>>,
    replay: Option<Boxed<S, B, R>>,
}

impl<S, B, R> Sending<S, B, R>
where
    S: Service<Request<B>>,
{
    /// With `token`, and `replay` when a copy was kept (the replay then judges the answer).
    #[inline]
    pub(crate) fn new(token: Arc<Applied>, replay: Option<Boxed<S, B, R>>) -> Self {
        match replay {
            Some(replay) => Self {
                token: None,
                replay: Some(replay),
            },
            None => Self {
                token: Some(token),
                replay: None,
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

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        if let StateProj::Sent {
            future,
            token: token @ Some(_),
            ..
        } = state.as_mut().project()
        {
            // NOTE: the answer goes back as the inner future gave it, checked in place: binding
            // it (`?`) copied it once more on the hot path.
            let output = ready!(future.poll(cx)).map_err(Into::into);
            if let (Ok(response), Some(token)) = (&output, token.take()) {
                token.answered(response.status(), response.headers());
            }
            return Poll::Ready(output);
        }
        poll_cold(state, cx)
    }
}

/// Every state but the hot path's: a send whose copy is kept, a wait for a token or for the
/// service, a refusal.
// NOTE: kept out of the future's `poll`, so that the hot path's is small enough to be inlined
// into the caller's.
#[inline(never)]
fn poll_cold<S, B, R, RB>(
    mut state: Pinned<'_, S, B, R>,
    cx: &mut Context<'_>,
) -> Poll<Result<Response<RB>, BoxError>>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    R: CloneRequest<B>,
{
    loop {
        match state.as_mut().project() {
            StateProj::Sent { future, replay, .. } => {
                let response = ready!(future.poll(cx)).map_err(Into::into)?;
                let Some(mut replay) = replay.take() else {
                    return Poll::Ready(Ok(response));
                };
                if let Some(response) = replay.as_mut().answered(response) {
                    return Poll::Ready(Ok(response));
                }
                state.set(State::Cold {
                    replay: Some(replay),
                    refused: None,
                });
            }
            StateProj::Cold { replay, refused } => {
                let Some(ready) = replay.as_mut() else {
                    return Poll::Ready(Err(match refused.take() {
                        Some(error) => error,
                        None => spent(),
                    }));
                };
                match ready!(ready.as_mut().poll_send(cx)) {
                    Ok(future) => {
                        let replay = replay.take();
                        state.set(State::Sent {
                            future,
                            token: None,
                            replay,
                        });
                    }
                    Err(answer) => {
                        *replay = None;
                        return Poll::Ready(answer);
                    }
                }
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
            State::Sent { replay: None, .. } => "sent",
            State::Sent { .. } => "sent (replayable)",
            State::Cold {
                replay: Some(replay),
                ..
            } if replay.token.is_some() => "ready to send",
            State::Cold {
                replay: Some(_), ..
            } => "waiting for a token",
            State::Cold { replay: None, .. } => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

pin_project! {
    /// Everything needed to send a request (again) with a new token: the service, the request
    /// to send next, the budget, and the wait for the token.
    pub(crate) struct Replay<S, B, R>
    where
        S: Service<Request<B>>,
    {
        shared: Arc<Manager>,
        service: S,
        cloner: R,
        // The request to send next: the original while waiting for the first token, then a
        // copy.
        next: Option<Request<B>>,
        // The token to send `next` with, once obtained: then only the service's readiness is
        // waited for.
        token: Option<Arc<TokenState>>,
        // The sends so far, and the replay rule.
        sends: Sends,
        // The dead-token answer being replayed: the caller's if no token can be had.
        // (Boxed: the state of every waiting request is this struct, and replays are rare.)
        held: Option<Box<S::Response>>,
        // The wait for the next token.
        #[pin]
        wait: TokenWait,
    }
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

    /// A request that reached the layer at `started` and has not gone out yet, to be sent with
    /// `token` (a DPoP-bound one: its proof is signed when it goes out) once the service is
    /// ready.
    pub(crate) fn with_token(
        request: Request<B>,
        token: Arc<TokenState>,
        started: Reading,
        service: S,
        shared: Arc<Manager>,
        cloner: R,
    ) -> Self {
        Self {
            token: Some(token),
            ..Self::unsent(request, started, service, shared, cloner)
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
            wait: TokenWait::new(None),
        }
    }
}

impl<S, B, R, RB> Replay<S, B, R>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    R: CloneRequest<B>,
{
    /// The upstream answered the last send with `response`: the answer back when it is the
    /// caller's, or `None` when the replay rule sends the copy again once a newer token comes
    /// (the answer is then kept, should none come).
    #[inline]
    fn answered(self: Pin<&mut Self>, response: Response<RB>) -> Option<Response<RB>> {
        let mut this = self.project();
        let copy = this.next.is_some();
        let verdict = this
            .sends
            .answered(this.shared, response.status(), response.headers(), copy);
        let refused = match verdict {
            Verdict::Accepted | Verdict::Spent => return Some(response),
            Verdict::Replay => Some(this.sends.refused()),
            // The same token, with the nonce the answer gave.
            Verdict::Nonce => None,
        };
        *this.held = Some(Box::new(response));
        this.wait.as_mut().set(TokenWait::new(refused));
        None
    }

    /// Waits for the token, then for the service, and sends `next` with the token, keeping a
    /// copy when another send may follow: the send's future, or the caller's answer when no
    /// send can follow.
    fn poll_send(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Step<S::Future, Response<RB>>> {
        let mut this = self.project();
        let token = match this.token.take() {
            Some(token) => token,
            None => match ready!(this.wait.as_mut().poll_with(cx, this.shared)) {
                Ok(token) => token,
                // NOTE: no token for a replay: the caller gets the dead-token answer it would
                // have had without the layer's replay, not an error.
                Err(error) => return Poll::Ready(Err(held(this.held, error.into()))),
            },
        };
        match this.service.poll_ready(cx) {
            Poll::Pending => {
                *this.token = Some(token);
                return Poll::Pending;
            }
            // A replay that cannot go out: the dead-token answer, as above.
            Poll::Ready(Err(error)) => return Poll::Ready(Err(held(this.held, error.into()))),
            Poll::Ready(Ok(())) => {}
        }
        let Some(mut request) = this.next.take() else {
            return Poll::Ready(Err(Err(spent())));
        };
        // The dead-token answer is replaced by this send's.
        *this.held = None;
        if this.sends.keep_copy(this.shared, &token) {
            *this.next = this.cloner.clone_request(&request);
        }
        if let Err(error) = token.apply(&mut request, this.shared.dpop.as_deref()) {
            return Poll::Ready(Err(Err(error.into())));
        }
        this.sends.sent(this.shared, &token, request.uri());
        Poll::Ready(Ok(this.service.call(request)))
    }
}

/// What a cold state leads to: the future of a send (`Ok`), or the caller's answer (`Err`).
type Step<F, T> = Result<F, Result<T, BoxError>>;

/// The dead-token answer kept for the caller, else `error`.
fn held<T>(held: &mut Option<Box<T>>, error: BoxError) -> Result<T, BoxError> {
    held.take().map(|held| *held).ok_or(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::replay::CloneBody;

    type Inner = tower::util::BoxService<Request<String>, Response<String>, BoxError>;
    type InnerFuture = <Inner as Service<Request<String>>>::Future;

    #[test]
    fn the_response_future_is_the_inner_one_and_three_words() {
        // A tag, this thread's token, the replay box: waiting for a token is in the box.
        let words = 3 * std::mem::size_of::<usize>();
        let future = std::mem::size_of::<ResponseFuture<Inner, String, CloneBody>>();
        let inner = std::mem::size_of::<InnerFuture>();
        println!("response future: {future} bytes, inner future {inner} bytes");
        assert!(future <= inner + words, "{future} > {inner} + {words}");
    }
}
