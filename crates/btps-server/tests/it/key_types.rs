//! Key types and strength (PROTOCOL.md §4.2, §6.3, §6.6, §8, §9; docs/keys.md): Ed25519
//! device keys between Rust peers — delegated sends checked against `k=ed25519` DNS device
//! records, agents onboarded and rotated with Ed25519 keys — over TLS with a real DNS
//! server; `[keys] accept_ed25519 = false` refusing them; and RSA keys under 2048 bits
//! refused on every path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use btps_client::{
    Agent, AgentState, ClientError, Delegator, DeliveryStatus, DeviceSender, decrypt_artifact,
};
use btps_crypto::{KeyPair, KeyType, PublicKey, delegate, sign_in_place};
use btps_dns::{CacheConfig, DnsCache};
use btps_server::config::ServerConfig;
use btps_server::{
    ClientDeliver, DeliveryOptions, DeliveryWorker, LineHandler, Peer, Pipeline, PipelineOptions,
};
use btps_trust::{Mailbox, MessageStore, TrustRecord, TrustStore, trust_id};
use btps_types::artifact::TransporterType;
use btps_types::json::{Object, Value};
use btps_types::{ErrorCode, Identity, Selector, UnixMillis, signing};

use crate::build::{self, Parsed};
use crate::client::{BILLING, FINANCE, Live, invoice_object};
use crate::harness::{AGENT_ID, AUTH_TOKEN, TrustState, harness_dns, read_key, vector_options};

/// The device id of the delegated sends (a valid DNS label, §6.6).
const DEVICE_ID: &str = "btps_ag_3f6c1d2e-8a4b-4c5d-9e6f-7a8b9c0d1e2f";

/// A public RSA-1024 test key (`openssl genrsa 1024`); refused by default (§4.2).
const RSA_1024_PEM: &str = include_str!("../fixtures/rsa1024-public.pem");

fn now() -> UnixMillis {
    UnixMillis::from_system_time(SystemTime::now()).unwrap()
}

fn id(s: &str) -> Identity {
    s.parse().unwrap()
}

/// The options of a server configured with `[keys] accept_ed25519 = false`.
fn rsa_only() -> PipelineOptions {
    let config = ServerConfig::from_toml("[keys]\naccept_ed25519 = false\n").unwrap();
    PipelineOptions {
        key_policy: PipelineOptions::from_config(&config).key_policy,
        ..vector_options()
    }
}

/// A sender for `billing$vendorcorp.test` through device [`DEVICE_ID`] holding `device`,
/// delegated by the domain's service identity `admin$vendorcorp.test`.
async fn device_sender(live: &Live, device: KeyPair) -> DeviceSender {
    let delegator = Delegator::new(
        id("admin$vendorcorp.test"),
        Selector::parse("btps1").unwrap(),
        KeyPair::from_pem(&read_key("admin-vendorcorp-private.pem")).unwrap(),
        live.client.dns(),
    )
    .await
    .unwrap();
    DeviceSender::new(
        live.client.clone(),
        id(BILLING),
        DEVICE_ID,
        device,
        delegator,
    )
}

#[track_caller]
fn assert_refused<T: std::fmt::Debug>(result: Result<T, ClientError>, code: ErrorCode) {
    match result {
        Err(e @ ClientError::Rejected { .. }) => assert_eq!(e.error_code(), code, "{e}"),
        other => panic!("expected {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn an_ed25519_device_delegation_verifies_and_is_refused_once_removed_from_dns() {
    let live = Live::start().await;
    let dns = live.h.dns_server.as_ref().unwrap();
    let sender = device_sender(&live, KeyPair::generate_ed25519().unwrap()).await;
    let finance = id(FINANCE);

    // Without device records only the in-band delegation applies.
    let d = sender
        .send_document(
            TransporterType::BtpsDoc,
            finance.clone(),
            invoice_object(),
            false,
        )
        .await
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Accepted);

    // Publish the list and the device's k=ed25519 key record (TTL 1 s).
    let records = sender.device_records(1).unwrap();
    assert_eq!(records.len(), 2);
    assert!(
        records[1].text.starts_with("v=1.0.0;k=ed25519;p="),
        "{}",
        records[1].text
    );
    for r in &records {
        dns.add_txt(&r.name, r.ttl, &r.text).await;
    }
    live.h.pipeline.dns().clear();
    let listed = sender
        .send_document(
            TransporterType::BtpsDoc,
            finance.clone(),
            invoice_object(),
            true,
        )
        .await
        .unwrap();
    assert_eq!(listed.status, DeliveryStatus::Accepted);

    // Another Ed25519 key under the same device id does not match the published key.
    let impostor = device_sender(&live, KeyPair::generate_ed25519().unwrap()).await;
    assert_refused(
        impostor
            .send_document(
                TransporterType::BtpsDoc,
                finance.clone(),
                invoice_object(),
                false,
            )
            .await,
        ErrorCode::DelegationRevoked,
    );

    // Revocation: the device leaves the list; once the cached answer's TTL has passed it is
    // refused.
    let empty = btps_dns::delegation_list_zone_record::<&str>(&id(BILLING), &[], 1).unwrap();
    dns.replace_txt(&empty.name, 1, &empty.text).await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_refused(
        sender
            .send_document(TransporterType::BtpsDoc, finance, invoice_object(), false)
            .await,
        ErrorCode::DelegationRevoked,
    );
}

#[tokio::test]
async fn an_agent_with_an_ed25519_device_key_acts_rotates_and_its_sends_are_delivered() {
    let live = Live::start().await;
    crate::delivery::trust_finance(&live.h.store).await;
    let token = live.auth_token(FINANCE).await;
    let agent = Agent::onboard_with_key_type(
        live.client.clone(),
        live.addr.clone(),
        id(FINANCE),
        &token,
        None,
        KeyType::Ed25519,
    )
    .await
    .unwrap();
    assert_eq!(agent.device_key_type(), KeyType::Ed25519);
    let first = agent.state();
    let record_id = trust_id(&first.agent_id, FINANCE);
    let record = live.h.store.get_trust(&record_id).await.unwrap().unwrap();
    let stored = PublicKey::from_base64_spki(&record.public_key_base64).unwrap();
    assert_eq!(stored.key_type(), KeyType::Ed25519);
    assert_eq!(
        stored,
        *KeyPair::from_pem(&first.device_key_pem)
            .unwrap()
            .public_key()
    );

    // Actions signed with the Ed25519 device key.
    agent.ping().await.unwrap();
    agent
        .inbox(&btps_client::Query::new().limit(5))
        .await
        .unwrap();
    let queued = agent
        .send(&id(BILLING), invoice_object(), true)
        .await
        .unwrap();
    assert!(!queued.already_accepted);

    // Delivered by the worker: the receiver verifies the Ed25519 device signature inside
    // the service identity's delegation, and so does the recipient's client.
    let worker = DeliveryWorker::new(
        live.h.pipeline.clone(),
        Arc::new(ClientDeliver::new(live.client.clone())),
        DeliveryOptions::default(),
    )
    .unwrap();
    let report = worker.run_once(live.now()).await.unwrap();
    assert_eq!((report.claimed, report.delivered), (1, 1), "{report:?}");
    let received = live
        .h
        .store
        .get_message(BILLING, Mailbox::Inbox, &queued.artifact_id)
        .await
        .unwrap()
        .expect("delivered");
    let delegation = received.artifact.get_object("delegation").unwrap();
    let agent_pub_key = PublicKey::from_pem(delegation.get_str("agentPubKey").unwrap()).unwrap();
    assert_eq!(agent_pub_key.key_type(), KeyType::Ed25519);
    let decrypted = decrypt_artifact(
        live.client.dns(),
        &received.artifact,
        &[(
            Selector::parse("btps1").unwrap(),
            KeyPair::from_pem(&read_key("billing-btps1-private.pem")).unwrap(),
        )],
    )
    .await
    .unwrap();
    assert_eq!(decrypted.document, Value::Object(invoice_object()));

    // Key rotation keeps the type unless asked; the old key goes to the key history.
    let second = agent.rotate_device_key(None).await.unwrap();
    assert_eq!(agent.device_key_type(), KeyType::Ed25519);
    assert_ne!(second.device_key_pem, first.device_key_pem);
    assert_ne!(second.refresh_token, first.refresh_token);
    agent.ping().await.unwrap();
    let third = agent.rotate_device_key(Some(KeyType::Rsa)).await.unwrap();
    assert_eq!(agent.device_key_type(), KeyType::Rsa);
    agent.ping().await.unwrap();
    let record = live.h.store.get_trust(&record_id).await.unwrap().unwrap();
    assert_eq!(record.key_history.len(), 2);
    assert_eq!(
        record.public_key_fingerprint,
        KeyPair::from_pem(&third.device_key_pem)
            .unwrap()
            .public_key()
            .fingerprint()
    );
    // The saved state resumes with the rotated key.
    let resumed = Agent::resume(live.client.clone(), third).unwrap();
    resumed.ping().await.unwrap();
}

#[tokio::test]
async fn accept_ed25519_false_refuses_ed25519_device_keys() {
    let live = Live::start_with(rsa_only()).await;

    // Onboarding with an Ed25519 key: no valid public key; the token is not spent.
    let token = live.auth_token(FINANCE).await;
    let refused = Agent::onboard_with_key_type(
        live.client.clone(),
        live.addr.clone(),
        id(FINANCE),
        &token,
        None,
        KeyType::Ed25519,
    )
    .await;
    assert_refused(refused, ErrorCode::ResolvePubkey);
    let agent = Agent::onboard(
        live.client.clone(),
        live.addr.clone(),
        id(FINANCE),
        &token,
        None,
    )
    .await
    .unwrap();

    // Rotating to Ed25519 is refused too; the agent keeps its key and refresh token.
    let before = agent.state();
    assert_refused(
        agent.rotate_device_key(Some(KeyType::Ed25519)).await,
        ErrorCode::ResolvePubkey,
    );
    assert_eq!(agent.state(), before);
    assert_eq!(agent.device_key_type(), KeyType::Rsa);
    agent.ping().await.unwrap();
    agent.refresh().await.unwrap();

    // An Ed25519 agent registered before the switch was turned off is refused.
    let device = KeyPair::generate_ed25519().unwrap();
    let agent_id = "btps_ag_6a1f0c3b-5d2e-4f7a-8b9c-0d1e2f3a4b5c";
    let now = live.now();
    let record = TrustRecord::new_agent(
        agent_id,
        FINANCE,
        &device.public_key().to_base64_spki(),
        device.public_key().fingerprint(),
        "test",
        None,
        now,
        7 * 24 * 3600 * 1000,
    );
    live.h.store.put_trust(&record).await.unwrap();
    let old = Agent::resume(
        live.client.clone(),
        AgentState {
            server: live.addr.clone(),
            identity: id(FINANCE),
            agent_id: agent_id.to_owned(),
            device_key_pem: device.to_pkcs8_pem().unwrap(),
            refresh_token: "unused".to_owned(),
            expires_at: now.saturating_add_millis(24 * 3600 * 1000),
            decrypt_by: id(FINANCE),
        },
    )
    .unwrap();
    assert_refused(old.ping().await, ErrorCode::ResolvePubkey);

    // A delegated send with an Ed25519 device key.
    let sender = device_sender(&live, KeyPair::generate_ed25519().unwrap()).await;
    assert_refused(
        sender
            .send_document(
                TransporterType::BtpsDoc,
                id(FINANCE),
                invoice_object(),
                false,
            )
            .await,
        ErrorCode::ResolvePubkey,
    );
    // RSA device keys still go through.
    let rsa = device_sender(&live, KeyPair::generate_rsa2048().unwrap()).await;
    let d = rsa
        .send_document(
            TransporterType::BtpsDoc,
            id(FINANCE),
            invoice_object(),
            false,
        )
        .await
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Accepted);

    // DNS device records with k=ed25519 are unusable to a cache with that policy.
    let dns_server = live.h.dns_server.as_ref().unwrap();
    let records = sender.device_records(60).unwrap();
    for r in &records {
        dns_server.add_txt(&r.name, r.ttl, &r.text).await;
    }
    let mut config = CacheConfig::default();
    config.key_policy = rsa_only().key_policy;
    let strict = DnsCache::with_config(dns_server.resolver(), config);
    let err = strict
        .device_keys(&id(BILLING), DEVICE_ID)
        .await
        .unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::ResolvePubkey, "{err}");
    assert_eq!(
        live.client
            .dns()
            .device_keys(&id(BILLING), DEVICE_ID)
            .await
            .unwrap()[0]
            .key_type(),
        KeyType::Ed25519
    );
}

// --- RSA under 2048 bits (PROTOCOL.md §4.2) ---------------------------------------------

fn peer() -> Peer {
    Peer {
        addr: SocketAddr::from(([127, 0, 0, 1], 40002)),
        connection: 9,
    }
}

async fn send(p: &Pipeline, line: &str) -> Parsed {
    let h = p.handle(line.as_bytes(), &peer()).await;
    Parsed::new(String::from_utf8(h.reply.unwrap()).unwrap().trim_end())
}

/// `{identity, authToken, publicKey}`.
fn auth_document(token: &str, public_key: &str) -> Value {
    Value::Object(
        Object::new()
            .with("identity", FINANCE)
            .with("authToken", token)
            .with("publicKey", public_key),
    )
}

#[tokio::test]
async fn rsa_keys_under_2048_bits_are_refused_on_every_path() {
    let refresh = "r".repeat(43);
    let h = harness_dns(
        now(),
        TrustState::Accepted,
        Some(&refresh),
        vector_options(),
        true,
    )
    .await;
    h.clock.set(now());
    let small = PublicKey::from_pem(RSA_1024_PEM);
    assert!(
        matches!(small, Err(btps_crypto::CryptoError::KeySize { bits: 1024 })),
        "{small:?}"
    );
    let small_b64: String = RSA_1024_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();

    // A DNS identity key of 1024 bits: no valid public key, before any signature check.
    let dns = h.dns_server.as_ref().unwrap();
    dns.add_txt(
        "weak._btps.identity.billing.vendorcorp.test",
        60,
        &format!("v=1.0.0;k=rsa;p={small_b64}"),
    )
    .await;
    let mut doc = build::transporter(
        "BTPS_DOC",
        BILLING,
        FINANCE,
        "weak-1",
        now(),
        build::invoice(),
        &build::billing_key(),
    );
    doc.insert("selector", "weak");
    let r = send(&h.pipeline, &build::line(&doc)).await;
    assert_eq!(
        r.error_code(),
        Some("BTP_ERROR_RESOLVE_PUBKEY"),
        "{:?}",
        r.obj
    );

    // auth.request with a 1024-bit device key; the auth token is not spent.
    let signer = KeyPair::generate_rsa2048().unwrap();
    let line = build::agent(
        "auth.request",
        "temp",
        FINANCE,
        Some(auth_document(AUTH_TOKEN, RSA_1024_PEM)),
        "weak-auth-1",
        now(),
        &signer,
    );
    let r = send(&h.pipeline, &line).await;
    assert_eq!(
        r.error_code(),
        Some("BTP_ERROR_RESOLVE_PUBKEY"),
        "{:?}",
        r.obj
    );
    let good = build::agent(
        "auth.request",
        "temp",
        FINANCE,
        Some(auth_document(
            AUTH_TOKEN,
            &signer.public_key().to_pem_with_newline(),
        )),
        "weak-auth-2",
        now(),
        &signer,
    );
    let r = send(&h.pipeline, &good).await;
    assert!(r.ok(), "{:?}", r.obj);

    // auth.refresh rotating to a 1024-bit key; the refresh token is not spent.
    let line = build::agent(
        "auth.refresh",
        AGENT_ID,
        FINANCE,
        Some(auth_document(&refresh, RSA_1024_PEM)),
        "weak-refresh-1",
        now(),
        &signer,
    );
    let r = send(&h.pipeline, &line).await;
    assert_eq!(
        r.error_code(),
        Some("BTP_ERROR_RESOLVE_PUBKEY"),
        "{:?}",
        r.obj
    );
    let line = build::agent(
        "auth.refresh",
        AGENT_ID,
        FINANCE,
        Some(auth_document(
            &refresh,
            &build::device_key().public_key().to_pem_with_newline(),
        )),
        "weak-refresh-2",
        now(),
        &build::device_key(),
    );
    let r = send(&h.pipeline, &line).await;
    assert!(r.ok(), "{:?}", r.obj);

    // A delegation whose agentPubKey is 1024 bits.
    let device = build::device_key();
    let mut a = Object::new()
        .with("version", "1.0.0")
        .with("type", "BTPS_DOC")
        .with("from", BILLING)
        .with("to", FINANCE)
        .with("selector", "btps1")
        .with("id", "weak-del-1")
        .with("issuedAt", now().to_datetime_string())
        .with("document", build::invoice())
        .with("encryption", Value::Null);
    sign_in_place(&mut a, signing::DEVICE, &device).unwrap();
    delegate(
        &mut a,
        AGENT_ID,
        &device.public_key().to_pem(),
        &id("admin$vendorcorp.test"),
        &Selector::parse("btps1").unwrap(),
        &now().to_datetime_string(),
        &KeyPair::from_pem(&read_key("admin-vendorcorp-private.pem")).unwrap(),
    )
    .unwrap();
    let r = send(&h.pipeline, &build::line(&a)).await;
    assert!(r.ok(), "the RSA-2048 device: {:?}", r.obj);
    let mut weak = a.clone();
    weak.insert("id", "weak-del-2");
    if let Some(Value::Object(d)) = weak.get_mut("delegation") {
        d.insert("agentPubKey", RSA_1024_PEM);
    }
    let r = send(&h.pipeline, &build::line(&weak)).await;
    assert_eq!(
        r.error_code(),
        Some("BTP_ERROR_RESOLVE_PUBKEY"),
        "{:?}",
        r.obj
    );
}
