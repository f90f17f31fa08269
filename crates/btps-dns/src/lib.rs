//! BTPS DNS ([PROTOCOL.md §6]): host records, identity keys and device-delegation records,
//! resolved through a [`TxtResolver`] and kept in a TTL cache.
//!
//! Layers, bottom up:
//!
//! * [`TxtResolver`] — raw TXT answers with their TTL, or a [`LookupError`]:
//!   [`HickoryResolver`] (DNS over UDP with TCP fallback; system configuration or explicit
//!   `ip:port` nameservers; timeouts, attempts, [`DnssecMode`]) and [`StaticTable`] (a JSON
//!   table in the `vectors/dns.json` format, for offline use, demos and tests);
//! * [`parse_host`], [`parse_keys`], [`parse_delegation_list`] — pure parsing of an answer
//!   into typed records by the §6.2 rules (every record separately, padding kept, unknown
//!   tags ignored, several usable records handled per use);
//! * [`DnsCache`] — typed lookups ([`DnsCache::host`], [`DnsCache::identity_keys`],
//!   [`DnsCache::encryption_key`], [`DnsCache::check_device`], [`DnsCache::resolve_keys`])
//!   over parsed-record caching with clamped TTLs ([`CacheConfig`]), negative caching,
//!   coalesced concurrent lookups and refresh-ahead, on an injected [`Clock`];
//! * [`inspect_identity`] and the zone-record builders ([`identity_zone_records`], …) behind
//!   the `btps dns` commands.
//!
//! Every failure is a [`DnsError`]; [`DnsError::failure`] says whether it is
//! [`Failure::Temporary`] (retry: `BTP_ERROR_DNS_UNAVAILABLE`) or [`Failure::Permanent`],
//! and [`DnsError::error_code`] gives the wire code.
//!
//! ```
//! use btps_dns::{DnsCache, StaticTable};
//! use btps_types::Identity;
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let table = StaticTable::from_json(r#"{
//!     "_btps.host.example.com": ["v=1.0.0;u=btps.example.com:3443;s=btps1"],
//!     "btps1._btps.identity.billing.example.com": ["v=1.0.0;k=ed25519;p=MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="]
//! }"#).unwrap();
//! let dns = DnsCache::new(table);
//! let id = Identity::parse("billing$example.com").unwrap();
//! let selector = dns.host(id.domain()).await.unwrap().selector.clone();
//! let keys = dns.identity_keys(&id, &selector).await.unwrap();
//! assert_eq!(keys.len(), 1);
//! # });
//! ```
//!
//! This crate does not verify signatures (that is `btps-crypto`, given the keys resolved
//! here), does not publish records to DNS servers (it prints them), and does not talk to
//! BTPS servers.
//!
//! [PROTOCOL.md §6]: https://btps.invalid/PROTOCOL.md#6-dns
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cache;
mod clock;
mod error;
mod inspect;
mod parse;
mod publish;
mod resolver;

pub use cache::{CacheConfig, CacheStats, DeviceCheck, DnsCache};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{DnsError, Failure, RecordKind, Result, RevokedReason};
pub use inspect::{IdentityReport, SelectorSource, error_json, inspect_identity};
pub use parse::{parse_delegation_list, parse_host, parse_keys};
pub use publish::{
    DEFAULT_RECORD_TTL, ZoneRecord, delegation_list_zone_record, device_zone_record,
    host_zone_record, identity_zone_record, identity_zone_records,
};
pub use resolver::{
    Absence, DnssecMode, HickoryConfig, HickoryResolver, LookupError, StaticTable, TxtAnswer,
    TxtRecord, TxtResolver,
};
