//! [`ReplayStore`]: the persistent replay set of §10.2.

use async_trait::async_trait;
use btps_types::UnixMillis;
use btps_types::artifact::{ReplayKey, ReplayScope};

use crate::Result;

/// One entry of the replay set: the replay key, the accepted artifact's `signature.value`, and
/// when the entry may be forgotten (at least T + W + 60 s, §10.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayEntry {
    /// The scope part of the key: lower-case `from`, the `agentId`, or the fingerprint of an
    /// `auth.request` key, prefixed by its kind (see [`ReplayEntry::from_key`]).
    pub scope: String,
    /// The artifact `id`.
    pub id: String,
    /// `signature.value` of the accepted artifact.
    pub signature: String,
    /// Forgotten after this instant.
    pub expires_at: UnixMillis,
}

impl ReplayEntry {
    /// An entry for a [`ReplayKey`] from btps-types. The scope is prefixed with its kind
    /// (`from:`, `agent:`, `key:`) so that the three key spaces cannot collide.
    ///
    /// # Examples
    ///
    /// ```
    /// use btps_trust::ReplayEntry;
    /// use btps_types::{UnixMillis, artifact::{ReplayKey, ReplayScope}};
    /// let key = ReplayKey { scope: ReplayScope::Sender("billing$vendorcorp.com".into()), id: "a1" };
    /// let e = ReplayEntry::from_key(&key, "c2lnbmF0dXJl", UnixMillis::from_millis(0));
    /// assert_eq!((e.scope.as_str(), e.id.as_str()), ("from:billing$vendorcorp.com", "a1"));
    /// ```
    pub fn from_key(key: &ReplayKey<'_>, signature: &str, expires_at: UnixMillis) -> Self {
        let scope = match &key.scope {
            ReplayScope::Sender(from) => format!("from:{}", from.to_lowercase()),
            ReplayScope::Agent(agent) => format!("agent:{agent}"),
            ReplayScope::AgentKey(fp) => format!("key:{fp}"),
        };
        Self {
            scope,
            id: key.id.to_owned(),
            signature: signature.to_owned(),
            expires_at,
        }
    }
}

/// Result of inserting a replay entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// The key was absent (or expired): it is recorded now. Process the artifact.
    Inserted,
    /// The key is present with the same signature value: an exact re-send. Reply
    /// `already accepted` (200) and do nothing else.
    SameSignature,
    /// The key is present with another signature value: `BTP_ERROR_DUPLICATE` (409).
    DifferentSignature,
}

/// The replay set (§10.2): `(scope, id)` → signature value, with expiry. Entries whose
/// `expires_at` is before `now` are treated as absent.
#[async_trait]
pub trait ReplayStore: Send + Sync {
    /// Inserts the entry if its key is absent (or expired at `now`), atomically across every
    /// process sharing the backend. Durable before it returns [`ReplayOutcome::Inserted`].
    ///
    /// # Errors
    ///
    /// Store failures; the server then fails closed (`BTP_ERROR_SERVER_BUSY`).
    async fn insert_replay(&self, entry: &ReplayEntry, now: UnixMillis) -> Result<ReplayOutcome>;

    /// The signature value recorded under the key, if unexpired at `now`.
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn get_replay(&self, scope: &str, id: &str, now: UnixMillis) -> Result<Option<String>>;

    /// Forgets entries that expired before `now`; returns how many.
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn purge_replay(&self, now: UnixMillis) -> Result<u64>;

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
