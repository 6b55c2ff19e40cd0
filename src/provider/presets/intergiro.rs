use crate::error::AuthError;
use crate::provider::generic::HttpProvider;
use crate::provider::Credentials;
use crate::secret::Secret;

use super::from_spec;

/// Intergiro: JSON `{"api_key"}` at `{base}/auth/login`, JSON `{"refresh_token"}` at
/// `{base}/auth/refresh`.
///
/// `base` is e.g. `https://api.intergiro.com/v3`. Responses carry no expiry: it comes from the
/// JWT `exp`. A refresh is sent only after the access token expired or on a 401 (the API rejects
/// early refreshes), the latest refresh token is always kept, and a login happens again only when
/// a refresh is rejected (needless logins trip the API's fraud prevention). Only a 401 rejects a
/// refresh: any other error (such as the one answering a refresh the API considers premature)
/// keeps the refresh token for the next attempt, after the backoff.
pub fn intergiro(base: &str, api_key: impl Into<Secret>) -> Result<HttpProvider, AuthError> {
    let credentials = Credentials::new().api_key(api_key);
    from_spec(
        include_str!("../../../specs/intergiro.toml"),
        base,
        &credentials,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::RefreshTiming;
    use crate::provider::{AuthResponse, Failure, Provider};
    use crate::AuthCall;

    #[test]
    fn only_a_401_rejects_a_refresh() {
        let provider = intergiro("https://api.example.com/v3", "key").unwrap();
        let answer = |status: u16| {
            let mut response = AuthResponse::new(bytes::Bytes::new());
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
            provider.classify_failure(AuthCall::Refresh, &response)
        };
        // A premature refresh is answered with an error that must not cost a login.
        assert_eq!(answer(400), Failure::Unexpected);
        assert_eq!(answer(503), Failure::Transient);
        assert_eq!(answer(401), Failure::Rejected);
        assert_eq!(provider.policy().refresh, RefreshTiming::AfterExpiry);
    }
}
