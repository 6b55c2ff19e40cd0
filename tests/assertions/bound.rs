//! DPoP-bound tokens through the layer (RFC 9449; ARCHITECTURE.md, "DPoP"): a proof on every
//! auth call and request, `Authorization: DPoP`, nonces from the authorization server (the auth
//! call sent again in the same attempt) and from the resource (the request sent again, free of
//! the replay budget), against the emulation's strict verifier; and the edges: a `DPoP` token
//! answer without a key, a challenge without a nonce, a relative URI, stored sessions bound to
//! another key.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt};
use tower_token_auth::jose::{Algorithm, DpopKey, SigningKey};
use tower_token_auth::provider::oauth2;
use tower_token_auth::store::{MemoryStore, TokenStore};
use tower_token_auth::{AuthLayer, AuthService, ErrorKind, MetricsSnapshot};
use tower_token_auth_emulation::{
    Api, Config, Dpop, DpopNonces, Emulation, FaultKind, OAuthExtensions, Stats,
};

use crate::support::emulated::{client, get_concurrently, HttpClient};
use crate::support::{self as mock, auth_error, AuthServer, Fault, TestProvider};

/// The strict OAuth2 emulation demanding DPoP on every call, with nonces at both ends when
/// `nonces`.
async fn start(nonces: bool) -> Emulation {
    let config = Config {
        fault_seed: Some(7),
        extensions: OAuthExtensions {
            dpop: Some(Dpop {
                required: true,
                nonces: nonces.then(|| DpopNonces {
                    grace: Duration::ZERO,
                    ..DpopNonces::default()
                }),
                ..Dpop::default()
            }),
            ..OAuthExtensions::default()
        },
        ..Config::default()
    };
    Emulation::start(Api::OAuth2, config).await.unwrap()
}

fn dpop_key(alg: Algorithm) -> DpopKey {
    DpopKey::new(SigningKey::generate(alg).unwrap())
}

fn builder(emulation: &Emulation, key: &DpopKey) -> tower_token_auth::AuthLayerBuilder {
    let c = emulation.config();
    let provider =
        oauth2::Builder::client_credentials(&emulation.base_url(), &c.client_id, &*c.client_secret)
            .build()
            .unwrap();
    let key = key.clone();
    AuthLayer::builder(provider).with_policy(move |p| p.dpop = Some(key))
}

async fn get(svc: &AuthService<HttpClient>, emulation: &Emulation) -> StatusCode {
    let request = Request::get(emulation.resource_url())
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = svc.clone().oneshot(request).await.unwrap();
    let status = response.status();
    response.into_body().collect().await.unwrap();
    status
}

fn no_violations(emulation: &Emulation) {
    assert_eq!(emulation.violation_reasons(), Vec::new());
    assert_eq!(emulation.stats().violations, 0);
}

/// Both ends demand nonces: the first login meets one challenge and is sent again in the same
/// attempt; the first request meets one and is sent again free of the replay budget; every
/// later request carries the resource's nonce. ES256 and EdDSA.
#[tokio::test]
async fn nonces_at_both_ends_cost_one_retry_each() {
    for alg in [Algorithm::ES256, Algorithm::EdDSA] {
        let emulation = start(true).await;
        let layer = builder(&emulation, &dpop_key(alg)).build(client());
        let svc = layer.layer(client());
        for _ in 0..20 {
            assert_eq!(get(&svc, &emulation).await, StatusCode::OK, "{alg:?}");
        }
        let s: Stats = emulation.stats();
        assert_eq!(
            (s.logins, s.resource_ok, s.dpop_nonce_challenges),
            (1, 20, 2)
        );
        // Proofs accepted: the login's second send, and the 20 requests' last sends (the
        // challenged ones are answered with the challenge instead).
        assert_eq!(s.dpop_proofs, 1 + 20, "{alg:?}");
        let m: MetricsSnapshot = layer.handle().metrics();
        assert_eq!((m.logins, m.dpop_nonce_retries, m.replays), (1, 2, 0));
        assert_eq!(m.auth_failures, 0);
        no_violations(&emulation);
        let token = layer.handle().current().unwrap();
        assert!(token.header_value().to_str().unwrap().starts_with("DPoP "));
        assert!(token.header_value().to_str().unwrap().starts_with("DPoP "));
    }
}

/// A nonce rotated with no grace: the next request meets a challenge and is sent again with
/// the new nonce; a token revoked early is renewed (a login: client credentials have no
/// refresh token), with a proof and the token endpoint's rotated nonce, and the request
/// replayed, charged as a replay. The token endpoint and the resource share an origin and keep
/// nonces of their own.
#[tokio::test]
async fn rotated_nonces_and_revoked_tokens() {
    let emulation = start(true).await;
    let layer = builder(&emulation, &dpop_key(Algorithm::ES256)).build(client());
    let svc = layer.layer(client());
    assert_eq!(get(&svc, &emulation).await, StatusCode::OK);
    emulation.rotate_dpop_nonces();
    assert_eq!(get(&svc, &emulation).await, StatusCode::OK);
    emulation.revoke_access_tokens();
    assert_eq!(get(&svc, &emulation).await, StatusCode::OK);
    let s = emulation.stats();
    // Challenges: login, first request, the rotated resource nonce, the rotated token
    // endpoint nonce at the second login.
    assert_eq!((s.logins, s.refreshes, s.dpop_nonce_challenges), (2, 0, 4));
    assert_eq!(s.resource_ok, 3);
    let m = layer.handle().metrics();
    assert_eq!((m.dpop_nonce_retries, m.replays, m.logins), (4, 1, 2));
    no_violations(&emulation);
}

/// Without nonces: one proof per call and request, no retries; concurrent requests share one
/// login.
#[tokio::test]
async fn without_nonces_every_request_carries_a_proof() {
    let emulation = start(false).await;
    let layer = builder(&emulation, &dpop_key(Algorithm::EdDSA)).build(client());
    let svc = layer.layer(client());
    let statuses = get_concurrently(&svc, &emulation, 50).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    let s = emulation.stats();
    assert_eq!((s.logins, s.resource_ok, s.dpop_proofs), (1, 50, 51));
    assert_eq!(s.dpop_nonce_challenges, 0);
    assert_eq!(layer.handle().metrics().dpop_nonce_retries, 0);
    no_violations(&emulation);
}

/// Under 0.2 % early revocation and 30 % token-endpoint faults, with nonces at both ends: every
/// request served, no violation, no proof sent twice.
#[tokio::test]
async fn under_faults_and_early_revocation() {
    let emulation = start(true).await;
    emulation.set_revocation_rate(0.002);
    emulation.set_fault_rate(
        0.3,
        &[
            FaultKind::InternalError,
            FaultKind::Unavailable,
            FaultKind::Reset,
        ],
    );
    let layer = builder(&emulation, &dpop_key(Algorithm::ES256))
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .build(client());
    let svc = layer.layer(client());
    let mut ok = 0;
    for _ in 0..400 {
        ok += u32::from(get(&svc, &emulation).await == StatusCode::OK);
    }
    assert_eq!(ok, 400);
    let s = emulation.stats();
    assert_eq!(s.resource_ok, 400);
    no_violations(&emulation);
}

/// A `DPoP` token answer to a layer without a key is refused as a `token_type` it does not
/// send; a nonce challenge that carries no nonce is a clear error, retried as an outage.
#[tokio::test(start_paused = true)]
async fn a_dpop_answer_without_a_key_and_a_challenge_without_a_nonce() {
    let server = AuthServer::new(300, Duration::ZERO);
    server.set_fault(Some(Fault::Reply(
        StatusCode::OK,
        "application/json",
        Bytes::from_static(br#"{"access_token":"at-1","token_type":"DPoP","expires_in":300}"#),
    )));
    let layer = mock::paused_layer(&server, TestProvider::new());
    let err = mock::send(&mock::service(&server, &layer))
        .await
        .unwrap_err();
    assert_eq!(auth_error(&err).kind(), ErrorKind::TokenType);

    let server = AuthServer::new(300, Duration::ZERO);
    server.set_fault(Some(Fault::Reply(
        StatusCode::BAD_REQUEST,
        "application/json",
        Bytes::from_static(br#"{"error":"use_dpop_nonce"}"#),
    )));
    let key = dpop_key(Algorithm::ES256);
    let layer = AuthLayer::builder(TestProvider::new())
        .with_policy(move |p| p.dpop = Some(key))
        .clock(tower_token_auth::Clock::tokio())
        .max_wait(Duration::from_secs(2))
        .build(server.transport());
    let err = mock::send(&mock::service(&server, &layer))
        .await
        .unwrap_err();
    let err = auth_error(&err);
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let shown = format!("{err}");
    assert!(
        shown.contains("without sending one in DPoP-Nonce"),
        "{shown}"
    );
    assert_eq!(layer.handle().metrics().dpop_nonce_retries, 0);
}

/// A proof names an absolute URI: a request whose URI is a path alone fails with a
/// configuration error, and the layer goes on serving others.
#[tokio::test]
async fn a_relative_uri_is_a_config_error() {
    let emulation = start(false).await;
    let layer = builder(&emulation, &dpop_key(Algorithm::ES256)).build(client());
    let svc = layer.layer(client());
    assert_eq!(get(&svc, &emulation).await, StatusCode::OK);
    let relative = Request::get("/resource").body(Full::default()).unwrap();
    let err = svc.clone().oneshot(relative).await.unwrap_err();
    let err = auth_error(&err);
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(format!("{err}").contains("absolute URI"), "{err}");
    assert_eq!(get(&svc, &emulation).await, StatusCode::OK);
    no_violations(&emulation);
}

/// A stored session records its key's thumbprint: a layer with the same key adopts it, a layer
/// with another key logs in for itself (and never sends the other's token).
#[tokio::test]
async fn stored_sessions_are_adopted_only_with_their_key() {
    let emulation = start(false).await;
    let store = Arc::new(MemoryStore::default());
    let key = dpop_key(Algorithm::ES256);
    let first = builder(&emulation, &key)
        .store(Arc::clone(&store), "api")
        .build(client());
    assert_eq!(
        get(&first.layer(client()), &emulation).await,
        StatusCode::OK
    );
    let session = store.load("api").await.unwrap().unwrap();
    let json = String::from_utf8(session.to_json("api")).unwrap();
    assert!(
        json.contains(&format!(r#""dpop_jkt":"{}""#, key.thumbprint())),
        "{json}"
    );

    let same_key = builder(&emulation, &key)
        .store(Arc::clone(&store), "api")
        .build(client());
    assert_eq!(
        get(&same_key.layer(client()), &emulation).await,
        StatusCode::OK
    );
    assert_eq!(same_key.handle().metrics().adoptions, 1);
    assert_eq!(emulation.stats().logins, 1);

    let other = dpop_key(Algorithm::ES256);
    let other_key = builder(&emulation, &other)
        .store(Arc::clone(&store), "api")
        .build(client());
    assert_eq!(
        get(&other_key.layer(client()), &emulation).await,
        StatusCode::OK
    );
    let m = other_key.handle().metrics();
    assert_eq!((m.adoptions, m.logins), (0, 1));
    assert_eq!(emulation.stats().logins, 2);
    no_violations(&emulation);
}

/// `private_key_jwt` with DPoP and nonces, on the password grant: the login challenged for a
/// nonce is built again with a fresh assertion (the assertion source is asked once per send:
/// a re-sent assertion is a replay the server refuses); a token revoked early is refreshed with
/// a proof and a third assertion. The assertions are signed by the test with `jsonwebtoken`.
#[tokio::test]
async fn assertions_are_fresh_for_every_send_and_refreshes_carry_proofs() {
    use std::sync::Mutex;
    use std::time::{SystemTime, UNIX_EPOCH};
    use tower_token_auth::provider::oauth2::ClientAssertion;
    use tower_token_auth::Secret;
    use tower_token_auth_emulation::{ClientAuth, SigningAlg};

    let pem = crate::key_file("es256.pem");
    let registered = SigningKey::from_pkcs8_pem(&pem, Algorithm::ES256).unwrap();
    let mut emulation_config = Config {
        extensions: OAuthExtensions {
            client_auth: ClientAuth::PrivateKeyJwt {
                jwk: registered.public_jwk(),
                alg: SigningAlg::ES256,
            },
            ..OAuthExtensions::default()
        },
        ..Config::default()
    };
    emulation_config.extensions.dpop = Some(Dpop {
        required: true,
        nonces: Some(DpopNonces::default()),
        ..Dpop::default()
    });
    let emulation = Emulation::start(Api::OAuth2, emulation_config)
        .await
        .unwrap();
    let c = emulation.config().clone();
    let token_url = emulation.base_url();
    let jtis: Arc<Mutex<Vec<String>>> = Arc::default();
    let signing = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
    let (client_id, aud, seen) = (c.client_id.clone(), token_url.clone(), Arc::clone(&jtis));
    let assertion = ClientAssertion::from_fn(&c.client_id, move || {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let jti = format!("jti-{}", fastrand::u64(..));
        seen.lock().unwrap().push(jti.clone());
        let claims = serde_json::json!({
            "iss": client_id, "sub": client_id, "aud": aud, "jti": jti, "iat": iat, "exp": iat + 60,
        });
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        Ok(Secret::from(
            jsonwebtoken::encode(&header, &claims, &signing).unwrap(),
        ))
    });
    let provider = oauth2::Builder::password(&token_url, &c.username, &*c.password)
        .build_with_assertion(assertion)
        .unwrap();
    let key = dpop_key(Algorithm::EdDSA);
    let layer = AuthLayer::builder(provider)
        .with_policy(move |p| p.dpop = Some(key))
        .build(client());
    let svc = layer.layer(client());
    assert_eq!(get(&svc, &emulation).await, StatusCode::OK);
    emulation.revoke_access_tokens();
    assert_eq!(get(&svc, &emulation).await, StatusCode::OK);
    let s = emulation.stats();
    // The challenged login's assertion is never checked (DPoP first): two verified.
    assert_eq!((s.logins, s.refreshes, s.client_assertions), (1, 1, 2));
    let jtis = jtis.lock().unwrap().clone();
    assert_eq!(jtis.len(), 3, "one assertion per send: {jtis:?}");
    assert!(jtis[0] != jtis[1] && jtis[1] != jtis[2] && jtis[0] != jtis[2]);
    // The login's and the first request's challenges; the nonces did not rotate.
    assert_eq!(s.dpop_nonce_challenges, 2);
    let m = layer.handle().metrics();
    assert_eq!(
        (m.logins, m.refreshes, m.replays, m.dpop_nonce_retries),
        (1, 1, 1, 2)
    );
    no_violations(&emulation);
}

/// The reqwest middleware with DPoP and nonces at both ends: the same proofs, challenges and
/// replays as the tower layer.
#[cfg(feature = "reqwest")]
#[tokio::test]
async fn through_reqwest() {
    use tower_token_auth::reqwest::AuthMiddleware;

    let emulation = start(true).await;
    let layer = builder(&emulation, &dpop_key(Algorithm::ES256)).build(client());
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::new(layer.handle()))
        .build();
    let get = || async {
        let response = http.get(emulation.resource_url()).send().await.unwrap();
        response.status()
    };
    for _ in 0..5 {
        assert_eq!(get().await, StatusCode::OK);
    }
    emulation.rotate_dpop_nonces();
    assert_eq!(get().await, StatusCode::OK);
    emulation.revoke_access_tokens();
    assert_eq!(get().await, StatusCode::OK);
    let s = emulation.stats();
    assert_eq!(
        (s.logins, s.resource_ok, s.dpop_nonce_challenges),
        (2, 7, 4)
    );
    let m = layer.handle().metrics();
    assert_eq!((m.dpop_nonce_retries, m.replays), (4, 1));
    no_violations(&emulation);
}
