//! A JSON store file in btps-node's layout (PROTOCOL.md §7.5): `{"<entity>": [record, ...]}`
//! or a bare array, 2-space indented; read-modify-write under the `<file>.lock` convention,
//! durable atomic replacement, re-read when the file changed underneath.

use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use btps_types::json::{Object, ParseLimits, Value, parse};

use super::durable::write_atomic;
use super::lock::{DirLock, LockOptions};
use crate::codec::to_pretty;
use crate::{Result, TrustError};

/// Layout of a JSON store file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `{"<entity name>": [records]}` (btps-node with an entity name, e.g. `trusted_senders`).
    Entity(String),
    /// A bare array of records (btps-node without an entity name).
    Bare,
}

impl Layout {
    fn wrap(&self, records: Vec<Value>) -> Value {
        match self {
            Self::Entity(name) => Value::Object(Object::new().with(name.as_str(), records)),
            Self::Bare => Value::Array(records),
        }
    }
}

/// A record kept in a JSON store file.
pub(crate) trait FileRecord: Clone + Send + 'static {
    /// The index key (trust id, identity id).
    fn key(&self) -> String;
    fn to_object(&self) -> Object;
    fn from_object(o: &Object) -> Result<Self>;
}

/// What identifies a version of the file: a rename (our writes, btps-node's writes) changes the
/// inode; an in-place edit changes size or mtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    ino: u64,
    dev: u64,
}

pub(crate) struct Snapshot<R> {
    pub(crate) layout: Layout,
    pub(crate) records: Vec<R>,
    index: HashMap<String, usize>,
}

impl<R: FileRecord> Snapshot<R> {
    fn new(layout: Layout, records: Vec<R>) -> Self {
        let index = records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.key(), i))
            .collect();
        Self {
            layout,
            records,
            index,
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&R> {
        self.index.get(key).map(|&i| &self.records[i])
    }

    /// Replaces the record with this key in place, or appends it.
    pub(crate) fn upsert(&mut self, record: R) {
        let key = record.key();
        match self.index.get(&key) {
            Some(&i) => self.records[i] = record,
            None => {
                self.index.insert(key, self.records.len());
                self.records.push(record);
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &str) -> bool {
        let before = self.records.len();
        self.records.retain(|r| r.key() != key);
        let removed = self.records.len() != before;
        if removed {
            self.index = self
                .records
                .iter()
                .enumerate()
                .map(|(i, r)| (r.key(), i))
                .collect();
        }
        removed
    }
}

impl<R: Clone> Clone for Snapshot<R> {
    fn clone(&self) -> Self {
        Self {
            layout: self.layout.clone(),
            records: self.records.clone(),
            index: self.index.clone(),
        }
    }
}

struct Cache<R> {
    stamp: Option<Stamp>,
    snapshot: Snapshot<R>,
    /// When a `stat` last confirmed `snapshot` (or our own write produced it).
    checked: Option<Instant>,
    /// `stat` calls made (for tests).
    stats: u64,
}

pub(crate) struct JsonFile<R> {
    path: PathBuf,
    default_layout: Layout,
    lock: LockOptions,
    cache: Mutex<Cache<R>>,
}

impl<R: FileRecord> JsonFile<R> {
    /// Opens (reads) the file; a missing file is an empty store in `default_layout`, created
    /// on the first write.
    pub(crate) fn open(path: PathBuf, default_layout: Layout, lock: LockOptions) -> Result<Self> {
        let (stamp, snapshot) = load(&path, &default_layout)?;
        Ok(Self {
            path,
            default_layout,
            lock,
            cache: Mutex::new(Cache {
                stamp,
                snapshot,
                checked: Some(Instant::now()),
                stats: 0,
            }),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the file and re-reads it when it changed; `true` when it was re-read.
    fn refresh(&self, cache: &mut Cache<R>) -> Result<bool> {
        let checked = Instant::now();
        cache.stats += 1;
        // Until this check succeeds, nothing is answered from memory.
        cache.checked = None;
        let now = stamp(&self.path)?;
        let changed = now != cache.stamp;
        if changed {
            let (stamp, snapshot) = load(&self.path, &self.default_layout)?;
            cache.stamp = stamp;
            cache.snapshot = snapshot;
        }
        cache.checked = Some(checked);
        Ok(changed)
    }

    /// Like [`JsonFile::read`], but an answer that `settled` accepts may come from content
    /// checked against the file less than `max_age` ago (no `stat`); any other answer is
    /// checked against the file first, and taken again when the file changed. So what
    /// another process adds is seen at once, and
    /// what it takes away (a settled answer) within `max_age`.
    pub(crate) fn read_settled<T>(
        &self,
        max_age: Duration,
        f: impl Fn(&Snapshot<R>) -> T,
        settled: impl FnOnce(&T) -> bool,
    ) -> Result<T> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let answer = if cache.checked.is_some_and(|at| at.elapsed() < max_age) {
            let a = f(&cache.snapshot);
            if settled(&a) {
                return Ok(a);
            }
            Some(a)
        } else {
            None
        };
        let changed = self.refresh(&mut cache)?;
        match answer {
            // The file has not changed since the answer was taken.
            Some(a) if !changed => Ok(a),
            _ => Ok(f(&cache.snapshot)),
        }
    }

    /// `stat` calls made so far.
    #[cfg(test)]
    pub(crate) fn stats(&self) -> u64 {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).stats
    }

    /// Runs `f` on the current content (re-read first when the file changed).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Snapshot<R>) -> T) -> Result<T> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        self.refresh(&mut cache)?;
        Ok(f(&cache.snapshot))
    }

    /// Read-modify-write under the cross-process lock: re-read when changed, apply `f` to a
    /// copy, and when `f` reports a change write the file durably before returning.
    pub(crate) fn update<T>(
        &self,
        f: impl FnOnce(&mut Snapshot<R>) -> Result<(T, bool)>,
    ) -> Result<T> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let _lock = DirLock::acquire(&self.path, &self.lock)?;
        self.refresh(&mut cache)?;
        let mut next = cache.snapshot.clone();
        let (out, changed) = f(&mut next)?;
        if changed {
            let records = next
                .records
                .iter()
                .map(|r| Value::Object(r.to_object()))
                .collect();
            let text = to_pretty(&next.layout.wrap(records));
            if let Err(e) = write_atomic(&self.path, text.as_bytes()) {
                cache.stamp = None; // unknown state on disk: re-read next time
                cache.checked = None;
                return Err(e);
            }
            cache.stamp = stamp(&self.path)?;
            cache.snapshot = next;
            cache.checked = Some(Instant::now());
        }
        Ok(out)
    }
}

fn stamp(path: &Path) -> Result<Option<Stamp>> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(Stamp {
            len: m.len(),
            modified: m.modified().ok(),
            ino: m.ino(),
            dev: m.dev(),
        })),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TrustError::io("stat", path, e)),
    }
}

fn load<R: FileRecord>(
    path: &Path,
    default_layout: &Layout,
) -> Result<(Option<Stamp>, Snapshot<R>)> {
    // Stat before reading: if the file is replaced in between we re-read next time.
    let st = stamp(path)?;
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Ok((None, Snapshot::new(default_layout.clone(), Vec::new())));
        }
        Err(e) => return Err(TrustError::io("read", path, e)),
    };
    let limits = ParseLimits {
        max_bytes: usize::MAX,
        max_depth: 128,
    };
    // An empty or torn file is corrupt: never an empty store.
    let parsed = parse(&bytes, &limits).map_err(|e| TrustError::corrupt(path, e.to_string()))?;
    let (layout, items) = match &parsed.value {
        Value::Array(a) => (Layout::Bare, a.as_slice()),
        Value::Object(o) if o.len() == 1 => {
            let (name, v) = o
                .iter()
                .next()
                .map(|(k, v)| (k.to_string(), v))
                .ok_or_else(|| TrustError::corrupt(path, "empty object"))?;
            match v.as_array() {
                Some(a) => (Layout::Entity(name), a),
                None => {
                    return Err(TrustError::corrupt(
                        path,
                        format!("member {name:?} is not an array of records"),
                    ));
                }
            }
        }
        _ => {
            return Err(TrustError::corrupt(
                path,
                "expected an array of records or an object with one array member",
            ));
        }
    };
    let mut records = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let o = item
            .as_object()
            .ok_or_else(|| TrustError::corrupt(path, format!("record {i} is not an object")))?;
        records.push(
            R::from_object(o).map_err(|e| TrustError::corrupt(path, format!("record {i}: {e}")))?,
        );
    }
    Ok((st, Snapshot::new(layout, records)))
}
