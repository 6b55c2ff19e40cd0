use crate::error::AuthError;
use crate::oauth2;
use crate::provider::generic::HttpProvider;
use crate::secret::Secret;

/// OLI Systems (OIDC / Keycloak): the password grant with the public client `apiclient` at the
/// token URL, renewed with the `refresh_token` grant.
///
/// `token_url` is the full endpoint, e.g.
/// `https://auth.olisystems.com/auth/realms/api/protocol/openid-connect/token`. A dead refresh
/// token answers `400 invalid_grant`, which falls back to login.
pub fn oli(
    token_url: &str,
    username: &str,
    password: impl Into<Secret>,
) -> Result<HttpProvider, AuthError> {
    oli_with_client(token_url, "apiclient", username, password)
}

/// [`oli`] with a client id other than `apiclient`.
pub fn oli_with_client(
    token_url: &str,
    client_id: &str,
    username: &str,
    password: impl Into<Secret>,
) -> Result<HttpProvider, AuthError> {
    oauth2::password(token_url, username, password)
        .public_client(client_id)
        .build()
}
