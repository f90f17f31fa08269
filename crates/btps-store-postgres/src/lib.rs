//! BTPS PostgreSQL store: the [btps-trust] store traits on PostgreSQL, for operators that run
//! several server instances against one database.
//!
//! * [`PgStore`] implements [`TrustStore`], [`IdentityStore`], [`ReplayStore`] and
//!   [`MessageStore`] over a pool of [tokio-postgres] connections ([`PgStoreConfig`]).
//! * [`PgStore::connect`] applies the embedded, versioned [`MIGRATIONS`] in a transaction
//!   under an advisory lock, so several processes may start at once.
//! * Atomic operations are single statements or transactions: trust transitions are
//!   `UPDATE … WHERE status = $expected`, replay inserts are `INSERT … ON CONFLICT`, outbox
//!   claims use `FOR UPDATE SKIP LOCKED`, token consumption is
//!   `UPDATE … SET used_at … WHERE used_at IS NULL`.
//! * "Store and mark seen" ([`MessageStore::store`]) is group-committed: concurrent calls are
//!   queued to writer tasks ([`PgStoreConfig::writers`]), each group is stored with one
//!   commit, and every caller gets its own outcome once the group is durable.
//!
//! The schema is in `migrations/`; README.md explains the choices (tokio-postgres rather
//! than sqlx, `text` rather than `jsonb`, times in milliseconds).
//!
//! [btps-trust]: btps_trust
//! [tokio-postgres]: tokio_postgres
//! [`TrustStore`]: btps_trust::TrustStore
//! [`IdentityStore`]: btps_trust::IdentityStore
//! [`ReplayStore`]: btps_trust::ReplayStore
//! [`MessageStore`]: btps_trust::MessageStore
//! [`MessageStore::store`]: btps_trust::MessageStore::store
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod error;
mod migrate;
mod store;

pub use config::PgStoreConfig;
pub use error::PgStoreError;
pub use migrate::{MIGRATIONS, Migration};
pub use store::PgStore;
