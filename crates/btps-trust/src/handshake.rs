//! The consent handshake ([PROTOCOL.md §7.4]) as pure state transitions over
//! [`TrustRecord`]s.
//!
//! ```text
//!   requester server                          responder server
//!   1 request_outgoing → pending  ── TRUST_REQ ──▶ evaluate (§7.3) → 2 receive_request → pending
//!                                                   3 decide: accepted / rejected / blocked (temp|perm)
//!   4 evaluate + apply_response  ◀── TRUST_RES ──   (5 later: revoked / blocked, any status)
//! ```
//!
//! Every function takes the current record (if any) and `now`, and returns the record to
//! store; the caller persists it (for concurrent decisions with
//! [`TrustStore::transition`](crate::TrustStore::transition), a compare-and-set on the status).
//! A new request is possible only when [`can_request`] says so (`retryAfterDate` passed, not
//! pending, not active, not permanently blocked).
//!
//! [PROTOCOL.md §7.4]: https://btps.invalid/PROTOCOL.md#74-consent-handshake

use btps_types::UnixMillis;
use btps_types::artifact::{PrivacyType, TrustDecision, TrustReq, TrustRes};

use crate::record::{KeyHistoryEntry, TrustRecord, TrustStatus};
use crate::rules::{Incoming, IncomingKind, SenderKey, evaluate};
use crate::{Result, TrustError, trust_id};

/// What a `TRUST_REQ` asks for (§3.8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestTerms {
    /// Requested `privacyType` (default `encrypted`).
    pub privacy: Option<PrivacyType>,
    /// Requested trust expiry (informational; the responder decides `expiresAt`).
    pub expires_at: Option<UnixMillis>,
}

impl RequestTerms {
    /// The terms of a validated trust request document.
    pub fn from_trust_req(doc: &TrustReq<'_>) -> Self {
        Self {
            privacy: doc.privacy_type,
            expires_at: doc.expires_at.and_then(|s| UnixMillis::parse(s).ok()),
        }
    }
}

/// A decision: what the responder's user chose (§3.9), or what a `TRUST_RES` carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// `accepted`, `rejected`, `revoked` or `blocked`.
    pub decision: TrustDecision,
    /// `decidedBy`.
    pub decided_by: String,
    /// `decidedAt` of the response document (`None`: use `now`).
    pub decided_at: Option<UnixMillis>,
    /// `expiresAt` of the trust (for `accepted`).
    pub expires_at: Option<UnixMillis>,
    /// `retryAfterDate`: makes `rejected`/`revoked` wait and `blocked` temporary.
    pub retry_after: Option<UnixMillis>,
    /// Granted `privacyType` (`None`: keep the record's).
    pub privacy: Option<PrivacyType>,
}

impl Decision {
    /// A decision with only the required parts.
    pub fn new(decision: TrustDecision, decided_by: &str) -> Self {
        Self {
            decision,
            decided_by: decided_by.to_owned(),
            decided_at: None,
            expires_at: None,
            retry_after: None,
            privacy: None,
        }
    }

    /// The decision carried by a validated `TRUST_RES` document. Datetimes were validated
    /// with the document; one that does not parse is treated as absent.
    pub fn from_trust_res(doc: &TrustRes<'_>) -> Self {
        let t = |s: Option<&str>| s.and_then(|s| UnixMillis::parse(s).ok());
        Self {
            decision: doc.decision,
            decided_by: doc.decided_by.to_owned(),
            decided_at: t(Some(doc.decided_at)),
            expires_at: t(doc.expires_at),
            retry_after: t(doc.retry_after_date),
            privacy: doc.privacy_type,
        }
    }
}

/// Result of [`request_outgoing`].
#[derive(Clone, Debug, PartialEq)]
pub enum OutgoingRequest {
    /// The outgoing record is active: it stays as it is (nothing to store).
    Unchanged,
    /// Store this `pending` record, then deliver the `TRUST_REQ`.
    Store(Box<TrustRecord>),
}

/// Step 1, on the requester's server (§7.4): store (or reset) the outgoing record
/// `trustId(requester, responder)` as `pending` with `receiverId = responder`; an active record
/// is left unchanged. Key fields, `keyHistory`, `metadata` and unknown members of an existing
/// record are kept; `createdAt` is kept too.
pub fn request_outgoing(
    existing: Option<&TrustRecord>,
    requester: &str,
    responder: &str,
    terms: RequestTerms,
    decided_by: &str,
    now: UnixMillis,
) -> OutgoingRequest {
    if existing.is_some_and(|r| r.is_active(now)) {
        return OutgoingRequest::Unchanged;
    }
    let mut r = match existing {
        Some(r) => r.clone(),
        None => TrustRecord::new(requester, responder, TrustStatus::Pending, now),
    };
    r.id = trust_id(requester, responder);
    requester.clone_into(&mut r.sender_id);
    responder.clone_into(&mut r.receiver_id);
    reset_pending(&mut r, terms, decided_by, now);
    OutgoingRequest::Store(Box::new(r))
}

fn reset_pending(r: &mut TrustRecord, terms: RequestTerms, decided_by: &str, now: UnixMillis) {
    r.status = TrustStatus::Pending;
    r.decided_at = now;
    decided_by.clone_into(&mut r.decided_by);
    r.expires_at = None;
    r.retry_after = None;
    r.privacy_type = terms.privacy.unwrap_or(PrivacyType::Encrypted);
}

/// Step 2, on the responder's server, after [`evaluate`] accepted the `TRUST_REQ`: the record
/// `trustId(requester, responder)` becomes `pending` with the verified sender key and the
/// requested `privacyType` (default `encrypted`). A previous key of an existing record goes to
/// `keyHistory`.
pub fn receive_request(
    existing: Option<&TrustRecord>,
    requester: &str,
    responder: &str,
    key: SenderKey<'_>,
    terms: RequestTerms,
    decided_by: &str,
    now: UnixMillis,
) -> TrustRecord {
    let mut r = match existing {
        Some(r) => r.clone(),
        None => TrustRecord::new(requester, responder, TrustStatus::Pending, now),
    };
    if !r.public_key_fingerprint.is_empty() && r.public_key_fingerprint != key.fingerprint {
        r.key_history.push(KeyHistoryEntry {
            fingerprint: std::mem::take(&mut r.public_key_fingerprint),
            first_seen: r.decided_at,
            last_seen: now,
            extra: btps_types::json::Object::new(),
        });
    }
    key.public_key_base64.clone_into(&mut r.public_key_base64);
    key.fingerprint.clone_into(&mut r.public_key_fingerprint);
    reset_pending(&mut r, terms, decided_by, now);
    r
}

/// Whether `decision` may be applied to a record in `status` by its receiver (step 3 and
/// 5): `accepted` and `rejected` answer a `pending` request; `revoked` withdraws `accepted`
/// (or `pending`) trust; `blocked` applies to any status.
pub const fn decision_applies(status: TrustStatus, decision: TrustDecision) -> bool {
    match decision {
        TrustDecision::Accepted | TrustDecision::Rejected => {
            matches!(status, TrustStatus::Pending)
        }
        TrustDecision::Revoked => matches!(status, TrustStatus::Accepted | TrustStatus::Pending),
        TrustDecision::Blocked => true,
    }
}

/// Step 3 (and 5), on the responder's server: applies the user's decision to its record.
///
/// * `accepted`: `expiresAt` and the granted `privacyType` from the decision, no
///   `retryAfterDate`;
/// * `rejected` / `revoked`: optional `retryAfterDate`, no expiry;
/// * `blocked`: temporary with `retryAfterDate`, permanent without.
///
/// `decidedAt` is `now`.
///
/// # Errors
///
/// [`TrustError::Transition`] when [`decision_applies`] is false.
///
/// # Examples
///
/// ```
/// use btps_trust::{decide, Decision, TrustRecord, TrustStatus};
/// use btps_types::{UnixMillis, artifact::TrustDecision};
/// let now = UnixMillis::from_millis(0);
/// let pending = TrustRecord::new("a$x.com", "b$y.com", TrustStatus::Pending, now);
/// let accepted = decide(&pending, &Decision::new(TrustDecision::Accepted, "Bea"), now).unwrap();
/// assert!(accepted.is_active(now));
/// assert!(decide(&accepted, &Decision::new(TrustDecision::Rejected, "Bea"), now).is_err());
/// ```
pub fn decide(record: &TrustRecord, decision: &Decision, now: UnixMillis) -> Result<TrustRecord> {
    if !decision_applies(record.status, decision.decision) {
        return Err(TrustError::Transition {
            from: record.status,
            decision: decision.decision,
        });
    }
    let mut r = record.clone();
    apply(&mut r, decision, now);
    r.decided_at = now;
    Ok(r)
}

fn apply(r: &mut TrustRecord, d: &Decision, now: UnixMillis) {
    r.status = d.decision.into();
    r.decided_by.clone_from(&d.decided_by);
    r.decided_at = d.decided_at.unwrap_or(now);
    match d.decision {
        TrustDecision::Accepted => {
            r.expires_at = d.expires_at;
            r.retry_after = None;
        }
        TrustDecision::Rejected | TrustDecision::Revoked | TrustDecision::Blocked => {
            r.expires_at = None;
            r.retry_after = d.retry_after;
        }
    }
    if let Some(p) = d.privacy {
        r.privacy_type = p;
    }
}

/// Step 4, on the requester's server, after [`evaluate`] accepted the `TRUST_RES`: copies the
/// decision, `expiresAt`, `retryAfterDate` and `privacyType` into the outgoing record;
/// `decidedAt` is the response's (or `now`).
pub fn apply_response(outgoing: &TrustRecord, response: &Decision, now: UnixMillis) -> TrustRecord {
    let mut r = outgoing.clone();
    apply(&mut r, response, now);
    r
}

/// Step 5, on the receiver's server: revokes trust (`revoked`, optional `retryAfterDate`);
/// further `BTPS_DOC` artifacts are refused at once.
///
/// # Errors
///
/// [`TrustError::Transition`] unless the record is `accepted` or `pending`.
pub fn revoke(
    record: &TrustRecord,
    decided_by: &str,
    retry_after: Option<UnixMillis>,
    now: UnixMillis,
) -> Result<TrustRecord> {
    let mut d = Decision::new(TrustDecision::Revoked, decided_by);
    d.retry_after = retry_after;
    decide(record, &d, now)
}

/// Whether a new `TRUST_REQ` from `sender` to `receiver` would pass the §7.3 rules against
/// `record` at `now` (re-request only after `retryAfterDate`, never while pending or active,
/// never while permanently blocked).
pub fn can_request(
    record: Option<&TrustRecord>,
    sender: &str,
    receiver: &str,
    now: UnixMillis,
) -> bool {
    let incoming = Incoming {
        kind: IncomingKind::TrustReq,
        from: sender,
        to: receiver,
        encrypted: false,
        local_request: false,
    };
    evaluate(&incoming, record, now).is_accept()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &str = "billing$vendorcorp.com";
    const RESP: &str = "pay$client.com";

    fn t(ms: i64) -> UnixMillis {
        UnixMillis::from_millis(ms)
    }

    const KEY: SenderKey<'static> = SenderKey {
        public_key_base64: "S0VZ",
        fingerprint: "fp1",
    };

    #[test]
    fn full_handshake() {
        // 1. requester
        let OutgoingRequest::Store(out) =
            request_outgoing(None, REQ, RESP, RequestTerms::default(), "agent", t(0))
        else {
            panic!()
        };
        assert_eq!(out.status, TrustStatus::Pending);
        assert_eq!(out.id, trust_id(REQ, RESP));
        // 2. responder
        assert!(can_request(None, REQ, RESP, t(1)));
        let terms = RequestTerms {
            privacy: Some(PrivacyType::Mixed),
            expires_at: None,
        };
        let theirs = receive_request(None, REQ, RESP, KEY, terms, "server", t(1));
        assert_eq!(theirs.id, out.id, "both sides name the relationship alike");
        assert_eq!(theirs.privacy_type, PrivacyType::Mixed);
        assert!(
            !can_request(Some(&theirs), REQ, RESP, t(2)),
            "pending blocks repeats"
        );
        // 3. decision
        let mut d = Decision::new(TrustDecision::Accepted, "Bea");
        d.expires_at = Some(t(1000));
        d.privacy = Some(PrivacyType::Encrypted);
        let theirs = decide(&theirs, &d, t(3)).unwrap();
        assert!(theirs.is_active(t(1000)) && !theirs.is_active(t(1001)));
        // 4. requester copies
        let mine = apply_response(&out, &d, t(4));
        assert_eq!(mine.status, TrustStatus::Accepted);
        assert_eq!(mine.expires_at, Some(t(1000)));
        assert_eq!(mine.privacy_type, PrivacyType::Encrypted);
        // An active outgoing record is left unchanged by a new request.
        assert_eq!(
            request_outgoing(Some(&mine), REQ, RESP, terms, "agent", t(5)),
            OutgoingRequest::Unchanged
        );
        // 5. revocation
        let revoked = revoke(&theirs, "Bea", None, t(6)).unwrap();
        assert_eq!(revoked.status, TrustStatus::Revoked);
        assert!(can_request(Some(&revoked), REQ, RESP, t(7)));
    }

    #[test]
    fn blocks() {
        let pending = TrustRecord::new(REQ, RESP, TrustStatus::Pending, t(0));
        let mut temp = Decision::new(TrustDecision::Blocked, "Bea");
        temp.retry_after = Some(t(100));
        let b = decide(&pending, &temp, t(1)).unwrap();
        assert!(!can_request(Some(&b), REQ, RESP, t(99)));
        assert!(can_request(Some(&b), REQ, RESP, t(100)));
        let perm = decide(
            &pending,
            &Decision::new(TrustDecision::Blocked, "Bea"),
            t(1),
        )
        .unwrap();
        assert!(perm.is_permanently_blocked());
        assert!(!can_request(Some(&perm), REQ, RESP, t(i64::MAX)));
        // Blocking applies to any status; accept/reject only to pending.
        assert!(decide(&perm, &temp, t(2)).is_ok());
        let e = decide(&perm, &Decision::new(TrustDecision::Accepted, "x"), t(2)).unwrap_err();
        assert!(matches!(e, TrustError::Transition { .. }));
        assert_eq!(e.error_code(), btps_types::ErrorCode::TrustNotAllowed);
    }

    #[test]
    fn re_request_resets_and_keeps_key_history() {
        let r = receive_request(None, REQ, RESP, KEY, RequestTerms::default(), "s", t(0));
        let r = decide(&r, &Decision::new(TrustDecision::Rejected, "Bea"), t(1)).unwrap();
        let new_key = SenderKey {
            public_key_base64: "TkVX",
            fingerprint: "fp2",
        };
        let again = receive_request(
            Some(&r),
            REQ,
            RESP,
            new_key,
            RequestTerms::default(),
            "s",
            t(2),
        );
        assert_eq!(again.status, TrustStatus::Pending);
        assert_eq!(again.created_at, t(0));
        assert_eq!(again.key_history.len(), 1);
        assert_eq!(again.key_history[0].fingerprint, "fp1");
        assert_eq!(again.public_key_fingerprint, "fp2");
    }
}
