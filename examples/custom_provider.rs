//! A `Provider` written by hand: Intergiro's API-key login and JSON refresh, refreshing only
//! after expiry as that API demands, against a local emulation of it.
//!
//! ```text
//! cargo run --example custom_provider
//! ```

use bytes::Bytes;
use http::{header, Request, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_token_auth::provider::{Provider, RefreshTiming, TokenPolicy};
use tower_token_auth::{AuthError, AuthLayer, Secret};
use tower_token_auth_emulation::{Api, Config, Emulation};

#[derive(Debug)]
struct Intergiro {
    base: String,
    api_key: Secret,
}

impl Intergiro {
    fn post_json(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<http::Request<http_body_util::Full<bytes::Bytes>>, AuthError> {
        let uri: Uri = format!("{}{path}", self.base)
            .parse()
            .map_err(|_| AuthError::config("the base URL is not a URL"))?;
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|_| AuthError::config("cannot build the auth request"))
    }
}

impl Provider for Intergiro {
    fn login_request(
        &self,
    ) -> Result<http::Request<http_body_util::Full<bytes::Bytes>>, AuthError> {
        self.post_json(
            "/auth/login",
            serde_json::json!({ "api_key": self.api_key.expose() }),
        )
    }

    fn refresh_request(
        &self,
        refresh_token: &Secret,
    ) -> Result<http::Request<http_body_util::Full<bytes::Bytes>>, AuthError> {
        self.post_json(
            "/auth/refresh",
            serde_json::json!({ "refresh_token": refresh_token.expose() }),
        )
    }

    // The answer is `{"access_token", "refresh_token"}`: the default parser reads it, and the
    // lifetime comes from the JWT's `exp`.

    fn policy(&self) -> TokenPolicy {
        let mut policy = TokenPolicy::default();
        // A refresh before the access token expired is an error at Intergiro.
        policy.refresh = RefreshTiming::AfterExpiry;
        policy
    }
}

#[tokio::main]
async fn main() -> Result<(), tower::BoxError> {
    let emulation = Emulation::start(Api::Intergiro, Config::default()).await?;
    let provider = Intergiro {
        base: emulation.base_url(),
        api_key: Secret::from(emulation.config().api_key.clone()),
    };
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let layer = AuthLayer::new(provider, client.clone());
    let api = layer.layer(client);

    let request = Request::get(emulation.resource_url()).body(Full::default())?;
    println!(
        "first request -> {}",
        api.clone().oneshot(request).await?.status()
    );
    emulation.revoke_access_tokens();
    let request = Request::get(emulation.resource_url()).body(Full::default())?;
    println!(
        "after revocation -> {}",
        api.oneshot(request).await?.status()
    );
    let stats = emulation.stats();
    println!(
        "logins {}, refreshes {}, violations {}",
        stats.logins, stats.refreshes, stats.violations
    );
    Ok(())
}
