//! The client authentication methods against the real provider (oidc-provider) under load and
//! faults, as `faults.rs` runs them against the emulation: each method's load run
//! (`support::oidc_runs::rides_out_faults`) through the tower layer, clean, then with 30 % of
//! the token endpoint's calls answered 503 and 0.2 % of the resource's answers followed by the
//! destruction of the token served, every live token destroyed every 25 requests in both runs.
//! A method is one [`Method`]: the client the provider registered for it and the layer. (The
//! same runs through reqwest: `oidc_reqwest.rs`; through tonic: `oidc_grpc.rs`.)

use tower::Layer;

use crate::oidc::get;
use crate::oidc_method::{clean_then_faults, server, Method};
use crate::support::emulated::client;
use crate::support::oidc_runs::rides_out_faults;

/// One load run of `method` against a provider of its own, under faults or clean.
async fn run(method: Method, faults: bool) {
    let server = server(faults);
    let layer = method.layer(&server);
    let svc = layer.layer(client());
    let url = method.resource(&server);
    let get = move || {
        let (svc, url) = (svc.clone(), url.clone());
        async move { get(&svc, &url).await }
    };
    let handle = layer.handle();
    let (id, dpop) = (method.client(), method.dpop());
    rides_out_faults(&server, id, &handle, get, faults, dpop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_basic_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::SecretBasic, run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_jwt_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::SecretJwt, run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::PrivateKeyJwt, run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::Dpop, run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_exchange_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::Exchange, run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_post_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::SecretPost, run).await;
}
