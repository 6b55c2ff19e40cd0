//! Which gRPC requests can be replayed: those whose whole message stream was ready when the call
//! was made and fits the cap, read into one buffer then.
//!
//! Invariant: reading ahead never waits. A unary or server-streaming call's encoded body is ready
//! at once; a client stream may wait on the caller (a bidirectional call waits for the response
//! the caller has not seen yet), so the first `Pending` ends the read and the call streams.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http::Request;
use http_body::{Body as _, Frame, SizeHint};
use tonic::body::Body;
use tonic::Status;

use crate::replay::CloneRequest;

/// The request body inside the layer: the call's whole message stream, or the call's stream with
/// whatever was read ahead of it put back in front.
pub(crate) struct RequestBody {
    kind: Kind,
}

enum Kind {
    /// The whole message stream (what is left of it to send): copied for a replay.
    Buffered(Bytes),
    /// Sent once: `ahead`, then `next`, then the rest of `stream`.
    Streaming {
        ahead: Bytes,
        next: Option<Result<Frame<Bytes>, Status>>,
        stream: Body,
    },
}

impl RequestBody {
    /// Reads `body` while its frames are ready, at most `cap` bytes of messages: all of it, and
    /// the body is buffered; else the body streams, with what was read put back in front.
    pub(crate) fn read_ahead(mut body: Body, cap: usize) -> Self {
        // NOTE: no task waits on this poll: a `Pending` body is not read further here, and the
        // transport polls it again with its own waker.
        let mut cx = Context::from_waker(Waker::noop());
        let mut ahead = Bytes::new();
        let next = loop {
            if body.is_end_stream() {
                return Self::buffered(ahead);
            }
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(None) => return Self::buffered(ahead),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if ahead.len().saturating_add(data.len()) <= cap => {
                        ahead = join(ahead, data);
                    }
                    Ok(data) => break Some(Ok(Frame::data(data))),
                    // Trailers on a request are not gRPC's; pass them on unbuffered.
                    Err(frame) => break Some(Ok(frame)),
                },
                Poll::Ready(Some(Err(status))) => break Some(Err(status)),
                Poll::Pending => break None,
            }
        };
        Self {
            kind: Kind::Streaming {
                ahead,
                next,
                stream: body,
            },
        }
    }

    fn buffered(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Buffered(bytes),
        }
    }

    /// Whether the whole message stream is in the buffer.
    #[cfg(test)]
    fn is_buffered(&self) -> bool {
        matches!(self.kind, Kind::Buffered(_))
    }

    /// The body as tonic's transport takes it; a stream nothing was read from goes back as it
    /// came.
    pub(crate) fn into_tonic(self) -> Body {
        match self.kind {
            Kind::Streaming {
                ahead,
                next: None,
                stream,
            } if ahead.is_empty() => stream,
            kind => Body::new(Self { kind }),
        }
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Lengths only: the messages are the caller's business.
        let (name, len) = match &self.kind {
            Kind::Buffered(bytes) => ("Buffered", bytes.len()),
            Kind::Streaming { ahead, .. } => ("Streaming", ahead.len()),
        };
        f.debug_struct(name)
            .field("len", &len)
            .finish_non_exhaustive()
    }
}

/// `ahead` followed by `data`; copies only when both hold bytes (a unary call has one chunk).
fn join(ahead: Bytes, data: Bytes) -> Bytes {
    if ahead.is_empty() {
        return data;
    }
    let mut joined = BytesMut::with_capacity(ahead.len() + data.len());
    joined.extend_from_slice(&ahead);
    joined.extend_from_slice(&data);
    joined.freeze()
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        match &mut self.get_mut().kind {
            Kind::Buffered(bytes) if bytes.is_empty() => Poll::Ready(None),
            Kind::Buffered(bytes) => Poll::Ready(Some(Ok(Frame::data(std::mem::take(bytes))))),
            Kind::Streaming { ahead, .. } if !ahead.is_empty() => {
                Poll::Ready(Some(Ok(Frame::data(std::mem::take(ahead)))))
            }
            Kind::Streaming { next, stream, .. } => match next.take() {
                Some(frame) => Poll::Ready(Some(frame)),
                None => Pin::new(stream).poll_frame(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Buffered(bytes) => bytes.is_empty(),
            Kind::Streaming {
                ahead,
                next,
                stream,
            } => ahead.is_empty() && next.is_none() && stream.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Buffered(bytes) => SizeHint::with_exact(bytes.len() as u64),
            Kind::Streaming { .. } => SizeHint::default(),
        }
    }
}

/// Copies requests whose body was buffered whole; a streaming call is sent once.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CopyBuffered;

impl CloneRequest<RequestBody> for CopyBuffered {
    fn clone_request(&self, request: &Request<RequestBody>) -> Option<Request<RequestBody>> {
        let Kind::Buffered(bytes) = &request.body().kind else {
            return None;
        };
        let mut copy = Request::new(RequestBody::buffered(bytes.clone()));
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        *copy.version_mut() = request.version();
        *copy.headers_mut() = request.headers().clone();
        *copy.extensions_mut() = request.extensions().clone();
        Some(copy)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    use http::{HeaderMap, HeaderValue};
    use http_body_util::{BodyExt, Full};

    /// One step of a [`Scripted`] body.
    enum Step {
        Data(&'static str),
        Trailers,
        Error,
        /// Not ready yet (the waker is woken, so a real reader polls again).
        Pending,
    }

    /// A body that plays its steps in order, as a client stream's body would.
    struct Scripted(VecDeque<Step>);

    fn scripted(steps: impl IntoIterator<Item = Step>) -> Body {
        Body::new(Scripted(steps.into_iter().collect()))
    }

    impl http_body::Body for Scripted {
        type Data = Bytes;
        type Error = Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
            let frame = match self.0.pop_front() {
                None => return Poll::Ready(None),
                Some(Step::Pending) => {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Some(Step::Data(data)) => Ok(Frame::data(Bytes::from_static(data.as_bytes()))),
                Some(Step::Trailers) => Ok(Frame::trailers(trailers())),
                Some(Step::Error) => Err(Status::internal("encoding failed")),
            };
            Poll::Ready(Some(frame))
        }
    }

    fn trailers() -> HeaderMap {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-end", HeaderValue::from_static("yes"));
        trailers
    }

    async fn collect(body: RequestBody) -> Result<(Bytes, Option<HeaderMap>), Status> {
        let collected = body.into_tonic().collect().await?;
        let trailers = collected.trailers().cloned();
        Ok((collected.to_bytes(), trailers))
    }

    fn request(body: RequestBody) -> Request<RequestBody> {
        let mut request = Request::post("http://example.test/pkg.Service/Method")
            .header("te", "trailers")
            .body(body)
            .unwrap();
        request.extensions_mut().insert(7_u32);
        request
    }

    #[tokio::test]
    async fn a_body_ready_at_once_within_the_cap_is_buffered_whole() {
        let body = RequestBody::read_ahead(Body::new(Full::from("unary message")), 64);
        assert!(body.is_buffered());
        assert_eq!(body.size_hint().exact(), Some(13));
        assert_eq!(collect(body).await.unwrap().0, "unary message");

        let chunks = scripted([Step::Data("client "), Step::Data("stream")]);
        let body = RequestBody::read_ahead(chunks, 13);
        assert!(body.is_buffered());
        assert_eq!(collect(body).await.unwrap().0, "client stream");

        let empty = RequestBody::read_ahead(Body::empty(), 0);
        assert!(empty.is_buffered() && empty.is_end_stream());
        assert_eq!(collect(empty).await.unwrap().0, "");
    }

    #[tokio::test]
    async fn a_body_that_is_not_ready_streams_with_what_was_read_in_front() {
        let steps = [Step::Data("first "), Step::Pending, Step::Data("second")];
        let body = RequestBody::read_ahead(scripted(steps), 64);
        assert!(!body.is_buffered());
        assert!(!body.is_end_stream());
        assert_eq!(collect(body).await.unwrap().0, "first second");

        let body = RequestBody::read_ahead(scripted([Step::Pending, Step::Data("late")]), 64);
        assert!(!body.is_buffered());
        assert_eq!(collect(body).await.unwrap().0, "late");
    }

    #[tokio::test]
    async fn a_body_over_the_cap_streams_whole() {
        let steps = [Step::Data("12345"), Step::Data("6789"), Step::Data("0")];
        let body = RequestBody::read_ahead(scripted(steps), 8);
        assert!(!body.is_buffered());
        assert_eq!(collect(body).await.unwrap().0, "1234567890");

        let body = RequestBody::read_ahead(Body::new(Full::from("one byte too many")), 16);
        assert!(!body.is_buffered());
        assert_eq!(collect(body).await.unwrap().0, "one byte too many");
    }

    #[tokio::test]
    async fn trailers_and_errors_are_passed_on_unbuffered() {
        let steps = [Step::Data("message"), Step::Trailers];
        let body = RequestBody::read_ahead(scripted(steps), 64);
        assert!(!body.is_buffered());
        let (bytes, trailers) = collect(body).await.unwrap();
        assert_eq!(
            (bytes, trailers),
            (Bytes::from("message"), Some(super::tests::trailers()))
        );

        let body = RequestBody::read_ahead(scripted([Step::Data("message"), Step::Error]), 64);
        assert!(!body.is_buffered());
        let mut tonic = body.into_tonic();
        let first = tonic.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "message");
        let error = tonic.frame().await.unwrap().unwrap_err();
        assert_eq!(error.message(), "encoding failed");
    }

    #[test]
    fn only_buffered_requests_are_copied_with_their_parts() {
        let buffered = request(RequestBody::read_ahead(Body::new(Full::from("m")), 64));
        let copy = CopyBuffered
            .clone_request(&buffered)
            .expect("buffered: copied");
        assert_eq!(copy.method(), buffered.method());
        assert_eq!(copy.uri(), buffered.uri());
        assert_eq!(copy.version(), buffered.version());
        assert_eq!(copy.headers(), buffered.headers());
        assert_eq!(copy.extensions().get::<u32>(), Some(&7));
        assert!(copy.body().is_buffered());

        let streaming = request(RequestBody::read_ahead(scripted([Step::Pending]), 64));
        assert!(CopyBuffered.clone_request(&streaming).is_none());
        let over_cap = request(RequestBody::read_ahead(Body::new(Full::from("mm")), 1));
        assert!(CopyBuffered.clone_request(&over_cap).is_none());
    }
}
