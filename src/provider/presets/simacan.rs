use crate::error::AuthError;
use crate::provider::generic::HttpProvider;
use crate::provider::Credentials;
use crate::secret::Secret;

use super::from_spec;

/// Simacan Auth API: form login at `{base}/auth/password`, form `refresh_token` at
/// `{base}/auth/refresh`.
///
/// `base` is e.g. `https://auth-service.services.simacan.com/api/v1`. Tokens may die before
/// `expires_in`: the upstream's 401 triggers a refresh and a replay. A refresh answered 401 falls
/// back to `/auth/password`. Old refresh tokens are discarded, never kept as a fallback.
pub fn simacan(
    base: &str,
    username: &str,
    password: impl Into<Secret>,
) -> Result<HttpProvider, AuthError> {
    let credentials = Credentials::new().username(username).password(password);
    from_spec(
        include_str!("../../../specs/simacan.toml"),
        base,
        &credentials,
    )
}
