//! An auth transport built for another body type than `Full<Bytes>`.

use axum::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_token_auth::AuthLayer;
use tower_token_auth::provider::oauth2;

fn main() {
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let provider = oauth2::Builder::client_credentials("https://idp.example.com/token", "id", "secret")
        .build()
        .unwrap();
    let _layer = AuthLayer::new(provider, client);
}
