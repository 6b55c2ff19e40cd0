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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{Provider, RefreshTiming};
    use crate::{AuthCall, AuthRequest, AuthResponse, Failure, Secret};
    use http_body_util::BodyExt;

    /// The request as text: method, URI, headers in order (sensitive ones marked), body.
    async fn show(request: AuthRequest) -> String {
        let mut out = format!("{} {}\n", request.method(), request.uri());
        for (name, value) in request.headers() {
            let mark = if value.is_sensitive() {
                " (sensitive)"
            } else {
                ""
            };
            out.push_str(&format!("{name}: {}{mark}\n", value.to_str().unwrap()));
        }
        let body = request.into_body().collect().await.unwrap().to_bytes();
        out + "\n" + std::str::from_utf8(&body).unwrap()
    }

    async fn calls(provider: &HttpProvider) -> (String, String) {
        let login = show(provider.login_request().unwrap()).await;
        let refresh = show(provider.refresh_request(&Secret::new("rt-1")).unwrap()).await;
        (login, refresh)
    }

    fn rejects(provider: &HttpProvider, call: AuthCall, status: u16, body: &'static str) -> bool {
        let mut response = AuthResponse::new(bytes::Bytes::from_static(body.as_bytes()));
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
        provider.classify_failure(call, &response) == Failure::Rejected
    }

    #[tokio::test]
    async fn each_preset_sends_exactly_its_documented_requests() {
        let p = union_service("https://env.example.com/", "u", "pw").unwrap();
        assert_eq!(
            calls(&p).await,
            (
                "POST https://env.example.com/union-service/auth/token?api-version=1.0\n\
                 accept: application/vnd.restful+json\ncontent-type: application/json\n\n\
                 {\"password\":\"pw\",\"username\":\"u\"}"
                    .to_owned(),
                "POST https://env.example.com/union-service/auth/refresh-token?api-version=1.0\n\
                 accept: application/vnd.restful+json\ncontent-type: application/json\n\n\
                 {\"refreshToken\":\"rt-1\"}"
                    .to_owned()
            )
        );
        for call in [AuthCall::Login, AuthCall::Refresh] {
            assert!(rejects(&p, call, 500, "{}") && rejects(&p, call, 404, "{}"));
            assert!(!rejects(&p, call, 500, "<html>") && !rejects(&p, call, 502, "{}"));
        }

        let p = simacan("https://a.example.com/api/v1", "u", "p w").unwrap();
        assert_eq!(
            calls(&p).await,
            (
                "POST https://a.example.com/api/v1/auth/password\n\
                 content-type: application/x-www-form-urlencoded\naccept: application/json\n\n\
                 username=u&password=p+w"
                    .to_owned(),
                "POST https://a.example.com/api/v1/auth/refresh\n\
                 content-type: application/x-www-form-urlencoded\naccept: application/json\n\n\
                 refresh_token=rt-1"
                    .to_owned()
            )
        );
        assert!(!p.policy().keep_unrotated_refresh_token);

        let p = oli("https://kc.example.com/token", "u", "pw").unwrap();
        let (login, refresh) = calls(&p).await;
        assert!(
            login.ends_with("\n\ngrant_type=password&client_id=apiclient&username=u&password=pw")
        );
        assert!(refresh
            .ends_with("\n\ngrant_type=refresh_token&client_id=apiclient&refresh_token=rt-1"));
        assert!(login.starts_with("POST https://kc.example.com/token\n"));
        let p = oli_with_client("https://kc.example.com/token", "other", "u", "pw").unwrap();
        assert!(calls(&p).await.0.contains("&client_id=other&"));
        assert!(rejects(
            &p,
            AuthCall::Refresh,
            400,
            r#"{"error":"invalid_grant"}"#
        ));
        assert!(p.policy().keep_unrotated_refresh_token);

        let p = tradecloud("https://api.example.com/v2", "me@example.com", "pw").unwrap();
        assert_eq!(
            calls(&p).await,
            (
                "GET https://api.example.com/v2/authentication/login\n\
                 authorization: Basic bWVAZXhhbXBsZS5jb206cHc= (sensitive)\n\
                 accept: application/json\n\n"
                    .to_owned(),
                "GET https://api.example.com/v2/authentication/refresh\n\
                 accept: application/json\nrefresh-token: rt-1 (sensitive)\n\n"
                    .to_owned()
            )
        );
        assert!(!p.policy().keep_unrotated_refresh_token);

        let p = intergiro("https://api.example.com/v3", "k-1").unwrap();
        assert_eq!(
            calls(&p).await,
            (
                "POST https://api.example.com/v3/auth/login\n\
                 content-type: application/json\naccept: application/json\n\n\
                 {\"api_key\":\"k-1\"}"
                    .to_owned(),
                "POST https://api.example.com/v3/auth/refresh\n\
                 content-type: application/json\naccept: application/json\n\n\
                 {\"refresh_token\":\"rt-1\"}"
                    .to_owned()
            )
        );
        assert_eq!(p.policy().refresh, RefreshTiming::AfterExpiry);
        assert!(rejects(&p, AuthCall::Login, 403, ""));
        assert!(!rejects(&p, AuthCall::Refresh, 400, "{}"));
    }

    #[test]
    fn a_bad_base_url_is_a_config_error() {
        for base in ["not a url", "/relative", ""] {
            let err = simacan(base, "u", "pw").unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Config, "{base}");
            assert!(err.to_string().contains("`login.url`"), "{err}");
        }
    }
}
