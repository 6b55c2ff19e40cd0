//! The response body: the channel's, watched for gRPC `UNAUTHENTICATED` in its trailers.

use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::HeaderValue;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;

use super::grpc_unauthenticated;
use crate::handle::TokenHandle;

pin_project! {
    /// The response body of [`GrpcAuthService`](super::GrpcAuthService): the channel's body,
    /// frames unchanged, watched for gRPC `UNAUTHENTICATED` in its trailers.
    ///
    /// A stream that ends `UNAUTHENTICATED` was handed to the caller before its end arrived, so
    /// it cannot be replayed. When its trailers pass through this body, the token the call
    /// carried is invalidated if it is still the current one
    /// ([`TokenHandle::invalidate`]), and the next call waits for a new token instead of
    /// being rejected too.
    ///
    /// ```no_run
    /// # use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    /// # use tower_token_auth::grpc::GrpcAuthService;
    /// # use tower_token_auth::provider::HttpProvider;
    /// # async fn run(
    /// #     mut health: HealthClient<GrpcAuthService<tonic::transport::Channel>>,
    /// # ) -> Result<(), tonic::Status> {
    /// let mut stream = health.watch(HealthCheckRequest::default()).await?.into_inner();
    /// loop {
    ///     match stream.message().await {
    ///         Ok(Some(status)) => println!("{:?}", status.status()),
    ///         Ok(None) => break,
    ///         // The token was invalidated as the trailers passed: this call gets a new one.
    ///         Err(status) if status.code() == tonic::Code::Unauthenticated => {
    ///             stream = health.watch(HealthCheckRequest::default()).await?.into_inner();
    ///         }
    ///         Err(status) => return Err(status),
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        watch: Option<Watch>,
    }
}

/// Which token a call carried, to invalidate it if the stream ends `UNAUTHENTICATED`.
pub(crate) struct Watch {
    handle: TokenHandle,
    sent: HeaderValue,
}

impl Watch {
    pub(crate) fn new(handle: TokenHandle, sent: HeaderValue) -> Self {
        Self { handle, sent }
    }

    /// The upstream ended the call `UNAUTHENTICATED`: the token it carried is dead, if the slot
    /// still holds it (a token already replaced is left alone).
    fn rejected(self) {
        if let Some(current) = self.handle.current() {
            if *current.header_value() == self.sent {
                tracing::debug!(
                    generation = current.generation(),
                    "gRPC stream ended UNAUTHENTICATED: token invalidated"
                );
                self.handle.invalidate(&current);
            }
        }
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(inner: B, watch: Option<Watch>) -> Self {
        Self { inner, watch }
    }
}

impl<B: http_body::Body> http_body::Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(Ok(frame)) = &frame {
            if frame.trailers_ref().is_some_and(grpc_unauthenticated) {
                if let Some(watch) = this.watch.take() {
                    watch.rejected();
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: fmt::Debug> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("inner", &self.inner)
            .field("watching", &self.watch.is_some())
            .finish()
    }
}
