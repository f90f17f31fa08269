//! Integration tests of btps-trust: the conformance suite on the file backend, the file
//! layouts and locking, crash safety (SIGKILL during writes), and properties of the
//! handshake, the trust state machine and the replay window.

mod conformance;
mod crash;
mod files;
mod handshake;
mod replay_window;
mod trust_state_machine;

use btps_trust::file::{FileStore, FileStoreConfig};
use btps_types::UnixMillis;

/// A fixed "now" for opening stores.
pub(crate) fn now() -> UnixMillis {
    UnixMillis::from_millis(1_750_000_000_000)
}

pub(crate) fn open_dir(dir: &std::path::Path) -> FileStore {
    FileStore::open(&FileStoreConfig::new(dir), now()).expect("store opens")
}
