//! Property tests of the trust state machine on both servers (PROTOCOL.md §7.3, §7.4).
//!
//! Random interleavings of outgoing requests, request deliveries, decisions, revocations,
//! response deliveries (out of order, from the right or a wrong party, readable or
//! encrypted) and waits run against the requester's outgoing record and the responder's
//! record. A ghost flag per side records whether the latest transition of that record was an
//! `accepted` decision; after every step:
//!
//! * a document is accepted only while that flag is set and `expiresAt` has not passed — no
//!   sequence revives a revoked, rejected, blocked or pending record without a new accepted
//!   decision;
//! * a `pending` record never accepts a document or an agent artifact;
//! * `decide` succeeds exactly when `decision_applies`, and a `TRUST_RES` from anyone other
//!   than the record's `receiverId` is refused;
//! * after `expiresAt` documents are refused (`Expired`), at and before it they pass.
//!
//! A second property checks `evaluate` over arbitrary records: the table of §7.3 and the
//! monotonicity of time (expiry and `retryAfterDate` only ever move a verdict one way).

use btps_trust::{
    Decision, Incoming, IncomingKind, OutgoingRequest, Refusal, RefusalReason, RequestTerms,
    SenderKey, TrustRecord, TrustStatus, Verdict, apply_response, decide, decision_applies,
    evaluate, evaluate_agent, receive_request, request_outgoing, revoke,
};
use btps_types::artifact::{PrivacyType, TrustDecision};
use btps_types::{ErrorCode, UnixMillis};
use proptest::prelude::*;

const REQ: &str = "billing$vendorcorp.com";
const RESP: &str = "pay$client.com";
/// `from` of a response: the responder, the responder in other case, or a third party.
const RESPONDERS: [&str; 3] = [RESP, "Pay$Client.COM", "mallory$client.com"];

const KEY: SenderKey<'static> = SenderKey {
    public_key_base64: "S0VZMQ==",
    fingerprint: "fp1",
};

#[derive(Clone, Debug)]
enum Step {
    Wait(i64),
    /// The requester stores its outgoing `pending` record (step 1).
    Outgoing(Option<PrivacyType>),
    /// The `TRUST_REQ` reaches the responder (step 2).
    DeliverRequest(Option<PrivacyType>),
    /// The responder's user decides (step 3; a `TRUST_RES` is queued when it applies).
    Decide {
        decision: TrustDecision,
        expires: Option<i64>,
        retry: Option<i64>,
        privacy: Option<PrivacyType>,
    },
    /// The responder revokes (step 5).
    Revoke(Option<i64>),
    /// A queued `TRUST_RES` reaches the requester (step 4): which one, from whom, readable.
    DeliverResponse {
        pick: usize,
        from: usize,
        encrypted: bool,
    },
}

fn privacy() -> impl Strategy<Value = Option<PrivacyType>> {
    proptest::option::of(prop_oneof![
        Just(PrivacyType::Encrypted),
        Just(PrivacyType::Mixed),
        Just(PrivacyType::Unencrypted),
    ])
}

fn decision() -> impl Strategy<Value = TrustDecision> {
    prop_oneof![
        Just(TrustDecision::Accepted),
        Just(TrustDecision::Rejected),
        Just(TrustDecision::Revoked),
        Just(TrustDecision::Blocked),
    ]
}

fn status() -> impl Strategy<Value = TrustStatus> {
    proptest::sample::select(TrustStatus::ALL.to_vec())
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => prop_oneof![0i64..2_000, Just(86_400_000)].prop_map(Step::Wait),
        2 => privacy().prop_map(Step::Outgoing),
        2 => privacy().prop_map(Step::DeliverRequest),
        3 => (
            decision(),
            proptest::option::of(-1_000i64..5_000),
            proptest::option::of(0i64..5_000),
            privacy()
        )
            .prop_map(|(decision, expires, retry, privacy)| Step::Decide {
                decision,
                expires,
                retry,
                privacy
            }),
        1 => proptest::option::of(0i64..5_000).prop_map(Step::Revoke),
        3 => (0usize..4, 0usize..RESPONDERS.len(), any::<bool>()).prop_map(
            |(pick, from, encrypted)| Step::DeliverResponse {
                pick,
                from,
                encrypted
            }
        ),
    ]
}

fn incoming(
    kind: IncomingKind,
    from: &'static str,
    to: &'static str,
    encrypted: bool,
) -> Incoming<'static> {
    Incoming {
        kind,
        from,
        to,
        encrypted,
        local_request: false,
    }
}

fn document(encrypted: bool) -> Incoming<'static> {
    incoming(IncomingKind::BtpsDoc, REQ, RESP, encrypted)
}

/// One side's record with the ghost flag.
#[derive(Debug, Default)]
struct Side {
    record: Option<TrustRecord>,
    /// The latest transition of `record` applied an `accepted` decision.
    granted: bool,
}

/// The invariants of one record at `now` (and a little later).
fn check_side(side: &Side, now: UnixMillis) -> Result<(), TestCaseError> {
    let Some(r) = &side.record else {
        prop_assert_eq!(
            evaluate(&document(true), None, now).code(),
            Some(ErrorCode::TrustNonExistent)
        );
        return Ok(());
    };
    for at in [
        now,
        now.saturating_add_millis(1),
        now.saturating_add_millis(86_400_000),
    ] {
        let doc = evaluate(&document(true), Some(r), at);
        // No revival: a document passes only after an accepted decision, before expiry.
        if doc.is_accept() {
            prop_assert!(
                side.granted,
                "document accepted without an accepted decision: {:?}",
                r
            );
            prop_assert_eq!(r.status, TrustStatus::Accepted);
            prop_assert!(r.expires_at.is_none_or(|e| at <= e));
        }
        if side.granted {
            prop_assert_eq!(doc.is_accept(), r.expires_at.is_none_or(|e| at <= e));
        }
        match r.status {
            TrustStatus::Pending => {
                prop_assert_eq!(
                    doc,
                    Verdict::Refuse(refusal(
                        ErrorCode::TrustNotAllowed,
                        RefusalReason::Inactive(TrustStatus::Pending)
                    ))
                );
                prop_assert!(!evaluate(&document(false), Some(r), at).is_accept());
                prop_assert!(!evaluate_agent(Some(r), at).is_accept());
            }
            TrustStatus::Blocked => {
                prop_assert_eq!(doc.code(), Some(ErrorCode::TrustBlocked));
            }
            TrustStatus::Rejected | TrustStatus::Revoked => {
                prop_assert_eq!(doc.code(), Some(ErrorCode::TrustNotAllowed));
            }
            TrustStatus::Accepted => {
                // Expiry: refused strictly after expiresAt, for every kind that needs trust.
                if r.expires_at.is_some_and(|e| at > e) {
                    prop_assert_eq!(
                        doc,
                        Verdict::Refuse(refusal(
                            ErrorCode::TrustNotAllowed,
                            RefusalReason::Expired
                        ))
                    );
                    prop_assert!(!evaluate_agent(Some(r), at).is_accept());
                }
                // At the edge: accepted at expiresAt itself, refused one millisecond later.
                if let (true, Some(e)) = (side.granted, r.expires_at) {
                    prop_assert!(evaluate(&document(true), Some(r), e).is_accept());
                    let after = evaluate(&document(true), Some(r), e.saturating_add_millis(1));
                    prop_assert_eq!(
                        after,
                        Verdict::Refuse(refusal(
                            ErrorCode::TrustNotAllowed,
                            RefusalReason::Expired
                        ))
                    );
                }
            }
        }
        prop_assert_eq!(evaluate_agent(Some(r), at).is_accept(), r.is_active(at));
    }
    Ok(())
}

fn refusal(code: ErrorCode, reason: RefusalReason) -> Refusal {
    Refusal { code, reason }
}

proptest! {
    // About 3 s in a debug build.
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn no_revival_without_an_accepted_decision(steps in proptest::collection::vec(step(), 1..60)) {
        let mut now = UnixMillis::from_millis(1_750_000_000_000);
        let mut theirs = Side::default();
        let mut mine = Side::default();
        // TRUST_RES artifacts in flight (delivered at most once, in any order).
        let mut responses: Vec<Decision> = Vec::new();
        for s in steps {
            match s {
                Step::Wait(ms) => now = now.saturating_add_millis(ms),
                Step::Outgoing(privacy) => {
                    let terms = RequestTerms { privacy, expires_at: None };
                    match request_outgoing(mine.record.as_ref(), REQ, RESP, terms, "agent", now) {
                        OutgoingRequest::Unchanged => {
                            prop_assert!(mine.record.as_ref().is_some_and(|r| r.is_active(now)));
                        }
                        OutgoingRequest::Store(r) => {
                            prop_assert_eq!(r.status, TrustStatus::Pending);
                            mine = Side { record: Some(*r), granted: false };
                        }
                    }
                }
                Step::DeliverRequest(privacy) => {
                    let req = incoming(IncomingKind::TrustReq, REQ, RESP, false);
                    if evaluate(&req, theirs.record.as_ref(), now).is_accept() {
                        let terms = RequestTerms { privacy, expires_at: None };
                        let r = receive_request(theirs.record.as_ref(), REQ, RESP, KEY, terms, "server", now);
                        prop_assert_eq!(r.status, TrustStatus::Pending);
                        theirs = Side { record: Some(r), granted: false };
                    } else {
                        let refused_for_cause = theirs.record.as_ref().is_some_and(|r| {
                            r.is_active(now) || r.status == TrustStatus::Pending
                                || r.is_permanently_blocked() || r.retry_pending(now)
                        });
                        prop_assert!(refused_for_cause, "request refused without a reason");
                    }
                }
                Step::Decide { decision, expires, retry, privacy } => {
                    let Some(r) = &theirs.record else { continue };
                    let mut d = Decision::new(decision, "user");
                    d.expires_at = expires.map(|ms| now.saturating_add_millis(ms));
                    d.retry_after = retry.map(|ms| now.saturating_add_millis(ms));
                    d.privacy = privacy;
                    match decide(r, &d, now) {
                        Ok(next) => {
                            prop_assert!(decision_applies(r.status, decision));
                            prop_assert_eq!(next.status, TrustStatus::from(decision));
                            theirs = Side {
                                record: Some(next),
                                granted: decision == TrustDecision::Accepted,
                            };
                            responses.push(d);
                        }
                        Err(e) => {
                            prop_assert!(!decision_applies(r.status, decision));
                            prop_assert_eq!(e.error_code(), ErrorCode::TrustNotAllowed);
                        }
                    }
                }
                Step::Revoke(retry) => {
                    let Some(r) = &theirs.record else { continue };
                    let retry_after = retry.map(|ms| now.saturating_add_millis(ms));
                    match revoke(r, "user", retry_after, now) {
                        Ok(next) => {
                            prop_assert!(matches!(r.status, TrustStatus::Accepted | TrustStatus::Pending));
                            prop_assert_eq!(next.status, TrustStatus::Revoked);
                            theirs = Side { record: Some(next), granted: false };
                            let mut d = Decision::new(TrustDecision::Revoked, "user");
                            d.retry_after = retry_after;
                            responses.push(d);
                        }
                        Err(_) => prop_assert!(!matches!(r.status, TrustStatus::Accepted | TrustStatus::Pending)),
                    }
                }
                Step::DeliverResponse { pick, from, encrypted } => {
                    if responses.is_empty() {
                        continue;
                    }
                    let d = responses.remove(pick % responses.len());
                    let kind = IncomingKind::TrustRes((!encrypted).then_some(d.decision));
                    let res = incoming(kind, RESPONDERS[from], REQ, encrypted);
                    let verdict = evaluate(&res, mine.record.as_ref(), now);
                    if from == 2 {
                        prop_assert!(!verdict.is_accept(), "a third party's TRUST_RES applied");
                    }
                    if verdict.is_accept() {
                        let r = mine.record.as_ref().expect("accepted only with a record");
                        let any_status = !encrypted
                            && matches!(d.decision, TrustDecision::Revoked | TrustDecision::Blocked);
                        prop_assert!(r.status == TrustStatus::Pending || any_status);
                        // An encrypted response carries no readable decision: it counts as
                        // `accepted` (§7.3), so the requester applies an acceptance.
                        let applied = if encrypted {
                            Decision::new(TrustDecision::Accepted, RESPONDERS[from])
                        } else {
                            d
                        };
                        let next = apply_response(r, &applied, now);
                        mine = Side {
                            granted: next.status == TrustStatus::Accepted,
                            record: Some(next),
                        };
                    }
                }
            }
            check_side(&theirs, now)?;
            check_side(&mine, now)?;
        }
    }

    /// `evaluate` over arbitrary records at arbitrary times.
    #[test]
    fn evaluate_table_and_time_monotonicity(
        status in status(),
        expires in proptest::option::of(0i64..1_000),
        retry in proptest::option::of(0i64..1_000),
        privacy in prop_oneof![Just(PrivacyType::Encrypted), Just(PrivacyType::Mixed), Just(PrivacyType::Unencrypted)],
        t in 0i64..1_000,
        later in 0i64..1_000,
        encrypted in any::<bool>(),
    ) {
        let ms = UnixMillis::from_millis;
        let r = TrustRecord::new(REQ, RESP, status, ms(0))
            .with_expiry(expires.map(ms))
            .with_retry_after(retry.map(ms))
            .with_privacy(privacy);
        let (now, then) = (ms(t), ms(t + later));
        let doc = evaluate(&document(encrypted), Some(&r), now);
        prop_assert_eq!(
            doc.is_accept(),
            status == TrustStatus::Accepted
                && expires.is_none_or(|e| t <= e)
                && (encrypted || privacy != PrivacyType::Encrypted)
        );
        // Once refused for expiry, refused for ever after; a blocked sender is always told so.
        if matches!(doc, Verdict::Refuse(x) if x.reason == RefusalReason::Expired) {
            prop_assert!(!evaluate(&document(encrypted), Some(&r), then).is_accept());
        }
        if status == TrustStatus::Blocked {
            prop_assert_eq!(doc.code(), Some(ErrorCode::TrustBlocked));
        }
        // A new request: never while pending or permanently blocked; otherwise, once it
        // passes it passes at every later instant (expiry and retryAfterDate only lapse).
        let req = incoming(IncomingKind::TrustReq, REQ, RESP, false);
        let now_ok = evaluate(&req, Some(&r), now).is_accept();
        let then_ok = evaluate(&req, Some(&r), then).is_accept();
        if status == TrustStatus::Pending || r.is_permanently_blocked() {
            prop_assert!(!now_ok && !then_ok);
        } else if now_ok {
            prop_assert!(then_ok);
        }
        // A response is accepted only from the receiver, and for a non-pending record only
        // when it revokes or blocks.
        for (i, from) in RESPONDERS.iter().enumerate() {
            for d in [None, Some(TrustDecision::Accepted), Some(TrustDecision::Rejected), Some(TrustDecision::Revoked), Some(TrustDecision::Blocked)] {
                let res = incoming(IncomingKind::TrustRes(d), from, REQ, false);
                let outgoing = TrustRecord::new(REQ, RESP, status, ms(0));
                let ok = evaluate(&res, Some(&outgoing), now).is_accept();
                let expected = i < 2
                    && (status == TrustStatus::Pending
                        || matches!(d, Some(TrustDecision::Revoked | TrustDecision::Blocked)));
                prop_assert_eq!(ok, expected, "{:?} from {} on {:?}", d, from, status);
                prop_assert!(!evaluate(&res, None, now).is_accept());
            }
        }
        // decide applies exactly where decision_applies says, and never changes the input.
        for d in [TrustDecision::Accepted, TrustDecision::Rejected, TrustDecision::Revoked, TrustDecision::Blocked] {
            let before = r.clone();
            let out = decide(&r, &Decision::new(d, "u"), now);
            prop_assert_eq!(out.is_ok(), decision_applies(status, d));
            prop_assert_eq!(&r, &before);
        }
    }
}
