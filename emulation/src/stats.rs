//! What an emulation counted: a lock-free set of counters and the snapshot users read.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of what an [`Emulation`](super::Emulation) has seen, from
/// [`Emulation::stats`](super::Emulation::stats).
///
/// The first five counters are disjoint: an auth call counts in exactly one of `logins`,
/// `rejected_logins`, `refreshes`, `rejected_refreshes` and `violations`, or in none when an
/// injected fault answered it before it was processed (a fixed [`Fault`](super::Fault), the
/// outage window, or a random 5xx, 429 or reset [`FaultKind`](super::FaultKind)). Calls that a
/// random [`FaultKind::Slow`](super::FaultKind::Slow) delays, or whose successful answer a 2xx
/// fault spoils, are processed and count there as usual.
///
/// The other counters overlap those: `needless_logins` is part of `logins`,
/// `refresh_token_reuse` part of `violations`, and `faults`, `outage_calls` and
/// `redirects_followed` count calls whatever else they counted as.
///
/// The counters of the OAuth2 extensions ([`OAuthExtensions`](super::OAuthExtensions)) stand
/// apart: `token_exchanges` and `dpop_nonce_challenges` count token endpoint calls that count in
/// none of the first five (a token exchange whose subject token is unknown counts in
/// `rejected_logins`); `client_assertions`, `client_certificates`, `certificate_bound_uses` and
/// `dpop_proofs` count what was verified on the way,
/// whatever the call then counted as; `revoked_token_uses` is part of `violations`.
///
/// `rejected_*` count well-formed calls whose credentials or token were wrong, expired or
/// revoked, which is normal; `violations` count protocol misuse, which a correct client never
/// commits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Successful logins (for OAuth2 also `client_credentials` grants).
    pub logins: u64,
    /// Successful refreshes.
    pub refreshes: u64,
    /// Logins refused for wrong credentials (or a wrong client id or secret).
    pub rejected_logins: u64,
    /// Refreshes refused because the refresh token was expired, revoked or unknown (or the client
    /// credentials were wrong).
    pub rejected_refreshes: u64,
    /// Protocol misuse by the client: a refresh token sent again after it was used, a wrong
    /// content type, a missing parameter, credentials sent to a refresh endpoint, a premature
    /// refresh (Intergiro), `Authorization` on a Tradecloud refresh, two client authentication
    /// methods at once (OAuth2), and the like. A correct client produces none.
    pub violations: u64,
    /// The part of `violations` that re-sent a refresh token already exchanged (rotation),
    /// including one consumed by a call whose answer a 2xx fault spoiled.
    pub refresh_token_reuse: u64,
    /// The part of `logins` made while a refresh token this emulation had delivered was still
    /// good (not used, expired or revoked): a login the client could have spared itself by
    /// refreshing. A client that refreshes properly makes none, except after it dropped its
    /// refresh token for a reason, and except union-service clients, whose document says to log
    /// in again after any failed refresh.
    pub needless_logins: u64,
    /// Auth calls answered with an injected fault: the fixed [`Fault`](super::Fault), the outage
    /// window, or a random [`FaultKind`](super::FaultKind) (`Slow` ones included, and 2xx faults
    /// when they replaced a successful answer).
    pub faults: u64,
    /// Auth calls that arrived inside the outage window
    /// ([`Emulation::set_outage`](super::Emulation::set_outage)).
    pub outage_calls: u64,
    /// Resource requests answered 200.
    pub resource_ok: u64,
    /// Resource requests answered 401 (no, unknown, expired or revoked access token).
    pub resource_unauthorized: u64,
    /// Auth calls that arrived at the target of a [`Fault::Redirect`](super::Fault::Redirect):
    /// a client that followed the redirect and sent its credentials or refresh token to a URL it
    /// was never configured with. A client that does not follow redirects makes none.
    pub redirects_followed: u64,
    /// Client assertions (`client_secret_jwt`, `private_key_jwt`) that verified and were
    /// accepted: signature, claims and a fresh `jti`.
    pub client_assertions: u64,
    /// Mutual TLS client authentications (`tls_client_auth`, `self_signed_tls_client_auth`)
    /// that verified: the registered certificate, over TLS, with no secret beside it.
    pub client_certificates: u64,
    /// Certificate-bound access tokens (RFC 8705 3) the resource accepted over a connection
    /// presenting their certificate.
    pub certificate_bound_uses: u64,
    /// DPoP proofs that verified and were accepted, at the token endpoint and the resource.
    pub dpop_proofs: u64,
    /// `use_dpop_nonce` challenges issued, at either end: normal for a client's first request,
    /// or after the nonce rotated past its grace period; not violations.
    pub dpop_nonce_challenges: u64,
    /// Revocation requests (RFC 7009) answered 200, whether or not the token was still live.
    pub revocation_requests: u64,
    /// The part of `violations` that sent the resource an access token the client itself had
    /// revoked.
    pub revoked_token_uses: u64,
    /// Successful token exchanges (RFC 8693).
    pub token_exchanges: u64,
    /// Discovery documents served.
    pub discovery_fetches: u64,
    /// Introspection requests (RFC 7662) answered, for active tokens and others alike.
    pub introspections: u64,
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) logins: AtomicU64,
    pub(super) refreshes: AtomicU64,
    pub(super) rejected_logins: AtomicU64,
    pub(super) rejected_refreshes: AtomicU64,
    pub(super) violations: AtomicU64,
    pub(super) refresh_token_reuse: AtomicU64,
    pub(super) needless_logins: AtomicU64,
    pub(super) faults: AtomicU64,
    pub(super) outage_calls: AtomicU64,
    pub(super) resource_ok: AtomicU64,
    pub(super) resource_unauthorized: AtomicU64,
    pub(super) redirects_followed: AtomicU64,
    pub(super) client_assertions: AtomicU64,
    pub(super) client_certificates: AtomicU64,
    pub(super) certificate_bound_uses: AtomicU64,
    pub(super) dpop_proofs: AtomicU64,
    pub(super) dpop_nonce_challenges: AtomicU64,
    pub(super) revocation_requests: AtomicU64,
    pub(super) revoked_token_uses: AtomicU64,
    pub(super) token_exchanges: AtomicU64,
    pub(super) discovery_fetches: AtomicU64,
    pub(super) introspections: AtomicU64,
}

/// Counts one event; the counters are independent, so no ordering beyond the atomic is needed.
pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(super) fn snapshot(&self) -> Stats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            logins: load(&self.logins),
            refreshes: load(&self.refreshes),
            rejected_logins: load(&self.rejected_logins),
            rejected_refreshes: load(&self.rejected_refreshes),
            violations: load(&self.violations),
            refresh_token_reuse: load(&self.refresh_token_reuse),
            needless_logins: load(&self.needless_logins),
            faults: load(&self.faults),
            outage_calls: load(&self.outage_calls),
            resource_ok: load(&self.resource_ok),
            resource_unauthorized: load(&self.resource_unauthorized),
            redirects_followed: load(&self.redirects_followed),
            client_assertions: load(&self.client_assertions),
            client_certificates: load(&self.client_certificates),
            certificate_bound_uses: load(&self.certificate_bound_uses),
            dpop_proofs: load(&self.dpop_proofs),
            dpop_nonce_challenges: load(&self.dpop_nonce_challenges),
            revocation_requests: load(&self.revocation_requests),
            revoked_token_uses: load(&self.revoked_token_uses),
            token_exchanges: load(&self.token_exchanges),
            discovery_fetches: load(&self.discovery_fetches),
            introspections: load(&self.introspections),
        }
    }
}
