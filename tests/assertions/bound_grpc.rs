//! DPoP through the tonic adapter: a real health server whose guard verifies each call's proof
//! independently (`jsonwebtoken`, with the key in the proof's own header: `typ`, signature, the
//! key's thumbprint, `htm`, `htu` naming the call's full URL, `ath` of the token, a fresh `jti`)
//! and asks the emulation's DPoP-demanding resource whether the token is live.
#![cfg(feature = "tonic")]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use tonic::Status;
use tonic_health::pb::HealthCheckRequest;
use tower_token_auth::jose::{Algorithm, DpopKey, SigningKey};
use tower_token_auth::provider::oauth2;
use tower_token_auth::{AuthLayer, Secret};
use tower_token_auth_emulation::{Api, Config, Dpop, Emulation, OAuthExtensions};

use crate::support::emulated::{self, HttpClient};
use crate::support::grpc_guard::{health_client, serve_health, unchanged, Answered, Check};

#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    ath: Option<String>,
}

/// What the guard checks a call against, and what it saw.
#[derive(Clone)]
struct Verifier {
    key: DpopKey,
    origin: String,
    resource: String,
    client: HttpClient,
    jtis: Arc<Mutex<HashSet<String>>>,
    calls: Arc<Mutex<u32>>,
}

impl Verifier {
    /// Whether the call's token is DPoP-bound, its proof verifies for this call, and the token
    /// is live.
    async fn admits(&self, path: &str, headers: &http::HeaderMap) -> bool {
        *self.calls.lock().unwrap() += 1;
        let Some(token) = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("DPoP "))
            .map(str::to_owned)
        else {
            return false;
        };
        let Some(proof) = headers.get("dpop").and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let header = jsonwebtoken::decode_header(proof).unwrap();
        assert_eq!(header.typ.as_deref(), Some("dpop+jwt"));
        let jwk = header.jwk.expect("a proof carries its public key");
        assert_eq!(
            jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256),
            self.key.thumbprint()
        );
        let mut validation = Validation::new(header.alg);
        validation.set_required_spec_claims::<&str>(&[]);
        validation.validate_exp = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Claims>(
            proof,
            &DecodingKey::from_jwk(&jwk).unwrap(),
            &validation,
        )
        .expect("the proof verifies")
        .claims;
        assert_eq!(claims.htm, "POST");
        assert_eq!(claims.htu, format!("{}{path}", self.origin));
        // `ath` as a proof for the same token computes it (its correctness against RFC 9449's
        // example is tested in dpop.rs).
        let expected = self
            .key
            .proof(
                &Method::POST,
                &self.origin.parse::<Uri>().unwrap(),
                Some(&Secret::from(token.clone())),
                None,
            )
            .unwrap();
        let expected: Claims = jsonwebtoken::dangerous::insecure_decode(&expected)
            .unwrap()
            .claims;
        assert_eq!(claims.ath, expected.ath);
        assert!(
            self.jtis.lock().unwrap().insert(claims.jti),
            "jti sent twice"
        );
        self.live(&token).await
    }

    /// Asks the emulation's resource, with a proof of its own for that request.
    async fn live(&self, token: &str) -> bool {
        let uri: Uri = self.resource.parse().unwrap();
        let proof = self
            .key
            .proof(
                &Method::GET,
                &uri,
                Some(&Secret::from(token.to_owned())),
                None,
            )
            .unwrap();
        let request = Request::get(uri)
            .header(AUTHORIZATION, format!("DPoP {token}"))
            .header("dpop", proof)
            .body(Full::<Bytes>::default())
            .unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status();
        response.into_body().collect().await.unwrap();
        status == StatusCode::OK
    }
}

impl Check for Verifier {
    async fn check(&self, call: &Parts) -> Result<Answered, Status> {
        match self.admits(call.uri.path(), &call.headers).await {
            true => Ok(unchanged()),
            false => Err(Status::unauthenticated("token rejected")),
        }
    }
}

/// Ten health checks through `GrpcAuthLayer` with a DPoP key, the client made `with_origin` so
/// that each call's URI is absolute: one login, ten proofs verified, each for its call; then the
/// token revoked early: the call is replayed with a new token and a new proof.
#[tokio::test]
async fn grpc_calls_carry_a_proof_each() {
    let config = Config {
        extensions: OAuthExtensions {
            dpop: Some(Dpop {
                required: true,
                ..Dpop::default()
            }),
            ..OAuthExtensions::default()
        },
        ..Config::default()
    };
    let emulation = Emulation::start(Api::OAuth2, config).await.unwrap();
    let key = DpopKey::new(SigningKey::generate(Algorithm::ES256).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let verifier = Verifier {
        key: key.clone(),
        origin: origin.clone(),
        resource: emulation.resource_url(),
        client: emulated::client(),
        jtis: Arc::default(),
        calls: Arc::default(),
    };
    serve_health(listener, verifier.clone());

    let c = emulation.config();
    let provider =
        oauth2::Builder::client_credentials(&emulation.base_url(), &c.client_id, &*c.client_secret)
            .build()
            .unwrap();
    let layer = AuthLayer::builder(provider)
        .with_policy(|p| p.dpop = Some(key))
        .build(emulated::client());
    let handle = layer.handle();
    let mut health = health_client(layer, &origin).await;
    let check = HealthCheckRequest {
        service: String::new(),
    };
    for _ in 0..10 {
        health.check(check.clone()).await.unwrap();
    }
    emulation.revoke_access_tokens();
    health.check(check.clone()).await.unwrap();

    let m = handle.metrics();
    assert_eq!((m.logins, m.replays, m.auth_failures), (2, 1, 0));
    // Ten calls, the revoked one twice.
    assert_eq!(*verifier.calls.lock().unwrap(), 12);
    assert_eq!(verifier.jtis.lock().unwrap().len(), 12);
    assert_eq!(emulation.violation_reasons(), Vec::new());
}
