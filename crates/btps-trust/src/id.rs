//! Trust ids, identity ids, token hashes and token generation ([PROTOCOL.md §7.2, §8.1]).
//!
//! [PROTOCOL.md §7.2, §8.1]: https://btps.invalid/PROTOCOL.md#72-trust-id

use std::fmt;

use aws_lc_rs::{constant_time, digest};
use base64::Engine as _;
use btps_crypto::Randomness;

use crate::{Result, TrustError};

/// `trustId(sender, receiver)`: lower-case hex SHA-256 of the UTF-8 bytes of
/// `lowercase(sender + ":" + receiver)` (full Unicode lower-casing). Direction-sensitive and
/// case-insensitive. For agent records `sender` is the `agentId`.
///
/// # Examples
///
/// ```
/// use btps_trust::trust_id;
/// let id = trust_id("billing$vendorcorp.com", "pay$client.com");
/// assert_eq!(id, "7cedf7a0bd8f21ab0f3d26cceebaa87e7ad177114ea51d23dc0123b4fe017e3d");
/// assert_eq!(id, trust_id("Billing$VendorCorp.com", "pay$client.com"));
/// assert_ne!(id, trust_id("pay$client.com", "billing$vendorcorp.com"));
/// ```
pub fn trust_id(sender: &str, receiver: &str) -> String {
    let text = format!("{sender}:{receiver}").to_lowercase();
    sha256_hex(text.as_bytes())
}

/// `computeId(identity)`: lower-case hex SHA-256 of `lowercase(identity)`, the identity-store
/// record id (§7.2, §7.5).
///
/// # Examples
///
/// ```
/// use btps_trust::compute_id;
/// assert_eq!(
///     compute_id("Pay$Client.com"),
///     "0d905f83ae3cf0ea6c2e0103718c6609f91b7920b7797d1422405b9f91325114"
/// );
/// ```
pub fn compute_id(identity: &str) -> String {
    sha256_hex(identity.to_lowercase().as_bytes())
}

fn sha256_hex(bytes: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, bytes);
    hex(d.as_ref())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// SHA-256 of a token (auth or refresh). Stores keep only this, never the token (§8.1).
///
/// Equality ([`TokenHash::ct_eq`], and `==`) is constant-time in the hash bytes.
///
/// # Examples
///
/// ```
/// use btps_trust::TokenHash;
/// let h = TokenHash::of("ABCD2345EFGH");
/// assert!(h.ct_eq(&TokenHash::of("ABCD2345EFGH")));
/// assert!(!h.ct_eq(&TokenHash::of("abcd2345efgh")), "tokens match case-sensitively");
/// assert_eq!(TokenHash::from_hex(&h.to_hex()), Some(h));
/// ```
#[derive(Clone, Copy, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hashes a token exactly as given (case-sensitive; the reference lowercased).
    pub fn of(token: &str) -> Self {
        let d = digest::digest(&digest::SHA256, token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }

    /// Wraps 32 hash bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The hash bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in b.chunks_exact(2).enumerate() {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(Self(out))
    }

    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &Self) -> bool {
        constant_time::verify_slices_are_equal(&self.0, &other.0).is_ok()
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl std::hash::Hash for TokenHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..12])
    }
}

/// The auth-token alphabet (§8.1): 32 characters without `0`, `1`, `I`, `O`.
pub const AUTH_TOKEN_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Default auth-token length.
pub const AUTH_TOKEN_LEN: usize = 12;

/// A fresh auth token (the one-time onboarding code, §8.1): `len` characters (clamped to
/// 8–24) drawn uniformly from [`AUTH_TOKEN_ALPHABET`].
///
/// # Errors
///
/// [`TrustError::Randomness`] when the source fails.
///
/// # Examples
///
/// ```
/// let t = btps_trust::generate_auth_token(&btps_crypto::SystemRandom, 12).unwrap();
/// assert_eq!(t.len(), 12);
/// assert!(t.bytes().all(|b| btps_trust::AUTH_TOKEN_ALPHABET.contains(&b)));
/// ```
pub fn generate_auth_token(rng: &dyn Randomness, len: usize) -> Result<String> {
    let len = len.clamp(8, 24);
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes).map_err(|_| TrustError::Randomness)?;
    // 256 is a multiple of 32: the low five bits are uniform.
    Ok(bytes
        .iter()
        .map(|b| char::from(AUTH_TOKEN_ALPHABET[usize::from(b & 31)]))
        .collect())
}

/// A fresh refresh token (§8.1): base64url without padding of 32 random bytes (43
/// characters).
///
/// # Errors
///
/// [`TrustError::Randomness`] when the source fails.
pub fn generate_refresh_token(rng: &dyn Randomness) -> Result<String> {
    let mut bytes = [0u8; 32];
    rng.fill(&mut bytes).map_err(|_| TrustError::Randomness)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A fresh agent id (§8.1): `btps_ag_` + a random UUIDv4.
///
/// # Errors
///
/// [`TrustError::Randomness`] when the source fails.
///
/// # Examples
///
/// ```
/// let id = btps_trust::generate_agent_id(&btps_crypto::SystemRandom).unwrap();
/// assert!(id.starts_with("btps_ag_") && id.len() == 8 + 36);
/// assert_eq!(&id[8 + 14..8 + 15], "4");
/// ```
pub fn generate_agent_id(rng: &dyn Randomness) -> Result<String> {
    Ok(format!("btps_ag_{}", generate_uuid_v4(rng)?))
}

/// A fresh random UUIDv4 in its lower-case text form (artifact, reply and draft ids).
///
/// # Errors
///
/// [`TrustError::Randomness`] when the source fails.
pub fn generate_uuid_v4(rng: &dyn Randomness) -> Result<String> {
    let mut b = [0u8; 16];
    rng.fill(&mut b).map_err(|_| TrustError::Randomness)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        // PROTOCOL.md §7.2 / Appendix A.
        let want = "7cedf7a0bd8f21ab0f3d26cceebaa87e7ad177114ea51d23dc0123b4fe017e3d";
        assert_eq!(trust_id("billing$vendorcorp.com", "pay$client.com"), want);
        assert_eq!(trust_id("Billing$VendorCorp.com", "pay$client.com"), want);
        assert_eq!(trust_id("BILLING$VENDORCORP.COM", "PAY$CLIENT.COM"), want);
        assert_eq!(
            compute_id("Pay$Client.com"),
            "0d905f83ae3cf0ea6c2e0103718c6609f91b7920b7797d1422405b9f91325114"
        );
        assert_eq!(compute_id("pay$client.com"), compute_id("PAY$CLIENT.COM"));
    }

    #[test]
    fn full_unicode_lowercasing() {
        assert_eq!(
            trust_id("ÄRGER$X.COM", "b$y.com"),
            trust_id("ärger$x.com", "b$y.com")
        );
    }

    #[test]
    fn token_hash_hex_roundtrip() {
        let h = TokenHash::of("x");
        assert_eq!(TokenHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(TokenHash::from_hex("zz"), None);
        assert_eq!(TokenHash::from_hex(&"g".repeat(64)), None);
        assert_ne!(TokenHash::of("a"), TokenHash::of("A"));
    }

    #[test]
    fn uuid_shape() {
        let id = generate_uuid_v4(&btps_crypto::SystemRandom).unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(id, generate_uuid_v4(&btps_crypto::SystemRandom).unwrap());
    }

    #[test]
    fn generated_tokens() {
        let rng = btps_crypto::SystemRandom;
        assert_eq!(generate_auth_token(&rng, 2).unwrap().len(), 8);
        assert_eq!(generate_auth_token(&rng, 99).unwrap().len(), 24);
        let r = generate_refresh_token(&rng).unwrap();
        assert_eq!(r.len(), 43);
        assert!(
            r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(r, generate_refresh_token(&rng).unwrap());
    }
}
