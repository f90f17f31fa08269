//! Small helpers: the wall clock, fresh ids, random draws.

use std::time::SystemTime;

use btps_crypto::{CryptoError, Randomness as _, SystemRandom};
use btps_types::UnixMillis;

use crate::error::{ClientError, Result};

/// The wall clock, for `issuedAt` members and token expiry.
pub(crate) fn now() -> UnixMillis {
    UnixMillis::from_system_time(SystemTime::now()).unwrap_or(UnixMillis::EPOCH)
}

/// A fresh UUIDv4 for an artifact or request `id`.
pub(crate) fn new_id() -> Result<String> {
    btps_trust::generate_uuid_v4(&SystemRandom)
        .map_err(|_| ClientError::Crypto(CryptoError::Randomness))
}

/// A uniform draw from `[0, 1)` (backoff jitter). A failing CSPRNG yields 0.5.
pub(crate) fn random_unit() -> f64 {
    let mut bytes = [0_u8; 4];
    if SystemRandom.fill(&mut bytes).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_draws() {
        let a = new_id().unwrap();
        assert_eq!(a.len(), 36);
        assert_ne!(a, new_id().unwrap());
        for _ in 0..100 {
            let r = random_unit();
            assert!((0.0..1.0).contains(&r));
        }
        assert!(now().as_millis() > 1_700_000_000_000);
    }
}
