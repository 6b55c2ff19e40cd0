use crate::error::AuthError;
use crate::provider::generic::{join, CallSpec, Encoding, HttpProvider};
use crate::secret::Secret;

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
    let login = CallSpec::post(&join(base, "/auth/password"))?
        .encoding(Encoding::Form)
        .field("username", username.to_owned())
        .secret_field("password", password.into());
    let refresh = CallSpec::post(&join(base, "/auth/refresh"))?
        .encoding(Encoding::Form)
        .refresh_token_field("refresh_token");
    Ok(HttpProvider::new(login, refresh).with_policy(|p| p.keep_unrotated_refresh_token = false))
}
