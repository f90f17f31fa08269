//! Server configuration: one TOML file with documented defaults (docs/server.md). Every
//! option has a default; the binary overlays `BTPS_*` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The whole configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// BTPS listener (`127.0.0.1:3443`).
    pub listen: SocketAddr,
    /// Data directory: relative paths below are resolved against it.
    pub data_dir: PathBuf,
    /// Domains hosted by this server: `to` must be an identity of one of them and present in
    /// the identity store (§3.2). Empty: every identity in the identity store.
    pub domains: Vec<String>,
    /// The identity that signs replies (identity lookups, signed auth replies).
    pub server_identity: String,
    /// Its selector.
    pub server_selector: String,
    /// Its private key (PEM, PKCS#8 or PKCS#1).
    pub server_key: PathBuf,
    /// Sign `auth.request` / `auth.refresh` replies (§8.4; btps-node servers do not).
    pub sign_auth_replies: bool,
    /// Reject artifacts signed by a key other than the trust record's (§7.3 `pin_keys`).
    pub pin_keys: bool,
    /// Who may attest a delegation its sender signed itself (§9.3 step 2): identities
    /// (`admin$saas.example`) and whole domains (`saas.example`). Empty (the default): any
    /// identity whose attestation verifies.
    pub attestors: Attestors,
    /// Append-only JSON-lines file of every accepted transporter artifact, fsynced before
    /// the ack (integration hook). Relative to `data_dir`.
    pub delivery_log: Option<PathBuf>,
    /// `decidedBy` written on agent records.
    pub service_name: String,
    /// Further hosted domains with their own server identity (multi-tenant): identity
    /// lookups and signed auth replies for identities of a tenant's domain are signed by the
    /// tenant's server identity (`[[tenants]]`).
    pub tenants: Vec<TenantConfig>,
    /// TLS.
    pub tls: TlsConfig,
    /// Stores.
    pub store: StoreConfig,
    /// DNS.
    pub dns: DnsConfig,
    /// Framing, connection and freshness limits.
    pub limits: Limits,
    /// Timers.
    pub timeouts: Timeouts,
    /// Rate limits.
    pub rate_limits: RateLimits,
    /// Agent tokens.
    pub tokens: TokenConfig,
    /// Outbound delivery of the outboxes (§11.1).
    pub delivery: DeliveryConfig,
    /// The HTTP listener for `/healthz`, `/readyz` and `/metrics`.
    pub http: HttpConfig,
    /// `[key_rotation]`: the key ring, rotation of the server's keys, rotation proofs.
    pub key_rotation: KeyRotationConfig,
    /// Logging.
    pub log: LogConfig,
    /// Which public keys are accepted (`[keys]`).
    pub keys: KeysConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3443)),
            data_dir: PathBuf::from("btps-data"),
            domains: Vec::new(),
            server_identity: "server$localhost.test".to_owned(),
            server_selector: "btps1".to_owned(),
            server_key: PathBuf::from("keys/server-private.pem"),
            sign_auth_replies: false,
            pin_keys: false,
            attestors: Attestors::default(),
            delivery_log: None,
            service_name: "btps-server".to_owned(),
            tenants: Vec::new(),
            tls: TlsConfig::default(),
            store: StoreConfig::default(),
            dns: DnsConfig::default(),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            rate_limits: RateLimits::default(),
            tokens: TokenConfig::default(),
            delivery: DeliveryConfig::default(),
            http: HttpConfig::default(),
            key_rotation: KeyRotationConfig::default(),
            log: LogConfig::default(),
            keys: KeysConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Parses a TOML document; absent options take their defaults, unknown ones are errors.
    ///
    /// # Errors
    ///
    /// The TOML error (line and column included).
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Parses `text` (TOML) with environment overrides applied first: a variable
    /// `BTPS_<KEY>` sets top-level option `<key>`, and `BTPS_<SECTION>__<KEY>` sets
    /// `[section] key` (names lower-cased). Values are read as TOML values when they parse as
    /// one (`1024`, `true`, `["a", "b"]`), else as strings.
    ///
    /// # Errors
    ///
    /// The TOML error.
    pub fn from_toml_with_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, toml::de::Error> {
        let mut table: toml::Table = toml::from_str(text)?;
        for (name, raw) in env {
            let Some(path) = name.strip_prefix("BTPS_") else {
                continue;
            };
            let path = path.to_ascii_lowercase();
            if !ENV_KEYS.iter().any(|k| *k == path) {
                continue;
            }
            let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(toml::Value::String(raw));
            let mut target = &mut table;
            let mut parts: Vec<&str> = path.split("__").collect();
            let last = parts.pop().unwrap_or_default();
            for section in parts {
                target = match target
                    .entry(section)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                {
                    toml::Value::Table(t) => t,
                    other => {
                        *other = toml::Value::Table(toml::Table::new());
                        match other {
                            toml::Value::Table(t) => t,
                            _ => unreachable!("just set"),
                        }
                    }
                };
            }
            target.insert(last.to_owned(), value);
        }
        toml::Value::Table(table).try_into()
    }

    /// `path` resolved against `data_dir` when relative.
    pub fn resolve(&self, path: &std::path::Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.data_dir.join(path)
        }
    }
}

/// A hosted domain with its own server identity.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The domain (hosted).
    pub domain: String,
    /// Its server identity (`server$<domain>`), whose key signs its replies.
    pub server_identity: String,
    /// The selector of that key.
    #[serde(default = "default_selector")]
    pub server_selector: String,
    /// The private key (PEM). Relative to `data_dir`.
    pub server_key: PathBuf,
}

fn default_selector() -> String {
    "btps1".to_owned()
}

/// TLS settings (§2.1).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain (PEM). Relative to `data_dir`.
    pub cert: PathBuf,
    /// Private key (PEM). Relative to `data_dir`.
    pub key: PathBuf,
    /// Generate a self-signed certificate for `self_signed_names` when the files are
    /// missing (the embedded default).
    pub self_signed: bool,
    /// Subject alternative names of the generated certificate.
    pub self_signed_names: Vec<String>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: PathBuf::from("tls/cert.pem"),
            key: PathBuf::from("tls/key.pem"),
            self_signed: true,
            self_signed_names: vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
        }
    }
}

/// Where state lives.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `file` (the embedded default, under `data_dir/store`) or a `postgres://` URL.
    pub url: String,
    /// Trust file in btps-node's layout (§7.5). Relative to `data_dir`.
    pub trust_file: PathBuf,
    /// Identity file (§7.5). Relative to `data_dir`.
    pub identity_file: PathBuf,
    /// Postgres pool size.
    pub pool_size: usize,
    /// File store: while writes are concurrent, the shortest time between the starts of two
    /// syncs of the log, in microseconds (group commit; a lone write is synced at once;
    /// `0`: sync as soon as anything is buffered). Acknowledgements still wait for the sync.
    pub sync_interval_us: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "file".to_owned(),
            trust_file: PathBuf::from(".well-known/btps-trust.json"),
            identity_file: PathBuf::from(".well-known/btps-identity.json"),
            pool_size: 16,
            sync_interval_us: u64::try_from(btps_trust::file::DEFAULT_SYNC_INTERVAL.as_micros())
                .unwrap_or(u64::MAX),
        }
    }
}

/// DNS settings (§6).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// A static table (`{"name": ["txt", ...]}`, the vectors' `dns.json` format) instead of
    /// live DNS. Relative to `data_dir`.
    pub file: Option<PathBuf>,
    /// Nameservers (`ip:port`) instead of the system configuration.
    pub nameservers: Vec<SocketAddr>,
}

/// Limits (§2.3, §2.4, §10.1, §11).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Maximum line length in bytes, LF excluded (4 MiB).
    pub max_line_bytes: usize,
    /// Process-wide budget of buffered, not yet processed request bytes (256 MiB).
    pub max_buffered_bytes: usize,
    /// Concurrent connections (10 000).
    pub max_connections: usize,
    /// Concurrent connections per remote IP (64).
    pub max_connections_per_ip: usize,
    /// Concurrent TLS handshakes (256). At the bound a new handshake waits for a slot;
    /// the handshake timeout counts the wait.
    pub max_handshakes: usize,
    /// Concurrent TLS handshakes per remote IP, waiting ones included (16); over it the
    /// connection is closed before TLS, so that no address holds more than its share of
    /// `max_handshakes`.
    pub max_handshakes_per_ip: usize,
    /// Requests in flight per connection (16).
    pub max_in_flight: usize,
    /// JSON nesting depth (64).
    pub max_depth: usize,
    /// Freshness window W in seconds (300).
    pub freshness_window_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line_bytes: 4 * 1024 * 1024,
            max_buffered_bytes: 256 * 1024 * 1024,
            max_connections: 10_000,
            max_connections_per_ip: 64,
            max_handshakes: 256,
            max_handshakes_per_ip: 16,
            max_in_flight: 16,
            max_depth: 64,
            freshness_window_secs: 300,
        }
    }
}

/// Timers (§2.4), in milliseconds.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// TLS handshake (10 s).
    pub handshake_ms: u64,
    /// Idle: no bytes received and nothing in flight (30 s).
    pub idle_ms: u64,
    /// First byte of a line to its LF (10 s).
    pub line_read_ms: u64,
    /// Flushing a reply (10 s).
    pub write_ms: u64,
    /// Request deadline (30 s).
    pub request_ms: u64,
    /// Graceful-shutdown grace (10 s).
    pub shutdown_grace_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            handshake_ms: 10_000,
            idle_ms: 30_000,
            line_read_ms: 10_000,
            write_ms: 10_000,
            request_ms: 30_000,
            shutdown_grace_ms: 10_000,
        }
    }
}

impl Timeouts {
    /// A field as a [`Duration`].
    pub fn get(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }
}

/// Rate limits (§11, issue defaults from the design documents). Each is a token bucket
/// holding `per_minute` tokens, refilled continuously; `0` disables that limit.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Signed artifacts per remote IP per minute (10).
    pub per_ip_per_minute: u32,
    /// Artifacts per sender identity (`from`, or `agentId`) per minute (100), charged once
    /// the signature is verified.
    pub per_sender_per_minute: u32,
    /// Artifacts per minute for the whole process (1000).
    pub global_per_minute: u32,
    /// `TRUST_REQ` per sender per minute (10).
    pub trust_requests_per_minute: u32,
    /// `TRUST_REQ` per sender domain per minute (30): one domain with many identities
    /// cannot fill a receiver's trust store faster than this.
    pub trust_requests_per_domain_per_minute: u32,
    /// Identity lookups per IP per minute (600).
    pub lookups_per_ip_per_minute: u32,
    /// `auth.request` / `auth.refresh` per identity (`to`) per minute (10).
    pub auth_requests_per_minute: u32,
    /// Failed `auth.*` attempts per identity per 15 minutes (5).
    pub auth_failures_per_15_minutes: u32,
    /// Consecutive rejections after which the connection is closed (3).
    pub close_after_rejections: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_ip_per_minute: 10,
            per_sender_per_minute: 100,
            global_per_minute: 1000,
            trust_requests_per_minute: 10,
            trust_requests_per_domain_per_minute: 30,
            lookups_per_ip_per_minute: 600,
            auth_requests_per_minute: 10,
            auth_failures_per_15_minutes: 5,
            close_after_rejections: 3,
        }
    }
}

impl RateLimits {
    /// Every limit off (benchmarks, trusted networks).
    pub fn unlimited() -> Self {
        Self {
            per_ip_per_minute: 0,
            per_sender_per_minute: 0,
            global_per_minute: 0,
            trust_requests_per_minute: 0,
            trust_requests_per_domain_per_minute: 0,
            lookups_per_ip_per_minute: 0,
            auth_requests_per_minute: 0,
            auth_failures_per_15_minutes: 0,
            close_after_rejections: 0,
        }
    }
}

/// Agent token lifetimes (§8.1).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// Auth (onboarding) token lifetime in seconds (900; 300–900).
    pub auth_token_secs: u64,
    /// Auth token length (12; 8–24).
    pub auth_token_len: usize,
    /// Refresh token lifetime in seconds (7 days; at most 90 days).
    pub refresh_token_secs: u64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            auth_token_secs: 900,
            auth_token_len: 12,
            refresh_token_secs: 7 * 24 * 3600,
        }
    }
}

/// Outbound delivery (§9.4, §11.1): the worker that delegates and delivers the artifacts
/// agents queue in their outboxes.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Run the delivery worker (`true`; it also needs a transport from the embedding
    /// program).
    pub enabled: bool,
    /// Attempts in flight at once (10).
    pub concurrency: usize,
    /// Waits after each failed attempt, in seconds (`[60, 120, 240, 480, 960]`: five
    /// retries); when used up the failure is final.
    pub retry_delays_secs: Vec<u64>,
    /// No retry is scheduled later than this many seconds after the artifact was queued
    /// (1 day).
    pub lifetime_secs: u64,
    /// How long a claimed entry is reserved for one attempt, in seconds (60); must exceed
    /// `request_timeout_ms`.
    pub lease_secs: u64,
    /// Outbox poll interval in milliseconds (1000); queued artifacts also wake the worker.
    pub poll_ms: u64,
    /// The longest wait for the receiving server's reply, in milliseconds (5000).
    pub request_timeout_ms: u64,
    /// CA certificates (PEM files) that receiving servers' certificates must chain to,
    /// *instead of* the system trust store (`[]`: the system trust store). For private
    /// deployments and tests; a self-signed certificate can be given as its own CA.
    pub ca_files: Vec<PathBuf>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            concurrency: 10,
            retry_delays_secs: vec![60, 120, 240, 480, 960],
            lifetime_secs: 24 * 3600,
            lease_secs: 60,
            poll_ms: 1000,
            request_timeout_ms: 5000,
            ca_files: Vec::new(),
        }
    }
}

/// The observability listener.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address, or `None` to disable (`127.0.0.1:9443`). Plain HTTP: `/healthz`, `/readyz`,
    /// `/metrics` and the `.well-known` documents (for a reverse proxy that adds TLS).
    pub listen: Option<SocketAddr>,
    /// Address of an HTTPS listener (the BTPS certificate) that serves only the
    /// `.well-known` documents, or `None` (default) for none.
    pub well_known_listen: Option<SocketAddr>,
    /// Serve `/.well-known/btps-trust.json`: the active trust records without private
    /// fields (PROTOCOL.md §7.7). Off by default: it reveals business relationships.
    pub publish_trust: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9443))),
            well_known_listen: None,
            publish_trust: false,
        }
    }
}

/// Key rotation (docs/keys.md): the key ring of the server's identities, and the rotation
/// proofs a receiver checks when a pinned sender's key changes.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct KeyRotationConfig {
    /// The key-ring directory (`keyring`, relative to `data_dir`). The server's signing
    /// identities are imported into it on start; `btps key rotate … --keyring` rotates them.
    pub keyring: PathBuf,
    /// Seconds a replaced key stays published and decrypting (0 = automatic: the freshness
    /// window plus `[delivery] lifetime_secs` plus one hour). A smaller non-zero value is a
    /// configuration error.
    pub grace_secs: u64,
    /// How often the key ring and DNS are checked for a pending key, in seconds (60).
    pub check_interval_secs: u64,
    /// Fetch `https://<domain>/.well-known/btp-key-rotation.json` when a pinned sender's key
    /// changed without an in-band proof (`true`).
    pub fetch_proofs: bool,
    /// Bound on one fetch, redirects included, in milliseconds (5000).
    pub fetch_timeout_ms: u64,
    /// Per-domain base URLs for the fetch instead of `https://<domain>` (`{}`).
    pub proof_urls: std::collections::BTreeMap<String, String>,
    /// CA certificates (PEM files) for the fetch instead of the system trust store (`[]`).
    pub ca_files: Vec<PathBuf>,
}

impl Default for KeyRotationConfig {
    fn default() -> Self {
        Self {
            keyring: PathBuf::from("keyring"),
            grace_secs: 0,
            check_interval_secs: 60,
            fetch_proofs: true,
            fetch_timeout_ms: 5000,
            proof_urls: std::collections::BTreeMap::new(),
            ca_files: Vec::new(),
        }
    }
}

impl ServerConfig {
    /// The least grace period of a replaced key: the freshness window plus the longest
    /// delivery retry period (`[delivery] lifetime_secs`).
    pub fn minimum_key_grace(&self) -> Duration {
        Duration::from_secs(
            self.limits
                .freshness_window_secs
                .saturating_add(self.delivery.lifetime_secs),
        )
    }

    /// The grace period of a replaced key (`[key_rotation] grace_secs`, or the minimum plus
    /// one hour when 0).
    ///
    /// # Errors
    ///
    /// A configured grace shorter than [`minimum_key_grace`](Self::minimum_key_grace).
    pub fn key_grace(&self) -> Result<Duration, String> {
        let minimum = self.minimum_key_grace();
        match self.key_rotation.grace_secs {
            0 => Ok(minimum + Duration::from_secs(3600)),
            s if Duration::from_secs(s) < minimum => Err(format!(
                "[key_rotation] grace_secs = {s} is shorter than the freshness window plus \
                 [delivery] lifetime_secs ({} s)",
                minimum.as_secs()
            )),
            s => Ok(Duration::from_secs(s)),
        }
    }
}

/// Logging.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter (`info`, `btps_server=debug`).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".to_owned(),
            level: "info".to_owned(),
        }
    }
}

/// Which public keys are accepted (PROTOCOL.md §4.2, §6.3). RSA keys under 2048 bits are
/// always refused; see docs/keys.md.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// Verify Ed25519 keys (`true`): device keys of agents (`auth.request`,
    /// `auth.refresh`), delegated device keys (`agentPubKey`, DNS device records) and
    /// identity keys published with `k=ed25519`, an opt-in extension between Rust peers.
    /// `false`: every Ed25519 key counts as no valid public key
    /// (`BTP_ERROR_RESOLVE_PUBKEY`).
    pub accept_ed25519: bool,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            accept_ed25519: true,
        }
    }
}

impl KeysConfig {
    /// The key policy these settings give: RSA 2048–8192 bits, Ed25519 when accepted.
    pub fn key_policy(&self) -> btps_crypto::KeyPolicy {
        btps_crypto::KeyPolicy::DEFAULT.with_ed25519(self.accept_ed25519)
    }
}

/// The attestor allow-list of §9.3 (`attestors = [...]`): identities and domains,
/// compared case-insensitively. Empty allows any attestor.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(try_from = "Vec<String>")]
pub struct Attestors {
    identities: Vec<String>,
    domains: Vec<String>,
}

impl Attestors {
    /// Parses the entries: each is an identity (`user$domain`) or a domain name.
    ///
    /// # Errors
    ///
    /// The first entry that is neither.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut list = Self::default();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry.contains('$') {
                let identity = btps_types::Identity::parse(entry)
                    .map_err(|e| format!("attestors: {entry:?} is not an identity: {e}"))?;
                list.identities.push(identity.to_lowercase());
            } else if is_domain_name(entry) {
                list.domains
                    .push(entry.trim_end_matches('.').to_ascii_lowercase());
            } else {
                return Err(format!(
                    "attestors: {entry:?} is neither an identity nor a domain name"
                ));
            }
        }
        Ok(list)
    }

    /// Whether the list is empty, so that any attestor is allowed.
    pub fn allows_any(&self) -> bool {
        self.identities.is_empty() && self.domains.is_empty()
    }

    /// Whether `attestor` may attest: the list is empty, names it, or names its domain.
    pub fn allows(&self, attestor: &btps_types::Identity) -> bool {
        if self.allows_any() {
            return true;
        }
        let identity = attestor.to_lowercase();
        let domain = attestor.domain().to_ascii_lowercase();
        self.identities.contains(&identity) || self.domains.contains(&domain)
    }
}

impl TryFrom<Vec<String>> for Attestors {
    type Error = String;
    fn try_from(entries: Vec<String>) -> Result<Self, String> {
        Self::parse(&entries)
    }
}

/// Letters, digits, hyphens and dots, at least one dot, no empty label, ≤ 253 bytes.
fn is_domain_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    s.len() <= 253
        && s.contains('.')
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Every option an environment variable can set (`BTPS_` + the upper-cased name; sections
/// joined with `__`).
pub const ENV_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "domains",
    "server_identity",
    "server_selector",
    "server_key",
    "sign_auth_replies",
    "pin_keys",
    "attestors",
    "delivery_log",
    "service_name",
    "tls__cert",
    "tls__key",
    "tls__self_signed",
    "tls__self_signed_names",
    "store__url",
    "store__trust_file",
    "store__identity_file",
    "store__pool_size",
    "store__sync_interval_us",
    "dns__file",
    "dns__nameservers",
    "limits__max_line_bytes",
    "limits__max_buffered_bytes",
    "limits__max_connections",
    "limits__max_connections_per_ip",
    "limits__max_handshakes",
    "limits__max_handshakes_per_ip",
    "limits__max_in_flight",
    "limits__max_depth",
    "limits__freshness_window_secs",
    "timeouts__handshake_ms",
    "timeouts__idle_ms",
    "timeouts__line_read_ms",
    "timeouts__write_ms",
    "timeouts__request_ms",
    "timeouts__shutdown_grace_ms",
    "rate_limits__per_ip_per_minute",
    "rate_limits__per_sender_per_minute",
    "rate_limits__global_per_minute",
    "rate_limits__trust_requests_per_minute",
    "rate_limits__trust_requests_per_domain_per_minute",
    "rate_limits__lookups_per_ip_per_minute",
    "rate_limits__auth_requests_per_minute",
    "rate_limits__auth_failures_per_15_minutes",
    "rate_limits__close_after_rejections",
    "tokens__auth_token_secs",
    "tokens__auth_token_len",
    "tokens__refresh_token_secs",
    "delivery__enabled",
    "delivery__concurrency",
    "delivery__retry_delays_secs",
    "delivery__lifetime_secs",
    "delivery__lease_secs",
    "delivery__poll_ms",
    "delivery__request_timeout_ms",
    "delivery__ca_files",
    "http__listen",
    "http__well_known_listen",
    "http__publish_trust",
    "key_rotation__keyring",
    "key_rotation__grace_secs",
    "key_rotation__check_interval_secs",
    "key_rotation__fetch_proofs",
    "key_rotation__fetch_timeout_ms",
    "key_rotation__proof_urls",
    "key_rotation__ca_files",
    "log__format",
    "log__level",
    "keys__accept_ed25519",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(
            ServerConfig::from_toml("").unwrap(),
            ServerConfig::default()
        );
    }

    #[test]
    fn key_grace_is_at_least_the_freshness_window_plus_the_retry_period() {
        let mut c = ServerConfig::default();
        let minimum = c.minimum_key_grace();
        assert_eq!(
            minimum.as_secs(),
            c.limits.freshness_window_secs + c.delivery.lifetime_secs
        );
        assert!(c.key_grace().unwrap() > minimum);
        c.key_rotation.grace_secs = minimum.as_secs() - 1;
        assert!(c.key_grace().is_err());
        c.key_rotation.grace_secs = minimum.as_secs();
        assert_eq!(c.key_grace().unwrap(), minimum);
    }

    #[test]
    fn tenants() {
        let c = ServerConfig::from_toml(
            "[[tenants]]\ndomain = \"acme.test\"\nserver_identity = \"server$acme.test\"\nserver_key = \"keys/acme.pem\"\n",
        )
        .unwrap();
        assert_eq!(c.tenants.len(), 1);
        assert_eq!(c.tenants[0].server_selector, "btps1");
    }

    #[test]
    fn environment_overrides() {
        let env = [
            ("BTPS_LISTEN", "0.0.0.0:5000"),
            ("BTPS_LIMITS__MAX_LINE_BYTES", "2048"),
            ("BTPS_DOMAINS", r#"["a.test", "b.test"]"#),
            ("BTPS_STORE__URL", "postgres://db/btps"),
            ("BTPS_LOG__FORMAT", "json"),
            ("BTPS_NOT_AN_OPTION", "x"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let c = ServerConfig::from_toml_with_env("listen = \"127.0.0.1:1\"\n", env).unwrap();
        assert_eq!(c.listen.port(), 5000);
        assert_eq!(c.limits.max_line_bytes, 2048);
        assert_eq!(c.domains, ["a.test", "b.test"]);
        assert_eq!(c.store.url, "postgres://db/btps");
        assert_eq!(c.log.format, "json");
        let bad = [("BTPS_LIMITS__MAX_IN_FLIGHT".to_owned(), "many".to_owned())];
        assert!(ServerConfig::from_toml_with_env("", bad).is_err());
    }

    #[test]
    fn delivery_section_and_overrides() {
        let c = ServerConfig::from_toml(
            "[delivery]\nconcurrency = 4\nretry_delays_secs = [1, 2]\nlease_secs = 30\n",
        )
        .unwrap();
        assert_eq!(c.delivery.concurrency, 4);
        assert_eq!(c.delivery.retry_delays_secs, [1, 2]);
        assert_eq!(c.delivery.lease_secs, 30);
        assert!(c.delivery.enabled);
        assert_eq!(c.delivery.request_timeout_ms, 5000);
        let env = [
            ("BTPS_DELIVERY__ENABLED", "false"),
            ("BTPS_DELIVERY__RETRY_DELAYS_SECS", "[5, 10, 20]"),
            ("BTPS_DELIVERY__POLL_MS", "250"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let c = ServerConfig::from_toml_with_env("", env).unwrap();
        assert!(!c.delivery.enabled);
        assert_eq!(c.delivery.retry_delays_secs, [5, 10, 20]);
        assert_eq!(c.delivery.poll_ms, 250);
        assert!(ServerConfig::from_toml("[delivery]\nretries = 3\n").is_err());
    }

    #[test]
    fn attestors_are_identities_and_domains() {
        let c =
            ServerConfig::from_toml("attestors = [\"Admin$SaaS.example\", \"trusted.example\"]\n")
                .unwrap();
        let id = |s: &str| btps_types::Identity::parse(s).unwrap();
        assert!(!c.attestors.allows_any());
        assert!(c.attestors.allows(&id("admin$saas.example")));
        assert!(!c.attestors.allows(&id("other$saas.example")));
        assert!(c.attestors.allows(&id("anyone$Trusted.Example")));
        assert!(!c.attestors.allows(&id("anyone$sub.trusted.example")));
        assert!(ServerConfig::default().attestors.allows(&id("x$y.example")));
        for bad in [
            "\"no-dot\"",
            "\"$x.example\"",
            "\"a b.example\"",
            "\"a..example\"",
        ] {
            let text = format!("attestors = [{bad}]\n");
            let err = ServerConfig::from_toml(&text).unwrap_err().to_string();
            assert!(err.contains("attestors"), "{bad}: {err}");
        }
        let env = [(
            "BTPS_ATTESTORS".to_owned(),
            r#"["notary.example"]"#.to_owned(),
        )];
        let c = ServerConfig::from_toml_with_env("", env).unwrap();
        assert!(c.attestors.allows(&id("n$notary.example")));
    }

    #[test]
    fn keys_section_and_override() {
        let c = ServerConfig::default();
        assert!(c.keys.accept_ed25519);
        assert!(c.keys.key_policy().accepts_ed25519());
        assert_eq!(c.keys.key_policy().min_rsa_bits(), 2048);
        let c = ServerConfig::from_toml("[keys]\naccept_ed25519 = false\n").unwrap();
        assert!(!c.keys.key_policy().accepts_ed25519());
        let env = [("BTPS_KEYS__ACCEPT_ED25519".to_owned(), "false".to_owned())];
        let c = ServerConfig::from_toml_with_env("", env).unwrap();
        assert!(!c.keys.accept_ed25519);
        assert!(ServerConfig::from_toml("[keys]\nmin_rsa_bits = 1024\n").is_err());
    }

    #[test]
    fn every_env_key_is_an_option() {
        for key in ENV_KEYS {
            let env = [(format!("BTPS_{}", key.to_ascii_uppercase()), "0".to_owned())];
            // A wrong type is an error naming the field; an unknown field would be too, but
            // with "unknown field".
            if let Err(e) = ServerConfig::from_toml_with_env("", env) {
                assert!(!e.to_string().contains("unknown field"), "{key}: {e}");
            }
        }
    }

    #[test]
    fn options_override_and_unknown_fail() {
        let c = ServerConfig::from_toml(
            "listen = \"0.0.0.0:4443\"\n[limits]\nmax_line_bytes = 1024\n[rate_limits]\nper_ip_per_minute = 0\n",
        )
        .unwrap();
        assert_eq!(c.listen.port(), 4443);
        assert_eq!(c.limits.max_line_bytes, 1024);
        assert_eq!(c.limits.max_in_flight, 16);
        assert_eq!(c.rate_limits.per_ip_per_minute, 0);
        let err = ServerConfig::from_toml("[limits]\nmax_lines = 3\n").unwrap_err();
        assert!(err.to_string().contains("max_lines"), "{err}");
    }
}
