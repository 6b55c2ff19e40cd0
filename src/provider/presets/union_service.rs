use crate::error::AuthError;
use crate::provider::generic::{join, CallSpec, Encoding, HttpProvider, Rejects};
use crate::provider::CLIENT_ERRORS;
use crate::secret::Secret;

const ACCEPT: &str = "application/vnd.restful+json";

/// union-service: JSON login at `{base}/union-service/auth/token?api-version=1.0`, JSON
/// `{"refreshToken"}` at `{base}/union-service/auth/refresh-token?api-version=1.0`.
///
/// `base` is the host URL (`https://{environment}.com`). The API documents 500 as its only error
/// status, so any error the API itself answers (a JSON body) to a refresh falls back to login, and
/// to a login is a rejection of the credentials. A 5xx with another body (a proxy's or load
/// balancer's error page) is transient and retried.
pub fn union_service(
    base: &str,
    username: &str,
    password: impl Into<Secret>,
) -> Result<HttpProvider, AuthError> {
    let login = CallSpec::post(&join(base, "/union-service/auth/token?api-version=1.0"))?
        .header("accept", ACCEPT)?
        .encoding(Encoding::Json)
        .field("username", username.to_owned())
        .secret_field("password", password.into());
    let refresh = CallSpec::post(&join(
        base,
        "/union-service/auth/refresh-token?api-version=1.0",
    ))?
    .header("accept", ACCEPT)?
    .encoding(Encoding::Json)
    .refresh_token_field("refreshToken");
    let api_errors = || {
        let mut statuses = CLIENT_ERRORS.to_vec();
        statuses.extend([
            http::StatusCode::NOT_FOUND,
            http::StatusCode::INTERNAL_SERVER_ERROR,
        ]);
        Rejects::ApiAnswers(statuses)
    };
    Ok(HttpProvider::new(login, refresh)
        .refresh_rejects(api_errors())
        .login_rejects(api_errors()))
}
