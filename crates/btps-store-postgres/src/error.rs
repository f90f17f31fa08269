//! [`PgStoreError`]: failures of opening a store.

use btps_trust::TrustError;

/// What can go wrong when opening a [`PgStore`](crate::PgStore). Once open, the store traits
/// report database failures as [`TrustError::Backend`] (the server fails closed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgStoreError {
    /// The connection URL or key-value string does not parse.
    #[error("invalid PostgreSQL connection string: {0}")]
    Config(#[source] tokio_postgres::Error),
    /// The connection pool could not be built.
    #[error("connection pool: {0}")]
    Pool(String),
    /// A database operation failed (connecting included).
    #[error("database: {0}")]
    Database(#[source] tokio_postgres::Error),
    /// The commit of a group of concurrent
    /// [`MessageStore::store`](btps_trust::MessageStore::store) calls got no answer from the
    /// server (the connection was lost during `COMMIT`): the group may or may not be durable.
    /// Reported (inside [`TrustError::Backend`]) to every call of the group.
    #[error("group commit outcome unknown: {0}")]
    CommitUnknown(String),
    /// The database holds a schema newer than this build knows.
    #[error("database schema version {found} is newer than this build's ({known})")]
    SchemaTooNew {
        /// The highest version recorded in the database.
        found: i32,
        /// The highest version this build embeds.
        known: i32,
    },
}

impl From<tokio_postgres::Error> for PgStoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Database(e)
    }
}

impl From<PgStoreError> for TrustError {
    fn from(e: PgStoreError) -> Self {
        Self::Backend(Box::new(e))
    }
}

/// A database error as the store traits report it.
pub(crate) fn backend(e: tokio_postgres::Error) -> TrustError {
    TrustError::Backend(Box::new(e))
}

/// A pool error as the store traits report it.
pub(crate) fn pool(e: deadpool_postgres::PoolError) -> TrustError {
    TrustError::Backend(Box::new(e))
}
