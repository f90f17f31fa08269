//! The request deadline (`timeouts.request_ms`): a request whose dependency stalls is
//! answered 503 `BTP_ERROR_SERVER_BUSY` with its `reqId` once the deadline passes, its work
//! is cancelled (nothing stored), and the connection stays usable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use btps_dns::{DnsCache, HickoryConfig, HickoryResolver, StaticTable};
use btps_server::{Pipeline, PipelineOptions, Stores};
use btps_trust::file::FileStore;
use btps_trust::{Mailbox, MessageQuery, MessageStore};
use btps_types::UnixMillis;
use tokio::net::UdpSocket;

use crate::build::{Parsed, doc_line};
use crate::faulty::{Fault, FaultyMessages};
use crate::harness::{TrustState, harness, vector_options, vectors_dir};
use crate::wire::TestServer;

const T0: i64 = 1_800_000_000_000;
const REQUEST_MS: u64 = 400;

fn ping(id: &str) -> String {
    format!(
        r#"{{"version":"1.0.0","id":"{id}","issuedAt":"2025-07-01T09:30:00.000Z","action":"PING"}}"#
    )
}

fn options() -> PipelineOptions {
    PipelineOptions {
        request_ms: REQUEST_MS,
        ..vector_options()
    }
}

async fn inbox_len(store: &FileStore) -> usize {
    store
        .fetch(
            "finance$buyer.test",
            Mailbox::Inbox,
            &MessageQuery::default(),
        )
        .await
        .unwrap()
        .results
        .len()
}

/// Sends `doc` on a new connection, expects 503 `BTP_ERROR_SERVER_BUSY` with its `reqId`
/// after about `REQUEST_MS`, then a pong on the same connection. Returns how long the
/// reply took.
async fn expect_deadline(server: &TestServer, id: &str) -> Duration {
    let mut c = server.connect().await;
    let line = doc_line("billing$vendorcorp.test", "finance$buyer.test", id, now());
    let started = Instant::now();
    let r = Parsed::new(&c.send_lines(&[&line]).await[0]);
    let took = started.elapsed();
    assert_eq!(r.error_code(), Some("BTP_ERROR_SERVER_BUSY"), "{:?}", r.obj);
    assert_eq!(r.req_id(), Some(id));
    let code = r.obj.get_object("status").unwrap().get("code").unwrap();
    assert_eq!(code.as_f64(), Some(503.0));
    assert!(
        took >= Duration::from_millis(REQUEST_MS - 50) && took < Duration::from_millis(2_500),
        "{took:?}"
    );
    // The connection is still usable.
    let pong = c.send_lines(&[&ping("after")]).await;
    let pong = Parsed::new(&pong[0]);
    assert_eq!(pong.message(), "pong");
    assert_eq!(pong.req_id(), Some("after"));
    took
}

fn now() -> UnixMillis {
    UnixMillis::from_millis(T0)
}

/// The store write stalls for 1.5 s: the reply comes at the deadline (400 ms), and the
/// write never lands (checked after the stall would have ended).
#[tokio::test]
async fn a_stalled_store_write_is_answered_at_the_deadline_and_not_stored() {
    let h = harness(now(), TrustState::Accepted, None).await;
    let stall = Duration::from_millis(1_500);
    let messages = FaultyMessages::new(h.store.clone(), Fault::Stall(stall));
    let mut stores = Stores::from_backend(h.store.clone());
    stores.messages = messages.clone();
    let table = StaticTable::load(&vectors_dir().join("dns.json")).unwrap();
    let pipeline =
        Pipeline::new(stores, DnsCache::new(table), options()).with_clock(h.clock.clone());
    let server = TestServer::start(Arc::new(pipeline)).await;
    let took = expect_deadline(&server, "stall-1").await;
    eprintln!("deadline: stalled store write answered after {took:?}");
    assert_eq!(
        messages
            .stores_begun
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    tokio::time::sleep(stall + Duration::from_millis(300)).await;
    assert_eq!(inbox_len(&h.store).await, 0, "the cancelled write landed");
    server.stop().await;
}

/// The sender's key lookup goes to a DNS server that never answers (a UDP socket nobody
/// reads; the resolver would wait 10 s): the reply comes at the deadline, nothing is stored.
#[tokio::test]
async fn a_dns_server_that_never_answers_hits_the_request_deadline() {
    let h = harness(now(), TrustState::Accepted, None).await;
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut config = HickoryConfig::with_nameservers([silent.local_addr().unwrap()]);
    config.timeout = Duration::from_secs(10);
    config.attempts = 1;
    let dns = DnsCache::new(HickoryResolver::new(&config).unwrap());
    let pipeline = Pipeline::new(Stores::from_backend(h.store.clone()), dns, options())
        .with_clock(h.clock.clone());
    let server = TestServer::start(Arc::new(pipeline)).await;
    let took = expect_deadline(&server, "dns-1").await;
    eprintln!("deadline: unanswered DNS lookup answered after {took:?}");
    assert_eq!(inbox_len(&h.store).await, 0);
    server.stop().await;
}
