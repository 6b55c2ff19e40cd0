//! A streaming body through a layer with the default replay strategy.

use axum::body::Body;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::Layer;
use tower_token_auth::AuthLayer;
use tower_token_auth::provider::oauth2;

fn send<S: tower::Service<Request<B>>, B>(_: S, _: Request<B>) {}

fn main() {
    let auth = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let provider = oauth2::Builder::client_credentials("https://idp.example.com/token", "id", "secret")
        .build()
        .unwrap();
    let layer = AuthLayer::new(provider, auth);
    send(layer.layer(client), Request::new(Body::empty()));
}
