//! [`ReplayStore`] for [`PgStore`].

use async_trait::async_trait;
use btps_trust::{ReplayEntry, ReplayOutcome, ReplayStore, Result};
use btps_types::UnixMillis;
use deadpool_postgres::GenericClient;

use super::{PgStore, execute, query};

/// Insert-if-absent of a replay entry on `c` (a connection or a transaction).
///
/// `INSERT … ON CONFLICT DO UPDATE … WHERE <the stored entry expired>` writes only when the
/// key is absent or expired; a concurrent inserter of the same key waits for the first one's
/// transaction and then sees its row, so exactly one caller gets
/// [`ReplayOutcome::Inserted`]. Otherwise the stored signature is read back and compared.
async fn insert<C: GenericClient>(
    c: &C,
    e: &ReplayEntry,
    now: UnixMillis,
) -> Result<ReplayOutcome> {
    let now = now.as_millis();
    loop {
        let inserted = execute(
            c,
            "INSERT INTO btps_seen_artifact (replay_key, artifact_id, signature, expires_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (replay_key, artifact_id) DO UPDATE \
             SET signature = EXCLUDED.signature, expires_at = EXCLUDED.expires_at \
             WHERE btps_seen_artifact.expires_at < $5",
            &[
                &e.scope,
                &e.id,
                &e.signature,
                &e.expires_at.as_millis(),
                &now,
            ],
        )
        .await?;
        if inserted == 1 {
            return Ok(ReplayOutcome::Inserted);
        }
        let rows = query(
            c,
            "SELECT signature FROM btps_seen_artifact WHERE replay_key = $1 \
             AND artifact_id = $2 AND expires_at >= $3",
            &[&e.scope, &e.id, &now],
        )
        .await?;
        // No row: purged between the two statements; try again.
        if let Some(row) = rows.first() {
            return Ok(if row.get::<_, &str>(0) == e.signature {
                ReplayOutcome::SameSignature
            } else {
                ReplayOutcome::DifferentSignature
            });
        }
    }
}

/// The unexpired signature under a key, on `c`.
pub(super) async fn get<C: GenericClient>(
    c: &C,
    scope: &str,
    id: &str,
    now: UnixMillis,
) -> Result<Option<String>> {
    let rows = query(
        c,
        "SELECT signature FROM btps_seen_artifact WHERE replay_key = $1 AND artifact_id = $2 \
         AND expires_at >= $3",
        &[&scope, &id, &now.as_millis()],
    )
    .await?;
    Ok(rows.first().map(|r| r.get(0)))
}

#[async_trait]
impl ReplayStore for PgStore {
    async fn insert_replay(&self, entry: &ReplayEntry, now: UnixMillis) -> Result<ReplayOutcome> {
        let c = self.client().await?;
        insert(&c, entry, now).await
    }

    async fn get_replay(&self, scope: &str, id: &str, now: UnixMillis) -> Result<Option<String>> {
        let c = self.client().await?;
        get(&c, scope, id, now).await
    }

    async fn purge_replay(&self, now: UnixMillis) -> Result<u64> {
        let c = self.client().await?;
        execute(
            &c,
            "DELETE FROM btps_seen_artifact WHERE expires_at < $1",
            &[&now.as_millis()],
        )
        .await
    }
}
