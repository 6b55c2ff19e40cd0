use crate::error::AuthError;
use crate::provider::generic::HttpProvider;
use crate::provider::Credentials;
use crate::secret::Secret;

use super::from_spec;

/// Intergiro: JSON API-key login, refreshed only after expiry or on a 401, and logged in again
/// only when a refresh is rejected.
///
/// `base` is e.g. `https://api.intergiro.com/v3`.
///
/// The API's quirks, each setting with its reason, are written in the repository's
/// `specs/intergiro.toml`, which this preset is built from (compiled in):
///
#[doc = concat!("```toml\n", include_str!("../../../specs/intergiro.toml"), "```")]
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
