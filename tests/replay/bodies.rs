//! Request bodies and replay: bodies that cannot be copied go out once, and streaming bodies
//! buffered in front of the layer are replayed.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt};

use crate::support::{paused_layer as new_layer, AuthServer, TestProvider, AUTH_DELAY};

#[tokio::test(start_paused = true)]
async fn non_clone_bodies_go_out_once_with_no_replay() {
    struct OneShot(Option<Bytes>);
    impl http_body::Body for OneShot {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(self.0.take().map(|b| Ok(http_body::Frame::data(b))))
        }
    }
    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new()).without_replay();
    let svc = layer.layer(server.upstream::<OneShot>());
    let req = || Request::new(OneShot(Some(Bytes::from_static(b"payload"))));
    assert_eq!(
        svc.clone().oneshot(req()).await.unwrap().status(),
        StatusCode::OK
    );
    server.revoke_access_tokens();
    assert_eq!(
        svc.clone().oneshot(req()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(layer.handle().metrics().replays, 0);
}

/// The documented path for bodies that cannot be copied: buffer them (bounded) in front of the
/// layer with tower's `AsyncFilter`, and replay works.
#[tokio::test(start_paused = true)]
async fn buffered_streaming_bodies_are_replayed() {
    use http_body_util::{BodyExt, Limited};

    /// A one-chunk body that cannot be cloned.
    struct OneShot(Option<Bytes>);
    impl http_body::Body for OneShot {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(self.0.take().map(|b| Ok(http_body::Frame::data(b))))
        }
    }
    async fn buffer(req: Request<OneShot>) -> Result<Request<Full<Bytes>>, tower::BoxError> {
        let (parts, body) = req.into_parts();
        let bytes = Limited::new(body, 1 << 20).collect().await?.to_bytes();
        Ok(Request::from_parts(parts, Full::new(bytes)))
    }

    let server = AuthServer::new(3600, AUTH_DELAY);
    let layer = new_layer(&server, TestProvider::new());
    let svc = tower::ServiceBuilder::new()
        .layer(tower::filter::AsyncFilterLayer::new(buffer))
        .layer(layer.clone())
        .service(server.upstream::<Full<Bytes>>());
    let req = || Request::new(OneShot(Some(Bytes::from_static(b"payload"))));
    assert_eq!(
        svc.clone().oneshot(req()).await.unwrap().status(),
        StatusCode::OK
    );
    server.revoke_access_tokens();
    assert_eq!(
        svc.clone().oneshot(req()).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(layer.handle().metrics().replays, 1);
    assert_eq!(server.refreshes(), 1);
}
