//! `cargo xtask bench dns` (or `cargo bench -p btps-dns --bench dns`).
//!
//! 1. Cached lookup latency: `DnsCache::identity_keys` / `host` answered from a warm cache
//!    (median of batches; target < 1 µs).
//! 2. Queries per second through the in-process hickory-server on 127.0.0.1: the hickory
//!    resolver with caching off, one at a time and 32 concurrent lookups.
//!
//! `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it
//! (unoptimized): then it is a quick smoke run and targets are not judged.

use btps_test_support::dns_server as server;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use btps_dns::{CacheConfig, DnsCache, StaticTable, TxtResolver};
use btps_types::Identity;

const KEY: &str = "v=1.0.0;k=rsa;p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwLV1gJWYD4LsQTdkqRFN+E4LxkwwOc7BCT6E35PUizW4FHltRP4jBryaYkufBUkA8urahawG4Vr7vyhQjsscGWoEeiHUOfL+B8k6yqL+8/6JavPKSetgjlbuzLRiCabB01bj1T09I9Gwg2t9zxzEr22E8C11l/l5XNvf7nHTou7zc4OL8kATaAH1Z69+vLAbXG0QtSqovxcMJqtAbQwSlUG2il+PtCwGNyrYDaguoGqv4e4qVe786wP/eYVWrNUWpmYbB/Cl1n7wmZulvWWmd+vrsgwGTds69vkrJSt/LXbulFLs82xJB3UtqJu4Dw7VoUkvYpA292oau9VN2Ak4+wIDAQAB";
const KEY_NAME: &str = "btps1._btps.identity.billing.vendorcorp.test";
const HOST_NAME: &str = "_btps.host.vendorcorp.test";
const HOST: &str = "v=1.0.0;u=btps.vendorcorp.test:3443;s=btps1";

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Median nanoseconds per call over batches of `batch` calls, for `total` time.
async fn cached_latency<F, Fut>(total: Duration, batch: u32, mut op: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < total || samples.len() < 5 {
        let t = Instant::now();
        for _ in 0..batch {
            op().await;
        }
        samples.push(t.elapsed().as_nanos() as f64 / f64::from(batch));
    }
    median(samples)
}

/// Lookups per second of `op` with `concurrency` tasks (each passes its index), for `total`
/// time.
async fn rate<F, Fut>(total: Duration, concurrency: usize, op: F) -> (f64, u64)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let deadline = start + total;
    let mut tasks = Vec::new();
    for task in 0..concurrency {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            while Instant::now() < deadline {
                if op(task).await {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
            (ok, failed)
        }));
    }
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        let (o, f) = t.await.unwrap();
        ok += o;
        failed += f;
    }
    (ok as f64 / start.elapsed().as_secs_f64(), failed)
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
    let phase = Duration::from_millis(millis);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(measuring, phase));
}

async fn run(measuring: bool, phase: Duration) {
    println!("btps dns benchmark: {} per measurement", humantime(phase));

    // 1. Cached lookups (static table; the cache never asks it again once warm).
    let mut table = StaticTable::new();
    table.insert(KEY_NAME, [KEY]);
    table.insert(HOST_NAME, [HOST]);
    let dns = DnsCache::new(table);
    let billing = Identity::parse("billing$vendorcorp.test").unwrap();
    let nobody = Identity::parse("nobody$vendorcorp.test").unwrap();
    dns.identity_keys(&billing, "btps1").await.unwrap();
    dns.host("vendorcorp.test").await.unwrap();
    let _ = dns.identity_keys(&nobody, "btps1").await;
    let key_ns = cached_latency(phase, 1000, || async {
        black_box(
            dns.identity_keys(black_box(&billing), "btps1")
                .await
                .unwrap(),
        );
    })
    .await;
    let host_ns = cached_latency(phase, 1000, || async {
        black_box(dns.host(black_box("vendorcorp.test")).await.unwrap());
    })
    .await;
    let negative_ns = cached_latency(phase, 1000, || async {
        black_box(
            dns.identity_keys(black_box(&nobody), "btps1")
                .await
                .unwrap_err(),
        );
    })
    .await;
    let stats = dns.stats();
    assert_eq!(stats.queries, 3, "warm lookups never reach the resolver");

    // Cached lookups from both worker threads at once (lock contention).
    let shared = dns.clone();
    let shared_id = billing.clone();
    let (parallel_rate, _) = rate(phase, 4, move |_| {
        let dns = shared.clone();
        let id = shared_id.clone();
        async move { dns.identity_keys(&id, "btps1").await.is_ok() }
    })
    .await;

    // 2. Through the in-process DNS server, no caching: every lookup is a query.
    let srv = server::TestServer::start().await;
    const SELECTORS: usize = 32;
    for i in 0..SELECTORS {
        srv.add_txt(
            &format!("s{i}._btps.identity.billing.vendorcorp.test"),
            300,
            KEY,
        )
        .await;
    }
    let resolver = Arc::new(srv.resolver());
    let r = resolver.clone();
    let (sequential, seq_failed) = rate(phase, 1, move |_| {
        let r = r.clone();
        async move {
            r.lookup_txt("s0._btps.identity.billing.vendorcorp.test")
                .await
                .is_ok()
        }
    })
    .await;
    // Each task asks its own name: hickory merges identical queries in flight.
    let r = resolver.clone();
    let before = srv.queries();
    let (concurrent, conc_failed) = rate(phase, SELECTORS, move |i| {
        let r = r.clone();
        async move {
            r.lookup_txt(&format!("s{i}._btps.identity.billing.vendorcorp.test"))
                .await
                .is_ok()
        }
    })
    .await;
    let concurrent_queries = srv.queries() - before;
    // Uncached typed lookups (query + parse + key decoding), distinct names so that
    // nothing is coalesced.
    let uncached = DnsCache::with_config(resolver.clone(), CacheConfig::no_caching());
    let id2 = billing.clone();
    let before = srv.queries();
    let (typed, typed_failed) = rate(phase, SELECTORS, move |i| {
        let dns = uncached.clone();
        let id = id2.clone();
        async move { dns.identity_keys(&id, &format!("s{i}")).await.is_ok() }
    })
    .await;
    let typed_queries = srv.queries() - before;

    println!();
    println!(
        "{:<58} {:>12}",
        "cached lookup (warm DnsCache)", "ns/lookup"
    );
    println!("{:<58} {:>12.0}", "identity_keys hit (median)", key_ns);
    println!("{:<58} {:>12.0}", "host hit (median)", host_ns);
    println!(
        "{:<58} {:>12.0}",
        "identity_keys negative hit (median)", negative_ns
    );
    println!(
        "{:<58} {:>12.0}",
        "identity_keys hits/s, 4 tasks on 2 threads", parallel_rate
    );
    println!();
    println!(
        "{:<58} {:>12}",
        "through the in-process hickory-server (no cache)", "lookups/s"
    );
    println!(
        "{:<58} {:>12.0}",
        "raw TXT query, one at a time (UDP)", sequential
    );
    println!(
        "{:<58} {:>12.0}",
        format!("raw TXT queries, {SELECTORS} concurrent ({concurrent_queries} answered)"),
        concurrent
    );
    println!(
        "{:<58} {:>12.0}",
        format!("identity_keys uncached, {SELECTORS} concurrent ({typed_queries} queries)"),
        typed
    );
    println!(
        "failed lookups: {}",
        seq_failed + conc_failed + typed_failed
    );
    println!();
    let ok = key_ns < 1000.0 && host_ns < 1000.0;
    println!(
        "cached identity key lookup: {:.0} ns (target < 1000 ns)",
        key_ns
    );
    match (measuring, ok) {
        (false, _) => {
            println!("targets: not judged (unoptimized smoke run; use `cargo xtask bench dns`)")
        }
        (true, true) => println!("targets: met"),
        (true, false) => println!("targets: NOT met"),
    }
    if measuring && !ok {
        std::process::exit(1);
    }
}

fn humantime(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}
