//! The gRPC layer: an [`AuthLayer`] (or a [`KeyedAuthLayer`]'s sessions) and the cap on what is
//! buffered for replay.

use std::fmt;
use std::hash::Hash;

use tower_layer::Layer;

use super::buffer::CopyBuffered;
use super::forward::Forward;
use super::service::GrpcAuthService;
use crate::handle::TokenHandle;
use crate::keyed::KeyedAuthLayer;
use crate::layer::AuthLayer;

/// Default cap on the encoded messages of one call buffered for replay: 64 KiB.
pub(crate) const DEFAULT_MAX_BUFFERED: usize = 64 * 1024;

/// A [`Layer`] that makes every gRPC call over a tonic channel carry the token of an
/// [`AuthLayer`], or of the call's session of a [`KeyedAuthLayer`] ([`keyed`](Self::keyed)),
/// replaying calls that can be replayed. See the [module docs](super).
///
/// All services it makes share the `AuthLayer`'s token, single flight and counters, with each
/// other and with every other user of that `AuthLayer` (a clone of it wrapping an HTTP client,
/// say).
///
/// A trailers-only `UNAUTHENTICATED` reaches the layer's classifier as HTTP 401, so the default
/// [`Classifier`](crate::provider::Classifier) replays such a call and marks its token dead with
/// no setting (see [what is replayed](super#what-is-replayed)); a stream that ends
/// `UNAUTHENTICATED` in its trailers invalidates its token.
pub struct GrpcAuthLayer<K = ()> {
    sessions: Sessions<K>,
    max_buffered: usize,
}

/// Whose token the calls carry.
enum Sessions<K> {
    One {
        auth: AuthLayer<CopyBuffered>,
        handle: TokenHandle,
    },
    Keyed(KeyedAuthLayer<K>),
}

impl GrpcAuthLayer {
    /// The gRPC side of `layer`: same token, same single flight, same counters. Requests are
    /// copied for replay only when their messages were buffered whole (see
    /// [`max_buffered`](Self::max_buffered)); [`TokenPolicy::max_replays`] set to 0 turns replay
    /// off.
    ///
    /// [`TokenPolicy::max_replays`]: crate::provider::TokenPolicy::max_replays
    pub fn new(layer: AuthLayer) -> Self {
        let handle = layer.handle();
        Self {
            sessions: Sessions::One {
                auth: layer.replay_with(CopyBuffered),
                handle,
            },
            max_buffered: DEFAULT_MAX_BUFFERED,
        }
    }
}

impl<K> GrpcAuthLayer<K>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    /// The gRPC side of `layer`'s sessions: each call carries the token of the session its key
    /// names, as through the keyed layer's tower service, and shares that session's single
    /// flight and counters with every other user of it. The key is a value of type `K` in the
    /// call's extensions (tonic's `Request::extensions_mut().insert(key)`), or what the layer's
    /// [`key_from`](crate::KeyedAuthLayerBuilder::key_from) says of the call's URI and headers
    /// (its metadata). A call naming no session, or whose session the factory cannot build,
    /// fails with [`ErrorKind::Config`](crate::ErrorKind::Config) and is not sent. A replay, and
    /// the watch on a stream's trailers, are the call's own session's: a stream that ends
    /// `UNAUTHENTICATED` invalidates that session's token, and no other.
    ///
    /// See [keyed sessions](super#keyed-sessions) for an example.
    pub fn keyed(layer: &KeyedAuthLayer<K>) -> Self {
        Self {
            sessions: Sessions::Keyed(layer.clone()),
            max_buffered: DEFAULT_MAX_BUFFERED,
        }
    }
}

impl<K> GrpcAuthLayer<K> {
    /// Cap on the encoded messages of one call buffered for replay. Default:
    /// 64 KiB. A call whose messages are larger, or not all ready
    /// when it is made (a client stream), is sent once without a copy.
    ///
    /// ```
    /// # use tower_token_auth::AuthLayer;
    /// # use tower_token_auth::provider::Provider;
    /// # use tower_token_auth::grpc::GrpcAuthLayer;
    /// # fn build<P: Provider>(layer: AuthLayer) {
    /// // Calls carry large messages: keep up to 1 MiB of each for a replay.
    /// let grpc = GrpcAuthLayer::new(layer).max_buffered(1 << 20);
    /// # }
    /// ```
    pub fn max_buffered(mut self, bytes: usize) -> Self {
        self.max_buffered = bytes;
        self
    }
}

impl<S, K> Layer<S> for GrpcAuthLayer<K> {
    type Service = GrpcAuthService<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        match &self.sessions {
            Sessions::One { auth, handle } => {
                let forward = Forward::new(inner, handle.clone());
                GrpcAuthService::new(auth.layer(forward), self.max_buffered)
            }
            Sessions::Keyed(layer) => {
                GrpcAuthService::keyed(inner, layer.clone(), self.max_buffered)
            }
        }
    }
}

impl<K> Clone for GrpcAuthLayer<K> {
    fn clone(&self) -> Self {
        let sessions = match &self.sessions {
            Sessions::One { auth, handle } => Sessions::One {
                auth: auth.clone(),
                handle: handle.clone(),
            },
            Sessions::Keyed(layer) => Sessions::Keyed(layer.clone()),
        };
        Self {
            sessions,
            max_buffered: self.max_buffered,
        }
    }
}

impl<K> fmt::Debug for GrpcAuthLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("GrpcAuthLayer");
        match &self.sessions {
            Sessions::One { auth, .. } => debug.field("auth", auth),
            Sessions::Keyed(layer) => debug.field("keyed", layer),
        };
        debug.field("max_buffered", &self.max_buffered).finish()
    }
}
