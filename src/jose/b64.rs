//! base64url without padding (RFC 7515 §2), the one encoding of every JOSE part, and fresh
//! random identifiers.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::error::AuthError;

/// Appends the base64url form of `bytes` to `out`.
pub(super) fn encode_into(bytes: &[u8], out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// The base64url form of `bytes`.
pub(super) fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a base64url member of a JWK; `member` names it in the error, never its value.
pub(super) fn decode(value: &str, member: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| AuthError::config(format!("JWK member `{member}` is not base64url")))
}

/// A fresh JWT ID, base64url (22 characters), unique as RFC 9449 §4.2 and RFC 7523 §3 ask:
/// 96 random bits from the system's CSPRNG, drawn once per thread, then a 32-bit count of the
/// thread's IDs ([`Ids`]).
pub(super) fn jti_into(out: &mut String) -> Result<(), AuthError> {
    let jti = jti()?;
    // base64url: ASCII.
    out.push_str(std::str::from_utf8(&jti).unwrap_or_default());
    Ok(())
}

/// [`jti_into`]'s ID, as bytes.
pub(super) fn jti() -> Result<[u8; 22], AuthError> {
    let bytes = IDS.with(|ids| ids.next(std::process::id()))?;
    let mut jti = [0u8; 22];
    URL_SAFE_NO_PAD
        .encode_slice(bytes, &mut jti)
        .map_err(|_| AuthError::config("a JWT ID longer than 22 characters"))?;
    Ok(jti)
}

thread_local! {
    static IDS: Ids = const { Ids { state: std::cell::Cell::new(None) } };
}

/// A thread's JWT IDs: a random 96-bit prefix and a count. IDs of one thread differ by the
/// count; of two threads or processes, by the prefix (two draws of 96 bits meet with
/// probability 2^-96). A new prefix is drawn when the count runs out, and when the process id
/// differs from the one the prefix was drawn in: a child forked by this thread starts with a
/// copy of its state, and must not send its parent's next IDs. (A draw per ID cost 0.43 µs
/// here, the process id 0.14 µs.)
struct Ids {
    /// The process id the prefix was drawn in, the prefix, and the next count.
    state: std::cell::Cell<Option<(u32, [u8; 12], u32)>>,
}

impl Ids {
    /// The next ID's 16 bytes, in process `pid`.
    fn next(&self, pid: u32) -> Result<[u8; 16], AuthError> {
        let (prefix, count) = match self.state.get() {
            Some((drawn_in, prefix, count)) if drawn_in == pid && count != u32::MAX => {
                (prefix, count)
            }
            _ => {
                let mut prefix = [0u8; 12];
                aws_lc_rs::rand::fill(&mut prefix)
                    .map_err(|_| AuthError::config("no randomness for a JWT ID"))?;
                (prefix, 0)
            }
        };
        self.state.set(Some((pid, prefix, count + 1)));
        let mut bytes = [0u8; 16];
        bytes[..12].copy_from_slice(&prefix);
        bytes[12..].copy_from_slice(&count.to_be_bytes());
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_base64url_and_distinct_within_and_across_threads() {
        let ids = |n: usize| -> Vec<[u8; 22]> { (0..n).map(|_| jti().unwrap()).collect() };
        let mine = ids(10_000);
        let theirs = std::thread::spawn(move || ids(10_000)).join().unwrap();
        let all: HashSet<[u8; 22]> = mine.iter().chain(&theirs).copied().collect();
        assert_eq!(all.len(), 20_000);
        for id in &all {
            let bytes = URL_SAFE_NO_PAD.decode(id).unwrap();
            assert_eq!(bytes.len(), 16);
        }
        // The two threads drew their own prefixes.
        let prefix = |id: &[u8; 22]| URL_SAFE_NO_PAD.decode(id).unwrap()[..12].to_vec();
        assert_ne!(prefix(&mine[0]), prefix(&theirs[0]));
        assert_eq!(prefix(&mine[0]), prefix(&mine[9_999]));
    }

    #[test]
    fn a_new_process_or_a_spent_count_draws_a_new_prefix() {
        let ids = Ids {
            state: std::cell::Cell::new(None),
        };
        let first = ids.next(7).unwrap();
        let second = ids.next(7).unwrap();
        assert_eq!(first[..12], second[..12]);
        assert_eq!(
            (&first[12..], &second[12..]),
            (&[0, 0, 0, 0][..], &[0, 0, 0, 1][..])
        );
        // A forked child (another process id) with the parent's state.
        let child = ids.next(8).unwrap();
        assert_ne!(child[..12], first[..12]);
        assert_eq!(child[12..], [0, 0, 0, 0]);
        // The count runs out: a new prefix, the count from 0.
        let prefix: [u8; 12] = child[..12].try_into().unwrap();
        ids.state.set(Some((8, prefix, u32::MAX)));
        let renewed = ids.next(8).unwrap();
        assert_ne!(renewed[..12], prefix);
        assert_eq!(renewed[12..], [0, 0, 0, 0]);
    }
}
