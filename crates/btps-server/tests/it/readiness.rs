//! `/readyz` of a running server (TLS listener and observability listener) while a store
//! refuses writes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use btps_dns::{DnsCache, StaticTable};
use btps_server::config::ServerConfig;
use btps_server::{Pipeline, Server, Shutdown, Stores, TlsReloader, TlsSettings};
use btps_trust::{Mailbox, MessageQuery, MessageStore};
use btps_types::UnixMillis;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use crate::build::{Parsed, doc_line};
use crate::faulty::{Fault, FaultyMessages};
use crate::harness::{TrustState, harness, vector_options, vectors_dir};
use crate::wire::{TestClient, client_config};

const T0: i64 = 1_800_000_000_000;

/// `GET path` over plain HTTP: the status and the body.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    timeout(Duration::from_secs(10), tcp.read_to_string(&mut text))
        .await
        .expect("an answer in time")
        .unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

/// The message store fails a write (a full disk) and from then on refuses writes, as the
/// file store does after a failed write of its log: the artifact gets 503
/// `BTP_ERROR_SERVER_BUSY`, and `/readyz`, 200 before, answers 503 naming the store and
/// why, although its reads still work and the process is alive (`/healthz` 200).
#[tokio::test]
async fn readyz_is_503_naming_the_store_while_it_refuses_writes() {
    let now = UnixMillis::from_millis(T0);
    let h = harness(now, TrustState::Accepted, None).await;
    let messages = FaultyMessages::new(h.store.clone(), Fault::FailWrites);
    let mut stores = Stores::from_backend(h.store.clone());
    stores.messages = messages.clone();
    let table = StaticTable::load(&vectors_dir().join("dns.json")).unwrap();
    let pipeline =
        Pipeline::new(stores, DnsCache::new(table), vector_options()).with_clock(h.clock.clone());

    let dir = tempfile::tempdir().unwrap();
    let tls = TlsReloader::load(TlsSettings {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
        self_signed: true,
        self_signed_names: vec!["localhost".into()],
    })
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_addr = http.local_addr().unwrap();
    let server = Server::new(ServerConfig::default(), Arc::new(pipeline), tls);
    let shutdown = Shutdown::new();
    let task = tokio::spawn(server.run(listener, Some(http), shutdown.clone(), None));

    assert_eq!(
        http_get(http_addr, "/readyz").await,
        (200, "ready\n".into())
    );

    let mut c = TestClient::connect(addr, &client_config(&dir.path().join("cert.pem"))).await;
    let line = doc_line(
        "billing$vendorcorp.test",
        "finance$buyer.test",
        "full-1",
        now,
    );
    let r = Parsed::new(&c.send_lines(&[&line]).await[0]);
    assert_eq!(r.error_code(), Some("BTP_ERROR_SERVER_BUSY"));
    assert_eq!(r.req_id(), Some("full-1"));

    let (status, body) = http_get(http_addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        "message store: store unavailable after a failed write: write or fsync of the log \
         failed: No space left on device (os error 28)\n"
    );
    assert_eq!(http_get(http_addr, "/healthz").await, (200, "ok\n".into()));
    let inbox = h
        .store
        .fetch(
            "finance$buyer.test",
            Mailbox::Inbox,
            &MessageQuery::default(),
        )
        .await
        .unwrap();
    assert!(inbox.results.is_empty(), "nothing stored");

    shutdown.trigger();
    timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
