//! The values a spec's placeholders stand for, given by the caller.

use crate::secret::Secret;

use super::template::Var;

/// The credentials a [`ProviderSpec`](super::ProviderSpec)'s placeholders name: `${username}`,
/// `${password}`, `${api_key}`, `${client_id}`, `${client_secret}`, `${scope}`.
///
/// Give only those the spec uses; building fails, naming the placeholder and the field, when one
/// it uses is missing. Passwords, API keys and client secrets are [`Secret`]s, shown by no
/// `Debug` output; user names, client ids and scopes are not secret.
///
/// ```
/// use tower_token_auth::provider::Credentials;
///
/// let credentials = Credentials::new().username("alice").password("hunter2");
/// assert!(!format!("{credentials:?}").contains("hunter2"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    username: Option<String>,
    password: Option<Secret>,
    api_key: Option<Secret>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    scope: Option<String>,
}

impl Credentials {
    /// No credentials.
    pub fn new() -> Self {
        Self::default()
    }

    /// `${username}`: a user name or e-mail address.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// `${password}`.
    pub fn password(mut self, password: impl Into<Secret>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// `${api_key}`.
    pub fn api_key(mut self, api_key: impl Into<Secret>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }

    /// `${client_id}`: an OAuth2 / OIDC client id.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// `${client_secret}`.
    pub fn client_secret(mut self, client_secret: impl Into<Secret>) -> Self {
        self.client_secret = Some(client_secret.into());
        self
    }

    /// `${scope}`: an OAuth2 scope, space-separated.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The value for a credential placeholder: plain text or a secret. `None` for a credential
    /// not given, the refresh token and environment variables.
    pub(super) fn get(&self, var: &Var) -> Option<Given> {
        let plain = |v: &Option<String>| v.clone().map(Given::Plain);
        let secret = |v: &Option<Secret>| v.clone().map(Given::Secret);
        match var {
            Var::Username => plain(&self.username),
            Var::ClientId => plain(&self.client_id),
            Var::Scope => plain(&self.scope),
            Var::Password => secret(&self.password),
            Var::ApiKey => secret(&self.api_key),
            Var::ClientSecret => secret(&self.client_secret),
            Var::RefreshToken | Var::Env(_) => None,
        }
    }
}

/// A credential's value.
pub(super) enum Given {
    Plain(String),
    Secret(Secret),
}
