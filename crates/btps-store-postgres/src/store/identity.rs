//! [`IdentityStore`] for [`PgStore`]: identities and token hashes.

use async_trait::async_trait;
use btps_trust::{
    IdentityRecord, IdentityStore, Page, PageRequest, Result, TokenHash, TokenKind, TokenOutcome,
    TokenRecord, TrustError,
};
use btps_types::UnixMillis;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{
    PgStore, decode_key_cursor, encode_key_cursor, execute, json_text, limit_plus_one,
    parse_object, query,
};
use crate::error::backend;

/// Auth tokens are matched on the lower-case user identity, refresh tokens on the exact
/// `agentId` (the file backend's rule).
fn subject_key(kind: TokenKind, subject: &str) -> String {
    match kind {
        TokenKind::Auth => subject.to_lowercase(),
        TokenKind::Refresh => subject.to_owned(),
    }
}

const TOKEN_COLUMNS: &str = "kind, token_hash, subject, user_identity, decrypt_by, metadata, created_at, expires_at, used_at";

fn token_from_row(row: &Row) -> Result<(TokenRecord, bool)> {
    let kind = TokenKind::from_wire(row.get(0))
        .ok_or_else(|| TrustError::InvalidRecord("stored token kind".into()))?;
    let hash: &[u8] = row.get(1);
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| TrustError::InvalidRecord("stored token hash length".into()))?;
    let metadata = row
        .get::<_, Option<&str>>(5)
        .map(|t| parse_object(t, "token metadata"))
        .transpose()?;
    let used: Option<i64> = row.get(8);
    Ok((
        TokenRecord {
            kind,
            hash: TokenHash::from_bytes(hash),
            subject: row.get(2),
            user_identity: row.get(3),
            decrypt_by: row.get(4),
            metadata,
            created_at: UnixMillis::from_millis(row.get(6)),
            expires_at: UnixMillis::from_millis(row.get(7)),
        },
        used.is_some(),
    ))
}

/// Compare-and-mark-used of one token on `c` (a connection or a transaction).
async fn consume<C: GenericClient>(
    c: &C,
    kind: TokenKind,
    subject: &str,
    hash: &TokenHash,
    now: UnixMillis,
) -> Result<TokenOutcome> {
    let key = subject_key(kind, subject);
    let now = now.as_millis();
    let h: &[u8] = hash.as_bytes();
    let sql = format!(
        "UPDATE btps_token SET used_at = $4 WHERE kind = $1 AND subject_key = $2 \
         AND token_hash = $3 AND expires_at >= $4 AND used_at IS NULL RETURNING {TOKEN_COLUMNS}"
    );
    let rows = query(c, &sql, &[&kind.as_str(), &key, &h, &now]).await?;
    if let Some(row) = rows.first() {
        return Ok(TokenOutcome::Consumed(Box::new(token_from_row(row)?.0)));
    }
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM btps_token WHERE kind = $1 AND subject_key = $2 \
         AND token_hash = $3 AND expires_at >= $4"
    );
    let rows = query(c, &sql, &[&kind.as_str(), &key, &h, &now]).await?;
    match rows.first().map(token_from_row).transpose()? {
        Some((rec, true)) => Ok(TokenOutcome::AlreadyUsed(Box::new(rec))),
        _ => Ok(TokenOutcome::Invalid),
    }
}

async fn insert_token<C: GenericClient>(c: &C, t: &TokenRecord) -> Result<()> {
    let key = subject_key(t.kind, &t.subject);
    let h: &[u8] = t.hash.as_bytes();
    let metadata = t.metadata.as_ref().map(json_text);
    execute(
        c,
        "INSERT INTO btps_token (kind, subject_key, token_hash, subject, user_identity, \
         decrypt_by, metadata, created_at, expires_at, used_at) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,NULL) \
         ON CONFLICT (kind, subject_key, token_hash) DO UPDATE SET subject = EXCLUDED.subject, \
         user_identity = EXCLUDED.user_identity, decrypt_by = EXCLUDED.decrypt_by, \
         metadata = EXCLUDED.metadata, created_at = EXCLUDED.created_at, \
         expires_at = EXCLUDED.expires_at, used_at = NULL",
        &[
            &t.kind.as_str(),
            &key,
            &h,
            &t.subject,
            &t.user_identity,
            &t.decrypt_by,
            &metadata,
            &t.created_at.as_millis(),
            &t.expires_at.as_millis(),
        ],
    )
    .await?;
    Ok(())
}

fn identity_from_row(row: &Row) -> Result<IdentityRecord> {
    IdentityRecord::from_object(&parse_object(row.get(0), "identity")?)
}

#[async_trait]
impl IdentityStore for PgStore {
    async fn get_identity(&self, identity: &str) -> Result<Option<IdentityRecord>> {
        let c = self.client().await?;
        let rows = query(
            &c,
            "SELECT record FROM btps_identity WHERE identity_lc = $1",
            &[&identity.to_lowercase()],
        )
        .await?;
        rows.first().map(identity_from_row).transpose()
    }

    async fn put_identity(&self, record: &IdentityRecord) -> Result<()> {
        let c = self.client().await?;
        let lc = record.identity.as_str().to_lowercase();
        let text = json_text(&record.to_object());
        // One identity, one row: a record under another id for the same identity replaces it.
        let mut c = c;
        let tx = c.transaction().await.map_err(backend)?;
        execute(
            &tx,
            "DELETE FROM btps_identity WHERE identity_lc = $1 AND id <> $2",
            &[&lc, &record.id],
        )
        .await?;
        execute(
            &tx,
            "INSERT INTO btps_identity (id, identity_lc, record) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET identity_lc = EXCLUDED.identity_lc, \
             record = EXCLUDED.record",
            &[&record.id, &lc, &text],
        )
        .await?;
        tx.commit().await.map_err(backend)
    }

    async fn delete_identity(&self, identity: &str) -> Result<bool> {
        let c = self.client().await?;
        Ok(execute(
            &c,
            "DELETE FROM btps_identity WHERE identity_lc = $1",
            &[&identity.to_lowercase()],
        )
        .await?
            > 0)
    }

    async fn list_identities(&self, page: &PageRequest) -> Result<Page<IdentityRecord>> {
        let after = page.cursor.as_deref().map(decode_key_cursor).transpose()?;
        let limit = page.effective_limit();
        let c = self.client().await?;
        let rows = query(
            &c,
            "SELECT record, id FROM btps_identity WHERE ($1::text IS NULL OR id > $1) \
             ORDER BY id LIMIT $2",
            &[&after.as_deref(), &limit_plus_one(limit)],
        )
        .await?;
        let more = rows.len() > limit;
        let items = rows
            .iter()
            .take(limit)
            .map(identity_from_row)
            .collect::<Result<Vec<_>>>()?;
        let next_cursor = if more {
            rows.get(limit - 1)
                .map(|r| encode_key_cursor(r.get::<_, &str>(1)))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn create_token(&self, token: &TokenRecord) -> Result<()> {
        let c = self.client().await?;
        insert_token(&c, token).await
    }

    async fn consume_token(
        &self,
        kind: TokenKind,
        subject: &str,
        hash: &TokenHash,
        now: UnixMillis,
    ) -> Result<TokenOutcome> {
        let c = self.client().await?;
        consume(&c, kind, subject, hash, now).await
    }

    async fn rotate_token(
        &self,
        old: &TokenHash,
        new: &TokenRecord,
        now: UnixMillis,
    ) -> Result<TokenOutcome> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(backend)?;
        let out = consume(&tx, TokenKind::Refresh, &new.subject, old, now).await?;
        if matches!(out, TokenOutcome::Consumed(_)) {
            insert_token(&tx, new).await?;
            tx.commit().await.map_err(backend)?;
        } else {
            tx.rollback().await.map_err(backend)?;
        }
        Ok(out)
    }

    async fn revoke_tokens(&self, kind: TokenKind, subject: &str, now: UnixMillis) -> Result<u64> {
        let c = self.client().await?;
        let rows = query(
            &c,
            "WITH d AS (DELETE FROM btps_token WHERE kind = $1 AND subject_key = $2 \
             RETURNING used_at, expires_at) \
             SELECT count(*) FILTER (WHERE used_at IS NULL AND expires_at >= $3) FROM d",
            &[
                &kind.as_str(),
                &subject_key(kind, subject),
                &now.as_millis(),
            ],
        )
        .await?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)).max(0) as u64)
    }

    async fn purge_expired_tokens(&self, now: UnixMillis) -> Result<u64> {
        let c = self.client().await?;
        execute(
            &c,
            "DELETE FROM btps_token WHERE expires_at < $1",
            &[&now.as_millis()],
        )
        .await
    }
}
