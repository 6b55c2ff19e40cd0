//! Ready configurations for the APIs this crate was built against.
//!
//! Each takes the base URL exactly as the API's documentation writes it, plus credentials, and
//! returns an [`HttpProvider`]: the differences between the APIs are data, not code. Each is
//! built from its spec file in the repository's `specs/` (see [`ProviderSpec`]), compiled in, so
//! the spec a user copies for a new API is the one the preset runs on. That file is also where
//! the API's quirks are written (how it logs in and refreshes, where its answers keep the tokens
//! and their expiry, which failures reject, when to refresh), each setting with its reason.
//!
//! | preset | login | in a phrase | spec file |
//! |---|---|---|---|
//! | [`union_service`] | JSON username/password | one error status, a JSON 500, for everything | `specs/union-service.toml` |
//! | [`simacan`] | form username/password | tokens may die early: 401 → refresh + replay | `specs/simacan.toml` |
//! | [`oli`] | OIDC password grant, public client | Keycloak; `400 invalid_grant` → login | `specs/oli.toml` |
//! | [`tradecloud`] | `GET` with HTTP Basic | tokens in response headers; refresh without `Authorization` | `specs/tradecloud.toml` |
//! | [`intergiro`] | JSON API key | refresh only after expiry; login only when a refresh is rejected | `specs/intergiro.toml` |

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
