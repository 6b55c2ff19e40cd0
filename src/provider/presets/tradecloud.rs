use crate::error::AuthError;
use crate::provider::generic::HttpProvider;
use crate::provider::Credentials;
use crate::secret::Secret;

use super::from_spec;

/// Tradecloud: `GET {base}/authentication/login` with HTTP Basic `email:password`; tokens come back
/// in the `Set-Authorization` and `Set-Refresh-Token` headers; `GET {base}/authentication/refresh`
/// with a `Refresh-Token` header.
///
/// `base` is e.g. `https://api.accp.tradecloud1.com/v2`. The refresh call carries no
/// `Authorization` header (with a valid one the API answers 200 without a new pair, which this
/// provider treats as an error). Expiry comes from the tokens' JWT `exp`. Refresh tokens are
/// single-use and never kept after a refresh; a refresh answered 401 falls back to login.
pub fn tradecloud(
    base: &str,
    email: &str,
    password: impl Into<Secret>,
) -> Result<HttpProvider, AuthError> {
    let credentials = Credentials::new().username(email).password(password);
    from_spec(
        include_str!("../../../specs/tradecloud.toml"),
        base,
        &credentials,
    )
}
