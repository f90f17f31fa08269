//! [`MessageStore`]: the mailboxes of hosted identities and the outbox delivery state.

use std::fmt;

use async_trait::async_trait;
use btps_types::UnixMillis;
use btps_types::artifact::Query;
pub use btps_types::artifact::SortOrder;
use btps_types::json::{Object, ParseLimits, Value, object_to_js_string, parse};

use super::replay::ReplayEntry;
use crate::codec::{num, time};
use crate::{Result, TrustError};

/// The five mailboxes of an identity (§3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mailbox {
    /// Accepted inbound artifacts (and delivery failures).
    Inbox,
    /// Artifacts waiting for delivery, with their [`DeliveryState`].
    Outbox,
    /// Delivered artifacts.
    Sentbox,
    /// Drafts.
    Drafts,
    /// Deleted artifacts (deleting from the trash removes them).
    Trash,
}

impl Mailbox {
    /// Every mailbox.
    pub const ALL: [Self; 5] = [
        Self::Inbox,
        Self::Outbox,
        Self::Sentbox,
        Self::Drafts,
        Self::Trash,
    ];

    /// `"inbox"`, `"outbox"`, `"sentbox"`, `"drafts"`, `"trash"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Inbox => "inbox",
            Self::Outbox => "outbox",
            Self::Sentbox => "sentbox",
            Self::Drafts => "drafts",
            Self::Trash => "trash",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An artifact to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// The hosted identity whose mailbox this is (matched case-insensitively).
    pub owner: String,
    /// The mailbox.
    pub mailbox: Mailbox,
    /// The artifact `id` (unique per owner and mailbox).
    pub id: String,
    /// The artifact (a transporter or delivery-failure artifact, or a draft) as stores keep
    /// it: the serializer's text of the artifact object
    /// ([`object_to_js_string`], `JSON.stringify`). Reading the message back parses it.
    pub text: String,
    /// When it was stored: the order of fetches and what `since`/`until` compare.
    pub stored_at: UnixMillis,
}

impl NewMessage {
    /// A message whose id is the artifact's `id` member.
    ///
    /// # Errors
    ///
    /// [`TrustError::InvalidRecord`] when the artifact has no string `id`.
    pub fn new(
        owner: &str,
        mailbox: Mailbox,
        artifact: Object,
        stored_at: UnixMillis,
    ) -> Result<Self> {
        let text = object_to_js_string(&artifact);
        Self::with_text(owner, mailbox, &artifact, text, stored_at)
    }

    /// [`new`](Self::new) with the artifact's text already at hand: `text` must be
    /// [`object_to_js_string`] of `artifact`, such as a received line the parser found
    /// verbatim ([`Parsed::verbatim`](btps_types::json::Parsed::verbatim)); no copy of the
    /// artifact is made and it is not serialized again. Debug builds check the text.
    ///
    /// # Errors
    ///
    /// [`TrustError::InvalidRecord`] when the artifact has no string `id`.
    pub fn with_text(
        owner: &str,
        mailbox: Mailbox,
        artifact: &Object,
        text: String,
        stored_at: UnixMillis,
    ) -> Result<Self> {
        debug_assert_eq!(
            text,
            object_to_js_string(artifact),
            "not the artifact's text"
        );
        let id = artifact
            .get_str("id")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| TrustError::InvalidRecord("artifact without a string `id`".into()))?
            .to_owned();
        Ok(Self {
            owner: owner.to_owned(),
            mailbox,
            id,
            text,
            stored_at,
        })
    }

    /// The artifact, parsed from [`text`](Self::text).
    ///
    /// # Errors
    ///
    /// [`TrustError::InvalidRecord`] when the text is not a JSON object.
    pub fn artifact(&self) -> Result<Object> {
        let limits = ParseLimits {
            max_bytes: usize::MAX,
            max_depth: ParseLimits::MAX_DEPTH_CEILING,
        };
        match parse(self.text.as_bytes(), &limits).map(|p| p.value) {
            Ok(Value::Object(o)) => Ok(o),
            _ => Err(TrustError::InvalidRecord(
                "message text is not a JSON object".into(),
            )),
        }
    }
}

/// Result of [`MessageStore::store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored (and the replay entry, if any, recorded) in one durable step.
    Stored,
    /// The replay key is present with the same signature, or the same artifact is already
    /// stored under this id: an exact re-send; nothing was stored (reply `already accepted`).
    AlreadyAccepted,
    /// The replay key is present with another signature, or another artifact is stored
    /// under this id: `BTP_ERROR_DUPLICATE`; nothing was stored.
    Duplicate,
}

/// Delivery status of an outbox entry (§11.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for (another) attempt at `next_attempt_at`.
    Pending,
    /// Delivered (the entry moved to the sentbox).
    Delivered,
    /// Finally failed; stays in the outbox with the reason (the worker also stores a
    /// `BTP_DELIVERY_FAILURE` artifact for the sender's agents).
    Failed,
    /// Cancelled by the user before delivery (the entry moved to the trash).
    Cancelled,
}

impl DeliveryStatus {
    /// `"pending"`, `"delivered"`, `"failed"`, `"cancelled"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses [`as_str`](Self::as_str).
    pub fn from_wire(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Delivered,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// The delivery state of an outbox entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryState {
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (a claimed entry: when its lease ends).
    pub next_attempt_at: UnixMillis,
    /// Pending or final.
    pub status: DeliveryStatus,
    /// The last error or the final reason.
    pub last_error: Option<String>,
    /// When the status became final.
    pub finished_at: Option<UnixMillis>,
}

impl DeliveryState {
    /// The state of a new outbox entry: due at `at`, no attempts.
    pub fn new(at: UnixMillis) -> Self {
        Self {
            attempts: 0,
            next_attempt_at: at,
            status: DeliveryStatus::Pending,
            last_error: None,
            finished_at: None,
        }
    }

    /// The `delivery` member of a fetch result's `meta`.
    pub fn to_object(&self) -> Object {
        let mut o = Object::new()
            .with("status", self.status.as_str())
            .with("attempts", self.attempts)
            .with("nextAttemptAt", time(self.next_attempt_at));
        if let Some(e) = &self.last_error {
            o.insert("lastError", e.as_str());
        }
        if let Some(t) = self.finished_at {
            o.insert("finishedAt", time(t));
        }
        o
    }
}

/// What a delivery attempt ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Retryable failure: try again at `next_attempt_at`.
    Retry {
        /// When.
        next_attempt_at: UnixMillis,
        /// What went wrong.
        error: String,
    },
    /// Delivered (or `BTP_ERROR_DUPLICATE`: already delivered): move to the sentbox.
    Delivered,
    /// Final failure.
    Failed {
        /// Why (the peer's error code or message).
        reason: String,
    },
}

/// A stored message with its state.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredMessage {
    /// Owner (lower-case).
    pub owner: String,
    /// Mailbox.
    pub mailbox: Mailbox,
    /// The artifact `id`.
    pub id: String,
    /// The artifact.
    pub artifact: Object,
    /// When it was stored (or last moved between mailboxes, or replaced).
    pub stored_at: UnixMillis,
    /// Whether an agent marked it seen.
    pub seen: bool,
    /// When.
    pub seen_at: Option<UnixMillis>,
    /// Outbox (and sentbox, trash) entries: the delivery state.
    pub delivery: Option<DeliveryState>,
}

impl StoredMessage {
    /// One QueryResult entry (§3.10): `{artifact, meta: {seen, seenAt?, storedAt, mailbox,
    /// delivery?}}`.
    pub fn to_query_entry(&self) -> Object {
        let mut meta = Object::new().with("seen", self.seen);
        if let Some(t) = self.seen_at {
            meta.insert("seenAt", time(t));
        }
        meta.insert("storedAt", time(self.stored_at));
        meta.insert("mailbox", self.mailbox.as_str());
        if let Some(d) = &self.delivery {
            meta.insert("delivery", d.to_object());
        }
        Object::new()
            .with("artifact", self.artifact.clone())
            .with("meta", meta)
    }
}

/// Default page size of a fetch.
pub const DEFAULT_FETCH_LIMIT: u32 = 100;
/// Largest page size of a fetch (§3.10: servers clamp to 1..1000).
pub const MAX_FETCH_LIMIT: u32 = 1000;

/// A fetch: the Query of §3.10 as the store sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageQuery {
    /// Only messages stored at or after this instant.
    pub since: Option<UnixMillis>,
    /// Only messages stored at or before this instant.
    pub until: Option<UnixMillis>,
    /// Page size, clamped to 1..=1000; 0 means [`DEFAULT_FETCH_LIMIT`].
    pub limit: u32,
    /// Order by storage time: `asc` (default, oldest first) or `desc`.
    pub sort: Option<SortOrder>,
    /// The `cursor` of the previous page (opaque; only valid with the same sort).
    pub cursor: Option<String>,
}

impl MessageQuery {
    /// The store query of a validated Query document. The string filters in `query` are the
    /// application's business (§3.10) and are not applied here.
    pub fn from_query(q: &Query<'_>) -> Self {
        let t = |s: Option<&str>| s.and_then(|s| UnixMillis::parse(s).ok());
        Self {
            since: t(q.since),
            until: t(q.until),
            limit: q.limit.map_or(0, |l| {
                if l.is_nan() || l < 1.0 {
                    1
                } else if l > f64::from(MAX_FETCH_LIMIT) {
                    MAX_FETCH_LIMIT
                } else {
                    l as u32
                }
            }),
            sort: q.sort,
            cursor: q.cursor.map(str::to_owned),
        }
    }

    /// The page size after clamping.
    pub fn effective_limit(&self) -> usize {
        match self.limit {
            0 => DEFAULT_FETCH_LIMIT as usize,
            n => n.min(MAX_FETCH_LIMIT) as usize,
        }
    }

    /// Whether results are newest first.
    pub fn descending(&self) -> bool {
        self.sort == Some(SortOrder::Desc)
    }
}

/// One page of a fetch, shaped like QueryResult (§3.10).
#[derive(Clone, Debug, PartialEq)]
pub struct MessagePage {
    /// The messages, in the requested order.
    pub results: Vec<StoredMessage>,
    /// Cursor for the next page (present whenever `results` is non-empty).
    pub cursor: Option<String>,
    /// Whether more messages match after this page.
    pub has_next: bool,
    /// How many messages match the query without the cursor, when the backend counts them.
    pub total: Option<u64>,
}

impl MessagePage {
    /// The QueryResult reply document: `{results: [{artifact, meta}], cursor?, total?,
    /// hasNext}`.
    pub fn to_query_result(&self) -> Object {
        let mut o = Object::new().with(
            "results",
            Value::Array(
                self.results
                    .iter()
                    .map(|m| Value::Object(m.to_query_entry()))
                    .collect(),
            ),
        );
        if let Some(c) = &self.cursor {
            o.insert("cursor", c.as_str());
        }
        if let Some(t) = self.total {
            o.insert("total", num(t));
        }
        o.insert("hasNext", self.has_next);
        o
    }
}

/// Mailboxes of hosted identities: inbox, outbox (with delivery state), sentbox, drafts and
/// trash (§3.5, §11.1). Messages are keyed by (owner, mailbox, artifact `id`).
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Stores a message and, in the same atomic, durable step, records its replay entry
    /// ("store and mark seen", §2.7 steps 9–10): either both happen or neither.
    ///
    /// If the replay key is present (unexpired at `now`) nothing is stored and the outcome
    /// says whether it was the same signature; likewise when the (owner, mailbox, id) key is
    /// taken (same artifact → [`StoreOutcome::AlreadyAccepted`], another →
    /// [`StoreOutcome::Duplicate`]). Outbox messages start with [`DeliveryState::new`] due at
    /// `stored_at`. Durable on return.
    ///
    /// The replay entry lives in the same replay set as [`ReplayStore`]'s.
    ///
    /// # Errors
    ///
    /// Store failures (fail closed).
    ///
    /// [`ReplayStore`]: super::ReplayStore
    async fn store(
        &self,
        message: &NewMessage,
        replay: Option<&ReplayEntry>,
        now: UnixMillis,
    ) -> Result<StoreOutcome>;

    /// One message.
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn get_message(
        &self,
        owner: &str,
        mailbox: Mailbox,
        id: &str,
    ) -> Result<Option<StoredMessage>>;

    /// A page of a mailbox, ordered by (storage time, insertion order), filtered by
    /// `since`/`until` (inclusive), continuing after `cursor`. Paging through a mailbox while
    /// messages are added returns every message present throughout exactly once.
    ///
    /// # Errors
    ///
    /// [`TrustError::InvalidCursor`]; store failures.
    async fn fetch(
        &self,
        owner: &str,
        mailbox: Mailbox,
        query: &MessageQuery,
    ) -> Result<MessagePage>;

    /// Marks messages seen (`seenAt = now` the first time); returns how many changed. Unknown
    /// ids are ignored. Durable on return.
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn mark_seen(
        &self,
        owner: &str,
        mailbox: Mailbox,
        ids: &[&str],
        now: UnixMillis,
    ) -> Result<u64>;

    /// Deletes messages: from any mailbox but the trash they move to the trash (replacing a
    /// trash entry with the same id); from the trash they are removed. Returns how many were
    /// affected. Durable on return.
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn delete_messages(
        &self,
        owner: &str,
        mailbox: Mailbox,
        ids: &[&str],
        now: UnixMillis,
    ) -> Result<u64>;

    /// Replaces the artifact of an existing message (`draft.update`); `false` when there is
    /// none. Durable on return.
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn replace_message(
        &self,
        owner: &str,
        mailbox: Mailbox,
        id: &str,
        artifact: &Object,
        now: UnixMillis,
    ) -> Result<bool>;

    /// Claims up to `limit` pending outbox entries (of all owners) due at `now`, oldest due
    /// first, by moving their `next_attempt_at` to `lease_until`, so that concurrent workers
    /// (of any process) do not claim the same entry; an entry whose worker died becomes due
    /// again when the lease ends. Durable on return.
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn claim_due(
        &self,
        now: UnixMillis,
        lease_until: UnixMillis,
        limit: usize,
    ) -> Result<Vec<StoredMessage>>;

    /// Records the outcome of a delivery attempt of a pending outbox entry (`attempts + 1`):
    /// retry later, delivered (moves to the sentbox), or finally failed (stays in the outbox
    /// with the reason). `false` when the entry is not pending in the outbox (cancelled
    /// meanwhile, or already final). Durable on return.
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn record_delivery(
        &self,
        owner: &str,
        id: &str,
        outcome: &DeliveryOutcome,
        now: UnixMillis,
    ) -> Result<bool>;

    /// `outbox.cancel`: pending outbox entries become cancelled and move to the trash; returns
    /// the ids that were cancelled (final or unknown ones are skipped). Durable on return.
    ///
    /// # Errors
    ///
    /// Store failures.
    async fn cancel_outbox(
        &self,
        owner: &str,
        ids: &[&str],
        now: UnixMillis,
    ) -> Result<Vec<String>>;

    /// Whether the store accepts writes now: `Ok` unless the backend knows that every write
    /// would fail (the file backend after a failed write, until it is reopened). Readiness
    /// probes call it. The default reports healthy, for backends whose calls fail by
    /// themselves while they are down (PostgreSQL).
    ///
    /// # Errors
    ///
    /// Why the store refuses writes ([`TrustError::Poisoned`](crate::TrustError::Poisoned),
    /// [`TrustError::Closed`](crate::TrustError::Closed)).
    async fn health(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use btps_types::json::parse_str;

    fn query(text: &str) -> MessageQuery {
        let v = parse_str(text).unwrap().value;
        MessageQuery::from_query(&Query::validate(&v).unwrap())
    }

    #[test]
    fn query_from_the_wire_is_clamped() {
        let q =
            query(r#"{"since":"2025-07-01T00:00:00Z","limit":5000,"sort":"desc","cursor":"c"}"#);
        assert_eq!(q.since, UnixMillis::parse("2025-07-01T00:00:00Z").ok());
        assert_eq!((q.limit, q.effective_limit()), (1000, 1000));
        assert!(q.descending());
        assert_eq!(q.cursor.as_deref(), Some("c"));
        assert_eq!(query(r#"{"limit":0}"#).effective_limit(), 1);
        assert_eq!(query(r#"{"limit":-3}"#).effective_limit(), 1);
        assert_eq!(query(r#"{"limit":7.9}"#).effective_limit(), 7);
        assert_eq!(query(r#"{"sort":"asc"}"#).effective_limit(), 100);
        assert!(!query(r#"{"sort":"asc"}"#).descending());
    }

    #[test]
    fn query_result_shape() {
        let m = StoredMessage {
            owner: "a$b.com".into(),
            mailbox: Mailbox::Outbox,
            id: "x".into(),
            artifact: Object::new().with("id", "x"),
            stored_at: UnixMillis::from_millis(0),
            seen: true,
            seen_at: Some(UnixMillis::from_millis(1)),
            delivery: Some(DeliveryState::new(UnixMillis::from_millis(2))),
        };
        let page = MessagePage {
            results: vec![m],
            cursor: Some("0.1".into()),
            has_next: false,
            total: Some(1),
        };
        assert_eq!(
            btps_types::json::to_js_string(&Value::Object(page.to_query_result())),
            r#"{"results":[{"artifact":{"id":"x"},"meta":{"seen":true,"seenAt":"1970-01-01T00:00:00.001Z","storedAt":"1970-01-01T00:00:00.000Z","mailbox":"outbox","delivery":{"status":"pending","attempts":0,"nextAttemptAt":"1970-01-01T00:00:00.002Z"}}}],"cursor":"0.1","total":1,"hasNext":false}"#
        );
    }
}
