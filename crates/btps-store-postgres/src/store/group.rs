//! Group commit of [`MessageStore::store`]: concurrent calls are queued to writer tasks; a
//! free writer takes every pending call (up to [`PgStoreConfig::max_batch`]), stores them
//! with one commit — one WAL flush for the whole group — and answers each caller with its own
//! outcome once that commit is durable.
//!
//! Calls that share a message key (owner, mailbox, id) or a replay key (scope, id) with an
//! earlier call of the group go to a later *round*, so that every outcome is the one of
//! running the calls one after the other, in arrival order per key. Rounds use set-based
//! statements over arrays (`unnest`).
//!
//! **The first round is one statement** ([`FAST_ROUND`]), committed on its own: it inserts
//! the messages whose replay key is absent (unexpired at the call's `now`) with
//! `ON CONFLICT DO NOTHING`, and the replay entries of exactly the messages it inserted with a
//! plain `INSERT`. The written calls are [`StoreOutcome::Stored`]. For the others, nothing
//! was stored, and the stored signature (a present replay key) or else the stored artifact's
//! digest (a taken message key) gives [`StoreOutcome::AlreadyAccepted`] or
//! [`StoreOutcome::Duplicate`]. If a replay key is taken between the statement's check and its
//! insert (by another process, or an expired entry not yet purged), the unique violation
//! fails the whole statement, so a message never commits without its replay entry.
//!
//! **Everything else goes the careful way**, in one transaction with one commit: the later
//! rounds, calls whose verdict row vanished (purged or moved by another process meanwhile),
//! and the whole first round when its statement failed. Per round:
//!
//! 1. insert the messages whose replay key is absent, `ON CONFLICT DO NOTHING`;
//! 2. insert the replay entries of the messages inserted, `ON CONFLICT DO NOTHING`;
//! 3. replay keys taken by expired entries: overwrite them (`UPDATE … WHERE expires_at <
//!    now`); both written: `Stored`;
//! 4. the others: verdict by the stored signature, else by the stored digest;
//! 5. delete again the messages of calls that did not end as `Stored` (rows this transaction
//!    inserted and still locks: as if never inserted);
//!
//! and a call without a verdict (its row vanished) is tried again in the next round.
//!
//! Unique keys and `ON CONFLICT` remain the arbiters, so several processes, each with its own
//! writers, may share the database. When the careful transaction fails, each call it held is
//! retried on its own (the careful way for one call, which is also how every call runs with
//! `writers = 0`), so one bad call fails alone; a call on its own that the server picked to
//! break a deadlock is tried again. When a commit gets no answer (the connection is lost),
//! whether its calls are durable is unknown, and they get [`PgStoreError::CommitUnknown`].
//!
//! Every path writes the message before its replay entry, and a statement writes its rows in
//! key order, so that groups and calls of several writers or processes rarely wait for each
//! other in a cycle. Rows are looked up by their unique keys through `LATERAL (… LIMIT 1)`
//! subqueries, never by joins, and the store calls have connections of their own that use the
//! generic plan of every statement (`plan_cache_mode = force_generic_plan`): planned once per
//! connection, never per call, and still an index lookup per row when the plan was made on an
//! empty table.
//!
//! [`MessageStore::store`]: btps_trust::MessageStore::store
//! [`PgStoreConfig::max_batch`]: crate::PgStoreConfig::max_batch

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use btps_trust::{Mailbox, NewMessage, ReplayEntry, Result, StoreOutcome, TrustError};
use btps_types::UnixMillis;
use deadpool_postgres::{GenericClient, Pool, Transaction};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::error::SqlState;

use super::{execute, query};
use crate::PgStoreError;
use crate::error::{backend, pool as pool_failure};

/// One `store` call, prepared for the database.
#[derive(Debug)]
pub(super) struct Job {
    /// Lower-case owner.
    owner: String,
    mailbox: Mailbox,
    id: String,
    stored_at: i64,
    /// The artifact's JSON text.
    text: String,
    replay: Option<ReplayEntry>,
    now: UnixMillis,
}

impl Job {
    /// The call's data; the JSON text is made here, in the caller's task.
    pub(super) fn new(m: &NewMessage, replay: Option<&ReplayEntry>, now: UnixMillis) -> Self {
        Self {
            owner: m.owner.to_lowercase(),
            mailbox: m.mailbox,
            id: m.id.clone(),
            stored_at: m.stored_at.as_millis(),
            text: m.text.clone(),
            replay: replay.cloned(),
            now,
        }
    }

    fn message_key(&self) -> (&str, &str, &str) {
        (&self.owner, self.mailbox.as_str(), &self.id)
    }

    fn replay_key(&self) -> Option<(&str, &str)> {
        self.replay
            .as_ref()
            .map(|e| (e.scope.as_str(), e.id.as_str()))
    }
}

/// A queued call and where its answer goes.
#[derive(Debug)]
struct Request {
    job: Job,
    reply: oneshot::Sender<Result<StoreOutcome>>,
}

/// The queue of the group-commit writers (absent: every call commits on its own).
#[derive(Clone, Debug)]
pub(super) struct GroupCommit {
    pool: Pool,
    queue: Option<mpsc::Sender<Request>>,
}

impl GroupCommit {
    /// Starts `writers` writer tasks on the current tokio runtime (none for `0`), working
    /// with connections of `pool`, which must run statements with their generic plans
    /// (`plan_cache_mode = force_generic_plan`). The writers end when the last clone of the
    /// returned queue is dropped.
    pub(super) fn start(pool: Pool, writers: usize, max_batch: usize) -> Self {
        if writers == 0 {
            return Self { pool, queue: None };
        }
        let max_batch = max_batch.max(1);
        let (tx, rx) = mpsc::channel(max_batch.saturating_mul(writers).max(1024));
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers {
            tokio::spawn(writer(pool.clone(), Arc::clone(&rx), max_batch));
        }
        Self {
            pool,
            queue: Some(tx),
        }
    }

    /// Closes the connections of the store calls; later calls fail.
    pub(super) fn close(&self) {
        self.pool.close();
    }

    /// Stores one call: through a writer, or on its own when there is none.
    pub(super) async fn store(&self, job: Job) -> Result<StoreOutcome> {
        let Some(queue) = &self.queue else {
            return store_alone(&self.pool, &job).await;
        };
        let (reply, answer) = oneshot::channel();
        match queue.send(Request { job, reply }).await {
            Ok(()) => answer.await.unwrap_or(Err(TrustError::Closed)),
            // The writers are gone (their runtime shut down): nothing was queued, so the call
            // runs on its own.
            Err(mpsc::error::SendError(r)) => store_alone(&self.pool, &r.job).await,
        }
    }
}

/// A writer: takes everything pending (up to `max_batch`) and commits it as one group.
async fn writer(pool: Pool, rx: Arc<Mutex<mpsc::Receiver<Request>>>, max_batch: usize) {
    let mut buf = Vec::with_capacity(max_batch);
    loop {
        let n = rx.lock().await.recv_many(&mut buf, max_batch).await;
        if n == 0 {
            return;
        }
        commit_group(&pool, std::mem::take(&mut buf)).await;
    }
}

/// Why part of a group has no outcome.
enum GroupError {
    /// Nothing of the undecided calls was committed: retry each of them on its own.
    RolledBack,
    /// Every undecided call gets this error (made per call: errors are not `Clone`).
    All(fn(&str) -> TrustError, String),
}

async fn commit_group(pool: &Pool, requests: Vec<Request>) {
    let (jobs, replies): (Vec<Job>, Vec<_>) =
        requests.into_iter().map(|r| (r.job, r.reply)).unzip();
    let mut outcomes = vec![None; jobs.len()];
    let failed = run_group(pool, &jobs, &mut outcomes).await.err();
    let mut alone = tokio::task::JoinSet::new();
    for ((job, reply), outcome) in jobs.into_iter().zip(replies).zip(outcomes) {
        // A caller that gave up does not want the answer: `send` errors are ignored.
        match (outcome, &failed) {
            (Some(outcome), _) => {
                let _ = reply.send(Ok(outcome));
            }
            (None, Some(GroupError::All(make, detail))) => {
                let _ = reply.send(Err(make(detail)));
            }
            // Each call on its own, concurrently (they have their own connections).
            (None, _) => {
                let pool = pool.clone();
                alone.spawn(async move {
                    let _ = reply.send(store_alone(&pool, &job).await);
                });
            }
        }
    }
    alone.join_all().await;
}

fn pool_error(detail: &str) -> TrustError {
    PgStoreError::Pool(detail.to_owned()).into()
}

fn commit_unknown(detail: &str) -> TrustError {
    PgStoreError::CommitUnknown(detail.to_owned()).into()
}

/// Stores the group: the first round as one statement (see [`FAST_ROUND`]), whatever is
/// left in one transaction of rounds. Fills in `outcomes` of the calls committed (or found
/// not to store anything).
async fn run_group(
    pool: &Pool,
    jobs: &[Job],
    outcomes: &mut [Option<StoreOutcome>],
) -> Result<(), GroupError> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| GroupError::All(pool_error, e.to_string()))?;
    let all: Vec<usize> = (0..jobs.len()).collect();
    let (first, _) = split_round(jobs, &all);
    match fast_round(&client, jobs, first, outcomes).await {
        Ok(()) => {}
        // The statement failed: nothing of it is committed.
        Err(e) if e.as_db_error().is_some() => {}
        Err(e) => return Err(GroupError::All(commit_unknown, e.to_string())),
    }
    let pending: Vec<usize> = all.into_iter().filter(|&i| outcomes[i].is_none()).collect();
    if pending.is_empty() {
        return Ok(());
    }
    // The careful way; its outcomes count once it is committed.
    match careful(&mut client, jobs, pending).await {
        Ok(decided) => {
            for (o, d) in outcomes.iter_mut().zip(decided) {
                if d.is_some() {
                    *o = d;
                }
            }
            Ok(())
        }
        Err(Careful::Failed(_)) => Err(GroupError::RolledBack),
        Err(Careful::Unknown(e)) => Err(GroupError::All(commit_unknown, e.to_string())),
    }
}

/// Why the careful transaction has no outcomes.
enum Careful {
    /// It failed and is rolled back.
    Failed(TrustError),
    /// `COMMIT` got no answer: the outcome is unknown.
    Unknown(tokio_postgres::Error),
}

/// The careful way: `pending` (call indexes, ascending) in one transaction, round after
/// round, committed; the outcome of every pending call.
async fn careful(
    client: &mut deadpool_postgres::Object,
    jobs: &[Job],
    mut pending: Vec<usize>,
) -> Result<Vec<Option<StoreOutcome>>, Careful> {
    let mut decided = vec![None; jobs.len()];
    let tx = client
        .transaction()
        .await
        .map_err(|e| Careful::Failed(backend(e)))?;
    while !pending.is_empty() {
        let (this, mut later) = split_round(jobs, &pending);
        later.extend(
            run_round(&tx, jobs, this, &mut decided)
                .await
                .map_err(Careful::Failed)?,
        );
        later.sort_unstable();
        pending = later;
    }
    tx.commit().await.map_err(|e| {
        if e.as_db_error().is_some() {
            // The server answered with an error: the transaction is rolled back.
            Careful::Failed(backend(e))
        } else {
            Careful::Unknown(e)
        }
    })?;
    Ok(decided)
}

/// The first round of a group as one statement, committed on its own: the messages whose
/// replay key is absent, `ON CONFLICT DO NOTHING`, and the replay entries of the messages
/// written, by plain `INSERT`. A replay key taken meanwhile (by another process, or an
/// expired entry not yet purged) is a unique violation that fails the whole statement, so it
/// never commits a message without its replay entry; the calls then go the careful way.
/// Returns the keys of the messages written.
const FAST_ROUND: &str = "WITH u AS (SELECT * FROM unnest($1::text[], $2::text[], \
     $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], \
     $10::bigint[]) AS u(owner, mailbox, id, stored_at, artifact, scope, aid, sig, exp, now)), \
     m AS (INSERT INTO btps_message (owner, mailbox, id, seq, stored_at, artifact, digest, \
     delivery_status, attempts, next_attempt_at) \
     SELECT u.owner, u.mailbox, u.id, nextval('btps_message_seq'), u.stored_at, u.artifact, \
     sha256(convert_to(u.artifact, 'UTF8')), \
     CASE WHEN u.mailbox = 'outbox' THEN 'pending' END, \
     CASE WHEN u.mailbox = 'outbox' THEN 0 END, \
     CASE WHEN u.mailbox = 'outbox' THEN u.stored_at END \
     FROM u LEFT JOIN LATERAL (SELECT true AS seen FROM btps_seen_artifact s \
     WHERE s.replay_key = u.scope AND s.artifact_id = u.aid AND s.expires_at >= u.now LIMIT 1) x \
     ON true WHERE x.seen IS NULL \
     ON CONFLICT (owner, mailbox, id) DO NOTHING RETURNING owner, mailbox, id), \
     r AS (INSERT INTO btps_seen_artifact (replay_key, artifact_id, signature, expires_at) \
     SELECT u.scope, u.aid, u.sig, u.exp FROM u JOIN m ON m.owner = u.owner \
     AND m.mailbox = u.mailbox AND m.id = u.id WHERE u.scope IS NOT NULL \
     ORDER BY u.scope, u.aid) \
     SELECT owner, mailbox, id FROM m";

/// The verdicts of calls that stored nothing: of `replay_asks`, those whose replay key is
/// present (unexpired at the call's `now`) by the stored signature; then of `message_asks`
/// still undecided, those whose message key is taken by the stored artifact's digest. A call
/// whose row is gone stays undecided.
async fn verdicts<C: GenericClient>(
    c: &C,
    jobs: &[Job],
    replay_asks: &[usize],
    message_asks: &[usize],
    outcomes: &mut [Option<StoreOutcome>],
) -> Result<()> {
    let asks: Vec<(usize, &ReplayEntry)> = replay_asks
        .iter()
        .filter_map(|&i| jobs[i].replay.as_ref().map(|e| (i, e)))
        .collect();
    if !asks.is_empty() {
        let is: Vec<i32> = asks.iter().map(|(i, _)| index(*i)).collect();
        let scopes: Vec<&str> = asks.iter().map(|(_, e)| e.scope.as_str()).collect();
        let aids: Vec<&str> = asks.iter().map(|(_, e)| e.id.as_str()).collect();
        let sigs: Vec<&str> = asks.iter().map(|(_, e)| e.signature.as_str()).collect();
        let nows: Vec<i64> = asks.iter().map(|(i, _)| jobs[*i].now.as_millis()).collect();
        let rows = query(c, SAME_SIGNATURE, &[&is, &scopes, &aids, &sigs, &nows]).await?;
        for row in &rows {
            outcomes[unindex(row.get(0))] = Some(verdict(row.get(1)));
        }
    }
    let asks: Vec<usize> = message_asks
        .iter()
        .copied()
        .filter(|&i| outcomes[i].is_none())
        .collect();
    if !asks.is_empty() {
        let is: Vec<i32> = asks.iter().map(|&i| index(i)).collect();
        let owners: Vec<&str> = asks.iter().map(|&i| jobs[i].owner.as_str()).collect();
        let mailboxes: Vec<&str> = asks.iter().map(|&i| jobs[i].mailbox.as_str()).collect();
        let ids: Vec<&str> = asks.iter().map(|&i| jobs[i].id.as_str()).collect();
        let texts: Vec<&str> = asks.iter().map(|&i| jobs[i].text.as_str()).collect();
        let rows = query(c, SAME_ARTIFACT, &[&is, &owners, &mailboxes, &ids, &texts]).await?;
        for row in &rows {
            outcomes[unindex(row.get(0))] = Some(verdict(row.get(1)));
        }
    }
    Ok(())
}

/// Runs [`FAST_ROUND`] for `round` (calls with distinct keys): the calls written are
/// [`StoreOutcome::Stored`]; of the others, those whose present replay key or taken message
/// key is still there get their verdict. The rest stay undecided.
async fn fast_round(
    client: &deadpool_postgres::Object,
    jobs: &[Job],
    mut round: Vec<usize>,
    outcomes: &mut [Option<StoreOutcome>],
) -> Result<(), tokio_postgres::Error> {
    round.sort_by(|&a, &b| jobs[a].message_key().cmp(&jobs[b].message_key()));
    let js: Vec<&Job> = round.iter().map(|&i| &jobs[i]).collect();
    let owners: Vec<&str> = js.iter().map(|j| j.owner.as_str()).collect();
    let mailboxes: Vec<&str> = js.iter().map(|j| j.mailbox.as_str()).collect();
    let ids: Vec<&str> = js.iter().map(|j| j.id.as_str()).collect();
    let stored: Vec<i64> = js.iter().map(|j| j.stored_at).collect();
    let texts: Vec<&str> = js.iter().map(|j| j.text.as_str()).collect();
    let replays: Vec<Option<&ReplayEntry>> = js.iter().map(|j| j.replay.as_ref()).collect();
    let scopes: Vec<Option<&str>> = replays
        .iter()
        .map(|e| e.map(|e| e.scope.as_str()))
        .collect();
    let aids: Vec<Option<&str>> = replays.iter().map(|e| e.map(|e| e.id.as_str())).collect();
    let sigs: Vec<Option<&str>> = replays
        .iter()
        .map(|e| e.map(|e| e.signature.as_str()))
        .collect();
    let exps: Vec<Option<i64>> = replays
        .iter()
        .map(|e| e.map(|e| e.expires_at.as_millis()))
        .collect();
    let nows: Vec<i64> = js.iter().map(|j| j.now.as_millis()).collect();
    let st = client.prepare_cached(FAST_ROUND).await?;
    let rows = client
        .query(
            &st,
            &[
                &owners, &mailboxes, &ids, &stored, &texts, &scopes, &aids, &sigs, &exps, &nows,
            ],
        )
        .await?;
    let by_message: HashMap<(&str, &str, &str), usize> =
        round.iter().map(|&i| (jobs[i].message_key(), i)).collect();
    for row in &rows {
        let key: (&str, &str, &str) = (row.get(0), row.get(1), row.get(2));
        if let Some(&i) = by_message.get(&key) {
            outcomes[i] = Some(StoreOutcome::Stored);
        }
    }
    // Not written: committed or not, nothing of these calls was stored; the verdicts are
    // read now (a failure to read leaves them to the careful way).
    let rest: Vec<usize> = round
        .into_iter()
        .filter(|&i| outcomes[i].is_none())
        .collect();
    if !rest.is_empty() {
        let _ = verdicts(client, jobs, &rest, &rest, outcomes).await;
    }
    Ok(())
}

/// Splits `pending` (call indexes, ascending) into a round of calls with distinct message
/// and replay keys, and the rest. A call that waits reserves its keys too, so that calls
/// with the same key keep their arrival order.
fn split_round(jobs: &[Job], pending: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut messages = HashSet::new();
    let mut replays = HashSet::new();
    let (mut this, mut later) = (Vec::new(), Vec::new());
    for &i in pending {
        let j = &jobs[i];
        let free_message = messages.insert(j.message_key());
        let free_replay = j.replay_key().is_none_or(|k| replays.insert(k));
        if free_message && free_replay {
            this.push(i);
        } else {
            later.push(i);
        }
    }
    (this, later)
}

/// A call index as an SQL `integer`.
fn index(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

/// The call index an SQL `integer` stands for.
fn unindex(i: i32) -> usize {
    usize::try_from(i).unwrap_or(usize::MAX)
}

// Lookups in the tables go through `LATERAL (… LIMIT 1)` subqueries rather than joins or
// `NOT EXISTS`: the statements are prepared once per connection, and a generic plan made while
// a table is small could otherwise hash a sequential scan of it for every later group; a
// lateral subquery is always an index lookup per call.

const INSERT_MESSAGES: &str = "INSERT INTO btps_message (owner, mailbox, id, seq, stored_at, \
     artifact, digest, delivery_status, attempts, next_attempt_at) \
     SELECT u.owner, u.mailbox, u.id, nextval('btps_message_seq'), u.stored_at, u.artifact, \
     sha256(convert_to(u.artifact, 'UTF8')), \
     CASE WHEN u.mailbox = 'outbox' THEN 'pending' END, \
     CASE WHEN u.mailbox = 'outbox' THEN 0 END, \
     CASE WHEN u.mailbox = 'outbox' THEN u.stored_at END \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], \
     $7::text[], $8::bigint[]) AS u(owner, mailbox, id, stored_at, artifact, scope, aid, now) \
     LEFT JOIN LATERAL (SELECT true AS seen FROM btps_seen_artifact s \
     WHERE s.replay_key = u.scope AND s.artifact_id = u.aid AND s.expires_at >= u.now LIMIT 1) x \
     ON true WHERE x.seen IS NULL \
     ON CONFLICT (owner, mailbox, id) DO NOTHING RETURNING owner, mailbox, id";

const INSERT_REPLAYS: &str = "INSERT INTO btps_seen_artifact (replay_key, artifact_id, \
     signature, expires_at) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) \
     ON CONFLICT (replay_key, artifact_id) DO NOTHING RETURNING replay_key, artifact_id";

/// One call's replay entry over an expired one (rare: one statement per call).
const RENEW_EXPIRED_REPLAY: &str = "UPDATE btps_seen_artifact SET signature = $3, \
     expires_at = $4 WHERE replay_key = $1 AND artifact_id = $2 AND expires_at < $5";

const SAME_SIGNATURE: &str = "SELECT u.i, x.same \
     FROM unnest($1::integer[], $2::text[], $3::text[], $4::text[], $5::bigint[]) \
     AS u(i, scope, aid, sig, now) \
     CROSS JOIN LATERAL (SELECT s.signature = u.sig AS same FROM btps_seen_artifact s \
     WHERE s.replay_key = u.scope AND s.artifact_id = u.aid AND s.expires_at >= u.now LIMIT 1) x";

const SAME_ARTIFACT: &str = "SELECT u.i, x.same \
     FROM unnest($1::integer[], $2::text[], $3::text[], $4::text[], $5::text[]) \
     AS u(i, owner, mailbox, id, artifact) \
     CROSS JOIN LATERAL (SELECT m.digest = sha256(convert_to(u.artifact, 'UTF8')) AS same \
     FROM btps_message m WHERE m.owner = u.owner AND m.mailbox = u.mailbox AND m.id = u.id \
     LIMIT 1) x";

/// One message this transaction wrote, taken back (rare: one statement per call).
const DELETE_MESSAGE: &str =
    "DELETE FROM btps_message WHERE owner = $1 AND mailbox = $2 AND id = $3";

/// Same (`true`) or other stored value → the outcome.
fn verdict(same: bool) -> StoreOutcome {
    if same {
        StoreOutcome::AlreadyAccepted
    } else {
        StoreOutcome::Duplicate
    }
}

/// One round (see the module documentation); records outcomes and returns the calls to
/// retry.
async fn run_round(
    tx: &Transaction<'_>,
    jobs: &[Job],
    mut round: Vec<usize>,
    outcomes: &mut [Option<StoreOutcome>],
) -> Result<Vec<usize>> {
    // Rows are locked in key order, the same in every group, which keeps groups of several
    // writers or processes from deadlocking on each other within one statement.
    round.sort_by(|&a, &b| jobs[a].message_key().cmp(&jobs[b].message_key()));

    // 1. The messages.
    let rows = {
        let js: Vec<&Job> = round.iter().map(|&i| &jobs[i]).collect();
        let owners: Vec<&str> = js.iter().map(|j| j.owner.as_str()).collect();
        let mailboxes: Vec<&str> = js.iter().map(|j| j.mailbox.as_str()).collect();
        let ids: Vec<&str> = js.iter().map(|j| j.id.as_str()).collect();
        let stored: Vec<i64> = js.iter().map(|j| j.stored_at).collect();
        let texts: Vec<&str> = js.iter().map(|j| j.text.as_str()).collect();
        let scopes: Vec<Option<&str>> = js.iter().map(|j| j.replay_key().map(|k| k.0)).collect();
        let aids: Vec<Option<&str>> = js.iter().map(|j| j.replay_key().map(|k| k.1)).collect();
        let nows: Vec<i64> = js.iter().map(|j| j.now.as_millis()).collect();
        query(
            tx,
            INSERT_MESSAGES,
            &[
                &owners, &mailboxes, &ids, &stored, &texts, &scopes, &aids, &nows,
            ],
        )
        .await?
    };
    let by_message: HashMap<(&str, &str, &str), usize> =
        round.iter().map(|&i| (jobs[i].message_key(), i)).collect();
    let mut inserted = vec![false; jobs.len()];
    for row in &rows {
        let key: (&str, &str, &str) = (row.get(0), row.get(1), row.get(2));
        if let Some(&i) = by_message.get(&key) {
            inserted[i] = true;
        }
    }
    let (mut written, not_written): (Vec<usize>, Vec<usize>) =
        round.iter().partition(|&&i| inserted[i]);

    // 2. The replay entries of the messages written.
    written.sort_by(|&a, &b| jobs[a].replay_key().cmp(&jobs[b].replay_key()));
    let with_replay: Vec<(usize, &ReplayEntry)> = written
        .iter()
        .filter_map(|&i| jobs[i].replay.as_ref().map(|e| (i, e)))
        .collect();
    let mut replay_done = vec![false; jobs.len()];
    if !with_replay.is_empty() {
        let scopes: Vec<&str> = with_replay.iter().map(|(_, e)| e.scope.as_str()).collect();
        let aids: Vec<&str> = with_replay.iter().map(|(_, e)| e.id.as_str()).collect();
        let sigs: Vec<&str> = with_replay
            .iter()
            .map(|(_, e)| e.signature.as_str())
            .collect();
        let exps: Vec<i64> = with_replay
            .iter()
            .map(|(_, e)| e.expires_at.as_millis())
            .collect();
        let rows = query(tx, INSERT_REPLAYS, &[&scopes, &aids, &sigs, &exps]).await?;
        let by_replay: HashMap<(&str, &str), usize> = with_replay
            .iter()
            .map(|(i, e)| ((e.scope.as_str(), e.id.as_str()), *i))
            .collect();
        for row in &rows {
            let key: (&str, &str) = (row.get(0), row.get(1));
            if let Some(&i) = by_replay.get(&key) {
                replay_done[i] = true;
            }
        }
    }
    // 3. Replay keys taken: renew the expired ones.
    for &(i, e) in &with_replay {
        if replay_done[i] {
            continue;
        }
        let renewed = execute(
            tx,
            RENEW_EXPIRED_REPLAY,
            &[
                &e.scope,
                &e.id,
                &e.signature,
                &e.expires_at.as_millis(),
                &jobs[i].now.as_millis(),
            ],
        )
        .await?;
        replay_done[i] = renewed == 1;
    }
    for &i in &written {
        if jobs[i].replay.is_none() || replay_done[i] {
            outcomes[i] = Some(StoreOutcome::Stored);
        }
    }

    // 4. Not stored: a present replay key decides, then a taken message key (only messages
    // not written can have lost to one).
    let undecided: Vec<usize> = round
        .iter()
        .copied()
        .filter(|&i| outcomes[i].is_none())
        .collect();
    verdicts(tx, jobs, &undecided, &not_written, outcomes).await?;

    // 5. Take back the messages written for calls that were not stored.
    let undo: Vec<usize> = written
        .iter()
        .copied()
        .filter(|&i| outcomes[i] != Some(StoreOutcome::Stored))
        .collect();
    for &i in &undo {
        let j = &jobs[i];
        execute(tx, DELETE_MESSAGE, &[&j.owner, &j.mailbox.as_str(), &j.id]).await?;
    }
    // Whatever is still undecided saw a row vanish between two statements: again.
    Ok(round
        .into_iter()
        .filter(|&i| outcomes[i].is_none())
        .collect())
}

// ---- one call on its own --------------------------------------------------------------------

/// Most attempts of a call on its own that the server aborted to break a deadlock (or a
/// serialization failure).
const ALONE_ATTEMPTS: u32 = 5;

/// One call in a transaction of its own (no group commit, or the retry of a call of a failed
/// group): the careful way for one call, which takes its row locks in the same order as the
/// groups do (message, then replay entry).
pub(super) async fn store_alone(pool: &Pool, job: &Job) -> Result<StoreOutcome> {
    let jobs = std::slice::from_ref(job);
    let mut attempt = 1;
    loop {
        let mut client = pool.get().await.map_err(pool_failure)?;
        let e = match careful(&mut client, jobs, vec![0]).await {
            // `careful` decides every call it is given.
            Ok(decided) => return decided.first().copied().flatten().ok_or_else(undecided),
            Err(Careful::Unknown(e)) => return Err(backend(e)),
            Err(Careful::Failed(e)) => e,
        };
        if attempt < ALONE_ATTEMPTS && is_transient(&e) {
            attempt += 1;
        } else {
            return Err(e);
        }
    }
}

fn undecided() -> TrustError {
    TrustError::Backend("store: the call got no outcome".into())
}

/// Whether the server aborted the transaction for a deadlock or a serialization failure.
fn is_transient(e: &TrustError) -> bool {
    let TrustError::Backend(b) = e else {
        return false;
    };
    b.downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::code)
        .is_some_and(|c| {
            *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
        })
}
