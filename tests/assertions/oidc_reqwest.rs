//! The client authentication methods against the real provider (oidc-provider) through the
//! reqwest adapter: the auth calls by a [`ReqwestTransport`], the requests by [`AuthMiddleware`]
//! on the layer's session; each method's load run (`oidc_faults.rs`'s), clean, then under
//! faults.
//!
//! [`ReqwestTransport`]: tower_token_auth::reqwest::ReqwestTransport
//! [`AuthMiddleware`]: tower_token_auth::reqwest::AuthMiddleware
#![cfg(feature = "reqwest")]

use reqwest_middleware::ClientWithMiddleware;
use tower_token_auth::reqwest::{AuthMiddleware, ReqwestTransport};
use tower_token_auth::AuthLayer;

use crate::oidc_method::{clean_then_faults, server, Method};
use crate::support::oidc_runs::rides_out_faults;
use crate::support::reqwest_get as get;

/// A reqwest client whose requests carry `layer`'s tokens.
pub(crate) fn middleware_client(layer: &AuthLayer) -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::new(layer.handle()))
        .build()
}

/// One load run of `method` through reqwest, under faults or clean.
async fn run(method: Method, faults: bool) {
    let server = server(faults);
    let transport = ReqwestTransport::new(reqwest::Client::builder()).unwrap();
    let layer = method.builder(&server).build(transport);
    let client = middleware_client(&layer);
    let url = method.resource(&server);
    let get = move || {
        let (client, url) = (client.clone(), url.clone());
        async move { get(&client, &url).await }
    };
    let handle = layer.handle();
    let (id, dpop) = (method.client(), method.dpop());
    rides_out_faults(&server, id, &handle, get, faults, dpop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_through_reqwest_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::PrivateKeyJwt, run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_through_reqwest_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::Dpop, run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_exchange_through_reqwest_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::Exchange, run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_basic_through_reqwest_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::SecretBasic, run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_jwt_through_reqwest_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::SecretJwt, run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_post_through_reqwest_rides_out_faults_against_oidc_provider() {
    clean_then_faults(Method::SecretPost, run).await;
}
