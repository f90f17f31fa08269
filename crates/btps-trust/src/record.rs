//! The trust record ([PROTOCOL.md §7.1]) and its JSON form (§7.5).
//!
//! [PROTOCOL.md §7.1]: https://btps.invalid/PROTOCOL.md#71-trust-record

use std::fmt;

use btps_types::UnixMillis;
use btps_types::artifact::PrivacyType;
use btps_types::json::{Object, Value, parse_str, to_js_string};

use crate::codec::{Fields, time};
use crate::{Result, TrustError, trust_id};

/// The status of a trust record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrustStatus {
    /// `accepted`: the sender may send `BTPS_DOC` artifacts (while unexpired).
    Accepted,
    /// `rejected`: refused; a new request is possible (after `retryAfterDate`, if set).
    Rejected,
    /// `revoked`: trust withdrawn; a new request is possible (after `retryAfterDate`).
    Revoked,
    /// `pending`: requested, not decided; repeat requests are refused.
    Pending,
    /// `blocked`: temporary with `retryAfterDate`, permanent without.
    Blocked,
}

impl TrustStatus {
    /// Every status, in protocol order.
    pub const ALL: [Self; 5] = [
        Self::Accepted,
        Self::Rejected,
        Self::Revoked,
        Self::Pending,
        Self::Blocked,
    ];

    /// The wire string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Revoked => "revoked",
            Self::Pending => "pending",
            Self::Blocked => "blocked",
        }
    }

    /// Parses the wire string (exact).
    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for TrustStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<btps_types::artifact::TrustDecision> for TrustStatus {
    fn from(d: btps_types::artifact::TrustDecision) -> Self {
        use btps_types::artifact::TrustDecision as D;
        match d {
            D::Accepted => Self::Accepted,
            D::Rejected => Self::Rejected,
            D::Revoked => Self::Revoked,
            D::Blocked => Self::Blocked,
        }
    }
}

/// One replaced key of the sender: `{fingerprint, firstSeen, lastSeen}`.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyHistoryEntry {
    /// Fingerprint of the replaced key.
    pub fingerprint: String,
    /// When it was first seen.
    pub first_seen: UnixMillis,
    /// When it was last seen (the time it was replaced).
    pub last_seen: UnixMillis,
    /// Members this crate does not know, kept in order.
    pub extra: Object,
}

/// One key rotation the receiver accepted on the strength of a signed rotation proof
/// (docs/keys.md): `{oldKey, newKey, rotatedAt, rotationMethod, proofSource}`, fingerprints
/// for the keys.
#[derive(Clone, Debug, PartialEq)]
pub struct RotationEntry {
    /// `oldKey`: fingerprint of the pinned key that was replaced.
    pub old_fingerprint: String,
    /// `newKey`: fingerprint of the key that replaced it.
    pub new_fingerprint: String,
    /// `rotatedAt`: when the receiver accepted the rotation.
    pub rotated_at: UnixMillis,
    /// `rotationMethod`: `signed-proof`.
    pub method: String,
    /// `proofSource`: `well-known` (fetched from the sender's domain) or `in-band` (carried
    /// by the artifact).
    pub source: String,
    /// Members this crate does not know, kept in order.
    pub extra: Object,
}

/// A trust record (PROTOCOL.md §7.1): who may send to whom, with which key and privacy
/// policy. Agent records (§8.2) use the same shape with `sender_id` = the `agentId`.
///
/// Datetimes are held as [`UnixMillis`] and written as `YYYY-MM-DDTHH:MM:SS.mmmZ`. Members this
/// crate does not know (btps-node writes `toIdentity` / `fromIdentity`, applications add
/// their own) are kept in [`extra`](Self::extra) and written back after the known ones.
///
/// # Examples
///
/// ```
/// use btps_trust::{TrustRecord, TrustStatus};
/// use btps_types::{UnixMillis, artifact::PrivacyType};
/// let now = UnixMillis::parse("2025-07-01T09:30:00.000Z").unwrap();
/// let r = TrustRecord::new("billing$vendorcorp.com", "pay$client.com", TrustStatus::Accepted, now)
///     .with_privacy(PrivacyType::Mixed);
/// assert!(r.is_active(now));
/// let json = r.to_json();
/// assert!(json.starts_with(r#"{"id":"7cedf7a0"#));
/// assert_eq!(TrustRecord::from_json(&json).unwrap(), r);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TrustRecord {
    /// `id`: the trust id (§7.2) of (`sender_id`, `receiver_id`).
    pub id: String,
    /// `senderId`: the identity allowed to send (the `agentId` for agent records).
    pub sender_id: String,
    /// `receiverId`: the receiving identity (the user identity for agent records).
    pub receiver_id: String,
    /// `status`.
    pub status: TrustStatus,
    /// `createdAt`.
    pub created_at: UnixMillis,
    /// `decidedBy`: free text.
    pub decided_by: String,
    /// `decidedAt`.
    pub decided_at: UnixMillis,
    /// `expiresAt`: after it the record is inactive.
    pub expires_at: Option<UnixMillis>,
    /// `publicKeyBase64`: bare base64 SPKI of the sender's key when decided.
    pub public_key_base64: String,
    /// `publicKeyFingerprint`: §4.2 fingerprint of that key.
    pub public_key_fingerprint: String,
    /// `keyHistory`: replaced keys, oldest first.
    pub key_history: Vec<KeyHistoryEntry>,
    /// `privacyType`.
    pub privacy_type: PrivacyType,
    /// `retryAfterDate`: no new `TRUST_REQ` before it; makes `blocked` temporary.
    pub retry_after: Option<UnixMillis>,
    /// `metadata`: free (agent records: `{agentInfo: {...}}`).
    pub metadata: Option<Object>,
    /// `lockedTrust` (docs/keys.md): the sender's key is pinned; a different key is refused
    /// unless [`allow_key_rotation`](Self::allow_key_rotation) and a valid rotation proof.
    /// Written only when `true`.
    pub locked_trust: bool,
    /// `allowKeyRotation`: with locked trust, accept a new key proven by a rotation proof
    /// signed by the pinned key. Written only when `true`.
    pub allow_key_rotation: bool,
    /// `rotationHistory`: rotations accepted on a proof, oldest first. Written when not empty.
    pub rotation_history: Vec<RotationEntry>,
    /// Members this crate does not know, kept in order and written back.
    pub extra: Object,
}

const KNOWN: [&str; 17] = [
    "id",
    "senderId",
    "receiverId",
    "status",
    "createdAt",
    "decidedBy",
    "decidedAt",
    "expiresAt",
    "publicKeyBase64",
    "publicKeyFingerprint",
    "keyHistory",
    "privacyType",
    "retryAfterDate",
    "metadata",
    "lockedTrust",
    "allowKeyRotation",
    "rotationHistory",
];

impl TrustRecord {
    /// A record with the computed id, `created_at = decided_at = now`, no key, no expiry,
    /// `privacyType` `encrypted`, empty `decidedBy`.
    pub fn new(sender_id: &str, receiver_id: &str, status: TrustStatus, now: UnixMillis) -> Self {
        Self {
            id: trust_id(sender_id, receiver_id),
            sender_id: sender_id.to_owned(),
            receiver_id: receiver_id.to_owned(),
            status,
            created_at: now,
            decided_by: String::new(),
            decided_at: now,
            expires_at: None,
            public_key_base64: String::new(),
            public_key_fingerprint: String::new(),
            key_history: Vec::new(),
            privacy_type: PrivacyType::Encrypted,
            retry_after: None,
            metadata: None,
            locked_trust: false,
            allow_key_rotation: false,
            rotation_history: Vec::new(),
            extra: Object::new(),
        }
    }

    /// The agent record of PROTOCOL.md §8.2 step 4: `trustId(agentId, identity)`, `senderId =
    /// agentId`, `receiverId = identity`, `accepted`, `createdAt = decidedAt = now`,
    /// `expiresAt = now + refresh_lifetime_ms`, the device key, `keyHistory: []`,
    /// `privacyType` `encrypted`, `metadata: {agentInfo}` when given.
    ///
    /// # Examples
    ///
    /// ```
    /// use btps_trust::{TrustRecord, trust_id};
    /// use btps_types::UnixMillis;
    /// let now = UnixMillis::from_millis(0);
    /// let week = 7 * 86_400_000;
    /// let r = TrustRecord::new_agent("btps_ag_1", "pay$client.com", "QUJD", "ZnA=", "pay-service", None, now, week);
    /// assert_eq!(r.id, trust_id("btps_ag_1", "pay$client.com"));
    /// assert!(r.is_active(now.saturating_add_millis(week)));
    /// assert!(!r.is_active(now.saturating_add_millis(week + 1)));
    /// ```
    #[allow(clippy::too_many_arguments, reason = "mirrors the §8.2 member list")]
    pub fn new_agent(
        agent_id: &str,
        identity: &str,
        public_key_base64: &str,
        fingerprint: &str,
        decided_by: &str,
        agent_info: Option<&Object>,
        now: UnixMillis,
        refresh_lifetime_ms: i64,
    ) -> Self {
        let mut r = Self::new(agent_id, identity, TrustStatus::Accepted, now)
            .with_key(public_key_base64, fingerprint)
            .with_decided_by(decided_by)
            .with_expiry(Some(now.saturating_add_millis(refresh_lifetime_ms)));
        r.metadata = agent_info.map(|i| Object::new().with("agentInfo", i.clone()));
        r
    }

    /// Builder: sets the sender key (bare base64 SPKI and its fingerprint).
    #[must_use]
    pub fn with_key(mut self, public_key_base64: &str, fingerprint: &str) -> Self {
        public_key_base64.clone_into(&mut self.public_key_base64);
        fingerprint.clone_into(&mut self.public_key_fingerprint);
        self
    }

    /// Builder: sets `privacyType`.
    #[must_use]
    pub fn with_privacy(mut self, privacy: PrivacyType) -> Self {
        self.privacy_type = privacy;
        self
    }

    /// Builder: sets `expiresAt`.
    #[must_use]
    pub fn with_expiry(mut self, expires_at: Option<UnixMillis>) -> Self {
        self.expires_at = expires_at;
        self
    }

    /// Builder: sets `retryAfterDate`.
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Option<UnixMillis>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Builder: sets `lockedTrust` and `allowKeyRotation` (docs/keys.md).
    #[must_use]
    pub fn with_lock(mut self, locked_trust: bool, allow_key_rotation: bool) -> Self {
        self.locked_trust = locked_trust;
        self.allow_key_rotation = allow_key_rotation;
        self
    }

    /// Builder: sets `decidedBy`.
    #[must_use]
    pub fn with_decided_by(mut self, decided_by: &str) -> Self {
        decided_by.clone_into(&mut self.decided_by);
        self
    }

    /// The trust id computed from `sender_id` and `receiver_id` (normally equal to `id`).
    pub fn computed_id(&self) -> String {
        trust_id(&self.sender_id, &self.receiver_id)
    }

    /// Whether `expiresAt` has passed (`expiresAt < now`).
    pub fn is_expired(&self, now: UnixMillis) -> bool {
        self.expires_at.is_some_and(|e| e < now)
    }

    /// *Active* (§7.1): status `accepted` and not expired.
    pub fn is_active(&self, now: UnixMillis) -> bool {
        self.status == TrustStatus::Accepted && !self.is_expired(now)
    }

    /// `blocked` without `retryAfterDate`: only a manual change lifts it.
    pub fn is_permanently_blocked(&self) -> bool {
        self.status == TrustStatus::Blocked && self.retry_after.is_none()
    }

    /// Whether `retryAfterDate` is set and still in the future.
    pub fn retry_pending(&self, now: UnixMillis) -> bool {
        self.retry_after.is_some_and(|r| now < r)
    }

    /// The JSON object in the §7.5 member order: `id` first, then the §7.1 members, then the
    /// unknown members as read.
    pub fn to_object(&self) -> Object {
        let mut o = Object::with_capacity(14 + self.extra.len());
        o.insert("id", self.id.as_str());
        o.insert("senderId", self.sender_id.as_str());
        o.insert("receiverId", self.receiver_id.as_str());
        o.insert("status", self.status.as_str());
        o.insert("createdAt", time(self.created_at));
        o.insert("decidedBy", self.decided_by.as_str());
        o.insert("decidedAt", time(self.decided_at));
        if let Some(e) = self.expires_at {
            o.insert("expiresAt", time(e));
        }
        o.insert("publicKeyBase64", self.public_key_base64.as_str());
        o.insert("publicKeyFingerprint", self.public_key_fingerprint.as_str());
        o.insert(
            "keyHistory",
            Value::Array(
                self.key_history
                    .iter()
                    .map(|k| {
                        let mut e = Object::with_capacity(3 + k.extra.len());
                        e.insert("fingerprint", k.fingerprint.as_str());
                        e.insert("firstSeen", time(k.first_seen));
                        e.insert("lastSeen", time(k.last_seen));
                        for (key, v) in k.extra.iter() {
                            e.insert(key.clone(), v.clone());
                        }
                        Value::Object(e)
                    })
                    .collect(),
            ),
        );
        o.insert("privacyType", self.privacy_type.as_str());
        if let Some(r) = self.retry_after {
            o.insert("retryAfterDate", time(r));
        }
        if let Some(m) = &self.metadata {
            o.insert("metadata", m.clone());
        }
        if self.locked_trust {
            o.insert("lockedTrust", true);
        }
        if self.allow_key_rotation {
            o.insert("allowKeyRotation", true);
        }
        if !self.rotation_history.is_empty() {
            o.insert(
                "rotationHistory",
                Value::Array(
                    self.rotation_history
                        .iter()
                        .map(|r| {
                            let mut e = Object::with_capacity(5 + r.extra.len());
                            e.insert("oldKey", r.old_fingerprint.as_str());
                            e.insert("newKey", r.new_fingerprint.as_str());
                            e.insert("rotatedAt", time(r.rotated_at));
                            e.insert("rotationMethod", r.method.as_str());
                            e.insert("proofSource", r.source.as_str());
                            for (key, v) in r.extra.iter() {
                                e.insert(key.clone(), v.clone());
                            }
                            Value::Object(e)
                        })
                        .collect(),
                ),
            );
        }
        for (k, v) in self.extra.iter() {
            o.insert(k.clone(), v.clone());
        }
        o
    }

    /// Reads a record object as btps-node writes it.
    ///
    /// Lenient where btps-node files are known to vary: a missing `id` is computed, missing
    /// `keyHistory` is empty, missing `publicKeyBase64` / `publicKeyFingerprint` /
    /// `decidedBy` are empty strings, a missing `decidedAt` is `createdAt`, a missing
    /// `privacyType` is `encrypted`; `null` counts as absent for optional members.
    ///
    /// # Errors
    ///
    /// [`TrustError::InvalidRecord`] when `senderId`, `receiverId`, `status` or `createdAt`
    /// is missing or malformed, or a member has the wrong type.
    pub fn from_object(obj: &Object) -> Result<Self> {
        let f = Fields::new(obj, "trust record");
        let sender_id = f.req_str("senderId")?.to_owned();
        let receiver_id = f.req_str("receiverId")?.to_owned();
        let status_text = f.req_str("status")?;
        let status = TrustStatus::from_wire(status_text).ok_or_else(|| {
            TrustError::InvalidRecord(format!("trust record status {status_text:?}"))
        })?;
        let created_at = f.req_time("createdAt")?;
        let privacy_type = match f.opt_str("privacyType")? {
            None => PrivacyType::Encrypted,
            Some(p) => PrivacyType::from_wire(p).ok_or_else(|| {
                TrustError::InvalidRecord(format!("trust record privacyType {p:?}"))
            })?,
        };
        let mut key_history = Vec::new();
        for (i, e) in f.opt_array("keyHistory")?.unwrap_or(&[]).iter().enumerate() {
            let eo = e.as_object().ok_or_else(|| {
                TrustError::InvalidRecord(format!("trust record keyHistory[{i}] is not an object"))
            })?;
            let ef = Fields::new(eo, "keyHistory entry");
            key_history.push(KeyHistoryEntry {
                fingerprint: ef.req_str("fingerprint")?.to_owned(),
                first_seen: ef.req_time("firstSeen")?,
                last_seen: ef.req_time("lastSeen")?,
                extra: ef.extra(&["fingerprint", "firstSeen", "lastSeen"]),
            });
        }
        let mut rotation_history = Vec::new();
        for (i, e) in f
            .opt_array("rotationHistory")?
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let eo = e.as_object().ok_or_else(|| {
                TrustError::InvalidRecord(format!(
                    "trust record rotationHistory[{i}] is not an object"
                ))
            })?;
            let ef = Fields::new(eo, "rotationHistory entry");
            rotation_history.push(RotationEntry {
                old_fingerprint: ef.req_str("oldKey")?.to_owned(),
                new_fingerprint: ef.req_str("newKey")?.to_owned(),
                rotated_at: ef.req_time("rotatedAt")?,
                method: ef.opt_str("rotationMethod")?.unwrap_or_default().to_owned(),
                source: ef.opt_str("proofSource")?.unwrap_or_default().to_owned(),
                extra: ef.extra(&[
                    "oldKey",
                    "newKey",
                    "rotatedAt",
                    "rotationMethod",
                    "proofSource",
                ]),
            });
        }
        Ok(Self {
            locked_trust: f.opt_bool("lockedTrust")?.unwrap_or(false),
            allow_key_rotation: f.opt_bool("allowKeyRotation")?.unwrap_or(false),
            rotation_history,
            id: match f.opt_str("id")? {
                Some(id) => id.to_owned(),
                None => trust_id(&sender_id, &receiver_id),
            },
            status,
            created_at,
            decided_by: f.opt_str("decidedBy")?.unwrap_or_default().to_owned(),
            decided_at: f.opt_time("decidedAt")?.unwrap_or(created_at),
            expires_at: f.opt_time("expiresAt")?,
            public_key_base64: f.opt_str("publicKeyBase64")?.unwrap_or_default().to_owned(),
            public_key_fingerprint: f
                .opt_str("publicKeyFingerprint")?
                .unwrap_or_default()
                .to_owned(),
            key_history,
            privacy_type,
            retry_after: f.opt_time("retryAfterDate")?,
            metadata: f.opt_object("metadata")?.cloned(),
            extra: f.extra(&KNOWN),
            sender_id,
            receiver_id,
        })
    }

    /// Compact JSON text of [`to_object`](Self::to_object).
    pub fn to_json(&self) -> String {
        to_js_string(&Value::Object(self.to_object()))
    }

    /// Parses JSON text written by [`to_json`](Self::to_json) or btps-node.
    ///
    /// # Errors
    ///
    /// [`TrustError::InvalidRecord`] when the text is not a JSON object or the record is
    /// malformed (see [`from_object`](Self::from_object)).
    pub fn from_json(text: &str) -> Result<Self> {
        let parsed = parse_str(text).map_err(|e| TrustError::InvalidRecord(e.to_string()))?;
        let obj = parsed
            .value
            .as_object()
            .ok_or_else(|| TrustError::InvalidRecord("not a JSON object".into()))?;
        Self::from_object(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE_RECORD: &str = r#"{
  "id": "7cedf7a0bd8f21ab0f3d26cceebaa87e7ad177114ea51d23dc0123b4fe017e3d",
  "senderId": "billing$vendorcorp.com",
  "receiverId": "pay$client.com",
  "status": "accepted",
  "createdAt": "2025-06-01T10:00:00.000Z",
  "decidedBy": "Jane",
  "decidedAt": "2025-06-02T10:00:00.000Z",
  "expiresAt": "2026-06-01T00:00:00.000Z",
  "publicKeyBase64": "QUJD",
  "publicKeyFingerprint": "Zmlu",
  "keyHistory": [{"fingerprint": "b2xk", "firstSeen": "2025-01-01T00:00:00.000Z", "lastSeen": "2025-06-01T00:00:00.000Z"}],
  "privacyType": "encrypted",
  "toIdentity": "pay$client.com",
  "fromIdentity": "billing$vendorcorp.com"
}"#;

    #[test]
    fn reads_node_record_and_keeps_unknown_members() {
        let r = TrustRecord::from_json(NODE_RECORD).unwrap();
        assert_eq!(r.status, TrustStatus::Accepted);
        assert_eq!(r.id, r.computed_id());
        assert_eq!(r.key_history.len(), 1);
        assert_eq!(r.extra.len(), 2);
        let out = r.to_json();
        assert!(out.ends_with(
            r#""privacyType":"encrypted","toIdentity":"pay$client.com","fromIdentity":"billing$vendorcorp.com"}"#
        ));
        assert_eq!(TrustRecord::from_json(&out).unwrap(), r);
    }

    #[test]
    fn lenient_defaults_and_strict_required() {
        let r = TrustRecord::from_json(
            r#"{"senderId":"a$b.c","receiverId":"d$e.f","status":"pending","createdAt":"2025-06-01T10:00Z","expiresAt":null}"#,
        )
        .unwrap();
        assert_eq!(r.id, trust_id("a$b.c", "d$e.f"));
        assert_eq!(r.decided_at, r.created_at);
        assert_eq!(r.privacy_type, PrivacyType::Encrypted);
        assert_eq!(r.expires_at, None);
        for bad in [
            r#"{"receiverId":"d$e.f","status":"pending","createdAt":"2025-06-01T10:00Z"}"#,
            r#"{"senderId":"a$b.c","receiverId":"d$e.f","status":"maybe","createdAt":"2025-06-01T10:00Z"}"#,
            r#"{"senderId":"a$b.c","receiverId":"d$e.f","status":"pending","createdAt":"yesterday"}"#,
            r#"{"senderId":"a$b.c","receiverId":"d$e.f","status":"pending","createdAt":"2025-06-01T10:00Z","keyHistory":{}}"#,
            r#"{"senderId":"a$b.c","receiverId":"d$e.f","status":"pending","createdAt":"2025-06-01T10:00Z","privacyType":"open"}"#,
            "[]",
        ] {
            assert!(TrustRecord::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn activity() {
        let t = UnixMillis::from_millis(1_000_000);
        let r = TrustRecord::new("a$b.c", "d$e.f", TrustStatus::Accepted, t)
            .with_expiry(Some(t.saturating_add_millis(10)));
        assert!(
            r.is_active(t.saturating_add_millis(10)),
            "expiresAt itself is still active"
        );
        assert!(!r.is_active(t.saturating_add_millis(11)));
        let p = TrustRecord::new("a$b.c", "d$e.f", TrustStatus::Blocked, t);
        assert!(p.is_permanently_blocked());
        assert!(!p.with_retry_after(Some(t)).is_permanently_blocked());
    }
}
