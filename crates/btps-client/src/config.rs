//! [`ClientConfig`] with the spec defaults, [`TlsTrust`], [`RetryPolicy`] and [`Backoff`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use btps_types::Identity;

use crate::ServerAddr;

/// Client settings. [`Default`] gives the defaults of PROTOCOL.md §2.3, §2.4 and §11.1.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use btps_client::{ClientConfig, TlsTrust};
/// let mut config = ClientConfig::default();
/// assert_eq!(config.request_timeout, Duration::from_secs(5));
/// assert_eq!(config.max_reply_bytes, 8 * 1024 * 1024);
/// config.tls = TlsTrust::CaPem(std::fs::read("ca.pem").unwrap_or_default());
/// config = config.with_override("vendorcorp.test", "localhost:3443".parse().unwrap());
/// ```
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// How server certificates are checked (default: the system's trust store).
    pub tls: TlsTrust,
    /// TCP connect plus TLS handshake, per attempt (default 10 s, PROTOCOL.md §2.1).
    pub connect_timeout: Duration,
    /// From writing a request to its reply, and the longest wait for a free slot on a busy
    /// pool (default 5 s, PROTOCOL.md §11.1). [`RequestOptions::timeout`] overrides it per
    /// request.
    ///
    /// [`RequestOptions::timeout`]: crate::RequestOptions::timeout
    pub request_timeout: Duration,
    /// Longest reply line accepted (default 8 MiB, PROTOCOL.md §2.3); a longer one closes
    /// the connection.
    pub max_reply_bytes: usize,
    /// Requests pipelined on one connection at most (default 16, the server's default
    /// in-flight limit).
    pub max_in_flight: usize,
    /// Connections to one server at most (default 10). Another connection is opened only
    /// when every existing one has `max_in_flight` requests outstanding; normally there is
    /// one per server.
    pub max_connections_per_server: usize,
    /// A connection unused for this long is closed, with `QUIT` (default 300 s, measured
    /// from the last use, PROTOCOL.md §11.1).
    pub idle_ttl: Duration,
    /// Re-sending idempotent requests.
    pub retry: RetryPolicy,
    /// Waiting between connection attempts to a server that failed to connect (default
    /// 1 s doubling to 60 s, with jitter).
    pub reconnect: Backoff,
    /// Server addresses by domain (lower case), used instead of the domain's host record:
    /// for tests, local setups and a command line's `--server`. See
    /// [`with_override`](Self::with_override).
    pub overrides: HashMap<String, ServerAddr>,
    /// The `from` of identity lookups (informational for the server, PROTOCOL.md §3.6);
    /// `None` puts the looked-up identity itself.
    pub requester: Option<Identity>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            tls: TlsTrust::SystemRoots,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(5),
            max_reply_bytes: 8 * 1024 * 1024,
            max_in_flight: 16,
            max_connections_per_server: 10,
            idle_ttl: Duration::from_secs(300),
            retry: RetryPolicy::default(),
            reconnect: Backoff::default(),
            overrides: HashMap::new(),
            requester: None,
        }
    }
}

impl ClientConfig {
    /// Sends artifacts for `domain` to `addr` instead of the address in the domain's host
    /// record. The domain is compared case-insensitively.
    #[must_use]
    pub fn with_override(mut self, domain: &str, addr: ServerAddr) -> Self {
        self.overrides.insert(domain.to_ascii_lowercase(), addr);
        self
    }

    /// This configuration with `tls` as the trust setting.
    #[must_use]
    pub fn with_tls(mut self, tls: TlsTrust) -> Self {
        self.tls = tls;
        self
    }
}

/// How the client decides to trust a server's certificate (PROTOCOL.md §2.1). The server
/// name checked (and sent as SNI) is the host of the server address — the host record's
/// `u`, or an override.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsTrust {
    /// The operating system's trust store (rustls-native-certs), with host name checks.
    SystemRoots,
    /// These CA certificates in PEM (one or more `BEGIN CERTIFICATE` blocks), with host
    /// name checks. A self-signed server certificate may be given as its own CA.
    CaPem(Vec<u8>),
    /// As [`CaPem`](Self::CaPem), read from this file when the client is created.
    CaFile(PathBuf),
    /// Only servers whose end-entity certificate has one of these SHA-256 fingerprints
    /// (of the certificate's DER, see [`certificate_fingerprint`](crate::certificate_fingerprint)).
    /// The pin replaces the chain and host-name checks; the TLS handshake signature is
    /// still verified with the certificate's key.
    Pinned(Vec<[u8; 32]>),
    /// **Test only — no server authentication at all.** Any certificate is accepted for
    /// any name (the handshake signature is still checked against it). Anyone on the path
    /// can read and change the traffic. Never use it outside tests.
    DangerousAcceptAnyCertificate,
}

/// Exponential backoff with jitter: `initial`, doubling up to `max`; each delay is drawn
/// uniformly from `[d × (1 − jitter), d]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The first delay (default 1 s).
    pub initial: Duration,
    /// The largest delay (default 60 s).
    pub max: Duration,
    /// The fraction of each delay that is random, 0 to 1 (default 0.5).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The delay before retry number `retry` (0 for the first retry), with `random` a
    /// uniform draw from `[0, 1]`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use btps_client::Backoff;
    /// let b = Backoff::default();
    /// assert_eq!(b.delay(0, 0.0), Duration::from_secs(1));
    /// assert_eq!(b.delay(3, 0.0), Duration::from_secs(8));
    /// assert_eq!(b.delay(10, 0.0), Duration::from_secs(60));
    /// assert_eq!(b.delay(1, 1.0), Duration::from_secs(1)); // 2 s, half of it random
    /// ```
    pub fn delay(&self, retry: u32, random: f64) -> Duration {
        let doubled = self
            .initial
            .checked_mul(1_u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max);
        let base = doubled.min(self.max);
        let jitter = self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
        base.mul_f64(1.0 - jitter)
    }

    /// [`delay`](Self::delay) with a random draw from the system CSPRNG.
    pub(crate) fn next(&self, retry: u32) -> Duration {
        self.delay(retry, crate::util::random_unit())
    }
}

/// When and how often idempotent requests are re-sent (PROTOCOL.md §11.1).
///
/// A request is re-sent only when it is idempotent (signed transporter artifacts: the
/// receiver's replay check answers an exact re-send with `already accepted`; `PING`;
/// identity lookups — never `auth.*`) and the failure is retryable
/// ([`ClientError::is_retryable`](crate::ClientError::is_retryable)). A request that
/// provably never left (no connection could be had) may always be tried again. Every
/// attempt after the first waits [`backoff`](Self::backoff) and goes out on a different
/// connection than any attempt before it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (default 4; 1 disables retries).
    pub max_attempts: u32,
    /// The wait before each retry (default 1 s doubling to 60 s, jitter 0.5).
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            backoff: Backoff::default(),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }
}
