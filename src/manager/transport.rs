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

/// Wraps a user's HTTP service as a [`Transport`].
///
/// NOTE: no redirect is followed here, and none may be: credentials go only to the configured
/// endpoint. A 3xx answer is a failure like any other unexpected status.
pub(crate) fn transport<T, RB>(service: T, max_response_bytes: usize) -> Transport
where
    T: Service<AuthRequest, Response = Response<RB>> + Clone + Send + Sync + 'static,
    T::Error: Into<BoxError>,
    T::Future: Send + 'static,
    RB: Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Into<BoxError>,
{
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
