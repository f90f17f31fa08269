//! The §11 rate limits that have no other test of their own, each over real TLS with
//! correctly signed artifacts: `trust_requests_per_minute` (per sender),
//! `lookups_per_ip_per_minute` and `global_per_minute`. Each answers 429
//! `BTP_ERROR_RATE_LIMITER` with the `reqId` right after the configured count, and nothing
//! refused is stored.

use std::net::IpAddr;

use btps_crypto::{KeyPair, PublicKey};
use btps_server::PipelineOptions;
use btps_server::config::RateLimits;
use btps_trust::file::FileStore;
use btps_trust::{Mailbox, MessageQuery, MessageStore, TrustRecord, TrustStatus, TrustStore};
use btps_types::UnixMillis;
use btps_types::artifact::PrivacyType;
use btps_types::json::Value;

use crate::build::{self, Parsed, doc_line, invoice};
use crate::harness::{Harness, TrustState, harness_with, read_key, vector_options};
use crate::wire::TestServer;

const T0: i64 = 1_800_000_000_000;
const BILLING: &str = "billing$vendorcorp.test";
const ADMIN: &str = "admin$vendorcorp.test";
const FINANCE: &str = "finance$buyer.test";
const LIMITED: Option<&str> = Some("BTP_ERROR_RATE_LIMITER");

fn now() -> UnixMillis {
    UnixMillis::from_millis(T0)
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

async fn limited_to(limits: RateLimits) -> Harness {
    let opts = PipelineOptions {
        rate_limits: limits,
        ..vector_options()
    };
    harness_with(now(), TrustState::Accepted, None, opts).await
}

async fn inbox_ids(store: &FileStore, owner: &str) -> Vec<String> {
    let mut ids: Vec<String> = store
        .fetch(owner, Mailbox::Inbox, &MessageQuery::default())
        .await
        .unwrap()
        .results
        .iter()
        .map(|m| m.id.clone())
        .collect();
    ids.sort();
    ids
}

fn admin_key() -> KeyPair {
    KeyPair::from_pem(&read_key("admin-vendorcorp-private.pem")).unwrap()
}

fn trust_req(from: &str, to: &str, id: &str, key: &KeyPair) -> String {
    let text = format!(
        r#"{{"id":"doc-{id}","name":"VendorCorp","email":"billing@vendorcorp.test","reason":"invoices","phone":"+61 400 000 000","privacyType":"mixed"}}"#
    );
    let doc: Value = btps_types::json::parse_str(&text).unwrap().value;
    build::line(&build::transporter(
        "TRUST_REQ",
        from,
        to,
        id,
        now(),
        doc,
        key,
    ))
}

fn lookup(id: &str) -> String {
    format!(
        r#"{{"identity":"{FINANCE}","from":"{BILLING}","hostSelector":"btps1","version":"1.0.0","id":"{id}","issuedAt":"{}"}}"#,
        now().to_datetime_string()
    )
}

/// (error code, reqId) of each reply.
fn outcomes(replies: &[String]) -> Vec<(Option<String>, Option<String>)> {
    replies
        .iter()
        .map(|r| {
            let p = Parsed::new(r);
            (
                p.error_code().map(str::to_owned),
                p.req_id().map(str::to_owned),
            )
        })
        .collect()
}

fn ok(id: &str) -> (Option<String>, Option<String>) {
    (None, Some(id.to_owned()))
}

fn limited(id: &str) -> (Option<String>, Option<String>) {
    (LIMITED.map(str::to_owned), Some(id.to_owned()))
}

/// `trust_requests_per_minute = 2`: billing's two trust requests (to two receivers) are
/// accepted, the third gets 429 and creates neither a message nor a trust record. The
/// limit is per sender and counts only `TRUST_REQ`: billing's document and another
/// sender's trust request to the same receiver are accepted afterwards.
#[tokio::test]
async fn trust_requests_per_sender_are_limited() {
    let h = limited_to(RateLimits {
        trust_requests_per_minute: 2,
        ..RateLimits::unlimited()
    })
    .await;
    let server = TestServer::start(h.pipeline.clone()).await;
    let mut c = server.connect().await;
    let billing = build::billing_key();
    let receivers = ["ap$buyer.test", "hr$buyer.test", "ops$buyer.test"];
    let lines: Vec<String> = receivers
        .iter()
        .enumerate()
        .map(|(i, to)| trust_req(BILLING, to, &format!("tr-{i}"), &billing))
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let replies = c.send_lines(&refs).await;
    assert_eq!(
        outcomes(&replies),
        [ok("tr-0"), ok("tr-1"), limited("tr-2")],
        "{replies:?}"
    );
    assert_eq!(inbox_ids(&h.store, receivers[0]).await, ["tr-0"]);
    assert_eq!(inbox_ids(&h.store, receivers[1]).await, ["tr-1"]);
    assert!(inbox_ids(&h.store, receivers[2]).await.is_empty());
    let refused = btps_trust::trust_id(BILLING, receivers[2]);
    assert_eq!(h.store.get_trust(&refused).await.unwrap(), None);

    let doc = doc_line(BILLING, FINANCE, "doc-after", now());
    let other = trust_req(ADMIN, receivers[2], "tr-admin", &admin_key());
    let replies = c.send_lines(&[&doc, &other]).await;
    assert_eq!(
        outcomes(&replies),
        [ok("doc-after"), ok("tr-admin")],
        "{replies:?}"
    );
    assert_eq!(inbox_ids(&h.store, receivers[2]).await, ["tr-admin"]);
    server.stop().await;
}

/// `lookups_per_ip_per_minute = 3`: three identity lookups from 127.0.0.1, over two
/// connections, are answered; the fourth gets 429. Another address is served, and signed
/// artifacts from the limited address are not affected.
#[tokio::test]
async fn identity_lookups_per_ip_are_limited() {
    let h = limited_to(RateLimits {
        lookups_per_ip_per_minute: 3,
        ..RateLimits::unlimited()
    })
    .await;
    let server = TestServer::start(h.pipeline.clone()).await;
    let mut a = server.connect_from(ip(1)).await;
    let mut b = server.connect_from(ip(1)).await;
    let first = a.send_lines(&[&lookup("lk-0"), &lookup("lk-1")]).await;
    let second = b.send_lines(&[&lookup("lk-2")]).await;
    let third = a.send_lines(&[&lookup("lk-3")]).await;
    let replies: Vec<String> = [first, second, third].concat();
    assert_eq!(
        outcomes(&replies),
        [ok("lk-0"), ok("lk-1"), ok("lk-2"), limited("lk-3")],
        "{replies:?}"
    );
    let answered = Parsed::new(&replies[0]);
    assert!(answered.ok(), "{:?}", answered.obj);

    let mut other = server.connect_from(ip(2)).await;
    let replies = other.send_lines(&[&lookup("lk-other")]).await;
    assert_eq!(outcomes(&replies), [ok("lk-other")], "{replies:?}");
    let doc = doc_line(BILLING, FINANCE, "doc-1", now());
    let replies = a.send_lines(&[&doc]).await;
    assert_eq!(outcomes(&replies), [ok("doc-1")], "{replies:?}");
    assert_eq!(inbox_ids(&h.store, FINANCE).await, ["doc-1"]);
    server.stop().await;
}

/// `global_per_minute = 3`: three signed documents from two senders over three addresses
/// are accepted; the fourth, from a fourth address, and a fifth from the first address get
/// 429, and only the first three are stored. Unsigned requests (a ping) are still answered.
#[tokio::test]
async fn the_global_limit_counts_every_sender_and_address() {
    let h = limited_to(RateLimits {
        global_per_minute: 3,
        ..RateLimits::unlimited()
    })
    .await;
    let admin_pub = PublicKey::from_pem(&read_key("admin-vendorcorp-public.pem")).unwrap();
    let record = TrustRecord::new(ADMIN, FINANCE, TrustStatus::Accepted, now())
        .with_key(&admin_pub.to_base64_spki(), admin_pub.fingerprint())
        .with_privacy(PrivacyType::Mixed);
    h.store.put_trust(&record).await.unwrap();
    let admin_doc = |id: &str| {
        build::line(&build::transporter(
            "BTPS_DOC",
            ADMIN,
            FINANCE,
            id,
            now(),
            invoice(),
            &admin_key(),
        ))
    };
    let billing_doc = |id: &str| doc_line(BILLING, FINANCE, id, now());
    let server = TestServer::start(h.pipeline.clone()).await;

    let sends = [
        (1, billing_doc("g-1")),
        (2, admin_doc("g-2")),
        (3, billing_doc("g-3")),
        (4, admin_doc("g-4")),
        (1, billing_doc("g-5")),
    ];
    let mut replies = Vec::new();
    for (last, line) in &sends {
        let mut c = server.connect_from(ip(*last)).await;
        replies.extend(c.send_lines(&[line]).await);
    }
    assert_eq!(
        outcomes(&replies),
        [
            ok("g-1"),
            ok("g-2"),
            ok("g-3"),
            limited("g-4"),
            limited("g-5")
        ],
        "{replies:?}"
    );
    assert_eq!(inbox_ids(&h.store, FINANCE).await, ["g-1", "g-2", "g-3"]);
    let mut c = server.connect_from(ip(5)).await;
    let pong = c
        .send_lines(&[&format!(
            r#"{{"version":"1.0.0","id":"p","issuedAt":"{}","action":"PING"}}"#,
            now().to_datetime_string()
        )])
        .await;
    assert_eq!(Parsed::new(&pong[0]).message(), "pong");
    server.stop().await;
}
