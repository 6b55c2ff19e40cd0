//! What a DPoP proof (RFC 9449) costs over the one signature it carries: `proof/<alg>` builds a
//! whole proof (fresh `jti`, claims, base64url, signature) with `jose::DpopKey`;
//! `raw_signature/<alg>` is aws-lc-rs signing the same bytes as that proof's signing input, with
//! the same key; `huskarl/<alg>` is huskarl's proof for the same request (its own keys, on
//! RustCrypto), for comparison. The target: a proof costs at most 1.2 times the raw signature.
//!
//! Every proof is a token endpoint's (`POST https://idp.example.com/oauth/token`, no `ath`, no
//! nonce). Run with `cargo bench --features jose --bench dpop`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{Method, Uri};
use huskarl::core::dpop::{AuthorizationServerDPoP, DPoP};
use huskarl_crypto_native::asymmetric::signer::{GenerateAlgorithm, PrivateKey};
use tower_token_auth::jose::{Algorithm, DpopKey, SigningKey};

const TOKEN_URL: &str = "https://idp.example.com/oauth/token";

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

/// The signing input (`header.claims`) of one of `key`'s proofs.
fn signing_input(key: &DpopKey, uri: &Uri) -> Vec<u8> {
    let proof = key.proof(&Method::POST, uri, None, None).unwrap();
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
    let rng = SystemRandom::new();
    let mut group = c.benchmark_group("dpop");
    group.throughput(Throughput::Elements(1));

    let es256 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let raw = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, es256.as_ref()).unwrap();
    let key =
        DpopKey::new(SigningKey::from_pkcs8_pem(&pem(es256.as_ref()), Algorithm::ES256).unwrap());
    let input = signing_input(&key, &uri);
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

    let ed25519 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let raw = Ed25519KeyPair::from_pkcs8(ed25519.as_ref()).unwrap();
    let key =
        DpopKey::new(SigningKey::from_pkcs8_pem(&pem(ed25519.as_ref()), Algorithm::EdDSA).unwrap());
    let input = signing_input(&key, &uri);
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

    group.finish();
}

criterion_group!(benches, dpop);
criterion_main!(benches);
