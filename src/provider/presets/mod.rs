//! Ready configurations for the APIs this crate was built against.
//!
//! Each takes the base URL exactly as the API's documentation writes it, plus credentials, and
//! returns an [`HttpProvider`]: the differences between the APIs are data, not code. Each is
//! built from its spec file in the repository's `specs/` (see [`ProviderSpec`]), so the spec a
//! user copies for a new API is the one the preset runs on.
//!
//! | preset | login | tokens | refresh policy |
//! |---|---|---|---|
//! | [`union_service`] | JSON username/password | JSON, Keycloak fields | proactive; any refresh failure → login |
//! | [`simacan`] | form username/password | JSON, `bearer` lowercase | proactive; 401 → refresh + replay |
//! | [`oli`] | OIDC password grant, public client | Keycloak JSON | proactive; `invalid_grant` → login |
//! | [`tradecloud`] | `GET` with HTTP Basic | response headers, JWT `exp` | proactive; refresh without `Authorization` |
//! | [`intergiro`] | JSON API key | JSON without expiry, JWT `exp` | only after expiry or a 401 |

mod intergiro;
mod oli;
mod simacan;
mod tradecloud;
mod union_service;

pub use intergiro::intergiro;
pub use oli::{oli, oli_with_client};
pub use simacan::simacan;
pub use tradecloud::tradecloud;
pub use union_service::union_service;

use crate::error::AuthError;
use crate::provider::{Credentials, HttpProvider, ProviderSpec};

/// The provider the shipped `spec` describes, at `base`.
fn from_spec(spec: &str, base: &str, credentials: &Credentials) -> Result<HttpProvider, AuthError> {
    Ok(ProviderSpec::from_toml(spec)?
        .base_url(base)
        .build(credentials)?)
}
