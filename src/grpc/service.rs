//! The gRPC service: buffers what can be replayed, then sends through the [`AuthService`], or
//! a keyed layer's step for the call's session.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic::body::Body;
use tower_service::Service;

use super::body::ResponseBody;
use super::buffer::{CopyBuffered, RequestBody};
use super::forward::Forward;
use super::future::ResponseFuture;
use crate::error::BoxError;
use crate::keyed::KeyedAuthLayer;
use crate::service::{AuthService, Step};

/// Attaches the layer's token to every gRPC call, replays a call whose token the server rejected
/// when its messages were buffered, and invalidates the token of a stream that ends
/// `UNAUTHENTICATED`.
///
/// Made by [`GrpcAuthLayer`](super::GrpcAuthLayer); `K` is the key type of a keyed layer's
/// service ([`GrpcAuthLayer::keyed`](super::GrpcAuthLayer::keyed)), each call carrying its own
/// session's token, and `()` for one session's. Takes and gives what a tonic
/// [`Channel`](https://docs.rs/tonic/latest/tonic/transport/struct.Channel.html) does, so a
/// generated client takes it in the channel's place. Errors are [`BoxError`](tower::BoxError): the channel's,
/// or an [`AuthError`](crate::AuthError) when no token could be had (tonic turns either into a
/// `Status`; see the [`AuthError`](crate::AuthError) docs for the downcast).
///
/// ```no_run
/// use tonic::transport::Channel;
/// use tonic_health::pb::health_client::HealthClient;
/// use tower::Layer;
/// use tower_token_auth::grpc::{GrpcAuthLayer, GrpcAuthService};
/// use tower_token_auth::provider::HttpProvider;
///
/// /// A health client whose calls carry the token.
/// type Health = HealthClient<GrpcAuthService<Channel>>;
///
/// # async fn run(layer: GrpcAuthLayer) -> Result<(), tower::BoxError> {
/// let channel = Channel::from_static("http://127.0.0.1:50051").connect().await?;
/// let service = layer.layer(channel);
/// let health: Health = HealthClient::new(service);
/// # let _ = health;
/// # Ok(())
/// # }
/// ```
pub struct GrpcAuthService<S, K = ()> {
    auth: Auth<S, K>,
    max_buffered: usize,
}

/// Whose token the calls carry.
enum Auth<S, K> {
    /// One session's: the layer's service over the channel.
    One(AuthService<Forward<S>, CopyBuffered>),
    /// A keyed layer's: each call steps through its own session, its channel watching that
    /// session.
    Keyed {
        forward: Forward<S>,
        layer: KeyedAuthLayer<K>,
    },
}

impl<S, K> GrpcAuthService<S, K> {
    pub(crate) fn new(auth: AuthService<Forward<S>, CopyBuffered>, max_buffered: usize) -> Self {
        Self {
            auth: Auth::One(auth),
            max_buffered,
        }
    }

    pub(crate) fn keyed(inner: S, layer: KeyedAuthLayer<K>, max_buffered: usize) -> Self {
        Self {
            auth: Auth::Keyed {
                forward: Forward::keyed(inner),
                layer,
            },
            max_buffered,
        }
    }
}

impl<S: Clone, K> Clone for GrpcAuthService<S, K> {
    fn clone(&self) -> Self {
        let auth = match &self.auth {
            Auth::One(auth) => Auth::One(auth.clone()),
            Auth::Keyed { forward, layer } => Auth::Keyed {
                forward: forward.clone(),
                layer: layer.clone(),
            },
        };
        Self {
            auth,
            max_buffered: self.max_buffered,
        }
    }
}

impl<S: fmt::Debug, K> fmt::Debug for GrpcAuthService<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("GrpcAuthService");
        match &self.auth {
            Auth::One(auth) => debug.field("auth", auth),
            Auth::Keyed { forward, layer } => debug.field("inner", forward).field("keyed", layer),
        };
        debug.field("max_buffered", &self.max_buffered).finish()
    }
}

impl<S, K, RB> Service<Request<Body>> for GrpcAuthService<S, K>
where
    S: Service<Request<Body>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    RB: Send + 'static,
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match &mut self.auth {
            Auth::One(auth) => auth.poll_ready(cx),
            Auth::Keyed { forward, .. } => forward.poll_ready(cx).map_err(Into::into),
        }
    }

    #[inline]
    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let max = self.max_buffered;
        let request = request.map(|body| RequestBody::read_ahead(body, max));
        match &mut self.auth {
            Auth::One(auth) => ResponseFuture::new(auth.call(request)),
            Auth::Keyed { forward, layer } => ResponseFuture::new(keyed(forward, layer, request)),
        }
    }
}

/// A keyed layer's call: through its session's step (as the keyed tower service sends it), the
/// channel watching that session.
fn keyed<S, K, RB>(
    forward: &mut Forward<S>,
    layer: &KeyedAuthLayer<K>,
    request: Request<RequestBody>,
) -> crate::future::ResponseFuture<Forward<S>, RequestBody, CopyBuffered>
where
    S: Service<Request<Body>, Response = Response<RB>> + Clone + Send + 'static,
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    let (handle, reading) = match layer.session_of(&request) {
        Ok(session) => session,
        Err(error) => return crate::future::ResponseFuture::refused(error),
    };
    let manager = Arc::clone(handle.manager());
    forward.for_session(handle, |forward| {
        Step {
            manager: &manager,
            inner: forward,
            replay: &CopyBuffered,
        }
        .call_at(request, reading)
    })
}
