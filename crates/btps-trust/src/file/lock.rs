//! The cross-process lock convention shared with btps-node (proper-lockfile, PROTOCOL.md
//! §7.5): the directory `<file>.lock` is created atomically with `mkdir`; its holder
//! refreshes the directory's mtime at least every 2.5 s; a lock whose mtime is older than 5 s
//! is stale and may be removed; acquisition retries with backoff (100 ms doubling to 1 s) and
//! gives up after 10 s.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::{Result, TrustError};

/// Timing of the `<file>.lock` convention. The defaults are the protocol's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockOptions {
    /// A lock whose mtime is older than this is stale (default 5 s).
    pub stale: Duration,
    /// The holder refreshes the mtime this often (default 2.5 s).
    pub refresh: Duration,
    /// Give up after this long (default 10 s).
    pub timeout: Duration,
    /// First retry delay (default 100 ms), doubling up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Largest retry delay (default 1 s).
    pub max_backoff: Duration,
}

impl Default for LockOptions {
    fn default() -> Self {
        Self {
            stale: Duration::from_secs(5),
            refresh: Duration::from_millis(2500),
            timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        }
    }
}

/// The lock directory of `file`: `<file>.lock`.
pub(crate) fn lock_path(file: &Path) -> PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

type Stop = Arc<(Mutex<bool>, Condvar)>;

/// A held `<file>.lock` (the convention above); released (directory removed) on drop.
///
/// The JSON files of this backend take it around every read-modify-write; other files that
/// follow the same convention (a key ring, for example) can take it too.
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
    stop: Stop,
    refresher: Option<JoinHandle<()>>,
}

impl DirLock {
    /// Acquires the lock of `file`, waiting with backoff.
    ///
    /// # Errors
    ///
    /// [`TrustError::LockTimeout`] after `opts.timeout`; [`TrustError::Io`] when the lock
    /// directory cannot be created.
    pub fn acquire(file: &Path, opts: &LockOptions) -> Result<Self> {
        // proper-lockfile locks the resolved path (`realpath`): so do we, so that a symlinked
        // store file shares its lock with btps-node.
        let resolved = fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
        let path = lock_path(&resolved);
        let start = Instant::now();
        let mut delay = opts.initial_backoff;
        loop {
            match fs::create_dir(&path) {
                Ok(()) => return Ok(Self::held(path, opts.refresh)),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if remove_if_stale(&path, opts.stale)? {
                        continue;
                    }
                }
                Err(e) => return Err(TrustError::io("create lock", &path, e)),
            }
            let waited = start.elapsed();
            if waited >= opts.timeout {
                return Err(TrustError::LockTimeout {
                    path,
                    waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                });
            }
            std::thread::sleep(delay.min(opts.timeout - waited));
            delay = (delay * 2).min(opts.max_backoff);
        }
    }

    fn held(path: PathBuf, every: Duration) -> Self {
        let stop: Stop = Arc::new((Mutex::new(false), Condvar::new()));
        let refresher = {
            let stop = Arc::clone(&stop);
            let path = path.clone();
            std::thread::Builder::new()
                .name("btps-lock-refresh".into())
                .spawn(move || {
                    let (flag, cv) = &*stop;
                    let mut stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
                    while !*stopped {
                        let (guard, timeout) = cv
                            .wait_timeout(stopped, every)
                            .unwrap_or_else(|e| e.into_inner());
                        stopped = guard;
                        if timeout.timed_out() && !*stopped {
                            touch(&path);
                        }
                    }
                })
                .ok()
        };
        Self {
            path,
            stop,
            refresher,
        }
    }
}

/// Sets the lock directory's mtime to now (best effort: a failure shows up as a stale lock).
fn touch(path: &Path) {
    if let Ok(d) = File::open(path) {
        let _ = d.set_modified(SystemTime::now());
    }
}

/// Removes the lock directory when its mtime is older than `stale`; `true` if removed (or
/// gone meanwhile).
fn remove_if_stale(path: &Path, stale: Duration) -> Result<bool> {
    let age = |p: &Path| -> Option<Duration> {
        let m = fs::metadata(p).ok()?.modified().ok()?;
        Some(SystemTime::now().duration_since(m).unwrap_or_default())
    };
    match age(path) {
        None => Ok(true), // released meanwhile
        Some(a) if a > stale => {
            // Re-check right before removing, to narrow the window in which a fresh lock of
            // another process could be taken for the stale one.
            if age(path).is_some_and(|a| a > stale) {
                match fs::remove_dir(path) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(true),
                    Err(e) => Err(TrustError::io("remove stale lock", path, e)),
                }
            } else {
                Ok(false)
            }
        }
        Some(_) => Ok(false),
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        {
            let (flag, cv) = &*self.stop;
            *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
            cv.notify_all();
        }
        if let Some(h) = self.refresher.take() {
            let _ = h.join();
        }
        let _ = fs::remove_dir(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> LockOptions {
        LockOptions {
            stale: Duration::from_millis(400),
            refresh: Duration::from_millis(100),
            timeout: Duration::from_millis(300),
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        }
    }

    #[test]
    fn exclusive_then_released() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("trust.json");
        let held = DirLock::acquire(&f, &quick()).unwrap();
        assert!(lock_path(&f).is_dir());
        let e = DirLock::acquire(&f, &quick()).err().unwrap();
        assert!(matches!(e, TrustError::LockTimeout { .. }), "{e}");
        drop(held);
        assert!(!lock_path(&f).exists());
        drop(DirLock::acquire(&f, &quick()).unwrap());
    }

    #[test]
    fn held_lock_is_refreshed_and_not_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("trust.json");
        let opts = quick();
        let _held = DirLock::acquire(&f, &opts).unwrap();
        // Longer than `stale`: the refresher keeps it fresh, so a waiter gives up.
        std::thread::sleep(Duration::from_millis(600));
        let slow = LockOptions {
            timeout: Duration::from_millis(200),
            ..opts
        };
        assert!(DirLock::acquire(&f, &slow).is_err());
    }

    #[test]
    fn stale_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("trust.json");
        fs::create_dir(lock_path(&f)).unwrap();
        File::open(lock_path(&f))
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
        let start = Instant::now();
        let _l = DirLock::acquire(&f, &LockOptions::default()).unwrap();
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
