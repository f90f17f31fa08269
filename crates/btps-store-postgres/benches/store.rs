//! `cargo xtask bench store` (or `cargo bench -p btps-store-postgres --bench store`).
//!
//! Durable inserts per second of the PostgreSQL backend: an inbound invoice artifact stored in
//! an inbox together with its replay id ("store and mark seen", one atomic step), by 1 writer
//! and by 32 concurrent writers (the store's group commit: one commit per group of calls), and
//! for comparison by 32 writers without group commit (`writers = 0`: a transaction per call,
//! only the server's WAL flushes shared); also replay-set inserts alone and a page fetch. The server is the tests' throwaway cluster (default settings,
//! `synchronous_commit = on`, `fsync = on`) or `BTPS_TEST_DATABASE_URL`.
//!
//! Under `cargo bench` (the binary gets `--bench`) it measures and judges the target
//! (≥ 3 000 artifacts/s with 32 writers); under `cargo test --all-targets` it is a quick
//! unoptimized smoke run that judges nothing.

#[allow(dead_code)]
#[path = "../tests/it/support.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use btps_store_postgres::{PgStore, PgStoreConfig};
use btps_trust::conformance::workload::run_inserts;
use btps_trust::{Mailbox, MessageQuery, MessageStore};

const TARGET_32: f64 = 3000.0;

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
        // Dropped at the end on a server of the environment.
        let databases = support::Scope::default();
        let url = databases.fresh().await;
        let config = PgStoreConfig::new(url).with_pool_size(32);
        let store = Arc::new(PgStore::connect(&config).await.expect("open"));
        // The same database without group commit: every call commits on its own.
        let alone = Arc::new(
            PgStore::connect(&config.clone().with_writers(0))
                .await
                .expect("open"),
        );
        let mut results = Vec::new();
        for (name, s, writers, with_message) in [
            ("store artifact + replay id, 1 writer", &store, 1, true),
            ("store artifact + replay id, 32 writers", &store, 32, true),
            ("  the same, a commit per call", &alone, 32, true),
            ("replay insert only, 1 writer", &store, 1, false),
            ("replay insert only, 32 writers", &store, 32, false),
        ] {
            let tag = format!("{}{writers}{with_message}", results.len());
            let (rate, n) = run_inserts(s, writers, dur, max, &tag, with_message).await;
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
