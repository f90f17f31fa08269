//! Embedded, versioned schema migrations, applied on open.
//!
//! Every migration runs in one transaction together with its row in
//! `btps_schema_migrations`, under a transaction-scoped advisory lock, so several processes
//! starting at once apply each migration exactly once and never see half a schema.

use tokio_postgres::Client;

use crate::PgStoreError;

/// One embedded migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Migration {
    /// Version, starting at 1, without gaps.
    pub version: i32,
    /// Short name.
    pub name: &'static str,
    /// The SQL (several statements).
    pub sql: &'static str,
}

/// The embedded migrations, oldest first.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "initial",
    sql: include_str!("../migrations/0001_initial.sql"),
}];

/// The advisory-lock key of migrations (`'btps-mi'` as bytes).
const LOCK_KEY: i64 = 0x0062_7470_732d_6d69;

/// Applies the migrations this database lacks; returns the schema version.
pub(crate) async fn migrate(client: &mut Client) -> Result<i32, PgStoreError> {
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS btps_schema_migrations (
           version integer PRIMARY KEY,
           name text NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM btps_schema_migrations",
            &[],
        )
        .await?;
    let current: i32 = row.get(0);
    if current > known {
        return Err(PgStoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch_execute(m.sql).await?;
        tx.execute(
            "INSERT INTO btps_schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(known)
}
