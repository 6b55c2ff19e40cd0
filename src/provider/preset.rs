//! The APIs this crate was built against, as ready providers.

use crate::error::AuthError;
use crate::provider::{Credentials, HttpProvider, ProviderSpec};

/// An API this crate ships a spec file for: [`provider`](Self::provider) builds it at a base URL
/// with credentials.
///
/// A preset is a spec file compiled in: the differences between the APIs are data, not code, and
/// the spec a user copies for a new API is the one the preset runs on (see [`ProviderSpec`]).
/// Each variant's documentation shows its file, where the API's quirks are written (how it logs
/// in and refreshes, where its answers keep the tokens and their expiry, which failures reject,
/// when to refresh), each setting with its reason.
///
/// | preset | login | credentials | in a phrase |
/// |---|---|---|---|
/// | [`UnionService`](Self::UnionService) | JSON username/password | username, password | one error status, a JSON 500, for everything |
/// | [`Simacan`](Self::Simacan) | form username/password | username, password | tokens may die early: 401 → refresh + replay |
/// | [`Oli`](Self::Oli) | OIDC password grant, public client | username, password (client id: `apiclient` unless given) | Keycloak; `400 invalid_grant` → login |
/// | [`Tradecloud`](Self::Tradecloud) | `GET` with HTTP Basic | username (the e-mail), password | tokens in response headers; refresh without `Authorization` |
/// | [`Intergiro`](Self::Intergiro) | JSON API key | API key | refresh only after expiry; login only when a refresh is rejected |
///
/// ```
/// use tower_token_auth::provider::{Credentials, Preset};
///
/// let credentials = Credentials::new().username("user").password("password");
/// let provider = Preset::Simacan.provider("https://auth-service.services.simacan.com/api/v1", &credentials)?;
/// # Ok::<(), tower_token_auth::AuthError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Preset {
    /// union-service: JSON login and refresh, and one documented error status (a JSON 500) for a
    /// wrong password and a crash alike. The base URL is the host URL
    /// (`https://{environment}.com`).
    ///
    #[doc = concat!("```toml\n", include_str!("../../specs/union-service.toml"), "```")]
    UnionService,
    /// Simacan Auth API: form login and refresh, with tokens that may die before their
    /// `expires_in`. The base URL is e.g. `https://auth-service.services.simacan.com/api/v1`.
    ///
    #[doc = concat!("```toml\n", include_str!("../../specs/simacan.toml"), "```")]
    Simacan,
    /// OLI Systems (OIDC / Keycloak): the password grant with the public client `apiclient` (or
    /// the credentials' client id), renewed with the `refresh_token` grant. The base URL is the
    /// full token endpoint, e.g.
    /// `https://auth.olisystems.com/auth/realms/api/protocol/openid-connect/token`.
    ///
    #[doc = concat!("```toml\n", include_str!("../../specs/oli.toml"), "```")]
    Oli,
    /// Tradecloud: `GET` login with HTTP Basic `email:password` (the e-mail address is the
    /// credentials' username), tokens in response headers, and a refresh that must carry no
    /// `Authorization` header. The base URL is e.g. `https://api.accp.tradecloud1.com/v2`.
    ///
    #[doc = concat!("```toml\n", include_str!("../../specs/tradecloud.toml"), "```")]
    Tradecloud,
    /// Intergiro: JSON API-key login, refreshed only after expiry or on a 401, and logged in
    /// again only when a refresh is rejected. The base URL is e.g.
    /// `https://api.intergiro.com/v3`.
    ///
    #[doc = concat!("```toml\n", include_str!("../../specs/intergiro.toml"), "```")]
    Intergiro,
}

impl Preset {
    /// The provider this preset's spec file describes, at `base` (the base URL as the API's
    /// documentation writes it; see each variant), with `credentials`. A credential the spec
    /// needs and `credentials` lacks is an error of kind [`Config`](crate::ErrorKind::Config)
    /// naming it.
    pub fn provider(
        self,
        base: &str,
        credentials: &Credentials,
    ) -> Result<HttpProvider, AuthError> {
        Ok(ProviderSpec::from_toml(self.spec())?
            .base_url(base)
            .build(credentials)?)
    }

    /// The spec file, as shipped in the repository's `specs/`.
    fn spec(self) -> &'static str {
        match self {
            Preset::UnionService => include_str!("../../specs/union-service.toml"),
            Preset::Simacan => include_str!("../../specs/simacan.toml"),
            Preset::Oli => include_str!("../../specs/oli.toml"),
            Preset::Tradecloud => include_str!("../../specs/tradecloud.toml"),
            Preset::Intergiro => include_str!("../../specs/intergiro.toml"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{AuthResponse, Failure, Provider, RefreshTiming};
    use crate::AuthCall;

    #[test]
    fn every_shipped_spec_builds() {
        let people = Credentials::new().username("u").password("p");
        for preset in [
            Preset::UnionService,
            Preset::Simacan,
            Preset::Oli,
            Preset::Tradecloud,
        ] {
            preset
                .provider("https://api.example.com/v1", &people)
                .unwrap();
        }
        let key = Credentials::new().api_key("k");
        Preset::Intergiro
            .provider("https://api.example.com/v3", &key)
            .unwrap();
    }

    #[test]
    fn a_missing_credential_is_named() {
        let error = Preset::Intergiro
            .provider("https://api.example.com/v3", &Credentials::new())
            .unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::Config);
        assert!(error.to_string().contains("api_key"), "{error}");
    }

    #[test]
    fn intergiro_lets_only_a_401_reject_a_refresh() {
        let credentials = Credentials::new().api_key("key");
        let provider = Preset::Intergiro
            .provider("https://api.example.com/v3", &credentials)
            .unwrap();
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
