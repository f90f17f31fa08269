//! Crash safety of the server process: clients send signed documents over several TLS
//! connections (pipelined) and record every id whose reply was ok; the server is SIGKILLed at
//! a random point of that load and restarted on the same data directory. Every tenth trial
//! and after the last an agent lists the inbox page by page: every id acknowledged so far is
//! there exactly once. After every restart, acknowledged lines sent again are answered
//! `already accepted` and not stored twice; lines that were in flight at the kill, sent
//! again, end up stored exactly once whether or not they had been stored. Repeated on the
//! same data directory, so that a recovered store is itself recovered; with the file store
//! once with a torn record appended to its log, as a kill inside a large write leaves it. The
//! same trials (`TRIALS` kills, a load window of a fraction of a second each) run against the
//! file store and against PostgreSQL.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::pg::Scope;
use crate::postgres::on_postgres;
use crate::support::{
    BILLING, DataDir, FINANCE, LineClient, Reply, Rng, auth_request, billing_key, device_key,
    doc_line, heavy_test, inbox_ids, invoice, now, unique_id,
};

/// SIGKILLs per store.
const TRIALS: usize = 50;
const CONNECTIONS: usize = 4;
/// Lines per connection and trial (a load window of a fraction of a second).
const PER_CONNECTION: usize = 20;
/// Lines written at once on a connection before its replies are read.
const BATCH: usize = 5;
/// The inbox is listed in full after every this many trials and after the last one.
const LIST_EVERY: usize = 10;

/// Where the server under test keeps its state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Store {
    File,
    Postgres,
}

/// One pre-signed line.
#[derive(Clone)]
struct Line {
    id: String,
    text: String,
}

/// What one connection saw before the kill.
#[derive(Default)]
struct Sent {
    /// Lines whose reply was ok, in order.
    acked: Vec<Line>,
    /// Lines written whose replies never came.
    in_flight: Vec<Line>,
}

/// Signs `CONNECTIONS × PER_CONNECTION` documents for each trial, on two threads.
fn sign_all() -> Vec<Vec<Vec<Line>>> {
    let at = now();
    let per_trial = CONNECTIONS * PER_CONNECTION;
    let sign = move |range: std::ops::Range<usize>| {
        let key = billing_key();
        let document = invoice();
        range
            .map(|n| {
                let id = unique_id(&format!("crash-{n}"));
                Line {
                    text: doc_line(&id, at, &document, &key),
                    id,
                }
            })
            .collect::<Vec<_>>()
    };
    let total = TRIALS * per_trial;
    let half = thread::spawn(move || sign(0..total / 2));
    let mut all = sign(total / 2..total);
    all.splice(0..0, half.join().unwrap());
    all.chunks(per_trial)
        .map(|trial| trial.chunks(PER_CONNECTION).map(<[Line]>::to_vec).collect())
        .collect()
}

/// Sends `lines` in batches until they are done or the connection fails; every ok reply's
/// id goes to `acked` as soon as it is read.
fn load(client: &mut LineClient, lines: &[Line], acked: &AtomicUsize) -> Sent {
    let mut sent = Sent::default();
    for batch in lines.chunks(BATCH) {
        if client
            .write_lines(&batch.iter().map(|l| &l.text).collect::<Vec<_>>())
            .is_err()
        {
            sent.in_flight.extend_from_slice(batch);
            return sent;
        }
        for (i, line) in batch.iter().enumerate() {
            let Ok(text) = client.read_line() else {
                sent.in_flight.extend_from_slice(&batch[i..]);
                return sent;
            };
            let reply = Reply::parse(&text);
            assert!(reply.ok(), "{}: {:?}", line.id, reply.0);
            assert_eq!(reply.req_id(), Some(line.id.as_str()));
            sent.acked.push(line.clone());
            acked.fetch_add(1, Ordering::SeqCst);
        }
    }
    sent
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_artifact() {
    let mut dir = DataDir::new();
    sigkill_trials(&mut dir, Store::File);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_under_load_on_postgres_loses_no_acknowledged_artifact() {
    let scope = Scope::default();
    let url = scope.fresh().await;
    let mut dir = DataDir::new();
    on_postgres(&dir, &url);
    tokio::task::block_in_place(|| sigkill_trials(&mut dir, Store::Postgres));
}

/// `TRIALS` times: load, SIGKILL, restart, check (module documentation).
fn sigkill_trials(dir: &mut DataDir, store: Store) {
    let _heavy = heavy_test();
    let started = Instant::now();
    let mut rng = Rng::from_env_or_clock();
    dir.admin_ok(&[
        "trust",
        "set",
        BILLING,
        FINANCE,
        "--status",
        "accepted",
        "--privacy",
        "mixed",
    ]);
    let token = dir.admin_ok(&["agent", "token", FINANCE]);
    let trials = sign_all();
    let signed = started.elapsed();

    let mut server = dir.start();
    let device = device_key();
    let agent_id = {
        let mut client = server.connect();
        let auth = auth_request(&mut client, token.trim_end(), &device);
        assert!(auth.ok(), "{:?}", auth.0);
        auth.document()["agentId"].as_str().unwrap().to_owned()
    };

    let mut acked_all = BTreeSet::new();
    let mut in_flight_all = BTreeSet::new();
    let mut stored_all = 0;
    let mut report = Vec::new();
    let mut torn_tails = 0;
    let mut late_kills = 0;
    for (trial, connections) in trials.into_iter().enumerate() {
        let total = CONNECTIONS * PER_CONNECTION;
        // Kill after 10 %..75 % of the trial's lines were acknowledged.
        let kill_after =
            usize::try_from(rng.range(total as u64 / 10, total as u64 * 3 / 4)).unwrap();
        let acked = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = connections
            .into_iter()
            .map(|lines| {
                let mut client = server.connect();
                let acked = Arc::clone(&acked);
                thread::spawn(move || load(&mut client, &lines, &acked))
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked.load(Ordering::SeqCst) < kill_after {
            assert!(Instant::now() < deadline, "trial {trial}: load too slow");
            thread::sleep(Duration::from_micros(200));
        }
        server.kill();
        let sent: Vec<Sent> = clients.into_iter().map(|c| c.join().unwrap()).collect();
        let acked_now: Vec<&Line> = sent.iter().flat_map(|s| &s.acked).collect();
        // On a busy machine the last lines can be answered between the count and the kill:
        // such a trial kills an idle server, which proves less; a few are tolerated.
        late_kills += usize::from(acked_now.len() == total);
        acked_all.extend(acked_now.iter().map(|l| l.id.clone()));

        // A kill in the middle of a large write leaves a torn record at the end of the log
        // (rare with records this small): made by hand once.
        let tear = trial == 1 && store == Store::File;
        if tear {
            let mut record = 1000u32.to_le_bytes().to_vec();
            record.extend_from_slice(&[0xa5; 104]);
            let mut log = fs::OpenOptions::new()
                .append(true)
                .open(dir.path.join("store/state.log"))
                .unwrap();
            log.write_all(&record).unwrap();
        }

        // Restart on the same data directory: it opens cleanly and is ready.
        server = dir.start();
        assert_eq!(server.http_get("/readyz").0, 200);
        let torn = server.stderr().contains("cut a torn log tail");
        assert!(torn || !tear, "{}", server.stderr());
        torn_tails += usize::from(torn);
        if tear {
            let kept = fs::read_dir(dir.path.join("store"))
                .unwrap()
                .filter_map(Result::ok)
                .any(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("state.log.torn-")
                });
            assert!(kept, "the torn bytes are kept beside the log");
        }
        let mut client = server.connect();

        // Acknowledged lines sent again: already accepted.
        for _ in 0..8 {
            let n = usize::try_from(rng.range(0, acked_now.len() as u64)).unwrap();
            let reply = client.request(&acked_now[n].text);
            assert!(reply.ok(), "{:?}", reply.0);
            assert_eq!(reply.message(), "already accepted", "{:?}", reply.0);
        }
        // Lines in flight at the kill, sent again: stored now or before, once.
        let in_flight: Vec<&Line> = sent.iter().flat_map(|s| &s.in_flight).collect();
        let mut already = 0;
        for line in &in_flight {
            let reply = client.request(&line.text);
            assert!(reply.ok(), "{:?}", reply.0);
            already += usize::from(reply.message() == "already accepted");
        }

        in_flight_all.extend(in_flight.iter().map(|l| l.id.clone()));
        if (trial + 1) % LIST_EVERY == 0 || trial + 1 == TRIALS {
            let ids = inbox_ids(&mut client, &agent_id, &device);
            let unique: BTreeSet<&String> = ids.iter().collect();
            assert_eq!(unique.len(), ids.len(), "trial {trial}: an id stored twice");
            let missing: Vec<_> = acked_all.iter().filter(|id| !unique.contains(id)).collect();
            assert!(
                missing.is_empty(),
                "trial {trial}: acknowledged but lost: {missing:?}"
            );
            for id in &in_flight_all {
                assert!(unique.contains(id), "trial {trial}: {id} lost");
            }
            stored_all = ids.len();
        }
        report.push(format!(
            "kill after {}/{total} acks ({} in flight, {already} of them stored before the \
             kill{})",
            acked_now.len(),
            in_flight.len(),
            if torn {
                "; a torn log tail was cut"
            } else {
                ""
            }
        ));
    }
    server.stop();
    assert!(
        late_kills <= TRIALS / 10,
        "{late_kills} of {TRIALS} kills came after the load had ended"
    );
    let store = match store {
        Store::File => "file store",
        Store::Postgres => "PostgreSQL",
    };
    eprintln!(
        "crash test ({store}): {TRIALS} SIGKILLs under load ({late_kills} after the load had \
         ended; torn log tails cut on restart: {torn_tails}), {} acknowledged artifacts: 0 lost, 0 stored twice \
         ({stored_all} in the inbox); signing {signed:?}, total {:?}\n  {}",
        acked_all.len(),
        started.elapsed(),
        report.join("\n  ")
    );
}
