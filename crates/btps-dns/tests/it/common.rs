//! Shared helpers: key files, identities, a cache with a manual clock.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use btps_crypto::PublicKey;
use btps_dns::{CacheConfig, DnsCache, ManualClock, TxtResolver};
use btps_types::Identity;

/// `../shared/vectors` next to the repository.
pub(crate) fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors")
}

/// A public key from the vectors' `keys/` directory (`billing-btps1`, …).
pub(crate) fn vector_key(name: &str) -> PublicKey {
    let path = vectors_dir().join(format!("keys/{name}-public.pem"));
    let pem = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    PublicKey::from_pem(&pem).unwrap()
}

/// A public key from this crate's `tests/data/`.
pub(crate) fn data_key(file: &str) -> PublicKey {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file);
    PublicKey::from_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub(crate) fn id(text: &str) -> Identity {
    Identity::parse(text).unwrap()
}

/// `v=1.0.0;k=<type>;p=<base64>` for a key.
pub(crate) fn key_txt(key: &PublicKey) -> String {
    format!("v=1.0.0;k={};p={}", key.key_type(), key.to_base64_spki())
}

/// A cache over `resolver` with a manual clock.
pub(crate) fn cache(
    resolver: impl TxtResolver + 'static,
    config: CacheConfig,
) -> (DnsCache, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let dns = DnsCache::with_clock(Arc::new(resolver), config, clock.clone());
    (dns, clock)
}

/// Default settings without refresh-ahead (tests of plain expiry).
pub(crate) fn no_refresh() -> CacheConfig {
    let mut config = CacheConfig::default();
    config.refresh_ahead = 0.0;
    config
}

/// Polls `done` until it holds or `within` passes.
pub(crate) async fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    done()
}
