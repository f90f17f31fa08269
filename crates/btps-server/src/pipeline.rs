//! The inbound pipeline (PROTOCOL.md §2.7), one path for every line:
//!
//! frame (transport) → parse (order-preserving, conflicting duplicate keys rejected) →
//! classify → schema → control / identity lookup, or for signed kinds: freshness → keys and
//! signature / delegation / attestation → trust rules → replay + durable store → reply.
//!
//! [`Pipeline::process`] turns one line into exactly one [`Reply`]; [`Pipeline`] implements
//! [`LineHandler`] for the transport. Every refusal is a [`ServerError`] whose
//! [`ServerError::error_code`] is the wire code.

mod actions;
mod agent;
mod auth;
mod control;
mod keys;
mod transporter;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use btps_crypto::{KeyPair, KeyPolicy, SystemRandom};
use btps_dns::DnsCache;
use btps_trust::{IdentityStore, MessageStore, ReplayEntry, ReplayStore, TrustStore};
use btps_types::artifact::ReplayKey;
use btps_types::json::{ParseLimits, parse};
use btps_types::{Artifact, ErrorCode, Identity, UnixMillis, validate};
use tokio::sync::Notify;

use crate::clock::{SystemWallClock, WallClock};
use crate::config::{RateLimits, ServerConfig, TokenConfig};
use crate::delivery_log::DeliveryLog;
use crate::error::{Result, ServerError};
use crate::handler::{Handled, LineHandler, Peer, TransportEvent};
use crate::keys::ProofSource;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::reply::{Reply, ReplySigner, SignedLayout, encode_line};

/// The stores the pipeline works on, one per concern (a backend may implement them all).
#[derive(Clone)]
pub struct Stores {
    /// Trust records, agent records included.
    pub trust: Arc<dyn TrustStore>,
    /// Hosted identities and token hashes.
    pub identities: Arc<dyn IdentityStore>,
    /// The replay set of immediate agent actions.
    pub replay: Arc<dyn ReplayStore>,
    /// Mailboxes ("store and mark seen" in one step).
    pub messages: Arc<dyn MessageStore>,
}

impl Stores {
    /// Every concern from one backend.
    pub fn from_backend<S>(backend: Arc<S>) -> Self
    where
        S: TrustStore + IdentityStore + ReplayStore + MessageStore + 'static,
    {
        Self {
            trust: backend.clone(),
            identities: backend.clone(),
            replay: backend.clone(),
            messages: backend,
        }
    }
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

/// The pipeline's settings, taken from [`ServerConfig`].
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    /// Hosted domains (lower case); an identity of one of them is hosted even without an
    /// identity record.
    pub domains: Vec<String>,
    /// Freshness window W in milliseconds.
    pub freshness_ms: i64,
    /// Maximum line length.
    pub max_line_bytes: usize,
    /// Maximum JSON depth.
    pub max_depth: usize,
    /// Request deadline in milliseconds.
    pub request_ms: u64,
    /// §7.3 key pinning.
    pub pin_keys: bool,
    /// Sign auth replies (§8.4).
    pub sign_auth_replies: bool,
    /// `decidedBy` of records the server writes.
    pub service_name: String,
    /// Token lifetimes.
    pub tokens: TokenConfig,
    /// Rate limits.
    pub rate_limits: RateLimits,
    /// Which public keys are accepted (`[keys]`): RSA 2048–8192 bits, Ed25519 unless
    /// turned off.
    pub key_policy: KeyPolicy,
    /// Who may attest a delegation its sender signed itself (§9.3; empty: anyone).
    pub attestors: crate::config::Attestors,
}

impl PipelineOptions {
    /// The options of `config`.
    pub fn from_config(config: &ServerConfig) -> Self {
        Self {
            domains: config.domains.iter().map(|d| d.to_lowercase()).collect(),
            freshness_ms: i64::try_from(config.limits.freshness_window_secs)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000),
            max_line_bytes: config.limits.max_line_bytes,
            max_depth: config.limits.max_depth,
            request_ms: config.timeouts.request_ms,
            pin_keys: config.pin_keys,
            sign_auth_replies: config.sign_auth_replies,
            service_name: config.service_name.clone(),
            tokens: config.tokens.clone(),
            rate_limits: config.rate_limits.clone(),
            key_policy: config.keys.key_policy(),
            attestors: config.attestors.clone(),
        }
    }
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self::from_config(&ServerConfig::default())
    }
}

/// The rate limiters of §11.
#[derive(Debug)]
struct Limiters {
    per_ip: RateLimiter,
    per_sender: RateLimiter,
    global: RateLimiter,
    trust_requests: RateLimiter,
    trust_request_domains: RateLimiter,
    lookups: RateLimiter,
    auth: RateLimiter,
    auth_failures: RateLimiter,
}

impl Limiters {
    fn new(r: &RateLimits) -> Self {
        Self {
            per_ip: RateLimiter::per_minute(r.per_ip_per_minute),
            per_sender: RateLimiter::per_minute(r.per_sender_per_minute),
            global: RateLimiter::per_minute(r.global_per_minute),
            trust_requests: RateLimiter::per_minute(r.trust_requests_per_minute),
            trust_request_domains: RateLimiter::per_minute(r.trust_requests_per_domain_per_minute),
            lookups: RateLimiter::per_minute(r.lookups_per_ip_per_minute),
            // §11: auth.request / auth.refresh per identity.
            auth: RateLimiter::per_minute(r.auth_requests_per_minute),
            auth_failures: RateLimiter::new(r.auth_failures_per_15_minutes, 15 * 60_000),
        }
    }
}

/// What processing a line produced.
#[derive(Debug)]
pub struct Outcome {
    /// The reply.
    pub reply: Reply,
    /// How to sign it, if it is signed.
    pub signed: Option<SignedLayout>,
    /// Close the connection after it (`QUIT`).
    pub close: bool,
    /// The domain whose server identity signs the reply (tenants), if signed.
    pub sign_for: Option<String>,
    /// Metrics label of the request kind.
    pub kind: &'static str,
}

impl Outcome {
    fn plain(reply: Reply, kind: &'static str) -> Self {
        Self {
            reply,
            signed: None,
            close: false,
            sign_for: None,
            kind,
        }
    }
}

/// A signer that a key rotation can replace while requests use the old one.
struct SignerSlot(std::sync::RwLock<Arc<ReplySigner>>);

impl SignerSlot {
    fn new(signer: ReplySigner) -> Self {
        Self(std::sync::RwLock::new(Arc::new(signer)))
    }

    fn get(&self) -> Arc<ReplySigner> {
        Arc::clone(
            &self
                .0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn set(&self, signer: ReplySigner) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(signer);
    }
}

/// The text a store keeps for the received artifact `raw`: `line` when it is the
/// serializer's text of `raw` (the parser found it verbatim), else `raw` serialized.
fn artifact_text(raw: &btps_types::json::Object, line: Option<&str>) -> String {
    line.map_or_else(|| btps_types::json::object_to_js_string(raw), str::to_owned)
}

/// The inbound pipeline. Cheap to share (`Arc`); all state lives in the stores and caches.
pub struct Pipeline {
    stores: Stores,
    dns: DnsCache,
    clock: Arc<dyn WallClock>,
    signer: Option<SignerSlot>,
    tenant_signers: Vec<(String, SignerSlot)>,
    proof_source: Option<Arc<dyn ProofSource>>,
    opts: PipelineOptions,
    limits: Limiters,
    metrics: Arc<Metrics>,
    delivery_log: Option<DeliveryLog>,
    outbox_wake: Arc<Notify>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline over `stores` resolving keys through `dns`, with the system clock, no reply
    /// signer and no delivery log.
    pub fn new(stores: Stores, dns: DnsCache, opts: PipelineOptions) -> Self {
        Self {
            stores,
            dns,
            clock: Arc::new(SystemWallClock),
            signer: None,
            tenant_signers: Vec::new(),
            proof_source: None,
            limits: Limiters::new(&opts.rate_limits),
            opts,
            metrics: Arc::new(Metrics::default()),
            delivery_log: None,
            outbox_wake: Arc::new(Notify::new()),
            rng: SystemRandom,
        }
    }

    /// Uses `clock` for freshness, expiry and timestamps.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn WallClock>) -> Self {
        self.clock = clock;
        self
    }

    /// Signs identity-lookup replies (and auth replies when configured) with `signer`.
    #[must_use]
    pub fn with_signer(mut self, signer: ReplySigner) -> Self {
        self.signer = Some(SignerSlot::new(signer));
        self
    }

    /// Signs the replies that concern identities of `domain` (identity lookups, auth
    /// replies) with `signer`, a server identity of that domain: clients require the signer's
    /// domain to equal the looked-up identity's (§3.6). The domain becomes hosted.
    #[must_use]
    pub fn with_tenant_signer(mut self, domain: &str, signer: ReplySigner) -> Self {
        let domain = domain.to_lowercase();
        if !self.opts.domains.contains(&domain) {
            self.opts.domains.push(domain.clone());
        }
        self.tenant_signers.retain(|(d, _)| *d != domain);
        self.tenant_signers.push((domain, SignerSlot::new(signer)));
        self
    }

    /// Looks for rotation proofs at `source` when a pinned sender's key changed and the
    /// artifact carries no valid proof in-band (docs/keys.md).
    #[must_use]
    pub fn with_proof_source(mut self, source: Arc<dyn ProofSource>) -> Self {
        self.proof_source = Some(source);
        self
    }

    /// The source of rotation proofs, if any.
    pub(crate) fn proof_source(&self) -> Option<&Arc<dyn ProofSource>> {
        self.proof_source.as_ref()
    }

    /// The server identities whose keys sign replies and delegations, with their current
    /// selectors.
    pub fn signing_identities(&self) -> Vec<(String, String)> {
        self.signer
            .iter()
            .chain(self.tenant_signers.iter().map(|(_, s)| s))
            .map(|slot| {
                let s = slot.get();
                (s.identity.clone(), s.selector.clone())
            })
            .collect()
    }

    /// Signs with `selector` and the key of `load` from now on wherever `identity` signs
    /// (replies, delegations): the switch of a key rotation. Returns whether `identity`
    /// signs here.
    ///
    /// # Errors
    ///
    /// The error of `load` (called once per place `identity` signs).
    pub fn switch_signing_key<E>(
        &self,
        identity: &str,
        selector: &str,
        mut load: impl FnMut() -> std::result::Result<KeyPair, E>,
    ) -> std::result::Result<bool, E> {
        let mut found = false;
        for slot in self
            .signer
            .iter()
            .chain(self.tenant_signers.iter().map(|(_, s)| s))
        {
            if slot.get().identity.eq_ignore_ascii_case(identity) {
                slot.set(ReplySigner {
                    identity: identity.to_owned(),
                    selector: selector.to_owned(),
                    key: load()?,
                });
                found = true;
            }
        }
        Ok(found)
    }

    /// The signer for replies about identities of `domain`: the tenant's, else the default.
    fn signer_for(&self, domain: Option<&str>) -> Option<Arc<ReplySigner>> {
        domain
            .and_then(|d| {
                self.tenant_signers
                    .iter()
                    .find(|(t, _)| t.eq_ignore_ascii_case(d))
                    .map(|(_, s)| s.get())
            })
            .or_else(|| self.signer.as_ref().map(SignerSlot::get))
    }

    /// The delegator of artifacts that agents of `sender` queue (PROTOCOL.md §9.4, first
    /// form): the service identity of the sender's domain — the tenant signer of that domain
    /// ([`with_tenant_signer`](Self::with_tenant_signer)), else the default signer when its
    /// identity is in that domain. `None` when no server identity shares the domain (a
    /// receiver refuses a delegator of another domain, §9.3).
    pub fn delegator_for(&self, sender: &Identity) -> Option<Arc<ReplySigner>> {
        let in_domain = |s: &ReplySigner| {
            s.identity
                .parse::<Identity>()
                .is_ok_and(|i| i.same_domain(sender))
        };
        self.tenant_signers
            .iter()
            .map(|(d, s)| (d, s.get()))
            .find(|(d, s)| d.eq_ignore_ascii_case(sender.domain()) && in_domain(s))
            .map(|(_, s)| s)
            .or_else(|| {
                self.signer
                    .as_ref()
                    .map(SignerSlot::get)
                    .filter(|s| in_domain(s))
            })
    }

    /// Notified after an artifact is queued in an outbox, so that a delivery worker
    /// ([`DeliveryWorker`](crate::DeliveryWorker)) sends it at once.
    pub fn outbox_wake(&self) -> &Arc<Notify> {
        &self.outbox_wake
    }

    /// Appends every accepted transporter artifact to `log` before acknowledging it.
    #[must_use]
    pub fn with_delivery_log(mut self, log: DeliveryLog) -> Self {
        self.delivery_log = Some(log);
        self
    }

    /// Shares `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The stores.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// The DNS cache.
    pub fn dns(&self) -> &DnsCache {
        &self.dns
    }

    /// The options.
    pub fn options(&self) -> &PipelineOptions {
        &self.opts
    }

    /// The pipeline's clock reading.
    pub fn now(&self) -> UnixMillis {
        self.clock.now()
    }

    /// Processes one non-blank line into exactly one outcome (§2.7), within the request
    /// deadline (`BTP_ERROR_SERVER_BUSY` with `reqId` when it passes).
    pub async fn process(&self, line: &[u8], peer: &Peer) -> Outcome {
        // (1) size, (2) UTF-8 + JSON with the duplicate-key policy.
        if line.len() > self.opts.max_line_bytes {
            return Outcome::plain(Reply::error(ErrorCode::LineTooLong, None), "invalid");
        }
        let limits = ParseLimits {
            max_bytes: self.opts.max_line_bytes,
            max_depth: self.opts.max_depth,
        };
        let parsed = match parse(line, &limits) {
            Ok(p) => p,
            Err(e) => return Outcome::plain(Reply::error(e.error_code(), None), "invalid"),
        };
        let req_id = parsed
            .value
            .as_object()
            .and_then(|o| o.get_str("id"))
            .map(str::to_owned);
        if parsed.duplicates.has_conflicting() {
            return Outcome::plain(Reply::error(ErrorCode::Validation, req_id), "invalid");
        }
        // (3) classify, (4) the schema of that kind only.
        let artifact = match validate(&parsed.value) {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(req_id = ?req_id, error = %e, "schema");
                return Outcome::plain(Reply::error(ErrorCode::Validation, req_id), "invalid");
            }
        };
        // A line that is the serializer's text of what it parsed to is stored as it is.
        let text = if parsed.verbatim {
            std::str::from_utf8(line).ok()
        } else {
            None
        };
        let deadline = std::time::Duration::from_millis(self.opts.request_ms.max(1));
        match tokio::time::timeout(deadline, self.dispatch(&artifact, text, peer)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::warn!(req_id = ?req_id, "request deadline passed");
                Outcome::plain(Reply::error(ErrorCode::ServerBusy, req_id), "deadline")
            }
        }
    }

    /// `text`: the received line when it is the serializer's text of `artifact`.
    async fn dispatch(&self, artifact: &Artifact<'_>, text: Option<&str>, peer: &Peer) -> Outcome {
        let req_id = Some(artifact.id().to_owned());
        match artifact {
            Artifact::Control(c) => self.control(c),
            Artifact::IdentityLookup(l) => self.identity_lookup(l, peer).await,
            Artifact::Transporter(t) => {
                let kind = t.kind.as_str();
                let result = self.transporter(artifact, t, text, peer).await;
                self.finish(result, req_id, kind, None)
            }
            Artifact::Agent(a) => {
                let result = self.agent(artifact, a, peer).await;
                let sign = (self.opts.sign_auth_replies && a.action.is_auth())
                    .then_some(SignedLayout::Document);
                let mut outcome = self.finish(result, req_id, "agent", sign);
                outcome.sign_for = Some(a.to.domain().to_owned());
                outcome
            }
            _ => Outcome::plain(Reply::error(ErrorCode::Validation, req_id), "invalid"),
        }
    }

    fn finish(
        &self,
        result: Result<Reply>,
        req_id: Option<String>,
        kind: &'static str,
        signed: Option<SignedLayout>,
    ) -> Outcome {
        match result {
            Ok(mut reply) => {
                reply.req_id = req_id;
                Outcome {
                    reply,
                    signed,
                    close: false,
                    sign_for: None,
                    kind,
                }
            }
            Err(e) => {
                let code = e.error_code();
                if code == ErrorCode::ServerBusy || code == ErrorCode::Unknown {
                    tracing::error!(req_id = ?req_id, error = %e, "request failed");
                } else {
                    tracing::debug!(req_id = ?req_id, error = %e, "refused");
                }
                if code == ErrorCode::RateLimiter {
                    self.metrics
                        .rate_limited
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Outcome::plain(Reply::error(code, req_id), kind)
            }
        }
    }

    /// Serializes an outcome's reply (signing it when asked) into one line.
    pub fn encode(&self, outcome: &Outcome) -> Vec<u8> {
        let now = self.now();
        let id = btps_trust::generate_uuid_v4(&self.rng)
            .unwrap_or_else(|_| "00000000-0000-4000-8000-000000000000".into());
        match (outcome.signed, self.signer_for(outcome.sign_for.as_deref())) {
            (Some(layout), Some(signer)) => match signer.sign(&outcome.reply, layout, &id, now) {
                Ok(obj) => encode_line(&btps_types::json::Value::Object(obj)),
                Err(e) => {
                    tracing::error!(error = %e, "signing a reply failed");
                    Reply::error(ErrorCode::Unknown, outcome.reply.req_id.clone()).to_line(&id, now)
                }
            },
            _ => outcome.reply.to_line(&id, now),
        }
    }

    /// Whether `identity` is hosted here: its domain is configured, or it has an identity
    /// record.
    async fn is_hosted(&self, identity: &Identity) -> Result<bool> {
        let domain = identity.domain().to_lowercase();
        if self.opts.domains.contains(&domain) {
            return Ok(true);
        }
        Ok(self
            .stores
            .identities
            .get_identity(identity.as_str())
            .await?
            .is_some())
    }

    async fn require_hosted(&self, identity: &Identity) -> Result<()> {
        if self.is_hosted(identity).await? {
            Ok(())
        } else {
            Err(ServerError::refused(
                ErrorCode::IdentityNotFound,
                format!("{identity} is not hosted here"),
            ))
        }
    }

    /// §10.1: |now − T| ≤ W.
    fn check_fresh(&self, t: UnixMillis, now: UnixMillis, what: &str) -> Result<()> {
        let w = u64::try_from(self.opts.freshness_ms).unwrap_or(u64::MAX);
        if now.abs_diff(t) > w {
            return Err(ServerError::refused(
                ErrorCode::StaleArtifact,
                format!("{what} {} is outside the window", t.to_datetime_string()),
            ));
        }
        Ok(())
    }

    /// §11, charged before any key or signature work: per remote IP and global.
    fn rate_limit_peer(&self, peer: &Peer, now: UnixMillis) -> Result<()> {
        let ip = peer.addr.ip().to_string();
        if self.limits.per_ip.check(&ip, now) && self.limits.global.check("", now) {
            Ok(())
        } else {
            Err(ServerError::refused(
                ErrorCode::RateLimiter,
                format!("rate limit for {ip}"),
            ))
        }
    }

    /// §11, charged once the signature is verified (`sender` = `from` or `agentId`), so
    /// forged lines that merely claim a sender cannot spend that sender's budget.
    fn rate_limit_sender(&self, sender: &str, now: UnixMillis) -> Result<()> {
        if self.limits.per_sender.check(&sender.to_lowercase(), now) {
            Ok(())
        } else {
            Err(ServerError::refused(
                ErrorCode::RateLimiter,
                format!("rate limit for sender {sender}"),
            ))
        }
    }

    /// How long a replay entry must live: at least T + W + 60 s, and 2W after receipt
    /// (§10.2).
    fn replay_expiry(&self, t: UnixMillis, now: UnixMillis) -> UnixMillis {
        let w = self.opts.freshness_ms;
        t.saturating_add_millis(w + 60_000)
            .max(now.saturating_add_millis(2 * w))
    }

    fn replay_entry(
        &self,
        key: &ReplayKey<'_>,
        signature: &str,
        t: UnixMillis,
        now: UnixMillis,
    ) -> ReplayEntry {
        ReplayEntry::from_key(key, signature, self.replay_expiry(t, now))
    }

    /// Counts an exact re-send answered `already accepted`.
    fn count_already_accepted(&self) {
        self.metrics
            .already_accepted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[async_trait]
impl LineHandler for Pipeline {
    async fn handle(&self, line: &[u8], peer: &Peer) -> Handled {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Handled::none();
        }
        let start = Instant::now();
        let outcome = self.process(line, peer).await;
        let elapsed = start.elapsed();
        if matches!(
            outcome.kind,
            "BTPS_DOC" | "TRUST_REQ" | "TRUST_RES" | "agent"
        ) {
            self.metrics.artifact_latency.observe(elapsed);
        } else {
            self.metrics.other_latency.observe(elapsed);
        }
        let label = outcome.reply.error_code.map_or("ok", ErrorCode::as_str);
        self.metrics.count(outcome.kind, label);
        Handled {
            reply: Some(self.encode(&outcome)),
            close: outcome.close,
            rate_limited: outcome.reply.error_code == Some(ErrorCode::RateLimiter),
        }
    }

    fn transport_reply(&self, event: TransportEvent, req_id: Option<&str>) -> Vec<u8> {
        let code = match event {
            TransportEvent::LineTooLong => ErrorCode::LineTooLong,
            TransportEvent::Timeout => ErrorCode::SocketTimeout,
            TransportEvent::Overloaded => ErrorCode::RateLimiter,
        };
        let outcome = Outcome::plain(Reply::error(code, req_id.map(str::to_owned)), "transport");
        self.metrics.count("transport", code.as_str());
        self.encode(&outcome)
    }

    fn close_after_rejections(&self) -> u32 {
        self.opts.rate_limits.close_after_rejections
    }
}
