//! [`PgStore`]: the connection pool and the store trait implementations.

mod group;
mod identity;
mod message;
mod replay;
mod trust;

use btps_trust::{Result, TrustError};
use btps_types::json::{Object, object_to_js_string, parse_str};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::error::{backend, pool};
use crate::{PgStoreConfig, PgStoreError, migrate};

/// The PostgreSQL store: every btps-trust store trait ([`TrustStore`], [`IdentityStore`],
/// [`ReplayStore`], [`MessageStore`]) over a pool of connections to one database.
///
/// Any number of processes may open the same database: every atomic operation of the traits
/// is one statement or one transaction, and commits are durable (`synchronous_commit`, the
/// server's default) before a method returns. Concurrent commits share WAL flushes (group
/// commit in the server), and concurrent [`MessageStore::store`] calls of one `PgStore`
/// (and its clones) are committed in groups, one transaction per group
/// ([`PgStoreConfig::writers`]).
///
/// [`TrustStore`]: btps_trust::TrustStore
/// [`IdentityStore`]: btps_trust::IdentityStore
/// [`ReplayStore`]: btps_trust::ReplayStore
/// [`MessageStore`]: btps_trust::MessageStore
/// [`MessageStore::store`]: btps_trust::MessageStore::store
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: Pool,
    group: group::GroupCommit,
    config: PgStoreConfig,
    schema_version: i32,
}

impl PgStore {
    /// Connects, applies the embedded migrations the database lacks (see
    /// [`MIGRATIONS`](crate::MIGRATIONS)) and returns the store. Must run inside a tokio
    /// runtime; the group-commit writers run as tasks on it and end when the last clone of
    /// the store is dropped (a store used after that runtime is gone commits every `store`
    /// call on its own).
    ///
    /// Needs PostgreSQL 12 or newer (the store calls' connections set `plan_cache_mode`).
    ///
    /// # Errors
    ///
    /// [`PgStoreError::Config`] for a bad connection string, [`PgStoreError::Database`] when
    /// the server cannot be reached or a migration fails, [`PgStoreError::SchemaTooNew`] when
    /// a newer build migrated the database.
    pub async fn connect(config: &PgStoreConfig) -> Result<Self, PgStoreError> {
        let pg: tokio_postgres::Config = config.url.parse().map_err(PgStoreError::Config)?;
        let schema_version = {
            let (mut client, conn) = pg.connect(NoTls).await?;
            let task = tokio::spawn(conn);
            let v = migrate::migrate(&mut client).await;
            drop(client);
            let _ = task.await;
            v?
        };
        let pool = build_pool(pg.clone(), config.pool_size)?;
        // The store calls have connections of their own, on which the statements of group
        // commit always run with their generic plans (see `group`): planned once per
        // connection, never again per call.
        let mut store_pg = pg;
        let options = match store_pg.get_options() {
            Some(o) if !o.is_empty() => format!("{o} -c plan_cache_mode=force_generic_plan"),
            _ => "-c plan_cache_mode=force_generic_plan".to_owned(),
        };
        store_pg.options(&options);
        let store_connections = if config.writers == 0 {
            config.pool_size
        } else {
            config.writers
        };
        let store_pool = build_pool(store_pg, store_connections)?;
        let group = group::GroupCommit::start(store_pool, config.writers, config.max_batch);
        Ok(Self {
            pool,
            group,
            config: config.clone(),
            schema_version,
        })
    }

    /// The configuration this store was opened with (to open it again).
    pub fn config(&self) -> &PgStoreConfig {
        &self.config
    }

    /// The schema version after migrations.
    pub fn schema_version(&self) -> i32 {
        self.schema_version
    }

    /// Closes the pools: idle connections are closed, later calls fail with
    /// [`TrustError::Backend`].
    pub fn close(&self) {
        self.pool.close();
        self.group.close();
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool)
    }
}

// ---- helpers --------------------------------------------------------------------------------

/// A pool of at most `size` (at least 1) connections made with `pg`.
fn build_pool(pg: tokio_postgres::Config, size: usize) -> Result<Pool, PgStoreError> {
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| PgStoreError::Pool(e.to_string()))
}

/// Runs a cached prepared statement and returns its rows.
async fn query<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    let st = c.prepare_cached(sql).await.map_err(backend)?;
    c.query(&st, params).await.map_err(backend)
}

/// Runs a cached prepared statement and returns the number of rows it affected.
async fn execute<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64> {
    let st = c.prepare_cached(sql).await.map_err(backend)?;
    c.execute(&st, params).await.map_err(backend)
}

/// Compact JSON text of an object, in member order.
fn json_text(o: &Object) -> String {
    object_to_js_string(o)
}

/// Parses JSON text this store wrote as an object.
fn parse_object(text: &str, what: &str) -> Result<Object> {
    parse_str(text)
        .ok()
        .and_then(|p| p.value.as_object().cloned())
        .ok_or_else(|| TrustError::InvalidRecord(format!("stored {what} is not a JSON object")))
}

/// Encodes a listing cursor: the last key, hex-encoded, behind a tag.
fn encode_key_cursor(key: &str) -> String {
    let mut s = String::with_capacity(2 + key.len() * 2);
    s.push_str("k1");
    for b in key.as_bytes() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Decodes [`encode_key_cursor`]; anything else is [`TrustError::InvalidCursor`].
fn decode_key_cursor(c: &str) -> Result<String> {
    let hex = c.strip_prefix("k1").ok_or(TrustError::InvalidCursor)?;
    if hex.is_empty() || hex.len() % 2 != 0 {
        return Err(TrustError::InvalidCursor);
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .filter(|p| p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                .and_then(|p| u8::from_str_radix(p, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or(TrustError::InvalidCursor)?;
    String::from_utf8(bytes).map_err(|_| TrustError::InvalidCursor)
}

/// A page size as SQL `LIMIT` (one more than returned, to learn whether more follow).
fn limit_plus_one(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX - 1) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_cursor_round_trip_and_rejects_foreign_strings() {
        for k in ["", "a", "7ced", "é$x.com"] {
            if k.is_empty() {
                continue;
            }
            assert_eq!(decode_key_cursor(&encode_key_cursor(k)).unwrap(), k);
        }
        for bad in [
            "not a cursor!",
            "k1",
            "k1x",
            "k1ABCD",
            "k1ff",
            "7ced",
            "k1 a",
        ] {
            assert!(
                matches!(decode_key_cursor(bad), Err(TrustError::InvalidCursor)),
                "{bad}"
            );
        }
    }
}
