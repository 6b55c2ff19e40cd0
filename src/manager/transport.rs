//! The auth transport: the user's HTTP service, with the response body collected under a cap.

use http::Response;
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;
use tower_service::Service;

use crate::error::{AuthError, BoxError};
use crate::provider::{AuthRequest, AuthResponse};

/// The auth transport as the manager uses it: the response body already collected under the cap.
pub(crate) type Transport = BoxCloneSyncService<AuthRequest, AuthResponse, AuthError>;

/// An HTTP client service the layer can send its login and refresh calls through.
///
/// Implemented for every `Clone + Send + Sync` [`Service`] that takes an
/// [`AuthRequest`] (`http::Request<Full<Bytes>>`) and answers an `http::Response` with any body:
/// a hyper-util client built for `Full<Bytes>`, a reqwest-backed service, a `ServiceBuilder`
/// stack. It must not follow redirects, so that credentials only ever go to the configured
/// endpoint (hyper-util's client follows none).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot carry the layer's auth calls",
    label = "not a `Service<Request<Full<Bytes>>>` answering `http::Response<_>`",
    note = "the auth transport takes `http::Request<http_body_util::Full<bytes::Bytes>>`: build a \
            second client for that body type, e.g. \
            `Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>()`",
    note = "it must be `Clone + Send + Sync + 'static`, its future `Send`, and its errors \
            `Into<BoxError>`"
)]
pub trait AuthTransport: Clone + Send + Sync + 'static {
    /// The transport as the manager uses it.
    #[doc(hidden)]
    fn into_transport(self, max_response_bytes: usize) -> Transport;
}

// NOTE: `do_not_recommend` makes a client of the wrong body type fail with the trait's message and
// its fix, instead of a bare "`Client<_, Body>: Service<Request<Full<Bytes>>>` is not satisfied".
#[diagnostic::do_not_recommend]
impl<T, RB> AuthTransport for T
where
    T: Service<AuthRequest, Response = Response<RB>> + Clone + Send + Sync + 'static,
    T::Error: Into<BoxError>,
    T::Future: Send + 'static,
    RB: Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Into<BoxError>,
{
    /// NOTE: no redirect is followed here, and none may be: credentials go only to the configured
    /// endpoint. A 3xx answer is a failure like any other unexpected status.
    fn into_transport(self, max_response_bytes: usize) -> Transport {
        let service = self;
        BoxCloneSyncService::new(tower::service_fn(move |request: AuthRequest| {
            let service = service.clone();
            async move {
                let response = service
                    .oneshot(request)
                    .await
                    .map_err(|e| AuthError::transport(e.into()))?;
                let (parts, body) = response.into_parts();
                let status = parts.status;
                let body = Limited::new(body, max_response_bytes)
                    .collect()
                    .await
                    .map_err(|e| {
                        if e.is::<LengthLimitError>() {
                            AuthError::too_large(max_response_bytes, status)
                        } else {
                            // NOTE: the status is kept: a 2xx whose body broke still consumed the
                            // refresh token it answered.
                            AuthError::body_failed(e, status)
                        }
                    })?
                    .to_bytes();
                Ok(Response::from_parts(parts, body))
            }
        }))
    }
}
