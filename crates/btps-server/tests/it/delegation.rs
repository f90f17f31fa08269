//! Delegated artifacts over real DNS: the SaaS delegation and the DNS device check (§6.6):
//! a device removed from its identity's delegation list is refused once the cached answer
//! expires. Also the delivery log.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use btps_crypto::{KeyPair, attest, delegate, sign_in_place};
use btps_server::config::Attestors;
use btps_server::{DeliveryLog, LineHandler, Peer, Pipeline, PipelineOptions, Stores};
use btps_trust::MessageStore;
use btps_types::json::{Object, Value};
use btps_types::{Identity, Selector, UnixMillis, signing};

use crate::build::{self, Parsed};
use crate::harness::{AGENT_ID, TrustState, harness_dns, read_key, vector_options};

const FROM: &str = "billing$vendorcorp.test";
const TO: &str = "finance$buyer.test";

fn peer() -> Peer {
    Peer {
        addr: SocketAddr::from(([127, 0, 0, 1], 40001)),
        connection: 7,
    }
}

async fn send(p: &Pipeline, line: &str) -> Parsed {
    let h = p.handle(line.as_bytes(), &peer()).await;
    Parsed::new(String::from_utf8(h.reply.unwrap()).unwrap().trim_end())
}

/// A `BTPS_DOC` from `FROM` signed by the device, delegated by `admin$vendorcorp.test`.
fn delegated(id: &str, now: UnixMillis, device: &KeyPair) -> String {
    build::line(&delegated_object(
        id,
        now,
        device,
        "admin$vendorcorp.test",
        "admin-vendorcorp-private.pem",
    ))
}

/// A `BTPS_DOC` from `FROM` signed by the device, delegated by `FROM` itself and attested by
/// `attest$trustauthority.test` (the custom-domain case of §9.4).
fn self_delegated_attested(id: &str, now: UnixMillis, device: &KeyPair) -> String {
    let mut a = delegated_object(id, now, device, FROM, "billing-btps1-private.pem");
    let attestor = KeyPair::from_pem(&read_key("attest-trustauthority-private.pem")).unwrap();
    attest(
        &mut a,
        &"attest$trustauthority.test".parse::<Identity>().unwrap(),
        &Selector::parse("btps1").unwrap(),
        &now.to_datetime_string(),
        &attestor,
    )
    .unwrap();
    build::line(&a)
}

fn delegated_object(
    id: &str,
    now: UnixMillis,
    device: &KeyPair,
    delegator: &str,
    delegator_key: &str,
) -> Object {
    let mut a = Object::new()
        .with("version", "1.0.0")
        .with("type", "BTPS_DOC")
        .with("from", FROM)
        .with("to", TO)
        .with("selector", "btps1")
        .with("id", id)
        .with("issuedAt", now.to_datetime_string())
        .with("document", build::invoice())
        .with("encryption", Value::Null);
    sign_in_place(&mut a, signing::DEVICE, device).unwrap();
    let key = KeyPair::from_pem(&read_key(delegator_key)).unwrap();
    delegate(
        &mut a,
        AGENT_ID,
        &device.public_key().to_pem(),
        &delegator.parse::<Identity>().unwrap(),
        &Selector::parse("btps1").unwrap(),
        &now.to_datetime_string(),
        &key,
    )
    .unwrap();
    a
}

fn now() -> UnixMillis {
    UnixMillis::from_system_time(SystemTime::now()).unwrap()
}

#[tokio::test]
async fn a_device_removed_from_dns_is_refused_after_the_ttl() {
    let h = harness_dns(now(), TrustState::Accepted, None, vector_options(), true).await;
    h.clock.set(now());
    let device = build::device_key();
    let dns = h.dns_server.as_ref().unwrap();
    let from: Identity = FROM.parse().unwrap();

    // Without published device records only the in-band delegation applies.
    let r = send(&h.pipeline, &delegated("dl-0", now(), &device)).await;
    assert!(r.ok(), "{:?}", r.obj);

    // Publish the delegation list and the device key (TTL 1 s).
    let list = btps_dns::delegation_list_zone_record(&from, &[AGENT_ID], 1).unwrap();
    let rec = btps_dns::device_zone_record(&from, AGENT_ID, device.public_key(), 1).unwrap();
    dns.add_txt(&list.name, 1, &list.text).await;
    dns.add_txt(&rec.name, 1, &rec.text).await;
    h.pipeline.dns().clear();
    let r = send(&h.pipeline, &delegated("dl-1", now(), &device)).await;
    assert!(r.ok(), "listed device: {:?}", r.obj);

    // Another device key under the same id: refused.
    let other = KeyPair::generate_rsa2048().unwrap();
    let r = send(&h.pipeline, &delegated("dl-2", now(), &other)).await;
    assert_eq!(r.error_code(), Some("BTP_ERROR_DELEGATION_REVOKED"));

    // Revocation: the device leaves the list; once the cached answer's TTL has passed the
    // device is refused.
    let empty = btps_dns::delegation_list_zone_record::<&str>(&from, &[], 1).unwrap();
    dns.replace_txt(&list.name, 1, &empty.text).await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    h.clock.set(now());
    let r = send(&h.pipeline, &delegated("dl-3", now(), &device)).await;
    assert_eq!(
        r.error_code(),
        Some("BTP_ERROR_DELEGATION_REVOKED"),
        "{:?}",
        r.obj
    );
    assert_eq!(r.status_code(), Some(403.0));
}

#[tokio::test]
async fn accepted_transporter_artifacts_go_to_the_delivery_log() {
    let h = harness_dns(now(), TrustState::Accepted, None, vector_options(), false).await;
    h.clock.set(now());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deliveries.jsonl");
    let table =
        btps_dns::StaticTable::load(&crate::harness::vectors_dir().join("dns.json")).unwrap();
    let p = Pipeline::new(
        Stores::from_backend(h.store.clone()),
        btps_dns::DnsCache::new(table),
        vector_options(),
    )
    .with_clock(h.clock.clone())
    .with_delivery_log(DeliveryLog::open(&path).unwrap());
    let a = build::doc_line(FROM, TO, "log-1", now());
    let b = build::doc_line(FROM, TO, "log-2", now());
    assert!(send(&p, &a).await.ok());
    assert!(send(&p, &b).await.ok());
    assert_eq!(send(&p, &a).await.message(), "already accepted");
    // A refused artifact is not logged.
    let stale = build::doc_line(FROM, TO, "log-3", UnixMillis::from_millis(0));
    assert!(!send(&p, &stale).await.ok());
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // The lines are the artifacts byte for byte as received.
    assert_eq!(lines, [a.as_str(), b.as_str()]);
}

/// §9.3 step 2's optional allow-list: a delegation the sender signed itself is accepted only
/// when its attestor is listed (by identity or domain); delegations by a service identity of
/// the sender's domain need no attestation and are not affected.
#[tokio::test]
async fn the_attestor_allow_list_decides_self_signed_delegations() {
    let device = build::device_key();
    let cases: [(&[&str], bool); 4] = [
        (&[], true),
        (&["notary.test", "someone$trustauthority.test"], false),
        (&["attest$TrustAuthority.test"], true),
        (&["trustauthority.test"], true),
    ];
    for (n, (list, allowed)) in cases.into_iter().enumerate() {
        let opts = PipelineOptions {
            attestors: Attestors::parse(list).unwrap(),
            ..vector_options()
        };
        let h = harness_dns(now(), TrustState::Accepted, None, opts, true).await;
        h.clock.set(now());
        let r = send(
            &h.pipeline,
            &self_delegated_attested(&format!("at-{n}"), now(), &device),
        )
        .await;
        if allowed {
            assert!(r.ok(), "{list:?}: {:?}", r.obj);
        } else {
            assert_eq!(
                r.error_code(),
                Some("BTP_ERROR_DELEGATION_INVALID"),
                "{list:?}"
            );
            assert_eq!(r.status_code(), Some(403.0));
        }
        let r = send(&h.pipeline, &delegated(&format!("svc-{n}"), now(), &device)).await;
        assert!(r.ok(), "a service delegation with {list:?}: {:?}", r.obj);
        let stored = h
            .store
            .fetch(
                TO,
                btps_trust::Mailbox::Inbox,
                &btps_trust::MessageQuery::default(),
            )
            .await
            .unwrap();
        assert_eq!(
            stored.results.len(),
            if allowed { 2 } else { 1 },
            "{list:?}"
        );
    }
}
