//! An axum service that calls a downstream API through the layer kept in its state: every
//! handler shares one token and one single flight.
//!
//! ```text
//! cargo run --example axum_state
//! ```

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_token_auth::provider::{Credentials, Preset};
use tower_token_auth::{AuthLayer, AuthService};
use tower_token_auth_emulation::{Api, Config, Emulation};

/// What every handler gets: the authenticated client, and where the downstream API is.
#[derive(Clone)]
struct AppState {
    downstream: AuthService<Client<HttpConnector, Full<Bytes>>>,
    resource_url: String,
}

async fn proxy(State(state): State<AppState>) -> Result<String, (StatusCode, String)> {
    let failed = |e: tower::BoxError| (StatusCode::BAD_GATEWAY, e.to_string());
    // A `Full` body: the layer copies it for a replay after a 401. To forward the incoming
    // `axum::body::Body` instead, build the client for `Body` and the layer with
    // `.without_replay()`, or buffer the body first (see `CloneRequest`).
    let request = http::Request::get(&state.resource_url)
        .body(Full::default())
        .map_err(|e| failed(e.into()))?;
    let response = state.downstream.oneshot(request).await.map_err(failed)?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| failed(e.into()))?;
    Ok(format!(
        "downstream said {status}: {}",
        String::from_utf8_lossy(&body.to_bytes())
    ))
}

#[tokio::main]
async fn main() -> Result<(), tower::BoxError> {
    let union = Emulation::start(Api::UnionService, Config::default()).await?;
    let config = union.config();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let provider = Preset::UnionService.provider(
        &union.base_url(),
        &Credentials::new()
            .username(&config.username)
            .password(config.password.clone()),
    )?;
    let layer = AuthLayer::new(provider, client.clone());
    let state = AppState {
        downstream: layer.layer(client.clone()),
        resource_url: union.resource_url(),
    };

    let app = Router::new().route("/proxy", get(proxy)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Ten callers of the app at once: one login downstream.
    let calls = (0..10).map(|_| {
        let request = http::Request::get(format!("http://{addr}/proxy")).body(Full::default());
        let client = client.clone();
        async move {
            client
                .request(request?)
                .await
                .map_err(tower::BoxError::from)
        }
    });
    for response in futures_join_all(calls).await {
        let body = response?.into_body().collect().await?.to_bytes();
        println!("{}", String::from_utf8_lossy(&body));
    }
    println!("downstream logins: {}", layer.handle().metrics().logins);
    Ok(())
}

/// Runs the futures concurrently, on tasks of their own.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}
