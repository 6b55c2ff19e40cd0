//! A `reqwest::Client` passed as the auth transport: the fix is `ReqwestTransport`.

use tower_token_auth::AuthLayer;
use tower_token_auth::provider::oauth2;

fn main() {
    let provider = oauth2::Builder::client_credentials("https://idp.example.com/token", "id", "secret")
        .build()
        .unwrap();
    let _layer = AuthLayer::new(provider, reqwest::Client::new());
}
