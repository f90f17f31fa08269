//! Several stores (separate pools, standing in for separate server processes) on one
//! database, and the migrations.

use std::sync::Arc;

use btps_store_postgres::{MIGRATIONS, PgStore, PgStoreConfig};
use btps_trust::{
    Mailbox, MessageStore, NewMessage, ReplayEntry, ReplayOutcome, ReplayStore, StoreOutcome,
};
use btps_types::UnixMillis;
use btps_types::json::Object;

use crate::support::fresh_database;

fn t(ms: i64) -> UnixMillis {
    UnixMillis::from_millis(1_750_000_000_000 + ms)
}

async fn stores(n: usize) -> Vec<Arc<PgStore>> {
    let url = fresh_database().await;
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
    let stores = stores(6).await;
    let latest = MIGRATIONS.last().unwrap().version;
    assert!(stores.iter().all(|s| s.schema_version() == latest));
    // Reopening an up-to-date database changes nothing.
    let again = PgStore::connect(stores[0].config()).await.unwrap();
    assert_eq!(again.schema_version(), latest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_is_atomic_across_stores() {
    let stores = stores(4).await;
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
    let stores = stores(4).await;
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
    let s = &stores(1).await[0];
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
