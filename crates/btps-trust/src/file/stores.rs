//! [`JsonTrustStore`], and [`FileStore`]: every store trait over one data directory.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use btps_types::UnixMillis;
use btps_types::json::Object;

use super::json_file::{FileRecord, JsonFile, Layout, Snapshot};
use super::lock::LockOptions;
use super::state::{LogStore, OpenReport};
use crate::id::TokenHash;
use crate::identity::IdentityRecord;
use crate::record::{TrustRecord, TrustStatus};
use crate::store::{
    CasOutcome, DeliveryOutcome, Expected, IdentityStore, Mailbox, MessagePage, MessageQuery,
    MessageStore, NewMessage, Page, PageRequest, ReplayEntry, ReplayOutcome, ReplayStore,
    StoreOutcome, StoredMessage, TokenKind, TokenOutcome, TokenRecord, TrustFilter, TrustStore,
};
use crate::{Result, TrustError, compute_id};

/// btps-node's default entity name of the trust file (`{"trusted_senders": [...]}`).
pub const TRUST_ENTITY: &str = "trusted_senders";
/// Entity name of the identity file written by this crate (`{"identities": [...]}`).
pub const IDENTITY_ENTITY: &str = "identities";

impl FileRecord for TrustRecord {
    /// The computed trust id, so that a record is found by `trustId(sender, receiver)` even
    /// if a file holds an `id` written by another algorithm.
    fn key(&self) -> String {
        self.computed_id()
    }
    fn to_object(&self) -> Object {
        Self::to_object(self)
    }
    fn from_object(o: &Object) -> Result<Self> {
        Self::from_object(o)
    }
}

impl FileRecord for IdentityRecord {
    fn key(&self) -> String {
        compute_id(self.identity.as_str())
    }
    fn to_object(&self) -> Object {
        Self::to_object(self)
    }
    fn from_object(o: &Object) -> Result<Self> {
        Self::from_object(o)
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TrustError::Backend(Box::new(e)))?
}

fn page_of<R: FileRecord>(
    snap: &Snapshot<R>,
    keep: impl Fn(&R) -> bool,
    page: &PageRequest,
) -> Result<Page<R>> {
    if let Some(c) = &page.cursor
        && (c.len() != 64 || !c.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(TrustError::InvalidCursor);
    }
    let mut all: Vec<(String, &R)> = snap
        .records
        .iter()
        .filter(|r| keep(r))
        .map(|r| (r.key(), r))
        .filter(|(k, _)| page.cursor.as_ref().is_none_or(|c| k > c))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all.dedup_by(|a, b| a.0 == b.0);
    let limit = page.effective_limit();
    let next_cursor = (all.len() > limit).then(|| all[limit - 1].0.clone());
    Ok(Page {
        items: all
            .into_iter()
            .take(limit)
            .map(|(_, r)| r.clone())
            .collect(),
        next_cursor,
    })
}

/// Options of a JSON store file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonFileOptions {
    /// The layout written when the file does not exist yet (an existing file keeps its own).
    pub default_layout: Layout,
    /// The `<file>.lock` timing.
    pub lock: LockOptions,
}

impl JsonFileOptions {
    /// The trust-file defaults: `{"trusted_senders": [...]}`, protocol lock timing.
    pub fn trust() -> Self {
        Self {
            default_layout: Layout::Entity(TRUST_ENTITY.to_owned()),
            lock: LockOptions::default(),
        }
    }

    /// The identity-file defaults: `{"identities": [...]}`, protocol lock timing.
    pub fn identities() -> Self {
        Self {
            default_layout: Layout::Entity(IDENTITY_ENTITY.to_owned()),
            lock: LockOptions::default(),
        }
    }
}

/// The trust store file in btps-node's layout (PROTOCOL.md §7.5), usable on its own (for
/// example on `.well-known/btps-trust.json` shared with a btps-node process).
///
/// Reads re-read the file when its inode, size or mtime changed; every mutation is a
/// read-modify-write under the `<file>.lock` directory lock, written durably (temporary
/// file, fsync, rename, fsync of the directory) before the call returns. The layout read
/// (entity object or bare array) is the layout written back. A file that is not valid JSON
/// of that shape is reported as [`TrustError::Corrupt`] and left untouched.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use btps_trust::{TrustRecord, TrustStatus, TrustStore, file::JsonTrustStore};
/// use btps_types::UnixMillis;
/// let dir = tempfile::tempdir().unwrap();
/// let store = JsonTrustStore::open(dir.path().join("btps-trust.json")).unwrap();
/// let r = TrustRecord::new("billing$vendorcorp.com", "pay$client.com", TrustStatus::Pending,
///     UnixMillis::from_millis(0));
/// store.put_trust(&r).await.unwrap();
/// assert_eq!(store.get_trust(&r.id).await.unwrap(), Some(r));
/// let text = std::fs::read_to_string(dir.path().join("btps-trust.json")).unwrap();
/// assert!(text.starts_with("{\n  \"trusted_senders\": [\n    {\n      \"id\": "));
/// # });
/// ```
#[derive(Clone)]
pub struct JsonTrustStore {
    file: Arc<JsonFile<TrustRecord>>,
}

impl JsonTrustStore {
    /// Opens the trust file with the defaults ([`JsonFileOptions::trust`]).
    ///
    /// # Errors
    ///
    /// [`TrustError::Corrupt`] for an unreadable file; I/O errors.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        Self::open_with(path, JsonFileOptions::trust())
    }

    /// Opens the trust file with explicit options.
    ///
    /// # Errors
    ///
    /// [`TrustError::Corrupt`] for an unreadable file; I/O errors.
    pub fn open_with(path: impl Into<PathBuf>, options: JsonFileOptions) -> Result<Self> {
        Ok(Self {
            file: Arc::new(JsonFile::open(
                path.into(),
                options.default_layout,
                options.lock,
            )?),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The layout of the file as last read (or the default for a missing file).
    ///
    /// # Errors
    ///
    /// As a read.
    pub fn layout(&self) -> Result<Layout> {
        self.file.read(|s| s.layout.clone())
    }
}

#[async_trait]
impl TrustStore for JsonTrustStore {
    async fn get_trust(&self, id: &str) -> Result<Option<TrustRecord>> {
        // On the hot path of every artifact: read in place instead of a blocking-pool
        // hand-off. An accepted record checked against the file less than
        // `TRUST_RECHECK` ago is answered without a `stat`; any other answer (no record,
        // pending, revoked, blocked) is checked first, so a record another process adds or
        // accepts is seen at once, and one it revokes or blocks within `TRUST_RECHECK`.
        let id = id.to_ascii_lowercase();
        self.file.read_settled(
            TRUST_RECHECK,
            |s| s.get(&id).cloned(),
            |r| {
                r.as_ref()
                    .is_some_and(|r| r.status == TrustStatus::Accepted)
            },
        )
    }

    async fn put_trust(&self, record: &TrustRecord) -> Result<()> {
        let file = Arc::clone(&self.file);
        let record = record.clone();
        blocking(move || {
            file.update(|s| {
                s.upsert(record);
                Ok(((), true))
            })
        })
        .await
    }

    async fn transition(&self, expected: Expected, record: &TrustRecord) -> Result<CasOutcome> {
        let file = Arc::clone(&self.file);
        let record = record.clone();
        blocking(move || {
            file.update(|s| {
                let current = s.get(&record.computed_id());
                let ok = match (expected, current) {
                    (Expected::Absent, None) => true,
                    (Expected::Status(want), Some(c)) => c.status == want,
                    _ => false,
                };
                if ok {
                    s.upsert(record);
                    Ok((CasOutcome::Applied, true))
                } else {
                    Ok((CasOutcome::Conflict(current.cloned().map(Box::new)), false))
                }
            })
        })
        .await
    }

    async fn delete_trust(&self, id: &str) -> Result<bool> {
        let file = Arc::clone(&self.file);
        let id = id.to_ascii_lowercase();
        blocking(move || {
            file.update(|s| {
                let removed = s.remove(&id);
                Ok((removed, removed))
            })
        })
        .await
    }

    async fn list_trust(
        &self,
        filter: &TrustFilter,
        page: &PageRequest,
    ) -> Result<Page<TrustRecord>> {
        let file = Arc::clone(&self.file);
        let filter = match filter {
            TrustFilter::All => TrustFilter::All,
            TrustFilter::Receiver(r) => TrustFilter::Receiver(r.to_lowercase()),
            TrustFilter::Sender(s) => TrustFilter::Sender(s.to_lowercase()),
        };
        let page = page.clone();
        blocking(move || {
            file.read(|s| {
                page_of(
                    s,
                    |r: &TrustRecord| match &filter {
                        TrustFilter::All => true,
                        TrustFilter::Receiver(x) => r.receiver_id.to_lowercase() == *x,
                        TrustFilter::Sender(x) => r.sender_id.to_lowercase() == *x,
                    },
                    &page,
                )
            })?
        })
        .await
    }
}

/// How long an accepted trust record read from the trust file is answered without checking
/// the file for changes by other processes (a `stat` on every artifact cost about 4 % of the
/// server's CPU). Our own writes update it at once.
pub const TRUST_RECHECK: Duration = Duration::from_millis(100);

/// The default [`FileStoreConfig::sync_interval`].
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(1);

/// Where the pieces of a [`FileStore`] live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStoreConfig {
    /// The data directory: `LOCK` and `state.log` (messages, replay set, tokens).
    pub dir: PathBuf,
    /// The trust file (default `<dir>/btps-trust.json`; btps-node's default is
    /// `.well-known/btps-trust.json`).
    pub trust_file: Option<PathBuf>,
    /// Options of the trust file.
    pub trust: JsonFileOptions,
    /// The identity file (default `<dir>/btps-identities.json`).
    pub identity_file: Option<PathBuf>,
    /// Options of the identity file.
    pub identities: JsonFileOptions,
    /// Compact the log on open when it is more than twice the size of the live state.
    pub compact_on_open: bool,
    /// While writes are concurrent, the shortest time between the starts of two syncs of the
    /// log (group commit: a busy store makes fewer, larger syncs; a lone write is synced at
    /// once). Zero syncs as soon as anything is buffered. Every write is still durable
    /// before its call returns.
    pub sync_interval: Duration,
}

impl FileStoreConfig {
    /// The defaults for a data directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            trust_file: None,
            trust: JsonFileOptions::trust(),
            identity_file: None,
            identities: JsonFileOptions::identities(),
            compact_on_open: true,
            sync_interval: DEFAULT_SYNC_INTERVAL,
        }
    }
}

/// The embedded default backend: every store trait over one data directory.
///
/// * trust records: [`JsonTrustStore`] on the btps-node trust file;
/// * hosted identities: a JSON file with the same mechanics (§7.5 identity record);
/// * messages, the replay set and token hashes: an append-only log (`state.log`) with a
///   CRC32 per record and group commit, replayed into memory on open (artifact texts stay on
///   disk and are read by offset), torn tail cut, compacted on open and by
///   [`FileStore::compact`]. See `docs/decisions/0001-file-message-store.md`.
///
/// The data directory is owned by one process at a time (`flock` on `<dir>/LOCK`, released
/// by the kernel when the process dies); the trust and identity files may be shared with
/// other processes through the `<file>.lock` convention.
///
/// Every acknowledged mutation is durable when its call returns.
pub struct FileStore {
    dir: PathBuf,
    trust: JsonTrustStore,
    identities: Arc<JsonFile<IdentityRecord>>,
    log: Arc<LogStore>,
    report: OpenReport,
    _lock: File,
}

impl FileStore {
    /// Opens (creating when missing) the store in `config.dir`. `now` decides which replay
    /// entries and tokens a compaction on open drops.
    ///
    /// # Errors
    ///
    /// [`TrustError::InUse`] when another process has the directory open;
    /// [`TrustError::Corrupt`] for a corrupt trust or identity file or log (a torn log tail is
    /// cut, not an error: see [`FileStore::open_report`]); I/O errors.
    pub fn open(config: &FileStoreConfig, now: UnixMillis) -> Result<Self> {
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| TrustError::io("create directory", &config.dir, e))?;
        let lock_path = config.dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| TrustError::io("open", &lock_path, e))?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(TrustError::InUse { path: lock_path });
            }
            Err(e) => return Err(TrustError::io("flock", &lock_path, e.into())),
        }
        let trust_path = config
            .trust_file
            .clone()
            .unwrap_or_else(|| config.dir.join("btps-trust.json"));
        let identity_path = config
            .identity_file
            .clone()
            .unwrap_or_else(|| config.dir.join("btps-identities.json"));
        let trust = JsonTrustStore::open_with(trust_path, config.trust.clone())?;
        let identities = Arc::new(JsonFile::open(
            identity_path,
            config.identities.default_layout.clone(),
            config.identities.lock,
        )?);
        let (log, report) = LogStore::open(
            &config.dir.join("state.log"),
            now,
            config.compact_on_open,
            config.sync_interval,
        )?;
        Ok(Self {
            dir: config.dir.clone(),
            trust,
            identities,
            log: Arc::new(log),
            report,
            _lock: lock,
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What opening found (records read, torn bytes cut, whether it compacted).
    pub fn open_report(&self) -> OpenReport {
        self.report
    }

    /// The trust store part.
    pub fn trust_store(&self) -> &JsonTrustStore {
        &self.trust
    }

    /// Rewrites the log with the live state only (dropping entries expired at `now`); returns
    /// the new size in bytes. Writers wait while it runs.
    ///
    /// # Errors
    ///
    /// I/O errors (the old log stays in place).
    pub async fn compact(&self, now: UnixMillis) -> Result<u64> {
        let log = Arc::clone(&self.log);
        blocking(move || log.compact_blocking(now)).await
    }

    /// Current size of the log in bytes.
    pub fn log_len(&self) -> u64 {
        self.log.log_len()
    }

    /// Flushes and stops the log writer. Later calls fail with [`TrustError::Closed`].
    pub fn close(&self) {
        self.log.close();
    }
}

#[async_trait]
impl TrustStore for FileStore {
    async fn get_trust(&self, id: &str) -> Result<Option<TrustRecord>> {
        self.trust.get_trust(id).await
    }
    async fn put_trust(&self, record: &TrustRecord) -> Result<()> {
        self.trust.put_trust(record).await
    }
    async fn transition(&self, expected: Expected, record: &TrustRecord) -> Result<CasOutcome> {
        self.trust.transition(expected, record).await
    }
    async fn delete_trust(&self, id: &str) -> Result<bool> {
        self.trust.delete_trust(id).await
    }
    async fn list_trust(
        &self,
        filter: &TrustFilter,
        page: &PageRequest,
    ) -> Result<Page<TrustRecord>> {
        self.trust.list_trust(filter, page).await
    }
}

#[async_trait]
impl IdentityStore for FileStore {
    async fn get_identity(&self, identity: &str) -> Result<Option<IdentityRecord>> {
        let key = compute_id(identity);
        self.identities.read(|s| s.get(&key).cloned())
    }

    async fn put_identity(&self, record: &IdentityRecord) -> Result<()> {
        let file = Arc::clone(&self.identities);
        let record = record.clone();
        blocking(move || {
            file.update(|s| {
                s.upsert(record);
                Ok(((), true))
            })
        })
        .await
    }

    async fn delete_identity(&self, identity: &str) -> Result<bool> {
        let file = Arc::clone(&self.identities);
        let key = compute_id(identity);
        blocking(move || {
            file.update(|s| {
                let removed = s.remove(&key);
                Ok((removed, removed))
            })
        })
        .await
    }

    async fn list_identities(&self, page: &PageRequest) -> Result<Page<IdentityRecord>> {
        let file = Arc::clone(&self.identities);
        let page = page.clone();
        blocking(move || file.read(|s| page_of(s, |_| true, &page))?).await
    }

    async fn create_token(&self, token: &TokenRecord) -> Result<()> {
        self.log.token_create(token).await
    }

    async fn consume_token(
        &self,
        kind: TokenKind,
        subject: &str,
        hash: &TokenHash,
        now: UnixMillis,
    ) -> Result<TokenOutcome> {
        self.log.token_consume(kind, subject, hash, now, None).await
    }

    async fn rotate_token(
        &self,
        old: &TokenHash,
        new: &TokenRecord,
        now: UnixMillis,
    ) -> Result<TokenOutcome> {
        self.log
            .token_consume(new.kind, &new.subject, old, now, Some(new))
            .await
    }

    async fn revoke_tokens(&self, kind: TokenKind, subject: &str, now: UnixMillis) -> Result<u64> {
        self.log.token_revoke(kind, subject, now).await
    }

    async fn purge_expired_tokens(&self, now: UnixMillis) -> Result<u64> {
        Ok(self.log.token_purge(now))
    }

    /// Token hashes are written to the log: refused after a failed write of it.
    async fn health(&self) -> Result<()> {
        self.log.health()
    }
}

#[async_trait]
impl ReplayStore for FileStore {
    async fn insert_replay(&self, entry: &ReplayEntry, now: UnixMillis) -> Result<ReplayOutcome> {
        self.log.replay_insert(entry, now).await
    }
    async fn get_replay(&self, scope: &str, id: &str, now: UnixMillis) -> Result<Option<String>> {
        self.log.replay_get(scope, id, now).await
    }
    async fn purge_replay(&self, now: UnixMillis) -> Result<u64> {
        Ok(self.log.replay_purge(now))
    }

    /// Refused after a failed write of the log, until the store is reopened.
    async fn health(&self) -> Result<()> {
        self.log.health()
    }
}

#[async_trait]
impl MessageStore for FileStore {
    async fn store(
        &self,
        message: &NewMessage,
        replay: Option<&ReplayEntry>,
        now: UnixMillis,
    ) -> Result<StoreOutcome> {
        self.log.store(message, replay, now).await
    }
    async fn get_message(
        &self,
        owner: &str,
        mailbox: Mailbox,
        id: &str,
    ) -> Result<Option<StoredMessage>> {
        self.log.get(owner, mailbox, id).await
    }
    async fn fetch(
        &self,
        owner: &str,
        mailbox: Mailbox,
        query: &MessageQuery,
    ) -> Result<MessagePage> {
        self.log.fetch(owner, mailbox, query).await
    }
    async fn mark_seen(
        &self,
        owner: &str,
        mailbox: Mailbox,
        ids: &[&str],
        now: UnixMillis,
    ) -> Result<u64> {
        self.log.mark_seen(owner, mailbox, ids, now).await
    }
    async fn delete_messages(
        &self,
        owner: &str,
        mailbox: Mailbox,
        ids: &[&str],
        now: UnixMillis,
    ) -> Result<u64> {
        self.log.delete(owner, mailbox, ids, now).await
    }
    async fn replace_message(
        &self,
        owner: &str,
        mailbox: Mailbox,
        id: &str,
        artifact: &Object,
        now: UnixMillis,
    ) -> Result<bool> {
        self.log.replace(owner, mailbox, id, artifact, now).await
    }
    async fn claim_due(
        &self,
        now: UnixMillis,
        lease_until: UnixMillis,
        limit: usize,
    ) -> Result<Vec<StoredMessage>> {
        self.log.claim_due(now, lease_until, limit).await
    }
    async fn record_delivery(
        &self,
        owner: &str,
        id: &str,
        outcome: &DeliveryOutcome,
        now: UnixMillis,
    ) -> Result<bool> {
        self.log.record_delivery(owner, id, outcome, now).await
    }
    async fn cancel_outbox(
        &self,
        owner: &str,
        ids: &[&str],
        now: UnixMillis,
    ) -> Result<Vec<String>> {
        self.log.cancel(owner, ids, now).await
    }
    /// Refused after a failed write of the log, until the store is reopened.
    async fn health(&self) -> Result<()> {
        self.log.health()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> ReplayEntry {
        ReplayEntry {
            scope: "btps".to_owned(),
            id: id.to_owned(),
            signature: "sig".to_owned(),
            expires_at: UnixMillis::from_millis(2_000_000),
        }
    }

    fn accepted(sender: &str) -> TrustRecord {
        TrustRecord::new(
            sender,
            "pay$client.com",
            TrustStatus::Accepted,
            UnixMillis::from_millis(0),
        )
        .with_key("QUJDRA==", "ZnA=")
    }

    /// Another process shares the trust file (here: a second store on the same path). What
    /// it adds or accepts is seen at once; what it revokes within `TRUST_RECHECK`; an
    /// accepted record read again within `TRUST_RECHECK` costs no `stat`.
    #[tokio::test]
    async fn another_process_grants_are_seen_at_once_revocations_within_the_recheck() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("btps-trust.json");
        let ours = JsonTrustStore::open(&path).unwrap();
        let theirs = JsonTrustStore::open(&path).unwrap();
        let r = accepted("billing$vendorcorp.com");
        assert_eq!(ours.get_trust(&r.id).await.unwrap(), None);

        // A grant by the other process: seen by the very next read.
        theirs.put_trust(&r).await.unwrap();
        assert_eq!(ours.get_trust(&r.id).await.unwrap().as_ref(), Some(&r));

        // Accepted and checked just now: answered from memory.
        let stats = ours.file.stats();
        for _ in 0..100 {
            assert_eq!(ours.get_trust(&r.id).await.unwrap().as_ref(), Some(&r));
        }
        assert_eq!(
            ours.file.stats(),
            stats,
            "no stat while the record is accepted and fresh"
        );

        // A revocation by the other process: seen once TRUST_RECHECK has passed.
        let mut revoked = r.clone();
        revoked.status = TrustStatus::Revoked;
        theirs.put_trust(&revoked).await.unwrap();
        tokio::time::sleep(TRUST_RECHECK + Duration::from_millis(20)).await;
        assert_eq!(
            ours.get_trust(&r.id).await.unwrap().as_ref(),
            Some(&revoked)
        );
        // Not accepted: every read checks the file again.
        let stats = ours.file.stats();
        ours.get_trust(&r.id).await.unwrap();
        assert_eq!(ours.file.stats(), stats + 1);

        // Accepted again by the other process: seen at once.
        theirs.put_trust(&r).await.unwrap();
        assert_eq!(ours.get_trust(&r.id).await.unwrap().as_ref(), Some(&r));
    }

    /// After a failed write of the log the store refuses writes until it is reopened, and
    /// `health` says so for every concern the log holds; the trust records (a JSON file)
    /// stay writable. Reopened, it is healthy again.
    #[tokio::test]
    async fn a_failed_log_write_makes_health_report_the_refusal_until_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let config = FileStoreConfig::new(dir.path());
        let now = UnixMillis::from_millis(1_000_000);
        let store = FileStore::open(&config, now).unwrap();
        store.insert_replay(&entry("a"), now).await.unwrap();
        MessageStore::health(&store).await.unwrap();
        ReplayStore::health(&store).await.unwrap();
        IdentityStore::health(&store).await.unwrap();

        store.log.fail_writes_for_test();
        let failed = store.insert_replay(&entry("b"), now).await;
        assert!(matches!(failed, Err(TrustError::Poisoned(_))), "{failed:?}");
        let later = store.insert_replay(&entry("c"), now).await;
        assert!(matches!(later, Err(TrustError::Poisoned(_))), "{later:?}");
        for health in [
            MessageStore::health(&store).await,
            ReplayStore::health(&store).await,
            IdentityStore::health(&store).await,
        ] {
            let Err(TrustError::Poisoned(why)) = health else {
                panic!("{health:?}");
            };
            assert!(why.contains("write or fsync of the log failed"), "{why}");
        }
        TrustStore::health(&store).await.unwrap();

        drop(store);
        let store = FileStore::open(&config, now).unwrap();
        MessageStore::health(&store).await.unwrap();
        assert_eq!(
            store.get_replay("btps", "a", now).await.unwrap().as_deref(),
            Some("sig")
        );
        assert_eq!(store.get_replay("btps", "b", now).await.unwrap(), None);
        store.insert_replay(&entry("b"), now).await.unwrap();
        store.close();
        assert!(matches!(
            MessageStore::health(&store).await,
            Err(TrustError::Closed)
        ));
    }
}
