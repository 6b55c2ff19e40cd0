//! What an idle keyed session holds: 1,000 sessions of a `KeyedAuthLayer`, each with its token,
//! counted with dhat's heap statistics (one profiler per process: one test in this file). The
//! figure is reported in BENCHMARKS.md; the test bounds it, and checks that dropping the layer
//! frees them.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower_token_auth::{AuthLayer, KeyedAuthLayer};

mod support;
use support::TestProvider;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const SESSIONS: u32 = 1_000;
/// The bound: an idle session (its manager, slot, token and map entry) under 4 KiB.
const MAX_BYTES_PER_SESSION: usize = 4 * 1024;

#[test]
fn an_idle_session_holds_under_4_kib() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // An auth server that keeps nothing per login, so that what grows is the layer's.
        let logins = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&logins);
        let transport = tower::service_fn(move |_: Request<Full<Bytes>>| {
            counted.fetch_add(1, Ordering::Relaxed);
            async {
                let body = br#"{"access_token":"an-access-token-of-some-length-0123456789","refresh_token":"a-refresh-token-0123456789","token_type":"Bearer","expires_in":3600}"#;
                let mut response = Response::new(Full::new(Bytes::from_static(body)));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                Ok::<_, Infallible>(response)
            }
        });
        let layer = KeyedAuthLayer::builder(|_: &u32| Ok(AuthLayer::builder(TestProvider::new())))
            .max_sessions(SESSIONS as usize)
            .build(transport);
        // Warm up: what the first session builds once for all (the runtime's timers, say).
        for k in 0..3 {
            layer.handle(&k).unwrap().token().await.unwrap();
        }
        let before = dhat::HeapStats::get().curr_bytes;
        for k in 3..SESSIONS + 3 {
            layer.handle(&k).unwrap().token().await.unwrap();
        }
        let after = dhat::HeapStats::get().curr_bytes;
        let per_session = (after - before) / SESSIONS as usize;
        println!("an idle keyed session holds {per_session} bytes ({SESSIONS} sessions)");
        assert_eq!(logins.load(Ordering::Relaxed), SESSIONS + 3);
        assert_eq!(layer.sessions().0, SESSIONS as usize);
        assert!(
            per_session <= MAX_BYTES_PER_SESSION,
            "{per_session} bytes per idle session"
        );
        drop(layer);
        // The flights' tasks are gone once the runtime has run them down.
        tokio::task::yield_now().await;
        let dropped = dhat::HeapStats::get().curr_bytes;
        assert!(
            dropped <= before,
            "{dropped} bytes left, {before} before the sessions, once the layer is gone"
        );
    });
}
