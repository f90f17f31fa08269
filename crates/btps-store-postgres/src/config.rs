//! [`PgStoreConfig`]: where the database is, how many connections to keep and how
//! [`MessageStore::store`](btps_trust::MessageStore::store) calls are committed.

/// How to open a [`PgStore`](crate::PgStore).
///
/// # Examples
///
/// ```
/// use btps_store_postgres::PgStoreConfig;
/// let config = PgStoreConfig::new("postgresql://btps@127.0.0.1/btps")
///     .with_pool_size(8)
///     .with_writers(1);
/// assert_eq!((config.pool_size, config.writers, config.max_batch), (8, 1, 256));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgStoreConfig {
    /// A libpq-style connection string: a URL
    /// (`postgresql://user@host:5432/db`) or `key=value` pairs.
    pub url: String,
    /// Most connections the pool keeps open (default 16). Concurrent callers beyond it
    /// wait for a connection. [`MessageStore::store`] calls have connections of their own:
    /// one per writer, or (with `writers = 0`) another pool of this size.
    ///
    /// [`MessageStore::store`]: btps_trust::MessageStore::store
    pub pool_size: usize,
    /// Group-commit writer tasks of [`MessageStore::store`] (default 2), each with a
    /// connection: concurrent calls are queued, and a free writer takes everything pending and
    /// stores it with one commit. Two writers let one group execute while the other waits for
    /// its commit to reach the disk. `0` turns group commit off (every call is a transaction
    /// of its own).
    ///
    /// [`MessageStore::store`]: btps_trust::MessageStore::store
    pub writers: usize,
    /// Most calls one group commit takes (default 256, at least 1).
    pub max_batch: usize,
}

impl PgStoreConfig {
    /// A configuration for this connection string with the defaults: a pool of 16, two
    /// group-commit writers, groups of at most 256.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 16,
            writers: 2,
            max_batch: 256,
        }
    }

    /// The same configuration with another pool size (at least 1).
    #[must_use]
    pub fn with_pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size.max(1);
        self
    }

    /// The same configuration with another number of group-commit writers (`0`: none, every
    /// `store` commits on its own).
    #[must_use]
    pub fn with_writers(mut self, writers: usize) -> Self {
        self.writers = writers;
        self
    }

    /// The same configuration with another group size limit (at least 1).
    #[must_use]
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }
}
