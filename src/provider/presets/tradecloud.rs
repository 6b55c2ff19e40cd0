use http::HeaderName;

use crate::error::AuthError;
use crate::provider::generic::{join, CallSpec, HttpProvider, TokenSource};
use crate::secret::Secret;

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
    let login =
        CallSpec::get(&join(base, "/authentication/login"))?.basic_auth(email, &password.into())?;
    let refresh = CallSpec::get(&join(base, "/authentication/refresh"))?
        .refresh_token_header("refresh-token")?;
    Ok(HttpProvider::new(login, refresh)
        .tokens(TokenSource::Headers {
            access: HeaderName::from_static("set-authorization"),
            refresh: HeaderName::from_static("set-refresh-token"),
        })
        .with_policy(|p| p.keep_unrotated_refresh_token = false))
}
