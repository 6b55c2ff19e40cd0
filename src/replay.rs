//! Which requests can be replayed after the upstream rejects their token.
//!
//! Replaying needs a copy of the request made *before* it is sent. A [`CloneRequest`] strategy
//! decides how (or whether) to make that copy, in the way tower's `retry::Policy::clone_request`
//! does. The strategy is a type parameter of the layer, so a request type that cannot be copied
//! costs nothing.
//!
//! | body type | strategy |
//! |---|---|
//! | `Clone` bodies: `Full<Bytes>`, `Empty<Bytes>`, `String`, `Bytes`, `Vec<u8>`, ... | [`CloneBody`] (the default) |
//! | streaming bodies (`hyper::body::Incoming`, `axum::body::Body`, ...) | [`NoReplay`], or buffer first |
//!
//! # Replaying streaming bodies
//!
//! Buffer the body into `Full<Bytes>` in front of the layer, with a size limit, using tower's
//! `AsyncFilter` and http-body-util's `Limited`; then the default [`CloneBody`] applies:
//!
//! ```
//! use bytes::Bytes;
//! use http::Request;
//! use http_body_util::{BodyExt, Full, Limited};
//! use tower::BoxError;
//!
//! /// Collects at most 1 MiB; larger bodies fail the request instead of being buffered.
//! async fn buffer<B>(req: Request<B>) -> Result<Request<Full<Bytes>>, BoxError>
//! where
//!     B: http_body::Body + Send + 'static,
//!     B::Data: Send,
//!     B::Error: Into<BoxError>,
//! {
//!     let (parts, body) = req.into_parts();
//!     let bytes = Limited::new(body, 1 << 20).collect().await?.to_bytes();
//!     Ok(Request::from_parts(parts, Full::new(bytes)))
//! }
//! // let client = ServiceBuilder::new()
//! //     .layer(tower::filter::AsyncFilterLayer::new(buffer))
//! //     .layer(auth_layer)
//! //     .service(hyper_client);
//! ```

use http::Request;

/// Makes the copy of a request that a replay would send.
///
/// Return `None` when the request cannot be copied; it is then sent once, and a replay-triggering
/// response is returned to the caller as it is.
pub trait CloneRequest<B>: Clone + Send + Sync + 'static {
    /// Copies `request`, if it can be copied.
    fn clone_request(&self, request: &Request<B>) -> Option<Request<B>>;
}

/// Copies requests whose body is `Clone` (the default strategy).
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneBody;

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
