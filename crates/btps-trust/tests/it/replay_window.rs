//! Property test of the replay window (PROTOCOL.md §10) through the file backend.
//!
//! Artifacts arrive in any order of their reference times T (each fresh on arrival:
//! |now − T| ≤ W), reusing a few replay keys with one of two signature values, while the
//! clock advances and the store is purged, compacted and reopened at random moments. Each
//! accepted artifact's entry lives until T + W + 60 s (the §10.2 minimum) plus a random
//! margin (the server keeps entries longer, up to 2W after receipt). A plain model of the
//! replay set predicts every answer, and after every step:
//!
//! * an entry is never forgotten before its expiry, so never before T + W + 60 s;
//! * a re-send that still passes the freshness check is always caught: the same signature
//!   is `already accepted`, a different one `BTP_ERROR_DUPLICATE`.

use std::collections::HashMap;

use btps_trust::file::{FileStore, FileStoreConfig};
use btps_trust::{ReplayEntry, ReplayOutcome, ReplayStore};
use btps_types::UnixMillis;
use proptest::prelude::*;

/// W of §10.1 (the default 300 s).
const W: i64 = 300_000;
/// The §10.2 minimum beyond T + W.
const GRACE: i64 = 60_000;
const SIGNATURES: [&str; 2] = ["c2lnLWE=", "c2lnLWI="];

#[derive(Clone, Debug)]
enum Step {
    /// An accepted artifact arrives: key, signature, T − now (within ±W), extra lifetime.
    Arrive {
        key: usize,
        signature: usize,
        offset: i64,
        extra: i64,
    },
    Wait(i64),
    /// The clock moves to a key's expiry instant (or one millisecond past it), if later.
    ToExpiry {
        key: usize,
        past: bool,
    },
    Purge,
    Compact,
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0usize..4, 0usize..2, -W..=W, prop_oneof![Just(0i64), 0..2 * W]).prop_map(
            |(key, signature, offset, extra)| Step::Arrive { key, signature, offset, extra }
        ),
        4 => prop_oneof![0i64..10_000, 0..3 * W, Just(W + GRACE)].prop_map(Step::Wait),
        2 => (0usize..4, any::<bool>()).prop_map(|(key, past)| Step::ToExpiry { key, past }),
        1 => Just(Step::Purge),
        1 => Just(Step::Compact),
        1 => Just(Step::Reopen),
    ]
}

fn scope(key: usize) -> (String, String) {
    // Two scopes and two ids: the same id under another sender is another key.
    (
        format!(
            "from:{}",
            ["billing$vendorcorp.com", "pay$client.com"][key % 2]
        ),
        format!("id-{}", key / 2),
    )
}

/// What the model remembers of an accepted artifact.
#[derive(Clone, Debug)]
struct Accepted {
    signature: &'static str,
    t: UnixMillis,
    expires_at: UnixMillis,
}

/// Opens the store. Another test of this binary spawns child processes; a child forked
/// while this test held the `LOCK` file keeps a copy of its descriptor (and so the flock)
/// until it execs, so a reopen right after a drop may briefly find the directory in use.
fn open(dir: &std::path::Path, now: UnixMillis) -> FileStore {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match FileStore::open(&FileStoreConfig::new(dir), now) {
            Err(btps_trust::TrustError::InUse { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result.expect("store opens"),
        }
    }
}

async fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut now = UnixMillis::from_millis(1_750_000_000_000);
    let mut store = open(dir.path(), now);
    let mut model: HashMap<usize, Accepted> = HashMap::new();
    for step in steps {
        match step {
            Step::Arrive {
                key,
                signature,
                offset,
                extra,
            } => {
                let t = now.saturating_add_millis(offset);
                prop_assert!(now.abs_diff(t) <= W.unsigned_abs(), "fresh on arrival");
                let expires_at = t.saturating_add_millis(W + GRACE + extra);
                let (sc, id) = scope(key);
                let sig = SIGNATURES[signature];
                let entry = ReplayEntry {
                    scope: sc,
                    id,
                    signature: sig.to_owned(),
                    expires_at,
                };
                let got = store.insert_replay(&entry, now).await.unwrap();
                let live = model.get(&key).filter(|a| a.expires_at >= now);
                let want = match live {
                    Some(a) if a.signature == sig => ReplayOutcome::SameSignature,
                    Some(_) => ReplayOutcome::DifferentSignature,
                    None => ReplayOutcome::Inserted,
                };
                prop_assert_eq!(got, want, "key {} at {:?}", key, now);
                if got == ReplayOutcome::Inserted {
                    model.insert(
                        key,
                        Accepted {
                            signature: sig,
                            t,
                            expires_at,
                        },
                    );
                }
            }
            Step::Wait(ms) => now = now.saturating_add_millis(ms),
            Step::ToExpiry { key, past } => {
                if let Some(a) = model.get(&key) {
                    now = now.max(a.expires_at.saturating_add_millis(i64::from(past)));
                }
            }
            Step::Purge => {
                // Only expired entries go (the count can include entries a reopen read
                // back from the log after an earlier purge; they were expired already).
                store.purge_replay(now).await.unwrap();
                model.retain(|_, a| a.expires_at >= now);
            }
            Step::Compact => {
                store.compact(now).await.unwrap();
                model.retain(|_, a| a.expires_at >= now);
            }
            Step::Reopen => {
                store.close();
                drop(store);
                store = open(dir.path(), now);
            }
        }
        // The window: every entry is remembered until its expiry, and so at least until
        // T + W + 60 s; a re-send that passes freshness (|now − T| ≤ W) is always caught.
        for (key, a) in &model {
            let (sc, id) = scope(*key);
            let held = store.get_replay(&sc, &id, now).await.unwrap();
            if now <= a.expires_at {
                prop_assert_eq!(
                    held.as_deref(),
                    Some(a.signature),
                    "forgotten early: key {}",
                    key
                );
            } else {
                prop_assert_eq!(held, None);
            }
            prop_assert!(a.expires_at >= a.t.saturating_add_millis(W + GRACE));
            if now.abs_diff(a.t) <= W.unsigned_abs() {
                prop_assert!(now <= a.expires_at, "a fresh re-send would pass");
            }
        }
    }
    store.close();
    Ok(())
}

proptest! {
    // Every insert is an fsync: fewer cases, each a long history (about 5 s in a debug
    // build).
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn replay_window_holds_through_purge_compaction_and_reopen(
        steps in proptest::collection::vec(step(), 1..50)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(steps))?;
    }
}

/// The same signature re-sent at the last fresh instant, after purges and a reopen, is
/// still `already accepted`; one millisecond after the entry's expiry it is new again.
#[tokio::test]
async fn resend_at_the_edge_of_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let t = UnixMillis::from_millis(1_750_000_000_000);
    let entry = ReplayEntry {
        scope: "from:billing$vendorcorp.com".into(),
        id: "a1".into(),
        signature: SIGNATURES[0].into(),
        expires_at: t.saturating_add_millis(W + GRACE),
    };
    // Accepted at the earliest fresh instant (T − W), re-sent at the latest (T + W).
    let store = open(dir.path(), t);
    let first = t.saturating_add_millis(-W);
    assert_eq!(
        store.insert_replay(&entry, first).await.unwrap(),
        ReplayOutcome::Inserted
    );
    let last = t.saturating_add_millis(W);
    assert_eq!(store.purge_replay(last).await.unwrap(), 0);
    store.close();
    drop(store);
    let store = open(dir.path(), last);
    store.compact(last).await.unwrap();
    assert_eq!(
        store.insert_replay(&entry, last).await.unwrap(),
        ReplayOutcome::SameSignature
    );
    let other = ReplayEntry {
        signature: SIGNATURES[1].into(),
        ..entry.clone()
    };
    let edge = entry.expires_at;
    assert_eq!(
        store.insert_replay(&other, edge).await.unwrap(),
        ReplayOutcome::DifferentSignature
    );
    let after = edge.saturating_add_millis(1);
    assert_eq!(store.purge_replay(after).await.unwrap(), 1);
    assert_eq!(
        store.insert_replay(&other, after).await.unwrap(),
        ReplayOutcome::Inserted
    );
    store.close();
}
