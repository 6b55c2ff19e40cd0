//! Each modern method end to end under faults: `client_secret_post`, `client_secret_jwt`,
//! `private_key_jwt` (ES256 and EdDSA), discovery, token exchange and revocation. Each runs
//! [`REQUESTS`] requests through the tower layer against the strict emulation, clean and then
//! with 0.2 % early revocation and 30 % transient token endpoint faults (a fixed seed), with
//! every access token revoked every [`REVOKE_EVERY`] requests besides, so that renewals (and the
//! faults they meet) come in every run: every request is served, the emulation counts no
//! violation (an assertion `jti` seen before, a refresh token presented twice, a revoked token
//! used), and each method's own accounting holds exactly.
//!
//! A method is one [`Method`] row: the emulation it needs, the layer against it, and its
//! accounting. DPoP becomes one more row.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::StatusCode;
use tower::Layer;
use tower_token_auth::jose::Algorithm;
use tower_token_auth::provider::oauth2::{self, ClientAssertion};
use tower_token_auth::{AuthLayer, Secret};
use tower_token_auth_emulation::{
    Api, ClientAuth, Config, Discovery, Emulation, FaultKind, OAuthExtensions, Stats, TokenExchange,
};

use crate::emulated::signing_alg;
use crate::pem_key;
use crate::support::emulated::{client, get, Authed};

/// Requests per run.
const REQUESTS: u64 = 400;
/// Requests in flight at once.
const WORKERS: u64 = 16;
/// Every access token dies before every this many requests.
const REVOKE_EVERY: u64 = 25;
/// The random faults' and revocations' seed. The token calls of one flight come one at a time,
/// so a run meets the same faults every time; and each of the [`REQUESTS`] 200s draws once for
/// its token's revocation, so the same two die: those of the 99th and the 330th answers.
const SEED: u64 = 13;
/// The tokens random revocation kills in a run under faults, by [`SEED`].
const RANDOM_REVOCATIONS: u64 = 2;
/// The transient faults, which leave the server's state as it was: the layer retries them in
/// the flight while requests wait.
const TRANSIENT: [FaultKind; 4] = [
    FaultKind::InternalError,
    FaultKind::Unavailable,
    FaultKind::Reset,
    FaultKind::ApiError,
];
/// A `client_secret_jwt` secret: HS256 wants 32 bytes at least.
const LONG_SECRET: &str = "an-emulated-client-secret-of-40-bytes-xx";
/// The subject token the token exchange trades, which the emulation trusts.
const SUBJECT: &str = "sa-token-1";
/// The audience the exchanged token is for, which the resource requires.
const AUDIENCE: &str = "billing";

/// Builds a layer against the emulation; the counter is the method's own (subject tokens
/// handed out, for the token exchange).
type LayerFn = Box<dyn Fn(&Emulation, Arc<AtomicU64>) -> AuthLayer + Send + Sync>;
/// Checks the emulation's counts and the method's counter after a run.
type AccountingFn = Box<dyn Fn(&Stats, u64) + Send + Sync>;

/// One method: the emulation it needs, the layer against it, and what its counts must be.
struct Method {
    name: &'static str,
    extensions: OAuthExtensions,
    client_secret: &'static str,
    layer: LayerFn,
    /// Revoke the session (`TokenHandle::revoke`) halfway through each run.
    revoke_midway: bool,
    /// The method's exact accounting, clean and under faults.
    accounting: AccountingFn,
}

/// The password grant of the emulation's user; the client is the method's to add.
fn password_grant(emulation: &Emulation, token_url: &str) -> oauth2::Builder {
    let c = emulation.config();
    oauth2::Builder::password(token_url, &c.username, c.password.clone())
}

/// A confidential client with the emulation's id and secret.
fn confidential(builder: oauth2::Builder, emulation: &Emulation) -> oauth2::Builder {
    let c = emulation.config();
    builder.confidential_client(&c.client_id, c.client_secret.clone())
}

/// The password grant logs in once: renewals are refreshes, faulted ones retried as refreshes.
fn one_login(stats: &Stats) {
    assert_eq!(stats.logins, 1, "{stats:?}");
}

/// Every login and refresh the server processed verified one assertion of its own.
fn one_assertion_per_call(stats: &Stats) {
    assert_eq!(
        stats.client_assertions,
        stats.logins + stats.refreshes,
        "{stats:?}"
    );
}

fn client_secret_post() -> Method {
    Method {
        name: "client_secret_post",
        extensions: OAuthExtensions {
            client_auth: ClientAuth::SecretPost,
            ..OAuthExtensions::default()
        },
        client_secret: "client-secret",
        layer: Box::new(|emulation, _| {
            let builder = password_grant(emulation, &emulation.base_url());
            let provider = confidential(builder, emulation)
                .client_auth(oauth2::ClientAuth::SecretPost)
                .build()
                .unwrap();
            AuthLayer::new(provider, client())
        }),
        revoke_midway: false,
        accounting: Box::new(|stats, _| {
            one_login(stats);
            assert_eq!(stats.client_assertions, 0, "{stats:?}");
        }),
    }
}

fn client_secret_jwt() -> Method {
    Method {
        name: "client_secret_jwt",
        extensions: OAuthExtensions {
            client_auth: ClientAuth::SecretJwt,
            ..OAuthExtensions::default()
        },
        client_secret: LONG_SECRET,
        layer: Box::new(|emulation, _| {
            let assertion =
                ClientAssertion::client_secret_jwt(&emulation.config().client_id, LONG_SECRET);
            let provider = password_grant(emulation, &emulation.base_url())
                .build_with_assertion(assertion)
                .unwrap();
            AuthLayer::new(provider, client())
        }),
        revoke_midway: false,
        accounting: Box::new(|stats, _| {
            one_login(stats);
            one_assertion_per_call(stats);
        }),
    }
}

/// `private_key_jwt` with the test key for `alg`, for the client credentials grant: every
/// renewal is a login with an assertion.
fn private_key_jwt(alg: Algorithm) -> Method {
    let key = move || pem_key(alg).with_kid("faults-1");
    Method {
        name: match alg {
            Algorithm::ES256 => "private_key_jwt ES256",
            _ => "private_key_jwt EdDSA",
        },
        extensions: OAuthExtensions {
            client_auth: ClientAuth::PrivateKeyJwt {
                jwk: key().public_jwk(),
                alg: signing_alg(alg),
            },
            ..OAuthExtensions::default()
        },
        client_secret: "client-secret",
        layer: Box::new(move |emulation, _| {
            let assertion = ClientAssertion::private_key_jwt(&emulation.config().client_id, key());
            let provider = oauth2::Builder::client_credentials_grant(&emulation.base_url())
                .build_with_assertion(assertion)
                .unwrap();
            AuthLayer::new(provider, client())
        }),
        revoke_midway: false,
        accounting: Box::new(|stats, _| {
            assert_eq!(stats.refreshes, 0, "{stats:?}");
            one_assertion_per_call(stats);
        }),
    }
}

/// DPoP (RFC 9449) with nonces at both ends, on the password grant with `private_key_jwt`:
/// every login and refresh proves the key (its nonce challenges answered in the same attempt,
/// with a fresh assertion), every request carries a proof with the resource's nonce.
fn dpop(alg: Algorithm) -> Method {
    use tower_token_auth::jose::{DpopKey, SigningKey};
    use tower_token_auth_emulation::{Dpop, DpopNonces};

    let key = move || pem_key(Algorithm::ES256).with_kid("faults-1");
    Method {
        name: match alg {
            Algorithm::ES256 => "DPoP ES256",
            _ => "DPoP EdDSA",
        },
        extensions: OAuthExtensions {
            client_auth: ClientAuth::PrivateKeyJwt {
                jwk: key().public_jwk(),
                alg: signing_alg(Algorithm::ES256),
            },
            dpop: Some(Dpop {
                required: true,
                nonces: Some(DpopNonces::default()),
                ..Dpop::default()
            }),
            ..OAuthExtensions::default()
        },
        client_secret: "client-secret",
        layer: Box::new(move |emulation, _| {
            let assertion = ClientAssertion::private_key_jwt(&emulation.config().client_id, key());
            let provider = password_grant(emulation, &emulation.base_url())
                .build_with_assertion(assertion)
                .unwrap();
            let dpop = DpopKey::new(SigningKey::generate(alg).unwrap());
            AuthLayer::builder(provider)
                .with_policy(move |p| p.dpop = Some(dpop))
                .build(client())
        }),
        revoke_midway: false,
        accounting: Box::new(|stats, _| {
            one_login(stats);
            one_assertion_per_call(stats);
            // The token endpoint's first challenge, and the resource's first (then its nonce
            // is known: the nonces do not rotate within a run).
            assert!(stats.dpop_nonce_challenges >= 2, "{stats:?}");
            assert!(
                stats.dpop_proofs >= REQUESTS + stats.logins + stats.refreshes,
                "{stats:?}"
            );
        }),
    }
}

/// The endpoints from the issuer's metadata: read once, before the first login, faults or not
/// (the token endpoint's faults are 5xx and resets, never the 404 that sends the layer back to
/// the metadata).
fn discovery() -> Method {
    Method {
        name: "discovery",
        extensions: OAuthExtensions {
            client_auth: ClientAuth::SecretBasic,
            discovery: Some(Discovery::default()),
            ..OAuthExtensions::default()
        },
        client_secret: "client-secret",
        layer: Box::new(|emulation, _| {
            let issuer = emulation.issuer();
            let builder = password_grant(emulation, &issuer).discover(&issuer);
            let provider = confidential(builder, emulation).build().unwrap();
            AuthLayer::new(provider, client())
        }),
        revoke_midway: false,
        accounting: Box::new(|stats, _| {
            one_login(stats);
            assert_eq!(stats.discovery_fetches, 1, "{stats:?}");
        }),
    }
}

/// Token exchange of a subject token from a function, for the audience the resource requires:
/// the function is asked once for every exchange sent, faulted ones included.
fn token_exchange() -> Method {
    Method {
        name: "token exchange",
        extensions: OAuthExtensions {
            token_exchange: Some(TokenExchange {
                trusted_subject_tokens: vec![(
                    SUBJECT.to_owned(),
                    "system:serviceaccount:ns:orders".to_owned(),
                )],
            }),
            resource_audience: Some(AUDIENCE.to_owned()),
            ..OAuthExtensions::default()
        },
        client_secret: "client-secret",
        layer: Box::new(|emulation, subjects| {
            let builder = oauth2::Builder::token_exchange(
                &emulation.base_url(),
                "urn:ietf:params:oauth:token-type:jwt",
                move || {
                    subjects.fetch_add(1, Ordering::Relaxed);
                    Ok(Secret::from(SUBJECT))
                },
            );
            let provider = confidential(builder, emulation)
                .audience(AUDIENCE)
                .build()
                .unwrap();
            AuthLayer::new(provider, client())
        }),
        revoke_midway: false,
        accounting: Box::new(|stats, subjects| {
            assert_eq!((stats.logins, stats.refreshes), (0, 0), "{stats:?}");
            assert_eq!(subjects, stats.token_exchanges + stats.faults, "{stats:?}");
        }),
    }
}

/// `TokenHandle::revoke` halfway: both tokens revoked at the endpoint (which meets no faults),
/// then the next request logs in again, and no revoked token is ever used.
fn revocation() -> Method {
    Method {
        name: "revocation",
        extensions: OAuthExtensions {
            revocation: true,
            ..OAuthExtensions::default()
        },
        client_secret: "client-secret",
        layer: Box::new(|emulation, _| {
            let builder = password_grant(emulation, &emulation.base_url())
                .revocation_url(&format!("{}/oauth/revoke", emulation.issuer()));
            let provider = confidential(builder, emulation).build().unwrap();
            AuthLayer::new(provider, client())
        }),
        revoke_midway: true,
        accounting: Box::new(|stats, _| {
            assert_eq!(
                (stats.revocation_requests, stats.logins),
                (2, 2),
                "{stats:?}"
            );
            assert_eq!(stats.revoked_token_uses, 0, "{stats:?}");
        }),
    }
}

/// What the requests of a run got: 200s, and everything else described.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    other: Mutex<Vec<String>>,
}

/// Sends the requests numbered `range` through `svc`, [`WORKERS`] at a time, revoking every
/// access token before every [`REVOKE_EVERY`]th.
async fn send(svc: &Authed, emulation: &Arc<Emulation>, range: Range<u64>, tally: &Arc<Tally>) {
    let next = Arc::new(AtomicU64::new(range.start));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (svc, emulation) = (svc.clone(), Arc::clone(emulation));
        let (next, tally, end) = (Arc::clone(&next), Arc::clone(tally), range.end);
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= end {
                    break;
                }
                if n % REVOKE_EVERY == REVOKE_EVERY - 1 {
                    emulation.revoke_access_tokens();
                }
                match get(&svc, &emulation).await {
                    Ok(StatusCode::OK) => {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => tally.other.lock().unwrap().push(format!("{other:?}")),
                }
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.unwrap();
    }
}

/// One run of `method`: every request served, no violation, the method's accounting; under
/// faults, faults met.
async fn run(method: &Method, faults: bool) {
    let started = Instant::now();
    let config = Config {
        extensions: method.extensions.clone(),
        client_secret: method.client_secret.to_owned(),
        fault_seed: Some(SEED),
        ..Config::default()
    };
    let emulation = Arc::new(Emulation::start(Api::OAuth2, config).await.unwrap());
    if faults {
        emulation.set_revocation_rate(0.002);
        emulation.set_fault_rate(0.3, &TRANSIENT);
    }
    let counter = Arc::new(AtomicU64::new(0));
    let layer = (method.layer)(&emulation, Arc::clone(&counter));
    let svc = layer.layer(client());
    let tally = Arc::new(Tally::default());
    send(&svc, &emulation, 0..REQUESTS / 2, &tally).await;
    if method.revoke_midway {
        layer.handle().revoke().await.unwrap();
    }
    send(&svc, &emulation, REQUESTS / 2..REQUESTS, &tally).await;

    let what = format!(
        "{} {}",
        method.name,
        if faults { "under faults" } else { "clean" }
    );
    let other = tally.other.lock().unwrap().clone();
    assert_eq!(
        tally.ok.load(Ordering::Relaxed),
        REQUESTS,
        "{what}: {other:?}"
    );
    let stats = emulation.stats();
    assert_eq!(
        stats.violations,
        0,
        "{what}: {:?}",
        emulation.violation_reasons()
    );
    assert_eq!(
        (stats.rejected_logins, stats.rejected_refreshes),
        (0, 0),
        "{what}: {stats:?}"
    );
    let revoked = emulation.revocations();
    match faults {
        true => {
            assert!(stats.faults > 0, "{what}: no fault met: {stats:?}");
            assert_eq!(revoked, RANDOM_REVOCATIONS, "{what}");
        }
        false => assert_eq!((stats.faults, revoked), (0, 0), "{what}"),
    }
    (method.accounting)(&stats, counter.load(Ordering::Relaxed));
    eprintln!(
        "{what}: {REQUESTS} served in {:?}; {} faults, {} random revocations, {stats:?}",
        started.elapsed(),
        stats.faults,
        revoked
    );
}

/// A clean run, then one under faults.
async fn clean_then_faults(method: Method) {
    run(&method, false).await;
    run(&method, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_post_rides_out_faults() {
    clean_then_faults(client_secret_post()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_jwt_rides_out_faults() {
    clean_then_faults(client_secret_jwt()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_es256_rides_out_faults() {
    clean_then_faults(private_key_jwt(Algorithm::ES256)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_eddsa_rides_out_faults() {
    clean_then_faults(private_key_jwt(Algorithm::EdDSA)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_rides_out_faults() {
    clean_then_faults(discovery()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_exchange_rides_out_faults() {
    clean_then_faults(token_exchange()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_mid_run_rides_out_faults() {
    clean_then_faults(revocation()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_es256_rides_out_faults() {
    clean_then_faults(dpop(Algorithm::ES256)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_eddsa_rides_out_faults() {
    clean_then_faults(dpop(Algorithm::EdDSA)).await;
}
