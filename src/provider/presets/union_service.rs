use crate::error::AuthError;
use crate::provider::generic::HttpProvider;
use crate::provider::Credentials;
use crate::secret::Secret;

use super::from_spec;

/// union-service: JSON login at `{base}/union-service/auth/token?api-version=1.0`, JSON
/// `{"refreshToken"}` at `{base}/union-service/auth/refresh-token?api-version=1.0`.
///
/// `base` is the host URL (`https://{environment}.com`). The API documents 500 as its only error
/// status, so any error the API itself answers (a JSON body) to a refresh falls back to login, and
/// to a login is a rejection of the credentials. A 5xx with another body (a proxy's or load
/// balancer's error page) is transient and retried.
pub fn union_service(
    base: &str,
    username: &str,
    password: impl Into<Secret>,
) -> Result<HttpProvider, AuthError> {
    let credentials = Credentials::new().username(username).password(password);
    from_spec(
        include_str!("../../../specs/union-service.toml"),
        base,
        &credentials,
    )
}
