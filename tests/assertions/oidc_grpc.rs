//! The client authentication methods against the real provider (oidc-provider) through tonic:
//! [`GrpcAuthLayer`] on a channel to a health server (`tonic_health`) whose guard forwards each
//! call's credentials to the provider's resources, so that the provider's accounting (served,
//! refused, random revocations, violations) covers every call exactly. The guard is a gateway:
//! it asks the method's resource with the call's `Authorization` and `DPoP`, and names the call
//! (`x-forwarded-method`, `x-forwarded-uri`: the health server's URL of it), whose method and URL
//! the DPoP resource checks the proof's `htm` and `htu` against. The resource's 200 lets the
//! call through (with its `DPoP-Nonce`); its 401 is the call's `UNAUTHENTICATED`, carrying the
//! resource's `WWW-Authenticate` and `DPoP-Nonce` as metadata (the headers of a trailers-only
//! response), so that a nonce challenge reaches the layer as the resource made it.
//!
//! The runs are `oidc_faults.rs`'s: each method's load run, clean, then under faults; and the
//! short course through early revocations.
#![cfg(feature = "tonic")]

use std::sync::Arc;

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tower_token_auth::TokenHandle;

use crate::oidc_method::{clean_then_faults, server, Method};
use crate::support::emulated::{client, HttpClient};
use crate::support::grpc_guard::{health_client, serve_health, Answered, Check, Health};
use crate::support::oidc_runs::{rides_out_faults, serves_and_survives_revocations};
use crate::support::oidc_server::OidcServer;

const DPOP: HeaderName = HeaderName::from_static("dpop");
const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");
const FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");

/// What the guard asks about each call: `resource`, over `client`, for calls to the health
/// server at `origin`.
struct Gateway {
    resource: String,
    origin: String,
    client: HttpClient,
}

impl Gateway {
    /// The resource's answer about `call`: the nonce to pass on when it serves the call, else the
    /// call's `Status`.
    async fn ask(&self, call: &Parts) -> Result<Option<HeaderValue>, Status> {
        let mut request = Request::get(&self.resource)
            .header(FORWARDED_METHOD, call.method.as_str())
            .header(FORWARDED_URI, format!("{}{}", self.origin, call.uri.path()));
        for name in [AUTHORIZATION, DPOP] {
            if let Some(value) = call.headers.get(&name) {
                request = request.header(name, value);
            }
        }
        let request = request.body(Full::default()).unwrap();
        let response = self
            .client
            .request(request)
            .await
            .expect("the resource answers");
        let (answer, body) = response.into_parts();
        body.collect().await.expect("the resource's body");
        match answer.status {
            StatusCode::OK => Ok(answer.headers.get(DPOP_NONCE).cloned()),
            StatusCode::UNAUTHORIZED => {
                let mut passed = HeaderMap::new();
                for name in [WWW_AUTHENTICATE, DPOP_NONCE] {
                    for value in answer.headers.get_all(&name) {
                        passed.append(name.clone(), value.clone());
                    }
                }
                let metadata = MetadataMap::from_headers(passed);
                Err(Status::with_metadata(
                    Code::Unauthenticated,
                    "the resource refused the token",
                    metadata,
                ))
            }
            other => Err(Status::internal(format!("the resource answered {other}"))),
        }
    }
}

impl Check for Arc<Gateway> {
    /// A call goes on only if the gateway's resource serves it, its answer with the resource's
    /// nonce.
    async fn check(&self, call: &Parts) -> Result<Answered, Status> {
        let nonce = self.ask(call).await?;
        Ok(Box::new(move |mut response| {
            if let Some(nonce) = nonce {
                response.headers_mut().insert(DPOP_NONCE, nonce);
            }
            response
        }))
    }
}

/// A health server on a free loopback port, its guard asking `resource`: its origin.
async fn health_server(resource: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let gateway = Arc::new(Gateway {
        resource,
        origin: origin.clone(),
        client: client(),
    });
    serve_health(listener, gateway);
    origin
}

/// One health check: 200 when served, 401 for `UNAUTHENTICATED`; any other answer fails the
/// test.
async fn check(mut health: Health) -> StatusCode {
    let request = HealthCheckRequest {
        service: String::new(),
    };
    match health.check(request).await {
        Ok(reply) => {
            assert_eq!(reply.into_inner().status(), ServingStatus::Serving);
            StatusCode::OK
        }
        Err(status) if status.code() == Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Err(status) => panic!("{status:?}"),
    }
}

/// `method`'s layer against a provider of its own (under faults or clean), and a health client
/// through it to a server guarded by the method's resource.
async fn setup(method: Method, faults: bool) -> (Arc<OidcServer>, TokenHandle, Health) {
    let server = server(faults);
    let layer = method.layer(&server);
    let handle = layer.handle();
    let origin = health_server(method.resource(&server)).await;
    (server, handle, health_client(layer, &origin).await)
}

/// One load run of `method` through tonic, under faults or clean.
async fn run(method: Method, faults: bool) {
    let (server, handle, health) = setup(method, faults).await;
    let get = move || check(health.clone());
    let (id, dpop) = (method.client(), method.dpop());
    rides_out_faults(&server, id, &handle, get, faults, dpop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_basic_through_tonic_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::SecretBasic, run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_through_tonic_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::PrivateKeyJwt, run).await;
}

/// DPoP-bound tokens over gRPC: each call's proof names the health server's URL of it, and each
/// of the resource's nonce challenges (the health server's origin has no nonce until the first
/// answer gives one) is answered by the layer as over HTTP: the call sent again, with the nonce,
/// free of the replay budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_through_tonic_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::Dpop, run).await;
}

/// `private_key_jwt` through tonic, the short course: an early revocation refused once and
/// replayed, the revocation endpoint, 35 calls served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_through_tonic_against_oidc_provider() {
    let method = Method::PrivateKeyJwt;
    let (server, handle, health) = setup(method, false).await;
    let get = || check(health.clone());
    serves_and_survives_revocations(&server, method.client(), &handle, get).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_exchange_through_tonic_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::Exchange, run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_jwt_through_tonic_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::SecretJwt, run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_post_through_tonic_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::SecretPost, run).await;
}
