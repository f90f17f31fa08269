//! `cargo xtask bench store` (or `cargo bench -p btps-trust --bench store`).
//!
//! Durable inserts per second of the file backend: an inbound invoice artifact stored in an
//! inbox together with its replay id ("store and mark seen", one durable step), by 1 writer
//! and by 32 concurrent writers (group commit); also replay-set inserts alone, a page fetch,
//! and reopening (log replay). The store lives in a temporary directory under the target
//! directory (a real disk: `/tmp` may be tmpfs, which has no fsync cost); its file system is
//! printed.
//!
//! Under `cargo bench` (the binary gets `--bench`) it measures and judges the target
//! (≥ 5 000 artifacts/s with 32 writers); under `cargo test --all-targets` it is a quick
//! unoptimized smoke run that judges nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use btps_trust::conformance::workload::{artifact, now, run_inserts};
use btps_trust::file::{FileStore, FileStoreConfig};
use btps_trust::{Mailbox, MessageQuery, MessageStore};

const TARGET_32: f64 = 5000.0;

fn file_system_of(path: &Path) -> String {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return "unknown".into();
    };
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mut best = ("unknown".to_owned(), 0);
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(dev), Some(mnt), Some(fs)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if path.starts_with(mnt) && mnt.len() >= best.1 {
            best = (format!("{fs} ({dev} on {mnt})"), mnt.len());
        }
    }
    best.0
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
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).expect("target tmp dir");
    let dir = tempfile::tempdir_in(base).expect("temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    println!(
        "btps store benchmark: file backend (append-only log, CRC32, group commit), {millis} ms per run"
    );
    println!("directory: {}", dir.path().display());
    println!("file system: {}", file_system_of(dir.path()));
    println!(
        "artifact: {} bytes (plain invoice), stored with its replay id in one durable step",
        btps_types::json::to_js_string(&artifact("x").into()).len()
    );

    let results = rt.block_on(async {
        let config = FileStoreConfig::new(dir.path());
        let store = Arc::new(FileStore::open(&config, now()).expect("open"));
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
        // Reads: one page of 100, newest first.
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
        let log_len = store.log_len();
        drop(store);
        let start = Instant::now();
        let reopened = FileStore::open(&config, now()).expect("reopen");
        let secs = start.elapsed().as_secs_f64();
        println!(
            "reopen (log replay) of a {:.1} MB log with {} records: {:.0} ms",
            log_len as f64 / 1e6,
            reopened.open_report().records,
            secs * 1000.0
        );
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
