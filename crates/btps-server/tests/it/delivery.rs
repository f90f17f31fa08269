//! The outbound delivery worker over the real file store and real crypto: an agent's
//! `artifact.send` goes through the pipeline into the outbox, and the worker delegates and
//! delivers it through a `Deliver` that hands the artifact to a real receiving pipeline
//! (the seam is the only stand-in). Retries, final failures, cancellation, revocation, a
//! crash mid-attempt, the wake-up and shutdown.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use btps_crypto::{KeyPair, PublicKey, verify_delegated};
use btps_dns::{CacheConfig, DnsCache, StaticTable};
use btps_server::config::{DeliveryConfig, HttpConfig};
use btps_server::{
    Deliver, DeliverError, DeliveryOptions, DeliveryWorker, FixedClock, LineHandler, Peer,
    PeerReply, Pipeline, ReplySigner, Server, ServerConfig, Shutdown, Stores, TickReport,
    TlsReloader, TlsSettings,
};
use btps_trust::file::{FileStore, FileStoreConfig};
use btps_trust::{
    DeliveryStatus, Mailbox, MessagePage, MessageQuery, MessageStore, StoredMessage, TrustRecord,
    TrustStatus, TrustStore, trust_id,
};
use btps_types::UnixMillis;
use btps_types::artifact::PrivacyType;
use btps_types::json::{Object, Value};
use tokio::sync::Notify;

use crate::build::{self, Parsed};
use crate::faulty::{Fault, FaultyMessages};
use crate::harness::{
    AGENT_ID, Harness, TrustState, harness, read_key, vector_options, vectors_dir,
};

const T0: i64 = 1_800_000_000_000;
/// The sender: the agent's owner.
const FINANCE: &str = "finance$buyer.test";
/// The recipient, hosted by the receiving pipeline.
const BILLING: &str = "billing$vendorcorp.test";
/// The service identity of buyer.test: the delegator.
const SERVER: &str = "server$buyer.test";
const MINUTE: i64 = 60_000;

fn at(offset_ms: i64) -> UnixMillis {
    UnixMillis::from_millis(T0 + offset_ms)
}

fn peer() -> Peer {
    Peer {
        addr: SocketAddr::from(([127, 0, 0, 1], 40100)),
        connection: 11,
    }
}

async fn send(p: &Pipeline, line: &str) -> Parsed {
    let h = p.handle(line.as_bytes(), &peer()).await;
    Parsed::new(String::from_utf8(h.reply.unwrap()).unwrap().trim_end())
}

/// What the receiver does with one delivery.
enum Act {
    /// Answer this reply without storing anything.
    Reply(PeerReply),
    /// Fail in transport.
    Fail(DeliverError),
    /// Take the artifact (the receiving pipeline stores it), then never answer: the sender
    /// crashed before it read the reply.
    AcceptAndHang,
    /// Wait for the notification, then answer this reply, or receive normally.
    WaitFor(Arc<Notify>, Option<PeerReply>),
    /// Take this long, then receive normally.
    Slow(Duration),
}

/// A `Deliver` whose receiving server is a real pipeline (signature, delegation, freshness,
/// trust and replay checks, durable inbox), with scripted acts first.
struct Receiver {
    pipeline: Arc<Pipeline>,
    script: Mutex<VecDeque<Act>>,
    received: Mutex<Vec<Object>>,
    got: Notify,
    calls: AtomicUsize,
}

impl Receiver {
    fn new(pipeline: Arc<Pipeline>) -> Arc<Self> {
        Arc::new(Self {
            pipeline,
            script: Mutex::new(VecDeque::new()),
            received: Mutex::new(Vec::new()),
            got: Notify::new(),
            calls: AtomicUsize::new(0),
        })
    }

    fn then(&self, act: Act) {
        self.script.lock().unwrap().push_back(act);
    }

    fn received(&self) -> Vec<Object> {
        self.received.lock().unwrap().clone()
    }

    /// The receiving pipeline's answer.
    async fn receive(&self, artifact: &Object) -> PeerReply {
        let line = build::line(artifact);
        let outcome = self.pipeline.process(line.as_bytes(), &peer()).await;
        let r = outcome.reply;
        PeerReply {
            ok: r.ok,
            code: r.code,
            error_code: r.error_code.map(|c| c.as_str().to_owned()),
            message: r.message,
        }
    }

    async fn wait_for_delivery(&self) {
        tokio::time::timeout(Duration::from_secs(10), self.got.notified())
            .await
            .expect("a delivery");
    }
}

#[async_trait]
impl Deliver for Receiver {
    async fn deliver(&self, artifact: &Object) -> Result<PeerReply, DeliverError> {
        self.received.lock().unwrap().push(artifact.clone());
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.got.notify_one();
        let act = self.script.lock().unwrap().pop_front();
        match act {
            None => Ok(self.receive(artifact).await),
            Some(Act::Reply(r)) => Ok(r),
            Some(Act::Fail(e)) => Err(e),
            Some(Act::AcceptAndHang) => {
                let r = self.receive(artifact).await;
                assert!(r.ok, "{r:?}");
                std::future::pending::<()>().await;
                unreachable!()
            }
            Some(Act::WaitFor(n, reply)) => {
                n.notified().await;
                match reply {
                    Some(r) => Ok(r),
                    None => Ok(self.receive(artifact).await),
                }
            }
            Some(Act::Slow(d)) => {
                tokio::time::sleep(d).await;
                Ok(self.receive(artifact).await)
            }
        }
    }
}

/// The harness at T0 with the recipient trusting the sender.
async fn setup() -> Harness {
    let h = harness(at(0), TrustState::Accepted, None).await;
    trust_finance(&h.store).await;
    h
}

pub(crate) async fn trust_finance(store: &FileStore) {
    let key = PublicKey::from_pem(&read_key("finance-btps1-public.pem")).unwrap();
    let r = TrustRecord::new(FINANCE, BILLING, TrustStatus::Accepted, at(0))
        .with_key(&key.to_base64_spki(), key.fingerprint())
        .with_privacy(PrivacyType::Mixed);
    store.put_trust(&r).await.unwrap();
}

/// The envelope of `id`: a `BTPS_DOC` from `from` to `to`, signed by the agent's device.
fn envelope(from: &str, to: &str, id: &str) -> Value {
    build::envelope(
        "BTPS_DOC",
        from,
        to,
        id,
        at(0),
        build::invoice(),
        &build::device_key(),
    )
}

/// The agent's `artifact.send` of `envelope(from, to, id)` through `p` at the clock's time.
async fn queue_from(p: &Pipeline, from: &str, to: &str, id: &str) {
    let line = build::agent(
        "artifact.send",
        AGENT_ID,
        to,
        Some(envelope(from, to, id)),
        &format!("cmd-{id}"),
        p.now(),
        &build::device_key(),
    );
    let r = send(p, &line).await;
    assert!(r.ok(), "{:?}", r.obj);
}

async fn queue(h: &Harness, id: &str) {
    queue_from(&h.pipeline, FINANCE, BILLING, id).await;
}

fn worker(p: &Arc<Pipeline>, r: &Arc<Receiver>, opts: DeliveryOptions) -> DeliveryWorker {
    DeliveryWorker::new(p.clone(), r.clone(), opts).unwrap()
}

/// One round at `now`, with the receiver's clock at `now` too.
async fn tick(h: &Harness, w: &DeliveryWorker, now: UnixMillis) -> TickReport {
    h.clock.set(now);
    w.run_once(now).await.unwrap()
}

async fn entry(store: &dyn MessageStore, mailbox: Mailbox, id: &str) -> Option<StoredMessage> {
    store.get_message(FINANCE, mailbox, id).await.unwrap()
}

async fn page(store: &dyn MessageStore, owner: &str, mailbox: Mailbox) -> MessagePage {
    store
        .fetch(owner, mailbox, &MessageQuery::default())
        .await
        .unwrap()
}

fn server_key() -> PublicKey {
    KeyPair::from_pem(&read_key("server-buyer-private.pem"))
        .unwrap()
        .public_key()
        .clone()
}

fn delegation(a: &Object) -> &Object {
    a.get_object("delegation").expect("a delegation")
}

fn without_delegation(a: &Object) -> Object {
    let mut a = a.clone();
    a.remove("delegation");
    a
}

fn report(claimed: usize) -> TickReport {
    TickReport {
        claimed,
        ..TickReport::default()
    }
}

#[tokio::test]
async fn an_agent_send_is_delegated_delivered_and_moved_to_the_sentbox() {
    let h = setup().await;
    queue(&h, "out-1").await;

    // Stored with the pending delegation, the device-signed envelope otherwise unchanged.
    let queued = entry(&*h.store, Mailbox::Outbox, "out-1").await.unwrap();
    let pending = delegation(&queued.artifact);
    let device_pem = build::device_key().public_key().to_pem_with_newline();
    assert_eq!(pending.get_str("agentId"), Some(AGENT_ID));
    assert_eq!(pending.get_str("agentPubKey"), Some(device_pem.as_str()));
    assert_eq!(pending.len(), 2);
    let sent_envelope = envelope(FINANCE, BILLING, "out-1");
    assert_eq!(
        without_delegation(&queued.artifact),
        *sent_envelope.as_object().unwrap()
    );

    let r = Receiver::new(h.pipeline.clone());
    let w = worker(&h.pipeline, &r, DeliveryOptions::default());
    let now = at(2_000);
    assert_eq!(
        tick(&h, &w, now).await,
        TickReport {
            delivered: 1,
            ..report(1)
        }
    );

    let got = r.received();
    assert_eq!(got.len(), 1);
    let d = delegation(&got[0]);
    assert_eq!(d.get_str("signedBy"), Some(SERVER));
    assert_eq!(d.get_str("selector"), Some("btps1"));
    assert_eq!(d.get_str("agentId"), Some(AGENT_ID));
    assert_eq!(d.get_str("agentPubKey"), Some(device_pem.as_str()));
    assert_eq!(
        d.get_str("issuedAt"),
        Some(now.to_datetime_string().as_str())
    );
    let signer = verify_delegated(&got[0], &server_key(), None).unwrap();
    assert_eq!(&signer, build::device_key().public_key());
    assert_eq!(
        without_delegation(&got[0]),
        *sent_envelope.as_object().unwrap()
    );

    // The receiver stored it; the sender's entry moved to the sentbox.
    let inbox = page(&*h.store, BILLING, Mailbox::Inbox).await;
    assert_eq!(inbox.results.len(), 1);
    assert_eq!(inbox.results[0].artifact, got[0]);
    assert!(entry(&*h.store, Mailbox::Outbox, "out-1").await.is_none());
    let sent = entry(&*h.store, Mailbox::Sentbox, "out-1").await.unwrap();
    let state = sent.delivery.unwrap();
    assert_eq!(
        (state.status, state.attempts),
        (DeliveryStatus::Delivered, 1)
    );
    assert_eq!(h.pipeline.metrics().deliveries("delivered"), 1);
    // Nothing more to do.
    assert_eq!(tick(&h, &w, at(10 * MINUTE)).await, report(0));
    assert_eq!(r.received().len(), 1);
}

#[tokio::test]
async fn retries_follow_the_schedule_with_a_fresh_delegation_each_time() {
    let h = setup().await;
    queue(&h, "out-1").await;
    let r = Receiver::new(h.pipeline.clone());
    r.then(Act::Fail(DeliverError::Temporary(
        "connect: refused".into(),
    )));
    r.then(Act::Fail(DeliverError::Temporary(
        "connection closed".into(),
    )));
    r.then(Act::Reply(PeerReply::error(
        503,
        Some("BTP_ERROR_SERVER_BUSY"),
        "Server busy, retry later",
    )));
    let w = worker(&h.pipeline, &r, DeliveryOptions::default());

    let retried = TickReport {
        retried: 1,
        ..report(1)
    };
    assert_eq!(tick(&h, &w, at(0)).await, retried);
    let state = entry(&*h.store, Mailbox::Outbox, "out-1")
        .await
        .unwrap()
        .delivery
        .unwrap();
    assert_eq!(state.attempts, 1);
    assert_eq!(state.next_attempt_at, at(MINUTE));
    assert_eq!(state.last_error.as_deref(), Some("connect: refused"));

    // Due after 1, 2 and 4 minutes, not before.
    assert_eq!(tick(&h, &w, at(MINUTE - 1)).await, report(0));
    assert_eq!(tick(&h, &w, at(MINUTE)).await, retried);
    assert_eq!(tick(&h, &w, at(3 * MINUTE - 1)).await, report(0));
    assert_eq!(tick(&h, &w, at(3 * MINUTE)).await, retried);
    let state = entry(&*h.store, Mailbox::Outbox, "out-1")
        .await
        .unwrap()
        .delivery
        .unwrap();
    assert_eq!(state.next_attempt_at, at(7 * MINUTE));
    assert_eq!(
        state.last_error.as_deref(),
        Some("BTP_ERROR_SERVER_BUSY (503): Server busy, retry later")
    );
    assert_eq!(tick(&h, &w, at(7 * MINUTE - 1)).await, report(0));
    assert_eq!(
        tick(&h, &w, at(7 * MINUTE)).await,
        TickReport {
            delivered: 1,
            ..report(1)
        }
    );

    // Four attempts, each with its own delegation issued at the attempt, each valid.
    let got = r.received();
    let issued: Vec<&str> = got
        .iter()
        .map(|a| delegation(a).get_str("issuedAt").unwrap())
        .collect();
    let want: Vec<String> = [0, MINUTE, 3 * MINUTE, 7 * MINUTE]
        .iter()
        .map(|t| at(*t).to_datetime_string())
        .collect();
    assert_eq!(issued, want);
    let mut signatures = Vec::new();
    for a in &got {
        verify_delegated(a, &server_key(), None).unwrap();
        signatures.push(
            delegation(a)
                .get_object("signature")
                .unwrap()
                .get_str("value")
                .unwrap()
                .to_owned(),
        );
        assert_eq!(without_delegation(a), without_delegation(&got[0]));
    }
    signatures.dedup();
    assert_eq!(signatures.len(), 4);
    let sent = entry(&*h.store, Mailbox::Sentbox, "out-1").await.unwrap();
    assert_eq!(sent.delivery.unwrap().attempts, 4);
    let m = h.pipeline.metrics();
    assert_eq!((m.deliveries("retry"), m.deliveries("delivered")), (3, 1));
}

#[tokio::test]
async fn a_duplicate_reply_counts_as_delivered() {
    let h = setup().await;
    queue(&h, "out-1").await;
    let r = Receiver::new(h.pipeline.clone());
    r.then(Act::Reply(PeerReply::error(
        409,
        Some("BTP_ERROR_DUPLICATE"),
        "Artifact already received",
    )));
    let w = worker(&h.pipeline, &r, DeliveryOptions::default());
    assert_eq!(
        tick(&h, &w, at(0)).await,
        TickReport {
            delivered: 1,
            ..report(1)
        }
    );
    assert!(entry(&*h.store, Mailbox::Sentbox, "out-1").await.is_some());
    assert!(
        page(&*h.store, FINANCE, Mailbox::Inbox)
            .await
            .results
            .is_empty()
    );
}

/// The delivery failures in the sender's inbox.
async fn failures(store: &dyn MessageStore) -> Vec<Object> {
    page(store, FINANCE, Mailbox::Inbox)
        .await
        .results
        .into_iter()
        .map(|m| m.artifact)
        .filter(|a| a.get_str("type") == Some("BTP_DELIVERY_FAILURE"))
        .collect()
}

#[tokio::test]
async fn an_error_reply_without_error_code_is_final() {
    let h = setup().await;
    queue(&h, "out-1").await;
    let r = Receiver::new(h.pipeline.clone());
    // A btps-node receiver refuses with 500 and no errorCode, trust refusals included.
    let message = "BTPS trust request is not allowed at this time. Contact receiver";
    r.then(Act::Reply(PeerReply::error(500, None, message)));
    let w = worker(&h.pipeline, &r, DeliveryOptions::default());
    assert_eq!(
        tick(&h, &w, at(0)).await,
        TickReport {
            failed: 1,
            ..report(1)
        }
    );
    let state = entry(&*h.store, Mailbox::Outbox, "out-1")
        .await
        .unwrap()
        .delivery
        .unwrap();
    assert_eq!(state.status, DeliveryStatus::Failed);
    assert_eq!(state.last_error.as_deref(), Some(message));
    let f = failures(&*h.store).await;
    assert_eq!(f.len(), 1);
    let doc = f[0].get_object("document").unwrap();
    assert_eq!(doc.get_str("reason"), Some(message));
    assert_eq!(doc.get("retryCount").and_then(Value::as_f64), Some(0.0));
    // No retry.
    assert_eq!(tick(&h, &w, at(60 * MINUTE)).await, report(0));
    assert_eq!(r.received().len(), 1);
}

#[tokio::test]
async fn other_refusals_are_final_and_a_real_receiver_refusal_is_reported() {
    let h = setup().await;
    // The recipient does not trust this sender: the real receiving pipeline refuses.
    h.store
        .delete_trust(&trust_id(FINANCE, BILLING))
        .await
        .unwrap();
    queue(&h, "out-1").await;
    let r = Receiver::new(h.pipeline.clone());
    let w = worker(&h.pipeline, &r, DeliveryOptions::default());
    assert_eq!(
        tick(&h, &w, at(0)).await,
        TickReport {
            failed: 1,
            ..report(1)
        }
    );
    let f = failures(&*h.store).await;
    let reason = f[0]
        .get_object("document")
        .unwrap()
        .get_str("reason")
        .unwrap();
    assert!(reason.starts_with("BTP_ERROR_TRUST_"), "{reason}");
    assert!(reason.contains("(403)"), "{reason}");
}

#[tokio::test]
async fn exhausted_retries_leave_one_failure_artifact_and_a_failed_entry() {
    let h = setup().await;
    queue(&h, "out-1").await;
    let r = Receiver::new(h.pipeline.clone());
    for i in 1..=6 {
        r.then(Act::Fail(DeliverError::Temporary(format!("timeout {i}"))));
    }
    let w = worker(&h.pipeline, &r, DeliveryOptions::default());
    // Attempts at 0, 1, 3, 7, 15 and 31 minutes: five retries, then final.
    let mut t = 0;
    for delay in [1, 2, 4, 8, 16] {
        let rep = tick(&h, &w, at(t)).await;
        assert_eq!(rep.retried, 1, "at {t}");
        t += delay * MINUTE;
        assert_eq!(tick(&h, &w, at(t - 1)).await, report(0));
    }
    assert_eq!(
        tick(&h, &w, at(t)).await,
        TickReport {
            failed: 1,
            ..report(1)
        }
    );
    assert_eq!(t, 31 * MINUTE);
    assert_eq!(r.received().len(), 6);

    let state = entry(&*h.store, Mailbox::Outbox, "out-1")
        .await
        .unwrap()
        .delivery
        .unwrap();
    assert_eq!(state.status, DeliveryStatus::Failed);
    assert_eq!(state.attempts, 6);
    assert_eq!(state.finished_at, Some(at(t)));

    let f = failures(&*h.store).await;
    assert_eq!(f.len(), 1);
    let a = &f[0];
    let keys: Vec<String> = a.keys().map(ToString::to_string).collect();
    assert_eq!(keys, ["id", "issuedAt", "type", "from", "to", "document"]);
    let when = at(t).to_datetime_string();
    assert_eq!(a.get_str("issuedAt"), Some(when.as_str()));
    assert_eq!(a.get_str("from"), Some(SERVER));
    assert_eq!(a.get_str("to"), Some(FINANCE));
    let doc = a.get_object("document").unwrap();
    assert_eq!(doc.get_str("id"), a.get_str("id"));
    assert_eq!(
        doc.get_str("reason"),
        Some("timeout 6 (gave up after 6 attempts)")
    );
    assert_eq!(doc.get_str("failedAt"), Some(when.as_str()));
    assert_eq!(doc.get("retryCount").and_then(Value::as_f64), Some(5.0));
    assert_eq!(doc.get_str("recipient"), Some(BILLING));
    assert_eq!(doc.get_str("transportArtifactId"), Some("out-1"));
    assert!(!doc.contains_key("agentArtifactId"));
    // The artifact as the agent sent it.
    assert_eq!(
        doc.get_object("document"),
        envelope(FINANCE, BILLING, "out-1").as_object()
    );
    let log = doc.get("errorLog").and_then(Value::as_array).unwrap();
    let errors: Vec<(f64, &str)> = log
        .iter()
        .map(|e| {
            let e = e.as_object().unwrap();
            (
                e.get("attempt").and_then(Value::as_f64).unwrap(),
                e.get_str("error").unwrap(),
            )
        })
        .collect();
    assert_eq!(errors.len(), 6);
    assert_eq!(errors[0], (1.0, "timeout 1"));
    assert_eq!(errors[5].0, 6.0);
    assert_eq!(h.pipeline.metrics().deliveries("failed"), 1);

    // Final: nothing more is attempted or stored.
    assert_eq!(tick(&h, &w, at(t + 24 * 60 * MINUTE)).await, report(0));
    assert_eq!(failures(&*h.store).await.len(), 1);
}

#[tokio::test]
async fn a_cancelled_entry_is_not_delivered_afterwards() {
    let h = setup().await;
    queue(&h, "out-1").await;
    let r = Receiver::new(h.pipeline.clone());
    r.then(Act::Fail(DeliverError::Temporary(
        "connect: refused".into(),
    )));
    let w = worker(&h.pipeline, &r, DeliveryOptions::default());
    assert_eq!(tick(&h, &w, at(0)).await.retried, 1);

    // The agent cancels it between two attempts.
    let ids = Object::new().with("ids", Value::Array(vec!["out-1".into()]));
    let cancel = build::agent(
        "outbox.cancel",
        AGENT_ID,
        FINANCE,
        Some(ids.into()),
        "cancel-1",
        at(0),
        &build::device_key(),
    );
    h.clock.set(at(0));
    assert!(send(&h.pipeline, &cancel).await.ok());

    assert_eq!(tick(&h, &w, at(MINUTE)).await, report(0));
    assert_eq!(tick(&h, &w, at(60 * MINUTE)).await, report(0));
    assert_eq!(r.received().len(), 1);
    let trashed = entry(&*h.store, Mailbox::Trash, "out-1").await.unwrap();
    assert_eq!(trashed.delivery.unwrap().status, DeliveryStatus::Cancelled);
    assert!(failures(&*h.store).await.is_empty());
}

#[tokio::test]
async fn an_entry_cancelled_during_its_attempt_is_left_cancelled() {
    let h = setup().await;
    queue(&h, "out-1").await;
    queue(&h, "out-2").await;
    let r = Receiver::new(h.pipeline.clone());
    // out-1 is delivered while it is being cancelled; out-2 is finally refused while it is
    // being cancelled.
    let release = Arc::new(Notify::new());
    r.then(Act::WaitFor(release.clone(), None));
    let refused = PeerReply::error(403, Some("BTP_ERROR_TRUST_BLOCKED"), "blocked");
    r.then(Act::WaitFor(release.clone(), Some(refused)));
    let opts = DeliveryOptions {
        concurrency: 1,
        ..DeliveryOptions::default()
    };
    let w = worker(&h.pipeline, &r, opts);
    h.clock.set(at(0));

    for id in ["out-1", "out-2"] {
        let w1 = w.clone();
        let attempt = tokio::spawn(async move { w1.run_once(at(0)).await.unwrap() });
        r.wait_for_delivery().await;
        let cancelled = h.store.cancel_outbox(FINANCE, &[id], at(0)).await.unwrap();
        assert_eq!(cancelled, [id]);
        release.notify_one();
        assert_eq!(
            attempt.await.unwrap(),
            TickReport {
                cancelled: 1,
                ..report(1)
            },
            "{id}"
        );
        assert!(entry(&*h.store, Mailbox::Sentbox, id).await.is_none());
        assert_eq!(
            entry(&*h.store, Mailbox::Trash, id)
                .await
                .unwrap()
                .delivery
                .unwrap()
                .status,
            DeliveryStatus::Cancelled
        );
    }
    // No failure is reported for the cancelled out-2.
    assert!(failures(&*h.store).await.is_empty());
    assert_eq!(h.pipeline.metrics().deliveries("cancelled"), 2);
    assert_eq!(tick(&h, &w, at(60 * MINUTE)).await, report(0));
}

#[tokio::test]
async fn a_revoked_agent_gets_no_delegation() {
    let h = setup().await;
    queue(&h, "out-1").await;
    let id = trust_id(AGENT_ID, FINANCE);
    let mut record = h.store.get_trust(&id).await.unwrap().unwrap();
    record.status = TrustStatus::Revoked;
    h.store.put_trust(&record).await.unwrap();

    let r = Receiver::new(h.pipeline.clone());
    let w = worker(&h.pipeline, &r, DeliveryOptions::default());
    assert_eq!(
        tick(&h, &w, at(0)).await,
        TickReport {
            failed: 1,
            ..report(1)
        }
    );
    assert!(r.received().is_empty(), "nothing is delivered");
    let state = entry(&*h.store, Mailbox::Outbox, "out-1")
        .await
        .unwrap()
        .delivery
        .unwrap();
    assert_eq!(state.status, DeliveryStatus::Failed);
    let f = failures(&*h.store).await;
    assert_eq!(f.len(), 1);
    let reason = f[0]
        .get_object("document")
        .unwrap()
        .get_str("reason")
        .unwrap();
    assert!(reason.contains("revoked"), "{reason}");
    assert!(reason.contains(AGENT_ID), "{reason}");

    // An agent record that is gone altogether counts as revoked too.
    queue_from(&h.pipeline, BILLING, FINANCE, "out-2").await;
    h.store
        .delete_trust(&trust_id(AGENT_ID, BILLING))
        .await
        .unwrap();
    // (billing$vendorcorp.test has no delegator either; the revocation is checked first.)
    assert_eq!(tick(&h, &w, at(1)).await.failed, 1);
    let f = page(&*h.store, BILLING, Mailbox::Inbox).await.results;
    let reason = f[0]
        .artifact
        .get_object("document")
        .unwrap()
        .get_str("reason")
        .unwrap()
        .to_owned();
    assert!(reason.contains("was revoked"), "{reason}");
    assert!(r.received().is_empty());
}

#[tokio::test]
async fn a_domain_without_a_server_identity_cannot_delegate_but_a_tenant_can() {
    let h = setup().await;
    // billing$vendorcorp.test is hosted, but the only server identity is of buyer.test.
    queue_from(&h.pipeline, BILLING, FINANCE, "out-1").await;
    let r = Receiver::new(h.pipeline.clone());
    let w = worker(&h.pipeline, &r, DeliveryOptions::default());
    assert_eq!(tick(&h, &w, at(0)).await.failed, 1);
    assert!(r.received().is_empty());
    let f = page(&*h.store, BILLING, Mailbox::Inbox).await.results;
    assert_eq!(f.len(), 1);
    let a = &f[0].artifact;
    // No service identity of the domain: the failure comes "from" the sender itself.
    assert_eq!(a.get_str("from"), Some(BILLING));
    assert_eq!(a.get_str("to"), Some(BILLING));
    let reason = a.get_object("document").unwrap().get_str("reason").unwrap();
    assert!(
        reason.contains("no delegator for vendorcorp.test"),
        "{reason}"
    );

    // With a tenant for vendorcorp.test, its server identity delegates.
    let admin = "admin$vendorcorp.test";
    let tenant = Arc::new(
        pipeline_over(Stores::from_backend(h.store.clone()), h.clock.clone()).with_tenant_signer(
            "vendorcorp.test",
            ReplySigner {
                identity: admin.into(),
                selector: "btps1".into(),
                key: KeyPair::from_pem(&read_key("admin-vendorcorp-private.pem")).unwrap(),
            },
        ),
    );
    queue_from(&tenant, BILLING, FINANCE, "out-2").await;
    let r = Receiver::new(tenant.clone());
    let w = worker(&tenant, &r, DeliveryOptions::default());
    assert_eq!(tick(&h, &w, at(0)).await.delivered, 1);
    let got = r.received();
    assert_eq!(delegation(&got[0]).get_str("signedBy"), Some(admin));
    let admin_key = PublicKey::from_pem(&read_key("admin-vendorcorp-public.pem")).unwrap();
    verify_delegated(&got[0], &admin_key, None).unwrap();
    // Agents of buyer.test still get the default server identity.
    assert_eq!(
        tenant
            .delegator_for(&FINANCE.parse().unwrap())
            .map(|s| s.identity.clone())
            .as_deref(),
        Some(SERVER)
    );
}

/// A pipeline like the harness's (the vectors' DNS table, both domains hosted,
/// `server$buyer.test` signing) over `stores`.
fn pipeline_over(stores: Stores, clock: Arc<FixedClock>) -> Pipeline {
    let table = StaticTable::load(&vectors_dir().join("dns.json")).unwrap();
    Pipeline::new(
        stores,
        DnsCache::with_config(table, CacheConfig::default()),
        vector_options(),
    )
    .with_clock(clock)
    .with_signer(ReplySigner {
        identity: SERVER.into(),
        selector: "btps1".into(),
        key: KeyPair::from_pem(&read_key("server-buyer-private.pem")).unwrap(),
    })
}

#[tokio::test]
async fn a_worker_that_dies_mid_attempt_is_replaced_after_the_lease() {
    let h = setup().await;
    queue(&h, "out-1").await;
    let r = Receiver::new(h.pipeline.clone());
    // The receiver stores the artifact; the sender dies before it reads the reply.
    r.then(Act::AcceptAndHang);
    let w = worker(&h.pipeline, &r, DeliveryOptions::default());
    h.clock.set(at(0));
    let dying = tokio::spawn(async move { w.run_once(at(0)).await });
    r.wait_for_delivery().await;
    // Let the receiving pipeline finish storing it.
    tokio::time::timeout(Duration::from_secs(10), async {
        while page(&*h.store, BILLING, Mailbox::Inbox)
            .await
            .results
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    dying.abort();
    assert!(dying.await.unwrap_err().is_cancelled());
    drop(r);

    // The process is gone: reopen the store from disk with a new pipeline and worker.
    let Harness {
        pipeline,
        store,
        clock,
        _dir: dir,
        ..
    } = h;
    drop(pipeline);
    // The aborted attempt lets go of the store once the runtime has dropped it.
    tokio::time::timeout(Duration::from_secs(10), async {
        while Arc::strong_count(&store) > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    store.close();
    drop(store);
    let store = Arc::new(FileStore::open(&FileStoreConfig::new(dir.path()), at(1_000)).unwrap());
    let pipeline = Arc::new(pipeline_over(
        Stores::from_backend(store.clone()),
        clock.clone(),
    ));
    let r = Receiver::new(pipeline.clone());
    let w = worker(&pipeline, &r, DeliveryOptions::default());
    let lease = 60_000;

    // Still leased by the dead worker.
    clock.set(at(lease - 1));
    assert_eq!(w.run_once(at(lease - 1)).await.unwrap(), report(0));
    // After the lease it is attempted again; the receiver's replay check answers
    // `already accepted`, which is delivered.
    clock.set(at(lease));
    assert_eq!(
        w.run_once(at(lease)).await.unwrap(),
        TickReport {
            delivered: 1,
            ..report(1)
        }
    );
    let got = r.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        delegation(&got[0]).get_str("issuedAt"),
        Some(at(lease).to_datetime_string().as_str())
    );
    assert_eq!(
        pipeline.metrics().already_accepted.load(Ordering::Relaxed),
        1
    );
    // Exactly one stored artifact at the receiver, one entry in the sentbox.
    let inbox = page(&*store, BILLING, Mailbox::Inbox).await.results;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].id, "out-1");
    let sent = page(&*store, FINANCE, Mailbox::Sentbox).await.results;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].id, "out-1");
    assert!(
        page(&*store, FINANCE, Mailbox::Outbox)
            .await
            .results
            .is_empty()
    );
}

#[tokio::test]
async fn a_stop_between_the_failure_artifact_and_its_record_stores_one_failure() {
    let h = setup().await;
    let messages = FaultyMessages::new(h.store.clone(), Fault::StopBeforeFailedRecord);
    let stores = Stores {
        messages: messages.clone(),
        ..Stores::from_backend(h.store.clone())
    };
    let p = Arc::new(pipeline_over(stores, h.clock.clone()));
    h.clock.set(at(0));
    queue_from(&p, FINANCE, BILLING, "out-1").await;
    let r = Receiver::new(h.pipeline.clone());
    r.then(Act::Reply(PeerReply::error(
        403,
        Some("BTP_ERROR_TRUST_NOT_ALLOWED"),
        "not allowed",
    )));
    let w = worker(&p, &r, DeliveryOptions::default());
    assert_eq!(
        tick(&h, &w, at(0)).await,
        TickReport {
            errors: 1,
            ..report(1)
        }
    );
    assert_eq!(failures(&*h.store).await.len(), 1);
    let state = entry(&*h.store, Mailbox::Outbox, "out-1")
        .await
        .unwrap()
        .delivery
        .unwrap();
    assert_eq!(state.status, DeliveryStatus::Pending);

    // After the lease the failure is completed without another delivery or failure artifact.
    assert_eq!(
        tick(&h, &w, at(MINUTE)).await,
        TickReport {
            failed: 1,
            ..report(1)
        }
    );
    assert_eq!(r.received().len(), 1);
    assert_eq!(failures(&*h.store).await.len(), 1);
    let state = entry(&*h.store, Mailbox::Outbox, "out-1")
        .await
        .unwrap()
        .delivery
        .unwrap();
    assert_eq!(state.status, DeliveryStatus::Failed);
    assert_eq!(
        state.last_error.as_deref(),
        Some("BTP_ERROR_TRUST_NOT_ALLOWED (403): not allowed")
    );
}

#[tokio::test]
async fn a_queued_artifact_wakes_the_worker_at_once() {
    let h = setup().await;
    h.clock.set(at(0));
    let r = Receiver::new(h.pipeline.clone());
    let opts = DeliveryOptions {
        poll: Duration::from_secs(3600),
        ..DeliveryOptions::default()
    };
    let w = worker(&h.pipeline, &r, opts);
    let shutdown = Shutdown::new();
    let running = {
        let stop = shutdown.clone();
        tokio::spawn(async move { w.run(stop).await })
    };
    // The worker's first look at the outbox finds nothing.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(r.received().is_empty());

    let started = std::time::Instant::now();
    queue(&h, "out-1").await;
    r.wait_for_delivery().await;
    assert!(started.elapsed() < Duration::from_secs(10));
    tokio::time::timeout(Duration::from_secs(10), async {
        while entry(&*h.store, Mailbox::Sentbox, "out-1").await.is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("delivered without waiting for the poll interval");
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_lets_the_attempts_in_flight_finish() {
    let h = setup().await;
    h.clock.set(at(0));
    queue(&h, "out-1").await;
    let r = Receiver::new(h.pipeline.clone());
    r.then(Act::Slow(Duration::from_millis(300)));
    let w = worker(&h.pipeline, &r, DeliveryOptions::default());
    let shutdown = Shutdown::new();
    let running = {
        let stop = shutdown.clone();
        tokio::spawn(async move { w.run(stop).await })
    };
    r.wait_for_delivery().await;
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap();
    // Finished and recorded before `run` returned.
    assert!(entry(&*h.store, Mailbox::Sentbox, "out-1").await.is_some());
    assert_eq!(
        h.pipeline
            .metrics()
            .deliveries_in_flight
            .load(Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn invalid_options_are_refused() {
    let h = setup().await;
    let r = Receiver::new(h.pipeline.clone());
    let opts = DeliveryOptions {
        lease: Duration::from_secs(1),
        request_timeout: Duration::from_secs(5),
        ..DeliveryOptions::default()
    };
    assert!(DeliveryWorker::new(h.pipeline.clone(), r, opts).is_err());
}

/// `Server::run` with a transport runs the worker (unless disabled) and stops it on shutdown.
#[tokio::test]
async fn the_server_runs_the_worker_with_a_transport() {
    for enabled in [true, false] {
        let h = setup().await;
        h.clock.set(at(0));
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsReloader::load(TlsSettings {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            self_signed: true,
            self_signed_names: vec!["localhost".into()],
        })
        .unwrap();
        let config = ServerConfig {
            delivery: DeliveryConfig {
                enabled,
                poll_ms: 3_600_000,
                ..DeliveryConfig::default()
            },
            http: HttpConfig {
                listen: None,
                ..HttpConfig::default()
            },
            ..ServerConfig::default()
        };
        let server = Server::new(config, h.pipeline.clone(), tls);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = Shutdown::new();
        let r = Receiver::new(h.pipeline.clone());
        let deliver: Arc<dyn Deliver> = r.clone();
        let running = tokio::spawn(server.run(listener, None, shutdown.clone(), Some(deliver)));
        queue(&h, "out-1").await;
        if enabled {
            r.wait_for_delivery().await;
            tokio::time::timeout(Duration::from_secs(10), async {
                while entry(&*h.store, Mailbox::Sentbox, "out-1").await.is_none() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
            .unwrap();
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(r.received().is_empty());
            assert!(entry(&*h.store, Mailbox::Outbox, "out-1").await.is_some());
        }
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(20), running)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
