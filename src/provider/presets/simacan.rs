use crate::error::AuthError;
use crate::provider::generic::HttpProvider;
use crate::provider::Credentials;
use crate::secret::Secret;

use super::from_spec;

/// Simacan Auth API: form login and refresh, with tokens that may die before their
/// `expires_in`.
///
/// `base` is e.g. `https://auth-service.services.simacan.com/api/v1`.
///
/// The API's quirks, each setting with its reason, are written in the repository's
/// `specs/simacan.toml`, which this preset is built from (compiled in):
///
#[doc = concat!("```toml\n", include_str!("../../../specs/simacan.toml"), "```")]
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
