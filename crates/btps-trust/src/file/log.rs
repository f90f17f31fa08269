//! The append-only log: framed records with CRC32 checksums, group commit, torn-tail
//! recovery.
//!
//! File format: the 8-byte magic `BTPSLOG1`, then records
//! `[payload length: u32 LE][CRC32 of payload: u32 LE][payload]`, where the payload is
//! `[tag: u8][header length: u32 LE][header: compact JSON object][blob: raw bytes]`. Blobs
//! (artifact texts) are read back with positioned reads at their recorded offset.
//!
//! Group commit: writers append encoded records to a shared buffer (under the caller's state
//! lock, so the log order is the order in which the in-memory state changed) and wait; one
//! flusher thread writes everything buffered with one `write` and one `fdatasync`, then
//! wakes every writer whose record it covered. Concurrent writers therefore share syncs.
//! While writes are concurrent (the last sync covered more than one record) the flusher
//! starts a sync no sooner than the *sync interval* after the previous one began, so that
//! a busy log makes fewer, larger syncs: each sync costs the kernel a journal commit and a
//! device flush whatever its size. A lone writer (the last sync covered one record) is synced
//! at once.
//! If a write or sync fails the log is poisoned: every waiter and every later call gets
//! [`TrustError::Poisoned`] (the in-memory state may be ahead of the disk).

use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use btps_types::json::{Object, ParseLimits, Value, parse, write_object};
use tokio::sync::watch;

use crate::{Result, TrustError};

/// The file magic.
pub(crate) const MAGIC: &[u8; 8] = b"BTPSLOG1";
/// Buffered bytes that start a sync without waiting for the sync interval.
const SYNC_NOW_BYTES: usize = 1 << 20;
/// Largest payload accepted when reading (a 4 MiB artifact plus its header, with room).
const MAX_PAYLOAD: u32 = 64 * 1024 * 1024;
const FRAME: u64 = 8;

/// One decoded record.
pub(crate) struct Record {
    pub(crate) tag: u8,
    pub(crate) header: Object,
    /// Absolute file offset of the blob.
    pub(crate) blob_offset: u64,
    pub(crate) blob_len: u32,
}

/// Appends one encoded record to `buf`; returns the blob's offset relative to the record
/// start.
pub(crate) fn encode(buf: &mut Vec<u8>, tag: u8, header: &Object, blob: &[u8]) -> u64 {
    let start = buf.len();
    buf.extend_from_slice(&[0; 8]); // length and CRC, filled below
    buf.push(tag);
    buf.extend_from_slice(&[0; 4]);
    let h_start = buf.len();
    write_object(buf, header);
    let h_len = (buf.len() - h_start) as u32;
    buf[h_start - 4..h_start].copy_from_slice(&h_len.to_le_bytes());
    let blob_rel = (buf.len() - start) as u64;
    buf.extend_from_slice(blob);
    let payload_len = (buf.len() - start - 8) as u32;
    let crc = crc32fast::hash(&buf[start + 8..]);
    buf[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    blob_rel
}

/// What [`replay`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ReplayReport {
    pub(crate) records: u64,
    /// Bytes cut off the end: a torn tail of writes that were never acknowledged.
    pub(crate) truncated: u64,
    pub(crate) len: u64,
}

/// Reads every record of the log at `path` (creating it when missing) and cuts a torn tail.
///
/// A torn tail is what a crash during a group-commit write leaves: the first record that is
/// incomplete or fails its checksum, and everything after it. Those bytes were never
/// acknowledged (acknowledgement waits for the sync that covers them). They are preserved in
/// `<log>.torn-<offset>` before the log is truncated, unless they are all zero.
pub(crate) fn replay(
    path: &Path,
    mut apply: impl FnMut(Record) -> Result<()>,
) -> Result<ReplayReport> {
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| TrustError::io("create", path, e))?;
            f.write_all(MAGIC)
                .and_then(|()| f.sync_all())
                .map_err(|e| TrustError::io("write", path, e))?;
            super::durable::fsync_dir(&super::durable::parent_dir(path))?;
            return Ok(ReplayReport {
                len: FRAME,
                ..ReplayReport::default()
            });
        }
        Err(e) => return Err(TrustError::io("open", path, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| TrustError::io("stat", path, e))?
        .len();
    let mut r = BufReader::with_capacity(1 << 20, &file);
    let mut magic = [0u8; 8];
    if r.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Err(TrustError::corrupt(path, "not a btps log (bad magic)"));
    }
    let limits = ParseLimits {
        max_bytes: usize::MAX,
        max_depth: 64,
    };
    let mut report = ReplayReport::default();
    let mut pos = FRAME;
    let mut payload = Vec::new();
    loop {
        if pos == len {
            break;
        }
        let mut head = [0u8; 8];
        let torn = if len - pos < FRAME || r.read_exact(&mut head).is_err() {
            true
        } else {
            let plen = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            if !(5..=MAX_PAYLOAD).contains(&plen) || u64::from(plen) > len - pos - FRAME {
                true
            } else {
                payload.resize(plen as usize, 0);
                if r.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
                    true
                } else {
                    let h_len =
                        u32::from_le_bytes([payload[1], payload[2], payload[3], payload[4]]);
                    let h_end = 5 + h_len as usize;
                    if h_end > payload.len() {
                        return Err(TrustError::corrupt(
                            path,
                            format!("record at byte {pos}: header longer than the record"),
                        ));
                    }
                    let header = parse(&payload[5..h_end], &limits)
                        .ok()
                        .and_then(|p| match p.value {
                            Value::Object(o) => Some(o),
                            _ => None,
                        })
                        .ok_or_else(|| {
                            TrustError::corrupt(path, format!("record at byte {pos}: bad header"))
                        })?;
                    apply(Record {
                        tag: payload[0],
                        header,
                        blob_offset: pos + FRAME + h_end as u64,
                        blob_len: (payload.len() - h_end) as u32,
                    })
                    .map_err(|e| TrustError::corrupt(path, format!("record at byte {pos}: {e}")))?;
                    report.records += 1;
                    pos += FRAME + u64::from(plen);
                    false
                }
            }
        };
        if torn {
            drop(r);
            cut_tail(&mut file, path, pos, len)?;
            report.truncated = len - pos;
            report.len = pos;
            return Ok(report);
        }
    }
    report.len = len;
    Ok(report)
}

fn cut_tail(file: &mut File, path: &Path, pos: u64, len: u64) -> Result<()> {
    let mut tail = vec![0u8; usize::try_from(len - pos).unwrap_or(0)];
    file.read_exact_at(&mut tail, pos)
        .map_err(|e| TrustError::io("read", path, e))?;
    if tail.iter().any(|&b| b != 0) {
        let mut keep = path.as_os_str().to_owned();
        keep.push(format!(".torn-{pos}"));
        super::durable::write_atomic(Path::new(&keep), &tail)?;
    }
    file.set_len(pos)
        .and_then(|()| file.sync_all())
        .map_err(|e| TrustError::io("truncate", path, e))
}

/// The append side: buffer, flusher thread, sync notifications.
pub(crate) struct Log {
    path: PathBuf,
    shared: Arc<Shared>,
    flusher: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Signals the flusher that data is buffered, and waiters that a flush finished.
    wake: Condvar,
    /// The flusher waits for data (set and cleared under `pending`): only then does an
    /// append need to wake it.
    idle: AtomicBool,
    flushed: Condvar,
    synced: watch::Sender<SyncState>,
    file: Mutex<File>,
}

pub(crate) struct Pending {
    buf: Vec<u8>,
    /// Sequence number of the last appended record.
    appended: u64,
    /// Sequence number of the last record made durable.
    synced: u64,
    /// Syncs made.
    syncs: u64,
    /// Logical end of the log (file length plus buffered bytes).
    end: u64,
    closed: bool,
    failed: Option<String>,
}

#[derive(Clone, Debug, Default)]
struct SyncState {
    synced: u64,
    failed: Option<Arc<str>>,
}

/// What a writer waits for after appending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ticket(u64);

impl Log {
    /// Opens the log for appending at its current end (call [`replay`] first);
    /// `sync_interval`: see the module documentation (zero: sync as soon as anything is
    /// buffered).
    pub(crate) fn open(path: &Path, sync_interval: Duration) -> Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| TrustError::io("open", path, e))?;
        let end = file
            .metadata()
            .map_err(|e| TrustError::io("stat", path, e))?
            .len();
        let (synced, _) = watch::channel(SyncState::default());
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                buf: Vec::with_capacity(1 << 20),
                appended: 0,
                synced: 0,
                syncs: 0,
                end,
                closed: false,
                failed: None,
            }),
            wake: Condvar::new(),
            idle: AtomicBool::new(false),
            flushed: Condvar::new(),
            synced,
            file: Mutex::new(file),
        });
        let flusher = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("btps-log-flush".into())
                .spawn(move || flush_loop(&shared, sync_interval))
                .map_err(|e| TrustError::io("spawn flusher", path, e))?
        };
        Ok(Self {
            path: path.to_path_buf(),
            shared,
            flusher: Mutex::new(Some(flusher)),
        })
    }

    /// Locks the append buffer. Callers hold their state lock first (lock order: state, then
    /// pending).
    pub(crate) fn pending(&self) -> Result<MutexGuard<'_, Pending>> {
        let p = lock(&self.shared.pending);
        if let Some(f) = &p.failed {
            return Err(TrustError::Poisoned(f.clone()));
        }
        if p.closed {
            return Err(TrustError::Closed);
        }
        Ok(p)
    }

    /// `Ok` while the log accepts writes: not poisoned by a failed write, not closed.
    pub(crate) fn health(&self) -> Result<()> {
        self.pending().map(drop)
    }

    /// Appends a record to the buffer; returns its ticket and the absolute offset of its
    /// blob. Wake the flusher with [`Log::kick`] after the last append of an operation.
    pub(crate) fn append(p: &mut Pending, tag: u8, header: &Object, blob: &[u8]) -> (Ticket, u64) {
        let rel_start = p.buf.len();
        let blob_rel = encode(&mut p.buf, tag, header, blob);
        let blob_abs = p.end + blob_rel;
        p.end += (p.buf.len() - rel_start) as u64;
        p.appended += 1;
        (Ticket(p.appended), blob_abs)
    }

    /// The ticket covering everything appended so far (what a reader of the state must wait
    /// for before acknowledging what it saw).
    pub(crate) fn watermark(p: &Pending) -> Ticket {
        Ticket(p.appended)
    }

    /// Wakes the flusher when it waits for data (a flusher that is syncing, or letting a
    /// busy log's records gather, looks at the buffer before it waits again).
    pub(crate) fn kick(&self) {
        if self.shared.idle.load(Ordering::SeqCst) {
            self.shared.wake.notify_one();
        }
    }

    /// Waits until the record with `ticket` (and everything before it) is durable.
    pub(crate) async fn wait(&self, ticket: Ticket) -> Result<()> {
        let mut rx = self.shared.synced.subscribe();
        let state = rx
            .wait_for(|s| s.synced >= ticket.0 || s.failed.is_some())
            .await
            .map_err(|_| TrustError::Closed)?;
        if state.synced >= ticket.0 {
            Ok(())
        } else {
            Err(TrustError::Poisoned(
                state.failed.as_deref().unwrap_or("write failed").to_owned(),
            ))
        }
    }

    /// Blocks until everything appended is durable (used with the state lock held, for
    /// compaction; the flusher needs only the pending lock).
    pub(crate) fn drain_blocking(&self) -> Result<()> {
        let mut p = lock(&self.shared.pending);
        self.shared.wake.notify_one();
        while p.synced < p.appended && p.failed.is_none() {
            p = self
                .shared
                .flushed
                .wait(p)
                .unwrap_or_else(|e| e.into_inner());
        }
        match &p.failed {
            Some(f) => Err(TrustError::Poisoned(f.clone())),
            None => Ok(()),
        }
    }

    /// Swaps the log file for `new_path`'s content (compaction): the caller has drained the
    /// log and holds its state lock; `new_path` is renamed over the log and the directory
    /// synced.
    pub(crate) fn replace_file(&self, new_path: &Path) -> Result<()> {
        let mut file = lock(&self.shared.file);
        std::fs::rename(new_path, &self.path)
            .map_err(|e| TrustError::io("rename", &self.path, e))?;
        super::durable::fsync_dir(&super::durable::parent_dir(&self.path))?;
        let f = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| TrustError::io("open", &self.path, e))?;
        let end = f
            .metadata()
            .map_err(|e| TrustError::io("stat", &self.path, e))?
            .len();
        *file = f;
        lock(&self.shared.pending).end = end;
        Ok(())
    }

    /// Makes every later write of the log file fail (the file handle is swapped for a
    /// read-only one), as a full disk or a failing device would.
    #[cfg(test)]
    pub(crate) fn fail_writes_for_test(&self) {
        let read_only = File::open(&self.path).unwrap();
        *lock(&self.shared.file) = read_only;
    }

    /// Syncs made since the log was opened.
    #[cfg(test)]
    pub(crate) fn syncs(&self) -> u64 {
        lock(&self.shared.pending).syncs
    }

    /// Current logical end.
    pub(crate) fn end(&self) -> u64 {
        lock(&self.shared.pending).end
    }

    /// Stops the flusher after it wrote everything buffered.
    pub(crate) fn close(&self) {
        lock(&self.shared.pending).closed = true;
        self.shared.wake.notify_all();
        if let Some(h) = lock(&self.flusher).take() {
            let _ = h.join();
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.close();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn flush_loop(shared: &Shared, sync_interval: Duration) {
    let mut spare = Vec::with_capacity(1 << 20);
    // The start of the last sync, and whether it covered more than one record.
    let mut last_start: Option<Instant> = None;
    let mut concurrent = false;
    // Records covered by the syncs so far.
    let mut covered = 0;
    loop {
        let upto;
        {
            let mut p = lock(&shared.pending);
            while p.buf.is_empty() && !p.closed {
                shared.idle.store(true, Ordering::SeqCst);
                p = shared.wake.wait(p).unwrap_or_else(|e| e.into_inner());
                shared.idle.store(false, Ordering::SeqCst);
            }
            if p.buf.is_empty() {
                return; // closed and drained
            }
            // Busy: let more records join this sync, up to the interval after the last one.
            if concurrent
                && let Some(not_before) = last_start.and_then(|s| s.checked_add(sync_interval))
            {
                loop {
                    let now = Instant::now();
                    if now >= not_before || p.closed || p.buf.len() >= SYNC_NOW_BYTES {
                        break;
                    }
                    p = shared
                        .wake
                        .wait_timeout(p, not_before - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
            std::mem::swap(&mut p.buf, &mut spare);
            upto = p.appended;
        }
        last_start = Some(Instant::now());
        concurrent = upto - covered > 1;
        covered = upto;
        let result = {
            let mut f = lock(&shared.file);
            f.write_all(&spare).and_then(|()| f.sync_data())
        };
        spare.clear();
        let mut p = lock(&shared.pending);
        match result {
            Ok(()) => {
                p.synced = upto;
                p.syncs += 1;
                shared.synced.send_modify(|s| s.synced = upto);
                shared.flushed.notify_all();
            }
            Err(e) => {
                let msg = format!("write or fsync of the log failed: {e}");
                p.failed = Some(msg.clone());
                shared
                    .synced
                    .send_modify(|s| s.failed = Some(Arc::from(msg.as_str())));
                shared.flushed.notify_all();
                return;
            }
        }
    }
}

/// Reads a blob at an absolute offset.
pub(crate) fn read_blob(file: &File, path: &Path, offset: u64, len: u32) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| TrustError::io("read", path, e))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(n: u32) -> Object {
        Object::new().with("n", n)
    }

    #[tokio::test]
    async fn append_replay_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.log");
        assert_eq!(replay(&p, |_| Ok(())).unwrap().records, 0);
        let log = Log::open(&p, Duration::ZERO).unwrap();
        let mut offsets = Vec::new();
        let mut last = Ticket(0);
        for n in 0..10u32 {
            let mut pend = log.pending().unwrap();
            let (t, off) = Log::append(&mut pend, b'X', &hdr(n), format!("blob{n}").as_bytes());
            offsets.push(off);
            last = t;
        }
        log.kick();
        log.wait(last).await.unwrap();
        log.close();
        drop(log);
        let f = File::open(&p).unwrap();
        assert_eq!(read_blob(&f, &p, offsets[3], 5).unwrap(), b"blob3");
        let mut seen = Vec::new();
        let rep = replay(&p, |r| {
            assert_eq!(
                read_blob(&f, &p, r.blob_offset, r.blob_len).unwrap(),
                format!("blob{}", seen.len()).as_bytes()
            );
            seen.push(r.header.get("n").and_then(Value::as_f64).unwrap());
            Ok(())
        })
        .unwrap();
        assert_eq!((rep.records, rep.truncated), (10, 0));
        // Tear the last record: it is cut and kept aside; the other nine remain.
        let len = std::fs::metadata(&p).unwrap().len();
        let full = std::fs::read(&p).unwrap();
        std::fs::write(&p, &full[..(len - 3) as usize]).unwrap();
        let rep = replay(&p, |_| Ok(())).unwrap();
        assert_eq!(rep.records, 9);
        assert!(rep.truncated > 0);
        assert!(std::fs::read_dir(dir.path()).unwrap().count() == 2);
        // Garbage in a checksum: same.
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(replay(&p, |_| Ok(())).unwrap().records, 8);
        // A zero-filled tail is cut without keeping it.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[0u8; 4096]).unwrap();
        let rep = replay(&p, |_| Ok(())).unwrap();
        assert_eq!((rep.records, rep.truncated), (8, 4096));
    }

    /// Appends one record and waits until it is durable.
    async fn write_one(log: &Log, n: u32) {
        let ticket = {
            let mut pend = log.pending().unwrap();
            Log::append(&mut pend, b'X', &hdr(n), b"blob").0
        };
        log.kick();
        log.wait(ticket).await.unwrap();
    }

    fn open_log(dir: &tempfile::TempDir, interval: Duration) -> Arc<Log> {
        let p = dir.path().join("state.log");
        replay(&p, |_| Ok(())).unwrap();
        Arc::new(Log::open(&p, interval).unwrap())
    }

    #[tokio::test]
    async fn a_lone_writer_is_synced_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(&dir, Duration::from_millis(300));
        let start = Instant::now();
        for n in 0..5 {
            write_one(&log, n).await;
        }
        // Five syncs of one record each, none waiting for the 300 ms interval.
        assert_eq!(log.syncs(), 5);
        assert!(
            start.elapsed() < Duration::from_millis(300),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_syncs_spaced_by_the_interval() {
        const WRITERS: u32 = 16;
        const EACH: u32 = 20;
        let dir = tempfile::tempdir().unwrap();
        let interval = Duration::from_millis(25);
        let log = open_log(&dir, interval);
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..WRITERS {
            let log = Arc::clone(&log);
            tasks.spawn(async move {
                for n in 0..EACH {
                    write_one(&log, w * 1000 + n).await;
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let elapsed = start.elapsed();
        let syncs = log.syncs();
        // While writes are concurrent a sync starts at most once per interval (the first
        // syncs and one after a lone record may come sooner).
        let bound = u64::try_from(elapsed.as_millis() / interval.as_millis()).unwrap() + 4;
        assert!(syncs <= bound, "{syncs} syncs in {elapsed:?}");
        // ... so each covered many of the 320 records.
        assert!(syncs < u64::from(WRITERS * EACH) / 4, "{syncs} syncs");
        // Every record is durable and in order on disk.
        log.close();
        let mut seen = 0;
        replay(&dir.path().join("state.log"), |_| {
            seen += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, WRITERS * EACH);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closing_does_not_wait_out_the_interval() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(&dir, Duration::from_secs(30));
        // Two records in one sync make the log "busy": the next sync waits for the interval.
        let ticket = {
            let mut pend = log.pending().unwrap();
            Log::append(&mut pend, b'X', &hdr(1), b"a");
            Log::append(&mut pend, b'X', &hdr(2), b"b").0
        };
        log.kick();
        log.wait(ticket).await.unwrap();
        assert_eq!(log.syncs(), 1);
        let waiting = {
            let log = Arc::clone(&log);
            tokio::spawn(async move { write_one(&log, 3).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "the busy log waits for its interval"
        );
        let start = Instant::now();
        let closer = Arc::clone(&log);
        tokio::task::spawn_blocking(move || closer.close())
            .await
            .unwrap();
        waiting.await.unwrap();
        // Closing writes what is buffered at once.
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(log.syncs(), 2);
    }

    #[test]
    fn foreign_file_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.log");
        std::fs::write(&p, b"{\"not\":\"a log\"}").unwrap();
        assert!(matches!(
            replay(&p, |_| Ok(())),
            Err(TrustError::Corrupt { .. })
        ));
    }
}
