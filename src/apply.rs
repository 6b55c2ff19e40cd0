//! Applying a token to a request: the one step that writes a token into a request, and the way
//! back from the request's answer to the token.
//!
//! Every request the layer sends with a token goes through [`Applied::apply`] (the hot path) or
//! [`TokenState::apply`] (replays and requests that waited for a token). The step
//! sees the request's method and URI, so that a scheme whose header is computed per request (a
//! signed proof of possession) changes this step and nothing upstream of it; a bearer header
//! ignores them, at no cost once inlined.
//!
//! ## No shared write per request
//!
//! On the hot path a request takes an [`Applied`]: this thread's copy of the slot's token, made
//! once per thread and token (see [`Applied::current`]). The request's header value and the
//! response future's reference both count on that copy, which only this thread writes; cloning
//! the slot's `Arc` and header instead wrote two reference counts that every core shares, and on
//! a busy multi-core client each such write is a cache-line transfer per request.

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};

use crate::clock::{Moment, Reading};
use crate::dpop::{Dpop, End, DPOP};
use crate::error::AuthError;
use crate::manager::Manager;
use crate::provider::Classifier;
use crate::slot::{Generation, TokenState};

impl TokenState {
    /// Writes this token into a request (cold paths: replays, waiting requests, and every
    /// request with a DPoP-bound token, whose proof is signed here with `dpop`).
    ///
    /// Fails only for a DPoP-bound token: a request URI that is not absolute (a proof names
    /// it), or no key to sign with.
    pub(crate) fn apply<B>(
        &self,
        request: &mut Request<B>,
        dpop: Option<&Dpop>,
    ) -> Result<(), AuthError> {
        let proof = self.proof(request.method(), request.uri(), dpop)?;
        self.write_to(proof, request.headers_mut());
        Ok(())
    }

    /// The DPoP proof a request of `method` to `uri` carries with this token: none unless the
    /// token is bound to the layer's key.
    pub(crate) fn proof(
        &self,
        method: &Method,
        uri: &Uri,
        dpop: Option<&Dpop>,
    ) -> Result<Option<HeaderValue>, AuthError> {
        if !self.dpop {
            return Ok(None);
        }
        let dpop = dpop.ok_or_else(|| {
            AuthError::config("a DPoP-bound token without the DPoP key it is bound to")
        })?;
        dpop.proof(End::Resource, method, uri, self.ath.as_deref())
            .map(Some)
    }

    /// Writes the token, and its `proof` if it has one, into `headers`.
    pub(crate) fn write_to(&self, proof: Option<HeaderValue>, headers: &mut HeaderMap) {
        headers.insert(self.header_name.clone(), self.header.clone());
        if let Some(proof) = proof {
            headers.insert(DPOP, proof);
        }
    }
}

/// The scheme's step. It may read the request's method and URI; a bearer token is one header,
/// whatever they are.
#[inline]
fn write<B>(name: &HeaderName, value: &HeaderValue, request: &mut Request<B>) {
    request.headers_mut().insert(name.clone(), value.clone());
}

/// The slot's token as this thread applies it: thread-owned copies of its header, the token
/// itself, and what an answer reports to.
pub(crate) struct Applied {
    /// Which manager's slot, and which state of it, this copy was made from (see
    /// [`Slot::version`](crate::slot::Slot::version)). The `Weak` also keeps the manager's
    /// address from being reused while this copy exists.
    manager: Weak<Manager>,
    /// The manager's address, as `is_of` compares it.
    // NOTE: kept apart from the `Weak`, whose `as_ptr` tests for a dangling `Weak` first.
    address: usize,
    version: u64,
    /// The first coarse clock reading at which the token is due for refresh or expired (see
    /// [`Clock::first_tick_at`](crate::clock::Clock::first_tick_at)): a request that reads
    /// fewer ticks decides nothing more.
    fresh_until: u64,
    pub(crate) token: Arc<TokenState>,
    name: HeaderName,
    value: HeaderValue,
    classifier: Classifier,
    /// A request needs nothing but the header (and a copy, when replay is on): the token is not
    /// DPoP-bound, and the policy names no origins. One flag, so that the hot path checks one.
    plain: bool,
}

/// How many layers' tokens a thread keeps at once; a layer whose place another layer took
/// makes a new copy on its next request.
const WAYS: usize = 4;

thread_local! {
    static APPLIED: RefCell<[Option<Arc<Applied>>; WAYS]> = const { RefCell::new([const { None }; WAYS]) };
}

impl Applied {
    /// The slot's token, valid at `now` (the manager's clock, read once for this request), as
    /// this thread applies it; `None` when the slot has no valid token (the request waits for
    /// one). Asks for a due refresh ahead, as every request that reads the token does.
    #[inline]
    pub(crate) fn current(manager: &Arc<Manager>, now: Reading) -> Option<Arc<Applied>> {
        let version = manager.slot.version();
        let way = way(manager);
        let applied = APPLIED
            .try_with(|ways| {
                let mut ways = ways.borrow_mut();
                match &ways[way] {
                    Some(applied) if applied.is_of(manager, version) => Some(Arc::clone(applied)),
                    _ => {
                        let applied = Arc::new(Applied::new(manager, version)?);
                        ways[way] = Some(Arc::clone(&applied));
                        Some(applied)
                    }
                }
            })
            // The thread is exiting: a copy of its own, used once.
            .unwrap_or_else(|_| Applied::new(manager, version).map(Arc::new))?;
        match now {
            // Before the refresh point and expiry: nothing to decide.
            Reading::Ticks(ticks) if ticks < applied.fresh_until => Some(applied),
            _ => applied.checked(manager, manager.clock().moment_of(now)),
        }
    }

    /// This copy if its token is valid at `now`, after asking for a due refresh.
    #[inline(never)]
    fn checked(self: Arc<Self>, manager: &Arc<Manager>, now: Moment) -> Option<Arc<Applied>> {
        if now >= self.token.expires_at {
            return None;
        }
        manager.refresh_if_due(&self.token, now);
        Some(self)
    }

    /// A copy of the slot's token as it stands at `version` (or later), if it holds one.
    #[cold]
    fn new(manager: &Arc<Manager>, version: u64) -> Option<Self> {
        let token = manager.slot.load_full()?;
        // Copies of the bytes, not of the `Bytes`: clones of a clone share its count.
        let name = HeaderName::from_bytes(token.header_name.as_str().as_bytes()).ok()?;
        let mut value =
            HeaderValue::from_maybe_shared(shared_copy(token.header.as_bytes())).ok()?;
        value.set_sensitive(token.header.is_sensitive());
        let clock = manager.clock();
        Some(Self {
            manager: Arc::downgrade(manager),
            address: Arc::as_ptr(manager) as usize,
            version,
            fresh_until: clock.first_tick_at(token.refresh_at.min(token.expires_at)),
            plain: !(token.dpop || manager.policy.origins.is_some()),
            token,
            name,
            value,
            classifier: manager.policy.classifier.clone(),
        })
    }

    #[inline]
    fn is_of(&self, manager: &Arc<Manager>, version: u64) -> bool {
        self.version == version && self.address == Arc::as_ptr(manager) as usize
    }

    /// Writes the token into a request.
    #[inline]
    pub(crate) fn apply<B>(&self, request: &mut Request<B>) {
        write(&self.name, &self.value, request);
    }

    /// Whether the token is DPoP-bound: then a request does not take this copy's header but
    /// signs its own proof (see [`TokenState::apply`]).
    pub(crate) fn is_dpop(&self) -> bool {
        self.token.dpop
    }

    /// Whether a request needs nothing but this copy's header: the hot path (see
    /// `Step::prepare`).
    #[inline]
    pub(crate) fn is_plain(&self) -> bool {
        self.plain
    }

    /// The generation of the token.
    pub(crate) fn generation(&self) -> Generation {
        self.token.generation
    }

    /// The upstream answered `status` and `headers` to a request sent with this token and not
    /// replayed: an answer that refuses the token marks it dead, if the slot still holds it; any
    /// other answer shows the upstream accepting it (see
    /// [`Slot::accept`](crate::slot::Slot::accept)).
    #[inline]
    pub(crate) fn answered(&self, status: StatusCode, headers: &HeaderMap) {
        if self.classifier.refuses(status, headers) {
            if let Some(manager) = self.manager.upgrade() {
                manager.invalidate(self.token.generation);
            }
        } else if self.token.first_answer() {
            self.first_accepted();
        }
    }

    /// Tells the slot, once per token: reaching the manager costs a reference count update.
    #[cold]
    fn first_accepted(&self) {
        if let Some(manager) = self.manager.upgrade() {
            manager.slot.accept(self.token.generation);
        }
    }
}

/// `bytes` in a `Bytes` of the shared kind.
///
/// NOTE: `bytes` turns a `Vec` whose capacity exceeds its length into a shared `Bytes` at once;
/// an exact-size copy (what `HeaderValue::from_bytes` makes) is a "promotable" one, whose every
/// clone first checks whether it was promoted yet. The header value is cloned for every request.
fn shared_copy(bytes: &[u8]) -> Bytes {
    let mut copy = Vec::with_capacity(bytes.len() + 1);
    copy.extend_from_slice(bytes);
    Bytes::from(copy)
}

/// Which of a thread's places holds `manager`'s token. A manager is aligned to 128 bytes (its
/// slot's marks are), so the low bits of its address say nothing.
#[inline]
fn way(manager: &Arc<Manager>) -> usize {
    (Arc::as_ptr(manager) as usize >> 7) % WAYS
}

impl fmt::Debug for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Applied")
            .field("version", &self.version)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}
