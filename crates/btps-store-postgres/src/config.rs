//! [`PgStoreConfig`]: where the database is and how many connections to keep.

/// How to open a [`PgStore`](crate::PgStore).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgStoreConfig {
    /// A libpq-style connection string: a URL
    /// (`postgresql://user@host:5432/db`) or `key=value` pairs.
    pub url: String,
    /// Most connections the pool keeps open (default 16). Concurrent writers beyond it
    /// wait for a connection.
    pub pool_size: usize,
}

impl PgStoreConfig {
    /// A configuration for this connection string with the default pool size.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 16,
        }
    }

    /// The same configuration with another pool size (at least 1).
    #[must_use]
    pub fn with_pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size.max(1);
        self
    }
}
