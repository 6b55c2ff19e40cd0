//! What a keyed session costs per request: `hot_path_keyed/keyed`, a [`KeyedAuthLayer`] request
//! for a known session, beside `hot_path_keyed/auth_layer`, the plain layer, both over
//! `hot_path_keyed/bare` with the loop of the `auth` bench (see `BENCHMARKS.md`).
//!
//! A bench of its own: the plain layer's hot path is measured in the `auth` bench, in a binary
//! without the keyed service (see `support::hot`).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tower::{Layer, ServiceExt};
use tower_token_auth::{AuthLayer, AuthService, KeyedAuthLayer, KeyedAuthService};

mod support;

use support::hot::{current_thread, inner, request, sequential, Upstream};
use support::{auth_layer, AuthServer, BenchProvider};

/// The session key of the keyed stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Tenant(u32);

/// The plain stack, replay off as in the keyed one, its token already in the slot.
fn primed(rt: &tokio::runtime::Runtime) -> AuthService<Upstream> {
    let server = AuthServer::new(Duration::ZERO);
    let service = auth_layer(&server, 0).layer(inner());
    rt.block_on(service.clone().oneshot(request()))
        .expect("priming request");
    assert_eq!(server.calls(), 1, "priming logs in once");
    service
}

/// A keyed auth stack (one session per tenant) over the upstream, its one session already
/// holding a fresh token; every request names that session (a key function of the request, so
/// that no extension is built per request). What it adds over `auth_layer` is finding the
/// session: one atomic load, a hash lookup, a clock read.
fn primed_keyed(rt: &tokio::runtime::Runtime) -> KeyedAuthService<Upstream, Tenant> {
    let server = AuthServer::new(Duration::ZERO);
    let transport = server.transport();
    let layer = KeyedAuthLayer::builder(|_: &Tenant| {
        Ok(AuthLayer::builder(BenchProvider).with_policy(|p| p.max_replays = 0))
    })
    .key_from(|_, _| Some(Tenant(7)))
    .build(transport);
    let service = layer.layer(inner());
    rt.block_on(service.clone().oneshot(request()))
        .expect("priming request");
    assert_eq!(server.calls(), 1, "priming logs in once");
    service
}

fn hot_path_keyed(c: &mut Criterion) {
    let rt = current_thread();
    let mut group = c.benchmark_group("hot_path_keyed");
    macro_rules! stack {
        ($name:literal, $service:expr) => {
            group.bench_function($name, |b| {
                let mut service = $service;
                b.iter_custom(|iters| sequential(&rt, &mut service, iters));
            });
        };
    }
    stack!("bare", inner());
    stack!("auth_layer", primed(&rt));
    stack!("keyed", primed_keyed(&rt));
    group.finish();
}

criterion_group!(benches, hot_path_keyed);
criterion_main!(benches);
