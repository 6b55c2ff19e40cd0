use crate::error::AuthError;
use crate::provider::generic::HttpProvider;
use crate::provider::Credentials;
use crate::secret::Secret;

use super::from_spec;

/// Tradecloud: `GET` login with HTTP Basic `email:password`, tokens in response headers, and a
/// refresh that must carry no `Authorization` header.
///
/// `base` is e.g. `https://api.accp.tradecloud1.com/v2`.
///
/// The API's quirks, each setting with its reason, are written in the repository's
/// `specs/tradecloud.toml`, which this preset is built from (compiled in):
///
#[doc = concat!("```toml\n", include_str!("../../../specs/tradecloud.toml"), "```")]
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
