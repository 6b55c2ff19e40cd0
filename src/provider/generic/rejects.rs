//! Which failed auth answers mean *rejected* (dead credentials or refresh token) rather than
//! *transient*.

use http::StatusCode;

use crate::provider::{AuthResponse, Failure, CLIENT_ERRORS};

/// Which failure statuses mean "rejected" for one call.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Rejects {
    /// Exactly these statuses; all others are transient.
    Statuses(Vec<StatusCode>),
    /// Every non-2xx answer (for APIs that document a single error status for everything).
    AnyFailure,
    /// These statuses when the answer is the API's own: a JSON object. The same status with any
    /// other body (the HTML or empty error page of a proxy, a load balancer or a crashed server)
    /// is not a rejection. For APIs that answer refused credentials with a 500.
    ApiAnswers(Vec<StatusCode>),
    /// These statuses when the JSON body's error code (at `pointer`, `/error` in RFC 6749 §5.2
    /// answers) is one of `errors`: `invalid_grant`, say, and not `temporarily_unavailable`.
    ErrorCodes {
        /// The statuses that may reject.
        statuses: Vec<StatusCode>,
        /// A JSON pointer (RFC 6901) to the error code, a string.
        pointer: String,
        /// The codes that reject.
        errors: Vec<String>,
    },
    /// What `rejects` matches is [ambiguous](Failure::Ambiguous): a rejection only once it comes
    /// `repeats` times in a row; retried like a transient failure until then. For APIs whose one
    /// error status answers refused credentials and server faults alike.
    Repeated {
        /// The answers that may be rejections.
        rejects: Box<Rejects>,
        /// How many in a row make a rejection.
        repeats: u32,
    },
}

impl Rejects {
    /// 400, 401 and 403: what RFC 6749 servers answer to dead credentials and grants.
    pub(crate) fn client_errors() -> Self {
        Rejects::Statuses(CLIENT_ERRORS.to_vec())
    }

    pub(super) fn classify(&self, response: &AuthResponse) -> Failure {
        if let Rejects::Repeated { rejects, repeats } = self {
            return match rejects.classify(response) {
                Failure::Rejected => Failure::Ambiguous {
                    repeats: (*repeats).max(1),
                },
                other => other,
            };
        }
        let status = response.status();
        let json = || serde_json::from_slice::<serde_json::Value>(response.body()).ok();
        let rejected = match self {
            Rejects::AnyFailure => true,
            Rejects::Repeated { .. } => false,
            Rejects::Statuses(list) => list.contains(&status),
            Rejects::ApiAnswers(list) => {
                list.contains(&status) && json().is_some_and(|body| body.is_object())
            }
            Rejects::ErrorCodes {
                statuses,
                pointer,
                errors,
            } => {
                statuses.contains(&status)
                    && json().is_some_and(|body| {
                        body.pointer(pointer)
                            .and_then(|code| code.as_str())
                            .is_some_and(|code| errors.iter().any(|e| e == code))
                    })
            }
        };
        if rejected {
            Failure::Rejected
        } else {
            Failure::outage_or_unexpected(status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn answer(status: u16, body: &'static str) -> AuthResponse {
        let mut response = AuthResponse::new(Bytes::from_static(body.as_bytes()));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        response
    }

    #[test]
    fn error_codes_reject_only_the_named_codes() {
        let rejects = Rejects::ErrorCodes {
            statuses: vec![StatusCode::BAD_REQUEST],
            pointer: "/error".into(),
            errors: vec!["invalid_grant".into()],
        };
        let with = |status, body| rejects.classify(&answer(status, body));
        assert_eq!(with(400, r#"{"error":"invalid_grant"}"#), Failure::Rejected);
        assert_eq!(
            with(400, r#"{"error":"temporarily_unavailable"}"#),
            Failure::Unexpected
        );
        assert_eq!(with(400, "invalid_grant"), Failure::Unexpected);
        assert_eq!(
            with(401, r#"{"error":"invalid_grant"}"#),
            Failure::Unexpected
        );
        assert_eq!(
            with(503, r#"{"error":"invalid_grant"}"#),
            Failure::Transient
        );
    }

    #[test]
    fn api_answers_need_a_json_object() {
        let rejects = Rejects::ApiAnswers(vec![StatusCode::INTERNAL_SERVER_ERROR]);
        let with = |body| rejects.classify(&answer(500, body));
        assert_eq!(with(r#"{"message":"bad credentials"}"#), Failure::Rejected);
        assert_eq!(with("<html>502</html>"), Failure::Transient);
        assert_eq!(with("[1]"), Failure::Transient);
    }
}
