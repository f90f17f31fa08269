//! [`IdentityStore`]: hosted identities, their keys, and token hashes.

use async_trait::async_trait;
use btps_types::UnixMillis;
use btps_types::json::Object;

use super::{Page, PageRequest};
use crate::Result;
use crate::id::TokenHash;
use crate::identity::IdentityRecord;

/// The two stored token kinds (§8.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenKind {
    /// One-time onboarding code; subject = the user identity.
    Auth,
    /// Single-use, rotated refresh token; subject = the `agentId`.
    Refresh,
}

impl TokenKind {
    /// `"auth"` or `"refresh"` (the Postgres `kind` column).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Refresh => "refresh",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn from_wire(s: &str) -> Option<Self> {
        match s {
            "auth" => Some(Self::Auth),
            "refresh" => Some(Self::Refresh),
            _ => None,
        }
    }
}

/// A stored token: the hash only, never the token (§8.1, §7.6 `btps_token`).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenRecord {
    /// Auth or refresh.
    pub kind: TokenKind,
    /// SHA-256 of the token.
    pub hash: TokenHash,
    /// The user identity (auth tokens) or the `agentId` (refresh tokens). Matched
    /// case-insensitively for auth tokens, exactly for agent ids.
    pub subject: String,
    /// `userIdentity`.
    pub user_identity: String,
    /// `decryptBy`: whose key decrypts documents for the agent.
    pub decrypt_by: String,
    /// `metadata`.
    pub metadata: Option<Object>,
    /// `createdAt`.
    pub created_at: UnixMillis,
    /// `expiresAt`: invisible afterwards.
    pub expires_at: UnixMillis,
}

/// Result of [`IdentityStore::consume_token`].
#[derive(Clone, Debug, PartialEq)]
pub enum TokenOutcome {
    /// The token was valid and is now used up (this caller won the compare-and-delete).
    Consumed(Box<TokenRecord>),
    /// The token was valid once and has already been used (and not yet expired). For refresh
    /// tokens this indicates a stolen token: revoke the agent (§8.4).
    AlreadyUsed(Box<TokenRecord>),
    /// Unknown, expired, or of another subject.
    Invalid,
}

/// Hosted identities with their keys (§7.5), and the auth and refresh token hashes of agent
/// onboarding (§8.1–§8.5). Agent records themselves are trust records ([`TrustStore`]).
///
/// [`TrustStore`]: super::TrustStore
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// The hosted identity (matched case-insensitively).
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn get_identity(&self, identity: &str) -> Result<Option<IdentityRecord>>;

    /// Inserts or replaces a hosted identity (keyed by its `id`). Durable on return.
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn put_identity(&self, record: &IdentityRecord) -> Result<()>;

    /// Removes a hosted identity; `true` when it existed. Durable on return.
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn delete_identity(&self, identity: &str) -> Result<bool>;

    /// Lists hosted identities ordered by `id`.
    ///
    /// # Errors
    ///
    /// [`TrustError::InvalidCursor`](crate::TrustError::InvalidCursor); store failures.
    async fn list_identities(&self, page: &PageRequest) -> Result<Page<IdentityRecord>>;

    /// Stores a new token hash. Durable on return.
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn create_token(&self, token: &TokenRecord) -> Result<()>;

    /// Atomically consumes (compare-and-delete) the token of `kind` with this hash issued to
    /// `subject`, if it is unexpired at `now`. Hashes are compared in constant time. A consumed
    /// token is remembered until its expiry so that reuse is reported as
    /// [`TokenOutcome::AlreadyUsed`]. Durable on return.
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn consume_token(
        &self,
        kind: TokenKind,
        subject: &str,
        hash: &TokenHash,
        now: UnixMillis,
    ) -> Result<TokenOutcome>;

    /// Single-use refresh rotation (§8.4) in one atomic step: consumes `old` for
    /// `new.subject` and, only if that succeeded, stores `new`. Returns what consuming `old`
    /// gave. Durable on return.
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn rotate_token(
        &self,
        old: &TokenHash,
        new: &TokenRecord,
        now: UnixMillis,
    ) -> Result<TokenOutcome>;

    /// Deletes every token of `kind` issued to `subject` (agent revocation, §8.5: the refresh
    /// tokens of an agent). Returns how many unexpired tokens were removed. Durable on return.
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn revoke_tokens(&self, kind: TokenKind, subject: &str, now: UnixMillis) -> Result<u64>;

    /// Removes tokens (used or not) that expired before `now`; returns how many.
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn purge_expired_tokens(&self, now: UnixMillis) -> Result<u64>;

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
