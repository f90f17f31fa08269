//! The file backend: the embedded default store (PROTOCOL.md §7.5, §10.2, §11.1).
//!
//! ```text
//! <dir>/LOCK                 flock(2) by the owning process (released when it dies)
//! <dir>/state.log            messages, replay set, token hashes: append-only, CRC32 per
//!                            record, group commit, compacted on open and on demand
//! <dir>/btps-trust.json      trust records, btps-node layout (path configurable)
//! <dir>/btps-identities.json hosted identities (§7.5 identity record)
//! ```
//!
//! * [`JsonTrustStore`]: the btps-node trust file on its own (shareable with btps-node through
//!   the `<file>.lock` convention, [`LockOptions`]).
//! * [`FileStore`]: all four store traits over one data directory.
//!
//! Durability: a JSON file is replaced by temporary file + fsync + rename + fsync of the
//! directory; the log is fsynced (`fdatasync`) by group commit before any acknowledged call
//! returns. Why a log, with the figures measured on this machine:
//! `docs/decisions/0001-file-message-store.md`.

mod durable;
mod json_file;
mod lock;
mod log;
mod state;
mod stores;

pub use json_file::Layout;
pub use lock::{DirLock, LockOptions};
pub use state::OpenReport;
pub use stores::{
    DEFAULT_SYNC_INTERVAL, FileStore, FileStoreConfig, IDENTITY_ENTITY, JsonFileOptions,
    JsonTrustStore, TRUST_ENTITY, TRUST_RECHECK,
};
