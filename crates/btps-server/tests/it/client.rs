//! btps-client against a real btps-server: the pipeline behind the TLS transport on
//! 127.0.0.1, keys and host records from a real DNS server serving the vectors' table
//! (PROTOCOL.md §3.5, §3.6, §5, §8, §10.2).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use btps_client::{
    Agent, Client, ClientConfig, ClientError, DeliveryStatus, Query, ServerAddr, TlsTrust,
    Transporter,
};
use btps_crypto::{KeyPair, PublicKey};
use btps_dns::{CacheConfig, DnsCache};
use btps_server::config::{Limits, Timeouts};
use btps_server::{
    ClientDeliver, DeliveryOptions, DeliveryWorker, LineHandler, Shutdown, TlsReloader,
    TlsSettings, Transport,
};
use btps_trust::{
    IdentityStore, Mailbox, MessageQuery, MessageStore, TokenHash, TokenKind, TokenRecord,
    TrustStatus, TrustStore, generate_auth_token, trust_id,
};
use btps_types::artifact::TransporterType;
use btps_types::json::{Object, Value};
use btps_types::{ErrorCode, Identity, Selector, UnixMillis};
use tokio::net::TcpListener;

use crate::build::invoice;
use crate::harness::{Harness, TrustState, harness_dns, read_key, vector_options};

pub(crate) const FINANCE: &str = "finance$buyer.test";
pub(crate) const BILLING: &str = "billing$vendorcorp.test";

/// A harness (file store, vectors' DNS over a real DNS server, clock at the wall-clock
/// time) behind a real TLS transport, and a client configured for it.
pub(crate) struct Live {
    pub(crate) h: Harness,
    pub(crate) addr: ServerAddr,
    pub(crate) client: Client,
    shutdown: Shutdown,
    _dir: tempfile::TempDir,
}

impl Live {
    pub(crate) async fn start() -> Self {
        Self::start_with(vector_options()).await
    }

    /// [`start`](Self::start) with these pipeline options.
    pub(crate) async fn start_with(opts: btps_server::PipelineOptions) -> Self {
        let now = UnixMillis::from_system_time(SystemTime::now()).unwrap();
        let h = harness_dns(now, TrustState::Accepted, None, opts, true).await;
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsReloader::load(TlsSettings {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            self_signed: true,
            self_signed_names: vec!["localhost".into()],
        })
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handler: Arc<dyn LineHandler> = h.pipeline.clone();
        let transport = Transport::new(tls, handler, Limits::default(), Timeouts::default());
        let shutdown = Shutdown::new();
        tokio::spawn(transport.serve(listener, shutdown.clone()));

        let addr: ServerAddr = format!("localhost:{port}").parse().unwrap();
        let config = ClientConfig {
            tls: TlsTrust::CaPem(std::fs::read(dir.path().join("cert.pem")).unwrap()),
            ..ClientConfig::default()
        }
        .with_override("buyer.test", addr.clone())
        .with_override("vendorcorp.test", addr.clone());
        let dns = DnsCache::with_config(
            h.dns_server.as_ref().unwrap().resolver(),
            CacheConfig::default(),
        );
        let client = Client::new(config, dns).unwrap();
        Self {
            h,
            addr,
            client,
            shutdown,
            _dir: dir,
        }
    }

    fn transporter(&self) -> Transporter {
        Transporter::builder(self.client.clone())
            .identity(BILLING.parse().unwrap())
            .selector(Selector::parse("btps1").unwrap())
            .key(KeyPair::from_pem(&read_key("billing-btps1-private.pem")).unwrap())
            .build()
    }

    pub(crate) fn now(&self) -> UnixMillis {
        UnixMillis::from_system_time(SystemTime::now()).unwrap()
    }

    /// A fresh auth token for `identity` in the store.
    pub(crate) async fn auth_token(&self, identity: &str) -> String {
        let token = generate_auth_token(&btps_crypto::SystemRandom, 12).unwrap();
        let now = self.now();
        self.h
            .store
            .create_token(&TokenRecord {
                kind: TokenKind::Auth,
                hash: TokenHash::of(&token),
                subject: identity.to_owned(),
                user_identity: identity.to_owned(),
                decrypt_by: identity.to_owned(),
                metadata: None,
                created_at: now,
                expires_at: now.saturating_add_millis(900_000),
            })
            .await
            .unwrap();
        token
    }

    async fn onboard(&self, identity: &str) -> Agent {
        let token = self.auth_token(identity).await;
        Agent::onboard(
            self.client.clone(),
            self.addr.clone(),
            identity.parse().unwrap(),
            &token,
            Some(Object::new().with("deviceName", "integration test")),
        )
        .await
        .unwrap()
    }

    async fn inbox_ids(&self, owner: &str) -> Vec<String> {
        let page = self
            .h
            .store
            .fetch(owner, Mailbox::Inbox, &MessageQuery::default())
            .await
            .unwrap();
        page.results
            .iter()
            .filter_map(|m| m.artifact.get_str("id").map(str::to_owned))
            .collect()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

pub(crate) fn invoice_object() -> Object {
    invoice().as_object().unwrap().clone()
}

fn finance_key() -> KeyPair {
    KeyPair::from_pem(&read_key("finance-btps1-private.pem")).unwrap()
}

#[tokio::test]
async fn transporter_delivers_plain_and_encrypted_documents() {
    let live = Live::start().await;
    let t = live.transporter();
    let to: Identity = FINANCE.parse().unwrap();

    let plain = t
        .artifact(TransporterType::BtpsDoc, to.clone(), invoice_object())
        .sign()
        .await
        .unwrap();
    let d = t.send(&plain).await.unwrap();
    assert_eq!(d.status, DeliveryStatus::Accepted);
    assert_eq!(d.response.req_id(), plain.get_str("id"));
    // An exact re-send is delivered already.
    let again = t.send(&plain).await.unwrap();
    assert_eq!(again.status, DeliveryStatus::AlreadyAccepted);
    // The same id re-signed is a duplicate: delivered as well.
    let resigned = t
        .artifact(TransporterType::BtpsDoc, to.clone(), invoice_object())
        .id(plain.get_str("id").unwrap())
        .sign()
        .await
        .unwrap();
    assert_eq!(
        t.send(&resigned).await.unwrap().status,
        DeliveryStatus::Duplicate
    );

    let encrypted = t
        .artifact(TransporterType::BtpsDoc, to.clone(), invoice_object())
        .encrypt(true)
        .sign()
        .await
        .unwrap();
    assert!(encrypted.get("document").unwrap().is_string());
    assert_eq!(
        t.send(&encrypted).await.unwrap().status,
        DeliveryStatus::Accepted
    );

    // Tampered after signing: refused with the signature code, not retried.
    let mut tampered = t
        .artifact(TransporterType::BtpsDoc, to.clone(), invoice_object())
        .sign()
        .await
        .unwrap();
    if let Some(Value::Object(doc)) = tampered.get_mut("document") {
        doc.insert("title", "Invoice INV-9999");
    }
    let attempts = live.client.stats().attempts;
    match t.send(&tampered).await {
        Err(e @ ClientError::Rejected { code: 401, .. }) => {
            assert_eq!(e.error_code(), ErrorCode::SigVerification);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(live.client.stats().attempts, attempts + 1);

    // A receiver the sender is not trusted by.
    let stranger = t
        .send_document(
            TransporterType::BtpsDoc,
            "finance$vendorcorp.test".parse().unwrap(),
            invoice_object(),
            false,
        )
        .await;
    assert!(
        matches!(stranger, Err(ClientError::Rejected { .. })),
        "{stranger:?}"
    );

    let inbox = live.inbox_ids(FINANCE).await;
    assert_eq!(inbox.len(), 2, "{inbox:?}");
    assert!(
        inbox
            .iter()
            .any(|i| Some(i.as_str()) == plain.get_str("id"))
    );
    assert!(
        inbox
            .iter()
            .any(|i| Some(i.as_str()) == encrypted.get_str("id"))
    );
    // Everything went over one pooled connection.
    assert_eq!(live.client.stats().connections_opened, 1);
    assert_eq!(
        live.client.ping(&live.addr).await.unwrap().message(),
        "pong"
    );
}

#[tokio::test]
async fn identity_lookups_are_signed_and_verified() {
    let live = Live::start().await;
    let finance: Identity = FINANCE.parse().unwrap();
    let expected = PublicKey::from_pem(&read_key("finance-btps1-public.pem")).unwrap();
    let key = live
        .client
        .lookup_identity(&finance, Some(&Selector::parse("btps1").unwrap()))
        .await
        .unwrap();
    assert_eq!(key, expected);
    assert_eq!(
        live.client.lookup_identity(&finance, None).await.unwrap(),
        expected
    );
    match live
        .client
        .lookup_identity(&"nobody$buyer.test".parse().unwrap(), None)
        .await
    {
        Err(e @ ClientError::Rejected { code: 404, .. }) => {
            assert_eq!(e.error_code(), ErrorCode::IdentityNotFound);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn agents_onboard_and_rotate_their_refresh_token() {
    let live = Live::start().await;
    let token = live.auth_token(FINANCE).await;
    let agent = Agent::onboard(
        live.client.clone(),
        live.addr.clone(),
        FINANCE.parse().unwrap(),
        &token,
        None,
    )
    .await
    .unwrap();
    let first = agent.state();
    assert!(first.agent_id.starts_with("btps_ag_"), "{first:?}");
    assert_eq!(first.decrypt_by.as_str(), FINANCE);
    assert!(first.expires_at > live.now());
    // The agent record exists, active, with the device key.
    let record = live
        .h
        .store
        .get_trust(&trust_id(&first.agent_id, FINANCE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, TrustStatus::Accepted);
    let device = KeyPair::from_pem(&first.device_key_pem).unwrap();
    assert_eq!(
        record.public_key_fingerprint,
        device.public_key().fingerprint()
    );
    agent.ping().await.unwrap();

    // The auth token was single-use.
    let again = Agent::onboard(
        live.client.clone(),
        live.addr.clone(),
        FINANCE.parse().unwrap(),
        &token,
        None,
    )
    .await;
    match again {
        Err(e @ ClientError::Rejected { code: 401, .. }) => {
            assert_eq!(e.error_code(), ErrorCode::AuthenticationInvalid);
        }
        other => panic!("{other:?}"),
    }

    // Rotation, reported to the hook.
    let seen = Arc::new(AtomicUsize::new(0));
    let mut agent = Agent::resume(live.client.clone(), first.clone()).unwrap();
    {
        let seen = seen.clone();
        agent.set_state_hook(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        });
    }
    let second = agent.refresh().await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(second.agent_id, first.agent_id);
    assert_eq!(agent.state(), second);
    assert_eq!(seen.load(Ordering::SeqCst), 1);

    // Automatic refresh before a call when the token expires within the margin.
    let agent = agent.with_refresh_margin(Duration::from_secs(30 * 24 * 3600));
    agent.ping().await.unwrap();
    let third = agent.state();
    assert_ne!(third.refresh_token, second.refresh_token);
    assert_eq!(seen.load(Ordering::SeqCst), 2);

    // A persisted state survives serialization.
    let text = serde_json::to_string(&third).unwrap();
    let restored: btps_client::AgentState = serde_json::from_str(&text).unwrap();
    assert_eq!(restored, third);
    let resumed = Agent::resume(live.client.clone(), restored).unwrap();
    resumed.ping().await.unwrap();

    // An old, rotated token is refused (and its reuse revokes the agent, §8.4).
    let stale = Agent::resume(live.client.clone(), first).unwrap();
    match stale.refresh().await {
        Err(e @ ClientError::Rejected { code: 401, .. }) => {
            assert_eq!(e.error_code(), ErrorCode::AuthenticationInvalid);
        }
        other => panic!("{other:?}"),
    }
    let record = live
        .h
        .store
        .get_trust(&trust_id(&third.agent_id, FINANCE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, TrustStatus::Revoked);
    assert!(matches!(
        resumed.ping().await,
        Err(ClientError::Rejected { code: 403, .. })
    ));
}

#[tokio::test]
async fn agent_actions_round_trip_with_typed_results() {
    let live = Live::start().await;
    let t = live.transporter();
    let finance: Identity = FINANCE.parse().unwrap();
    let billing: Identity = BILLING.parse().unwrap();
    let plain = t
        .artifact(TransporterType::BtpsDoc, finance.clone(), invoice_object())
        .sign()
        .await
        .unwrap();
    t.send(&plain).await.unwrap();
    let encrypted = t
        .artifact(TransporterType::BtpsDoc, finance.clone(), invoice_object())
        .encrypt(true)
        .sign()
        .await
        .unwrap();
    t.send(&encrypted).await.unwrap();
    let plain_id = plain.get_str("id").unwrap();
    let encrypted_id = encrypted.get_str("id").unwrap();

    let agent = live.onboard(FINANCE).await;
    agent.ping().await.unwrap();

    // Inbox, and decrypting what arrived.
    let page = agent.inbox(&Query::new().limit(10)).await.unwrap();
    assert_eq!(page.results.len(), 2, "{page:?}");
    assert!(!page.has_next);
    let entry = page
        .results
        .iter()
        .find(|e| e.id() == Some(encrypted_id))
        .unwrap();
    assert_eq!(entry.artifact.get_str("from"), Some(BILLING));
    assert!(!entry.seen());
    let decrypted = agent
        .decrypt(
            &entry.artifact,
            &[(Selector::parse("btps1").unwrap(), finance_key())],
        )
        .await
        .unwrap();
    assert!(decrypted.encrypted);
    assert_eq!(decrypted.document, invoice());
    assert_eq!(
        agent
            .inbox_seen(&[encrypted_id, "no-such-id"])
            .await
            .unwrap(),
        1
    );
    let page = agent.inbox(&Query::new()).await.unwrap();
    let entry = page
        .results
        .iter()
        .find(|e| e.id() == Some(encrypted_id))
        .unwrap();
    assert!(entry.seen());

    // Delete to the trash, then for good.
    assert_eq!(agent.inbox_delete(&[plain_id]).await.unwrap(), 1);
    assert_eq!(agent.inbox(&Query::new()).await.unwrap().results.len(), 1);
    let trash = agent.trash(&Query::new()).await.unwrap();
    assert!(
        trash.results.iter().any(|e| e.id() == Some(plain_id)),
        "{trash:?}"
    );
    assert_eq!(agent.trash_delete(&[plain_id]).await.unwrap(), 1);
    assert!(agent.trash(&Query::new()).await.unwrap().results.is_empty());

    // artifact.send lands in the owner's outbox; it can be cancelled.
    let queued = agent.send(&billing, invoice_object(), true).await.unwrap();
    assert!(!queued.already_accepted);
    let outbox = agent.outbox(&Query::new()).await.unwrap();
    let out = outbox
        .results
        .iter()
        .find(|e| e.id() == Some(queued.artifact_id.as_str()))
        .unwrap_or_else(|| panic!("{outbox:?}"));
    assert_eq!(out.artifact.get_str("from"), Some(FINANCE));
    assert_eq!(out.artifact.get_str("to"), Some(BILLING));
    assert!(out.artifact.get("document").unwrap().is_string());
    assert_eq!(
        agent
            .outbox_cancel(&[queued.artifact_id.as_str()])
            .await
            .unwrap(),
        vec![queued.artifact_id.clone()]
    );
    assert!(
        agent
            .sentbox(&Query::new())
            .await
            .unwrap()
            .results
            .is_empty()
    );
    assert_eq!(agent.sentbox_delete(&["nothing"]).await.unwrap(), 0);

    // Drafts.
    let draft = agent
        .draft_create(TransporterType::BtpsDoc, invoice_object())
        .await
        .unwrap();
    let drafts = agent.drafts(&Query::new()).await.unwrap();
    assert_eq!(drafts.results.len(), 1);
    assert_eq!(drafts.results[0].id(), Some(draft.as_str()));
    let mut changed = invoice_object();
    changed.insert("title", "Invoice INV-1001 (corrected)");
    assert_eq!(agent.draft_update(&draft, changed).await.unwrap(), 1);
    let drafts = agent.drafts(&Query::new()).await.unwrap();
    assert_eq!(
        drafts.results[0]
            .artifact
            .get_object("document")
            .and_then(|d| d.get_str("title")),
        Some("Invoice INV-1001 (corrected)")
    );
    assert_eq!(
        agent
            .draft_update("no-such-draft", invoice_object())
            .await
            .unwrap(),
        0
    );
    assert_eq!(agent.draft_delete(&[draft.as_str()]).await.unwrap(), 1);
    assert!(
        agent
            .drafts(&Query::new())
            .await
            .unwrap()
            .results
            .is_empty()
    );

    // Trust: a request to a new counterpart is recorded as the user's pending outgoing
    // record; responses and updates apply to the user's records.
    let partner: Identity = "partner$vendorcorp.test".parse().unwrap();
    let request = Object::new()
        .with("id", "trq-client-1")
        .with("name", "Buyer Finance")
        .with("reason", "to receive invoices")
        .with("phone", "+61 2 0000 0000")
        .with("email", "finance@buyer.test");
    let queued = agent.trust_request(&partner, request).await.unwrap();
    assert!(!queued.artifact_id.is_empty());
    let trust = agent.trust(&Query::new().limit(50)).await.unwrap();
    let outgoing = trust
        .outgoing
        .iter()
        .find(|r| r.receiver_id.eq_ignore_ascii_case(partner.as_str()))
        .unwrap_or_else(|| panic!("{trust:?}"));
    assert_eq!(outgoing.status, TrustStatus::Pending);
    assert!(
        trust
            .results
            .iter()
            .any(|r| r.sender_id.eq_ignore_ascii_case(BILLING)),
        "{trust:?}"
    );
    let response = Object::new()
        .with("id", "trq-2025-0001")
        .with("decision", "accepted")
        .with("decidedAt", live.now().to_datetime_string())
        .with("decidedBy", "finance@buyer.test");
    agent.trust_respond(&billing, response).await.unwrap();
    let revoke = Object::new()
        .with("id", "trs-client-1")
        .with("decision", "revoked")
        .with("decidedAt", live.now().to_datetime_string())
        .with("decidedBy", "finance@buyer.test");
    let incoming = trust_id(BILLING, FINANCE);
    assert_eq!(agent.trust_update(&incoming, revoke).await.unwrap(), 1);
    let record = live.h.store.get_trust(&incoming).await.unwrap().unwrap();
    assert_eq!(record.status, TrustStatus::Revoked);
    assert_eq!(
        agent
            .trust_delete(&[outgoing.id.as_str(), "unknown"])
            .await
            .unwrap(),
        1
    );
    assert!(
        live.h
            .store
            .get_trust(&outgoing.id)
            .await
            .unwrap()
            .is_none()
    );

    // Revoked trust: billing's next document is refused (403).
    let refused = t
        .send_document(TransporterType::BtpsDoc, finance, invoice_object(), false)
        .await;
    match refused {
        Err(e @ ClientError::Rejected { code: 403, .. }) => {
            assert!(!e.is_retryable());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn queued_artifacts_are_delivered_over_tls_by_the_worker() {
    let live = Live::start().await;
    crate::delivery::trust_finance(&live.h.store).await;
    let agent = live.onboard(FINANCE).await;
    let billing: Identity = BILLING.parse().unwrap();
    let queued = agent.send(&billing, invoice_object(), true).await.unwrap();
    assert!(!queued.already_accepted);

    // The worker's transport is btps-client: host record (overridden here), TLS, one line.
    let worker = DeliveryWorker::new(
        live.h.pipeline.clone(),
        Arc::new(ClientDeliver::new(live.client.clone())),
        DeliveryOptions::default(),
    )
    .unwrap();
    let report = worker.run_once(live.now()).await.unwrap();
    assert_eq!((report.claimed, report.delivered), (1, 1), "{report:?}");

    // The receiver stored it once, encrypted and delegated by the sender's service identity.
    let received = live
        .h
        .store
        .get_message(BILLING, Mailbox::Inbox, &queued.artifact_id)
        .await
        .unwrap()
        .expect("delivered to the recipient's inbox");
    let delegation = received.artifact.get_object("delegation").unwrap();
    assert_eq!(delegation.get_str("signedBy"), Some("server$buyer.test"));
    assert!(delegation.get_object("signature").is_some());
    assert!(received.artifact.get_object("encryption").is_some());
    let sent = live
        .h
        .store
        .get_message(FINANCE, Mailbox::Sentbox, &queued.artifact_id)
        .await
        .unwrap();
    assert!(sent.is_some(), "moved to the sender's sentbox");

    // The recipient's user decrypts it with its own key.
    let decrypted = btps_client::decrypt_artifact(
        live.client.dns(),
        &received.artifact,
        &[(
            Selector::parse("btps1").unwrap(),
            KeyPair::from_pem(&read_key("billing-btps1-private.pem")).unwrap(),
        )],
    )
    .await
    .unwrap();
    assert!(decrypted.encrypted);
    assert_eq!(decrypted.document, Value::Object(invoice_object()));

    // Nothing is left to deliver.
    let again = worker.run_once(live.now()).await.unwrap();
    assert_eq!(again.claimed, 0);
}
