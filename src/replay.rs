//! Which requests can be replayed after the upstream refuses their token (the [`CloneRequest`]
//! strategies), and the rule every replay follows ([`Sends`]).

use std::sync::Arc;

use http::{HeaderMap, Request, StatusCode, Uri};

use crate::clock::Reading;
use crate::dpop::{resource_challenge, End, MAX_NONCE_RETRIES};
use crate::manager::Manager;
use crate::metrics::Counter;
use crate::provider::Budget;
use crate::slot::{Generation, TokenState};

/// Makes the copy of a request that a replay would send.
///
/// Replaying needs a copy of the request made *before* it is sent. A strategy decides how (or
/// whether) to make that copy, in the way tower's `retry::Policy::clone_request` does. It is a
/// type parameter of the layer, so a request type that cannot be copied costs nothing. Return
/// `None` when the request cannot be copied; it is then sent once, and a replay-triggering
/// response is returned to the caller as it is.
///
/// | body type | strategy |
/// |---|---|
/// | `Clone` bodies: `Full<Bytes>`, `Empty<Bytes>`, `String`, `Bytes`, `Vec<u8>`, ... | [`CloneBody`] (the default) |
/// | streaming bodies (`hyper::body::Incoming`, `axum::body::Body`, ...) | [`NoReplay`] ([`AuthLayer::without_replay`](crate::AuthLayer::without_replay)), or buffer first |
///
/// A request type the strategy cannot copy is a compile error naming this trait
/// ("`CloneBody` cannot copy a `Request<B>` for a replay after a 401"); [the two
/// bounds](crate#the-two-bounds) give the ways out.
///
/// # Replaying streaming bodies
///
/// Buffer the body into `Full<Bytes>` in front of the layer, with a size limit, using tower's
/// `AsyncFilter` and http-body-util's `Limited`; then the default [`CloneBody`] applies:
///
/// ```
/// use bytes::Bytes;
/// use http::Request;
/// use http_body_util::{BodyExt, Full, Limited};
/// use tower::BoxError;
///
/// /// Collects at most 1 MiB; larger bodies fail the request instead of being buffered.
/// async fn buffer<B>(req: Request<B>) -> Result<Request<Full<Bytes>>, BoxError>
/// where
///     B: http_body::Body + Send + 'static,
///     B::Data: Send,
///     B::Error: Into<BoxError>,
/// {
///     let (parts, body) = req.into_parts();
///     let bytes = Limited::new(body, 1 << 20).collect().await?.to_bytes();
///     Ok(Request::from_parts(parts, Full::new(bytes)))
/// }
/// // let client = ServiceBuilder::new()
/// //     .layer(tower::filter::AsyncFilterLayer::new(buffer))
/// //     .layer(auth_layer)
/// //     .service(hyper_client);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot copy a `Request<{B}>` for a replay after a 401",
    label = "the layer's replay strategy cannot copy this request",
    note = "the default strategy, `CloneBody`, copies requests whose body is `Clone`; streaming \
            bodies (`axum::body::Body`, `hyper::body::Incoming`, ...) are not",
    note = "send such requests once with `AuthLayer::without_replay()`, or buffer the body into \
            `http_body_util::Full<bytes::Bytes>` in front of the layer (see the docs of \
            `tower_token_auth::CloneRequest`)"
)]
pub trait CloneRequest<B>: Clone + Send + Sync + 'static {
    /// Copies `request`, if it can be copied.
    fn clone_request(&self, request: &Request<B>) -> Option<Request<B>>;
}

/// Copies requests whose body is `Clone` (the default strategy).
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneBody;

// NOTE: `do_not_recommend` makes a body that is not `Clone` fail with the trait's message and its
// ways out ("`CloneBody` cannot copy a `Request<B>`") instead of a bare "`B: Clone` is not
// satisfied".
#[diagnostic::do_not_recommend]
impl<B: Clone> CloneRequest<B> for CloneBody {
    fn clone_request(&self, request: &Request<B>) -> Option<Request<B>> {
        Some(request.clone())
    }
}

/// Never replays: for bodies that cannot be copied and are not worth buffering.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoReplay;

impl<B> CloneRequest<B> for NoReplay {
    fn clone_request(&self, _: &Request<B>) -> Option<Request<B>> {
        None
    }
}

/// One request's sends and the replay rule applied to them: the one replay loop, which the tower
/// future, the reqwest middleware (and, through the tower future, the gRPC layer) each drive.
///
/// The caller sends, and tells [`Sends::sent`]; it reports each answer to [`Sends::answered`],
/// which says whether to return it or to replay a copy with a newer token (waited for with
/// `TokenWait::new(Some(sends.refused()))`). The budget is
/// [`TokenPolicy::allows_replay`](crate::provider::TokenPolicy)'s (OkHttp's rule).
#[derive(Debug)]
pub(crate) struct Sends {
    /// How many times the request went out.
    count: u32,
    /// The generation of the token of the last send.
    generation: Generation,
    /// What the replays so far spent.
    budget: Budget,
    /// When the request reached the layer: its deadline runs from there. Kept as read, and
    /// made a moment only for a refusal.
    started: Reading,
    /// DPoP-bound sends: where the last one went (its server's nonces are kept from the
    /// answers), and the nonce challenges met so far.
    dpop: Option<Box<DpopSends>>,
}

/// What [`Sends`] tracks of a request sent with a DPoP-bound token.
#[derive(Debug)]
struct DpopSends {
    uri: Uri,
    /// Sends made again for a nonce (free of the replay budget).
    retries: u8,
    /// The next send answers a nonce challenge.
    pending: bool,
}

/// What to do with an answer ([`Sends::answered`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The upstream did not refuse the token: the answer is the caller's.
    Accepted,
    /// The upstream refused the token and the rule allows a replay: wait for a token newer than
    /// [`Sends::refused`], then send the copy.
    Replay,
    /// The upstream refused the token and no replay follows: the answer is the caller's, and the
    /// token has been reported dead.
    Spent,
    /// The upstream asked for a DPoP nonce and gave one: send the copy again with the current
    /// token, free of the replay budget.
    Nonce,
}

impl Sends {
    /// A request that reached the layer at `started` and has not gone out.
    pub(crate) fn new(started: Reading) -> Self {
        Self {
            count: 0,
            generation: Generation::UNSENT,
            budget: Budget::default(),
            started,
            dpop: None,
        }
    }

    /// A request that reached the layer at `started` and went out once, with the token of
    /// `generation` (the hot path).
    pub(crate) fn once(started: Reading, generation: Generation) -> Self {
        Self {
            count: 1,
            generation,
            ..Self::new(started)
        }
    }

    /// Whether the send about to go out with `token` needs a copy of the request: another may
    /// follow it (a replay, or for a DPoP-bound token a nonce challenge).
    pub(crate) fn keep_copy(&self, manager: &Manager, token: &TokenState) -> bool {
        manager.policy.copies_for_send(self.count, &self.budget)
            || (token.dpop
                && self
                    .dpop
                    .as_ref()
                    .is_none_or(|d| d.retries < MAX_NONCE_RETRIES))
    }

    /// The request goes out (again) to `uri` with `token`.
    pub(crate) fn sent(&mut self, manager: &Manager, token: &TokenState, uri: &Uri) {
        let generation = token.generation;
        if token.dpop {
            let dpop = self.dpop.get_or_insert_with(|| {
                Box::new(DpopSends {
                    uri: uri.clone(),
                    retries: 0,
                    pending: false,
                })
            });
            if std::mem::take(&mut dpop.pending) {
                manager.metrics.incr(Counter::DpopNonceRetry);
                tracing::debug!(
                    retries = dpop.retries,
                    "sending a request again with the resource server's DPoP nonce"
                );
                self.generation = generation;
                return;
            }
        }
        if self.count > 0 {
            manager.metrics.incr(Counter::Replay);
            tracing::debug!(
                send = self.count + 1,
                refused = self.generation.get(),
                generation = generation.get(),
                "replaying request with a new token"
            );
        }
        self.count += 1;
        self.generation = generation;
    }

    /// The generation of the token of the last send: the one a replay's token must be newer
    /// than.
    pub(crate) fn refused(&self) -> Generation {
        self.generation
    }

    /// The upstream answered the last send with `status` and `headers`; `copy` says whether a
    /// copy to replay is at hand. A refusal that allows no replay reports the token dead, so
    /// that later requests are not sent with it.
    pub(crate) fn answered(
        &mut self,
        manager: &Arc<Manager>,
        status: StatusCode,
        headers: &HeaderMap,
        copy: bool,
    ) -> Verdict {
        if let (Some(dpop), Some(sends)) = (&manager.dpop, &mut self.dpop) {
            let nonce = dpop.remember(End::Resource, &sends.uri, headers);
            if resource_challenge(status, headers) {
                if nonce && copy && sends.retries < MAX_NONCE_RETRIES {
                    sends.retries += 1;
                    sends.pending = true;
                    return Verdict::Nonce;
                }
                // Not a dead token: the server's nonces are not working out (no nonce given,
                // or a third challenge). The caller gets the challenge; the token stays.
                tracing::debug!(
                    retries = sends.retries,
                    "DPoP nonce challenge not answered: the challenge goes to the caller"
                );
                return Verdict::Accepted;
            }
        }
        if !manager.policy.classifier.refuses(status, headers) {
            // A later refusal of this token is revocation (see `Slot::accept`).
            manager.slot.accept(self.generation);
            return Verdict::Accepted;
        }
        // Asked before the invalidation, which makes the refusal old news.
        let started = manager.clock().moment_of(self.started);
        let refusal = manager.refusal(self.generation, &self.budget, started);
        if copy
            && manager
                .policy
                .allows_replay(self.count, &mut self.budget, refusal)
        {
            return Verdict::Replay;
        }
        tracing::debug!(
            sends = self.count,
            refused = self.generation.get(),
            "replay budget spent: the dead-token answer goes to the caller"
        );
        manager.invalidate(self.generation);
        Verdict::Spent
    }
}
