// Scratch measurement behind docs/decisions/0001-file-message-store.md. Not part of the
// workspace. To rerun: a new binary crate with
//   [dependencies] crc32fast = "1"; redb = "4"; rusqlite = { version = "0.37", features = ["bundled"] }
// then `cargo run --release -- <dir on the real disk> <seconds per variant>`.
//! Scratch measurement of durable-insert designs for the BTPS message store (not part of the repo).
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const PAYLOAD: usize = 2048;

fn payload(i: u64) -> Vec<u8> {
    let mut v = format!("{{\"id\":\"{i:016}\",\"doc\":\"").into_bytes();
    v.resize(PAYLOAD - 2, b'x');
    v.extend_from_slice(b"\"}");
    v
}

fn run<F: Fn(u64) + Sync>(name: &str, writers: usize, dur: Duration, f: F) {
    let start = Instant::now();
    let count = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for w in 0..writers {
            let f = &f;
            let count = &count;
            s.spawn(move || {
                let mut i = 0u64;
                while start.elapsed() < dur {
                    f((w as u64) << 40 | i);
                    i += 1;
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    let n = count.into_inner();
    let rate = n as f64 / start.elapsed().as_secs_f64();
    println!("{name:<55} writers={writers:>2}  {rate:>9.0} inserts/s  ({n} in {:.2?})", start.elapsed());
}

fn fsync_dir(p: &Path) {
    File::open(p).unwrap().sync_all().unwrap();
}

struct GroupLog {
    state: Mutex<(Vec<u8>, u64, u64, bool)>, // buffer, appended seq, synced seq, flushing
    cv: Condvar,
    file: Mutex<File>,
}
impl GroupLog {
    fn append(&self, rec: &[u8]) {
        let mut g = self.state.lock().unwrap();
        let crc = crc32fast::hash(rec);
        g.0.extend_from_slice(&(rec.len() as u32).to_le_bytes());
        g.0.extend_from_slice(&crc.to_le_bytes());
        g.0.extend_from_slice(rec);
        g.1 += 1;
        let my = g.1;
        loop {
            if g.2 >= my {
                return;
            }
            if !g.3 {
                g.3 = true;
                let buf = std::mem::take(&mut g.0);
                let upto = g.1;
                drop(g);
                {
                    let mut f = self.file.lock().unwrap();
                    f.write_all(&buf).unwrap();
                    f.sync_data().unwrap();
                }
                g = self.state.lock().unwrap();
                g.2 = upto;
                g.3 = false;
                self.cv.notify_all();
            } else {
                g = self.cv.wait(g).unwrap();
            }
        }
    }
}

fn main() {
    let base: PathBuf = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| "/tmp/storebench".into());
    let secs: f64 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let dur = Duration::from_secs_f64(secs);
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(&base).unwrap();
    println!("payload {PAYLOAD} bytes, dir {}", base.display());

    // 0. whole-file rewrite of a JSON store holding 1000 records (tmp+fsync+rename+dir fsync)
    {
        let dir = base.join("rewrite");
        fs::create_dir_all(&dir).unwrap();
        let body: Vec<u8> = (0..1000).flat_map(|i| payload(i)).collect();
        let lock = Mutex::new(());
        run("whole-file rewrite (1000 x 2 KiB records)", 1, dur, |_| {
            let _g = lock.lock().unwrap();
            let tmp = dir.join("store.json.tmp");
            let mut f = File::create(&tmp).unwrap();
            f.write_all(&body).unwrap();
            f.sync_all().unwrap();
            fs::rename(&tmp, dir.join("store.json")).unwrap();
            fsync_dir(&dir);
        });
    }
    // 1. maildir: one file per artifact
    for writers in [1, 32] {
        let dir = base.join(format!("maildir{writers}"));
        fs::create_dir_all(dir.join("tmp")).unwrap();
        fs::create_dir_all(dir.join("new")).unwrap();
        run("maildir (file, fsync, rename, fsync dir)", writers, dur, |i| {
            let tmp = dir.join("tmp").join(format!("{i:x}"));
            let mut f = File::create(&tmp).unwrap();
            f.write_all(&payload(i)).unwrap();
            f.sync_all().unwrap();
            fs::rename(&tmp, dir.join("new").join(format!("{i:x}"))).unwrap();
            fsync_dir(&dir.join("new"));
        });
    }
    // 2. append-only log with CRC32 + group commit (leader/follower)
    for writers in [1, 32] {
        let path = base.join(format!("log{writers}.log"));
        let log = GroupLog {
            state: Mutex::new((Vec::new(), 0, 0, false)),
            cv: Condvar::new(),
            file: Mutex::new(OpenOptions::new().create(true).append(true).open(&path).unwrap()),
        };
        run("append log + CRC32 + group commit (fdatasync)", writers, dur, |i| {
            log.append(&payload(i));
        });
    }
    // 3. redb, one write transaction per insert (Durability::Immediate, the default)
    for writers in [1, 32] {
        let path = base.join(format!("redb{writers}.redb"));
        let db = Arc::new(redb::Database::create(&path).unwrap());
        const T: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("m");
        run("redb, one commit per insert", writers, dur, |i| {
            let tx = db.begin_write().unwrap();
            {
                let mut t = tx.open_table(T).unwrap();
                t.insert(i, payload(i).as_slice()).unwrap();
            }
            tx.commit().unwrap();
        });
    }
    // 3b. redb with group commit: a leader commits every pending insert in one transaction
    for writers in [1, 32] {
        let path = base.join(format!("redbgc{writers}.redb"));
        let db = redb::Database::create(&path).unwrap();
        const T: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("m");
        let state: Mutex<(Vec<(u64, Vec<u8>)>, u64, u64, bool)> = Mutex::new((Vec::new(), 0, 0, false));
        let cv = Condvar::new();
        run("redb + group commit (one txn per batch)", writers, dur, |i| {
            let mut g = state.lock().unwrap();
            g.0.push((i, payload(i)));
            g.1 += 1;
            let my = g.1;
            loop {
                if g.2 >= my { return; }
                if !g.3 {
                    g.3 = true;
                    let batch = std::mem::take(&mut g.0);
                    let upto = g.1;
                    drop(g);
                    let tx = db.begin_write().unwrap();
                    {
                        let mut t = tx.open_table(T).unwrap();
                        for (k, v) in &batch { t.insert(*k, v.as_slice()).unwrap(); }
                    }
                    tx.commit().unwrap();
                    g = state.lock().unwrap();
                    g.2 = upto; g.3 = false; cv.notify_all();
                } else {
                    g = cv.wait(g).unwrap();
                }
            }
        });
    }
    // 4. SQLite WAL, synchronous=FULL, one transaction per insert
    for writers in [1, 32] {
        let path = base.join(format!("sqlite{writers}.db"));
        {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.pragma_update(None, "journal_mode", "WAL").unwrap();
            c.execute_batch("CREATE TABLE m (id INTEGER PRIMARY KEY, body BLOB NOT NULL)").unwrap();
        }
        let conns: Vec<Mutex<rusqlite::Connection>> = (0..writers)
            .map(|_| {
                let c = rusqlite::Connection::open(&path).unwrap();
                c.pragma_update(None, "synchronous", "FULL").unwrap();
                c.busy_timeout(Duration::from_secs(30)).unwrap();
                Mutex::new(c)
            })
            .collect();
        run("SQLite WAL synchronous=FULL, one txn per insert", writers, dur, |i| {
            let c = conns[(i >> 40) as usize].lock().unwrap();
            c.execute("INSERT INTO m (id, body) VALUES (?1, ?2)", rusqlite::params![i as i64, payload(i)]).unwrap();
        });
    }
    let _ = fs::remove_dir_all(&base);
}
