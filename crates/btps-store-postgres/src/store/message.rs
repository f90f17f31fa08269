//! [`MessageStore`] for [`PgStore`].

use async_trait::async_trait;
use btps_trust::{
    DeliveryOutcome, DeliveryState, DeliveryStatus, Mailbox, MessagePage, MessageQuery,
    MessageStore, NewMessage, ReplayEntry, Result, StoreOutcome, StoredMessage, TrustError,
};
use btps_types::UnixMillis;
use btps_types::json::Object;
use tokio_postgres::Row;

use super::{PgStore, execute, group, json_text, limit_plus_one, parse_object, query};
use crate::error::backend;

const COLUMNS: &str = "owner, mailbox, id, seq, stored_at, artifact, seen_at, delivery_status, \
     attempts, next_attempt_at, last_error, finished_at";

fn from_row(row: &Row) -> Result<StoredMessage> {
    let mailbox = Mailbox::from_wire(row.get(1))
        .ok_or_else(|| TrustError::InvalidRecord("stored mailbox".into()))?;
    let seen_at: Option<i64> = row.get(6);
    let delivery = match row.get::<_, Option<&str>>(7) {
        None => None,
        Some(s) => Some(DeliveryState {
            status: DeliveryStatus::from_wire(s)
                .ok_or_else(|| TrustError::InvalidRecord("stored delivery status".into()))?,
            attempts: row.get::<_, Option<i32>>(8).unwrap_or(0).max(0) as u32,
            next_attempt_at: UnixMillis::from_millis(row.get::<_, Option<i64>>(9).unwrap_or(0)),
            last_error: row.get(10),
            finished_at: row.get::<_, Option<i64>>(11).map(UnixMillis::from_millis),
        }),
    };
    Ok(StoredMessage {
        owner: row.get(0),
        mailbox,
        id: row.get(2),
        artifact: parse_object(row.get(5), "artifact")?,
        stored_at: UnixMillis::from_millis(row.get(4)),
        seen: seen_at.is_some(),
        seen_at: seen_at.map(UnixMillis::from_millis),
        delivery,
    })
}

/// Encodes a fetch cursor: the position (storedAt, seq) of the last returned message.
fn encode_cursor(at: i64, seq: i64) -> String {
    format!("m1.{at}.{seq}")
}

/// Decodes [`encode_cursor`]; anything else is [`TrustError::InvalidCursor`].
fn decode_cursor(c: &str) -> Result<(i64, i64)> {
    let rest = c.strip_prefix("m1.").ok_or(TrustError::InvalidCursor)?;
    let (at, seq) = rest.split_once('.').ok_or(TrustError::InvalidCursor)?;
    let num = |s: &str| {
        let digits = s.strip_prefix('-').unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<i64>().ok()
    };
    match (num(at), num(seq)) {
        (Some(at), Some(seq)) if seq >= 0 => Ok((at, seq)),
        _ => Err(TrustError::InvalidCursor),
    }
}

/// A move between mailboxes.
#[derive(Clone, Copy)]
struct Move<'a> {
    from: Mailbox,
    to: Mailbox,
    /// Further assignments (the delivery state; `$5` is `now`), starting with a comma.
    set: &'a str,
    /// Further conditions on the moved rows, starting with `AND`.
    only: &'a str,
}

/// Moves messages of `owner` within transaction `tx`: a new `seq` and storage time `now`,
/// replacing entries with the same id in the target mailbox. Returns the moved ids.
async fn move_messages(
    tx: &deadpool_postgres::Transaction<'_>,
    owner: &str,
    mv: &Move<'_>,
    ids: &[&str],
    now: UnixMillis,
) -> Result<Vec<String>> {
    let Move {
        from,
        to,
        set: extra_set,
        only: extra_where,
    } = *mv;
    let del = format!(
        "DELETE FROM btps_message WHERE owner = $1 AND mailbox = $2 AND id IN \
         (SELECT id FROM btps_message WHERE owner = $1 AND mailbox = $3 AND id = ANY($4) \
         {extra_where})"
    );
    execute(tx, &del, &[&owner, &to.as_str(), &from.as_str(), &ids]).await?;
    let upd = format!(
        "UPDATE btps_message SET mailbox = $2, seq = nextval('btps_message_seq'), \
         stored_at = $5 {extra_set} WHERE owner = $1 AND mailbox = $3 AND id = ANY($4) \
         {extra_where} RETURNING id"
    );
    let rows = query(
        tx,
        &upd,
        &[&owner, &to.as_str(), &from.as_str(), &ids, &now.as_millis()],
    )
    .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[async_trait]
impl MessageStore for PgStore {
    async fn store(
        &self,
        message: &NewMessage,
        replay: Option<&ReplayEntry>,
        now: UnixMillis,
    ) -> Result<StoreOutcome> {
        // Queued to a group-commit writer (see `group`).
        self.group
            .store(group::Job::new(message, replay, now))
            .await
    }

    async fn get_message(
        &self,
        owner: &str,
        mailbox: Mailbox,
        id: &str,
    ) -> Result<Option<StoredMessage>> {
        let c = self.client().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM btps_message WHERE owner = $1 AND mailbox = $2 AND id = $3"
        );
        let rows = query(&c, &sql, &[&owner.to_lowercase(), &mailbox.as_str(), &id]).await?;
        rows.first().map(from_row).transpose()
    }

    async fn fetch(&self, owner: &str, mailbox: Mailbox, q: &MessageQuery) -> Result<MessagePage> {
        let owner = owner.to_lowercase();
        let limit = q.effective_limit();
        let cursor = q.cursor.as_deref().map(decode_cursor).transpose()?;
        let lo = q.since.map_or(i64::MIN, UnixMillis::as_millis);
        let hi = q.until.map_or(i64::MAX, UnixMillis::as_millis);
        let (c_at, c_seq) = match cursor {
            Some(c) => (Some(c.0), Some(c.1)),
            None => (None, None),
        };
        let sql = if q.descending() {
            format!(
                "SELECT {COLUMNS} FROM btps_message WHERE owner = $1 AND mailbox = $2 \
                 AND stored_at BETWEEN $3 AND $4 \
                 AND ($5::bigint IS NULL OR (stored_at, seq) < ($5, $6::bigint)) \
                 ORDER BY stored_at DESC, seq DESC LIMIT $7"
            )
        } else {
            format!(
                "SELECT {COLUMNS} FROM btps_message WHERE owner = $1 AND mailbox = $2 \
                 AND stored_at BETWEEN $3 AND $4 \
                 AND ($5::bigint IS NULL OR (stored_at, seq) > ($5, $6::bigint)) \
                 ORDER BY stored_at, seq LIMIT $7"
            )
        };
        let mut c = self.client().await?;
        // One snapshot for the page and the count.
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(backend)?;
        let rows = query(
            &tx,
            &sql,
            &[
                &owner,
                &mailbox.as_str(),
                &lo,
                &hi,
                &c_at,
                &c_seq,
                &limit_plus_one(limit),
            ],
        )
        .await?;
        let total = query(
            &tx,
            "SELECT count(*) FROM btps_message WHERE owner = $1 AND mailbox = $2 \
             AND stored_at BETWEEN $3 AND $4",
            &[&owner, &mailbox.as_str(), &lo, &hi],
        )
        .await?
        .first()
        .map_or(0, |r| r.get::<_, i64>(0).max(0) as u64);
        tx.commit().await.map_err(backend)?;
        let has_next = rows.len() > limit;
        let cursor = rows
            .get(..limit.min(rows.len()))
            .and_then(<[Row]>::last)
            .map(|r| encode_cursor(r.get(4), r.get(3)));
        let results = rows
            .iter()
            .take(limit)
            .map(from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(MessagePage {
            results,
            cursor,
            has_next,
            total: Some(total),
        })
    }

    async fn mark_seen(
        &self,
        owner: &str,
        mailbox: Mailbox,
        ids: &[&str],
        now: UnixMillis,
    ) -> Result<u64> {
        let c = self.client().await?;
        execute(
            &c,
            "UPDATE btps_message SET seen_at = $4 WHERE owner = $1 AND mailbox = $2 \
             AND id = ANY($3) AND seen_at IS NULL",
            &[
                &owner.to_lowercase(),
                &mailbox.as_str(),
                &ids,
                &now.as_millis(),
            ],
        )
        .await
    }

    async fn delete_messages(
        &self,
        owner: &str,
        mailbox: Mailbox,
        ids: &[&str],
        now: UnixMillis,
    ) -> Result<u64> {
        let owner = owner.to_lowercase();
        let mut c = self.client().await?;
        if mailbox == Mailbox::Trash {
            return execute(
                &c,
                "DELETE FROM btps_message WHERE owner = $1 AND mailbox = 'trash' AND id = ANY($2)",
                &[&owner, &ids],
            )
            .await;
        }
        let tx = c.transaction().await.map_err(backend)?;
        let mv = Move {
            from: mailbox,
            to: Mailbox::Trash,
            set: "",
            only: "",
        };
        let moved = move_messages(&tx, &owner, &mv, ids, now).await?;
        tx.commit().await.map_err(backend)?;
        Ok(moved.len() as u64)
    }

    async fn replace_message(
        &self,
        owner: &str,
        mailbox: Mailbox,
        id: &str,
        artifact: &Object,
        now: UnixMillis,
    ) -> Result<bool> {
        let c = self.client().await?;
        let text = json_text(artifact);
        Ok(execute(
            &c,
            "UPDATE btps_message SET artifact = $4, digest = sha256(convert_to($4, 'UTF8')), \
             seq = nextval('btps_message_seq'), stored_at = $5 \
             WHERE owner = $1 AND mailbox = $2 AND id = $3",
            &[
                &owner.to_lowercase(),
                &mailbox.as_str(),
                &id,
                &text,
                &now.as_millis(),
            ],
        )
        .await?
            == 1)
    }

    async fn claim_due(
        &self,
        now: UnixMillis,
        lease_until: UnixMillis,
        limit: usize,
    ) -> Result<Vec<StoredMessage>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let c = self.client().await?;
        // SKIP LOCKED: concurrent workers (of any process) pass over rows another worker is
        // claiming instead of waiting for it or claiming them twice.
        let sql = format!(
            "WITH due AS (SELECT owner, mailbox, id, next_attempt_at AS due_at, seq AS due_seq \
               FROM btps_message WHERE mailbox = 'outbox' AND delivery_status = 'pending' \
               AND next_attempt_at <= $1 ORDER BY next_attempt_at, seq LIMIT $3 \
               FOR UPDATE SKIP LOCKED) \
             UPDATE btps_message m SET next_attempt_at = $2 FROM due \
             WHERE m.owner = due.owner AND m.mailbox = due.mailbox AND m.id = due.id \
             RETURNING {}, due.due_at, due.due_seq",
            COLUMNS
                .split(", ")
                .map(|c| format!("m.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = query(
            &c,
            &sql,
            &[&now.as_millis(), &lease_until.as_millis(), &limit],
        )
        .await?;
        rows.sort_by_key(|r| (r.get::<_, i64>(12), r.get::<_, i64>(13)));
        rows.iter().map(from_row).collect()
    }

    async fn record_delivery(
        &self,
        owner: &str,
        id: &str,
        outcome: &DeliveryOutcome,
        now: UnixMillis,
    ) -> Result<bool> {
        let owner = owner.to_lowercase();
        let now_ms = now.as_millis();
        let mut c = self.client().await?;
        const PENDING: &str = "AND delivery_status = 'pending'";
        match outcome {
            DeliveryOutcome::Delivered => {
                let tx = c.transaction().await.map_err(backend)?;
                let mv = Move {
                    from: Mailbox::Outbox,
                    to: Mailbox::Sentbox,
                    set: ", delivery_status = 'delivered', attempts = attempts + 1, \
                          finished_at = $5",
                    only: PENDING,
                };
                let moved = move_messages(&tx, &owner, &mv, &[id], now).await?;
                tx.commit().await.map_err(backend)?;
                Ok(!moved.is_empty())
            }
            DeliveryOutcome::Retry {
                next_attempt_at,
                error,
            } => Ok(execute(
                &c,
                "UPDATE btps_message SET attempts = attempts + 1, next_attempt_at = $3, \
                 last_error = $4 WHERE owner = $1 AND mailbox = 'outbox' AND id = $2 \
                 AND delivery_status = 'pending'",
                &[&owner, &id, &next_attempt_at.as_millis(), error],
            )
            .await?
                == 1),
            DeliveryOutcome::Failed { reason } => Ok(execute(
                &c,
                "UPDATE btps_message SET attempts = attempts + 1, delivery_status = 'failed', \
                 last_error = $3, finished_at = $4 WHERE owner = $1 AND mailbox = 'outbox' \
                 AND id = $2 AND delivery_status = 'pending'",
                &[&owner, &id, reason, &now_ms],
            )
            .await?
                == 1),
        }
    }

    async fn cancel_outbox(
        &self,
        owner: &str,
        ids: &[&str],
        now: UnixMillis,
    ) -> Result<Vec<String>> {
        let owner = owner.to_lowercase();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(backend)?;
        let mv = Move {
            from: Mailbox::Outbox,
            to: Mailbox::Trash,
            set: ", delivery_status = 'cancelled', finished_at = $5",
            only: "AND delivery_status = 'pending'",
        };
        let moved = move_messages(&tx, &owner, &mv, ids, now).await?;
        tx.commit().await.map_err(backend)?;
        // In the order asked for.
        let mut out = Vec::with_capacity(moved.len());
        for id in ids {
            if moved.iter().any(|m| m == id) && !out.iter().any(|o: &String| o == id) {
                out.push((*id).to_owned());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_rejected() {
        assert_eq!(decode_cursor(&encode_cursor(-5, 7)).unwrap(), (-5, 7));
        assert_eq!(
            decode_cursor(&encode_cursor(1_750_000_000_000, 0)).unwrap(),
            (1_750_000_000_000, 0)
        );
        for bad in [
            "no such cursor",
            "",
            "m1.",
            "m1.1",
            "m1.1.",
            "m1.1.-2",
            "m1.+1.2",
            "m1.1.2.3",
            "1.2",
            "m1.99999999999999999999.1",
        ] {
            assert!(
                matches!(decode_cursor(bad), Err(TrustError::InvalidCursor)),
                "{bad}"
            );
        }
    }
}
