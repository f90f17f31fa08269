//! [`Client`]: requests over the pool with retries, server discovery, `PING`, and identity
//! lookups (PROTOCOL.md §2, §3.6, §11.1).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use btps_crypto::PublicKey;
use btps_dns::DnsCache;
use btps_types::artifact::IdentityKeyDocument;
use btps_types::json::{Object, Value, to_js_string};
use btps_types::{Identity, Selector};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::ServerAddr;
use crate::config::ClientConfig;
use crate::connection::{ConnSettings, Sent};
use crate::error::{ClientError, Result};
use crate::pool::Pool;
use crate::response::Response;
use crate::{tls, util};

/// How one request is sent.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use btps_client::RequestOptions;
/// let opts = RequestOptions::idempotent().signed().with_timeout(Duration::from_secs(2));
/// assert!(opts.idempotent && opts.require_signed);
/// assert!(!RequestOptions::default().idempotent);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestOptions {
    /// The request may be sent again after a retryable failure (signed transporter
    /// artifacts, `PING`, identity lookups; never `auth.*`). Each attempt goes out on a
    /// connection it was not written to before.
    pub idempotent: bool,
    /// A success reply must be signed and verify with DNS(`signedBy`, `selector`),
    /// otherwise the request fails with [`ClientError::Unsigned`] or
    /// [`ClientError::BadSignature`]. Error replies are returned as they are when unsigned
    /// (they grant nothing), and verified when signed.
    pub require_signed: bool,
    /// Overrides [`ClientConfig::request_timeout`] for this request.
    pub timeout: Option<Duration>,
}

impl RequestOptions {
    /// Options for an idempotent request.
    pub fn idempotent() -> Self {
        Self {
            idempotent: true,
            ..Self::default()
        }
    }

    /// These options, requiring a signed reply.
    #[must_use]
    pub fn signed(mut self) -> Self {
        self.require_signed = true;
        self
    }

    /// These options with a request timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Counters of a [`Client`], for monitoring and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// TLS connections opened (successful handshakes).
    pub connections_opened: u64,
    /// Connection attempts that failed (TCP or TLS).
    pub connect_failures: u64,
    /// Request attempts (first sends and retries).
    pub attempts: u64,
    /// Attempts that were retries.
    pub retries: u64,
}

struct Inner {
    config: ClientConfig,
    dns: DnsCache,
    pool: Pool,
    attempts: AtomicU64,
    retries: AtomicU64,
}

/// A BTPS client: pooled, pipelined TLS connections to any number of servers.
///
/// Cheap to clone (an [`Arc`] inside); clones share the pool, the DNS cache and the
/// settings. Needs a Tokio runtime (connections run reader and writer tasks). Dropping
/// the last clone closes idle connections with `QUIT`.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client with these settings, resolving through `dns`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Config`] when the TLS trust setting cannot be used (no usable
    /// system roots, unreadable or empty CA PEM, no pins).
    pub fn new(config: ClientConfig, dns: DnsCache) -> Result<Self> {
        let tls = tls::client_config(&config.tls)?;
        let settings = ConnSettings {
            connect_timeout: config.connect_timeout,
            max_reply_bytes: config.max_reply_bytes,
            max_in_flight: config.max_in_flight.max(1),
            idle_ttl: config.idle_ttl,
        };
        let pool = Pool::new(
            TlsConnector::from(tls),
            settings,
            config.max_connections_per_server,
            config.reconnect,
        );
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                dns,
                pool,
                attempts: AtomicU64::new(0),
                retries: AtomicU64::new(0),
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The DNS cache.
    pub fn dns(&self) -> &DnsCache {
        &self.inner.dns
    }

    /// The counters.
    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.pool.counters;
        ClientStats {
            connections_opened: c.connections_opened.load(Ordering::Relaxed),
            connect_failures: c.connect_failures.load(Ordering::Relaxed),
            attempts: self.inner.attempts.load(Ordering::Relaxed),
            retries: self.inner.retries.load(Ordering::Relaxed),
        }
    }

    /// Open connections to `addr` right now.
    pub fn open_connections(&self, addr: &ServerAddr) -> usize {
        self.inner.pool.open_connections(addr)
    }

    /// The server hosting `identity`: the configured override for its domain, else the
    /// `u` of its domain's host record `_btps.host.<domain>` (PROTOCOL.md §2.2, §6.1).
    ///
    /// # Errors
    ///
    /// [`ClientError::Dns`] (`BTP_ERROR_RESOLVE_DNS` when there is no usable host record,
    /// `BTP_ERROR_DNS_UNAVAILABLE` when DNS cannot be asked).
    pub async fn server_for(&self, identity: &Identity) -> Result<ServerAddr> {
        self.server_for_domain(identity.domain()).await
    }

    /// [`server_for`](Self::server_for) by domain.
    ///
    /// # Errors
    ///
    /// As [`server_for`](Self::server_for).
    pub async fn server_for_domain(&self, domain: &str) -> Result<ServerAddr> {
        if let Some(addr) = self
            .inner
            .config
            .overrides
            .get(&domain.to_ascii_lowercase())
        {
            return Ok(addr.clone());
        }
        let host = self.inner.dns.host(domain).await?;
        Ok(ServerAddr::from_host_record(&host))
    }

    /// Sends `artifact` (one JSON object with a string `id`) to `addr` and waits for the
    /// reply whose `reqId` is that `id`, pipelined over a pooled connection.
    ///
    /// A well-formed error reply is `Ok` (see [`Response::into_result`]). Retryable
    /// failures ([`ClientError::is_retryable`], and error replies with a retryable status)
    /// are retried per [`ClientConfig::retry`] when `opts.idempotent`, each time on a
    /// connection the request was not written to before; a request that never left (no
    /// connection) is retried whether idempotent or not. The last attempt's outcome is
    /// returned.
    ///
    /// # Errors
    ///
    /// The [`ClientError`] of the last attempt; with `opts.require_signed`,
    /// [`ClientError::Unsigned`] / [`ClientError::BadSignature`] / [`ClientError::Dns`]
    /// for a success reply that is not properly signed.
    pub async fn request(
        &self,
        addr: &ServerAddr,
        artifact: &Object,
        opts: RequestOptions,
    ) -> Result<Response> {
        self.request_with(addr, opts, |_| Ok(artifact.clone()))
            .await
    }

    /// [`request`](Self::request) where every attempt sends what `make` builds for it
    /// (attempt numbers start at 1): a fresh delegation per delivery attempt (§9.4), a
    /// re-signed agent request with a new `id`, or the same artifact each time.
    pub(crate) async fn request_with<F>(
        &self,
        addr: &ServerAddr,
        opts: RequestOptions,
        mut make: F,
    ) -> Result<Response>
    where
        F: FnMut(u32) -> Result<Object>,
    {
        let wait = opts.timeout.unwrap_or(self.inner.config.request_timeout);
        let policy = self.inner.config.retry;
        let mut used = Vec::new();
        let mut attempt: u32 = 0;
        let reply = loop {
            attempt += 1;
            let artifact = make(attempt)?;
            let id = artifact
                .get_str("id")
                .filter(|id| !id.is_empty())
                .ok_or_else(|| {
                    ClientError::Invalid("a request needs a non-empty string id".into())
                })?;
            let mut line = to_js_string(&Value::Object(artifact.clone())).into_bytes();
            line.push(b'\n');
            self.inner.attempts.fetch_add(1, Ordering::Relaxed);
            let result = self.attempt(addr, id, line, wait, &mut used).await;
            let retry = match &result {
                Ok(reply) => opts.idempotent && !reply.ok() && reply.rejection().is_retryable(),
                Err(e) => e.is_retryable() && (opts.idempotent || e.is_unsent()),
            };
            if !retry || attempt >= policy.max_attempts.max(1) {
                break result?;
            }
            let mut delay = policy.backoff.next(attempt - 1);
            if let Some(at) = self.inner.pool.retry_at(addr) {
                delay = delay.max(at.saturating_duration_since(Instant::now()));
            }
            match &result {
                Ok(reply) => {
                    tracing::debug!(%addr, id, attempt, code = reply.code(), ?delay, "retrying after an error reply")
                }
                Err(e) => tracing::debug!(%addr, id, attempt, error = %e, ?delay, "retrying"),
            }
            self.inner.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
        };
        if opts.require_signed && (reply.ok() || reply.is_signed()) {
            if !reply.is_signed() {
                return Err(ClientError::Unsigned);
            }
            reply.verify(&self.inner.dns).await?;
        }
        Ok(reply)
    }

    async fn attempt(
        &self,
        addr: &ServerAddr,
        id: &str,
        mut line: Vec<u8>,
        wait: Duration,
        used: &mut Vec<u64>,
    ) -> Result<Response> {
        let deadline = Instant::now() + wait;
        // A connection that closes under our feet before the line left is replaced, a few
        // times at most.
        for _ in 0..=self.inner.config.max_connections_per_server {
            let slot = self.inner.pool.acquire(addr, used, deadline).await?;
            used.push(slot.connection_id());
            match slot.request(id, line, wait).await {
                Sent::Done(result) => return result,
                Sent::NotWritten(unsent) => line = unsent,
            }
        }
        Err(ClientError::ConnectionClosed {
            addr: addr.to_string(),
        })
    }

    /// Sends an artifact to the server of its `to` ([`server_for`](Self::server_for)).
    /// Signed artifacts other than `auth.*` are idempotent (the receiver's replay check
    /// answers an exact re-send with `already accepted`) and are retried.
    ///
    /// # Errors
    ///
    /// [`ClientError::Invalid`] without a `to` identity; otherwise as
    /// [`request`](Self::request).
    pub async fn send(&self, artifact: &Object) -> Result<Response> {
        let to = artifact
            .get_str("to")
            .ok_or_else(|| ClientError::Invalid("the artifact has no string `to`".into()))?;
        let to = Identity::parse(to)?;
        let addr = self.server_for(&to).await?;
        let idempotent = artifact.contains_key("signature")
            && !artifact
                .get_str("action")
                .is_some_and(|a| a.starts_with("auth."));
        self.request(
            &addr,
            artifact,
            RequestOptions {
                idempotent,
                ..RequestOptions::default()
            },
        )
        .await
    }

    /// `PING` (PROTOCOL.md §2.4): `Ok` when the server answers `pong`.
    ///
    /// # Errors
    ///
    /// As [`request`](Self::request); an error reply is [`ClientError::Rejected`].
    pub async fn ping(&self, addr: &ServerAddr) -> Result<Response> {
        let ping = Object::with_capacity(4)
            .with("version", "1.0.0")
            .with("id", util::new_id()?)
            .with("issuedAt", util::now().to_datetime_string())
            .with("action", "PING");
        self.request(addr, &ping, RequestOptions::idempotent())
            .await?
            .into_result()
    }

    /// Asks the server hosting `identity` for its key at `selector` (default: its current
    /// one) with an identity lookup (PROTOCOL.md §3.6). The reply must be signed and verify
    /// with DNS(`signedBy`, `selector`), and `signedBy` must be in the domain of
    /// `identity`; the key in the reply is returned.
    ///
    /// The request members, in writer order: `identity`, `from` ([`ClientConfig::requester`],
    /// or `identity` itself), `hostSelector` (the `s` of the domain's host record),
    /// `version`, `id`, `issuedAt`, and `identitySelector` when `selector` is given.
    ///
    /// # Errors
    ///
    /// * [`ClientError::Rejected`]: the server refused (e.g. `BTP_ERROR_IDENTITY_NOT_FOUND`);
    /// * [`ClientError::Unsigned`], [`ClientError::BadSignature`]: the reply is not signed
    ///   properly, or by another domain than the identity's;
    /// * [`ClientError::Invalid`]: the reply document is not a key document, or is for
    ///   another selector than asked;
    /// * transport and DNS errors as [`request`](Self::request).
    pub async fn lookup_identity(
        &self,
        identity: &Identity,
        selector: Option<&Selector>,
    ) -> Result<PublicKey> {
        let addr = self.server_for(identity).await?;
        let host_selector = match self.inner.dns.host(identity.domain()).await {
            Ok(host) => host.selector.clone(),
            Err(e) if e.is_not_found() && self.has_override(identity.domain()) => {
                selector.map_or_else(|| "btps1".to_owned(), |s| s.as_str().to_owned())
            }
            Err(e) => return Err(e.into()),
        };
        let from = self
            .inner
            .config
            .requester
            .as_ref()
            .unwrap_or(identity)
            .as_str();
        let mut lookup = Object::with_capacity(7)
            .with("identity", identity.as_str())
            .with("from", from)
            .with("hostSelector", host_selector)
            .with("version", "1.0.0")
            .with("id", util::new_id()?)
            .with("issuedAt", util::now().to_datetime_string());
        if let Some(s) = selector {
            lookup.insert("identitySelector", s.as_str());
        }
        let reply = self
            .request(&addr, &lookup, RequestOptions::idempotent().signed())
            .await?
            .into_result()?;
        let signed_by = reply.signed_by().ok_or(ClientError::Unsigned)?;
        if !signed_by.domain().eq_ignore_ascii_case(identity.domain()) {
            return Err(ClientError::BadSignature(
                btps_crypto::CryptoError::ArtifactMember(
                    "signedBy (another domain than the looked-up identity)",
                ),
            ));
        }
        let document = reply
            .document()
            .ok_or_else(|| ClientError::Invalid("identity lookup reply without document".into()))?;
        let doc = IdentityKeyDocument::validate(document)?;
        if let Some(s) = selector
            && doc.selector != s.as_str()
        {
            return Err(ClientError::Invalid(format!(
                "identity lookup answered selector {:?}, asked {s}",
                doc.selector
            )));
        }
        Ok(PublicKey::from_pem(doc.public_key)?)
    }

    fn has_override(&self, domain: &str) -> bool {
        self.inner
            .config
            .overrides
            .contains_key(&domain.to_ascii_lowercase())
    }

    /// The key of `identity` at `selector` from DNS; only when DNS says the record does
    /// not exist (NXDOMAIN / NODATA) is the identity's server asked with
    /// [`lookup_identity`](Self::lookup_identity) (PROTOCOL.md §3.6). Temporary DNS
    /// failures are returned as they are, never answered by a lookup.
    ///
    /// # Errors
    ///
    /// [`ClientError::Dns`] (several distinct keys at the name included), or the errors of
    /// [`lookup_identity`](Self::lookup_identity).
    pub async fn resolve_key(&self, identity: &Identity, selector: &Selector) -> Result<PublicKey> {
        match self
            .inner
            .dns
            .encryption_key(identity, selector.as_str())
            .await
        {
            Ok(key) => Ok(key),
            Err(e) if e.is_not_found() => {
                tracing::debug!(%identity, %selector, "no key in DNS: asking the identity's server");
                self.lookup_identity(identity, Some(selector)).await
            }
            Err(e) => Err(e.into()),
        }
    }
}
