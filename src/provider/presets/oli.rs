use crate::error::AuthError;
use crate::provider::generic::HttpProvider;
use crate::provider::Credentials;
use crate::secret::Secret;

use super::from_spec;

/// OLI Systems (OIDC / Keycloak): the password grant with the public client `apiclient`,
/// renewed with the `refresh_token` grant.
///
/// `token_url` is the full endpoint, e.g.
/// `https://auth.olisystems.com/auth/realms/api/protocol/openid-connect/token`.
///
/// The API's quirks, each setting with its reason, are written in the repository's
/// `specs/oli.toml`, which this preset is built from (compiled in):
///
#[doc = concat!("```toml\n", include_str!("../../../specs/oli.toml"), "```")]
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
    let credentials = Credentials::new()
        .client_id(client_id)
        .username(username)
        .password(password);
    from_spec(
        include_str!("../../../specs/oli.toml"),
        token_url,
        &credentials,
    )
}
