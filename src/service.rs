//! The middleware service: attaches the current token to each request.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::clock::Moment;
use crate::error::BoxError;
use crate::future::{After, Replay, ResponseFuture};
use crate::handle::{Session, TokenHandle};
use crate::manager::Manager;
use crate::metrics::{Counter, MetricsSnapshot};
use crate::provider::Provider;
use crate::replay::{CloneBody, CloneRequest};
use crate::slot::TokenState;

/// Adds `Authorization: Bearer …` to every request, obtaining and renewing the token as needed.
///
/// Made by [`AuthLayer`](crate::AuthLayer); all clones share the layer's token and counters.
///
/// Errors are [`BoxError`]: the inner service's own errors, or an
/// [`AuthError`](crate::AuthError) when no token could be obtained (see its docs for the downcast).
pub struct AuthService<S, P, R = CloneBody> {
    inner: S,
    shared: Arc<Manager<P>>,
    /// This clone's view of the slot: revalidated with one relaxed load, no refcount traffic.
    token: arc_swap::cache::Cache<SlotRef<P>, Option<Arc<TokenState>>>,
    replay: R,
}

impl<S, P, R> AuthService<S, P, R> {
    pub(crate) fn new(inner: S, shared: Arc<Manager<P>>, replay: R) -> Self {
        Self {
            inner,
            token: arc_swap::cache::Cache::new(SlotRef(Arc::clone(&shared))),
            shared,
            replay,
        }
    }

    /// The counters of the layer this service belongs to.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot()
    }

    /// A handle on the layer's token (see [`AuthLayer::handle`](crate::AuthLayer::handle)).
    pub fn handle(&self) -> TokenHandle
    where
        P: Provider,
    {
        TokenHandle::new(Arc::clone(&self.shared) as Arc<dyn Session>)
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, P, R: Clone> Clone for AuthService<S, P, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            token: self.token.clone(),
            shared: Arc::clone(&self.shared),
            replay: self.replay.clone(),
        }
    }
}

impl<S: fmt::Debug, P, R: fmt::Debug> fmt::Debug for AuthService<S, P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService")
            .field("inner", &self.inner)
            .field("shared", &self.shared)
            .field("replay", &self.replay)
            .finish()
    }
}

impl<S, P, R, B, RB> Service<Request<B>> for AuthService<S, P, R>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Send + 'static,
    P: Provider,
    R: CloneRequest<B>,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B, P, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let now = self.shared.clock().moment();
        let fresh = self
            .token
            .load()
            .as_ref()
            .filter(|t| now < t.expires_at)
            .inspect(|token| self.shared.refresh_if_due(token, now));
        if let Some(token) = fresh {
            request
                .headers_mut()
                .insert(token.header_name.clone(), token.header.clone());
            let replay = replay_for(
                &self.shared,
                &self.replay,
                &self.inner,
                &request,
                token,
                now,
            );
            let after = match replay {
                Some(replay) => After::Replay(replay),
                None => After::Invalidate(Arc::clone(token)),
            };
            return ResponseFuture::sent(self.inner.call(request), after);
        }

        // No usable token: the request waits for one on the cold path.
        // NOTE: take the service that `poll_ready` readied and leave a clone in its place; see
        // tower's "Be careful when cloning inner services" guidance.
        let clone = self.inner.clone();
        let inner = mem::replace(&mut self.inner, clone);
        self.shared.metrics.incr(Counter::TokenWait);
        ResponseFuture::waiting(Box::new(Replay::unsent(
            request,
            now,
            inner,
            Arc::clone(&self.shared),
            self.replay.clone(),
        )))
    }
}

/// What a replay of `request`, sent with `token` at `now`, would need, when replay is enabled
/// and the request can be copied. (Fields, not `&self`: the service's token cache is borrowed.)
#[inline]
fn replay_for<S, B, P, R>(
    shared: &Arc<Manager<P>>,
    replay: &R,
    inner: &S,
    request: &Request<B>,
    token: &TokenState,
    now: Moment,
) -> Option<Box<Replay<S, B, P, R>>>
where
    S: Service<Request<B>> + Clone,
    P: Provider,
    R: CloneRequest<B>,
{
    if !shared.replays {
        return None;
    }
    let copy = replay.clone_request(request)?;
    Some(Box::new(Replay::sent(
        copy,
        token.generation,
        now,
        inner.clone(),
        Arc::clone(shared),
        replay.clone(),
    )))
}

/// The slot, as a per-service [`arc_swap::cache::Cache`] reads it.
pub(crate) struct SlotRef<P>(Arc<Manager<P>>);

impl<P> Clone for SlotRef<P> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<P> std::ops::Deref for SlotRef<P> {
    type Target = arc_swap::ArcSwapOption<TokenState>;

    fn deref(&self) -> &Self::Target {
        self.0.slot.as_arc_swap()
    }
}
