//! Where a token may go: the origins (scheme, host, port) a layer's requests carry it to.

use std::fmt;

use http::Uri;

use crate::error::AuthError;

/// The origins a layer puts its token on (RFC 6454: scheme, host and port), set as the policy's
/// [`origins`](super::TokenPolicy::origins).
///
/// A client that also calls other hosts through the same stack (a redirect followed, a link
/// from a response, a second API) would otherwise send the token there too. A request to an
/// origin outside the list goes through the layer untouched, with no token (the default), or
/// fails with [`ErrorKind::Config`](crate::ErrorKind::Config) after
/// [`refuse_others`](Self::refuse_others); either way no auth call is made for it. A request
/// whose URI names no origin (a path alone) is outside every list. Hosts compare without
/// regard to case, and a port left out is the scheme's default (80 for `http`, 443 for `https`).
///
/// ```
/// use tower_token_auth::provider::Origins;
///
/// let origins = Origins::new(["https://api.example.com", "https://files.example.com:8443"])?;
/// // Not an origin: a path, a query or credentials in it.
/// assert!(Origins::new(["https://api.example.com/v1"]).is_err());
/// # let _ = origins.refuse_others();
/// # Ok::<(), tower_token_auth::AuthError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Origins {
    list: Vec<Origin>,
    refuse_others: bool,
}

#[derive(Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origins {
    /// The origins named, each as `scheme://host[:port]` (a trailing `/` is allowed). Fails
    /// with [`ErrorKind::Config`](crate::ErrorKind::Config) naming the first that is not an
    /// origin, or when none is given.
    pub fn new<'a>(origins: impl IntoIterator<Item = &'a str>) -> Result<Self, AuthError> {
        let list = origins
            .into_iter()
            .map(|origin| {
                parse(origin).ok_or_else(|| {
                    // User info may be a password: never quoted.
                    let shown = match origin.contains('@') {
                        true => "an origin with user info".to_owned(),
                        false => format!("{origin:?}"),
                    };
                    AuthError::config(format!(
                        "{shown} is not an origin (scheme://host[:port], no path, query or \
                         user info)"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() {
            return Err(AuthError::config(
                "an origin list names at least one origin",
            ));
        }
        Ok(Self {
            list,
            refuse_others: false,
        })
    }

    /// A request to any other origin fails with [`ErrorKind::Config`](crate::ErrorKind::Config)
    /// instead of going out without the token.
    pub fn refuse_others(mut self) -> Self {
        self.refuse_others = true;
        self
    }

    /// Whether a request to `uri` may carry the token.
    #[inline]
    pub(crate) fn allows(&self, uri: &Uri) -> bool {
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return false;
        };
        let port = authority.port_u16().or_else(|| default_port(scheme));
        self.allows_origin(scheme, authority.host(), port)
    }

    /// Whether a request to `scheme://host:port` (`port` with the scheme's default filled in)
    /// may carry the token.
    #[inline]
    pub(crate) fn allows_origin(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        self.list.iter().any(|origin| {
            origin.port == port
                && origin.host.eq_ignore_ascii_case(host)
                && origin.scheme.eq_ignore_ascii_case(scheme)
        })
    }

    /// Whether a request outside the list fails.
    pub(crate) fn refuses_others(&self) -> bool {
        self.refuse_others
    }
}

/// The error of a request to an origin outside the list, with [`Origins::refuse_others`].
pub(crate) fn refused() -> AuthError {
    AuthError::config("the request's origin is not one the layer sends its token to")
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme.to_ascii_lowercase().as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

fn parse(origin: &str) -> Option<Origin> {
    let uri: Uri = origin.parse().ok()?;
    let (scheme, authority) = (uri.scheme_str()?, uri.authority()?);
    let bare = matches!(uri.path(), "" | "/") && uri.query().is_none();
    if !bare || authority.as_str().contains('@') || authority.host().is_empty() {
        return None;
    }
    Some(Origin {
        scheme: scheme.to_ascii_lowercase(),
        host: authority.host().to_ascii_lowercase(),
        port: authority.port_u16().or_else(|| default_port(scheme)),
    })
}

impl fmt::Debug for Origins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for origin in &self.list {
            list.entry(&format_args!(
                "{}://{}:{}",
                origin.scheme,
                origin.host,
                origin
                    .port
                    .map_or_else(|| "-".to_owned(), |p| p.to_string())
            ));
        }
        list.finish()?;
        if self.refuse_others {
            f.write_str(" (others refused)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_by_scheme_host_and_port() {
        let origins = Origins::new(["https://API.example.com", "http://127.0.0.1:8080/"]).unwrap();
        let allows = |uri: &str| origins.allows(&uri.parse().unwrap());
        assert!(allows("https://api.example.com/v1/items?page=2"));
        assert!(allows("HTTPS://api.EXAMPLE.com:443/"));
        assert!(allows("http://127.0.0.1:8080/x"));
        assert!(!allows("http://api.example.com/v1"), "another scheme");
        assert!(!allows("https://api.example.com:8443/v1"), "another port");
        assert!(!allows("https://evil.example.com/"), "another host");
        assert!(!allows("https://api.example.com.evil.test/"), "a suffix");
        assert!(!allows("http://127.0.0.1/x"), "the default port is another");
        assert!(!allows("/v1/items"), "no origin");
    }

    #[test]
    fn what_is_not_an_origin_is_a_config_error() {
        for bad in [
            "api.example.com",
            "https://api.example.com/v1",
            "https://api.example.com?q=1",
            "https://user:pw@api.example.com",
            "",
        ] {
            let err = Origins::new([bad]).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Config, "{bad}");
            assert!(!format!("{err}").contains("pw@"), "{err}");
        }
        assert!(Origins::new([]).is_err());
    }
}
