//! [`TrustStore`]: trust and agent records.

use async_trait::async_trait;

use crate::Result;
use crate::record::{TrustRecord, TrustStatus};

/// What a compare-and-set expects to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// No record with this id (insert if absent).
    Absent,
    /// A record with this status (`UPDATE … WHERE id = $1 AND status = $2`).
    Status(TrustStatus),
}

/// Result of [`TrustStore::transition`].
#[derive(Clone, Debug, PartialEq)]
pub enum CasOutcome {
    /// The record was written.
    Applied,
    /// The expectation did not hold; nothing was written. Carries the current record.
    Conflict(Option<Box<TrustRecord>>),
}

/// Which records to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustFilter {
    /// Every record.
    All,
    /// Records whose `receiverId` is this identity (case-insensitive).
    Receiver(String),
    /// Records whose `senderId` is this identity or agent id (case-insensitive).
    Sender(String),
}

/// A page request: at most `limit` items after `cursor`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Page size; backends clamp it to 1–1000 (0 means the default, 100).
    pub limit: u32,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageRequest {
    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Self {
            limit,
            cursor: None,
        }
    }

    /// `limit` clamped to 1–1000, 0 → 100.
    pub fn effective_limit(&self) -> usize {
        match self.limit {
            0 => 100,
            n => n.min(1000) as usize,
        }
    }
}

/// One page of a listing, in a stable order (trust records: by `id`).
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor of the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Trust records (§7.1) and agent records (§8.2, `senderId` = `agentId`), keyed by trust id.
///
/// Backends store records as given (unknown members included) and return them unchanged.
#[async_trait]
pub trait TrustStore: Send + Sync {
    /// The record with this trust id.
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn get_trust(&self, id: &str) -> Result<Option<TrustRecord>>;

    /// Inserts or replaces the record under `record.id`. Durable on return.
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn put_trust(&self, record: &TrustRecord) -> Result<()>;

    /// Atomically writes `record` only if the stored record under `record.id` matches
    /// `expected` (a status, or absence). Concurrent transitions from the same status cannot
    /// both apply. Durable on return.
    ///
    /// # Errors
    ///
    /// Store failures (a failed expectation is [`CasOutcome::Conflict`], not an error).
    async fn transition(&self, expected: Expected, record: &TrustRecord) -> Result<CasOutcome>;

    /// Deletes the record; `true` when it existed. Durable on return.
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn delete_trust(&self, id: &str) -> Result<bool>;

    /// Lists records matching `filter`, ordered by `id`, one page at a time.
    ///
    /// # Errors
    ///
    /// [`TrustError::InvalidCursor`](crate::TrustError::InvalidCursor) for a cursor this
    /// backend did not produce; store failures.
    async fn list_trust(
        &self,
        filter: &TrustFilter,
        page: &PageRequest,
    ) -> Result<Page<TrustRecord>>;

    /// Whether the store accepts writes now: `Ok` unless the backend knows that every write
    /// would fail (the file backend after a failed write, until it is reopened). Readiness
    /// probes call it. The default reports healthy, for backends whose calls fail by
    /// themselves while they are down (PostgreSQL).
    ///
    /// # Errors
    ///
    /// Why the store refuses writes ([`TrustError::Poisoned`](crate::TrustError::Poisoned),
    /// [`TrustError::Closed`](crate::TrustError::Closed)).
    async fn health(&self) -> Result<()> {
        Ok(())
    }
}
