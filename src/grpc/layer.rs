//! The gRPC layer: an [`AuthLayer`] and the cap on what is buffered for replay.

use std::fmt;

use tower_layer::Layer;

use super::buffer::CopyBuffered;
use super::forward::Forward;
use super::service::GrpcAuthService;
use crate::handle::TokenHandle;
use crate::layer::AuthLayer;

/// Default cap on the encoded messages of one call buffered for replay: 64 KiB.
pub(crate) const DEFAULT_MAX_BUFFERED: usize = 64 * 1024;

/// A [`Layer`] that makes every gRPC call over a tonic channel carry the token of an
/// [`AuthLayer`], replaying calls that can be replayed. See the [module docs](super).
///
/// All services it makes share the `AuthLayer`'s token, single flight and counters, with each
/// other and with every other user of that `AuthLayer` (a clone of it wrapping an HTTP client,
/// say).
///
/// A trailers-only `UNAUTHENTICATED` reaches the layer's classifier as HTTP 401, so the default
/// [`Classifier`](crate::provider::Classifier) replays such a call and marks its token dead with
/// no setting (see [what is replayed](super#what-is-replayed)); a stream that ends
/// `UNAUTHENTICATED` in its trailers invalidates its token.
pub struct GrpcAuthLayer {
    auth: AuthLayer<CopyBuffered>,
    handle: TokenHandle,
    max_buffered: usize,
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
            auth: layer.replay_with(CopyBuffered),
            handle,
            max_buffered: DEFAULT_MAX_BUFFERED,
        }
    }

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

impl<S> Layer<S> for GrpcAuthLayer {
    type Service = GrpcAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let forward = Forward::new(inner, self.handle.clone());
        GrpcAuthService::new(self.auth.layer(forward), self.max_buffered)
    }
}

impl Clone for GrpcAuthLayer {
    fn clone(&self) -> Self {
        Self {
            auth: self.auth.clone(),
            handle: self.handle.clone(),
            max_buffered: self.max_buffered,
        }
    }
}

impl fmt::Debug for GrpcAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcAuthLayer")
            .field("auth", &self.auth)
            .field("max_buffered", &self.max_buffered)
            .finish()
    }
}
