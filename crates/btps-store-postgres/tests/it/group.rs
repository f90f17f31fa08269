//! Group commit of `MessageStore::store`: calls committed in one group get the outcomes they
//! would get one after the other, duplicates within the group included, and a failing call
//! fails alone.
//!
//! To put calls into one group, the test holds a table lock that stalls the writer's
//! current group, queues the calls behind it, and lets go: the writer then takes everything
//! queued as its next group.

use std::sync::Arc;
use std::time::Duration;

use btps_store_postgres::{PgStore, PgStoreConfig};
use btps_trust::{
    Mailbox, MessageQuery, MessageStore, NewMessage, ReplayEntry, ReplayOutcome, ReplayStore,
    Result, StoreOutcome, TrustError,
};
use btps_types::UnixMillis;
use btps_types::json::Object;

use crate::support::Scope;

const OWNER: &str = "pay$client.com";

fn t(ms: i64) -> UnixMillis {
    UnixMillis::from_millis(1_750_000_000_000 + ms)
}

fn entry(id: &str, sig: &str, expires: i64) -> ReplayEntry {
    ReplayEntry {
        scope: "from:billing$vendorcorp.com".into(),
        id: id.to_owned(),
        signature: sig.to_owned(),
        expires_at: t(expires),
    }
}

/// A call: the message (artifact `{id, n}`) and its replay entry (signature `sig`).
#[derive(Clone, Debug)]
struct Call {
    mailbox: Mailbox,
    id: String,
    n: u32,
    sig: Option<String>,
}

fn call(id: &str, n: u32, sig: &str) -> Call {
    Call {
        mailbox: Mailbox::Inbox,
        id: id.to_owned(),
        n,
        sig: Some(sig.to_owned()),
    }
}

fn draft(id: &str, n: u32) -> Call {
    Call {
        mailbox: Mailbox::Drafts,
        id: id.to_owned(),
        n,
        sig: None,
    }
}

async fn run(store: &PgStore, c: &Call) -> Result<StoreOutcome> {
    let a = Object::new().with("id", c.id.as_str()).with("n", c.n);
    let m = NewMessage::new(OWNER, c.mailbox, a, t(0))?;
    let e = c.sig.as_deref().map(|s| entry(&c.id, s, 600_000));
    store.store(&m, e.as_ref(), t(0)).await
}

/// Runs `calls` concurrently as (most likely) one group of the store's single writer, and
/// returns each call's outcome.
async fn one_group(store: &Arc<PgStore>, calls: &[Call]) -> Vec<(Call, Result<StoreOutcome>)> {
    let (client, conn) = tokio_postgres::connect(&store.config().url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    client
        .batch_execute("BEGIN; LOCK TABLE btps_message IN EXCLUSIVE MODE")
        .await
        .unwrap();
    // The writer takes this call and waits for the lock with it.
    let first = {
        let store = Arc::clone(store);
        tokio::spawn(async move { run(&store, &draft("blocker", 0)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut tasks = tokio::task::JoinSet::new();
    for c in calls {
        let store = Arc::clone(store);
        let c = c.clone();
        tasks.spawn(async move {
            let out = run(&store, &c).await;
            (c, out)
        });
    }
    // Everything queued; let the writer go.
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.batch_execute("COMMIT").await.unwrap();
    first.await.unwrap().unwrap();
    let out = tasks.join_all().await;
    store
        .delete_messages(OWNER, Mailbox::Drafts, &["blocker"], t(0))
        .await
        .unwrap();
    drop(client);
    let _ = conn.await;
    out
}

fn count(out: &[(Call, Result<StoreOutcome>)], id: &str, want: StoreOutcome) -> usize {
    out.iter()
        .filter(|(c, o)| c.id == id && matches!(o, Ok(x) if *x == want))
        .count()
}

async fn inbox(store: &PgStore) -> Vec<String> {
    let q = MessageQuery {
        limit: 1000,
        ..MessageQuery::default()
    };
    let mut ids: Vec<String> = store
        .fetch(OWNER, Mailbox::Inbox, &q)
        .await
        .unwrap()
        .results
        .into_iter()
        .map(|m| m.id)
        .collect();
    ids.sort();
    ids
}

async fn open(dbs: &Scope) -> Arc<PgStore> {
    let url = dbs.fresh().await;
    let config = PgStoreConfig::new(url).with_writers(1);
    Arc::new(PgStore::connect(&config).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_within_one_group_get_their_own_outcomes() {
    let dbs = Scope::default();
    let store = open(&dbs).await;
    // Before the group: a replay entry, and a draft stored without one.
    assert_eq!(
        store
            .insert_replay(&entry("seen", "sig-seen", 600_000), t(0))
            .await
            .unwrap(),
        ReplayOutcome::Inserted
    );
    assert_eq!(
        run(&store, &draft("d-1", 1)).await.unwrap(),
        StoreOutcome::Stored
    );

    let mut calls = vec![
        call("seen", 1, "sig-seen"),
        call("seen", 2, "sig-other"),
        draft("d-1", 1),
        draft("d-1", 2),
    ];
    for _ in 0..3 {
        // The same artifact three times.
        calls.push(call("same", 7, "sig-same"));
    }
    for i in 0..3 {
        // Three artifacts under one id, each signed differently.
        calls.push(call("resent", i, &format!("sig-resent-{i}")));
    }
    for i in 0..20 {
        calls.push(call(&format!("fresh-{i:02}"), i, &format!("sig-fresh-{i}")));
    }
    let out = one_group(&store, &calls).await;
    assert!(out.iter().all(|(_, o)| o.is_ok()), "{out:?}");
    assert_eq!(count(&out, "seen", StoreOutcome::AlreadyAccepted), 1);
    assert_eq!(count(&out, "seen", StoreOutcome::Duplicate), 1);
    assert_eq!(count(&out, "d-1", StoreOutcome::AlreadyAccepted), 1);
    assert_eq!(count(&out, "d-1", StoreOutcome::Duplicate), 1);
    assert_eq!(count(&out, "same", StoreOutcome::Stored), 1);
    assert_eq!(count(&out, "same", StoreOutcome::AlreadyAccepted), 2);
    assert_eq!(count(&out, "resent", StoreOutcome::Stored), 1);
    assert_eq!(count(&out, "resent", StoreOutcome::Duplicate), 2);
    for i in 0..20 {
        assert_eq!(
            count(&out, &format!("fresh-{i:02}"), StoreOutcome::Stored),
            1
        );
    }
    // The stored "resent" artifact and its replay entry belong together.
    let m = store
        .get_message(OWNER, Mailbox::Inbox, "resent")
        .await
        .unwrap()
        .unwrap();
    let n = m.artifact.get("n").and_then(|v| v.as_f64()).unwrap();
    assert_eq!(
        store
            .get_replay("from:billing$vendorcorp.com", "resent", t(1))
            .await
            .unwrap(),
        Some(format!("sig-resent-{n}"))
    );
    let mut expected: Vec<String> = (0..20).map(|i| format!("fresh-{i:02}")).collect();
    expected.extend(["resent".to_owned(), "same".to_owned()]);
    expected.sort();
    assert_eq!(inbox(&store).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_replay_entry_in_a_group_is_renewed() {
    let dbs = Scope::default();
    let store = open(&dbs).await;
    // Expired at t(0) but not purged: its key is free again.
    store
        .insert_replay(&entry("old", "sig-old", -1), t(-100))
        .await
        .unwrap();
    let mut calls = vec![call("old", 1, "sig-new"), call("old", 1, "sig-new")];
    for i in 0..10 {
        calls.push(call(&format!("fresh-{i}"), i, &format!("sig-fresh-{i}")));
    }
    let out = one_group(&store, &calls).await;
    assert_eq!(count(&out, "old", StoreOutcome::Stored), 1, "{out:?}");
    assert_eq!(count(&out, "old", StoreOutcome::AlreadyAccepted), 1);
    for i in 0..10 {
        assert_eq!(count(&out, &format!("fresh-{i}"), StoreOutcome::Stored), 1);
    }
    assert_eq!(
        store
            .get_replay("from:billing$vendorcorp.com", "old", t(1))
            .await
            .unwrap()
            .as_deref(),
        Some("sig-new")
    );
    assert_eq!(inbox(&store).await.len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_call_fails_alone() {
    let dbs = Scope::default();
    let store = open(&dbs).await;
    // PostgreSQL text cannot hold NUL: the statement of this call fails.
    let mut calls = vec![call("bad\0id", 1, "sig-bad")];
    for i in 0..10 {
        calls.push(call(&format!("fresh-{i}"), i, &format!("sig-fresh-{i}")));
    }
    calls.push(call("fresh-0", 0, "sig-fresh-0"));
    let out = one_group(&store, &calls).await;
    for (c, o) in &out {
        match c.id.as_str() {
            "bad\0id" => assert!(matches!(o, Err(TrustError::Backend(_))), "{o:?}"),
            _ => assert!(o.is_ok(), "{}: {o:?}", c.id),
        }
    }
    assert_eq!(count(&out, "fresh-0", StoreOutcome::Stored), 1);
    assert_eq!(count(&out, "fresh-0", StoreOutcome::AlreadyAccepted), 1);
    assert_eq!(inbox(&store).await.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replay_key_taken_between_two_statements_takes_the_message_back() {
    let dbs = Scope::default();
    let store = open(&dbs).await;
    // Stands in for another process that records the replay key of "raced-…" while this
    // store writes the message, before it writes the replay entry.
    let (client, conn) = tokio_postgres::connect(&store.config().url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    client
        .batch_execute(
            "CREATE FUNCTION race() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               INSERT INTO btps_seen_artifact VALUES ('from:billing$vendorcorp.com', NEW.id, \
                 'sig-elsewhere', 9000000000000) ON CONFLICT DO NOTHING; \
               RETURN NEW; END $$; \
             CREATE TRIGGER race BEFORE INSERT ON btps_message FOR EACH ROW \
               WHEN (NEW.id LIKE 'raced-%') EXECUTE FUNCTION race()",
        )
        .await
        .unwrap();
    drop(client);
    let _ = conn.await;
    let mut calls = vec![
        call("raced-1", 1, "sig-1"),
        call("raced-2", 2, "sig-elsewhere"),
    ];
    for i in 0..10 {
        calls.push(call(&format!("fresh-{i}"), i, &format!("sig-fresh-{i}")));
    }
    let out = one_group(&store, &calls).await;
    assert_eq!(
        count(&out, "raced-1", StoreOutcome::Duplicate),
        1,
        "{out:?}"
    );
    assert_eq!(count(&out, "raced-2", StoreOutcome::AlreadyAccepted), 1);
    for i in 0..10 {
        assert_eq!(count(&out, &format!("fresh-{i}"), StoreOutcome::Stored), 1);
    }
    // The messages were taken back; the other process's replay entries stay.
    let ids = inbox(&store).await;
    assert_eq!(ids.len(), 10, "{ids:?}");
    assert!(ids.iter().all(|id| id.starts_with("fresh-")));
    assert_eq!(
        store
            .get_replay("from:billing$vendorcorp.com", "raced-1", t(1))
            .await
            .unwrap()
            .as_deref(),
        Some("sig-elsewhere")
    );
}
