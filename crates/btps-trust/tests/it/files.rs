//! The file backend beyond the conformance suite: btps-node file layouts, corrupt files,
//! external changes, the lock convention, the data-directory lock, compaction and torn logs.

use std::fs;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use btps_trust::file::{
    FileStore, FileStoreConfig, JsonFileOptions, JsonTrustStore, Layout, LockOptions,
};
use btps_trust::{
    Mailbox, MessageQuery, MessageStore, NewMessage, PageRequest, ReplayEntry, TrustError,
    TrustFilter, TrustRecord, TrustStatus, TrustStore, trust_id,
};
use btps_types::UnixMillis;
use btps_types::json::Object;

use crate::{now, open_dir};

/// A trust file as btps-node writes it (`JSON.stringify(…, null, 2)`), with the
/// `toIdentity`/`fromIdentity` members its `create` adds.
const NODE_FILE: &str = r#"{
  "trusted_senders": [
    {
      "id": "7cedf7a0bd8f21ab0f3d26cceebaa87e7ad177114ea51d23dc0123b4fe017e3d",
      "senderId": "billing$vendorcorp.com",
      "receiverId": "pay$client.com",
      "status": "accepted",
      "createdAt": "2025-06-01T10:00:00.000Z",
      "decidedBy": "Jane Doe",
      "decidedAt": "2025-06-02T10:00:00.000Z",
      "expiresAt": "2026-06-01T00:00:00.000Z",
      "publicKeyBase64": "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA",
      "publicKeyFingerprint": "n3Hl0Yq5Z3lQ0GmQ9zv8cJqK0bG2bOEQ7d3m0Y0Yf0c=",
      "keyHistory": [],
      "privacyType": "encrypted",
      "toIdentity": "pay$client.com",
      "fromIdentity": "billing$vendorcorp.com"
    }
  ]
}"#;

fn t(ms: i64) -> UnixMillis {
    UnixMillis::from_millis(1_750_000_000_000 + ms)
}

#[tokio::test]
async fn reads_a_btps_node_trust_file_and_writes_its_layout_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("btps-trust.json");
    fs::write(&path, NODE_FILE).unwrap();
    let store = JsonTrustStore::open(&path).unwrap();
    assert_eq!(
        store.layout().unwrap(),
        Layout::Entity("trusted_senders".into())
    );
    let id = trust_id("billing$vendorcorp.com", "pay$client.com");
    let r = store
        .get_trust(&id)
        .await
        .unwrap()
        .expect("record read as is");
    assert_eq!(r.status, TrustStatus::Accepted);
    assert_eq!(r.decided_by, "Jane Doe");
    assert_eq!(r.extra.len(), 2);
    // Rewrite unchanged: byte-identical to what btps-node wrote.
    store.put_trust(&r).await.unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), NODE_FILE);
    let other = TrustRecord::new("a$b.com", "pay$client.com", TrustStatus::Pending, t(0));
    store.put_trust(&other).await.unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("{\n  \"trusted_senders\": [\n    {\n      \"id\": \"7cedf7a0"));
    assert!(text.contains("\n    {\n      \"id\": \""));
    assert!(text.contains("\"toIdentity\": \"pay$client.com\""));
    let listed = store
        .list_trust(
            &TrustFilter::Receiver("PAY$client.com".into()),
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
}

#[tokio::test]
async fn bare_array_layout_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trust.json");
    fs::write(&path, "[]").unwrap();
    let store = JsonTrustStore::open(&path).unwrap();
    assert_eq!(store.layout().unwrap(), Layout::Bare);
    let r = TrustRecord::new("a$b.com", "c$d.com", TrustStatus::Pending, t(0));
    store.put_trust(&r).await.unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("[\n  {\n    \"id\": \""), "{text}");
    assert!(
        !dir.path().join("trust.json.lock").exists(),
        "lock released"
    );
    // A missing file gets the configured default layout on the first write.
    let path2 = dir.path().join("new.json");
    let opts = JsonFileOptions {
        default_layout: Layout::Bare,
        ..JsonFileOptions::trust()
    };
    let store2 = JsonTrustStore::open_with(&path2, opts).unwrap();
    assert!(!path2.exists());
    store2.put_trust(&r).await.unwrap();
    assert!(fs::read_to_string(&path2).unwrap().starts_with('['));
}

#[tokio::test]
async fn corrupt_trust_files_are_reported_and_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("btps-trust.json");
    let torn = &NODE_FILE[..NODE_FILE.len() / 2];
    for bad in [
        torn,
        "",
        "  \n",
        "{\"a\":1,\"b\":[]}",
        "{\"trusted_senders\":{}}",
        "[1]",
        "[{\"senderId\":\"a$b.c\"}]",
    ] {
        fs::write(&path, bad).unwrap();
        let e = JsonTrustStore::open(&path)
            .err()
            .expect("corrupt file is an error");
        assert!(matches!(e, TrustError::Corrupt { .. }), "{bad:?}: {e}");
        assert_eq!(fs::read_to_string(&path).unwrap(), bad, "left untouched");
    }
    // Corrupted after opening: reads and writes fail, the file stays as it is. (A read
    // answered by an accepted record may come from memory for `TRUST_RECHECK`; any other
    // read checks the file at once.)
    fs::write(&path, NODE_FILE).unwrap();
    let store = JsonTrustStore::open(&path).unwrap();
    let id = trust_id("billing$vendorcorp.com", "pay$client.com");
    assert!(store.get_trust(&id).await.unwrap().is_some());
    fs::write(&path, torn).unwrap();
    let unknown = trust_id("someone$else.com", "pay$client.com");
    assert!(matches!(
        store.get_trust(&unknown).await,
        Err(TrustError::Corrupt { .. })
    ));
    tokio::time::sleep(btps_trust::file::TRUST_RECHECK).await;
    assert!(matches!(
        store.get_trust(&id).await,
        Err(TrustError::Corrupt { .. })
    ));
    let r = TrustRecord::new("x$y.com", "pay$client.com", TrustStatus::Pending, t(0));
    assert!(matches!(
        store.put_trust(&r).await,
        Err(TrustError::Corrupt { .. })
    ));
    assert_eq!(fs::read_to_string(&path).unwrap(), torn);
    assert!(!dir.path().join("btps-trust.json.lock").exists());
}

#[tokio::test]
async fn external_changes_are_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("btps-trust.json");
    let store = JsonTrustStore::open(&path).unwrap();
    let id = trust_id("billing$vendorcorp.com", "pay$client.com");
    assert_eq!(store.get_trust(&id).await.unwrap(), None);
    // Another process (btps-node) replaces the file.
    let tmp = dir.path().join("other.tmp");
    fs::write(&tmp, NODE_FILE).unwrap();
    fs::rename(&tmp, &path).unwrap();
    assert!(store.get_trust(&id).await.unwrap().is_some());
    // A read-modify-write keeps what the other process wrote.
    let r = TrustRecord::new("x$y.com", "pay$client.com", TrustStatus::Pending, t(0));
    store.put_trust(&r).await.unwrap();
    let again = JsonTrustStore::open(&path).unwrap();
    assert!(again.get_trust(&id).await.unwrap().is_some());
    assert!(again.get_trust(&r.id).await.unwrap().is_some());
}

#[tokio::test]
async fn writers_wait_for_the_lock_directory_and_take_over_stale_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("btps-trust.json");
    let lock = dir.path().join("btps-trust.json.lock");
    let opts = JsonFileOptions {
        lock: LockOptions {
            timeout: Duration::from_millis(300),
            initial_backoff: Duration::from_millis(20),
            ..LockOptions::default()
        },
        ..JsonFileOptions::trust()
    };
    let store = JsonTrustStore::open_with(&path, opts).unwrap();
    let r = TrustRecord::new("a$b.com", "c$d.com", TrustStatus::Pending, t(0));
    // A fresh lock of another process: we wait, then give up.
    fs::create_dir(&lock).unwrap();
    let start = Instant::now();
    assert!(matches!(
        store.put_trust(&r).await,
        Err(TrustError::LockTimeout { .. })
    ));
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert!(!path.exists(), "nothing written without the lock");
    // The other process releases it while we wait: we proceed.
    let l2 = lock.clone();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        fs::remove_dir(&l2).unwrap();
    });
    store.put_trust(&r).await.unwrap();
    release.join().unwrap();
    // A stale lock (mtime older than 5 s) is taken over at once.
    fs::create_dir(&lock).unwrap();
    fs::File::open(&lock)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(30))
        .unwrap();
    store.delete_trust(&r.id).await.unwrap();
    assert!(!lock.exists());
}

#[tokio::test]
async fn data_directory_is_owned_by_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let a = open_dir(dir.path());
    let e = FileStore::open(&FileStoreConfig::new(dir.path()), now())
        .err()
        .expect("second open fails");
    assert!(matches!(e, TrustError::InUse { .. }), "{e}");
    drop(a);
    let _b = open_dir(dir.path());
}

fn big_msg(i: u32, at: i64) -> NewMessage {
    let doc = "x".repeat(4000);
    let a = Object::new()
        .with("id", format!("c-{i:04}"))
        .with("from", "billing$vendorcorp.com")
        .with("type", "BTPS_DOC")
        .with("document", doc);
    NewMessage::new("pay$client.com", Mailbox::Inbox, a, t(at)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_shrinks_the_log_and_keeps_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_dir(dir.path());
    for i in 0..600 {
        let e = ReplayEntry {
            scope: "from:billing$vendorcorp.com".into(),
            id: format!("c-{i:04}"),
            signature: format!("sig{i}"),
            expires_at: t(if i % 2 == 0 { 10 } else { 1_000_000 }),
        };
        s.store(&big_msg(i, i64::from(i)), Some(&e), t(0))
            .await
            .unwrap();
    }
    let ids: Vec<String> = (0..550).map(|i| format!("c-{i:04}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    s.delete_messages("pay$client.com", Mailbox::Inbox, &refs, t(700))
        .await
        .unwrap();
    s.delete_messages("pay$client.com", Mailbox::Trash, &refs, t(701))
        .await
        .unwrap();
    let before = s.log_len();
    let after = s.compact(t(100)).await.unwrap();
    assert!(after * 5 < before, "{before} -> {after}");
    assert_eq!(s.log_len(), after);
    let page = s
        .fetch("pay$client.com", Mailbox::Inbox, &MessageQuery::default())
        .await
        .unwrap();
    assert_eq!(page.results.len(), 50);
    assert_eq!(page.results[0].id, "c-0550");
    assert_eq!(
        page.results[0].artifact,
        big_msg(550, 0).artifact().unwrap()
    );
    // Writes after compaction land in the new log.
    s.store(&big_msg(9999, 9999), None, t(0)).await.unwrap();
    drop(s);
    let s = open_dir(dir.path());
    let rep = s.open_report();
    assert_eq!(rep.truncated_bytes, 0);
    let page = s
        .fetch("pay$client.com", Mailbox::Inbox, &MessageQuery::default())
        .await
        .unwrap();
    assert_eq!(page.results.len(), 51);
    assert_eq!(
        page.results[50].artifact,
        big_msg(9999, 0).artifact().unwrap()
    );
    // Expired replay entries (even ids) were dropped, live ones kept.
    use btps_trust::ReplayStore;
    assert_eq!(
        s.get_replay("from:billing$vendorcorp.com", "c-0551", t(200))
            .await
            .unwrap()
            .as_deref(),
        Some("sig551")
    );
    assert_eq!(
        s.get_replay("from:billing$vendorcorp.com", "c-0550", t(0))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_torn_log_tail_is_cut_and_a_foreign_log_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let s = open_dir(dir.path());
    for i in 0..10 {
        s.store(&big_msg(i, 0), None, t(0)).await.unwrap();
    }
    drop(s);
    let log = dir.path().join("state.log");
    let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&[0x40, 0, 0, 0, 1, 2, 3, 4, b'M', 9, 9])
        .unwrap();
    drop(f);
    let s = open_dir(dir.path());
    assert_eq!(s.open_report().truncated_bytes, 11);
    assert_eq!(
        s.fetch("pay$client.com", Mailbox::Inbox, &MessageQuery::default())
            .await
            .unwrap()
            .results
            .len(),
        10
    );
    drop(s);
    fs::write(&log, b"garbage that is not a log").unwrap();
    let e = FileStore::open(&FileStoreConfig::new(dir.path()), now())
        .err()
        .unwrap();
    assert!(matches!(e, TrustError::Corrupt { .. }), "{e}");
}
