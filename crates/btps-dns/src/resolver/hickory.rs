//! [`HickoryResolver`]: TXT lookups over DNS with hickory-resolver.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError, NoRecords};
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};

use crate::error::DnsError;
use crate::resolver::{Absence, LookupError, TxtAnswer, TxtRecord, TxtResolver, check_name};

/// DNSSEC handling (PROTOCOL.md §6.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DnssecMode {
    /// No validation (the default).
    #[default]
    Off,
    /// Validate; a bogus answer is logged (`tracing` warning) and the unvalidated answer
    /// is used, as without DNSSEC. Insecure (unsigned) answers are used as they are.
    Prefer,
    /// Validate; bogus or insecure answers are treated as not found
    /// ([`Absence::DnssecBogus`], [`Absence::DnssecInsecure`]).
    Require,
}

impl DnssecMode {
    /// `off`, `prefer` or `require`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Prefer => "prefer",
            Self::Require => "require",
        }
    }
}

impl fmt::Display for DnssecMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DnssecMode {
    type Err = DnsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Self::Off),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            other => Err(DnsError::Config(format!(
                "DNSSEC mode {other:?} (expected off, prefer or require)"
            ))),
        }
    }
}

/// Settings of a [`HickoryResolver`]. Defaults follow PROTOCOL.md §6.5: the system's
/// nameservers, 5 s per query, 2 attempts, DNSSEC off.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use btps_dns::{DnssecMode, HickoryConfig};
/// let mut config = HickoryConfig::with_nameservers(["127.0.0.1:5353".parse().unwrap()]);
/// config.timeout = Duration::from_secs(2);
/// config.dnssec = DnssecMode::Prefer;
/// assert_eq!(config.attempts, 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HickoryConfig {
    /// Nameservers as `ip:port`, each asked over UDP with TCP fallback (truncated answers
    /// are retried over TCP). Empty: the system configuration (`/etc/resolv.conf` on Unix).
    pub nameservers: Vec<SocketAddr>,
    /// Timeout of one query attempt.
    pub timeout: Duration,
    /// How many times a query is sent in all before giving up (at least 1): a timeout,
    /// SERVFAIL or REFUSED is retried, NXDOMAIN and NODATA are not.
    pub attempts: usize,
    /// DNSSEC validation.
    pub dnssec: DnssecMode,
    /// A file of DNSKEY records to use as DNSSEC trust anchors instead of the built-in root
    /// keys (for private DNSSEC deployments).
    pub trust_anchor: Option<PathBuf>,
}

impl Default for HickoryConfig {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            timeout: Duration::from_secs(5),
            attempts: 2,
            dnssec: DnssecMode::Off,
            trust_anchor: None,
        }
    }
}

impl HickoryConfig {
    /// The system's nameservers with the default settings.
    pub fn system() -> Self {
        Self::default()
    }

    /// These nameservers with the default settings.
    pub fn with_nameservers(nameservers: impl IntoIterator<Item = SocketAddr>) -> Self {
        Self {
            nameservers: nameservers.into_iter().collect(),
            ..Self::default()
        }
    }
}

/// TXT lookups over DNS with hickory-resolver (tokio).
///
/// Hickory's own answer cache is disabled: [`crate::DnsCache`] is the one cache, with the
/// clamping, negative caching and refresh rules of PROTOCOL.md §6.5. Names are queried as
/// fully qualified (no search list). `/etc/hosts` is not consulted.
///
/// DNSSEC limits (hickory-resolver 0.26): validation needs a validating path to the zone's
/// trust anchor through the configured nameservers (they must return DNSSEC records), and
/// negative answers carry no TTL when validating (the default negative TTL is used). See
/// `docs/dns.md`.
pub struct HickoryResolver {
    resolver: TokioResolver,
    /// With [`DnssecMode::Prefer`]: the non-validating resolver used after a bogus answer.
    fallback: Option<TokioResolver>,
    mode: DnssecMode,
}

impl fmt::Debug for HickoryResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HickoryResolver")
            .field("dnssec", &self.mode)
            .finish_non_exhaustive()
    }
}

impl HickoryResolver {
    /// Builds a resolver. Its lookups use tokio sockets and timers: run them on a tokio
    /// runtime (with I/O and time enabled).
    ///
    /// # Errors
    ///
    /// [`DnsError::Config`] when the system configuration cannot be read (no nameservers
    /// given), the trust anchor file cannot be loaded, or hickory refuses the settings.
    pub fn new(config: &HickoryConfig) -> Result<Self, DnsError> {
        let trust_anchor = match &config.trust_anchor {
            Some(path) => Some(Arc::new(TrustAnchors::from_file(path).map_err(|e| {
                DnsError::Config(format!("trust anchor {}: {e}", path.display()))
            })?)),
            None => None,
        };
        let validate = config.dnssec != DnssecMode::Off;
        let resolver = build(config, validate, trust_anchor.clone())?;
        let fallback = match config.dnssec {
            DnssecMode::Prefer => Some(build(config, false, None)?),
            DnssecMode::Off | DnssecMode::Require => None,
        };
        Ok(Self {
            resolver,
            fallback,
            mode: config.dnssec,
        })
    }

    /// The DNSSEC mode.
    pub fn dnssec(&self) -> DnssecMode {
        self.mode
    }

    /// One query: the answer and whether every TXT record in it validated as secure.
    async fn query(resolver: &TokioResolver, name: &Name) -> Result<(TxtAnswer, bool), QueryError> {
        let result = resolver.lookup(name.clone(), RecordType::TXT).await;
        // Our cache is the only cache: drop whatever hickory kept.
        resolver.clear_lookup_cache(name.clone(), RecordType::TXT);
        let lookup = result.map_err(QueryError::from_net)?;
        let mut records = Vec::new();
        let mut ttl = u32::MAX;
        let mut secure = true;
        for record in lookup.answers() {
            if let RData::TXT(txt) = &record.data {
                records.push(TxtRecord::new(txt.txt_data.iter().cloned()));
                ttl = ttl.min(record.ttl);
                secure &= record.proof == Proof::Secure;
            }
        }
        if records.is_empty() {
            // Answers of other types only (a CNAME chain ending without TXT).
            return Ok((
                TxtAnswer::NotFound {
                    absence: Absence::NoData,
                    negative_ttl: None,
                },
                secure,
            ));
        }
        Ok((TxtAnswer::Records { records, ttl }, secure))
    }
}

fn build(
    config: &HickoryConfig,
    validate: bool,
    trust_anchor: Option<Arc<TrustAnchors>>,
) -> Result<TokioResolver, DnsError> {
    let mut builder = if config.nameservers.is_empty() {
        TokioResolver::builder_tokio()
            .map_err(|e| DnsError::Config(format!("system DNS configuration: {e}")))?
    } else {
        let servers = config
            .nameservers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.timeout = config.timeout;
    // Hickory counts retries after the first try.
    opts.attempts = config.attempts.max(1) - 1;
    opts.cache_size = 0;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.validate = validate;
    opts.edns0 = true;
    // Ask the servers one after the other: with one server this changes nothing, with
    // several it keeps the query count predictable.
    opts.num_concurrent_reqs = 1;
    if let Some(anchor) = trust_anchor {
        builder = builder.with_trust_anchor(anchor);
    }
    builder
        .build()
        .map_err(|e| DnsError::Config(format!("DNS resolver: {e}")))
}

/// What one hickory query gave, before the DNSSEC mode is applied.
enum QueryError {
    Lookup(LookupError),
    NotFound {
        absence: Absence,
        negative_ttl: Option<u32>,
    },
    Bogus,
}

impl QueryError {
    fn from_net(e: NetError) -> Self {
        match e {
            NetError::Dns(HickoryDnsError::NoRecordsFound(NoRecords {
                response_code,
                negative_ttl,
                ..
            })) => Self::NotFound {
                absence: absence_of(response_code),
                negative_ttl,
            },
            NetError::Dns(HickoryDnsError::Nsec {
                response, proof, ..
            }) => {
                if proof == Proof::Bogus {
                    Self::Bogus
                } else {
                    Self::NotFound {
                        absence: absence_of(response.response_code),
                        negative_ttl: None,
                    }
                }
            }
            NetError::Dns(HickoryDnsError::DnssecBogus) => Self::Bogus,
            NetError::Dns(HickoryDnsError::ResponseCode(code)) => Self::Lookup(match code {
                ResponseCode::ServFail => LookupError::ServFail,
                ResponseCode::Refused => LookupError::Refused,
                other => LookupError::ResponseCode(other.to_string()),
            }),
            NetError::Timeout => Self::Lookup(LookupError::Timeout),
            NetError::Io(e) => Self::Lookup(LookupError::Network(e.to_string())),
            NetError::NoConnections | NetError::Busy | NetError::Truncated => {
                Self::Lookup(LookupError::Network(e.to_string()))
            }
            other => Self::Lookup(LookupError::Other(other.to_string())),
        }
    }
}

fn absence_of(code: ResponseCode) -> Absence {
    if code == ResponseCode::NXDomain {
        Absence::NxDomain
    } else {
        Absence::NoData
    }
}

#[async_trait::async_trait]
impl TxtResolver for HickoryResolver {
    async fn lookup_txt(&self, name: &str) -> Result<TxtAnswer, LookupError> {
        check_name(name).map_err(LookupError::InvalidName)?;
        let mut fqdn = String::with_capacity(name.len() + 1);
        fqdn.push_str(name);
        if !fqdn.ends_with('.') {
            fqdn.push('.');
        }
        let name = Name::from_ascii(&fqdn).map_err(|e| LookupError::InvalidName(e.to_string()))?;
        match Self::query(&self.resolver, &name).await {
            Ok((answer, secure)) => {
                if self.mode == DnssecMode::Require
                    && !secure
                    && matches!(answer, TxtAnswer::Records { .. })
                {
                    Ok(TxtAnswer::NotFound {
                        absence: Absence::DnssecInsecure,
                        negative_ttl: None,
                    })
                } else {
                    Ok(answer)
                }
            }
            Err(QueryError::Lookup(e)) => Err(e),
            Err(QueryError::NotFound {
                absence,
                negative_ttl,
            }) => Ok(TxtAnswer::NotFound {
                absence,
                negative_ttl,
            }),
            Err(QueryError::Bogus) => {
                let (DnssecMode::Prefer, Some(fallback)) = (self.mode, &self.fallback) else {
                    return Ok(TxtAnswer::NotFound {
                        absence: Absence::DnssecBogus,
                        negative_ttl: None,
                    });
                };
                tracing::warn!(%name, "DNSSEC validation failed (bogus); using the unvalidated answer");
                match Self::query(fallback, &name).await {
                    Ok((answer, _)) => Ok(answer),
                    Err(QueryError::Lookup(e)) => Err(e),
                    Err(QueryError::NotFound {
                        absence,
                        negative_ttl,
                    }) => Ok(TxtAnswer::NotFound {
                        absence,
                        negative_ttl,
                    }),
                    Err(QueryError::Bogus) => Ok(TxtAnswer::NotFound {
                        absence: Absence::DnssecBogus,
                        negative_ttl: None,
                    }),
                }
            }
        }
    }
}
