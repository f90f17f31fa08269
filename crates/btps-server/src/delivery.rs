//! The outbound delivery worker (PROTOCOL.md §9.4, §9.5, §11.1).
//!
//! Agents' `artifact.send`, `trust.request` and `trust.respond` leave a device-signed
//! transporter artifact in the owner's outbox, stored with a *pending delegation*
//! `{agentId, agentPubKey}` (the device signature does not cover `delegation`, §9.2). The
//! [`DeliveryWorker`] drains the outboxes:
//!
//! 1. it claims due entries with a lease
//!    ([`MessageStore::claim_due`](btps_trust::MessageStore::claim_due)), so that workers of
//!    several processes never attempt one entry at once and an entry whose worker died is
//!    attempted again when the lease ends;
//! 2. per entry (at most [`DeliveryOptions::concurrency`] at once) it checks that the agent
//!    record is still active (§9.5: a revoked agent gets no more delegations), signs a fresh
//!    delegation by the service identity of the sender's domain (§9.4; new `issuedAt` at
//!    each attempt, §10.1), and hands the artifact to [`Deliver`];
//! 3. it [classifies](classify()) the result and records it
//!    ([`MessageStore::record_delivery`](btps_trust::MessageStore::record_delivery)):
//!    delivered (the entry moves to the sentbox), retry after the next delay of the
//!    schedule, or final failure, which first stores a `BTP_DELIVERY_FAILURE` artifact
//!    (§3.3) in the sender's inbox under an id derived from the entry, so that a crash
//!    between the two steps cannot store two.
//!
//! Delivery is at least once: an attempt whose outcome was not recorded is repeated, and the
//! receiver's replay check answers the repetition `already accepted` (or 409
//! `BTP_ERROR_DUPLICATE`), which counts as delivered — the receiver stores the artifact
//! once.

mod classify;
mod failure;
mod network;
mod options;
mod seam;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use btps_crypto::{SystemRandom, delegate};
use btps_trust::{
    DeliveryOutcome, DeliveryStatus, Mailbox, NewMessage, StoreOutcome, StoredMessage, TrustRecord,
    TrustStatus, Verdict, evaluate_agent, generate_uuid_v4, trust_id,
};
use btps_types::json::{Object, Value};
use btps_types::{Identity, Selector, UnixMillis};
use tokio::task::JoinSet;

pub use classify::{AttemptVerdict, classify};
pub(crate) use failure::pending_delegation;
pub use network::ClientDeliver;
pub use options::DeliveryOptions;
pub use seam::{Deliver, DeliverError, PeerReply};

use classify::{Step, millis, next_step};
use failure::{Failure, failure_artifact, failure_id, failure_reason, log_entry, read_pending};

use crate::error::Result;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::transport::Shutdown;

/// How often attempt logs of entries that will never be attempted again are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// What one [`DeliveryWorker::run_once`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Entries claimed.
    pub claimed: usize,
    /// Delivered (moved to the sentbox).
    pub delivered: usize,
    /// Failed attempts scheduled for a retry.
    pub retried: usize,
    /// Final failures (a `BTP_DELIVERY_FAILURE` stored, the entry marked failed).
    pub failed: usize,
    /// Entries cancelled (or finished elsewhere) while they were attempted.
    pub cancelled: usize,
    /// Attempts cut short by a store failure (attempted again when the lease ends).
    pub errors: usize,
}

impl TickReport {
    fn add(&mut self, a: Attempted) {
        match a {
            Attempted::Delivered => self.delivered += 1,
            Attempted::Retried => self.retried += 1,
            Attempted::Failed => self.failed += 1,
            Attempted::Cancelled => self.cancelled += 1,
            Attempted::Error => self.errors += 1,
        }
    }
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempted {
    Delivered,
    Retried,
    Failed,
    Cancelled,
    Error,
}

impl Attempted {
    /// The metrics label.
    const fn label(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retried => "retry",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Error => "error",
        }
    }
}

/// Where an attempt reads the time: a fixed instant ([`DeliveryWorker::run_once`]) or the
/// pipeline's clock ([`DeliveryWorker::run`]).
#[derive(Clone, Copy, Debug)]
enum Now {
    Fixed(UnixMillis),
    Clock,
}

/// The errors of an entry's attempts seen by this process, for the failure's `errorLog`.
#[derive(Debug, Default)]
struct AttemptLog {
    entries: Vec<(u32, Value)>,
    touched: Option<UnixMillis>,
}

/// Drains the outboxes: delegates and delivers queued artifacts through a [`Deliver`],
/// retries on the schedule, and reports final failures to the sender (module docs).
///
/// Cheap to clone (shared state).
#[derive(Clone)]
pub struct DeliveryWorker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DeliveryWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryWorker")
            .field("opts", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

struct Inner {
    pipeline: Arc<Pipeline>,
    deliver: Arc<dyn Deliver>,
    opts: DeliveryOptions,
    logs: Mutex<HashMap<(String, String), AttemptLog>>,
}

impl DeliveryWorker {
    /// A worker over the stores, clock, metrics and delegators (the reply-signing server
    /// identities, [`Pipeline::delegator_for`]) of `pipeline`, sending through `deliver`.
    /// The pipeline wakes it when an artifact is queued ([`Pipeline::outbox_wake`]).
    ///
    /// # Errors
    ///
    /// Invalid options ([`DeliveryOptions::validate`]).
    pub fn new(
        pipeline: Arc<Pipeline>,
        deliver: Arc<dyn Deliver>,
        opts: DeliveryOptions,
    ) -> Result<Self> {
        opts.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                pipeline,
                deliver,
                opts,
                logs: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The options.
    pub fn options(&self) -> &DeliveryOptions {
        &self.inner.opts
    }

    /// One deterministic round: claims up to `concurrency` entries due at `now`, attempts
    /// them concurrently with `now` as the time of every step (delegation `issuedAt`,
    /// retry schedule, failure time), and returns when all are recorded.
    ///
    /// # Errors
    ///
    /// The store failed to claim; failures of single attempts are counted in
    /// [`TickReport::errors`].
    pub async fn run_once(&self, now: UnixMillis) -> Result<TickReport> {
        let entries = self.inner.claim(now, self.inner.opts.concurrency).await?;
        let mut report = TickReport {
            claimed: entries.len(),
            ..TickReport::default()
        };
        let mut tasks = JoinSet::new();
        for entry in entries {
            tasks.spawn(self.inner.clone().attempt(entry, Now::Fixed(now)));
        }
        while let Some(done) = tasks.join_next().await {
            report.add(joined(done));
        }
        Ok(report)
    }

    /// Runs until `shutdown` is triggered: claims due entries whenever an attempt slot is
    /// free, on every poll interval and when the pipeline queues an artifact. On shutdown
    /// it stops claiming and lets the attempts in flight finish within the shutdown grace;
    /// entries still in flight after it are attempted again when their leases end.
    pub async fn run(&self, shutdown: Shutdown) {
        let inner = &self.inner;
        let wake = inner.pipeline.outbox_wake().clone();
        let mut tasks: JoinSet<Attempted> = JoinSet::new();
        let mut pruned = Instant::now();
        tracing::info!(
            concurrency = inner.opts.concurrency,
            "delivery worker started"
        );
        while !shutdown.is_triggered() {
            let free = inner.opts.concurrency.saturating_sub(tasks.len());
            if free > 0 {
                match inner.claim(inner.pipeline.now(), free).await {
                    Ok(entries) => {
                        for entry in entries {
                            tasks.spawn(inner.clone().attempt(entry, Now::Clock));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "delivery: claiming due entries failed"),
                }
            }
            if pruned.elapsed() >= PRUNE_EVERY {
                inner.prune(inner.pipeline.now());
                pruned = Instant::now();
            }
            tokio::select! {
                () = shutdown.triggered() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(inner.opts.poll) => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    joined(done);
                }
            }
        }
        if !tasks.is_empty() {
            tracing::info!(
                in_flight = tasks.len(),
                "delivery worker: letting attempts in flight finish"
            );
            let drain = async {
                while let Some(done) = tasks.join_next().await {
                    joined(done);
                }
            };
            if tokio::time::timeout(inner.opts.shutdown_grace, drain)
                .await
                .is_err()
            {
                tracing::warn!(
                    remaining = tasks.len(),
                    "shutdown grace over; the remaining entries are attempted again when their leases end"
                );
                tasks.abort_all();
            }
        }
        tracing::info!("delivery worker stopped");
    }
}

/// The outcome of a finished attempt task (a panicked one counts as an error).
fn joined(done: std::result::Result<Attempted, tokio::task::JoinError>) -> Attempted {
    done.unwrap_or_else(|e| {
        if e.is_panic() {
            tracing::error!(error = %e, "delivery attempt panicked");
        }
        Attempted::Error
    })
}

/// Counts an attempt in flight for the gauge, also when the task is aborted.
struct InFlight(Arc<Pipeline>);

impl InFlight {
    fn new(pipeline: &Arc<Pipeline>) -> Self {
        pipeline
            .metrics()
            .deliveries_in_flight
            .fetch_add(1, Ordering::Relaxed);
        Self(pipeline.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .metrics()
            .deliveries_in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Inner {
    fn now(&self, at: Now) -> UnixMillis {
        match at {
            Now::Fixed(t) => t,
            Now::Clock => self.pipeline.now(),
        }
    }

    fn metrics(&self) -> &Metrics {
        self.pipeline.metrics()
    }

    async fn claim(&self, now: UnixMillis, limit: usize) -> Result<Vec<StoredMessage>> {
        let lease_until = now.saturating_add_millis(millis(self.opts.lease));
        Ok(self
            .pipeline
            .stores()
            .messages
            .claim_due(now, lease_until, limit)
            .await?)
    }

    /// One attempt of a claimed entry, recorded.
    async fn attempt(self: Arc<Self>, entry: StoredMessage, at: Now) -> Attempted {
        let _in_flight = InFlight::new(&self.pipeline);
        let outcome = match self.try_attempt(&entry, at).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(
                    owner = %entry.owner,
                    id = %entry.id,
                    error = %e,
                    "delivery: store failure; the entry is attempted again when its lease ends"
                );
                Attempted::Error
            }
        };
        self.metrics().count_delivery(outcome.label());
        outcome
    }

    async fn try_attempt(&self, entry: &StoredMessage, at: Now) -> Result<Attempted> {
        let messages = &self.pipeline.stores().messages;
        let prior = entry.delivery.as_ref().map_or(0, |d| d.attempts);
        let fid = failure_id(&entry.owner, &entry.id);
        // A failure artifact stored by a run that stopped before recording the failure: the
        // failure is final, finish recording it.
        if let Some(m) = messages
            .get_message(&entry.owner, Mailbox::Inbox, &fid)
            .await?
            && let Some(reason) = failure_reason(&m.artifact, &entry.id)
        {
            let outcome = DeliveryOutcome::Failed {
                reason: reason.to_owned(),
            };
            self.forget(entry);
            return Ok(if self.record(entry, &outcome, self.now(at)).await? {
                Attempted::Failed
            } else {
                Attempted::Cancelled
            });
        }

        let step = match self.delegated(entry, self.now(at)).await? {
            Err(reason) => Step::Final(reason),
            Ok(artifact) => {
                let sent = tokio::time::timeout(
                    self.opts.request_timeout,
                    self.deliver.deliver(&artifact),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(DeliverError::Temporary(format!(
                        "no reply within {} ms",
                        self.opts.request_timeout.as_millis()
                    )))
                });
                next_step(
                    classify(&sent),
                    prior,
                    self.now(at),
                    entry.stored_at,
                    &self.opts,
                )
            }
        };

        let now = self.now(at);
        let attempt = prior.saturating_add(1);
        match step {
            Step::Delivered => {
                self.forget(entry);
                if self.record(entry, &DeliveryOutcome::Delivered, now).await? {
                    tracing::info!(owner = %entry.owner, id = %entry.id, attempt, "delivered");
                    Ok(Attempted::Delivered)
                } else {
                    tracing::warn!(owner = %entry.owner, id = %entry.id, "delivered, but the entry was cancelled meanwhile");
                    Ok(Attempted::Cancelled)
                }
            }
            Step::Retry { at: next, error } => {
                self.note(entry, attempt, now, &error);
                let outcome = DeliveryOutcome::Retry {
                    next_attempt_at: next,
                    error: error.clone(),
                };
                if self.record(entry, &outcome, now).await? {
                    tracing::info!(
                        owner = %entry.owner,
                        id = %entry.id,
                        attempt,
                        next = %next.to_datetime_string(),
                        error = %error,
                        "delivery attempt failed; retrying"
                    );
                    Ok(Attempted::Retried)
                } else {
                    self.forget(entry);
                    Ok(Attempted::Cancelled)
                }
            }
            Step::Final(reason) => {
                self.note(entry, attempt, now, &reason);
                self.fail(entry, &fid, &reason, prior, now).await
            }
        }
    }

    /// The entry's artifact with a fresh delegation (§9.4), or why there can be none
    /// (final).
    async fn delegated(
        &self,
        entry: &StoredMessage,
        now: UnixMillis,
    ) -> Result<std::result::Result<Object, String>> {
        let artifact = &entry.artifact;
        let Some((agent_id, agent_key)) = read_pending(artifact) else {
            return Ok(Err(
                "the outbox entry carries no pending delegation (agentId, agentPubKey)".into(),
            ));
        };
        let Some(from) = artifact
            .get_str("from")
            .and_then(|f| f.parse::<Identity>().ok())
        else {
            return Ok(Err("the outbox entry has no valid from".into()));
        };
        // §9.5: an agent that is no longer active gets no more delegations.
        let record = self
            .pipeline
            .stores()
            .trust
            .get_trust(&trust_id(agent_id, from.as_str()))
            .await?;
        if let Verdict::Refuse(_) = evaluate_agent(record.as_ref(), now) {
            return Ok(Err(inactive_agent(agent_id, &from, record.as_ref())));
        }
        let Some(signer) = self.pipeline.delegator_for(&from) else {
            return Ok(Err(format!(
                "no delegator for {}: configure server_identity or a [[tenants]] entry of that domain",
                from.domain()
            )));
        };
        let (Ok(signed_by), Ok(selector)) = (
            signer.identity.parse::<Identity>(),
            Selector::parse(&signer.selector),
        ) else {
            return Ok(Err(format!(
                "the delegator {} (selector {}) is not a valid identity and selector",
                signer.identity, signer.selector
            )));
        };
        let mut out = artifact.clone();
        if let Err(e) = delegate(
            &mut out,
            agent_id,
            agent_key,
            &signed_by,
            &selector,
            &now.to_datetime_string(),
            &signer.key,
        ) {
            return Ok(Err(format!("delegating for agent {agent_id} failed: {e}")));
        }
        Ok(Ok(out))
    }

    /// A final failure: the `BTP_DELIVERY_FAILURE` artifact in the sender's inbox, then the
    /// entry marked failed. An entry cancelled meanwhile gets neither.
    async fn fail(
        &self,
        entry: &StoredMessage,
        fid: &str,
        reason: &str,
        prior: u32,
        now: UnixMillis,
    ) -> Result<Attempted> {
        let messages = &self.pipeline.stores().messages;
        let pending = messages
            .get_message(&entry.owner, Mailbox::Outbox, &entry.id)
            .await?
            .and_then(|m| m.delivery)
            .is_some_and(|d| d.status == DeliveryStatus::Pending);
        if !pending {
            self.forget(entry);
            return Ok(Attempted::Cancelled);
        }
        let sender = entry.artifact.get_str("from").unwrap_or(&entry.owner);
        let from = sender
            .parse::<Identity>()
            .ok()
            .and_then(|s| self.pipeline.delegator_for(&s))
            .map_or_else(|| sender.to_owned(), |d| d.identity.clone());
        let from = from.as_str();
        let failure = Failure {
            artifact: &entry.artifact,
            from,
            owner: &entry.owner,
            reason,
            retry_count: prior,
            error_log: self.take_log(entry, prior),
            at: now,
        };
        self.store_failure(entry, fid, &failure, now).await?;
        let recorded = self
            .record(
                entry,
                &DeliveryOutcome::Failed {
                    reason: reason.to_owned(),
                },
                now,
            )
            .await?;
        tracing::warn!(owner = %entry.owner, id = %entry.id, reason, "delivery failed");
        Ok(if recorded {
            Attempted::Failed
        } else {
            Attempted::Cancelled
        })
    }

    /// Stores the failure artifact under `fid`; when that id is taken by the same failure
    /// (an earlier run) nothing more is done, when by an unrelated artifact a random id is
    /// used.
    async fn store_failure(
        &self,
        entry: &StoredMessage,
        fid: &str,
        failure: &Failure<'_>,
        now: UnixMillis,
    ) -> Result<()> {
        let messages = &self.pipeline.stores().messages;
        let message = NewMessage::new(
            &entry.owner,
            Mailbox::Inbox,
            failure_artifact(fid, failure),
            now,
        )?;
        if messages.store(&message, None, now).await? == StoreOutcome::Stored {
            return Ok(());
        }
        let existing = messages
            .get_message(&entry.owner, Mailbox::Inbox, fid)
            .await?;
        if existing.is_some_and(|m| failure_reason(&m.artifact, &entry.id).is_some()) {
            return Ok(());
        }
        let id = generate_uuid_v4(&SystemRandom)?;
        tracing::warn!(owner = %entry.owner, id = %entry.id, failure_id = %id, "the failure id is taken by another artifact; using a random one");
        let message = NewMessage::new(
            &entry.owner,
            Mailbox::Inbox,
            failure_artifact(&id, failure),
            now,
        )?;
        messages.store(&message, None, now).await?;
        Ok(())
    }

    async fn record(
        &self,
        entry: &StoredMessage,
        outcome: &DeliveryOutcome,
        now: UnixMillis,
    ) -> Result<bool> {
        Ok(self
            .pipeline
            .stores()
            .messages
            .record_delivery(&entry.owner, &entry.id, outcome, now)
            .await?)
    }

    fn logs(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), AttemptLog>> {
        self.logs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers an attempt's error for the failure's `errorLog`.
    fn note(&self, entry: &StoredMessage, attempt: u32, at: UnixMillis, error: &str) {
        let mut logs = self.logs();
        let log = logs
            .entry((entry.owner.clone(), entry.id.clone()))
            .or_default();
        log.entries.push((attempt, log_entry(attempt, at, error)));
        log.touched = Some(at);
    }

    /// The `errorLog` of a final failure: the attempts this process saw, preceded by the
    /// last recorded error when the attempt before the final one was made elsewhere (another
    /// process, or before a restart).
    fn take_log(&self, entry: &StoredMessage, prior: u32) -> Vec<Value> {
        let mut entries = self
            .logs()
            .remove(&(entry.owner.clone(), entry.id.clone()))
            .map(|l| l.entries)
            .unwrap_or_default();
        let last_error = entry
            .delivery
            .as_ref()
            .and_then(|d| d.last_error.as_deref());
        if let Some(error) = last_error
            && prior > 0
            && !entries.iter().any(|(a, _)| *a == prior)
        {
            let earlier = Object::new()
                .with("attempt", prior)
                .with("error", error)
                .into();
            entries.insert(0, (prior, earlier));
        }
        entries.into_iter().map(|(_, v)| v).collect()
    }

    fn forget(&self, entry: &StoredMessage) {
        self.logs().remove(&(entry.owner.clone(), entry.id.clone()));
    }

    /// Drops the logs of entries no attempt will follow (cancelled while waiting): nothing
    /// is retried later than the lifetime after it was queued.
    fn prune(&self, now: UnixMillis) {
        let keep = millis(self.opts.lifetime).saturating_add(millis(self.opts.lease));
        self.logs().retain(|_, l| {
            l.touched
                .is_some_and(|t| t.saturating_add_millis(keep) > now)
        });
    }
}

/// The final reason when the agent record is not active.
fn inactive_agent(agent_id: &str, from: &Identity, record: Option<&TrustRecord>) -> String {
    match record {
        None => format!(
            "agent {agent_id} of {from} was revoked (its record is gone); no delegation is issued for it"
        ),
        Some(r) if r.status == TrustStatus::Revoked => {
            format!("agent {agent_id} of {from} was revoked; no delegation is issued for it")
        }
        Some(r) if r.status == TrustStatus::Accepted => {
            format!("agent {agent_id} of {from} expired; no delegation is issued for it")
        }
        Some(r) => format!(
            "agent {agent_id} of {from} is {}; no delegation is issued for it",
            r.status
        ),
    }
}
