//! Which requests can be replayed after the upstream rejects their token: the [`CloneRequest`]
//! strategies.

use http::Request;

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
/// # When the body cannot be copied
///
/// Sending a request whose body is not `Clone` through a layer with the default strategy fails
/// to compile, naming this trait:
///
/// ```text
/// error[E0277]: `CloneBody` cannot copy a `Request<axum::body::Body>` for a replay after a 401
/// ```
///
/// (A method call such as `svc.oneshot(request)` may only say "the method `oneshot` exists but
/// its trait bounds were not satisfied"; `tower::ServiceExt::oneshot(svc, request)` gives the
/// message above.) The ways out: send such requests once with
/// [`AuthLayer::without_replay`](crate::AuthLayer::without_replay); buffer the body into
/// `Full<Bytes>` in front of the layer, as below; or copy it some other way with
/// [`AuthLayer::replay_with`](crate::AuthLayer::replay_with).
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
