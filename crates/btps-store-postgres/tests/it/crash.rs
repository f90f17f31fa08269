//! Crash safety: a child process (this test binary, re-invoked) stores artifacts from many
//! concurrent callers through group commit and prints the id of every acknowledged store; the
//! parent SIGKILLs it in the middle of its writes — inside a group's statement or `COMMIT`,
//! or between groups — then opens the store again (the migrations run again and change
//! nothing) and checks that every acknowledged store is there exactly once, and that no
//! message was committed without its replay entry or the other way round. Repeated on the
//! same database.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use btps_store_postgres::{MIGRATIONS, PgStore, PgStoreConfig};
use btps_trust::{
    Mailbox, MessageQuery, MessageStore, NewMessage, ReplayEntry, ReplayOutcome, ReplayStore,
    StoreOutcome,
};
use btps_types::UnixMillis;
use btps_types::json::Object;

use crate::support::Scope;

const CHILD_URL: &str = "BTPS_PG_CRASH_CHILD_URL";
const CHILD_TRIAL: &str = "BTPS_PG_CRASH_CHILD_TRIAL";
const OWNER: &str = "pay$client.com";
const SCOPE: &str = "from:billing$vendorcorp.com";
const TRIALS: u32 = 20;
const WRITERS: u32 = 16;

fn t(ms: i64) -> UnixMillis {
    UnixMillis::from_millis(1_750_000_000_000 + ms)
}

fn entry(id: &str) -> ReplayEntry {
    ReplayEntry {
        scope: SCOPE.into(),
        id: id.to_owned(),
        signature: format!("sig-{id}"),
        expires_at: t(86_400_000),
    }
}

fn message(id: &str, n: u32) -> NewMessage {
    // Sizes vary from ~100 bytes to ~6 KB (past the TOAST threshold).
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
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let trial: u32 = std::env::var(CHILD_TRIAL).unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // Odd trials run two writers, so that kills also land between overlapping groups.
        let config = PgStoreConfig::new(url)
            .with_pool_size(8)
            .with_writers(1 + trial as usize % 2);
        let store = Arc::new(PgStore::connect(&config).await.unwrap());
        let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
        println!("READY");
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..WRITERS {
            let store = Arc::clone(&store);
            let out = Arc::clone(&out);
            tasks.spawn(async move {
                for n in 0.. {
                    let id = format!("t{trial}-w{w}-{n}");
                    let (m, e) = (message(&id, n), entry(&id));
                    let outcome = store.store(&m, Some(&e), t(0)).await.unwrap();
                    assert_eq!(outcome, StoreOutcome::Stored);
                    {
                        let mut o = out.lock().unwrap();
                        writeln!(o, "ACK {id}").unwrap();
                        o.flush().unwrap();
                    }
                    if n % 8 == 7 {
                        // An exact re-send, in some group or other.
                        let again = store.store(&m, Some(&e), t(1)).await.unwrap();
                        assert_eq!(again, StoreOutcome::AlreadyAccepted);
                    }
                }
            });
        }
        tasks.join_all().await;
    });
}

async fn all_ids(store: &PgStore) -> Vec<String> {
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

/// Messages without their replay entry, and replay entries without their message.
async fn orphans(url: &str) -> (i64, i64) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT \
             (SELECT count(*) FROM btps_message m WHERE NOT EXISTS (SELECT 1 FROM \
              btps_seen_artifact s WHERE s.replay_key = $1 AND s.artifact_id = m.id)), \
             (SELECT count(*) FROM btps_seen_artifact s WHERE NOT EXISTS (SELECT 1 FROM \
              btps_message m WHERE m.owner = $2 AND m.mailbox = 'inbox' AND m.id = s.artifact_id))",
            &[&SCOPE, &OWNER],
        )
        .await
        .unwrap();
    drop(client);
    let _ = conn.await;
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_group_commits_loses_no_acknowledged_store() {
    let dbs = Scope::default();
    let url = dbs.fresh().await;
    let config = PgStoreConfig::new(url.clone()).with_pool_size(4);
    let latest = MIGRATIONS.last().unwrap().version;
    assert_eq!(
        PgStore::connect(&config).await.unwrap().schema_version(),
        latest
    );
    let exe = std::env::current_exe().unwrap();
    let mut acked_total = BTreeSet::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let started = Instant::now();
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
            .env(CHILD_URL, &url)
            .env(CHILD_TRIAL, trial.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Reading the pipe blocks: on a thread of its own, the ids through a channel.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let reader = std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(id) = line.strip_prefix("ACK ")
                    && tx.send(id.to_owned()).is_err()
                {
                    break;
                }
            }
        });
        let mut acked = 0u64;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while acked < kill_after {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(id)) => {
                    acked_total.insert(id);
                    acked += 1;
                }
                Ok(None) => break,
                Err(_) => {
                    let _ = child.kill();
                    panic!("trial {trial}: the child acknowledged only {acked} stores in 20 s");
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        // Whatever the child printed before it died was acknowledged too.
        reader.join().unwrap();
        while let Ok(id) = rx.try_recv() {
            acked_total.insert(id);
        }
        assert!(!status.success(), "the child was killed");
        assert_eq!(acked, kill_after, "trial {trial}: the child stopped early");

        // Opens cleanly: the migrations run again and find nothing to do.
        let store = PgStore::connect(&config).await.unwrap();
        assert_eq!(store.schema_version(), latest);
        let ids = all_ids(&store).await;
        let unique: BTreeSet<_> = ids.iter().cloned().collect();
        assert_eq!(unique.len(), ids.len(), "trial {trial}: duplicates");
        let missing: Vec<_> = acked_total.difference(&unique).collect();
        assert!(
            missing.is_empty(),
            "trial {trial}: lost acknowledged stores {missing:?}"
        );
        // Stores are atomic: a message is never committed without its replay entry or the
        // other way round, acknowledged or not. (A killed child's last transaction may still
        // be finishing on the server; it commits both or neither.)
        assert_eq!(orphans(&url).await, (0, 0), "trial {trial}");
        for id in acked_total.iter().rev().take(20) {
            assert_eq!(
                store.insert_replay(&entry(id), t(2)).await.unwrap(),
                ReplayOutcome::SameSignature
            );
        }
        store.close();
    }
    eprintln!(
        "crash test: {TRIALS} SIGKILLs, {} acknowledged stores all present once, in {:?}",
        acked_total.len(),
        started.elapsed()
    );
}
