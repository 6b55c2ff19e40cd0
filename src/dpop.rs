//! DPoP on the wire (RFC 9449): a layer's key, the proofs its requests and auth calls carry, and
//! the nonces servers hand out, one per origin.
//!
//! A layer whose policy has a [`DpopKey`](crate::jose::DpopKey) (feature `jose`) signs a proof
//! for every auth call and for every request sent with a DPoP-bound token (an answer whose
//! `token_type` is `DPoP`), and sends that token as `Authorization: DPoP <token>`. A server asks
//! for a nonce with a challenge: `400 {"error":"use_dpop_nonce"}` from the authorization server
//! (the auth call is made again, in the same attempt, with a fresh assertion), `401` with
//! `WWW-Authenticate: DPoP error="use_dpop_nonce"` from a resource server (the request is
//! replayed, free of the replay budget); both carry the nonce in `DPoP-Nonce`, which every
//! answer may update. Without the `jose` feature there is no key, and [`Dpop`] has no value.

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderName, StatusCode};

/// The `DPoP` request header: the proof.
pub(crate) const DPOP: HeaderName = HeaderName::from_static("dpop");

/// Which server a nonce is from: an authorization server and a resource server on one origin
/// keep nonces of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum End {
    /// The authorization server: auth calls.
    Auth,
    /// A resource server: requests.
    Resource,
}

/// How many times one request or auth call is sent again for a nonce: one challenge is normal
/// (the first call to a server), a second means the nonce rotated meanwhile; a third is a server
/// that never takes the nonces it hands out.
pub(crate) const MAX_NONCE_RETRIES: u8 = 2;

/// A resource server's nonce challenge (RFC 9449 §9): 401 with a `DPoP` challenge whose `error`
/// is `use_dpop_nonce`.
pub(crate) fn resource_challenge(status: StatusCode, headers: &HeaderMap) -> bool {
    status == StatusCode::UNAUTHORIZED
        && headers.get_all(WWW_AUTHENTICATE).iter().any(|value| {
            value.to_str().is_ok_and(|value| {
                value
                    .get(..5)
                    .is_some_and(|scheme| scheme.eq_ignore_ascii_case("dpop "))
                    && value.contains("use_dpop_nonce")
            })
        })
}

/// An authorization server's nonce challenge (RFC 9449 §8): 400 with `error` `use_dpop_nonce`,
/// as `error` reads it from the body.
pub(crate) fn auth_challenge(status: StatusCode, error: Option<&str>) -> bool {
    status == StatusCode::BAD_REQUEST && error == Some("use_dpop_nonce")
}

#[cfg(feature = "jose")]
mod keyed {
    use std::fmt;
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

    use bytes::Bytes;
    use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

    use super::End;
    use crate::error::AuthError;
    use crate::jose::{DpopKey, Htu, Origin};
    use crate::secret::Secret;

    /// The `DPoP-Nonce` response header.
    pub(crate) const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

    /// How many origins' nonces a layer keeps; past that, the oldest are forgotten (and asked
    /// for again by their servers).
    const ORIGINS_KEPT: usize = 64;

    /// A layer's DPoP key and the nonces its servers gave, by end and origin.
    pub(crate) struct Dpop {
        key: DpopKey,
        /// Oldest first.
        // NOTE: a list, not a map: a layer talks to a server or two, and a lookup by an origin
        // borrowed from the proof's `htu` compares a few strings where a map hashed them.
        nonces: Mutex<Vec<Nonce>>,
    }

    /// A server's nonce.
    struct Nonce {
        end: End,
        origin: Box<str>,
        value: Arc<str>,
    }

    impl Dpop {
        pub(crate) fn new(key: DpopKey) -> Self {
            Self {
                key,
                nonces: Mutex::new(Vec::new()),
            }
        }

        /// The key's RFC 7638 thumbprint: what a token bound to it names.
        pub(crate) fn thumbprint(&self) -> &str {
            self.key.thumbprint()
        }

        /// A proof for a request of `method` to `uri`, with `ath` when the request carries a
        /// token (its [`ath`], computed once per token), and the origin's nonce when its server
        /// gave one.
        ///
        /// Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) for a URI that is not
        /// absolute.
        pub(crate) fn proof(
            &self,
            end: End,
            method: &Method,
            uri: &Uri,
            ath: Option<&str>,
        ) -> Result<HeaderValue, AuthError> {
            let htu = Htu::of(uri)?;
            let nonce = self.nonce(end, htu.origin());
            let proof = self.key.sign(method, &htu, ath, nonce.as_deref())?;
            // base64url and dots: always a header value.
            HeaderValue::from_maybe_shared(Bytes::from(proof))
                .map_err(|_| AuthError::config("a DPoP proof is not a header value"))
        }

        /// The nonce `end`'s server at `origin` last gave.
        pub(super) fn nonce(&self, end: End, origin: &str) -> Option<Arc<str>> {
            let nonces = self.lock();
            nonces
                .iter()
                .find(|nonce| nonce.end == end && *nonce.origin == *origin)
                .map(|nonce| Arc::clone(&nonce.value))
        }

        /// Keeps the `DPoP-Nonce` of an answer from `uri`'s origin; whether the answer had one.
        ///
        /// NOTE: not whether it was new: requests sent at once meet the same challenge, and
        /// each must go again with the nonce the first of them kept.
        pub(crate) fn remember(&self, end: End, uri: &Uri, headers: &HeaderMap) -> bool {
            let Some(nonce) = nonce_of(headers) else {
                return false;
            };
            let Ok(origin) = Origin::of(uri) else {
                return true;
            };
            let mut nonces = self.lock();
            match nonces
                .iter_mut()
                .find(|kept| kept.end == end && origin.is(&kept.origin))
            {
                Some(kept) if *kept.value == *nonce => {}
                Some(kept) => kept.value = nonce.into(),
                None => {
                    if nonces.len() >= ORIGINS_KEPT {
                        nonces.remove(0);
                    }
                    let mut kept = String::new();
                    origin.write_to(&mut kept);
                    nonces.push(Nonce {
                        end,
                        origin: kept.into(),
                        value: nonce.into(),
                    });
                }
            }
            true
        }

        fn lock(&self) -> MutexGuard<'_, Vec<Nonce>> {
            // Plain data updated in single statements: a poisoned lock is still consistent.
            self.nonces.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    /// An answer's `DPoP-Nonce`. RFC 9449 §8.1: the nonce is an opaque string of NQCHAR; an
    /// empty one is none.
    fn nonce_of(headers: &HeaderMap) -> Option<&str> {
        headers
            .get(DPOP_NONCE)
            .and_then(|v| v.to_str().ok())
            .filter(|nonce| !nonce.is_empty())
    }

    /// The `ath` of the proofs a request with `access_token` carries (RFC 9449 §4.2): the same
    /// for every request with the token, so computed once, when the token is stored.
    pub(crate) fn ath(access_token: &Secret) -> Option<Box<str>> {
        Some(crate::jose::ath(access_token))
    }

    impl fmt::Debug for Dpop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Dpop")
                .field("key", &self.key)
                .field("origins", &self.lock().len())
                .finish()
        }
    }
}

#[cfg(not(feature = "jose"))]
mod keyed {
    use http::{HeaderMap, HeaderValue, Method, Uri};

    use super::End;
    use crate::error::AuthError;
    use crate::secret::Secret;

    /// Without the `jose` feature no layer has a DPoP key: no value of this type exists.
    #[derive(Debug)]
    pub(crate) enum Dpop {}

    impl Dpop {
        pub(crate) fn thumbprint(&self) -> &str {
            match *self {}
        }

        pub(crate) fn proof(
            &self,
            _: End,
            _: &Method,
            _: &Uri,
            _: Option<&str>,
        ) -> Result<HeaderValue, AuthError> {
            match *self {}
        }

        pub(crate) fn remember(&self, _: End, _: &Uri, _: &HeaderMap) -> bool {
            match *self {}
        }
    }

    /// No token is DPoP-bound without the `jose` feature.
    pub(crate) fn ath(_: &Secret) -> Option<Box<str>> {
        None
    }
}

pub(crate) use self::keyed::{ath, Dpop};

/// The layer's DPoP state, when its policy has a key.
pub(crate) fn of(policy: &crate::provider::TokenPolicy) -> Option<std::sync::Arc<Dpop>> {
    #[cfg(feature = "jose")]
    return policy
        .dpop
        .clone()
        .map(|key| std::sync::Arc::new(Dpop::new(key)));
    #[cfg(not(feature = "jose"))]
    {
        let _ = policy;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let mut headers = HeaderMap::new();
        headers.insert(
            WWW_AUTHENTICATE,
            r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#
                .parse()
                .unwrap(),
        );
        assert!(resource_challenge(StatusCode::UNAUTHORIZED, &headers));
        assert!(!resource_challenge(StatusCode::FORBIDDEN, &headers));
        headers.insert(
            WWW_AUTHENTICATE,
            r#"Bearer error="use_dpop_nonce""#.parse().unwrap(),
        );
        assert!(!resource_challenge(StatusCode::UNAUTHORIZED, &headers));
        headers.insert(
            WWW_AUTHENTICATE,
            r#"DPoP error="invalid_token""#.parse().unwrap(),
        );
        assert!(!resource_challenge(StatusCode::UNAUTHORIZED, &headers));
        assert!(auth_challenge(
            StatusCode::BAD_REQUEST,
            Some("use_dpop_nonce")
        ));
        assert!(!auth_challenge(
            StatusCode::BAD_REQUEST,
            Some("invalid_grant")
        ));
        assert!(!auth_challenge(
            StatusCode::UNAUTHORIZED,
            Some("use_dpop_nonce")
        ));
    }

    #[cfg(feature = "jose")]
    #[test]
    fn nonces_are_kept_per_origin() {
        use super::keyed::DPOP_NONCE;
        use crate::jose::{Algorithm, DpopKey, SigningKey};
        let dpop = Dpop::new(DpopKey::new(
            SigningKey::generate(Algorithm::ES256).unwrap(),
        ));
        let mut answer = HeaderMap::new();
        answer.insert(DPOP_NONCE, "n-1".parse().unwrap());
        let a: http::Uri = "https://a.test/x".parse().unwrap();
        let a_default_port: http::Uri = "HTTPS://A.test:443/y?q".parse().unwrap();
        let b: http::Uri = "https://a.test:8443/x".parse().unwrap();
        let nonce = |end, origin: &str| dpop.nonce(end, origin);
        assert!(dpop.remember(End::Resource, &a, &answer));
        assert!(
            dpop.remember(End::Resource, &a_default_port, &answer),
            "same origin, same nonce: still a nonce"
        );
        assert_eq!(
            nonce(End::Resource, "https://a.test").as_deref(),
            Some("n-1")
        );
        assert_eq!(nonce(End::Resource, "https://a.test:8443"), None);
        assert_eq!(nonce(End::Auth, "https://a.test"), None);
        answer.insert(DPOP_NONCE, "n-2".parse().unwrap());
        assert!(dpop.remember(End::Resource, &b, &answer));
        assert!(dpop.remember(End::Auth, &a, &answer));
        assert_eq!(
            nonce(End::Resource, "https://a.test").as_deref(),
            Some("n-1")
        );
        assert_eq!(
            nonce(End::Resource, "https://a.test:8443").as_deref(),
            Some("n-2")
        );
        assert_eq!(nonce(End::Auth, "https://a.test").as_deref(), Some("n-2"));
        assert!(!dpop.remember(End::Resource, &a, &HeaderMap::new()));
        answer.insert(DPOP_NONCE, "n-3".parse().unwrap());
        assert!(dpop.remember(End::Resource, &a_default_port, &answer));
        assert_eq!(
            nonce(End::Resource, "https://a.test").as_deref(),
            Some("n-3"),
            "a new nonce replaces the origin's"
        );
        assert_eq!(format!("{dpop:?}").matches("origins: 3").count(), 1);
    }

    #[cfg(feature = "jose")]
    #[test]
    fn the_oldest_origin_is_forgotten_first() {
        use super::keyed::DPOP_NONCE;
        use crate::jose::{Algorithm, DpopKey, SigningKey};
        let dpop = Dpop::new(DpopKey::new(
            SigningKey::generate(Algorithm::EdDSA).unwrap(),
        ));
        let mut answer = HeaderMap::new();
        answer.insert(DPOP_NONCE, "n".parse().unwrap());
        for port in 1..=65 {
            let uri: http::Uri = format!("https://a.test:{port}/").parse().unwrap();
            assert!(dpop.remember(End::Resource, &uri, &answer));
        }
        assert_eq!(dpop.nonce(End::Resource, "https://a.test:1"), None);
        assert!(dpop.nonce(End::Resource, "https://a.test:2").is_some());
        assert!(dpop.nonce(End::Resource, "https://a.test:65").is_some());
    }
}
