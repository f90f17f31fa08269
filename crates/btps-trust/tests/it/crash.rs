//! Crash safety: a child process (this test binary, re-invoked) stores artifacts from many
//! concurrent writers and prints the id of every acknowledged store; the parent SIGKILLs it
//! in the middle of its writes, reopens the store and checks that every acknowledged write is
//! there exactly once and that the store opens cleanly. Repeated on the same store, so that
//! recovery is itself recovered from. Odd trials compact the log continuously, so that some
//! kills land inside a compaction.
//!
//! A SIGKILL can stop a large `write(2)` part-way (Linux checks for fatal signals between
//! pages), which leaves a torn tail like a power cut does; the test reports how many trials
//! did. Torn and corrupt tails are also covered directly by the log's unit tests and
//! `files::a_torn_log_tail_is_cut_and_a_foreign_log_is_an_error`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use btps_trust::file::FileStore;
use btps_trust::{
    Mailbox, MessageQuery, MessageStore, NewMessage, ReplayEntry, ReplayOutcome, ReplayStore,
    StoreOutcome,
};
use btps_types::UnixMillis;
use btps_types::json::Object;

use crate::open_dir;

const CHILD_DIR: &str = "BTPS_TRUST_CRASH_CHILD_DIR";
const CHILD_TRIAL: &str = "BTPS_TRUST_CRASH_CHILD_TRIAL";
const OWNER: &str = "pay$client.com";
const TRIALS: u32 = 20;
const WRITERS: u32 = 16;

fn t(ms: i64) -> UnixMillis {
    UnixMillis::from_millis(1_750_000_000_000 + ms)
}

fn entry(id: &str) -> ReplayEntry {
    ReplayEntry {
        scope: "from:billing$vendorcorp.com".into(),
        id: id.to_owned(),
        signature: format!("sig-{id}"),
        expires_at: t(86_400_000),
    }
}

fn message(id: &str, n: u32) -> NewMessage {
    // Sizes vary from ~100 bytes to ~6 KB so that records straddle pages.
    let pad = "p".repeat((n as usize * 397) % 6000);
    let a = Object::new()
        .with("id", id)
        .with("from", "billing$vendorcorp.com")
        .with("type", "BTPS_DOC")
        .with("document", pad);
    NewMessage::new(OWNER, Mailbox::Inbox, a, t(i64::from(n))).unwrap()
}

/// The child: runs only when re-invoked by the parent with the environment set.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let trial: u32 = std::env::var(CHILD_TRIAL).unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Arc::new(open_dir(std::path::Path::new(&dir)));
        let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
        println!("READY");
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..WRITERS {
            let store = Arc::clone(&store);
            let out = Arc::clone(&out);
            tasks.spawn(async move {
                for n in 0.. {
                    let id = format!("t{trial}-w{w}-{n}");
                    let outcome = store
                        .store(&message(&id, n), Some(&entry(&id)), t(0))
                        .await
                        .unwrap();
                    assert_eq!(outcome, StoreOutcome::Stored);
                    let mut o = out.lock().unwrap();
                    writeln!(o, "ACK {id}").unwrap();
                    o.flush().unwrap();
                }
            });
        }
        if trial % 2 == 1 {
            // Odd trials also compact continuously, so some kills land inside a compaction.
            let store = Arc::clone(&store);
            tasks.spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(15)).await;
                    store.compact(t(0)).await.unwrap();
                }
            });
        }
        tasks.join_all().await;
    });
}

async fn all_ids(store: &FileStore) -> Vec<String> {
    let mut q = MessageQuery {
        limit: 1000,
        ..MessageQuery::default()
    };
    let mut ids = Vec::new();
    loop {
        let page = store.fetch(OWNER, Mailbox::Inbox, &q).await.unwrap();
        ids.extend(page.results.into_iter().map(|m| m.id));
        if !page.has_next {
            return ids;
        }
        q.cursor = page.cursor;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_writes_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked_total = BTreeSet::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let started = Instant::now();
    let mut torn_tails = 0;
    for trial in 0..TRIALS {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // Kill after 20..420 acknowledgements, i.e. in the middle of concurrent writes.
        let kill_after = 20 + (seed >> 33) % 400;
        let mut child = Command::new(&exe)
            .args([
                "crash::crash_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_TRIAL, trial.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acked = 0u64;
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked < kill_after {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(id) = line.strip_prefix("ACK ") {
                acked_total.insert(id.to_owned());
                acked += 1;
            }
            assert!(Instant::now() < deadline, "child too slow");
        }
        child.kill().unwrap(); // SIGKILL
        // Whatever the child printed before it died was acknowledged too.
        for line in lines.map_while(Result::ok) {
            if let Some(id) = line.strip_prefix("ACK ") {
                acked_total.insert(id.to_owned());
            }
        }
        let status = child.wait().unwrap();
        assert!(!status.success(), "the child was killed");
        assert_eq!(acked, kill_after, "trial {trial}: the child stopped early");

        let store = open_dir(dir.path());
        torn_tails += u32::from(store.open_report().truncated_bytes > 0);
        let ids = all_ids(&store).await;
        let unique: BTreeSet<_> = ids.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            ids.len(),
            "trial {trial}: duplicates after recovery"
        );
        let missing: Vec<_> = acked_total.difference(&unique).collect();
        assert!(
            missing.is_empty(),
            "trial {trial}: lost acknowledged writes {missing:?}"
        );
        // Every stored id is recorded in the replay set too (one atomic step).
        for id in ids.iter().rev().take(20) {
            assert_eq!(
                store.insert_replay(&entry(id), t(1)).await.unwrap(),
                ReplayOutcome::SameSignature
            );
        }
        drop(store);
    }
    eprintln!(
        "crash test: {TRIALS} SIGKILLs ({torn_tails} left a torn tail), {} acknowledged writes \
         all recovered in {:?}",
        acked_total.len(),
        started.elapsed()
    );
}
