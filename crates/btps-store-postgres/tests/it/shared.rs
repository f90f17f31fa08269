//! Several stores (separate pools and group-commit writers, standing in for separate server
//! processes) on one database, and the migrations.

use std::sync::Arc;

use btps_store_postgres::{MIGRATIONS, PgStore, PgStoreConfig};
use btps_trust::{
    Mailbox, MessageQuery, MessageStore, NewMessage, ReplayEntry, ReplayOutcome, ReplayStore,
    StoreOutcome,
};
use btps_types::UnixMillis;
use btps_types::json::Object;

use crate::support::Scope;

fn t(ms: i64) -> UnixMillis {
    UnixMillis::from_millis(1_750_000_000_000 + ms)
}

/// `n` stores on one new database of `dbs`.
pub(crate) async fn stores(dbs: &Scope, n: usize) -> Vec<Arc<PgStore>> {
    let url = dbs.fresh().await;
    let config = PgStoreConfig::new(url).with_pool_size(4);
    // Opened concurrently: the migrations run once, under the advisory lock.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let config = config.clone();
        tasks.spawn(async move { PgStore::connect(&config).await.map(Arc::new) });
    }
    tasks
        .join_all()
        .await
        .into_iter()
        .map(|s| s.expect("concurrent open"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opens_migrate_once() {
    let dbs = Scope::default();
    let stores = stores(&dbs, 6).await;
    let latest = MIGRATIONS.last().unwrap().version;
    assert!(stores.iter().all(|s| s.schema_version() == latest));
    // Reopening an up-to-date database changes nothing.
    let again = PgStore::connect(stores[0].config()).await.unwrap();
    assert_eq!(again.schema_version(), latest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_is_atomic_across_stores() {
    let dbs = Scope::default();
    let stores = stores(&dbs, 4).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32 {
        let s = Arc::clone(&stores[i % stores.len()]);
        tasks.spawn(async move {
            let e = ReplayEntry {
                scope: "from:a$b.com".into(),
                id: "shared".into(),
                signature: format!("sig{i}"),
                expires_at: t(600_000),
            };
            s.insert_replay(&e, t(0)).await.unwrap()
        });
    }
    let out = tasks.join_all().await;
    assert_eq!(
        out.iter()
            .filter(|o| **o == ReplayOutcome::Inserted)
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outbox_claims_are_exclusive_across_stores() {
    let dbs = Scope::default();
    let stores = stores(&dbs, 4).await;
    let owner = "billing$vendorcorp.com";
    for i in 0..200 {
        let a = Object::new().with("id", format!("o-{i}"));
        let m = NewMessage::new(owner, Mailbox::Outbox, a, t(i)).unwrap();
        assert_eq!(
            stores[0].store(&m, None, t(0)).await.unwrap(),
            StoreOutcome::Stored
        );
    }
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..16 {
        let s = Arc::clone(&stores[w % stores.len()]);
        tasks.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s.claim_due(t(1_000), t(60_000), 7).await.unwrap();
                if got.is_empty() {
                    break mine;
                }
                mine.extend(got.into_iter().map(|m| m.id));
            }
        });
    }
    let mut all: Vec<String> = tasks.join_all().await.into_iter().flatten().collect();
    assert_eq!(all.len(), 200, "every entry claimed once");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 200, "no entry claimed twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let dbs = Scope::default();
    let s = &stores(&dbs, 1).await[0];
    let (client, conn) = tokio_postgres::connect(&s.config().url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    client
        .batch_execute("INSERT INTO btps_schema_migrations (version, name) VALUES (999, 'future')")
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
    assert!(matches!(
        PgStore::connect(s.config()).await,
        Err(btps_store_postgres::PgStoreError::SchemaTooNew { found: 999, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_artifacts_from_two_stores_are_stored_once() {
    const N: u32 = 300;
    const WRITERS: u32 = 16;
    let dbs = Scope::default();
    let stores = stores(&dbs, 2).await;
    // Both stores (two server processes) get every artifact, in the same order, from 16
    // concurrent callers each. Odd ids reach the second store re-signed; every third reaches
    // it for another mailbox owner (another message key, the same replay key).
    let signature = |k: usize, n: u32| {
        if k == 1 && n % 2 == 1 {
            format!("resigned-{n}")
        } else {
            format!("sig-{n}")
        }
    };
    let owner = |k: usize, n: u32| {
        if k == 1 && n.is_multiple_of(3) {
            "ap$client.com"
        } else {
            "pay$client.com"
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (k, s) in stores.iter().enumerate() {
        for w in 0..WRITERS {
            let s = Arc::clone(s);
            tasks.spawn(async move {
                let mut out = Vec::new();
                for n in (w..N).step_by(WRITERS as usize) {
                    let id = format!("a-{n}");
                    let sig = signature(k, n);
                    let a = Object::new()
                        .with("id", id.as_str())
                        .with("sig", sig.as_str());
                    let m = NewMessage::new(owner(k, n), Mailbox::Inbox, a, t(0)).unwrap();
                    let e = ReplayEntry {
                        scope: "from:billing$vendorcorp.com".into(),
                        id,
                        signature: sig,
                        expires_at: t(600_000),
                    };
                    out.push((n, k, s.store(&m, Some(&e), t(0)).await.unwrap()));
                }
                out
            });
        }
    }
    let results: Vec<(u32, usize, StoreOutcome)> =
        tasks.join_all().await.into_iter().flatten().collect();
    let mut stored = 0;
    for n in 0..N {
        let of_n: Vec<_> = results.iter().filter(|r| r.0 == n).collect();
        assert_eq!(of_n.len(), 2);
        let winners: Vec<usize> = of_n
            .iter()
            .filter(|r| r.2 == StoreOutcome::Stored)
            .map(|r| r.1)
            .collect();
        assert_eq!(winners.len(), 1, "a-{n} stored once: {of_n:?}");
        let loser = of_n.iter().find(|r| r.2 != StoreOutcome::Stored).unwrap();
        let expected = if n % 2 == 0 {
            StoreOutcome::AlreadyAccepted
        } else {
            StoreOutcome::Duplicate
        };
        assert_eq!(loser.2, expected, "a-{n}");
        // What is stored, and the replay entry, are the winner's; the loser stored nothing.
        let id = format!("a-{n}");
        let (w, l) = (winners[0], loser.1);
        let sig = signature(w, n);
        let m = stores[0]
            .get_message(owner(w, n), Mailbox::Inbox, &id)
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(m.artifact.get_str("sig"), Some(sig.as_str()));
        if owner(l, n) != owner(w, n) {
            assert!(
                stores[0]
                    .get_message(owner(l, n), Mailbox::Inbox, &id)
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        assert_eq!(
            stores[1]
                .get_replay("from:billing$vendorcorp.com", &id, t(1))
                .await
                .unwrap(),
            Some(sig)
        );
        stored += 1;
    }
    let q = MessageQuery {
        limit: 1000,
        ..MessageQuery::default()
    };
    let mut total = 0;
    for o in ["pay$client.com", "ap$client.com"] {
        total += stores[1]
            .fetch(o, Mailbox::Inbox, &q)
            .await
            .unwrap()
            .results
            .len();
    }
    assert_eq!(total, stored);
}
