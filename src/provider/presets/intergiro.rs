use crate::error::AuthError;
use crate::provider::generic::{join, CallSpec, Encoding, HttpProvider};
use crate::provider::RefreshTiming;
use crate::secret::Secret;

/// Intergiro: JSON `{"api_key"}` at `{base}/auth/login`, JSON `{"refresh_token"}` at
/// `{base}/auth/refresh`.
///
/// `base` is e.g. `https://api.intergiro.com/v3`. Responses carry no expiry: it comes from the
/// JWT `exp`. A refresh is sent only after the access token expired or on a 401 (the API rejects
/// early refreshes), the latest refresh token is always kept, and a login happens again only when
/// a refresh is rejected (needless logins trip the API's fraud prevention).
pub fn intergiro(base: &str, api_key: impl Into<Secret>) -> Result<HttpProvider, AuthError> {
    let login = CallSpec::post(&join(base, "/auth/login"))?
        .encoding(Encoding::Json)
        .secret_field("api_key", api_key.into());
    let refresh = CallSpec::post(&join(base, "/auth/refresh"))?
        .encoding(Encoding::Json)
        .refresh_token_field("refresh_token");
    Ok(HttpProvider::new(login, refresh).with_policy(|p| p.refresh = RefreshTiming::AfterExpiry))
}
