//! The hot-path loop the `auth` and `keyed` benches share: the request, the upstream, and the
//! sequential driver every stack is timed (and profiled) with.
//!
//! NOTE: the plain and the keyed service are measured in benches of their own: in one binary,
//! the token lookup and header write they share are compiled once, out of line, for both (see
//! BENCHMARKS.md), which is not what a program using one of them gets.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::hint::black_box;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, Uri};
use http_body_util::Empty;
use tokio::runtime::{Builder, Runtime};
use tower::{Service, ServiceExt};

use super::Req;

pub type Res = Response<Empty<Bytes>>;

/// Parsed once: `Uri::from_static` parses on every call, which would only add noise.
static URI: LazyLock<Uri> = LazyLock::new(|| Uri::from_static("http://api.test/v1/items"));

/// The request every stack sends (see [`super::request`]).
pub fn request() -> Req {
    super::request(&URI)
}

/// The upstream: always ready, answers an empty 200 at once.
pub fn upstream(_: Req) -> Ready<Result<Res, Infallible>> {
    ready(Ok(Response::new(Empty::new())))
}

pub type Upstream = tower::util::ServiceFn<fn(Req) -> Ready<Result<Res, Infallible>>>;

pub fn inner() -> Upstream {
    tower::service_fn(upstream as fn(Req) -> Ready<Result<Res, Infallible>>)
}

/// Sends `n` requests one after another through `service`.
pub async fn send<S>(service: &mut S, n: u64)
where
    S: Service<Req, Response = Res>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..n {
        let response = service
            .ready()
            .await
            .expect("ready")
            .call(request())
            .await
            .expect("response");
        black_box(response);
    }
}

/// Times `iters` sequential requests on the current-thread runtime `rt`.
pub fn sequential<S>(rt: &Runtime, service: &mut S, iters: u64) -> Duration
where
    S: Service<Req, Response = Res>,
    S::Error: std::fmt::Debug,
{
    rt.block_on(async {
        let start = Instant::now();
        send(service, iters).await;
        start.elapsed()
    })
}

pub fn current_thread() -> Runtime {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}
