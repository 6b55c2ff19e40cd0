//! The gRPC layer: an [`AuthLayer`] and the cap on what is buffered for replay.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tower_layer::Layer;

use super::buffer::CopyBuffered;
use super::forward::Forward;
use super::service::GrpcAuthService;
use crate::classify::Classifier;
use crate::handle::TokenHandle;
use crate::layer::AuthLayer;

/// Default cap on the encoded messages of one call buffered for replay: 64 KiB.
pub const DEFAULT_MAX_BUFFERED: usize = 64 * 1024;

/// A [`Layer`] that makes every gRPC call over a tonic channel carry the token of an
/// [`AuthLayer`], replaying calls that can be replayed. See the [module docs](super).
///
/// All services it makes share the `AuthLayer`'s token, single flight and counters, with each
/// other and with every other user of that `AuthLayer` (a clone of it wrapping an HTTP client,
/// say).
///
/// # The classifier must see gRPC `UNAUTHENTICATED`
///
/// A gRPC server rejects a token with `grpc-status: 16` in the head of a trailers-only response,
/// under HTTP status 200. Only a [`Classifier`] that says so lets the layer replay such a call
/// and mark the token dead; build the `AuthLayer` with [`Classifier::grpc`]:
///
/// ```
/// # use tower_token_auth::{AuthLayer, AuthTransport};
/// # use tower_token_auth::provider::{Classifier, Provider};
/// # use tower_token_auth::grpc::GrpcAuthLayer;
/// # fn build<P: Provider>(provider: P, auth_client: impl AuthTransport) {
/// // Right: UNAUTHENTICATED in the head marks the token dead, and the call is replayed.
/// let layer = AuthLayer::builder(provider)
///     .with_policy(|p| p.classifier = Classifier::grpc())
///     .build(auth_client);
/// let grpc = GrpcAuthLayer::new(layer);
/// # }
/// ```
///
/// With the default [`Classifier::http`] (`AuthLayer::new(provider, auth_client)`), a call
/// rejected in the head goes back to the caller as `UNAUTHENTICATED`, unreplayed, and the dead
/// token stays in use until it expires. [`GrpcAuthLayer::new`] logs a warning (`tracing`, level
/// WARN) when the classifier does not reject a trailers-only `UNAUTHENTICATED`. A stream that
/// ends `UNAUTHENTICATED` in its trailers invalidates its token whatever the classifier.
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
        if !rejects_trailers_only_unauthenticated(&layer.policy().classifier) {
            tracing::warn!(
                "GrpcAuthLayer: the classifier does not reject gRPC UNAUTHENTICATED; calls \
                 rejected in a trailers-only response are neither replayed nor invalidate their \
                 token (build the AuthLayer with Classifier::grpc())"
            );
        }
        let handle = layer.handle();
        Self {
            auth: layer.replay_with(CopyBuffered),
            handle,
            max_buffered: DEFAULT_MAX_BUFFERED,
        }
    }

    /// Cap on the encoded messages of one call buffered for replay. Default:
    /// [`DEFAULT_MAX_BUFFERED`] (64 KiB). A call whose messages are larger, or not all ready
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

    /// A handle on the layer's token (see [`AuthLayer::handle`]); its
    /// [`metrics`](TokenHandle::metrics) count the gRPC calls' auth traffic too.
    ///
    /// ```
    /// # use tower_token_auth::AuthLayer;
    /// # use tower_token_auth::provider::Provider;
    /// # use tower_token_auth::grpc::GrpcAuthLayer;
    /// # fn build<P: Provider>(layer: AuthLayer) {
    /// let grpc = GrpcAuthLayer::new(layer);
    /// let handle = grpc.handle();
    /// // ... calls through `grpc` ...
    /// let metrics = handle.metrics();
    /// println!("{} refreshes, {} replays", metrics.refreshes, metrics.replays);
    /// # }
    /// ```
    pub fn handle(&self) -> TokenHandle {
        self.handle.clone()
    }
}

/// Whether `classifier` marks a token dead on a trailers-only `UNAUTHENTICATED` response.
fn rejects_trailers_only_unauthenticated(classifier: &Classifier) -> bool {
    let mut head = HeaderMap::new();
    head.insert(
        HeaderName::from_static("grpc-status"),
        HeaderValue::from_static("16"),
    );
    classifier.rejects(StatusCode::OK, &head)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_classifiers_that_see_grpc_unauthenticated_pass_the_check() {
        assert!(rejects_trailers_only_unauthenticated(&Classifier::grpc()));
        assert!(!rejects_trailers_only_unauthenticated(&Classifier::http()));
        let custom = Classifier::custom(|status, headers| {
            status == StatusCode::UNAUTHORIZED || headers.contains_key("grpc-status")
        });
        assert!(rejects_trailers_only_unauthenticated(&custom));
    }
}
