//! DPoP (RFC 9449): checking a proof as section 4.3 lists, and the server nonces of sections 8
//! and 9. The token endpoint and the resource each answer a failed check their own way
//! (`oauth2.rs` and `protected.rs`); what they share is here.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::{HeaderName, HeaderValue};
use http::request::Parts;

use super::extensions::{Dpop, DpopNonces, SigningAlg};
use super::jose::{self, JtiCache, KeyError};
use super::wire::Resp;

/// The `DPoP` request header.
pub(super) const DPOP: HeaderName = HeaderName::from_static("dpop");
/// The `DPoP-Nonce` response header.
pub(super) const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// The DPoP state of one emulation: its settings, the proofs' `jti`s, the nonces of each end.
pub(super) struct DpopState {
    pub(super) config: Dpop,
    jtis: JtiCache,
    pub(super) token_nonces: Option<Nonces>,
    pub(super) resource_nonces: Option<Nonces>,
}

impl DpopState {
    pub(super) fn new(config: Dpop) -> Self {
        let nonces = |on: fn(&DpopNonces) -> bool| {
            config
                .nonces
                .as_ref()
                .filter(|settings| on(settings))
                .map(Nonces::new)
        };
        Self {
            token_nonces: nonces(|n| n.token_endpoint),
            resource_nonces: nonces(|n| n.resource),
            jtis: JtiCache::new(),
            config,
        }
    }

    /// Checks the request's DPoP proof, if it has one: `Ok(None)` without a `DPoP` header.
    /// `access_token` is the token the request carries to a resource (for `ath`); `nonces` those
    /// of the end the request is for.
    pub(super) fn check(
        &self,
        parts: &Parts,
        expected_url: &str,
        access_token: Option<&str>,
        nonces: Option<&Nonces>,
    ) -> Result<Option<Proof>, ProofError> {
        let mut values = parts.headers.get_all(DPOP).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(ProofError::Invalid("more than one DPoP header"));
        }
        let proof = value
            .to_str()
            .ok()
            .and_then(jose::split)
            .ok_or(ProofError::Invalid("DPoP proof is not a compact JWS"))?;
        if !proof
            .header_str("typ")
            .is_some_and(|typ| typ.eq_ignore_ascii_case("dpop+jwt"))
        {
            return Err(ProofError::Invalid("DPoP proof typ is not dpop+jwt"));
        }
        let alg = proof
            .header_str("alg")
            .and_then(SigningAlg::from_name)
            .ok_or(ProofError::Invalid(
                "DPoP proof alg is not an asymmetric algorithm the server supports",
            ))?;
        let jwk = proof
            .header
            .get("jwk")
            .ok_or(ProofError::Invalid("DPoP proof without a jwk header"))?;
        let key = jose::public_key(jwk, alg).map_err(|error| {
            ProofError::Invalid(match error {
                KeyError::Private => "DPoP proof jwk contains a private key",
                KeyError::WrongAlg => "DPoP proof jwk does not suit its alg",
                KeyError::Malformed => "DPoP proof jwk is not a supported public key",
            })
        })?;
        if !proof.verifies(&key.key, jose::algorithm(alg)) {
            return Err(ProofError::Invalid("DPoP proof signature does not verify"));
        }
        let jti = proof
            .claim_str("jti")
            .filter(|jti| !jti.is_empty())
            .ok_or(ProofError::Invalid("DPoP proof without jti"))?;
        if proof.claim_str("htm") != Some(parts.method.as_str()) {
            return Err(ProofError::Invalid(
                "DPoP proof htm is not the request method",
            ));
        }
        let htu = proof.claim_str("htu").and_then(jose::normalized_url);
        if htu.is_none() || htu != jose::normalized_url(expected_url) {
            return Err(ProofError::Invalid("DPoP proof htu is not the request URI"));
        }
        let iat = proof
            .claim_time("iat")
            .ok_or(ProofError::Invalid("DPoP proof without iat"))?;
        let window = jose::secs(self.config.iat_window);
        if iat.abs_diff(jose::now_secs()) > window.unsigned_abs() {
            return Err(ProofError::Invalid("DPoP proof iat outside the window"));
        }
        if let Some(token) = access_token {
            match proof.claim_str("ath") {
                None => return Err(ProofError::Invalid("DPoP proof without ath")),
                Some(ath) if ath != jose::sha256_b64(token) => {
                    return Err(ProofError::Invalid(
                        "DPoP proof ath is not the hash of the access token",
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some(nonces) = nonces {
            if !proof.claim_str("nonce").is_some_and(|n| nonces.accepts(n)) {
                return Err(ProofError::UseNonce);
            }
        }
        let keep = self.config.iat_window.saturating_mul(2);
        if !self.jtis.first_use(jti, keep) {
            return Err(ProofError::Invalid("DPoP proof jti replayed"));
        }
        Ok(Some(Proof {
            jkt: key.thumbprint,
        }))
    }
}

/// A proof that passed every check.
pub(super) struct Proof {
    /// The RFC 7638 thumbprint of its key.
    pub(super) jkt: String,
}

/// Why a proof was refused.
pub(super) enum ProofError {
    /// A broken, forged, misdirected or replayed proof: a violation, with its reason.
    Invalid(&'static str),
    /// A good proof without the current nonce: a challenge, no violation.
    UseNonce,
}

/// The URL a request was sent to, as its proof's `htu` must name it: the `Host` it was sent to
/// (else the server's own address) and its path.
pub(super) fn request_url(parts: &Parts, issuer: &str) -> String {
    match parts
        .headers
        .get(http::header::HOST)
        .and_then(|host| host.to_str().ok())
    {
        Some(host) => format!("http://{host}{}", parts.uri.path()),
        None => format!("{issuer}{}", parts.uri.path()),
    }
}

/// Puts the newest nonce of `nonces` on an answer, if the end demands nonces.
pub(super) fn with_nonce(mut response: Resp, nonces: Option<&Nonces>) -> Resp {
    if let Some(nonces) = nonces {
        if let Ok(value) = HeaderValue::from_str(&nonces.current()) {
            response.headers_mut().insert(DPOP_NONCE, value);
        }
    }
    response
}

struct NonceState {
    current: String,
    since: Instant,
    /// The nonce `current` replaced, and when.
    previous: Option<(String, Instant)>,
}

/// The server nonces of one end: the current one, replaced every `rotate_every`, and the one
/// before it, still accepted for `grace` after it was replaced.
///
/// NOTE: a `std` mutex held for a comparison or a swap, never across an await.
pub(super) struct Nonces {
    state: Mutex<NonceState>,
    rotate_every: Duration,
    grace: Duration,
}

fn fresh_nonce() -> String {
    let mut bytes = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        bytes = fastrand::u128(..).to_le_bytes();
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Nonces {
    pub(super) fn new(settings: &DpopNonces) -> Self {
        Self {
            state: Mutex::new(NonceState {
                current: fresh_nonce(),
                since: Instant::now(),
                previous: None,
            }),
            rotate_every: settings.rotate_every,
            grace: settings.grace,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NonceState> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.since.elapsed() >= self.rotate_every {
            Self::replace(&mut state);
        }
        state
    }

    fn replace(state: &mut NonceState) {
        let now = Instant::now();
        let old = std::mem::replace(&mut state.current, fresh_nonce());
        state.previous = Some((old, now));
        state.since = now;
    }

    /// The nonce to hand out now.
    pub(super) fn current(&self) -> String {
        self.lock().current.clone()
    }

    /// Whether a proof carrying `nonce` is accepted: the current one, or the one before within
    /// its grace period.
    pub(super) fn accepts(&self, nonce: &str) -> bool {
        let state = self.lock();
        state.current == nonce
            || state
                .previous
                .as_ref()
                .is_some_and(|(old, retired)| old == nonce && retired.elapsed() < self.grace)
    }

    /// Replaces the current nonce now (the one replaced is the one clients were handed, even if
    /// its period had run out unnoticed).
    pub(super) fn rotate(&self) {
        Self::replace(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_rotate_with_a_grace_period() {
        let nonces = Nonces::new(&DpopNonces {
            grace: Duration::from_secs(60),
            ..DpopNonces::default()
        });
        let first = nonces.current();
        assert!(nonces.accepts(&first));
        nonces.rotate();
        let second = nonces.current();
        assert_ne!(first, second);
        assert!(nonces.accepts(&first) && nonces.accepts(&second));
        nonces.rotate();
        assert!(!nonces.accepts(&first));
        assert!(nonces.accepts(&second));
        assert!(!nonces.accepts("made-up"));

        let strict = Nonces::new(&DpopNonces {
            grace: Duration::ZERO,
            rotate_every: Duration::ZERO,
            ..DpopNonces::default()
        });
        let nonce = strict.current();
        assert!(!strict.accepts(&nonce));
    }
}
