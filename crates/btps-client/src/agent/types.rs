//! The agent API's typed requests and results: [`AgentState`], [`Query`], [`Page`],
//! [`TrustPage`], [`Mailbox`], [`Queued`].

use std::fmt;

use btps_trust::TrustRecord;
use btps_types::artifact::SortOrder;
use btps_types::json::{Object, Value};
use btps_types::{Identity, UnixMillis};
use serde::{Deserialize, Serialize};

use crate::ServerAddr;
use crate::error::{ClientError, Result};

/// Everything an agent needs to resume after a restart, for a profile file: its server,
/// user identity, agent id, device private key, refresh token and its expiry, and the
/// identity that decrypts for it. Serialized with camelCase member names, `expiresAt` as a
/// protocol datetime.
///
/// The refresh token is single-use: persist the state every time it changes
/// ([`Agent::set_state_hook`](crate::Agent::set_state_hook)). `Debug` hides the private key
/// and the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentState {
    /// The user's BTPS server.
    pub server: ServerAddr,
    /// The user identity the agent acts for.
    #[serde(with = "identity_text")]
    pub identity: Identity,
    /// The registered agent id (`btps_ag_…`).
    pub agent_id: String,
    /// The device private key, PKCS#8 PEM.
    pub device_key_pem: String,
    /// The current refresh token.
    pub refresh_token: String,
    /// When the refresh token (and the agent record) expires.
    #[serde(with = "datetime_text")]
    pub expires_at: UnixMillis,
    /// The identity whose key decrypts documents for this agent.
    #[serde(with = "identity_text")]
    pub decrypt_by: Identity,
}

impl fmt::Debug for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentState")
            .field("server", &self.server)
            .field("identity", &self.identity)
            .field("agent_id", &self.agent_id)
            .field("expires_at", &self.expires_at)
            .field("decrypt_by", &self.decrypt_by)
            .finish_non_exhaustive()
    }
}

mod identity_text {
    use btps_types::Identity;

    pub(super) fn serialize<S: serde::Serializer>(id: &Identity, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(id.as_str())
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Identity, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        Identity::parse(&text).map_err(serde::de::Error::custom)
    }
}

mod datetime_text {
    use btps_types::UnixMillis;

    pub(super) fn serialize<S: serde::Serializer>(t: &UnixMillis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_datetime_string())
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<UnixMillis, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        UnixMillis::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The mailboxes an agent reads (PROTOCOL.md §3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mailbox {
    /// Received artifacts (`inbox.*`).
    Inbox,
    /// Artifacts queued for delivery, with their delivery state (`outbox.*`).
    Outbox,
    /// Delivered artifacts (`sentbox.*`).
    Sentbox,
    /// Drafts (`draft.*`).
    Drafts,
    /// Deleted artifacts (`trash.*`).
    Trash,
}

impl Mailbox {
    /// The `*.fetch` action.
    pub const fn fetch_action(self) -> &'static str {
        match self {
            Self::Inbox => "inbox.fetch",
            Self::Outbox => "outbox.fetch",
            Self::Sentbox => "sentbox.fetch",
            Self::Drafts => "draft.fetch",
            Self::Trash => "trash.fetch",
        }
    }

    /// The `*.delete` action (`outbox` has `outbox.cancel` instead: `None`).
    pub const fn delete_action(self) -> Option<&'static str> {
        match self {
            Self::Inbox => Some("inbox.delete"),
            Self::Outbox => None,
            Self::Sentbox => Some("sentbox.delete"),
            Self::Drafts => Some("draft.delete"),
            Self::Trash => Some("trash.delete"),
        }
    }
}

/// A fetch query (PROTOCOL.md §3.10). All members optional; an empty query sends no
/// document (the server's default page).
///
/// # Examples
///
/// ```
/// use btps_client::Query;
/// use btps_types::artifact::SortOrder;
/// let q = Query::new().limit(10).sort(SortOrder::Desc);
/// let doc = q.to_document().unwrap();
/// assert_eq!(btps_types::json::object_to_js_string(&doc), r#"{"limit":10,"sort":"desc"}"#);
/// assert!(Query::new().to_document().is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[must_use]
pub struct Query {
    /// `since`: artifacts issued at or after.
    pub since: Option<UnixMillis>,
    /// `until`: artifacts issued at or before.
    pub until: Option<UnixMillis>,
    /// `limit`: page size (servers clamp it to 1..1000).
    pub limit: Option<u32>,
    /// `cursor`: the page after this cursor (from [`Page::cursor`]).
    pub cursor: Option<String>,
    /// `sort`.
    pub sort: Option<SortOrder>,
    /// `query`: the string filters `{title?, from?, to?}`, passed as they are.
    pub filters: Option<Object>,
}

impl Query {
    /// An empty query.
    pub fn new() -> Self {
        Self::default()
    }

    /// With `since`.
    pub fn since(mut self, t: UnixMillis) -> Self {
        self.since = Some(t);
        self
    }

    /// With `until`.
    pub fn until(mut self, t: UnixMillis) -> Self {
        self.until = Some(t);
        self
    }

    /// With `limit`.
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// With `cursor`.
    pub fn cursor(mut self, c: impl Into<String>) -> Self {
        self.cursor = Some(c.into());
        self
    }

    /// With `sort`.
    pub fn sort(mut self, s: SortOrder) -> Self {
        self.sort = Some(s);
        self
    }

    /// With the `query` filters.
    pub fn filters(mut self, f: Object) -> Self {
        self.filters = Some(f);
        self
    }

    /// The Query document, members in the order `since, until, limit, cursor, sort,
    /// query`; `None` when empty.
    pub fn to_document(&self) -> Option<Object> {
        let mut o = Object::new();
        if let Some(t) = self.since {
            o.insert("since", t.to_datetime_string());
        }
        if let Some(t) = self.until {
            o.insert("until", t.to_datetime_string());
        }
        if let Some(n) = self.limit {
            o.insert("limit", n);
        }
        if let Some(c) = &self.cursor {
            o.insert("cursor", c.as_str());
        }
        if let Some(s) = self.sort {
            o.insert("sort", s.as_str());
        }
        if let Some(f) = &self.filters {
            o.insert("query", f.clone());
        }
        (!o.is_empty()).then_some(o)
    }
}

/// One entry of a [`Page`].
#[derive(Clone, Debug, PartialEq)]
pub struct PageEntry {
    /// The stored artifact as the server returned it: a transporter artifact, a draft, or
    /// a `BTP_DELIVERY_FAILURE` artifact (PROTOCOL.md §3.3). Encrypted documents stay
    /// encrypted: see [`Agent::decrypt`](crate::Agent::decrypt).
    pub artifact: Object,
    /// `meta` (`seen`, `seenAt`, the server's extras such as delivery state).
    pub meta: Option<Object>,
}

impl PageEntry {
    /// `meta.seen`.
    pub fn seen(&self) -> bool {
        self.meta
            .as_ref()
            .and_then(|m| m.get("seen"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The artifact's `id`.
    pub fn id(&self) -> Option<&str> {
        self.artifact.get_str("id")
    }
}

/// A page of a mailbox fetch (QueryResult, PROTOCOL.md §3.10).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    /// The entries.
    pub results: Vec<PageEntry>,
    /// The cursor of the next page.
    pub cursor: Option<String>,
    /// Whether there is a next page.
    pub has_next: bool,
    /// The total number of matches, when the server counts them.
    pub total: Option<u64>,
}

fn invalid(what: &str) -> ClientError {
    ClientError::Invalid(format!("reply document: {what}"))
}

fn count(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_f64)
        .filter(|n| n.fract() == 0.0 && *n >= 0.0 && *n <= 9_007_199_254_740_991.0)
        .map(|n| n as u64)
}

impl Page {
    /// Reads a QueryResult document. Lenient about the artifacts (drafts lack `to` and a
    /// signature); strict about the shape.
    ///
    /// # Errors
    ///
    /// [`ClientError::Invalid`] naming the member that is wrong.
    pub fn from_document(doc: Option<&Value>) -> Result<Self> {
        let Some(doc) = doc else {
            return Ok(Self::default());
        };
        let doc = doc.as_object().ok_or_else(|| invalid("not an object"))?;
        let results = doc
            .get("results")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("results is not an array"))?
            .iter()
            .map(|entry| {
                let entry = entry
                    .as_object()
                    .ok_or_else(|| invalid("a result is not an object"))?;
                let artifact = entry
                    .get_object("artifact")
                    .ok_or_else(|| invalid("a result has no artifact object"))?
                    .clone();
                let meta = match entry.get("meta") {
                    None | Some(Value::Null) => None,
                    Some(Value::Object(m)) => Some(m.clone()),
                    Some(_) => return Err(invalid("meta is not an object")),
                };
                Ok(PageEntry { artifact, meta })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            results,
            cursor: doc.get_str("cursor").map(str::to_owned),
            has_next: doc.get("hasNext").and_then(Value::as_bool).unwrap_or(false),
            total: count(doc.get("total")),
        })
    }
}

/// The reply of `trust.fetch`: the user's incoming trust records (agent records included),
/// a page at a time, and its outgoing records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrustPage {
    /// Records whose receiver is the user.
    pub results: Vec<TrustRecord>,
    /// Records whose sender is the user (its own trust requests).
    pub outgoing: Vec<TrustRecord>,
    /// The cursor of the next page.
    pub cursor: Option<String>,
    /// Whether there is a next page.
    pub has_next: bool,
}

impl TrustPage {
    /// Reads a `trust.fetch` reply document.
    ///
    /// # Errors
    ///
    /// [`ClientError::Invalid`] for a malformed document or record.
    pub fn from_document(doc: Option<&Value>) -> Result<Self> {
        let Some(doc) = doc else {
            return Ok(Self::default());
        };
        let doc = doc.as_object().ok_or_else(|| invalid("not an object"))?;
        let records = |member: &str| -> Result<Vec<TrustRecord>> {
            match doc.get(member) {
                None => Ok(Vec::new()),
                Some(Value::Array(list)) => list
                    .iter()
                    .map(|r| {
                        let r = r
                            .as_object()
                            .ok_or_else(|| invalid("a trust record is not an object"))?;
                        TrustRecord::from_object(r)
                            .map_err(|e| invalid(&format!("trust record: {e}")))
                    })
                    .collect(),
                Some(_) => Err(invalid(&format!("{member} is not an array"))),
            }
        };
        Ok(Self {
            results: records("results")?,
            outgoing: records("outgoing")?,
            cursor: doc.get_str("cursor").map(str::to_owned),
            has_next: doc.get("hasNext").and_then(Value::as_bool).unwrap_or(false),
        })
    }
}

/// A send-type action (`artifact.send`, `trust.request`, `trust.respond`) stored durably in
/// the user's outbox; the server delegates and delivers it (PROTOCOL.md §3.5, §11.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queued {
    /// The `id` of the queued transporter artifact (the envelope).
    pub artifact_id: String,
    /// The server had queued it already (an exact re-send after a lost reply).
    pub already_accepted: bool,
}

/// The number in member `name` of a reply document (`updated`, `deleted`).
pub(crate) fn count_in(doc: Option<&Value>, name: &str) -> Result<u64> {
    count(doc.and_then(Value::as_object).and_then(|o| o.get(name)))
        .ok_or_else(|| invalid(&format!("no count {name:?}")))
}

#[cfg(test)]
mod tests {
    use btps_types::json::parse_str;

    use super::*;

    #[test]
    fn pages() {
        let doc = parse_str(r#"{"results":[{"artifact":{"id":"a"},"meta":{"seen":true}},{"artifact":{"id":"b"}}],"cursor":"c","total":2,"hasNext":true}"#).unwrap().value;
        let page = Page::from_document(Some(&doc)).unwrap();
        assert_eq!(page.results.len(), 2);
        assert!(page.results[0].seen() && !page.results[1].seen());
        assert_eq!(page.results[1].id(), Some("b"));
        assert_eq!(
            (page.cursor.as_deref(), page.has_next, page.total),
            (Some("c"), true, Some(2))
        );
        for bad in [
            r#"{}"#,
            r#"{"results":[1]}"#,
            r#"{"results":[{}]}"#,
            r#"{"results":[{"artifact":{},"meta":1}]}"#,
            "[]",
        ] {
            let v = parse_str(bad).unwrap().value;
            assert!(Page::from_document(Some(&v)).is_err(), "{bad}");
        }
        assert_eq!(Page::from_document(None).unwrap(), Page::default());
        assert_eq!(
            count_in(
                Some(&parse_str(r#"{"deleted":3}"#).unwrap().value),
                "deleted"
            )
            .unwrap(),
            3
        );
        assert!(
            count_in(
                Some(&parse_str(r#"{"deleted":-1}"#).unwrap().value),
                "deleted"
            )
            .is_err()
        );
    }

    #[test]
    fn state_round_trip() {
        let state = AgentState {
            server: "btps.example.com:4443".parse().unwrap(),
            identity: "alice$example.com".parse().unwrap(),
            agent_id: "btps_ag_1".into(),
            device_key_pem: "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n"
                .into(),
            refresh_token: "secret-token".into(),
            expires_at: UnixMillis::parse("2030-01-01T00:00:00.000Z").unwrap(),
            decrypt_by: "alice$example.com".parse().unwrap(),
        };
        let text = serde_json::to_string(&state).unwrap();
        assert!(
            text.contains(r#""expiresAt":"2030-01-01T00:00:00.000Z""#),
            "{text}"
        );
        assert!(
            text.contains(r#""server":"btps.example.com:4443""#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<AgentState>(&text).unwrap(), state);
        let shown = format!("{state:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
