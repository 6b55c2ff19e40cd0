//! The auth transport: the user's HTTP service, with the response body collected under a cap,
//! and what its failures mean.

use std::error::Error as StdError;

use http::{Response, Uri};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;
use tower_service::Service;

use crate::error::{AuthError, BoxError, ErrorKind};
use crate::provider::{AuthRequest, AuthResponse};
use crate::secret::scrub;

/// The auth transport as the manager uses it: the response body already collected under the cap.
pub(crate) type Transport = BoxCloneSyncService<AuthRequest, AuthResponse, AuthError>;

/// An HTTP client service the layer can send its login and refresh calls through.
///
/// Implemented for every `Clone + Send + Sync` [`Service`] that takes an
/// `http::Request<Full<Bytes>>` and answers an `http::Response` with any body;
/// [the two bounds](crate#the-two-bounds) say which client that is. It must not follow
/// redirects, so that credentials only ever go to the configured endpoint (hyper-util's client
/// follows none, and `ReqwestTransport` turns reqwest's off).
///
/// Its errors stay the [`source`](std::error::Error::source) of the layer's as they are (their
/// text goes into the layer's message scrubbed of the request's values): an error type of its
/// own must not quote the request's URL query or body.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot carry the layer's auth calls",
    label = "not a `Service<Request<Full<Bytes>>>` answering `http::Response<_>`",
    note = "the auth transport takes `http::Request<http_body_util::Full<bytes::Bytes>>`: for a \
            hyper-util client, build a second one for that body type, e.g. \
            `Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>()` (or \
            `.build::<_, Full<Bytes>>(https_connector)` for TLS); for a `reqwest::Client`, use \
            `tower_token_auth::reqwest::ReqwestTransport::new(reqwest::Client::builder())` \
            (feature `reqwest`)",
    note = "it must be `Clone + Send + Sync + 'static`, its future `Send`, and its errors \
            `Into<BoxError>`"
)]
pub trait AuthTransport: Clone + Send + Sync + 'static {
    /// The transport as the manager uses it.
    #[doc(hidden)]
    fn into_transport(self, max_response_bytes: usize) -> Transport;
}

// NOTE: `do_not_recommend` makes a client of the wrong body type fail with the trait's message and
// its fix, instead of a bare "`Client<_, Body>: Service<Request<Full<Bytes>>>` is not satisfied".
#[diagnostic::do_not_recommend]
impl<T, RB> AuthTransport for T
where
    T: Service<AuthRequest, Response = Response<RB>> + Clone + Send + Sync + 'static,
    T::Error: Into<BoxError>,
    T::Future: Send + 'static,
    RB: Body + Send + 'static,
    RB::Data: Send,
    RB::Error: Into<BoxError>,
{
    /// NOTE: no redirect is followed here, and none may be: credentials go only to the configured
    /// endpoint. A 3xx answer is a failure like any other unexpected status.
    fn into_transport(self, max_response_bytes: usize) -> Transport {
        let service = self;
        BoxCloneSyncService::new(tower::service_fn(move |request: AuthRequest| {
            let service = service.clone();
            async move {
                let response = service
                    .oneshot(request)
                    .await
                    .map_err(|e| AuthError::transport(e.into()))?;
                let (parts, body) = response.into_parts();
                let status = parts.status;
                let body = Limited::new(body, max_response_bytes)
                    .collect()
                    .await
                    .map_err(|e| {
                        if e.is::<LengthLimitError>() {
                            AuthError::too_large(max_response_bytes, status)
                        } else {
                            // NOTE: the status is kept: a 2xx whose body broke still consumed the
                            // refresh token it answered.
                            AuthError::body_failed(e, status)
                        }
                    })?
                    .to_bytes();
                Ok(Response::from_parts(parts, body))
            }
        }))
    }
}

/// The error an auth call reports for a failed send: the transport's cause chain in the message
/// (scrubbed of `sent` values and URL queries), and a configuration error when the transport
/// cannot speak the URL's scheme.
pub(crate) fn explain_failure(error: AuthError, uri: &Uri, sent: &[String]) -> AuthError {
    if error.kind() != ErrorKind::Transport {
        return error;
    }
    let Some(cause) = error.source() else {
        return error;
    };
    let said = scrub(&chain_text(cause), sent);
    if cannot_speak_scheme(cause) {
        let fix = scheme_fix(uri, &said);
        return error.into_config(fix);
    }
    error.with_detail(said)
}

/// Whether a failed send says the transport cannot speak the URL's scheme: a plain-HTTP client
/// (hyper-util's `build_http`, reqwest without a TLS feature) given an `https://` URL, or an
/// HTTPS-only one an `http://` URL. A configuration error, not an outage: every retry fails the
/// same way, at once.
///
/// NOTE: the connectors' errors are opaque, so their messages are what can be matched:
/// hyper-util's `HttpConnector` ("invalid URL, scheme is not http"), hyper-rustls ("unsupported
/// scheme"), hyper-tls ("https required but URI was not https"), reqwest ("URL scheme is not
/// allowed").
fn cannot_speak_scheme(cause: &(dyn StdError + 'static)) -> bool {
    const SAID: [&str; 4] = [
        "scheme is not http",
        "unsupported scheme",
        "https required",
        "url scheme is not allowed",
    ];
    chain(cause).any(|e| {
        let text = e.to_string().to_ascii_lowercase();
        SAID.iter().any(|said| text.contains(said))
    })
}

/// What to do about a transport that cannot speak `uri`'s scheme.
fn scheme_fix(uri: &Uri, said: &str) -> String {
    let endpoint = endpoint(uri);
    match uri.scheme_str() {
        Some("https") => format!(
            "the auth transport cannot send to {endpoint} ({said}): build its client on a TLS \
             connector, such as hyper-rustls's or hyper-tls's `HttpsConnector` \
             (`Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(https)`), or enable \
             a TLS feature of reqwest for `ReqwestTransport`"
        ),
        scheme => format!(
            "the auth transport refuses {endpoint} ({said}): give the auth endpoint's `https://` \
             URL, or a client that allows `{}` URLs",
            scheme.unwrap_or("scheme-less")
        ),
    }
}

/// The auth endpoint as messages name it: origin and path. Never the query (it may hold an API
/// key) nor user information.
pub(crate) fn endpoint(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or_default();
    match uri.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}{}", uri.path()),
        None => format!("{scheme}://{host}{}", uri.path()),
    }
}

/// An error and its sources, outermost first (at most 16: a source chain may loop).
fn chain<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |&e| e.source()).take(16)
}

/// Longest cause chain a message spells out whole; a longer one keeps its outermost and its root
/// cause.
const MAX_CHAIN_TEXT: usize = 140;

/// The cause chain as one line, outermost first, root cause last ("client error (Connect): tcp
/// connect error: Connection refused (os error 111)"): a cause already quoted by the one before
/// is not repeated, and URL queries are dropped.
fn chain_text(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in chain(error) {
        let text = without_url_queries(&e.to_string());
        if !text.is_empty() && !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
    }
    let joined = parts.join(": ");
    match (parts.first(), parts.last()) {
        (Some(first), Some(root)) if parts.len() > 2 && joined.len() > MAX_CHAIN_TEXT => {
            format!("{first}: …: {root}")
        }
        _ => joined,
    }
}

/// `text` with the query and fragment of every URL in it dropped: a query may hold an API key.
fn without_url_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, tail) = rest.split_at(at);
        let end = tail
            .find(|c: char| c.is_whitespace() || "\"'<>()[]{}`".contains(c))
            .unwrap_or(tail.len());
        let url = &tail[..end];
        out.push_str(before);
        out.push_str(url.split(['?', '#']).next().unwrap_or_default());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Layer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn StdError + 'static))
        }
    }

    fn layers(texts: &[&'static str]) -> Layer {
        texts
            .iter()
            .rev()
            .fold(None, |inner, text| Some(Layer(text, inner.map(Box::new))))
            .unwrap()
    }

    #[test]
    fn the_chain_reads_outermost_first_without_repeats_or_queries() {
        let error = layers(&[
            "client error (Connect)",
            "tcp connect error",
            "tcp connect error",
            "Connection refused (os error 111)",
        ]);
        assert_eq!(
            chain_text(&error),
            "client error (Connect): tcp connect error: Connection refused (os error 111)"
        );
        let error = layers(&["error sending request for url (https://a.test/t?key=k-1#f)"]);
        assert_eq!(
            chain_text(&error),
            "error sending request for url (https://a.test/t)"
        );
        let long = layers(&["outer", &*"middle ".repeat(30).leak(), "root cause"]);
        assert_eq!(chain_text(&long), "outer: …: root cause");
    }

    #[test]
    fn a_scheme_the_transport_cannot_speak_is_recognised() {
        for said in [
            "invalid URL, scheme is not http",
            "unsupported scheme http",
            "https required but URI was not https",
            "URL scheme is not allowed",
        ] {
            assert!(cannot_speak_scheme(&layers(&[
                "client error (Connect)",
                said
            ])));
        }
        assert!(!cannot_speak_scheme(&layers(&[
            "client error (Connect)",
            "Connection refused (os error 111)"
        ])));
    }

    #[test]
    fn endpoints_keep_origin_and_path_only() {
        let uri: Uri = "https://me:pw@idp.test:8443/realms/x/token?key=k-1"
            .parse()
            .unwrap();
        assert_eq!(endpoint(&uri), "https://idp.test:8443/realms/x/token");
        let uri: Uri = "http://idp.test/token".parse().unwrap();
        assert_eq!(endpoint(&uri), "http://idp.test/token");
    }
}
