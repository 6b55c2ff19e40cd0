//! Generic OAuth2 (RFC 6749) grants: `password` and `client_credentials`, with the
//! `refresh_token` grant for renewal.
//!
//! ```
//! use tower_token_auth::provider::oauth2::{self, ClientAuth};
//!
//! let provider = oauth2::client_credentials("https://idp.example.com/oauth/token", "my-app", "s3cret")
//!     .client_auth(ClientAuth::SecretPost)
//!     .scope("read write")
//!     .build()?;
//! # Ok::<(), tower_token_auth::AuthError>(())
//! ```
//!
//! Servers differ in details; the providers built here follow the common ground:
//! - a 400 or 401 (or 403) from the refresh grant, with or without a standard error body, means
//!   the refresh token is dead: the layer logs in again;
//! - an `error` / `error_description` body is surfaced in the [`AuthError`] message;
//! - a refresh answer without a new `refresh_token` keeps the old one (the server did not rotate).

use std::fmt;

use crate::error::AuthError;
use crate::provider::generic::{basic_form_encoded, CallSpec, Encoding, HttpProvider};
use crate::secret::Secret;

/// How a confidential client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic with the form-urlencoded client id and secret (`client_secret_basic`).
    #[default]
    SecretBasic,
    /// `client_id` and `client_secret` in the request body (`client_secret_post`).
    SecretPost,
}

#[derive(Clone)]
enum Grant {
    Password { username: String, password: Secret },
    ClientCredentials,
}

/// Builds an OAuth2 [`HttpProvider`]. Start with [`password`] or [`client_credentials`].
#[derive(Clone)]
pub struct Builder {
    token_url: String,
    grant: Grant,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    client_auth: ClientAuth,
    scope: Option<String>,
}

/// The resource owner password grant: logs in with `username` and `password` at `token_url`.
///
/// Add the client with [`Builder::public_client`] or [`Builder::confidential_client`].
pub fn password(token_url: &str, username: &str, password: impl Into<Secret>) -> Builder {
    Builder::new(
        token_url,
        Grant::Password {
            username: username.to_owned(),
            password: password.into(),
        },
    )
}

/// The client credentials grant for the confidential client `client_id`.
///
/// Servers issue no refresh token for this grant; the layer simply logs in again when the token
/// expires.
pub fn client_credentials(
    token_url: &str,
    client_id: &str,
    client_secret: impl Into<Secret>,
) -> Builder {
    Builder::new(token_url, Grant::ClientCredentials).confidential_client(client_id, client_secret)
}

impl Builder {
    fn new(token_url: &str, grant: Grant) -> Self {
        Self {
            token_url: token_url.to_owned(),
            grant,
            client_id: None,
            client_secret: None,
            client_auth: ClientAuth::default(),
            scope: None,
        }
    }

    /// A public client: `client_id` in the body, no secret (as OIDC servers such as Keycloak use
    /// for password logins).
    pub fn public_client(mut self, client_id: &str) -> Self {
        self.client_id = Some(client_id.to_owned());
        self.client_secret = None;
        self
    }

    /// A confidential client authenticating with `client_secret`.
    pub fn confidential_client(
        mut self,
        client_id: &str,
        client_secret: impl Into<Secret>,
    ) -> Self {
        self.client_id = Some(client_id.to_owned());
        self.client_secret = Some(client_secret.into());
        self
    }

    /// How a confidential client sends its secret. Default: [`ClientAuth::SecretBasic`].
    pub fn client_auth(mut self, client_auth: ClientAuth) -> Self {
        self.client_auth = client_auth;
        self
    }

    /// The `scope` to request at login.
    pub fn scope(mut self, scope: &str) -> Self {
        self.scope = Some(scope.to_owned());
        self
    }

    /// Builds the provider; fails on an invalid token URL.
    pub fn build(self) -> Result<HttpProvider, AuthError> {
        let login = match &self.grant {
            Grant::Password { username, password } => self
                .call("password")?
                .field("username", username.clone())
                .secret_field("password", password.clone()),
            Grant::ClientCredentials => self.call("client_credentials")?,
        };
        let login = match &self.scope {
            Some(scope) => login.field("scope", scope.clone()),
            None => login,
        };
        let refresh = self
            .call("refresh_token")?
            .refresh_token_field("refresh_token");
        Ok(HttpProvider::new(login, refresh))
    }

    /// A form POST to the token endpoint for `grant_type`, with the client's authentication.
    fn call(&self, grant_type: &'static str) -> Result<CallSpec, AuthError> {
        let spec = CallSpec::post(&self.token_url)?
            .encoding(Encoding::Form)
            .field("grant_type", grant_type);
        Ok(
            match (&self.client_id, &self.client_secret, self.client_auth) {
                (None, _, _) => spec,
                (Some(id), None, _) => spec.field("client_id", id.clone()),
                (Some(id), Some(secret), ClientAuth::SecretPost) => spec
                    .field("client_id", id.clone())
                    .secret_field("client_secret", secret.clone()),
                (Some(id), Some(secret), ClientAuth::SecretBasic) => {
                    spec.basic_auth_value(basic_form_encoded(id, secret)?)
                }
            },
        )
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let grant = match self.grant {
            Grant::Password { .. } => "password",
            Grant::ClientCredentials => "client_credentials",
        };
        f.debug_struct("Builder")
            .field("token_url", &self.token_url)
            .field("grant", &grant)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("client_auth", &self.client_auth)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Provider;
    use http::header::AUTHORIZATION;
    use http_body_util::BodyExt;

    async fn body(request: crate::provider::AuthRequest) -> String {
        let bytes = request.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn password_grant_with_basic_client() {
        let p = password("https://idp.test/token", "alice", "pw")
            .confidential_client("app:1", "s&cret")
            .scope("a b")
            .build()
            .unwrap();
        let login = p.login_request().unwrap();
        assert_eq!(
            login.headers()[AUTHORIZATION],
            "Basic YXBwJTNBMTpzJTI2Y3JldA=="
        );
        assert_eq!(
            body(login).await,
            "grant_type=password&username=alice&password=pw&scope=a+b"
        );
        let refresh = p.refresh_request(&Secret::from("rt")).unwrap();
        assert!(refresh.headers().contains_key(AUTHORIZATION));
        assert_eq!(
            body(refresh).await,
            "grant_type=refresh_token&refresh_token=rt"
        );
    }

    #[tokio::test]
    async fn client_credentials_with_post_auth() {
        let p = client_credentials("https://idp.test/token", "app", "sec")
            .client_auth(ClientAuth::SecretPost)
            .build()
            .unwrap();
        let login = p.login_request().unwrap();
        assert!(!login.headers().contains_key(AUTHORIZATION));
        assert_eq!(
            body(login).await,
            "grant_type=client_credentials&client_id=app&client_secret=sec"
        );
    }

    #[test]
    fn debug_redacts() {
        let b = password("https://idp.test/token", "alice", "pw-hidden")
            .confidential_client("app", "sec-hidden");
        let shown = format!("{b:?} {:?}", b.clone().build().unwrap());
        assert!(!shown.contains("hidden"), "{shown}");
    }
}
