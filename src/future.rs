//! The response future: a plain state machine on the hot path, one boxed variant for cold paths.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::AUTHORIZATION;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::ServiceExt;
use tower_service::Service;

use crate::error::BoxError;
use crate::manager::Manager;
use crate::metrics::Counter;
use crate::provider::Provider;
use crate::replay::CloneRequest;

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

pin_project! {
    /// Response future of [`AuthService`](crate::AuthService).
    pub struct ResponseFuture<S, B, P, R>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future, S::Response>,
        after: After<S, B, P, R>,
    }
}

/// What to do when the upstream answers with a replay-triggering status.
// NOTE: the replay state is boxed: inline, it made every response future ~400 bytes, copied
// (memcpy) several times per request whether or not replay is on.
pub(crate) enum After<S, B, P, R> {
    /// Nothing (already handled).
    Return,
    /// No copy to replay: mark the token dead so that later requests get a new one.
    Invalidate {
        shared: Arc<Manager<P>>,
        generation: u64,
    },
    /// Replay the copy with a new token.
    Replay(Box<Replay<S, B, P, R>>),
}

pin_project! {
    #[project = StateProj]
    enum State<F, T> {
        // The request went out with the token from the slot.
        Sent { #[pin] future: F },
        // Waiting for a token, or replaying.
        Cold { future: BoxFuture<T> },
    }
}

impl<S, B, P, R> ResponseFuture<S, B, P, R>
where
    S: Service<Request<B>>,
{
    #[inline]
    pub(crate) fn sent(future: S::Future, after: After<S, B, P, R>) -> Self {
        Self {
            state: State::Sent { future },
            after,
        }
    }

    pub(crate) fn cold(
        future: impl Future<Output = Result<S::Response, BoxError>> + Send + 'static,
    ) -> Self {
        Self {
            state: State::Cold {
                future: Box::pin(future),
            },
            after: After::Return,
        }
    }
}

impl<S, B, P, R, RB> Future for ResponseFuture<S, B, P, R>
where
    S: Service<Request<B>, Response = Response<RB>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Send + 'static,
    P: Provider,
    R: CloneRequest<B>,
{
    type Output = Result<Response<RB>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Sent { future } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    match mem::replace(this.after, After::Return) {
                        After::Replay(replay) if replay.wants(&response) => {
                            let future = Box::pin(replay.finish(response));
                            this.state.set(State::Cold { future });
                        }
                        After::Invalidate { shared, generation } => {
                            if shared.policy.replay_on.contains(&response.status()) {
                                shared.invalidate(generation);
                            }
                            return Poll::Ready(Ok(response));
                        }
                        _ => return Poll::Ready(Ok(response)),
                    }
                }
                StateProj::Cold { future } => return future.as_mut().poll(cx),
            }
        }
    }
}

impl<S, B, P, R> fmt::Debug for ResponseFuture<S, B, P, R>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Sent { .. } => "sent",
            State::Cold { .. } => "cold",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("replayable", &matches!(self.after, After::Replay(_)))
            .finish()
    }
}

/// What a replay needs: a copy of the request, the token generation it was sent with, and a
/// service to send it through.
pub(crate) struct Replay<S, B, P, R> {
    copy: Option<Request<B>>,
    generation: u64,
    replays: u32,
    service: S,
    shared: Arc<Manager<P>>,
    cloner: R,
}

impl<S, B, P, R> Replay<S, B, P, R> {
    pub(crate) fn new(
        copy: Request<B>,
        generation: u64,
        service: S,
        shared: Arc<Manager<P>>,
        cloner: R,
    ) -> Self {
        Self {
            copy: Some(copy),
            generation,
            replays: 0,
            service,
            shared,
            cloner,
        }
    }

    pub(crate) fn wants<RB>(&self, response: &Response<RB>) -> bool {
        self.copy.is_some()
            && self.replays < self.shared.policy.max_replays
            && self.shared.policy.replay_on.contains(&response.status())
    }
}

impl<S, B, P, R, RB> Replay<S, B, P, R>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    P: Provider,
    R: CloneRequest<B>,
{
    /// Replays while the response asks for it and replays remain; returns the last response.
    ///
    /// NOTE: at most `max_replays` sends happen here, each one consuming a copy; when the copies
    /// or the replays run out, the response at hand goes back to the caller. Never a loop.
    pub(crate) async fn finish(
        mut self,
        mut response: Response<RB>,
    ) -> Result<Response<RB>, BoxError> {
        loop {
            if !self.wants(&response) {
                return Ok(response);
            }
            let Some(mut request) = self.copy.take() else {
                return Ok(response);
            };
            let status = response.status().as_u16();
            // The rejected response will not be returned: release it (and its connection) now
            // rather than across the token wait.
            drop(response);
            let token = self.shared.token(Some(self.generation)).await?;
            self.replays += 1;
            if self.replays < self.shared.policy.max_replays {
                self.copy = self.cloner.clone_request(&request);
            }
            request
                .headers_mut()
                .insert(AUTHORIZATION, token.header.clone());
            self.generation = token.generation;
            self.shared.metrics.incr(Counter::Replay);
            tracing::debug!(
                status,
                replay = self.replays,
                generation = token.generation,
                "replaying request with a new token"
            );
            response = self
                .service
                .ready()
                .await
                .map_err(Into::into)?
                .call(request)
                .await
                .map_err(Into::into)?;
        }
    }
}
