//! The DNS server goes away (PROTOCOL.md §6.5, §12): a key that is not cached is a
//! temporary `BTP_ERROR_DNS_UNAVAILABLE` (503), never a pass; a key cached within its TTL
//! still verifies; once the TTL has passed the same sender fails temporarily too, and
//! nothing refused is stored.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use btps_crypto::KeyPair;
use btps_server::{LineHandler, Peer, Pipeline};
use btps_trust::{Mailbox, MessageStore};
use btps_types::UnixMillis;

use crate::build::{self, Parsed};
use crate::harness::{TrustState, harness_dns, read_key, vector_options};

const BILLING: &str = "billing$vendorcorp.test";
const FINANCE: &str = "finance$buyer.test";
/// The TTL of the sender's records in this test, in seconds.
const TTL: u32 = 2;

fn now() -> UnixMillis {
    UnixMillis::from_system_time(SystemTime::now()).unwrap()
}

async fn send(p: &Pipeline, line: &str) -> Parsed {
    let peer = Peer {
        addr: SocketAddr::from(([127, 0, 0, 1], 40_002)),
        connection: 1,
    };
    let h = p.handle(line.as_bytes(), &peer).await;
    Parsed::new(String::from_utf8(h.reply.unwrap()).unwrap().trim_end())
}

fn status_code(r: &Parsed) -> Option<f64> {
    r.obj.get_object("status")?.get("code")?.as_f64()
}

/// Asserts a temporary DNS failure: `BTP_ERROR_DNS_UNAVAILABLE`, HTTP-style code 503.
fn assert_dns_unavailable(r: &Parsed, what: &str) {
    assert!(!r.ok(), "{what}: {:?}", r.obj);
    assert_eq!(
        r.error_code(),
        Some("BTP_ERROR_DNS_UNAVAILABLE"),
        "{what}: {:?}",
        r.obj
    );
    assert_eq!(status_code(r), Some(503.0), "{what}: {:?}", r.obj);
}

#[tokio::test]
async fn dns_down_fails_temporarily_except_for_keys_cached_within_their_ttl() {
    let mut h = harness_dns(now(), TrustState::Accepted, None, vector_options(), true).await;
    h.clock.set(now());
    let dns = h.dns_server.take().expect("the harness's DNS server");
    // The sender's host and key records with a short TTL, so that the test sees it expire.
    for name in [
        "_btps.host.vendorcorp.test",
        "btps1._btps.identity.billing.vendorcorp.test",
    ] {
        let table =
            btps_dns::StaticTable::load(&crate::harness::vectors_dir().join("dns.json")).unwrap();
        let text = table
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, records)| records[0].clone())
            .unwrap();
        dns.replace_txt(name, TTL, &text).await;
    }
    h.pipeline.dns().clear();

    // DNS up: the key is resolved and cached for TTL seconds.
    let r = send(
        &h.pipeline,
        &build::doc_line(BILLING, FINANCE, "up-1", now()),
    )
    .await;
    assert!(r.ok(), "{:?}", r.obj);
    let cached_at = Instant::now();

    // DNS down: the server stops answering (UDP and TCP closed).
    drop(dns);

    // A sender whose key was never resolved: temporary failure, not stored.
    let finance = KeyPair::from_pem(&read_key("finance-btps1-private.pem")).unwrap();
    let uncached = build::line(&build::transporter(
        "BTPS_DOC",
        FINANCE,
        BILLING,
        "down-uncached",
        now(),
        build::invoice(),
        &finance,
    ));
    let r = send(&h.pipeline, &uncached).await;
    assert_dns_unavailable(&r, "uncached key");

    // The cached sender, within the TTL: still verified and accepted.
    let r = send(
        &h.pipeline,
        &build::doc_line(BILLING, FINANCE, "down-1", now()),
    )
    .await;
    assert!(
        cached_at.elapsed() < Duration::from_secs(u64::from(TTL)),
        "the test was too slow to send within the TTL ({:?})",
        cached_at.elapsed()
    );
    assert!(r.ok(), "cached key within the TTL: {:?}", r.obj);

    // After the TTL: the same sender now fails temporarily.
    tokio::time::sleep(
        Duration::from_secs(u64::from(TTL)).saturating_sub(cached_at.elapsed())
            + Duration::from_millis(300),
    )
    .await;
    h.clock.set(now());
    let r = send(
        &h.pipeline,
        &build::doc_line(BILLING, FINANCE, "down-2", now()),
    )
    .await;
    assert_dns_unavailable(&r, "cached key after its TTL");

    // What was accepted is stored; what was refused is not.
    for (owner, id, stored) in [
        (FINANCE, "up-1", true),
        (FINANCE, "down-1", true),
        (FINANCE, "down-2", false),
        (BILLING, "down-uncached", false),
    ] {
        let found = h
            .store
            .get_message(owner, Mailbox::Inbox, id)
            .await
            .unwrap();
        assert_eq!(found.is_some(), stored, "{id}");
    }
}
