//! `cargo xtask bench store` (or `cargo bench -p btps-store-postgres --bench store`).
//!
//! Durable inserts per second of the PostgreSQL backend: an inbound invoice artifact stored in
//! an inbox together with its replay id ("store and mark seen", one transaction), by 1 writer
//! and by 32 concurrent writers (the server's group commit); also replay-set inserts alone and
//! a page fetch. The server is the tests' throwaway cluster (default settings,
//! `synchronous_commit = on`, `fsync = on`) or `BTPS_TEST_DATABASE_URL`.
//!
//! Under `cargo bench` (the binary gets `--bench`) it measures and judges the target
//! (≥ 3 000 artifacts/s with 32 writers); under `cargo test --all-targets` it is a quick
//! unoptimized smoke run that judges nothing.

#[allow(dead_code)]
#[path = "../tests/it/support.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use btps_store_postgres::{PgStore, PgStoreConfig};
use btps_trust::{
    Mailbox, MessageQuery, MessageStore, NewMessage, ReplayEntry, ReplayStore, StoreOutcome,
};
use btps_types::UnixMillis;
use btps_types::json::{Object, parse_str};

const TARGET_32: f64 = 3000.0;

fn now() -> UnixMillis {
    UnixMillis::from_millis(1_750_000_000_000)
}

fn artifact(id: &str) -> Object {
    let text = format!(
        r#"{{"version":"1.0.0","type":"BTPS_DOC","from":"billing$vendorcorp.com","to":"pay$client.com","selector":"btps1","id":"{id}","issuedAt":"2025-07-01T09:30:00.000Z","document":{{"title":"Invoice #INV-2025-0042","id":"INV-2025-0042","issuedAt":"2025-07-01T09:00:00.000Z","status":"unpaid","totalAmount":{{"value":1250.5,"currency":"USD"}},"lineItems":{{"columns":["Description","Quantity","Unit Price","Amount"],"rows":[{{"Description":"Consulting","Quantity":10,"Unit Price":125.05,"Amount":1250.5}}]}}}},"encryption":null,"signature":{{"algorithmHash":"sha256","value":"c2lnbmF0dXJlLXZhbHVlLWJhc2U2NC1vZi0yNTYtYnl0ZXMtcnNhLXNpZ25hdHVyZQ==","fingerprint":"ZmluZ2VycHJpbnQ="}}}}"#
    );
    parse_str(&text)
        .expect("artifact json")
        .value
        .as_object()
        .cloned()
        .expect("object")
}

/// Inserts by `writers` concurrent tasks for `dur` (or `max` inserts in total); returns
/// inserts per second.
async fn run_inserts(
    store: &Arc<PgStore>,
    writers: usize,
    dur: Duration,
    max: u64,
    tag: &str,
    with_message: bool,
) -> (f64, u64) {
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let store = Arc::clone(store);
        let count = Arc::clone(&count);
        let tag = tag.to_owned();
        tasks.spawn(async move {
            let mut n = 0u64;
            while start.elapsed() < dur && count.load(Ordering::Relaxed) < max {
                let id = format!("{tag}-{w}-{n}");
                let entry = ReplayEntry {
                    scope: "from:billing$vendorcorp.com".into(),
                    id: id.clone(),
                    signature: format!("sig-{id}"),
                    expires_at: now().saturating_add_millis(600_000),
                };
                if with_message {
                    let m = NewMessage::new("pay$client.com", Mailbox::Inbox, artifact(&id), now())
                        .expect("message");
                    let out = store.store(&m, Some(&entry), now()).await.expect("store");
                    assert_eq!(out, StoreOutcome::Stored);
                } else {
                    store
                        .insert_replay(&entry, now())
                        .await
                        .expect("replay insert");
                }
                n += 1;
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    tasks.join_all().await;
    let n = count.load(Ordering::Relaxed);
    (n as f64 / start.elapsed().as_secs_f64(), n)
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let millis: u64 = if measuring {
        std::env::var("BTPS_BENCH_MILLIS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000)
    } else {
        100
    };
    let dur = Duration::from_millis(millis);
    let max = if measuring { u64::MAX } else { 200 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    println!("btps store benchmark: PostgreSQL backend, {millis} ms per run");
    let results = rt.block_on(async {
        let url = support::fresh_database().await;
        let config = PgStoreConfig::new(url).with_pool_size(32);
        let store = Arc::new(PgStore::connect(&config).await.expect("open"));
        let mut results = Vec::new();
        for (name, writers, with_message) in [
            ("store artifact + replay id, 1 writer", 1, true),
            ("store artifact + replay id, 32 writers", 32, true),
            ("replay insert only, 1 writer", 1, false),
            ("replay insert only, 32 writers", 32, false),
        ] {
            let tag = format!("{writers}{with_message}");
            let (rate, n) = run_inserts(&store, writers, dur, max, &tag, with_message).await;
            results.push((name.to_owned(), rate, n));
        }
        let q = MessageQuery {
            limit: 100,
            sort: Some(btps_trust::SortOrder::Desc),
            ..MessageQuery::default()
        };
        let start = Instant::now();
        let mut pages = 0u64;
        while start.elapsed() < dur / 4 && (measuring || pages < 5) {
            let page = store
                .fetch("pay$client.com", Mailbox::Inbox, &q)
                .await
                .expect("fetch");
            assert_eq!(page.results.len().min(1), 1);
            pages += 1;
        }
        results.push((
            "fetch a page of 100 artifacts".to_owned(),
            pages as f64 / start.elapsed().as_secs_f64(),
            pages,
        ));
        results
    });

    println!();
    println!("{:<45} {:>12} {:>10}", "operation", "per second", "count");
    for (name, rate, n) in &results {
        println!("{name:<45} {rate:>12.0} {n:>10}");
    }
    let rate_32 = results
        .iter()
        .find(|(n, _, _)| n.starts_with("store artifact + replay id, 32"))
        .map_or(0.0, |r| r.1);
    println!();
    println!("durable artifacts/s with 32 writers: {rate_32:.0} (target >= {TARGET_32:.0})");
    let ok = rate_32 >= TARGET_32;
    match (measuring, ok) {
        (false, _) => {
            println!("targets: not judged (unoptimized smoke run; use `cargo xtask bench store`)")
        }
        (true, true) => println!("targets: met"),
        (true, false) => println!("targets: NOT met"),
    }
    if measuring && !ok {
        std::process::exit(1);
    }
}
