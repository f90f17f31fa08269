//! [`TrustError`] and the crate's [`Result`] alias.

use std::path::PathBuf;

use btps_types::ErrorCode;

use crate::record::TrustStatus;
use btps_types::artifact::TrustDecision;

/// Everything that can go wrong in this crate: store I/O, corrupt store files, locking,
/// malformed records, invalid handshake transitions and backend failures.
///
/// Store failures map to `BTP_ERROR_SERVER_BUSY` on the wire ([`TrustError::error_code`]):
/// the server fails closed and the sender retries later (PROTOCOL.md §10.2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A file-system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`"open"`, `"fsync"`, `"rename"`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// A store file is not what this crate wrote (torn, truncated in the middle, not JSON,
    /// records of the wrong shape). It is reported, never replaced by an empty store.
    #[error("{}: corrupt store file: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the position when known.
        detail: String,
    },
    /// The cross-process lock `<file>.lock` was not acquired in time.
    #[error("{}: lock not acquired within {waited_ms} ms", path.display())]
    LockTimeout {
        /// The lock directory.
        path: PathBuf,
        /// How long we waited.
        waited_ms: u64,
    },
    /// Another process has the data directory open.
    #[error("{}: the store is in use by another process", path.display())]
    InUse {
        /// The lock file.
        path: PathBuf,
    },
    /// A record is malformed (a required member is missing or has the wrong type).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// A pagination cursor this backend did not produce.
    #[error("invalid cursor")]
    InvalidCursor,
    /// A handshake decision that does not apply to the record's current status.
    #[error("a {decision} decision does not apply to a {from} trust record")]
    Transition {
        /// The record's status.
        from: TrustStatus,
        /// The decision.
        decision: TrustDecision,
    },
    /// The randomness source failed (token and agent id generation).
    #[error("no randomness available")]
    Randomness,
    /// An earlier write could not be made durable; the store refuses further work until it is
    /// reopened (state in memory may be ahead of the disk).
    #[error("store unavailable after a failed write: {0}")]
    Poisoned(String),
    /// The store was closed.
    #[error("store closed")]
    Closed,
    /// A backend-specific failure (database errors of other backends).
    #[error("backend: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl TrustError {
    /// The wire error code a server sends for this error: `BTP_ERROR_SERVER_BUSY` for store
    /// failures (fail closed, the sender retries), `BTP_ERROR_VALIDATION` for a bad cursor,
    /// `BTP_ERROR_TRUST_NOT_ALLOWED` for an invalid handshake transition.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::InvalidCursor => ErrorCode::Validation,
            Self::Transition { .. } => ErrorCode::TrustNotAllowed,
            _ => ErrorCode::ServerBusy,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Self::Corrupt {
            path: path.into(),
            detail: detail.into(),
        }
    }
}

/// `Result` with [`TrustError`].
pub type Result<T, E = TrustError> = std::result::Result<T, E>;
