//! What a DPoP proof (RFC 9449) costs over the one signature it carries: `proof/<alg>` builds a
//! whole proof (fresh `jti`, claims, base64url, signature) with `jose::DpopKey`;
//! `raw_signature/<alg>` is aws-lc-rs signing the same bytes as that proof's signing input, with
//! the same key; `huskarl/<alg>` is huskarl's proof for the same request (its own keys, on
//! RustCrypto), for comparison; `request/<alg>` is a whole request through the layer with a
//! DPoP-bound token (the proof with `ath`, the header, the cold path's state, the answer read for
//! a nonce) to an upstream that answers at once; `raw_signature_of_request/<alg>` signs the
//! bytes a request's proof signs (`ath` makes them 65 bytes longer than a token endpoint's: two
//! more SHA-512 blocks for Ed25519, which hashes the message twice, one more SHA-256 block for
//! P-256). The target: a DPoP request costs at most 1.2 times the raw signature of the same
//! bytes.
//!
//! Every proof but the requests' is a token endpoint's (`POST https://idp.example.com/oauth/token`,
//! no `ath`, no nonce). Run with `cargo bench --features jose --bench dpop`.

use std::convert::Infallible;
use std::future::{Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{Method, Uri};
use http_body_util::Empty;
use huskarl::core::dpop::{AuthorizationServerDPoP, DPoP};
use huskarl_crypto_native::asymmetric::signer::{GenerateAlgorithm, PrivateKey};
use tower::{Layer, Service, ServiceExt};
use tower_token_auth::jose::{Algorithm, DpopKey, SigningKey};
use tower_token_auth::{AuthLayer, AuthService, Secret};

mod support;

use support::{AuthServer, BenchProvider, Req};

const TOKEN_URL: &str = "https://idp.example.com/oauth/token";
const API_URL: &str = "https://api.example.com/v1/items";
const DPOP_TOKEN_JSON: &[u8] = br#"{"access_token":"eyJhbGciOiJIUzI1NiJ9.bench-access-token.c2lnbmF0dXJl","token_type":"DPoP","expires_in":3600}"#;

type Res = http::Response<Empty<bytes::Bytes>>;
type Upstream = tower::util::ServiceFn<fn(Req) -> Ready<Result<Res, Infallible>>>;

fn upstream(_: Req) -> Ready<Result<Res, Infallible>> {
    std::future::ready(Ok(http::Response::new(Empty::new())))
}

/// A layer holding a DPoP-bound token for `key`, over an upstream that answers at once.
fn bound(rt: &tokio::runtime::Runtime, key: &DpopKey, uri: &Uri) -> AuthService<Upstream> {
    let server = AuthServer::answering(Duration::ZERO, DPOP_TOKEN_JSON);
    let key = key.clone();
    let layer = AuthLayer::builder(BenchProvider)
        .with_policy(move |p| p.dpop = Some(key))
        .build(server.transport());
    let service = layer.layer(tower::service_fn(
        upstream as fn(Req) -> Ready<Result<Res, Infallible>>,
    ));
    rt.block_on(service.clone().oneshot(support::request(uri)))
        .unwrap();
    let token = layer.handle().current().unwrap();
    assert!(token.header_value().to_str().unwrap().starts_with("DPoP "));
    service
}

fn request_bench(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    key: &DpopKey,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let uri: Uri = API_URL.parse().unwrap();
    let mut service = bound(&rt, key, &uri);
    c.bench_function(name, |b| {
        b.iter(|| {
            rt.block_on(async {
                let ready = service.ready().await.unwrap();
                ready.call(support::request(&uri)).await.unwrap()
            })
        })
    });
}

/// Runs a future that never waits (huskarl's signing is CPU work behind an async signature).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// A PKCS#8 document as PEM.
fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
}

/// The signing input (`header.claims`) of one of `key`'s proofs, for a request carrying
/// `token` when given.
fn signing_input(key: &DpopKey, uri: &Uri, token: Option<&str>) -> Vec<u8> {
    let token = token.map(Secret::from);
    let proof = key.proof(&Method::POST, uri, token.as_ref(), None).unwrap();
    let end = proof.rfind('.').unwrap();
    proof.as_bytes()[..end].to_vec()
}

fn huskarl_bench(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    alg: GenerateAlgorithm,
    uri: &Uri,
) {
    let dpop = DPoP::builder()
        .signer(PrivateKey::generate(alg, None).unwrap())
        .build();
    let jkt = ready(dpop.get_current_thumbprint()).unwrap();
    assert!(ready(dpop.proof(&Method::POST, uri, Some(&jkt)))
        .unwrap()
        .is_some());
    c.bench_function(name, |b| {
        b.iter(|| ready(dpop.proof(black_box(&Method::POST), black_box(uri), Some(&jkt))))
    });
}

fn dpop(c: &mut Criterion) {
    let uri: Uri = TOKEN_URL.parse().unwrap();
    let api: Uri = API_URL.parse().unwrap();
    let rng = SystemRandom::new();
    let mut group = c.benchmark_group("dpop");
    group.throughput(Throughput::Elements(1));

    let es256 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let raw = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, es256.as_ref()).unwrap();
    let key =
        DpopKey::new(SigningKey::from_pkcs8_pem(&pem(es256.as_ref()), Algorithm::ES256).unwrap());
    let input = signing_input(&key, &uri, None);
    group.bench_function("raw_signature/ES256", |b| {
        b.iter(|| raw.sign(&rng, black_box(&input)).unwrap())
    });
    group.bench_function("proof/ES256", |b| {
        b.iter(|| {
            key.proof(black_box(&Method::POST), black_box(&uri), None, None)
                .unwrap()
        })
    });
    huskarl_bench(&mut group, "huskarl/ES256", GenerateAlgorithm::Es256, &uri);
    let input = signing_input(&key, &api, Some(support::TOKEN));
    group.bench_function("raw_signature_of_request/ES256", |b| {
        b.iter(|| raw.sign(&rng, black_box(&input)).unwrap())
    });
    request_bench(&mut group, "request/ES256", &key);

    let ed25519 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let raw = Ed25519KeyPair::from_pkcs8(ed25519.as_ref()).unwrap();
    let key =
        DpopKey::new(SigningKey::from_pkcs8_pem(&pem(ed25519.as_ref()), Algorithm::EdDSA).unwrap());
    let input = signing_input(&key, &uri, None);
    group.bench_function("raw_signature/EdDSA", |b| {
        b.iter(|| raw.sign(black_box(&input)))
    });
    group.bench_function("proof/EdDSA", |b| {
        b.iter(|| {
            key.proof(black_box(&Method::POST), black_box(&uri), None, None)
                .unwrap()
        })
    });
    huskarl_bench(&mut group, "huskarl/EdDSA", GenerateAlgorithm::EdDsa, &uri);
    let input = signing_input(&key, &api, Some(support::TOKEN));
    group.bench_function("raw_signature_of_request/EdDSA", |b| {
        b.iter(|| raw.sign(black_box(&input)))
    });
    request_bench(&mut group, "request/EdDSA", &key);

    group.finish();
}

criterion_group!(benches, dpop);
criterion_main!(benches);
