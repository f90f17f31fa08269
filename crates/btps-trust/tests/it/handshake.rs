//! Property tests of the consent handshake and the trust rules (PROTOCOL.md §7.3, §7.4).
//!
//! Random sequences of requests, decisions and document deliveries are run against the
//! responder's record; after every step the invariants of §7.3 must hold.

use btps_trust::{
    Decision, Incoming, IncomingKind, OutgoingRequest, RequestTerms, SenderKey, TrustRecord,
    TrustStatus, apply_response, can_request, decide, decision_applies, evaluate, receive_request,
    request_outgoing, trust_id,
};
use btps_types::artifact::{PrivacyType, TrustDecision};
use btps_types::{ErrorCode, UnixMillis};
use proptest::prelude::*;

const REQ: &str = "billing$vendorcorp.com";
const RESP: &str = "pay$client.com";

#[derive(Clone, Debug)]
enum Step {
    /// Time passes.
    Wait(i64),
    /// A TRUST_REQ arrives.
    Request(Option<PrivacyType>, bool),
    /// The responder decides.
    Decide(TrustDecision, Option<i64>, Option<i64>, Option<PrivacyType>),
}

fn privacy() -> impl Strategy<Value = Option<PrivacyType>> {
    prop_oneof![
        Just(None),
        Just(Some(PrivacyType::Encrypted)),
        Just(Some(PrivacyType::Mixed)),
        Just(Some(PrivacyType::Unencrypted)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let decision = prop_oneof![
        Just(TrustDecision::Accepted),
        Just(TrustDecision::Rejected),
        Just(TrustDecision::Revoked),
        Just(TrustDecision::Blocked),
    ];
    prop_oneof![
        (0i64..2000).prop_map(Step::Wait),
        (privacy(), any::<bool>()).prop_map(|(p, k)| Step::Request(p, k)),
        (
            decision,
            proptest::option::of(0i64..3000),
            proptest::option::of(0i64..3000),
            privacy()
        )
            .prop_map(|(d, e, r, p)| Step::Decide(d, e, r, p)),
    ]
}

fn doc(encrypted: bool) -> Incoming<'static> {
    Incoming {
        kind: IncomingKind::BtpsDoc,
        from: REQ,
        to: RESP,
        encrypted,
        local_request: false,
    }
}

fn req() -> Incoming<'static> {
    Incoming {
        kind: IncomingKind::TrustReq,
        ..doc(false)
    }
}

/// The §7.3 invariants of one record at one instant.
fn check(r: &TrustRecord, now: UnixMillis) {
    let doc_plain = evaluate(&doc(false), Some(r), now);
    let doc_enc = evaluate(&doc(true), Some(r), now);
    let request = evaluate(&req(), Some(r), now);
    // Documents pass only while active; encrypted ones then always.
    assert_eq!(doc_enc.is_accept(), r.is_active(now), "{r:?} at {now:?}");
    // privacyType is enforced: plain documents need a non-`encrypted` policy.
    assert_eq!(
        doc_plain.is_accept(),
        r.is_active(now) && r.privacy_type != PrivacyType::Encrypted
    );
    if r.status == TrustStatus::Blocked {
        assert_eq!(doc_enc.code(), Some(ErrorCode::TrustBlocked));
    }
    // Requests.
    match r.status {
        _ if r.is_active(now) => assert_eq!(request.code(), Some(ErrorCode::TrustAlreadyActive)),
        TrustStatus::Pending => assert_eq!(request.code(), Some(ErrorCode::TrustNotAllowed)),
        TrustStatus::Blocked if r.retry_after.is_none() => {
            assert_eq!(request.code(), Some(ErrorCode::TrustBlocked));
        }
        _ => assert_eq!(
            request.is_accept(),
            r.retry_after.is_none_or(|ra| now >= ra),
            "re-request only after retryAfterDate"
        ),
    }
    assert_eq!(request.is_accept(), can_request(Some(r), REQ, RESP, now));
    assert_eq!(r.id, trust_id(REQ, RESP));
}

const KEYS: [SenderKey<'static>; 2] = [
    SenderKey {
        public_key_base64: "S0VZMQ==",
        fingerprint: "fp1",
    },
    SenderKey {
        public_key_base64: "S0VZMg==",
        fingerprint: "fp2",
    },
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn handshake_invariants(steps in proptest::collection::vec(step(), 1..40)) {
        let mut now = UnixMillis::from_millis(1_750_000_000_000);
        let mut record: Option<TrustRecord> = None;
        let mut history_len = 0;
        for s in steps {
            match s {
                Step::Wait(ms) => now = now.saturating_add_millis(ms),
                Step::Request(p, second_key) => {
                    let verdict = evaluate(&req(), record.as_ref(), now);
                    if verdict.is_accept() {
                        let key = KEYS[usize::from(second_key)];
                        let terms = RequestTerms { privacy: p, expires_at: None };
                        let r = receive_request(record.as_ref(), REQ, RESP, key, terms, "server", now);
                        prop_assert_eq!(r.status, TrustStatus::Pending);
                        prop_assert_eq!(r.privacy_type, p.unwrap_or(PrivacyType::Encrypted));
                        prop_assert_eq!(&r.public_key_fingerprint, key.fingerprint);
                        // Once pending, a repeat request is refused at any later time.
                        let later = now.saturating_add_millis(1_000_000);
                        prop_assert_eq!(
                            evaluate(&req(), Some(&r), later).code(),
                            Some(ErrorCode::TrustNotAllowed)
                        );
                        record = Some(r);
                    } else {
                        prop_assert!(record.is_some(), "no record: requests always pass");
                    }
                }
                Step::Decide(d, expires, retry, p) => {
                    let Some(r) = &record else { continue };
                    let mut decision = Decision::new(d, "user");
                    decision.expires_at = expires.map(|e| now.saturating_add_millis(e));
                    decision.retry_after = retry.map(|e| now.saturating_add_millis(e));
                    decision.privacy = p;
                    match decide(r, &decision, now) {
                        Ok(next) => {
                            prop_assert!(decision_applies(r.status, d));
                            prop_assert_eq!(next.status, TrustStatus::from(d));
                            if d == TrustDecision::Blocked {
                                prop_assert_eq!(next.is_permanently_blocked(), retry.is_none());
                            }
                            // The requester's copy agrees with the responder's record.
                            let OutgoingRequest::Store(out) = request_outgoing(
                                None, REQ, RESP, RequestTerms::default(), "agent", now
                            ) else { unreachable!() };
                            let mine = apply_response(&out, &decision, now);
                            prop_assert_eq!(mine.status, next.status);
                            prop_assert_eq!(mine.expires_at, next.expires_at);
                            prop_assert_eq!(mine.retry_after, next.retry_after);
                            record = Some(next);
                        }
                        Err(_) => prop_assert!(!decision_applies(r.status, d)),
                    }
                }
            }
            if let Some(r) = &record {
                prop_assert!(r.key_history.len() >= history_len, "keyHistory never shrinks");
                history_len = r.key_history.len();
                check(r, now);
                check(r, now.saturating_add_millis(2500));
            }
        }
    }
}

#[test]
fn permanent_block_outlives_any_retry_time() {
    let now = UnixMillis::from_millis(0);
    let pending = receive_request(None, REQ, RESP, KEYS[0], RequestTerms::default(), "s", now);
    let blocked = decide(&pending, &Decision::new(TrustDecision::Blocked, "u"), now).unwrap();
    for ms in [0, 1, 86_400_000, i64::MAX / 2] {
        let at = UnixMillis::from_millis(ms);
        assert_eq!(
            evaluate(&req(), Some(&blocked), at).code(),
            Some(ErrorCode::TrustBlocked)
        );
        assert_eq!(
            evaluate(&doc(true), Some(&blocked), at).code(),
            Some(ErrorCode::TrustBlocked)
        );
    }
}
