//! The server trust rules ([PROTOCOL.md §7.3]) as a pure function, and the key-change rule.
//!
//! Step 8 of the inbound pipeline (§2.7), after signature verification: the caller looks up
//! the record named by [`Incoming::record_id`] and asks [`evaluate`] for a [`Verdict`]. Time is
//! passed in; nothing here reads the clock or a store.
//!
//! [PROTOCOL.md §7.3]: https://btps.invalid/PROTOCOL.md#73-server-trust-rules-applied-after-signature-verification

use btps_types::artifact::{PrivacyType, TransporterType, TrustDecision};
use btps_types::{ErrorCode, Transporter, UnixMillis};

use crate::record::{KeyHistoryEntry, RotationEntry, TrustRecord, TrustStatus};
use crate::trust_id;

/// What kind of transporter artifact arrived, with the decision of a `TRUST_RES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncomingKind {
    /// `TRUST_REQ`.
    TrustReq,
    /// `TRUST_RES` with its decision (`None` when the document is encrypted and the server
    /// cannot read it: then it is treated like `accepted`, which needs a `pending` record).
    TrustRes(Option<TrustDecision>),
    /// `BTPS_DOC`, plain or delegated.
    BtpsDoc,
}

/// The facts of an incoming transporter artifact that the trust rules need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incoming<'a> {
    /// The type (and the decision of a `TRUST_RES`).
    pub kind: IncomingKind,
    /// `from`.
    pub from: &'a str,
    /// `to`.
    pub to: &'a str,
    /// Whether `encryption` is non-null.
    pub encrypted: bool,
    /// Local delivery of a `TRUST_REQ` whose outgoing record this server created itself (both
    /// identities hosted here, §7.4 step 4): the shared record is `pending` because of this
    /// very request, so the `pending` check is skipped.
    pub local_request: bool,
}

impl<'a> Incoming<'a> {
    /// The facts of a validated transporter artifact.
    pub fn from_transporter(t: &'a Transporter<'_>) -> Self {
        use btps_types::artifact::{BusinessDocument, TransporterDocument};
        let kind = match t.kind {
            TransporterType::TrustReq => IncomingKind::TrustReq,
            TransporterType::BtpsDoc => IncomingKind::BtpsDoc,
            TransporterType::TrustRes => IncomingKind::TrustRes(match &t.document {
                TransporterDocument::Plain(BusinessDocument::TrustRes(r)) => Some(r.decision),
                _ => None,
            }),
        };
        Self {
            kind,
            from: t.from.as_str(),
            to: t.to.as_str(),
            encrypted: t.encryption.is_some(),
            local_request: false,
        }
    }

    /// The id of the record to consult: `trustId(from, to)`, or `trustId(to, from)` for a
    /// `TRUST_RES` (the requester's own outgoing record).
    pub fn record_id(&self) -> String {
        match self.kind {
            IncomingKind::TrustRes(_) => trust_id(self.to, self.from),
            IncomingKind::TrustReq | IncomingKind::BtpsDoc => trust_id(self.from, self.to),
        }
    }
}

/// Why the trust rules refused an artifact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalReason {
    /// `TRUST_REQ` while trust is active.
    AlreadyActive,
    /// `TRUST_REQ` while a request is pending (DEVIATION b).
    Pending,
    /// Blocked without `retryAfterDate` (DEVIATION c).
    PermanentlyBlocked,
    /// `retryAfterDate` is in the future (temporary block, or rejected/revoked with a date).
    RetryAfter(UnixMillis),
    /// No record (`BTPS_DOC`, `TRUST_RES`).
    NoRecord,
    /// `BTPS_DOC` from a blocked sender.
    Blocked,
    /// `BTPS_DOC` while the record has this inactive status.
    Inactive(TrustStatus),
    /// `BTPS_DOC` after `expiresAt`.
    Expired,
    /// `privacyType` is `encrypted` and `encryption` is null (DEVIATION d).
    PrivacyRequiresEncryption,
    /// `TRUST_RES` for a record that is not `pending`.
    NotPending(TrustStatus),
    /// `TRUST_RES` whose `from` is not the record's `receiverId`.
    ReceiverMismatch,
    /// The sender key changed and `pin_keys` is on.
    KeyPinned,
}

/// A refusal: the wire code and the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The `BTP_ERROR_*` code to reply with.
    pub code: ErrorCode,
    /// Why.
    pub reason: RefusalReason,
}

impl Refusal {
    const fn new(code: ErrorCode, reason: RefusalReason) -> Self {
        Self { code, reason }
    }
}

/// The outcome of [`evaluate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The artifact passes the trust rules.
    Accept,
    /// Refused with a code.
    Refuse(Refusal),
}

impl Verdict {
    /// Whether the verdict is [`Verdict::Accept`].
    pub const fn is_accept(&self) -> bool {
        matches!(self, Self::Accept)
    }

    /// The refusal code, if refused.
    pub const fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Accept => None,
            Self::Refuse(r) => Some(r.code),
        }
    }
}

fn refuse(code: ErrorCode, reason: RefusalReason) -> Verdict {
    Verdict::Refuse(Refusal::new(code, reason))
}

/// Applies the §7.3 rules, in order, with all DEVIATIONS (a)–(e):
///
/// | incoming | accept when | otherwise |
/// |---|---|---|
/// | `TRUST_REQ` | no record; `rejected`/`revoked`/expired `accepted` with `retryAfterDate` absent or passed; `blocked` with a passed `retryAfterDate` | active → `TRUST_ALREADY_ACTIVE`; `pending` → `TRUST_NOT_ALLOWED`; permanent block → `TRUST_BLOCKED`; future `retryAfterDate` → `TRUST_NOT_ALLOWED` |
/// | `TRUST_RES` | record exists, `receiverId` = `from` (case-insensitive), status `pending`; decisions `revoked`/`blocked` with any status | `TRUST_NOT_ALLOWED` |
/// | `BTPS_DOC` | record active, and `encryption` non-null when `privacyType` is `encrypted` | none → `TRUST_NON_EXISTENT`; blocked → `TRUST_BLOCKED`; inactive → `TRUST_NOT_ALLOWED`; privacy → `TRUST_PRIVACY` |
///
/// `record` must be the one named by [`Incoming::record_id`] (or `None`). A passed date is
/// `now >= retryAfterDate`; expired is `expiresAt < now`.
///
/// # Examples
///
/// ```
/// use btps_trust::{evaluate, Incoming, IncomingKind, TrustRecord, TrustStatus, Verdict};
/// use btps_types::{ErrorCode, UnixMillis, artifact::PrivacyType};
/// let now = UnixMillis::from_millis(1_000);
/// let doc = Incoming {
///     kind: IncomingKind::BtpsDoc,
///     from: "billing$vendorcorp.com",
///     to: "pay$client.com",
///     encrypted: false,
///     local_request: false,
/// };
/// assert_eq!(evaluate(&doc, None, now).code(), Some(ErrorCode::TrustNonExistent));
/// let rec = TrustRecord::new(doc.from, doc.to, TrustStatus::Accepted, now);
/// assert_eq!(evaluate(&doc, Some(&rec), now).code(), Some(ErrorCode::TrustPrivacy));
/// let rec = rec.with_privacy(PrivacyType::Mixed);
/// assert_eq!(evaluate(&doc, Some(&rec), now), Verdict::Accept);
/// ```
pub fn evaluate(incoming: &Incoming<'_>, record: Option<&TrustRecord>, now: UnixMillis) -> Verdict {
    match incoming.kind {
        IncomingKind::TrustReq => evaluate_request(record, now, incoming.local_request),
        IncomingKind::TrustRes(decision) => evaluate_response(incoming, record, decision),
        IncomingKind::BtpsDoc => evaluate_document(record, incoming.encrypted, now),
    }
}

fn evaluate_request(record: Option<&TrustRecord>, now: UnixMillis, local: bool) -> Verdict {
    use ErrorCode::{TrustAlreadyActive, TrustBlocked, TrustNotAllowed};
    let Some(r) = record else {
        return Verdict::Accept;
    };
    match r.status {
        _ if r.is_active(now) => refuse(TrustAlreadyActive, RefusalReason::AlreadyActive),
        TrustStatus::Pending if local => Verdict::Accept,
        TrustStatus::Pending => refuse(TrustNotAllowed, RefusalReason::Pending),
        TrustStatus::Blocked => match r.retry_after {
            None => refuse(TrustBlocked, RefusalReason::PermanentlyBlocked),
            Some(t) if now < t => refuse(TrustNotAllowed, RefusalReason::RetryAfter(t)),
            Some(_) => Verdict::Accept,
        },
        // rejected, revoked, or accepted but expired.
        TrustStatus::Rejected | TrustStatus::Revoked | TrustStatus::Accepted => {
            match r.retry_after {
                Some(t) if now < t => refuse(TrustNotAllowed, RefusalReason::RetryAfter(t)),
                _ => Verdict::Accept,
            }
        }
    }
}

fn evaluate_response(
    incoming: &Incoming<'_>,
    record: Option<&TrustRecord>,
    decision: Option<TrustDecision>,
) -> Verdict {
    use ErrorCode::TrustNotAllowed;
    let Some(r) = record else {
        return refuse(TrustNotAllowed, RefusalReason::NoRecord);
    };
    if r.receiver_id.to_lowercase() != incoming.from.to_lowercase() {
        return refuse(TrustNotAllowed, RefusalReason::ReceiverMismatch);
    }
    let any_status = matches!(
        decision,
        Some(TrustDecision::Revoked | TrustDecision::Blocked)
    );
    if r.status == TrustStatus::Pending || any_status {
        Verdict::Accept
    } else {
        refuse(TrustNotAllowed, RefusalReason::NotPending(r.status))
    }
}

fn evaluate_document(record: Option<&TrustRecord>, encrypted: bool, now: UnixMillis) -> Verdict {
    use ErrorCode::{TrustBlocked, TrustNonExistent, TrustNotAllowed, TrustPrivacy};
    let Some(r) = record else {
        return refuse(TrustNonExistent, RefusalReason::NoRecord);
    };
    match r.status {
        TrustStatus::Blocked => return refuse(TrustBlocked, RefusalReason::Blocked),
        TrustStatus::Accepted if r.is_expired(now) => {
            return refuse(TrustNotAllowed, RefusalReason::Expired);
        }
        TrustStatus::Accepted => {}
        other => return refuse(TrustNotAllowed, RefusalReason::Inactive(other)),
    }
    if r.privacy_type == PrivacyType::Encrypted && !encrypted {
        return refuse(TrustPrivacy, RefusalReason::PrivacyRequiresEncryption);
    }
    Verdict::Accept
}

/// The rule for agent artifacts other than `auth.request` (§7.3 last row, §8.3): the agent
/// record `trustId(agentId, owner)` must exist (else the key is unknown:
/// `BTP_ERROR_SIG_VERIFICATION`) and be active (else `BTP_ERROR_TRUST_NOT_ALLOWED`).
/// `privacyType` is not enforced on agent records.
pub fn evaluate_agent(record: Option<&TrustRecord>, now: UnixMillis) -> Verdict {
    match record {
        None => refuse(ErrorCode::SigVerification, RefusalReason::NoRecord),
        Some(r) if r.is_active(now) => Verdict::Accept,
        Some(r) if r.status == TrustStatus::Accepted => {
            refuse(ErrorCode::TrustNotAllowed, RefusalReason::Expired)
        }
        Some(r) => refuse(
            ErrorCode::TrustNotAllowed,
            RefusalReason::Inactive(r.status),
        ),
    }
}

/// The sender key an artifact verified with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderKey<'a> {
    /// Bare base64 SPKI.
    pub public_key_base64: &'a str,
    /// Its §4.2 fingerprint.
    pub fingerprint: &'a str,
}

/// Result of [`check_sender_key`].
#[derive(Clone, Debug, PartialEq)]
pub enum KeyCheck {
    /// The record already holds this key (or holds none yet and now does: see
    /// [`KeyCheck::Updated`]).
    Unchanged,
    /// The record must be updated: the old fingerprint was appended to `keyHistory` (with
    /// `lastSeen = now`) and the new key stored; persist this record.
    Updated(Box<TrustRecord>),
    /// The key is pinned and rotation is allowed: accept the new key only with a rotation
    /// proof that chains from the pinned key to it (docs/keys.md), then persist
    /// [`apply_rotation`]'s record. Without one, refuse with `BTP_ERROR_SIG_MISMATCH`
    /// ([`key_pinned`]).
    ProofRequired,
}

/// The refusal for a key change that the pinned trust does not allow:
/// `BTP_ERROR_SIG_MISMATCH`.
pub fn key_pinned() -> Refusal {
    Refusal::new(ErrorCode::SigMismatch, RefusalReason::KeyPinned)
}

/// The key-change rule (§7.3, docs/keys.md): when a `BTPS_DOC` verifies with a key whose
/// fingerprint differs from `publicKeyFingerprint`:
///
/// * unlocked trust (DNS is authoritative): append `{fingerprint: old, firstSeen: decidedAt,
///   lastSeen: now}` to `keyHistory` and store the new key;
/// * locked trust (`lockedTrust` on the record, or `pin_keys` for every record) with
///   rotation allowed (`allowKeyRotation` on a locked record; always under `pin_keys`):
///   [`KeyCheck::ProofRequired`];
/// * locked trust without `allowKeyRotation`: refused with `BTP_ERROR_SIG_MISMATCH`.
///
/// A record without a key yet simply takes the key.
///
/// Call it only for artifacts signed by the sender's own key (not for delegated artifacts,
/// whose device key is not the sender's published key).
///
/// # Errors
///
/// [`Refusal`] with `BTP_ERROR_SIG_MISMATCH` when the key changed and the record is locked
/// without rotation.
pub fn check_sender_key(
    record: &TrustRecord,
    key: SenderKey<'_>,
    now: UnixMillis,
    pin_keys: bool,
) -> Result<KeyCheck, Refusal> {
    if record.public_key_fingerprint == key.fingerprint {
        return Ok(KeyCheck::Unchanged);
    }
    if !record.public_key_fingerprint.is_empty() {
        if record.locked_trust {
            return if record.allow_key_rotation {
                Ok(KeyCheck::ProofRequired)
            } else {
                Err(key_pinned())
            };
        }
        if pin_keys {
            return Ok(KeyCheck::ProofRequired);
        }
    }
    Ok(KeyCheck::Updated(Box::new(replace_key(record, key, now))))
}

/// Whether an artifact signed by the key with `fingerprint` at `issued_at` was signed before
/// the receiver accepted a rotation away from that key (`rotationHistory[].oldKey` with
/// `issued_at <= rotatedAt`): an artifact in flight during the rotation, accepted without
/// changing the pinned key (docs/keys.md). Freshness bounds how far back `issued_at` can be.
pub fn signed_before_rotation(
    record: &TrustRecord,
    fingerprint: &str,
    issued_at: UnixMillis,
) -> bool {
    record
        .rotation_history
        .iter()
        .any(|e| e.old_fingerprint == fingerprint && issued_at <= e.rotated_at)
}

/// The record after a proven rotation to `key`: the pinned key goes to `keyHistory`, the new
/// key is stored, and `rotationHistory` gains `{oldKey, newKey, rotatedAt: now,
/// rotationMethod: "signed-proof", proofSource: source}`.
pub fn apply_rotation(
    record: &TrustRecord,
    key: SenderKey<'_>,
    now: UnixMillis,
    source: &str,
) -> TrustRecord {
    let mut updated = replace_key(record, key, now);
    updated.rotation_history.push(RotationEntry {
        old_fingerprint: record.public_key_fingerprint.clone(),
        new_fingerprint: key.fingerprint.to_owned(),
        rotated_at: now,
        method: "signed-proof".to_owned(),
        source: source.to_owned(),
        extra: btps_types::json::Object::new(),
    });
    updated
}

fn replace_key(record: &TrustRecord, key: SenderKey<'_>, now: UnixMillis) -> TrustRecord {
    let mut updated = record.clone();
    if !record.public_key_fingerprint.is_empty() {
        updated.key_history.push(KeyHistoryEntry {
            fingerprint: record.public_key_fingerprint.clone(),
            first_seen: record.decided_at,
            last_seen: now,
            extra: btps_types::json::Object::new(),
        });
    }
    key.public_key_base64
        .clone_into(&mut updated.public_key_base64);
    key.fingerprint
        .clone_into(&mut updated.public_key_fingerprint);
    updated
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorCode::*;

    const A: &str = "billing$vendorcorp.com";
    const B: &str = "pay$client.com";

    fn t(ms: i64) -> UnixMillis {
        UnixMillis::from_millis(ms)
    }

    fn inc(kind: IncomingKind) -> Incoming<'static> {
        Incoming {
            kind,
            from: A,
            to: B,
            encrypted: false,
            local_request: false,
        }
    }

    fn rec(status: TrustStatus) -> TrustRecord {
        TrustRecord::new(A, B, status, t(0))
    }

    #[test]
    fn trust_req_table() {
        let req = inc(IncomingKind::TrustReq);
        let now = t(1000);
        let cases: Vec<(Option<TrustRecord>, Option<ErrorCode>)> = vec![
            (None, None),
            (Some(rec(TrustStatus::Accepted)), Some(TrustAlreadyActive)),
            (
                Some(rec(TrustStatus::Accepted).with_expiry(Some(t(999)))),
                None,
            ),
            (
                Some(
                    rec(TrustStatus::Accepted)
                        .with_expiry(Some(t(999)))
                        .with_retry_after(Some(t(1001))),
                ),
                Some(TrustNotAllowed),
            ),
            (Some(rec(TrustStatus::Pending)), Some(TrustNotAllowed)),
            (Some(rec(TrustStatus::Blocked)), Some(TrustBlocked)),
            (
                Some(rec(TrustStatus::Blocked).with_retry_after(Some(t(1001)))),
                Some(TrustNotAllowed),
            ),
            (
                Some(rec(TrustStatus::Blocked).with_retry_after(Some(t(1000)))),
                None,
            ),
            (Some(rec(TrustStatus::Rejected)), None),
            (
                Some(rec(TrustStatus::Rejected).with_retry_after(Some(t(5000)))),
                Some(TrustNotAllowed),
            ),
            (Some(rec(TrustStatus::Revoked)), None),
            (
                Some(rec(TrustStatus::Revoked).with_retry_after(Some(t(2000)))),
                Some(TrustNotAllowed),
            ),
        ];
        for (r, want) in cases {
            assert_eq!(evaluate(&req, r.as_ref(), now).code(), want, "{r:?}");
        }
        let local = Incoming {
            local_request: true,
            ..req
        };
        assert!(evaluate(&local, Some(&rec(TrustStatus::Pending)), now).is_accept());
        assert_eq!(
            evaluate(&local, Some(&rec(TrustStatus::Blocked)), now).code(),
            Some(TrustBlocked)
        );
    }

    #[test]
    fn trust_res_table() {
        // The requester (B) receives the responder's (A's) decision: record trustId(B, A).
        let res = |d| Incoming {
            kind: IncomingKind::TrustRes(d),
            from: A,
            to: B,
            encrypted: false,
            local_request: false,
        };
        let outgoing = |s| TrustRecord::new(B, "Billing$VendorCorp.com", s, t(0));
        assert_eq!(res(None).record_id(), trust_id(B, A));
        assert_eq!(outgoing(TrustStatus::Pending).id, trust_id(B, A));
        let now = t(10);
        for d in [
            None,
            Some(TrustDecision::Accepted),
            Some(TrustDecision::Rejected),
        ] {
            assert!(evaluate(&res(d), Some(&outgoing(TrustStatus::Pending)), now).is_accept());
            assert_eq!(
                evaluate(&res(d), Some(&outgoing(TrustStatus::Accepted)), now),
                Verdict::Refuse(Refusal::new(
                    TrustNotAllowed,
                    RefusalReason::NotPending(TrustStatus::Accepted)
                ))
            );
            assert_eq!(evaluate(&res(d), None, now).code(), Some(TrustNotAllowed));
        }
        for d in [TrustDecision::Revoked, TrustDecision::Blocked] {
            for s in TrustStatus::ALL {
                assert!(evaluate(&res(Some(d)), Some(&outgoing(s)), now).is_accept());
            }
        }
        let mut wrong = outgoing(TrustStatus::Pending);
        wrong.receiver_id = "other$client.com".into();
        assert_eq!(
            evaluate(&res(None), Some(&wrong), now),
            Verdict::Refuse(Refusal::new(
                TrustNotAllowed,
                RefusalReason::ReceiverMismatch
            ))
        );
    }

    #[test]
    fn btps_doc_table_and_privacy() {
        let now = t(100);
        let doc = inc(IncomingKind::BtpsDoc);
        let enc = Incoming {
            encrypted: true,
            ..doc
        };
        assert_eq!(evaluate(&doc, None, now).code(), Some(TrustNonExistent));
        assert_eq!(
            evaluate(&enc, Some(&rec(TrustStatus::Blocked)), now).code(),
            Some(TrustBlocked)
        );
        for s in [
            TrustStatus::Pending,
            TrustStatus::Rejected,
            TrustStatus::Revoked,
        ] {
            assert_eq!(
                evaluate(&enc, Some(&rec(s)), now).code(),
                Some(TrustNotAllowed)
            );
        }
        let expired = rec(TrustStatus::Accepted).with_expiry(Some(t(99)));
        assert_eq!(
            evaluate(&enc, Some(&expired), now),
            Verdict::Refuse(Refusal::new(TrustNotAllowed, RefusalReason::Expired))
        );
        for (privacy, plain_ok) in [
            (PrivacyType::Encrypted, false),
            (PrivacyType::Mixed, true),
            (PrivacyType::Unencrypted, true),
        ] {
            let r = rec(TrustStatus::Accepted).with_privacy(privacy);
            assert!(evaluate(&enc, Some(&r), now).is_accept());
            assert_eq!(evaluate(&doc, Some(&r), now).is_accept(), plain_ok);
            if !plain_ok {
                assert_eq!(evaluate(&doc, Some(&r), now).code(), Some(TrustPrivacy));
            }
        }
        // Privacy is not enforced for TRUST_REQ / TRUST_RES.
        let r = rec(TrustStatus::Rejected);
        assert!(evaluate(&inc(IncomingKind::TrustReq), Some(&r), now).is_accept());
    }

    #[test]
    fn agent_rule() {
        let now = t(50);
        assert_eq!(evaluate_agent(None, now).code(), Some(SigVerification));
        let r = TrustRecord::new("btps_ag_x", B, TrustStatus::Accepted, t(0));
        assert!(evaluate_agent(Some(&r), now).is_accept());
        let expired = r.clone().with_expiry(Some(t(49)));
        assert_eq!(
            evaluate_agent(Some(&expired), now).code(),
            Some(TrustNotAllowed)
        );
        let mut revoked = r;
        revoked.status = TrustStatus::Revoked;
        assert_eq!(
            evaluate_agent(Some(&revoked), now).code(),
            Some(TrustNotAllowed)
        );
    }

    #[test]
    fn key_change() {
        let r = rec(TrustStatus::Accepted).with_key("T0xE", "old");
        let same = SenderKey {
            public_key_base64: "T0xE",
            fingerprint: "old",
        };
        assert_eq!(
            check_sender_key(&r, same, t(5), true),
            Ok(KeyCheck::Unchanged)
        );
        let new = SenderKey {
            public_key_base64: "TkVX",
            fingerprint: "new",
        };
        let Ok(KeyCheck::Updated(u)) = check_sender_key(&r, new, t(5), false) else {
            panic!("expected an update")
        };
        assert_eq!(u.public_key_fingerprint, "new");
        assert_eq!(u.public_key_base64, "TkVX");
        assert_eq!(u.key_history.len(), 1);
        assert_eq!(u.key_history[0].fingerprint, "old");
        assert_eq!(u.key_history[0].first_seen, r.decided_at);
        assert_eq!(u.key_history[0].last_seen, t(5));
        assert_eq!(
            check_sender_key(&r, new, t(5), true),
            Ok(KeyCheck::ProofRequired)
        );
        // Locked on the record: rotation only when allowed, and then only with a proof.
        let locked = r.clone().with_lock(true, false);
        assert_eq!(
            check_sender_key(&locked, new, t(5), false)
                .unwrap_err()
                .code,
            SigMismatch
        );
        let rotating = r.clone().with_lock(true, true);
        assert_eq!(
            check_sender_key(&rotating, new, t(5), false),
            Ok(KeyCheck::ProofRequired)
        );
        let rotated = apply_rotation(&rotating, new, t(6), "in-band");
        assert_eq!(rotated.public_key_fingerprint, "new");
        assert_eq!(rotated.key_history.len(), 1);
        assert_eq!(rotated.rotation_history.len(), 1);
        assert_eq!(rotated.rotation_history[0].old_fingerprint, "old");
        assert_eq!(rotated.rotation_history[0].source, "in-band");
        assert_eq!(TrustRecord::from_json(&rotated.to_json()).unwrap(), rotated);
        assert_eq!(
            check_sender_key(&rotated, new, t(7), false),
            Ok(KeyCheck::Unchanged)
        );
        // The old key: only for what it signed before the rotation was accepted.
        assert!(signed_before_rotation(&rotated, "old", t(6)));
        assert!(!signed_before_rotation(&rotated, "old", t(7)));
        assert!(!signed_before_rotation(&rotated, "new", t(1)));
        // A record without a key takes it without history, pinned or not.
        let Ok(KeyCheck::Updated(u)) =
            check_sender_key(&rec(TrustStatus::Accepted), new, t(5), true)
        else {
            panic!("expected an update")
        };
        assert!(u.key_history.is_empty());
    }
}
