//! [`DnsCache`]: typed, TTL-aware lookups over any [`TxtResolver`] (PROTOCOL.md §6.5).
//!
//! What it keeps are **parsed** records (host records, key candidates, delegation lists)
//! and negative answers, each until its clamped TTL runs out on the injected [`Clock`].
//! Concurrent lookups of one name share one query (the first caller asks, the others wait
//! for its answer; if the first caller is cancelled, a waiter takes over). A positive entry
//! in the last part of its life ([`CacheConfig::refresh_ahead`]) is still served while a
//! background task asks again; once it has expired it is never served, so a record
//! removed from DNS (a revoked key or device) is gone within its TTL.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use btps_crypto::{KeyPolicy, KeyRef, PublicKey, ResolvedKeys};
use btps_types::record::{
    DelegationListRecord, HostRecord, delegation_list_record_name, device_record_name,
    host_record_name, identity_record_name,
};
use btps_types::{Identity, is_selector};
use tokio::sync::OnceCell;

use crate::clock::{Clock, SystemClock};
use crate::error::{DnsError, RecordKind, RevokedReason};
use crate::parse::{parse_delegation_list, parse_host, parse_keys};
use crate::resolver::{TxtAnswer, TxtResolver, check_name};

/// Cache settings. The defaults are those of PROTOCOL.md §6.5.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use btps_dns::CacheConfig;
/// let mut config = CacheConfig::default();
/// assert_eq!(config.max_ttl, Duration::from_secs(300));
/// assert_eq!(config.max_negative_ttl, Duration::from_secs(60));
/// config.min_ttl = Duration::from_secs(30);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Shortest time any answer is kept (raises small TTLs). Default 0.
    pub min_ttl: Duration,
    /// Longest time a positive answer is kept (caps large TTLs). Default 300 s; zero
    /// disables positive caching.
    pub max_ttl: Duration,
    /// Time a negative answer (NXDOMAIN / NODATA) is kept when it carries no TTL of its own
    /// (no SOA in the answer, or DNSSEC validation on). Default 30 s, capped by
    /// [`max_negative_ttl`](Self::max_negative_ttl).
    pub negative_ttl: Duration,
    /// Longest time a negative answer, or a permanently unusable record, is kept.
    /// Default 60 s; zero disables negative caching.
    pub max_negative_ttl: Duration,
    /// Time a temporary failure (timeout, SERVFAIL, REFUSED) is remembered to damp query
    /// storms; capped at [`MAX_TEMPORARY_FAILURE_TTL`](Self::MAX_TEMPORARY_FAILURE_TTL).
    /// Default 2 s; zero disables.
    pub temporary_failure_ttl: Duration,
    /// Fraction of a positive entry's life at its end during which a lookup still gets the
    /// cached value but triggers a background refresh. Default 0.1; 0 disables.
    pub refresh_ahead: f64,
    /// Entries per record kind before expired and soonest-expiring entries are evicted.
    /// Default 10 000.
    pub max_entries: usize,
    /// Which public keys are usable (RSA size rule, Ed25519 or not).
    pub key_policy: KeyPolicy,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            min_ttl: Duration::ZERO,
            max_ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(30),
            max_negative_ttl: Duration::from_secs(60),
            temporary_failure_ttl: Duration::from_secs(2),
            refresh_ahead: 0.1,
            max_entries: 10_000,
            key_policy: KeyPolicy::DEFAULT,
        }
    }
}

impl CacheConfig {
    /// The cap on [`temporary_failure_ttl`](Self::temporary_failure_ttl) (PROTOCOL.md
    /// §6.5: "not cached, or ≤ 5 s").
    pub const MAX_TEMPORARY_FAILURE_TTL: Duration = Duration::from_secs(5);

    /// Nothing is kept (every lookup asks, concurrent lookups are still coalesced).
    pub fn no_caching() -> Self {
        Self {
            min_ttl: Duration::ZERO,
            max_ttl: Duration::ZERO,
            negative_ttl: Duration::ZERO,
            max_negative_ttl: Duration::ZERO,
            temporary_failure_ttl: Duration::ZERO,
            refresh_ahead: 0.0,
            ..Self::default()
        }
    }

    /// How long a positive answer with `ttl` seconds is kept: `ttl` clamped to
    /// `[min_ttl, max_ttl]`, or zero when `max_ttl` is zero.
    pub fn positive_lifetime(&self, ttl: u32) -> Duration {
        Duration::from_secs(u64::from(ttl)).clamp(self.min_ttl.min(self.max_ttl), self.max_ttl)
    }

    /// How long a negative answer is kept: its TTL (or [`negative_ttl`](Self::negative_ttl))
    /// clamped to `[min_ttl, max_negative_ttl]`, or zero when `max_negative_ttl` is zero.
    pub fn negative_lifetime(&self, ttl: Option<u32>) -> Duration {
        ttl.map_or(self.negative_ttl, |t| Duration::from_secs(u64::from(t)))
            .clamp(
                self.min_ttl.min(self.max_negative_ttl),
                self.max_negative_ttl,
            )
    }

    fn temporary_lifetime(&self) -> Duration {
        self.temporary_failure_ttl
            .min(Self::MAX_TEMPORARY_FAILURE_TTL)
    }
}

/// Counters of a [`DnsCache`], for tests, benchmarks and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups answered from a live entry.
    pub hits: u64,
    /// Lookups that started a query.
    pub misses: u64,
    /// Lookups that waited for a query another lookup had started.
    pub coalesced: u64,
    /// Queries sent to the resolver (misses plus background refreshes).
    pub queries: u64,
    /// Background refreshes started.
    pub refreshes: u64,
    /// Entries evicted because a table was full.
    pub evictions: u64,
    /// Entries (and in-flight queries) held now, all kinds together.
    pub entries: usize,
}

/// The result of a DNS device check (PROTOCOL.md §6.6) that lets the artifact through.
/// Refusals are [`DnsError::DeviceRevoked`] (`BTP_ERROR_DELEGATION_REVOKED`); a temporary
/// failure is [`DnsError::Unavailable`] (`BTP_ERROR_DNS_UNAVAILABLE`), never a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceCheck {
    /// The identity publishes a delegation list, the device is in it, and its device key
    /// record holds the key that signed the artifact.
    Authorized,
    /// The identity publishes no delegation list (NXDOMAIN / NODATA): it does not use the
    /// extension and only the in-band delegation applies.
    NotPublished,
}

/// Typed BTPS lookups with a TTL cache over a [`TxtResolver`] (PROTOCOL.md §6).
///
/// Cheap to clone (one `Arc`); clones share the cache. Lookups must run inside a tokio
/// runtime when background refresh is wanted (outside one, entries simply expire).
///
/// # Examples
///
/// ```
/// use btps_dns::{DnsCache, StaticTable};
/// use btps_types::Identity;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut table = StaticTable::new();
/// table.insert("_btps.host.example.com", ["v=1.0.0;u=btps.example.com;s=btps1"]);
/// let dns = DnsCache::new(table);
/// let host = dns.host("example.com").await.unwrap();
/// assert_eq!(host.address(), "btps.example.com:3443");
///
/// let nobody = Identity::parse("billing$example.com").unwrap();
/// let err = dns.identity_keys(&nobody, "btps1").await.unwrap_err();
/// assert_eq!(err.error_code().as_str(), "BTP_ERROR_RESOLVE_PUBKEY");
/// assert!(!err.is_temporary());
/// # });
/// ```
#[derive(Clone)]
pub struct DnsCache {
    inner: Arc<Inner>,
}

impl fmt::Debug for DnsCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsCache")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl DnsCache {
    /// A cache with the default settings and the system clock.
    pub fn new(resolver: impl TxtResolver + 'static) -> Self {
        Self::with_config(resolver, CacheConfig::default())
    }

    /// A cache with these settings and the system clock.
    pub fn with_config(resolver: impl TxtResolver + 'static, config: CacheConfig) -> Self {
        Self::with_clock(Arc::new(resolver), config, Arc::new(SystemClock))
    }

    /// A cache with these settings and this clock (tests step a [`crate::ManualClock`]).
    pub fn with_clock(
        resolver: Arc<dyn TxtResolver>,
        config: CacheConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                resolver,
                clock,
                config,
                hosts: Table::default(),
                identity_keys: Table::default(),
                device_keys: Table::default(),
                lists: Table::default(),
                counters: Counters::default(),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// The host record `_btps.host.<domain>`: server address and current selector.
    ///
    /// # Errors
    ///
    /// [`DnsError`]; permanent failures map to `BTP_ERROR_RESOLVE_DNS` (including several
    /// distinct usable host records), temporary ones to `BTP_ERROR_DNS_UNAVAILABLE`.
    pub async fn host(&self, domain: &str) -> Result<Arc<HostRecord>, DnsError> {
        self.inner.get::<HostSpec>(host_record_name(domain)).await
    }

    /// The usable keys published for `identity` at `selector`: every usable record is a
    /// candidate; pick the one whose fingerprint matches the signature (PROTOCOL.md §6.2).
    ///
    /// # Errors
    ///
    /// [`DnsError`]; permanent failures (an invalid selector included) map to
    /// `BTP_ERROR_RESOLVE_PUBKEY`, temporary ones to `BTP_ERROR_DNS_UNAVAILABLE`.
    pub async fn identity_keys(
        &self,
        identity: &Identity,
        selector: &str,
    ) -> Result<Arc<[PublicKey]>, DnsError> {
        label(RecordKind::IdentityKey, selector)?;
        self.inner
            .get::<IdentityKeySpec>(identity_record_name(selector, identity))
            .await
    }

    /// The one key of `identity` at `selector`, for encryption (PROTOCOL.md §5.4, §6.2):
    /// several distinct usable records are a configuration error.
    ///
    /// # Errors
    ///
    /// As [`identity_keys`](Self::identity_keys), plus [`DnsError::Ambiguous`]
    /// (`BTP_ERROR_RESOLVE_PUBKEY`).
    pub async fn encryption_key(
        &self,
        identity: &Identity,
        selector: &str,
    ) -> Result<PublicKey, DnsError> {
        let keys = self.identity_keys(identity, selector).await?;
        match &*keys {
            [key] => Ok(key.clone()),
            _ => Err(DnsError::Ambiguous {
                kind: RecordKind::IdentityKey,
                name: identity_record_name(selector, identity),
                count: keys.len(),
            }),
        }
    }

    /// The delegation list of `identity` (PROTOCOL.md §6.6); `None` when it publishes none.
    ///
    /// # Errors
    ///
    /// [`DnsError`]: temporary failures, or an unusable or ambiguous list
    /// (`BTP_ERROR_DELEGATION_REVOKED`).
    pub async fn delegation_list(
        &self,
        identity: &Identity,
    ) -> Result<Option<Arc<DelegationListRecord>>, DnsError> {
        self.inner
            .get::<ListSpec>(delegation_list_record_name(identity))
            .await
    }

    /// The usable keys of device `device_id` of `identity` (PROTOCOL.md §6.6).
    ///
    /// # Errors
    ///
    /// [`DnsError`]; permanent failures map to `BTP_ERROR_RESOLVE_PUBKEY`.
    pub async fn device_keys(
        &self,
        identity: &Identity,
        device_id: &str,
    ) -> Result<Arc<[PublicKey]>, DnsError> {
        label(RecordKind::DeviceKey, device_id)?;
        self.inner
            .get::<DeviceKeySpec>(device_record_name(device_id, identity))
            .await
    }

    /// The DNS device check of a delegated artifact (PROTOCOL.md §6.6, §9.3 step 6):
    /// `identity` is the artifact's `from`, `device_id` its `delegation.agentId`, and
    /// `device_key` the verified `delegation.agentPubKey` (`Verified::signer`).
    ///
    /// If `identity` publishes a delegation list, the device must be listed and one of its
    /// device key records must hold `device_key` (same fingerprint).
    ///
    /// # Errors
    ///
    /// [`DnsError::DeviceRevoked`] (`BTP_ERROR_DELEGATION_REVOKED`) when DNS does not
    /// authorise the device; [`DnsError::Unavailable`] (`BTP_ERROR_DNS_UNAVAILABLE`) when it
    /// cannot be asked — never a pass.
    pub async fn check_device(
        &self,
        identity: &Identity,
        device_id: &str,
        device_key: &PublicKey,
    ) -> Result<DeviceCheck, DnsError> {
        let revoked = |reason| DnsError::DeviceRevoked {
            identity: identity.as_str().to_owned(),
            device_id: device_id.to_owned(),
            reason,
        };
        let list = match self.delegation_list(identity).await {
            Ok(None) => return Ok(DeviceCheck::NotPublished),
            Ok(Some(list)) => list,
            Err(e) if e.is_temporary() => return Err(e),
            Err(_) => return Err(revoked(RevokedReason::UnusableList)),
        };
        if !list.contains(device_id) {
            return Err(revoked(RevokedReason::NotListed));
        }
        match self.device_keys(identity, device_id).await {
            Ok(keys) => {
                if keys
                    .iter()
                    .any(|k| k.fingerprint() == device_key.fingerprint())
                {
                    Ok(DeviceCheck::Authorized)
                } else {
                    Err(revoked(RevokedReason::KeyMismatch))
                }
            }
            Err(e) if e.is_temporary() => Err(e),
            Err(_) => Err(revoked(RevokedReason::NoDeviceKey)),
        }
    }

    /// Resolves the DNS keys among `refs` (from `btps_crypto::required_keys`) into a
    /// [`ResolvedKeys`] for `btps_crypto::verify_artifact`. Each answer is the key list or
    /// the wire code of the failure. [`KeyRef::Agent`] entries are not DNS keys and are left
    /// out: the caller adds them from its agent store.
    pub async fn resolve_keys(&self, refs: &[KeyRef]) -> ResolvedKeys {
        let mut resolved = ResolvedKeys::new();
        for key in refs {
            if let KeyRef::Identity { identity, selector } = key {
                let answer = self
                    .identity_keys(identity, selector)
                    .await
                    .map(|keys| keys.to_vec())
                    .map_err(|e| e.error_code());
                resolved.insert(key.clone(), answer);
            }
        }
        resolved
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheStats {
            hits: load(&c.hits),
            misses: load(&c.misses),
            coalesced: load(&c.coalesced),
            queries: load(&c.queries),
            refreshes: load(&c.refreshes),
            evictions: load(&c.evictions),
            entries: self.inner.hosts.len()
                + self.inner.identity_keys.len()
                + self.inner.device_keys.len()
                + self.inner.lists.len(),
        }
    }

    /// Forgets every entry (in-flight queries finish but are not stored).
    pub fn clear(&self) {
        self.inner.hosts.clear();
        self.inner.identity_keys.clear();
        self.inner.device_keys.clear();
        self.inner.lists.clear();
    }
}

fn label(kind: RecordKind, text: &str) -> Result<(), DnsError> {
    if is_selector(text) {
        Ok(())
    } else {
        Err(DnsError::InvalidName {
            kind,
            name: text.to_owned(),
            reason: "not one DNS label of letters, digits, '-' and '_'".to_owned(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Internals
// ---------------------------------------------------------------------------------------------

struct Inner {
    resolver: Arc<dyn TxtResolver>,
    clock: Arc<dyn Clock>,
    config: CacheConfig,
    hosts: Table<Arc<HostRecord>>,
    identity_keys: Table<Arc<[PublicKey]>>,
    device_keys: Table<Arc<[PublicKey]>>,
    lists: Table<Option<Arc<DelegationListRecord>>>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    queries: AtomicU64,
    refreshes: AtomicU64,
    evictions: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// One record kind: its value type, its table and its parser.
trait Spec: 'static {
    type Value: Clone + Send + Sync + 'static;
    const KIND: RecordKind;
    fn table(inner: &Inner) -> &Table<Self::Value>;
    fn parse(name: &str, answer: &TxtAnswer, policy: KeyPolicy) -> Result<Self::Value, DnsError>;
}

struct HostSpec;
struct IdentityKeySpec;
struct DeviceKeySpec;
struct ListSpec;

impl Spec for HostSpec {
    type Value = Arc<HostRecord>;
    const KIND: RecordKind = RecordKind::Host;
    fn table(inner: &Inner) -> &Table<Self::Value> {
        &inner.hosts
    }
    fn parse(name: &str, answer: &TxtAnswer, _: KeyPolicy) -> Result<Self::Value, DnsError> {
        parse_host(name, answer).map(Arc::new)
    }
}

impl Spec for IdentityKeySpec {
    type Value = Arc<[PublicKey]>;
    const KIND: RecordKind = RecordKind::IdentityKey;
    fn table(inner: &Inner) -> &Table<Self::Value> {
        &inner.identity_keys
    }
    fn parse(name: &str, answer: &TxtAnswer, policy: KeyPolicy) -> Result<Self::Value, DnsError> {
        parse_keys(Self::KIND, name, answer, policy).map(Arc::from)
    }
}

impl Spec for DeviceKeySpec {
    type Value = Arc<[PublicKey]>;
    const KIND: RecordKind = RecordKind::DeviceKey;
    fn table(inner: &Inner) -> &Table<Self::Value> {
        &inner.device_keys
    }
    fn parse(name: &str, answer: &TxtAnswer, policy: KeyPolicy) -> Result<Self::Value, DnsError> {
        parse_keys(Self::KIND, name, answer, policy).map(Arc::from)
    }
}

impl Spec for ListSpec {
    type Value = Option<Arc<DelegationListRecord>>;
    const KIND: RecordKind = RecordKind::DelegationList;
    fn table(inner: &Inner) -> &Table<Self::Value> {
        &inner.lists
    }
    fn parse(name: &str, answer: &TxtAnswer, _: KeyPolicy) -> Result<Self::Value, DnsError> {
        parse_delegation_list(name, answer).map(|l| l.map(Arc::new))
    }
}

/// Name → slot, for one record kind.
struct Table<V> {
    slots: Mutex<HashMap<Box<str>, Slot<V>>>,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<V> Table<V> {
    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, Slot<V>>> {
        // A panic while holding the lock leaves consistent data (plain inserts/removes).
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn clear(&self) {
        self.lock().clear();
    }
}

struct Slot<V> {
    entry: Option<Entry<V>>,
    flight: Option<Arc<Flight<V>>>,
}

struct Entry<V> {
    value: Result<V, DnsError>,
    expires: Instant,
    /// When a lookup should start a background refresh (positive entries only); cleared
    /// once one has started.
    refresh_at: Option<Instant>,
}

/// One query in flight, shared by every lookup of the name that arrives meanwhile.
struct Flight<V> {
    answer: OnceCell<Fetched<V>>,
}

#[derive(Clone)]
struct Fetched<V> {
    value: Result<V, DnsError>,
    lifetime: Duration,
    /// A positive answer (refreshed ahead of expiry).
    positive: bool,
    /// A temporary failure (does not replace a live entry).
    temporary: bool,
}

impl Inner {
    async fn get<S: Spec>(self: &Arc<Self>, name: String) -> Result<S::Value, DnsError> {
        let now = self.clock.now();
        let flight = {
            let mut slots = S::table(self).lock();
            match slots.get_mut(name.as_str()) {
                Some(slot) => {
                    if let Some(entry) = &mut slot.entry
                        && now < entry.expires
                    {
                        if entry.refresh_at.is_some_and(|at| now >= at) && slot.flight.is_none() {
                            entry.refresh_at = None;
                            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                                let flight = Arc::new(Flight {
                                    answer: OnceCell::new(),
                                });
                                slot.flight = Some(flight.clone());
                                bump(&self.counters.refreshes);
                                let inner = self.clone();
                                let name = name.clone();
                                runtime.spawn(async move {
                                    inner.fly::<S>(&name, &flight).await;
                                });
                            }
                        }
                        bump(&self.counters.hits);
                        return entry.value.clone();
                    }
                    if let Some(flight) = &slot.flight {
                        bump(&self.counters.coalesced);
                        flight.clone()
                    } else {
                        bump(&self.counters.misses);
                        let flight = Arc::new(Flight {
                            answer: OnceCell::new(),
                        });
                        slot.flight = Some(flight.clone());
                        flight
                    }
                }
                None => {
                    self.evict_if_full(&mut slots, now);
                    bump(&self.counters.misses);
                    let flight = Arc::new(Flight {
                        answer: OnceCell::new(),
                    });
                    slots.insert(
                        name.clone().into_boxed_str(),
                        Slot {
                            entry: None,
                            flight: Some(flight.clone()),
                        },
                    );
                    flight
                }
            }
        };
        self.fly::<S>(&name, &flight).await.value
    }

    /// Waits for (or performs) the query of `flight`, then stores its answer if the flight
    /// is still the current one for `name`.
    async fn fly<S: Spec>(
        self: &Arc<Self>,
        name: &str,
        flight: &Arc<Flight<S::Value>>,
    ) -> Fetched<S::Value> {
        let fetched = flight
            .answer
            .get_or_init(|| self.fetch::<S>(name))
            .await
            .clone();
        let now = self.clock.now();
        let mut slots = S::table(self).lock();
        if let Some(slot) = slots.get_mut(name)
            && slot
                .flight
                .as_ref()
                .is_some_and(|current| Arc::ptr_eq(current, flight))
        {
            slot.flight = None;
            let keep_live_entry =
                fetched.temporary && slot.entry.as_ref().is_some_and(|e| now < e.expires);
            if !keep_live_entry {
                slot.entry = (!fetched.lifetime.is_zero()).then(|| {
                    let expires = now + fetched.lifetime;
                    let ahead = self.config.refresh_ahead;
                    let refresh_at = (fetched.positive && ahead > 0.0 && ahead < 1.0)
                        .then(|| expires - fetched.lifetime.mul_f64(ahead));
                    Entry {
                        value: fetched.value.clone(),
                        expires,
                        refresh_at,
                    }
                });
            }
            if slot.entry.is_none() {
                slots.remove(name);
            }
        }
        fetched
    }

    async fn fetch<S: Spec>(&self, name: &str) -> Fetched<S::Value> {
        let config = &self.config;
        if let Err(reason) = check_name(name) {
            return Fetched {
                value: Err(DnsError::InvalidName {
                    kind: S::KIND,
                    name: name.to_owned(),
                    reason,
                }),
                lifetime: config.negative_lifetime(None),
                positive: false,
                temporary: false,
            };
        }
        bump(&self.counters.queries);
        match self.resolver.lookup_txt(name).await {
            Ok(answer) => {
                let value = S::parse(name, &answer, config.key_policy);
                let (lifetime, positive) = match &answer {
                    TxtAnswer::Records { ttl, .. } => {
                        let lifetime = config.positive_lifetime(*ttl);
                        if value.is_ok() {
                            (lifetime, true)
                        } else {
                            // Unusable records: a publishing mistake, recheck sooner.
                            (lifetime.min(config.max_negative_ttl), false)
                        }
                    }
                    TxtAnswer::NotFound { negative_ttl, .. } => {
                        (config.negative_lifetime(*negative_ttl), false)
                    }
                };
                Fetched {
                    value,
                    lifetime,
                    positive,
                    temporary: false,
                }
            }
            Err(cause) => {
                let temporary = cause.is_temporary();
                Fetched {
                    value: Err(DnsError::from_lookup(S::KIND, name, cause)),
                    lifetime: if temporary {
                        config.temporary_lifetime()
                    } else {
                        config.negative_lifetime(None)
                    },
                    positive: false,
                    temporary,
                }
            }
        }
    }

    /// Makes room in a full table: drops expired entries, then the soonest-expiring ones
    /// down to 90 % of the limit. In-flight queries are never dropped.
    fn evict_if_full<V>(&self, slots: &mut HashMap<Box<str>, Slot<V>>, now: Instant) {
        let max = self.config.max_entries;
        if slots.len() < max {
            return;
        }
        let before = slots.len();
        slots
            .retain(|_, s| s.flight.is_some() || s.entry.as_ref().is_some_and(|e| now < e.expires));
        if slots.len() >= max {
            let mut by_expiry: Vec<(Instant, Box<str>)> = slots
                .iter()
                .filter(|(_, s)| s.flight.is_none())
                .filter_map(|(k, s)| s.entry.as_ref().map(|e| (e.expires, k.clone())))
                .collect();
            by_expiry.sort_unstable_by_key(|(expires, _)| *expires);
            let excess = slots.len() + 1 - max * 9 / 10;
            for (_, key) in by_expiry.into_iter().take(excess) {
                slots.remove(&key);
            }
        }
        let evicted = before - slots.len();
        self.counters
            .evictions
            .fetch_add(evicted as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::resolver::StaticTable;

    #[test]
    fn lifetimes_are_clamped() {
        let mut c = CacheConfig::default();
        assert_eq!(c.positive_lifetime(86_400), Duration::from_secs(300));
        assert_eq!(c.positive_lifetime(5), Duration::from_secs(5));
        assert_eq!(c.negative_lifetime(Some(3600)), Duration::from_secs(60));
        assert_eq!(c.negative_lifetime(None), Duration::from_secs(30));
        c.min_ttl = Duration::from_secs(20);
        assert_eq!(c.positive_lifetime(5), Duration::from_secs(20));
        assert_eq!(c.negative_lifetime(Some(1)), Duration::from_secs(20));
        c.min_ttl = Duration::from_secs(600);
        assert_eq!(c.positive_lifetime(5), Duration::from_secs(300), "max wins");
        c.temporary_failure_ttl = Duration::from_secs(30);
        assert_eq!(c.temporary_lifetime(), Duration::from_secs(5));
        let off = CacheConfig::no_caching();
        assert_eq!(off.positive_lifetime(300), Duration::ZERO);
        assert_eq!(off.negative_lifetime(Some(300)), Duration::ZERO);
    }

    fn table(n: usize) -> StaticTable {
        let mut t = StaticTable::new().with_ttl(100);
        for i in 0..n {
            t.insert(
                &format!("_btps.host.d{i}.example"),
                [format!("u=h{i}.example;s=s1")],
            );
        }
        t
    }

    #[tokio::test]
    async fn full_tables_evict_expired_then_soonest_expiring() {
        let config = CacheConfig {
            max_entries: 10,
            ..CacheConfig::default()
        };
        let clock = Arc::new(ManualClock::new());
        let dns = DnsCache::with_clock(Arc::new(table(30)), config, clock.clone());
        for i in 0..10 {
            dns.host(&format!("d{i}.example")).await.unwrap();
            clock.advance(Duration::from_secs(1));
        }
        assert_eq!(dns.stats().entries, 10);
        // Full: the soonest-expiring entries (the first ones) make room.
        dns.host("d10.example").await.unwrap();
        let stats = dns.stats();
        assert!(stats.entries <= 10, "{stats:?}");
        assert!(stats.evictions >= 1);
        let queries = stats.queries;
        dns.host("d9.example").await.unwrap();
        assert_eq!(dns.stats().queries, queries, "the newest entries stay");
        dns.host("d0.example").await.unwrap();
        assert_eq!(dns.stats().queries, queries + 1, "the oldest was evicted");
        // Expired entries go first.
        clock.advance(Duration::from_secs(200));
        for i in 20..25 {
            dns.host(&format!("d{i}.example")).await.unwrap();
        }
        assert!(dns.stats().entries <= 6, "{:?}", dns.stats());
    }

    /// A minimal executor: polls on the current thread, parks between wake-ups.
    fn block_on<F: Future>(future: F) -> F::Output {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            std::thread::park();
        }
    }

    #[test]
    fn works_outside_a_tokio_runtime() {
        // No runtime to spawn a refresh on: entries are served until they expire.
        let mut t = StaticTable::new().with_ttl(10);
        t.insert("_btps.host.a.example", ["u=h.a.example;s=s1"]);
        let clock = Arc::new(ManualClock::new());
        let dns = DnsCache::with_clock(Arc::new(t), CacheConfig::default(), clock.clone());
        block_on(dns.host("a.example")).unwrap();
        clock.advance(Duration::from_secs(9)); // inside the refresh window
        block_on(dns.host("a.example")).unwrap();
        let stats = dns.stats();
        assert_eq!((stats.hits, stats.refreshes, stats.queries), (1, 0, 1));
        clock.advance(Duration::from_secs(2));
        block_on(dns.host("a.example")).unwrap();
        assert_eq!(dns.stats().queries, 2);
    }

    #[tokio::test]
    async fn invalid_names_are_permanent() {
        let dns = DnsCache::new(StaticTable::new());
        let id = Identity::parse("a$b.example").unwrap();
        let e = dns.identity_keys(&id, "a b").await.unwrap_err();
        assert!(matches!(
            e,
            DnsError::InvalidName {
                kind: RecordKind::IdentityKey,
                ..
            }
        ));
        assert!(!e.is_temporary());
        let e = dns.device_keys(&id, "x.y").await.unwrap_err();
        assert_eq!(e.error_code(), btps_types::ErrorCode::ResolvePubkey);
        let e = dns.host("bad..example").await.unwrap_err();
        assert_eq!(e.error_code(), btps_types::ErrorCode::ResolveDns);
        assert_eq!(dns.stats().queries, 0, "nothing was asked");
    }
}
