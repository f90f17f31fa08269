//! [`TrustStore`] for [`PgStore`].

use async_trait::async_trait;
use btps_trust::{
    CasOutcome, Expected, Page, PageRequest, Result, TrustFilter, TrustRecord, TrustStore,
};
use tokio_postgres::Row;

use super::{PgStore, decode_key_cursor, encode_key_cursor, execute, limit_plus_one, query};

const COLUMNS: &str = "id, sender_id, receiver_id, status, created_at, decided_by, decided_at, \
     expires_at, retry_after_date, public_key_base64, public_key_fingerprint, privacy_type, record";

fn values(r: &TrustRecord) -> [Box<dyn tokio_postgres::types::ToSql + Sync + Send>; 13] {
    [
        Box::new(r.id.clone()),
        Box::new(r.sender_id.clone()),
        Box::new(r.receiver_id.clone()),
        Box::new(r.status.as_str().to_owned()),
        Box::new(r.created_at.as_millis()),
        Box::new(r.decided_by.clone()),
        Box::new(r.decided_at.as_millis()),
        Box::new(r.expires_at.map(|t| t.as_millis())),
        Box::new(r.retry_after.map(|t| t.as_millis())),
        Box::new(r.public_key_base64.clone()),
        Box::new(r.public_key_fingerprint.clone()),
        Box::new(r.privacy_type.as_str().to_owned()),
        Box::new(r.to_json()),
    ]
}

fn params(
    v: &[Box<dyn tokio_postgres::types::ToSql + Sync + Send>],
) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    v.iter()
        .map(|b| &**b as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

fn from_row(row: &Row) -> Result<TrustRecord> {
    TrustRecord::from_json(row.get::<_, &str>(0))
}

const SET: &str = "sender_id = EXCLUDED.sender_id, receiver_id = EXCLUDED.receiver_id, \
     status = EXCLUDED.status, created_at = EXCLUDED.created_at, decided_by = EXCLUDED.decided_by, \
     decided_at = EXCLUDED.decided_at, expires_at = EXCLUDED.expires_at, \
     retry_after_date = EXCLUDED.retry_after_date, public_key_base64 = EXCLUDED.public_key_base64, \
     public_key_fingerprint = EXCLUDED.public_key_fingerprint, \
     privacy_type = EXCLUDED.privacy_type, record = EXCLUDED.record, updated_at = now()";

impl PgStore {
    async fn current_trust(&self, id: &str) -> Result<Option<Box<TrustRecord>>> {
        Ok(self.get_trust(id).await?.map(Box::new))
    }
}

#[async_trait]
impl TrustStore for PgStore {
    async fn get_trust(&self, id: &str) -> Result<Option<TrustRecord>> {
        let c = self.client().await?;
        let rows = query(&c, "SELECT record FROM btps_trust WHERE id = $1", &[&id]).await?;
        rows.first().map(from_row).transpose()
    }

    async fn put_trust(&self, record: &TrustRecord) -> Result<()> {
        let c = self.client().await?;
        let v = values(record);
        let sql = format!(
            "INSERT INTO btps_trust ({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) \
             ON CONFLICT (id) DO UPDATE SET {SET}"
        );
        execute(&c, &sql, &params(&v)).await?;
        Ok(())
    }

    async fn transition(&self, expected: Expected, record: &TrustRecord) -> Result<CasOutcome> {
        let v = values(record);
        let applied = {
            let c = self.client().await?;
            match expected {
                Expected::Absent => {
                    let sql = format!(
                        "INSERT INTO btps_trust ({COLUMNS}) \
                         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) \
                         ON CONFLICT (id) DO NOTHING"
                    );
                    execute(&c, &sql, &params(&v)).await? == 1
                }
                Expected::Status(status) => {
                    let mut p = params(&v);
                    let s = status.as_str();
                    p.push(&s);
                    let sql = "UPDATE btps_trust SET sender_id = $2, receiver_id = $3, status = $4, \
                         created_at = $5, decided_by = $6, decided_at = $7, expires_at = $8, \
                         retry_after_date = $9, public_key_base64 = $10, \
                         public_key_fingerprint = $11, privacy_type = $12, record = $13, \
                         updated_at = now() WHERE id = $1 AND status = $14";
                    execute(&c, sql, &p).await? == 1
                }
            }
        };
        if applied {
            Ok(CasOutcome::Applied)
        } else {
            Ok(CasOutcome::Conflict(self.current_trust(&record.id).await?))
        }
    }

    async fn delete_trust(&self, id: &str) -> Result<bool> {
        let c = self.client().await?;
        Ok(execute(&c, "DELETE FROM btps_trust WHERE id = $1", &[&id]).await? > 0)
    }

    async fn list_trust(
        &self,
        filter: &TrustFilter,
        page: &PageRequest,
    ) -> Result<Page<TrustRecord>> {
        let after = page.cursor.as_deref().map(decode_key_cursor).transpose()?;
        let limit = page.effective_limit();
        let n = limit_plus_one(limit);
        let c = self.client().await?;
        let after = after.as_deref();
        let rows = match filter {
            TrustFilter::All => {
                query(
                    &c,
                    "SELECT record, id FROM btps_trust WHERE ($1::text IS NULL OR id > $1) \
                     ORDER BY id LIMIT $2",
                    &[&after, &n],
                )
                .await?
            }
            TrustFilter::Receiver(who) => {
                query(
                    &c,
                    "SELECT record, id FROM btps_trust WHERE lower(receiver_id) = lower($3) \
                     AND ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2",
                    &[&after, &n, who],
                )
                .await?
            }
            TrustFilter::Sender(who) => {
                query(
                    &c,
                    "SELECT record, id FROM btps_trust WHERE lower(sender_id) = lower($3) \
                     AND ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2",
                    &[&after, &n, who],
                )
                .await?
            }
        };
        let more = rows.len() > limit;
        let items = rows
            .iter()
            .take(limit)
            .map(from_row)
            .collect::<Result<Vec<_>>>()?;
        let next_cursor = if more {
            rows.get(limit - 1)
                .map(|r| encode_key_cursor(r.get::<_, &str>(1)))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}
