//! The log-backed part of the file backend: messages, the replay set and token hashes, held
//! in memory (artifact texts stay on disk and are read by offset) and made durable through
//! the append-only [`Log`].

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_lc_rs::digest;
use btps_types::UnixMillis;
use btps_types::json::{Object, ParseLimits, Value, object_to_js_string, parse};

use super::log::{self, Log, Pending, Ticket};
use crate::codec::Fields;
use crate::id::TokenHash;
use crate::store::{
    DeliveryOutcome, DeliveryState, DeliveryStatus, Mailbox, MessagePage, MessageQuery, NewMessage,
    ReplayEntry, ReplayOutcome, StoreOutcome, StoredMessage, TokenKind, TokenOutcome, TokenRecord,
};
use crate::{Result, TrustError};

const T_PUT: u8 = b'M';
const T_MOVE: u8 = b'V';
const T_SEEN: u8 = b'S';
const T_DELETE: u8 = b'D';
const T_DELIVERY: u8 = b'O';
const T_REPLAY: u8 = b'R';
const T_TOKEN: u8 = b'T';
const T_CONSUME: u8 = b'C';
const T_REVOKE: u8 = b'K';
const T_ROTATE: u8 = b'N';

type MsgKey = (String, Mailbox, String);

#[derive(Clone, Debug)]
struct Msg {
    seq: u64,
    at: UnixMillis,
    seen: bool,
    seen_at: Option<UnixMillis>,
    delivery: Option<DeliveryState>,
    blob_offset: u64,
    blob_len: u32,
    /// Truncated SHA-256 of the artifact text (tells a re-send from another artifact).
    digest: [u8; 16],
}

#[derive(Clone, Debug)]
struct TokenEntry {
    rec: TokenRecord,
    used: bool,
}

#[derive(Default)]
struct State {
    msgs: HashMap<MsgKey, Msg>,
    /// (owner, mailbox, storedAt, seq) → id: the fetch order.
    order: BTreeMap<(String, Mailbox, i64, u64), String>,
    /// (nextAttemptAt, seq) → key, for pending outbox entries.
    due: BTreeMap<(i64, u64), MsgKey>,
    next_seq: u64,
    replay: HashMap<(String, String), (String, UnixMillis)>,
    tokens: HashMap<(TokenKind, String), Vec<TokenEntry>>,
    /// Bytes of the log that the live state needs (to decide on compaction).
    live_bytes: u64,
}

/// What opening found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Records read from the log.
    pub records: u64,
    /// Bytes of a torn tail cut off the log (unacknowledged writes of a crashed process).
    pub truncated_bytes: u64,
    /// Whether the log was compacted on open.
    pub compacted: bool,
}

pub(crate) struct LogStore {
    state: Mutex<State>,
    log: Log,
    reader: Mutex<Arc<File>>,
    path: PathBuf,
}

fn subject_key(kind: TokenKind, subject: &str) -> (TokenKind, String) {
    match kind {
        TokenKind::Auth => (kind, subject.to_lowercase()),
        TokenKind::Refresh => (kind, subject.to_owned()),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn ms(t: UnixMillis) -> Value {
    Value::Number(t.as_millis() as f64)
}

fn digest16(bytes: &[u8]) -> [u8; 16] {
    let d = digest::digest(&digest::SHA256, bytes);
    let mut out = [0u8; 16];
    out.copy_from_slice(&d.as_ref()[..16]);
    out
}

fn req_ms(f: &Fields<'_>, key: &str) -> Result<UnixMillis> {
    match f.get(key).and_then(Value::as_f64) {
        Some(n) if n.fract() == 0.0 => Ok(UnixMillis::from_millis(n as i64)),
        _ => Err(TrustError::InvalidRecord(format!("log member `{key}`"))),
    }
}

fn opt_ms(f: &Fields<'_>, key: &str) -> Result<Option<UnixMillis>> {
    if f.get(key).is_some() {
        req_ms(f, key).map(Some)
    } else {
        Ok(None)
    }
}

fn mailbox(f: &Fields<'_>, key: &str) -> Result<Mailbox> {
    let s = f.req_str(key)?;
    Mailbox::from_wire(s).ok_or_else(|| TrustError::InvalidRecord(format!("mailbox {s:?}")))
}

fn delivery_to(d: &DeliveryState) -> Object {
    let mut o = Object::new()
        .with("a", d.attempts)
        .with("n", ms(d.next_attempt_at))
        .with("st", d.status.as_str());
    if let Some(e) = &d.last_error {
        o.insert("e", e.as_str());
    }
    if let Some(t) = d.finished_at {
        o.insert("f", ms(t));
    }
    o
}

fn delivery_from(o: &Object) -> Result<DeliveryState> {
    let f = Fields::new(o, "delivery");
    let st = f.req_str("st")?;
    Ok(DeliveryState {
        attempts: u32::try_from(f.opt_u64("a")?.unwrap_or(0)).unwrap_or(u32::MAX),
        next_attempt_at: req_ms(&f, "n")?,
        status: DeliveryStatus::from_wire(st)
            .ok_or_else(|| TrustError::InvalidRecord(format!("delivery status {st:?}")))?,
        last_error: f.opt_str("e")?.map(str::to_owned),
        finished_at: opt_ms(&f, "f")?,
    })
}

fn token_to(t: &TokenRecord, used: bool) -> Object {
    let mut o = Object::new()
        .with("k", t.kind.as_str())
        .with("h", t.hash.to_hex())
        .with("s", t.subject.as_str())
        .with("u", t.user_identity.as_str())
        .with("db", t.decrypt_by.as_str())
        .with("c", ms(t.created_at))
        .with("x", ms(t.expires_at));
    if let Some(m) = &t.metadata {
        o.insert("m", m.clone());
    }
    if used {
        o.insert("used", true);
    }
    o
}

fn token_from(o: &Object) -> Result<(TokenRecord, bool)> {
    let f = Fields::new(o, "token");
    let k = f.req_str("k")?;
    Ok((
        TokenRecord {
            kind: TokenKind::from_wire(k)
                .ok_or_else(|| TrustError::InvalidRecord(format!("token kind {k:?}")))?,
            hash: TokenHash::from_hex(f.req_str("h")?)
                .ok_or_else(|| TrustError::InvalidRecord("token hash".into()))?,
            subject: f.req_str("s")?.to_owned(),
            user_identity: f.req_str("u")?.to_owned(),
            decrypt_by: f.req_str("db")?.to_owned(),
            metadata: f.opt_object("m")?.cloned(),
            created_at: req_ms(&f, "c")?,
            expires_at: req_ms(&f, "x")?,
        },
        f.opt_bool("used")?.unwrap_or(false),
    ))
}

fn key_header(owner: &str, mailbox: Mailbox, id: &str) -> Object {
    Object::new()
        .with("o", owner)
        .with("b", mailbox.as_str())
        .with("i", id)
}

impl State {
    fn insert_msg(&mut self, key: MsgKey, m: Msg) {
        self.live_bytes += u64::from(m.blob_len) + 256;
        self.next_seq = self.next_seq.max(m.seq + 1);
        self.order.insert(
            (key.0.clone(), key.1, m.at.as_millis(), m.seq),
            key.2.clone(),
        );
        if key.1 == Mailbox::Outbox
            && m.delivery
                .as_ref()
                .is_some_and(|d| d.status == DeliveryStatus::Pending)
        {
            self.due.insert(
                (
                    m.delivery
                        .as_ref()
                        .map_or(0, |d| d.next_attempt_at.as_millis()),
                    m.seq,
                ),
                key.clone(),
            );
        }
        if let Some(old) = self.msgs.insert(key, m) {
            // Callers remove first; keep the indexes consistent anyway.
            self.live_bytes = self
                .live_bytes
                .saturating_sub(u64::from(old.blob_len) + 256);
        }
    }

    fn remove_msg(&mut self, key: &MsgKey) -> Option<Msg> {
        let m = self.msgs.remove(key)?;
        self.live_bytes = self.live_bytes.saturating_sub(u64::from(m.blob_len) + 256);
        self.order
            .remove(&(key.0.clone(), key.1, m.at.as_millis(), m.seq));
        if let Some(d) = &m.delivery {
            self.due.remove(&(d.next_attempt_at.as_millis(), m.seq));
        }
        Some(m)
    }

    fn replay_live(&self, scope: &str, id: &str, now: UnixMillis) -> Option<&String> {
        self.replay
            .get(&(scope.to_owned(), id.to_owned()))
            .filter(|(_, exp)| *exp >= now)
            .map(|(sig, _)| sig)
    }

    /// Applies one log record (used on open; the live paths apply the same changes
    /// directly).
    fn apply(&mut self, r: &log::Record) -> Result<()> {
        let f = Fields::new(&r.header, "log record");
        match r.tag {
            T_PUT => {
                let key = (
                    f.req_str("o")?.to_owned(),
                    mailbox(&f, "b")?,
                    f.req_str("i")?.to_owned(),
                );
                let digest = f
                    .req_str("h")
                    .ok()
                    .and_then(digest_from_hex)
                    .ok_or_else(|| TrustError::InvalidRecord("message digest".into()))?;
                let m = Msg {
                    seq: f.opt_u64("s")?.unwrap_or(0),
                    at: req_ms(&f, "t")?,
                    seen: f.opt_bool("n")?.unwrap_or(false),
                    seen_at: opt_ms(&f, "na")?,
                    delivery: f.opt_object("d")?.map(delivery_from).transpose()?,
                    blob_offset: r.blob_offset,
                    blob_len: r.blob_len,
                    digest,
                };
                self.remove_msg(&key);
                self.insert_msg(key, m);
                if let Some(ro) = f.opt_object("r")? {
                    self.apply_replay(ro)?;
                }
            }
            T_MOVE => {
                let key = (
                    f.req_str("o")?.to_owned(),
                    mailbox(&f, "b")?,
                    f.req_str("i")?.to_owned(),
                );
                let to = mailbox(&f, "to")?;
                if let Some(mut m) = self.remove_msg(&key) {
                    m.seq = f.opt_u64("s")?.unwrap_or(m.seq);
                    m.at = req_ms(&f, "t")?;
                    if let Some(d) = f.opt_object("d")? {
                        m.delivery = Some(delivery_from(d)?);
                    }
                    let new_key = (key.0, to, key.2);
                    self.remove_msg(&new_key);
                    self.insert_msg(new_key, m);
                }
            }
            T_SEEN => {
                let key = (
                    f.req_str("o")?.to_owned(),
                    mailbox(&f, "b")?,
                    f.req_str("i")?.to_owned(),
                );
                let at = req_ms(&f, "t")?;
                if let Some(m) = self.msgs.get_mut(&key) {
                    m.seen = true;
                    m.seen_at = Some(at);
                }
            }
            T_DELETE => {
                let key = (
                    f.req_str("o")?.to_owned(),
                    mailbox(&f, "b")?,
                    f.req_str("i")?.to_owned(),
                );
                self.remove_msg(&key);
            }
            T_DELIVERY => {
                let key = (
                    f.req_str("o")?.to_owned(),
                    mailbox(&f, "b")?,
                    f.req_str("i")?.to_owned(),
                );
                let d = delivery_from(
                    f.opt_object("d")?
                        .ok_or_else(|| TrustError::InvalidRecord("delivery".into()))?,
                )?;
                if let Some(m) = self.remove_msg(&key) {
                    self.insert_msg(
                        key,
                        Msg {
                            delivery: Some(d),
                            ..m
                        },
                    );
                }
            }
            T_REPLAY => self.apply_replay(&r.header)?,
            T_TOKEN => {
                let (t, used) = token_from(&r.header)?;
                self.tokens
                    .entry(subject_key(t.kind, &t.subject))
                    .or_default()
                    .push(TokenEntry { rec: t, used });
            }
            T_CONSUME => {
                let kind = TokenKind::from_wire(f.req_str("k")?)
                    .ok_or_else(|| TrustError::InvalidRecord("token kind".into()))?;
                let hash = TokenHash::from_hex(f.req_str("h")?)
                    .ok_or_else(|| TrustError::InvalidRecord("token hash".into()))?;
                self.mark_used(kind, f.req_str("s")?, &hash);
            }
            T_ROTATE => {
                let old = TokenHash::from_hex(f.req_str("old")?)
                    .ok_or_else(|| TrustError::InvalidRecord("token hash".into()))?;
                let (t, _) = token_from(
                    f.opt_object("new")?
                        .ok_or_else(|| TrustError::InvalidRecord("rotated token".into()))?,
                )?;
                self.mark_used(t.kind, &t.subject, &old);
                self.tokens
                    .entry(subject_key(t.kind, &t.subject))
                    .or_default()
                    .push(TokenEntry {
                        rec: t,
                        used: false,
                    });
            }
            T_REVOKE => {
                let kind = TokenKind::from_wire(f.req_str("k")?)
                    .ok_or_else(|| TrustError::InvalidRecord("token kind".into()))?;
                self.tokens.remove(&subject_key(kind, f.req_str("s")?));
            }
            other => {
                return Err(TrustError::InvalidRecord(format!(
                    "unknown log record tag {other:#04x}"
                )));
            }
        }
        Ok(())
    }

    fn apply_replay(&mut self, o: &Object) -> Result<()> {
        let f = Fields::new(o, "replay entry");
        self.replay.insert(
            (f.req_str("sc")?.to_owned(), f.req_str("id")?.to_owned()),
            (f.req_str("sig")?.to_owned(), req_ms(&f, "x")?),
        );
        Ok(())
    }

    fn mark_used(&mut self, kind: TokenKind, subject: &str, hash: &TokenHash) {
        if let Some(list) = self.tokens.get_mut(&subject_key(kind, subject)) {
            for e in list.iter_mut() {
                if e.rec.hash.ct_eq(hash) {
                    e.used = true;
                }
            }
        }
    }

    /// Finds a token in constant time over the subject's list (every entry is compared).
    fn find_token(&self, kind: TokenKind, subject: &str, hash: &TokenHash) -> Option<usize> {
        let list = self.tokens.get(&subject_key(kind, subject))?;
        let mut found = None;
        for (i, e) in list.iter().enumerate() {
            if e.rec.hash.ct_eq(hash) && found.is_none() {
                found = Some(i);
            }
        }
        found
    }
}

fn replay_header(e: &ReplayEntry) -> Object {
    Object::new()
        .with("sc", e.scope.as_str())
        .with("id", e.id.as_str())
        .with("sig", e.signature.as_str())
        .with("x", ms(e.expires_at))
}

/// Parses the 32 hex digits of a truncated message digest.
fn digest_from_hex(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 {
        return None;
    }
    let padded = format!("{text:0<64}");
    TokenHash::from_hex(&padded).map(|h| {
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.as_bytes()[..16]);
        out
    })
}

fn compact_path(log: &Path) -> PathBuf {
    let mut s = log.as_os_str().to_owned();
    s.push(".compact");
    PathBuf::from(s)
}

fn read_artifact(file: &File, path: &Path, m: &Msg) -> Result<Object> {
    let bytes = log::read_blob(file, path, m.blob_offset, m.blob_len)?;
    let limits = ParseLimits {
        max_bytes: usize::MAX,
        max_depth: 128,
    };
    match parse(&bytes, &limits) {
        Ok(p) => match p.value {
            Value::Object(o) => Ok(o),
            _ => Err(TrustError::corrupt(
                path,
                "stored artifact is not an object",
            )),
        },
        Err(e) => Err(TrustError::corrupt(path, format!("stored artifact: {e}"))),
    }
}

fn materialize(file: &File, path: &Path, items: Vec<Loaded>) -> Result<Vec<StoredMessage>> {
    items
        .into_iter()
        .map(|p| {
            Ok(StoredMessage {
                artifact: read_artifact(file, path, &p.msg)?,
                owner: p.owner,
                mailbox: p.mailbox,
                id: p.id,
                stored_at: p.msg.at,
                seen: p.msg.seen,
                seen_at: p.msg.seen_at,
                delivery: p.msg.delivery,
            })
        })
        .collect()
}

/// Encodes a fetch cursor: the position (storedAt, seq) of the last returned message.
fn encode_cursor(at: i64, seq: u64) -> String {
    format!("{at}.{seq}")
}

fn decode_cursor(c: &str) -> Result<(i64, u64)> {
    let (a, s) = c.split_once('.').ok_or(TrustError::InvalidCursor)?;
    Ok((
        a.parse().map_err(|_| TrustError::InvalidCursor)?,
        s.parse().map_err(|_| TrustError::InvalidCursor)?,
    ))
}

/// A message read under the lock, whose artifact is read afterwards.
struct Loaded {
    owner: String,
    mailbox: Mailbox,
    id: String,
    msg: Msg,
}

impl LogStore {
    pub(crate) fn open(
        path: &Path,
        now: UnixMillis,
        compact: bool,
        sync_interval: Duration,
    ) -> Result<(Self, OpenReport)> {
        // A compaction interrupted by a crash leaves its unfinished output behind.
        let _ = std::fs::remove_file(compact_path(path));
        let mut state = State::default();
        let rep = log::replay(path, |r| state.apply(&r))?;
        let log = Log::open(path, sync_interval)?;
        let reader = File::open(path).map_err(|e| TrustError::io("open", path, e))?;
        let store = Self {
            state: Mutex::new(state),
            log,
            reader: Mutex::new(Arc::new(reader)),
            path: path.to_path_buf(),
        };
        let mut report = OpenReport {
            records: rep.records,
            truncated_bytes: rep.truncated,
            compacted: false,
        };
        let live = lock(&store.state).live_bytes;
        if compact && rep.len > 2 * live + (1 << 20) {
            store.compact_blocking(now)?;
            report.compacted = true;
        }
        Ok((store, report))
    }

    fn reader(&self) -> Arc<File> {
        Arc::clone(&lock(&self.reader))
    }

    /// `Ok` while the log accepts writes (see [`Log::health`]).
    pub(crate) fn health(&self) -> Result<()> {
        self.log.health()
    }

    #[cfg(test)]
    pub(crate) fn fail_writes_for_test(&self) {
        self.log.fail_writes_for_test();
    }

    pub(crate) fn log_len(&self) -> u64 {
        self.log.end()
    }

    /// Reads the artifacts of `items` (positioned reads, parsing): inline for a few, on the
    /// blocking pool for pages.
    async fn materialize(&self, file: Arc<File>, items: Vec<Loaded>) -> Result<Vec<StoredMessage>> {
        if items.len() <= 4 {
            return materialize(&file, &self.path, items);
        }
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || materialize(&file, &path, items))
            .await
            .map_err(|e| TrustError::Backend(Box::new(e)))?
    }

    /// Appends under the state lock, then waits (outside it) for durability.
    async fn commit(&self, ticket: Ticket) -> Result<()> {
        self.log.kick();
        self.log.wait(ticket).await
    }

    // ---- replay set -------------------------------------------------------------------

    pub(crate) async fn replay_insert(
        &self,
        e: &ReplayEntry,
        now: UnixMillis,
    ) -> Result<ReplayOutcome> {
        let (outcome, ticket) = {
            let mut st = lock(&self.state);
            let mut p = self.log.pending()?;
            match st.replay_live(&e.scope, &e.id, now) {
                Some(sig) if *sig == e.signature => {
                    (ReplayOutcome::SameSignature, Log::watermark(&p))
                }
                Some(_) => (ReplayOutcome::DifferentSignature, Log::watermark(&p)),
                None => {
                    let (t, _) = Log::append(&mut p, T_REPLAY, &replay_header(e), &[]);
                    st.replay.insert(
                        (e.scope.clone(), e.id.clone()),
                        (e.signature.clone(), e.expires_at),
                    );
                    (ReplayOutcome::Inserted, t)
                }
            }
        };
        self.commit(ticket).await?;
        Ok(outcome)
    }

    pub(crate) async fn replay_get(
        &self,
        scope: &str,
        id: &str,
        now: UnixMillis,
    ) -> Result<Option<String>> {
        let (v, ticket) = {
            let st = lock(&self.state);
            let p = self.log.pending()?;
            (st.replay_live(scope, id, now).cloned(), Log::watermark(&p))
        };
        // What was found must be durable before anyone acts on it; an absent entry needs no
        // wait (the caller's store records it in a durable step of its own).
        if v.is_some() {
            self.commit(ticket).await?;
        }
        Ok(v)
    }

    pub(crate) fn replay_purge(&self, now: UnixMillis) -> u64 {
        let mut st = lock(&self.state);
        let before = st.replay.len();
        st.replay.retain(|_, (_, exp)| *exp >= now);
        (before - st.replay.len()) as u64
    }

    // ---- tokens ------------------------------------------------------------------------

    pub(crate) async fn token_create(&self, t: &TokenRecord) -> Result<()> {
        let ticket = {
            let mut st = lock(&self.state);
            let mut p = self.log.pending()?;
            let (ticket, _) = Log::append(&mut p, T_TOKEN, &token_to(t, false), &[]);
            st.tokens
                .entry(subject_key(t.kind, &t.subject))
                .or_default()
                .push(TokenEntry {
                    rec: t.clone(),
                    used: false,
                });
            ticket
        };
        self.commit(ticket).await
    }

    fn consume_locked(
        st: &mut State,
        p: &mut Pending,
        kind: TokenKind,
        subject: &str,
        hash: &TokenHash,
        now: UnixMillis,
        then_create: Option<&TokenRecord>,
    ) -> (TokenOutcome, Ticket) {
        let Some(i) = st.find_token(kind, subject, hash) else {
            return (TokenOutcome::Invalid, Log::watermark(p));
        };
        let key = subject_key(kind, subject);
        let entry = &st.tokens[&key][i];
        if entry.rec.expires_at < now {
            return (TokenOutcome::Invalid, Log::watermark(p));
        }
        if entry.used {
            return (
                TokenOutcome::AlreadyUsed(Box::new(entry.rec.clone())),
                Log::watermark(p),
            );
        }
        let rec = entry.rec.clone();
        let ticket = match then_create {
            None => {
                let h = Object::new()
                    .with("k", kind.as_str())
                    .with("s", subject)
                    .with("h", hash.to_hex());
                Log::append(p, T_CONSUME, &h, &[]).0
            }
            Some(new) => {
                let h = Object::new()
                    .with("old", hash.to_hex())
                    .with("new", token_to(new, false));
                Log::append(p, T_ROTATE, &h, &[]).0
            }
        };
        if let Some(list) = st.tokens.get_mut(&key) {
            list[i].used = true;
        }
        if let Some(new) = then_create {
            st.tokens
                .entry(subject_key(new.kind, &new.subject))
                .or_default()
                .push(TokenEntry {
                    rec: new.clone(),
                    used: false,
                });
        }
        (TokenOutcome::Consumed(Box::new(rec)), ticket)
    }

    pub(crate) async fn token_consume(
        &self,
        kind: TokenKind,
        subject: &str,
        hash: &TokenHash,
        now: UnixMillis,
        then_create: Option<&TokenRecord>,
    ) -> Result<TokenOutcome> {
        let (out, ticket) = {
            let mut st = lock(&self.state);
            let mut p = self.log.pending()?;
            Self::consume_locked(&mut st, &mut p, kind, subject, hash, now, then_create)
        };
        self.commit(ticket).await?;
        Ok(out)
    }

    pub(crate) async fn token_revoke(
        &self,
        kind: TokenKind,
        subject: &str,
        now: UnixMillis,
    ) -> Result<u64> {
        let (n, ticket) = {
            let mut st = lock(&self.state);
            let mut p = self.log.pending()?;
            match st.tokens.remove(&subject_key(kind, subject)) {
                None => (0, Log::watermark(&p)),
                Some(list) => {
                    let h = Object::new().with("k", kind.as_str()).with("s", subject);
                    let (t, _) = Log::append(&mut p, T_REVOKE, &h, &[]);
                    let n = list
                        .iter()
                        .filter(|e| !e.used && e.rec.expires_at >= now)
                        .count() as u64;
                    (n, t)
                }
            }
        };
        self.commit(ticket).await?;
        Ok(n)
    }

    pub(crate) fn token_purge(&self, now: UnixMillis) -> u64 {
        let mut st = lock(&self.state);
        let mut n = 0;
        st.tokens.retain(|_, list| {
            let before = list.len();
            list.retain(|e| e.rec.expires_at >= now);
            n += (before - list.len()) as u64;
            !list.is_empty()
        });
        n
    }

    // ---- messages ----------------------------------------------------------------------

    pub(crate) async fn store(
        &self,
        m: &NewMessage,
        replay: Option<&ReplayEntry>,
        now: UnixMillis,
    ) -> Result<StoreOutcome> {
        let text = &m.text;
        let digest = digest16(text.as_bytes());
        let owner = m.owner.to_lowercase();
        let key = (owner, m.mailbox, m.id.clone());
        let (outcome, ticket) = {
            let mut st = lock(&self.state);
            let mut p = self.log.pending()?;
            let replay_seen = replay.and_then(|r| {
                st.replay_live(&r.scope, &r.id, now)
                    .map(|sig| *sig == r.signature)
            });
            match (replay_seen, st.msgs.get(&key)) {
                (Some(true), _) => (StoreOutcome::AlreadyAccepted, Log::watermark(&p)),
                (Some(false), _) => (StoreOutcome::Duplicate, Log::watermark(&p)),
                (None, Some(existing)) if existing.digest == digest => {
                    (StoreOutcome::AlreadyAccepted, Log::watermark(&p))
                }
                (None, Some(_)) => (StoreOutcome::Duplicate, Log::watermark(&p)),
                (None, None) => {
                    let seq = st.next_seq;
                    let delivery =
                        (m.mailbox == Mailbox::Outbox).then(|| DeliveryState::new(m.stored_at));
                    let mut h = key_header(&key.0, key.1, &key.2)
                        .with("s", seq as f64)
                        .with("t", ms(m.stored_at))
                        .with("h", crate::id::hex(&digest));
                    if let Some(d) = &delivery {
                        h.insert("d", delivery_to(d));
                    }
                    if let Some(r) = replay {
                        h.insert("r", replay_header(r));
                    }
                    let (t, blob_offset) = Log::append(&mut p, T_PUT, &h, text.as_bytes());
                    st.insert_msg(
                        key,
                        Msg {
                            seq,
                            at: m.stored_at,
                            seen: false,
                            seen_at: None,
                            delivery,
                            blob_offset,
                            blob_len: text.len() as u32,
                            digest,
                        },
                    );
                    if let Some(r) = replay {
                        st.replay.insert(
                            (r.scope.clone(), r.id.clone()),
                            (r.signature.clone(), r.expires_at),
                        );
                    }
                    (StoreOutcome::Stored, t)
                }
            }
        };
        self.commit(ticket).await?;
        Ok(outcome)
    }

    pub(crate) async fn get(
        &self,
        owner: &str,
        mailbox: Mailbox,
        id: &str,
    ) -> Result<Option<StoredMessage>> {
        let key = (owner.to_lowercase(), mailbox, id.to_owned());
        let (item, ticket, file) = {
            let st = lock(&self.state);
            let p = self.log.pending()?;
            (
                st.msgs.get(&key).cloned(),
                Log::watermark(&p),
                self.reader(),
            )
        };
        self.commit(ticket).await?;
        let Some(msg) = item else { return Ok(None) };
        let items = vec![Loaded {
            owner: key.0,
            mailbox,
            id: key.2,
            msg,
        }];
        Ok(self.materialize(file, items).await?.pop())
    }

    pub(crate) async fn fetch(
        &self,
        owner: &str,
        mailbox: Mailbox,
        q: &MessageQuery,
    ) -> Result<MessagePage> {
        let owner = owner.to_lowercase();
        let limit = q.effective_limit();
        let desc = q.descending();
        let cursor = q.cursor.as_deref().map(decode_cursor).transpose()?;
        let lo_t = q.since.map_or(i64::MIN, UnixMillis::as_millis);
        let hi_t = q.until.map_or(i64::MAX, UnixMillis::as_millis);
        let (items, has_next, total, ticket, file) = {
            let st = lock(&self.state);
            let p = self.log.pending()?;
            let total = if lo_t <= hi_t {
                st.order
                    .range(
                        (owner.clone(), mailbox, lo_t, 0)
                            ..=(owner.clone(), mailbox, hi_t, u64::MAX),
                    )
                    .count() as u64
            } else {
                0
            };
            // Bounds as (time, seq, inclusive), narrowed by the cursor.
            let mut lo = (lo_t, 0u64, true);
            let mut hi = (hi_t, u64::MAX, true);
            if let Some(c) = cursor {
                if desc {
                    if c <= (hi.0, hi.1) {
                        hi = (c.0, c.1, false);
                    }
                } else if c >= (lo.0, lo.1) {
                    lo = (c.0, c.1, false);
                }
            }
            let valid =
                (lo.0, lo.1) < (hi.0, hi.1) || ((lo.0, lo.1) == (hi.0, hi.1) && lo.2 && hi.2);
            let bound = |b: (i64, u64, bool)| {
                let k = (owner.clone(), mailbox, b.0, b.1);
                if b.2 {
                    Bound::Included(k)
                } else {
                    Bound::Excluded(k)
                }
            };
            let mut picked: Vec<Loaded> = Vec::new();
            let mut has_next = false;
            if valid {
                let range = st.order.range((bound(lo), bound(hi)));
                let iter: Box<dyn Iterator<Item = _>> = if desc {
                    Box::new(range.rev())
                } else {
                    Box::new(range)
                };
                for ((o, b, _, _), id) in iter {
                    if picked.len() == limit {
                        has_next = true;
                        break;
                    }
                    let key = (o.clone(), *b, id.clone());
                    if let Some(m) = st.msgs.get(&key) {
                        picked.push(Loaded {
                            owner: o.clone(),
                            mailbox: *b,
                            id: id.clone(),
                            msg: m.clone(),
                        });
                    }
                }
            }
            (picked, has_next, total, Log::watermark(&p), self.reader())
        };
        self.commit(ticket).await?;
        let cursor = items
            .last()
            .map(|p| encode_cursor(p.msg.at.as_millis(), p.msg.seq));
        let results = self.materialize(file, items).await?;
        Ok(MessagePage {
            results,
            cursor,
            has_next,
            total: Some(total),
        })
    }

    pub(crate) async fn mark_seen(
        &self,
        owner: &str,
        mailbox: Mailbox,
        ids: &[&str],
        now: UnixMillis,
    ) -> Result<u64> {
        let owner = owner.to_lowercase();
        let (n, ticket) = {
            let mut st = lock(&self.state);
            let mut p = self.log.pending()?;
            let mut n = 0;
            for id in ids {
                let key = (owner.clone(), mailbox, (*id).to_owned());
                if let Some(m) = st.msgs.get_mut(&key).filter(|m| !m.seen) {
                    m.seen = true;
                    m.seen_at = Some(now);
                    let h = key_header(&owner, mailbox, id).with("t", ms(now));
                    Log::append(&mut p, T_SEEN, &h, &[]);
                    n += 1;
                }
            }
            (n, Log::watermark(&p))
        };
        self.commit(ticket).await?;
        Ok(n)
    }

    /// Moves a message (state lock held): new seq and storage time, optional new delivery
    /// state; replaces an entry with the same id in the target mailbox.
    fn move_locked(
        st: &mut State,
        p: &mut Pending,
        key: &MsgKey,
        to: Mailbox,
        now: UnixMillis,
        delivery: Option<DeliveryState>,
    ) -> bool {
        let Some(mut m) = st.remove_msg(key) else {
            return false;
        };
        let seq = st.next_seq;
        let mut h = key_header(&key.0, key.1, &key.2)
            .with("to", to.as_str())
            .with("s", seq as f64)
            .with("t", ms(now));
        if let Some(d) = &delivery {
            h.insert("d", delivery_to(d));
            m.delivery = Some(d.clone());
        }
        Log::append(p, T_MOVE, &h, &[]);
        m.seq = seq;
        m.at = now;
        let new_key = (key.0.clone(), to, key.2.clone());
        st.remove_msg(&new_key);
        st.insert_msg(new_key, m);
        true
    }

    pub(crate) async fn delete(
        &self,
        owner: &str,
        mailbox: Mailbox,
        ids: &[&str],
        now: UnixMillis,
    ) -> Result<u64> {
        let owner = owner.to_lowercase();
        let (n, ticket) = {
            let mut st = lock(&self.state);
            let mut p = self.log.pending()?;
            let mut n = 0;
            for id in ids {
                let key = (owner.clone(), mailbox, (*id).to_owned());
                if mailbox == Mailbox::Trash {
                    if st.remove_msg(&key).is_some() {
                        Log::append(&mut p, T_DELETE, &key_header(&owner, mailbox, id), &[]);
                        n += 1;
                    }
                } else if Self::move_locked(&mut st, &mut p, &key, Mailbox::Trash, now, None) {
                    n += 1;
                }
            }
            (n, Log::watermark(&p))
        };
        self.commit(ticket).await?;
        Ok(n)
    }

    pub(crate) async fn replace(
        &self,
        owner: &str,
        mailbox: Mailbox,
        id: &str,
        artifact: &Object,
        now: UnixMillis,
    ) -> Result<bool> {
        let text = object_to_js_string(artifact);
        let digest = digest16(text.as_bytes());
        let key = (owner.to_lowercase(), mailbox, id.to_owned());
        let (found, ticket) = {
            let mut st = lock(&self.state);
            let mut p = self.log.pending()?;
            match st.remove_msg(&key) {
                None => (false, Log::watermark(&p)),
                Some(old) => {
                    let seq = st.next_seq;
                    let mut h = key_header(&key.0, key.1, &key.2)
                        .with("s", seq as f64)
                        .with("t", ms(now))
                        .with("h", crate::id::hex(&digest));
                    if old.seen {
                        h.insert("n", true);
                    }
                    if let Some(t) = old.seen_at {
                        h.insert("na", ms(t));
                    }
                    if let Some(d) = &old.delivery {
                        h.insert("d", delivery_to(d));
                    }
                    let (t, blob_offset) = Log::append(&mut p, T_PUT, &h, text.as_bytes());
                    st.insert_msg(
                        key,
                        Msg {
                            seq,
                            at: now,
                            blob_offset,
                            blob_len: text.len() as u32,
                            digest,
                            ..old
                        },
                    );
                    (true, t)
                }
            }
        };
        self.commit(ticket).await?;
        Ok(found)
    }

    pub(crate) async fn claim_due(
        &self,
        now: UnixMillis,
        lease_until: UnixMillis,
        limit: usize,
    ) -> Result<Vec<StoredMessage>> {
        let (items, ticket, file) = {
            let mut st = lock(&self.state);
            let mut p = self.log.pending()?;
            let keys: Vec<MsgKey> = st
                .due
                .range(..=(now.as_millis(), u64::MAX))
                .take(limit)
                .map(|(_, k)| k.clone())
                .collect();
            let mut items = Vec::with_capacity(keys.len());
            for key in keys {
                let Some(m) = st.remove_msg(&key) else {
                    continue;
                };
                let mut d = m
                    .delivery
                    .clone()
                    .unwrap_or_else(|| DeliveryState::new(now));
                d.next_attempt_at = lease_until;
                let h = key_header(&key.0, key.1, &key.2).with("d", delivery_to(&d));
                Log::append(&mut p, T_DELIVERY, &h, &[]);
                let m = Msg {
                    delivery: Some(d),
                    ..m
                };
                items.push(Loaded {
                    owner: key.0.clone(),
                    mailbox: key.1,
                    id: key.2.clone(),
                    msg: m.clone(),
                });
                st.insert_msg(key, m);
            }
            (items, Log::watermark(&p), self.reader())
        };
        self.commit(ticket).await?;
        self.materialize(file, items).await
    }

    pub(crate) async fn record_delivery(
        &self,
        owner: &str,
        id: &str,
        outcome: &DeliveryOutcome,
        now: UnixMillis,
    ) -> Result<bool> {
        let key = (owner.to_lowercase(), Mailbox::Outbox, id.to_owned());
        let (ok, ticket) = {
            let mut st = lock(&self.state);
            let mut p = self.log.pending()?;
            let pending = st
                .msgs
                .get(&key)
                .and_then(|m| m.delivery.clone())
                .filter(|d| d.status == DeliveryStatus::Pending);
            match pending {
                None => (false, Log::watermark(&p)),
                Some(mut d) => {
                    d.attempts = d.attempts.saturating_add(1);
                    match outcome {
                        DeliveryOutcome::Delivered => {
                            d.status = DeliveryStatus::Delivered;
                            d.finished_at = Some(now);
                            Self::move_locked(
                                &mut st,
                                &mut p,
                                &key,
                                Mailbox::Sentbox,
                                now,
                                Some(d),
                            );
                        }
                        DeliveryOutcome::Retry {
                            next_attempt_at,
                            error,
                        } => {
                            d.next_attempt_at = *next_attempt_at;
                            d.last_error = Some(error.clone());
                            Self::set_delivery(&mut st, &mut p, &key, d);
                        }
                        DeliveryOutcome::Failed { reason } => {
                            d.status = DeliveryStatus::Failed;
                            d.last_error = Some(reason.clone());
                            d.finished_at = Some(now);
                            Self::set_delivery(&mut st, &mut p, &key, d);
                        }
                    }
                    (true, Log::watermark(&p))
                }
            }
        };
        self.commit(ticket).await?;
        Ok(ok)
    }

    fn set_delivery(st: &mut State, p: &mut Pending, key: &MsgKey, d: DeliveryState) {
        if let Some(m) = st.remove_msg(key) {
            let h = key_header(&key.0, key.1, &key.2).with("d", delivery_to(&d));
            Log::append(p, T_DELIVERY, &h, &[]);
            st.insert_msg(
                key.clone(),
                Msg {
                    delivery: Some(d),
                    ..m
                },
            );
        }
    }

    pub(crate) async fn cancel(
        &self,
        owner: &str,
        ids: &[&str],
        now: UnixMillis,
    ) -> Result<Vec<String>> {
        let owner = owner.to_lowercase();
        let (done, ticket) = {
            let mut st = lock(&self.state);
            let mut p = self.log.pending()?;
            let mut done = Vec::new();
            for id in ids {
                let key = (owner.clone(), Mailbox::Outbox, (*id).to_owned());
                let pending = st
                    .msgs
                    .get(&key)
                    .and_then(|m| m.delivery.clone())
                    .filter(|d| d.status == DeliveryStatus::Pending);
                if let Some(mut d) = pending {
                    d.status = DeliveryStatus::Cancelled;
                    d.finished_at = Some(now);
                    Self::move_locked(&mut st, &mut p, &key, Mailbox::Trash, now, Some(d));
                    done.push((*id).to_owned());
                }
            }
            (done, Log::watermark(&p))
        };
        self.commit(ticket).await?;
        Ok(done)
    }

    // ---- compaction --------------------------------------------------------------------

    /// Rewrites the log with only the live state (expired replay entries and tokens dropped).
    /// Blocks writers for its duration.
    pub(crate) fn compact_blocking(&self, now: UnixMillis) -> Result<u64> {
        let mut st = lock(&self.state);
        self.log.drain_blocking()?;
        let old = self.reader();
        let tmp = compact_path(&self.path);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| TrustError::io("create", &tmp, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let mut pos = log::MAGIC.len() as u64;
        let mut buf = Vec::with_capacity(1 << 16);
        let mut new_offsets: Vec<(MsgKey, u64)> = Vec::with_capacity(st.msgs.len());
        let io = |e| TrustError::io("write", &tmp, e);
        w.write_all(log::MAGIC).map_err(io)?;
        // Messages in fetch order keep their seq and time.
        for ((o, b, _, _), id) in &st.order {
            let key = (o.clone(), *b, id.clone());
            let Some(m) = st.msgs.get(&key) else { continue };
            let blob = log::read_blob(&old, &self.path, m.blob_offset, m.blob_len)?;
            let mut h = key_header(o, *b, id)
                .with("s", m.seq as f64)
                .with("t", ms(m.at))
                .with("h", crate::id::hex(&m.digest));
            if m.seen {
                h.insert("n", true);
            }
            if let Some(t) = m.seen_at {
                h.insert("na", ms(t));
            }
            if let Some(d) = &m.delivery {
                h.insert("d", delivery_to(d));
            }
            buf.clear();
            let rel = log::encode(&mut buf, T_PUT, &h, &blob);
            new_offsets.push((key, pos + rel));
            pos += buf.len() as u64;
            w.write_all(&buf).map_err(io)?;
        }
        st.replay.retain(|_, (_, exp)| *exp >= now);
        for ((scope, id), (sig, exp)) in &st.replay {
            let e = ReplayEntry {
                scope: scope.clone(),
                id: id.clone(),
                signature: sig.clone(),
                expires_at: *exp,
            };
            buf.clear();
            log::encode(&mut buf, T_REPLAY, &replay_header(&e), &[]);
            pos += buf.len() as u64;
            w.write_all(&buf).map_err(io)?;
        }
        st.tokens.retain(|_, list| {
            list.retain(|e| e.rec.expires_at >= now);
            !list.is_empty()
        });
        for list in st.tokens.values() {
            for e in list {
                buf.clear();
                log::encode(&mut buf, T_TOKEN, &token_to(&e.rec, e.used), &[]);
                pos += buf.len() as u64;
                w.write_all(&buf).map_err(io)?;
            }
        }
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all()
            .map_err(|e| TrustError::io("fsync", &tmp, e))?;
        drop(file);
        self.log.replace_file(&tmp)?;
        for (key, off) in new_offsets {
            if let Some(m) = st.msgs.get_mut(&key) {
                m.blob_offset = off;
            }
        }
        let reader = File::open(&self.path).map_err(|e| TrustError::io("open", &self.path, e))?;
        *lock(&self.reader) = Arc::new(reader);
        Ok(pos)
    }

    pub(crate) fn close(&self) {
        self.log.close();
    }
}
