use crate::error::AuthError;
use crate::provider::generic::HttpProvider;
use crate::provider::Credentials;
use crate::secret::Secret;

use super::from_spec;

/// union-service: JSON login and refresh, and one documented error status (a JSON 500) for a
/// wrong password and a crash alike.
///
/// `base` is the host URL (`https://{environment}.com`).
///
/// The API's quirks, each setting with its reason, are written in the repository's
/// `specs/union-service.toml`, which this preset is built from (compiled in):
///
#[doc = concat!("```toml\n", include_str!("../../../specs/union-service.toml"), "```")]
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
