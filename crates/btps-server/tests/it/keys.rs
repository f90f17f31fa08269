//! Key lifecycle (docs/keys.md) over real DNS and real HTTPS: pinned trust refuses a DNS
//! key swap without a valid rotation proof and accepts one with it (in-band, or fetched
//! from the sender's `.well-known` listener); a server switches its signing key once DNS
//! serves the new selector, with artifacts signed before the switch still accepted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use btps_client::{
    Client, ClientConfig, KeyRing, KeyState, ServerAddr, TlsTrust, WellKnownClient, WellKnownConfig,
};
use btps_crypto::{KeyPair, KeyType, RotationProof, RotationTerms, sign_in_place};
use btps_dns::{CacheConfig, DnsCache};
use btps_server::config::{Limits, Timeouts};
use btps_server::{
    KeyRotation, KeyRotationOptions, LineHandler, Peer, Pipeline, Server, ServerConfig, Shutdown,
    TlsReloader, TlsSettings, Transport, WellKnownProofs,
};
use btps_trust::{IdentityStore, TrustRecord, TrustStore, trust_id};
use btps_types::json::{Object, Value};
use btps_types::{Identity, Selector, UnixMillis, signing};
use tokio::net::TcpListener;

use crate::build::{self, Parsed};
use crate::harness::{TrustState, harness_configured, harness_dns, read_key, vector_options};

const FROM: &str = "billing$vendorcorp.test";
const TO: &str = "finance$buyer.test";
const DAY: i64 = 86_400_000;

fn now() -> UnixMillis {
    UnixMillis::from_system_time(SystemTime::now()).unwrap()
}

fn peer() -> Peer {
    Peer {
        addr: SocketAddr::from(([127, 0, 0, 1], 40002)),
        connection: 9,
    }
}

async fn send(p: &Pipeline, obj: &Object) -> Parsed {
    let h = p.handle(build::line(obj).as_bytes(), &peer()).await;
    Parsed::new(String::from_utf8(h.reply.unwrap()).unwrap().trim_end())
}

fn from() -> Identity {
    FROM.parse().unwrap()
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

/// A plain `BTPS_DOC` from `FROM` signed by `key` at `selector`, optionally carrying `proof`
/// in-band.
fn doc(id: &str, at: UnixMillis, key: &KeyPair, selector: &str, proof: Option<&Object>) -> Object {
    let mut a = Object::new()
        .with("version", "1.0.0")
        .with("type", "BTPS_DOC")
        .with("from", FROM)
        .with("to", TO)
        .with("selector", selector)
        .with("id", id)
        .with("issuedAt", at.to_datetime_string())
        .with("document", build::invoice())
        .with("encryption", Value::Null);
    if let Some(p) = proof {
        a.insert(btps_crypto::IN_BAND_MEMBER, p.clone());
    }
    sign_in_place(&mut a, signing::TRANSPORTER, key).unwrap();
    a
}

fn proof(old: &KeyPair, new: &KeyPair, from_ms: UnixMillis, until_ms: UnixMillis) -> RotationProof {
    RotationProof::create(
        RotationTerms {
            identity: &from(),
            old_selector: &sel("btps1"),
            new_selector: &sel("btps2"),
            new_key: new.public_key(),
            issued_at: from_ms,
            valid_from: from_ms,
            valid_until: until_ms,
        },
        old,
    )
    .unwrap()
}

async fn lock(store: &dyn TrustStore, allow_rotation: bool) -> TrustRecord {
    let id = trust_id(FROM, TO);
    let r = store
        .get_trust(&id)
        .await
        .unwrap()
        .unwrap()
        .with_lock(true, allow_rotation);
    store.put_trust(&r).await.unwrap();
    r
}

#[tokio::test]
async fn locked_trust_refuses_a_swapped_key_without_a_valid_proof() {
    let t = now();
    let h = harness_dns(t, TrustState::Accepted, None, vector_options(), true).await;
    h.clock.set(t);
    let dns = h.dns_server.as_ref().unwrap();
    let old = build::billing_key();
    let new = KeyPair::generate_rsa2048().unwrap();
    let pinned = lock(&*h.store, true).await;
    // The attacker (or the owner) publishes another key at a new selector.
    let (name, txt) =
        btps_client::keyring::publish_record(&from(), &sel("btps2"), new.public_key());
    dns.add_txt(&name, 300, &txt).await;

    let r = send(&h.pipeline, &doc("k-1", t, &new, "btps2", None)).await;
    assert_eq!(
        r.error_code(),
        Some("BTP_ERROR_SIG_MISMATCH"),
        "{:?}",
        r.obj
    );

    // A proof not signed by the pinned key (here: by the new key itself).
    let forged = proof(&new, &new_other(), t, t.saturating_add_millis(DAY));
    let mut forged_obj = forged.as_object().clone();
    forged_obj.insert("oldPublicKeyFingerprint", old.public_key().fingerprint());
    forged_obj.insert("newPublicKey", new.public_key().to_base64_spki());
    forged_obj.insert("newPublicKeyFingerprint", new.public_key().fingerprint());
    let r = send(
        &h.pipeline,
        &doc("k-2", t, &new, "btps2", Some(&forged_obj)),
    )
    .await;
    assert_eq!(
        r.error_code(),
        Some("BTP_ERROR_SIG_MISMATCH"),
        "forged: {:?}",
        r.obj
    );

    // A genuine proof that has expired.
    let expired = proof(
        &old,
        &new,
        t.saturating_add_millis(-2 * DAY),
        t.saturating_add_millis(-DAY),
    );
    let r = send(
        &h.pipeline,
        &doc("k-3", t, &new, "btps2", Some(expired.as_object())),
    )
    .await;
    assert_eq!(
        r.error_code(),
        Some("BTP_ERROR_SIG_MISMATCH"),
        "expired: {:?}",
        r.obj
    );
    let unchanged = h.store.get_trust(&pinned.id).await.unwrap().unwrap();
    assert_eq!(
        unchanged.public_key_fingerprint,
        old.public_key().fingerprint()
    );

    // A valid proof in-band: accepted, and the rotation recorded.
    let valid = proof(
        &old,
        &new,
        t.saturating_add_millis(-1000),
        t.saturating_add_millis(DAY),
    );
    let r = send(
        &h.pipeline,
        &doc("k-4", t, &new, "btps2", Some(valid.as_object())),
    )
    .await;
    assert!(r.ok(), "{:?}", r.obj);
    let rotated = h.store.get_trust(&pinned.id).await.unwrap().unwrap();
    assert_eq!(
        rotated.public_key_fingerprint,
        new.public_key().fingerprint()
    );
    assert!(rotated.locked_trust);
    assert_eq!(rotated.rotation_history.len(), 1);
    assert_eq!(rotated.rotation_history[0].source, "in-band");
    assert_eq!(
        rotated.rotation_history[0].old_fingerprint,
        old.public_key().fingerprint()
    );
    assert_eq!(
        rotated.key_history.last().unwrap().fingerprint,
        old.public_key().fingerprint()
    );

    // From now on the new key is the pinned one: no proof needed. An artifact the old key
    // signed before the rotation was accepted (in flight) is still accepted; one it signs
    // afterwards is refused.
    let r = send(&h.pipeline, &doc("k-5", t, &new, "btps2", None)).await;
    assert!(r.ok(), "{:?}", r.obj);
    let in_flight = doc("k-6", t.saturating_add_millis(-5000), &old, "btps1", None);
    let r = send(&h.pipeline, &in_flight).await;
    assert!(r.ok(), "in flight: {:?}", r.obj);
    h.clock.set(t.saturating_add_millis(1000));
    let late = doc("k-7", t.saturating_add_millis(1000), &old, "btps1", None);
    let r = send(&h.pipeline, &late).await;
    assert_eq!(
        r.error_code(),
        Some("BTP_ERROR_SIG_MISMATCH"),
        "{:?}",
        r.obj
    );
    let still = h.store.get_trust(&pinned.id).await.unwrap().unwrap();
    assert_eq!(still.public_key_fingerprint, new.public_key().fingerprint());
}

fn new_other() -> KeyPair {
    KeyPair::generate_ed25519().unwrap()
}

#[tokio::test]
async fn locked_trust_without_rotation_refuses_even_a_valid_proof_and_unlocked_trust_follows_dns() {
    let t = now();
    let h = harness_dns(t, TrustState::Accepted, None, vector_options(), true).await;
    h.clock.set(t);
    let dns = h.dns_server.as_ref().unwrap();
    let old = build::billing_key();
    let new = KeyPair::generate_rsa2048().unwrap();
    let (name, txt) =
        btps_client::keyring::publish_record(&from(), &sel("btps2"), new.public_key());
    dns.add_txt(&name, 300, &txt).await;
    let valid = proof(
        &old,
        &new,
        t.saturating_add_millis(-1000),
        t.saturating_add_millis(DAY),
    );

    lock(&*h.store, false).await;
    let r = send(
        &h.pipeline,
        &doc("n-1", t, &new, "btps2", Some(valid.as_object())),
    )
    .await;
    assert_eq!(
        r.error_code(),
        Some("BTP_ERROR_SIG_MISMATCH"),
        "{:?}",
        r.obj
    );

    // Unlocked (the default): DNS is authoritative; the change goes to keyHistory.
    let id = trust_id(FROM, TO);
    let r0 = h
        .store
        .get_trust(&id)
        .await
        .unwrap()
        .unwrap()
        .with_lock(false, false);
    h.store.put_trust(&r0).await.unwrap();
    let r = send(&h.pipeline, &doc("n-2", t, &new, "btps2", None)).await;
    assert!(r.ok(), "{:?}", r.obj);
    let after = h.store.get_trust(&id).await.unwrap().unwrap();
    assert_eq!(after.public_key_fingerprint, new.public_key().fingerprint());
    assert!(after.rotation_history.is_empty());
    assert_eq!(after.key_history.len(), 1);
}

/// A sender-side server: its key ring publishes the proofs at
/// `https://…/.well-known/btp-key-rotation.json` (and the trust list when enabled).
struct SenderServer {
    shutdown: Shutdown,
    well_known: String,
    cert: Vec<u8>,
    _dir: tempfile::TempDir,
    _h: crate::harness::Harness,
}

impl SenderServer {
    async fn start(keyring: KeyRing, publish_trust: bool) -> Self {
        let t = now();
        let h = harness_dns(t, TrustState::Accepted, None, vector_options(), false).await;
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsReloader::load(TlsSettings {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            self_signed: true,
            self_signed_names: vec!["localhost".into()],
        })
        .unwrap();
        let mut config = ServerConfig::default();
        config.http.publish_trust = publish_trust;
        config.key_rotation.check_interval_secs = 3600;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let wk = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let well_known = format!("https://localhost:{}", wk.local_addr().unwrap().port());
        let server = Server::new(config, h.pipeline.clone(), tls)
            .with_keyring(keyring)
            .with_well_known_listener(wk);
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        tokio::spawn(async move { server.run(listener, None, stop, None).await });
        let cert = std::fs::read(dir.path().join("cert.pem")).unwrap();
        Self {
            shutdown,
            well_known,
            cert,
            _dir: dir,
            _h: h,
        }
    }

    fn client(&self) -> WellKnownClient {
        let mut config = WellKnownConfig {
            trust: TlsTrust::CaPem(self.cert.clone()),
            ..WellKnownConfig::default()
        };
        config
            .overrides
            .insert("vendorcorp.test".into(), self.well_known.clone());
        WellKnownClient::new(config).unwrap()
    }
}

impl Drop for SenderServer {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

#[tokio::test]
async fn a_rotation_proof_is_fetched_from_the_senders_well_known_listener() {
    let t = now();
    // The sender rotates billing's key in its key ring (as `btps key rotate` does).
    let ring_dir = tempfile::tempdir().unwrap();
    let ring = KeyRing::new(ring_dir.path());
    let old = build::billing_key();
    ring.import(&from(), &sel("btps1"), &old, None, t).unwrap();
    let plan = ring
        .rotate(
            &from(),
            None,
            KeyType::Rsa,
            Duration::from_secs(86_400),
            t.saturating_add_millis(-1000),
        )
        .unwrap();
    let sender = SenderServer::start(ring.clone(), true).await;

    // The document is served over HTTPS with the proof; the trust list has no private fields.
    let body = sender
        .client()
        .get(&format!(
            "{}{}",
            sender.well_known,
            btps_client::KEY_ROTATION_PATH
        ))
        .await
        .unwrap();
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains(plan.proof.new_key().fingerprint()), "{text}");
    let list = sender
        .client()
        .get(&format!(
            "{}{}",
            sender.well_known,
            btps_client::TRUST_LIST_PATH
        ))
        .await
        .unwrap();
    let list = String::from_utf8(list).unwrap();
    assert!(
        list.contains("\"senderId\":\"billing$vendorcorp.test\""),
        "{list}"
    );
    for private in ["publicKeyBase64", "keyHistory", "metadata", "btps_ag_"] {
        assert!(!list.contains(private), "{private} in {list}");
    }
    // Anything else is not served on the public listener.
    let e = sender
        .client()
        .get(&format!("{}/metrics", sender.well_known))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");

    // The receiver pins billing's key and fetches proofs from the sender's listener.
    let source = Arc::new(WellKnownProofs::new(sender.client()));
    let h = harness_configured(t, TrustState::Accepted, None, vector_options(), true, |p| {
        p.with_proof_source(source)
    })
    .await;
    h.clock.set(t);
    lock(&*h.store, true).await;
    let new = ring.decryption_keys(&from()).unwrap();
    let (_, new_key) = new
        .into_iter()
        .find(|(s, _)| *s == plan.new_selector)
        .unwrap();
    let (name, txt) = &plan.record;
    h.dns_server.as_ref().unwrap().add_txt(name, 300, txt).await;
    let r = send(
        &h.pipeline,
        &doc("w-1", t, &new_key, plan.new_selector.as_str(), None),
    )
    .await;
    assert!(r.ok(), "{:?}", r.obj);
    let rec = h
        .store
        .get_trust(&trust_id(FROM, TO))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        rec.public_key_fingerprint,
        new_key.public_key().fingerprint()
    );
    assert_eq!(rec.rotation_history[0].source, "well-known");

    // A sender whose domain publishes nothing usable stays refused.
    let stranger = KeyPair::generate_rsa2048().unwrap();
    let (name, txt) =
        btps_client::keyring::publish_record(&from(), &sel("btps3"), stranger.public_key());
    h.dns_server
        .as_ref()
        .unwrap()
        .add_txt(&name, 300, &txt)
        .await;
    let r = send(&h.pipeline, &doc("w-2", t, &stranger, "btps3", None)).await;
    assert_eq!(
        r.error_code(),
        Some("BTP_ERROR_SIG_MISMATCH"),
        "{:?}",
        r.obj
    );
}

#[tokio::test]
async fn a_server_switches_its_signing_key_once_dns_serves_it() {
    let t = now();
    let h = harness_dns(t, TrustState::Accepted, None, vector_options(), true).await;
    h.clock.set(t);
    let dns = h.dns_server.as_ref().unwrap();
    let server_id: Identity = "server$buyer.test".parse().unwrap();
    let ring_dir = tempfile::tempdir().unwrap();
    let ring = KeyRing::new(ring_dir.path());
    let old = KeyPair::from_pem(&read_key("server-buyer-private.pem")).unwrap();
    ring.import(&server_id, &sel("btps1"), &old, None, t)
        .unwrap();
    h.store
        .put_identity(&btps_trust::IdentityRecord::new(
            server_id.clone(),
            btps_trust::IdentityKey::rsa("btps1", &old.public_key().to_pem(), t),
        ))
        .await
        .unwrap();
    let grace = Duration::from_secs(3600);
    let rotation = KeyRotation::new(
        h.pipeline.clone(),
        ring.clone(),
        KeyRotationOptions {
            grace,
            interval: Duration::from_secs(3600),
        },
    );
    assert!(rotation.check().await.unwrap().is_empty());

    // Serve the pipeline over TLS for a client that verifies signed lookups.
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsReloader::load(TlsSettings {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
        self_signed: true,
        self_signed_names: vec!["localhost".into()],
    })
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: ServerAddr = format!("localhost:{}", listener.local_addr().unwrap().port())
        .parse()
        .unwrap();
    let handler: Arc<dyn LineHandler> = h.pipeline.clone();
    let shutdown = Shutdown::new();
    tokio::spawn(
        Transport::new(tls, handler, Limits::default(), Timeouts::default())
            .serve(listener, shutdown.clone()),
    );
    let client = Client::new(
        ClientConfig {
            tls: TlsTrust::CaPem(std::fs::read(dir.path().join("cert.pem")).unwrap()),
            ..ClientConfig::default()
        }
        .with_override("buyer.test", addr.clone()),
        DnsCache::with_config(dns.resolver(), CacheConfig::no_caching()),
    )
    .unwrap();
    let finance: Identity = TO.parse().unwrap();
    let signing = |p: &Pipeline| {
        p.signing_identities()
            .into_iter()
            .find(|(i, _)| i == "server$buyer.test")
            .map(|(_, s)| s)
            .unwrap()
    };
    // The signed lookup reply verifies against DNS(signedBy, selector).
    let finance_key = client
        .lookup_identity(&finance, Some(&sel("btps1")))
        .await
        .unwrap();
    assert_eq!(signing(&h.pipeline), "btps1");

    // Rotation started: pending until DNS serves the new record.
    let plan = ring
        .rotate(
            &server_id,
            None,
            KeyType::Rsa,
            Duration::from_secs(86_400),
            t,
        )
        .unwrap();
    h.pipeline.dns().clear();
    assert!(rotation.check().await.unwrap().is_empty());
    assert_eq!(
        ring.identity(&server_id)
            .unwrap()
            .pending()
            .unwrap()
            .selector,
        plan.new_selector
    );

    // An artifact delegated before the switch is in flight; the record is published.
    let (name, txt) = &plan.record;
    dns.add_txt(name, 300, txt).await;
    h.pipeline.dns().clear();
    assert_eq!(rotation.check().await.unwrap(), ["server$buyer.test"]);
    let keys = ring.identity(&server_id).unwrap();
    assert_eq!(keys.active().unwrap().selector, plan.new_selector);
    let retiring = keys
        .keys
        .iter()
        .find(|k| k.state == KeyState::Retiring)
        .unwrap();
    assert_eq!(retiring.selector.as_str(), "btps1");
    assert!(retiring.retire_after.is_some());

    // Lookups are now signed with the new selector and verify against DNS; the identity
    // store has the new key as current.
    assert_eq!(signing(&h.pipeline), plan.new_selector.as_str());
    let after = client
        .lookup_identity(&finance, Some(&sel("btps1")))
        .await
        .unwrap();
    assert_eq!(after, finance_key);
    let record = h
        .store
        .get_identity("server$buyer.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.current_selector, plan.new_selector.as_str());
    assert!(record.key("btps1").is_some(), "the old key is kept");
    // Idempotent.
    assert!(rotation.check().await.unwrap().is_empty());
    // The old key is still published during the grace period: what it signed before the
    // switch (replies, delegations in flight) still verifies.
    let old_keys = h
        .pipeline
        .dns()
        .identity_keys(&server_id, "btps1")
        .await
        .unwrap();
    assert!(
        old_keys
            .iter()
            .any(|k| k.fingerprint() == old.public_key().fingerprint())
    );
    shutdown.trigger();
}
