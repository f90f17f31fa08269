//! [`inspect_identity`]: what `btps dns resolve` shows — an identity's host record and key,
//! straight from a resolver (no cache), with the published TTLs.

use std::fmt;

use btps_crypto::{KeyPolicy, PublicKey};
use btps_types::Identity;
use btps_types::record::{HostRecord, host_record_name, identity_record_name};
use serde_json::json;

use crate::error::{DnsError, RecordKind};
use crate::parse::{parse_host, parse_keys};
use crate::resolver::{TxtAnswer, TxtResolver};

/// Where the selector of an [`IdentityReport`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SelectorSource {
    /// The host record's `s=` (the domain's current selector).
    HostRecord,
    /// Given by the caller.
    Given,
}

/// An identity's published DNS records, resolved and checked.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct IdentityReport {
    /// The identity.
    pub identity: Identity,
    /// `_btps.host.<domain>`.
    pub host_name: String,
    /// The usable host record.
    pub host: HostRecord,
    /// Its TTL in seconds.
    pub host_ttl: u32,
    /// The selector whose key was resolved.
    pub selector: String,
    /// Where that selector came from.
    pub selector_source: SelectorSource,
    /// `<selector>._btps.identity.<account>.<domain>`.
    pub key_name: String,
    /// The usable keys at that name (several during a rollover, PROTOCOL.md §6.2).
    pub keys: Vec<PublicKey>,
    /// Their TTL in seconds.
    pub key_ttl: u32,
}

/// Resolves `identity`'s host record and its key at `selector` (default: the host
/// record's current selector), without caching.
///
/// # Errors
///
/// The first [`DnsError`]: host record (`BTP_ERROR_RESOLVE_DNS`), then key
/// (`BTP_ERROR_RESOLVE_PUBKEY`), or a temporary failure (`BTP_ERROR_DNS_UNAVAILABLE`).
pub async fn inspect_identity(
    resolver: &dyn TxtResolver,
    identity: &Identity,
    selector: Option<&str>,
    policy: KeyPolicy,
) -> Result<IdentityReport, DnsError> {
    let host_name = host_record_name(identity.domain());
    let answer = lookup(resolver, RecordKind::Host, &host_name).await?;
    let host = parse_host(&host_name, &answer)?;
    let host_ttl = ttl_of(&answer);
    let (selector, selector_source) = match selector {
        Some(s) => (s.to_owned(), SelectorSource::Given),
        None => (host.selector.clone(), SelectorSource::HostRecord),
    };
    if !btps_types::is_selector(&selector) {
        return Err(DnsError::InvalidName {
            kind: RecordKind::IdentityKey,
            name: selector,
            reason: "not one DNS label of letters, digits, '-' and '_'".to_owned(),
        });
    }
    let key_name = identity_record_name(&selector, identity);
    let answer = lookup(resolver, RecordKind::IdentityKey, &key_name).await?;
    let keys = parse_keys(RecordKind::IdentityKey, &key_name, &answer, policy)?;
    Ok(IdentityReport {
        identity: identity.clone(),
        host_name,
        host,
        host_ttl,
        selector,
        selector_source,
        key_name,
        keys,
        key_ttl: ttl_of(&answer),
    })
}

async fn lookup(
    resolver: &dyn TxtResolver,
    kind: RecordKind,
    name: &str,
) -> Result<TxtAnswer, DnsError> {
    if let Err(reason) = crate::resolver::check_name(name) {
        return Err(DnsError::InvalidName {
            kind,
            name: name.to_owned(),
            reason,
        });
    }
    resolver
        .lookup_txt(name)
        .await
        .map_err(|e| DnsError::from_lookup(kind, name, e))
}

fn ttl_of(answer: &TxtAnswer) -> u32 {
    match answer {
        TxtAnswer::Records { ttl, .. } => *ttl,
        TxtAnswer::NotFound { negative_ttl, .. } => negative_ttl.unwrap_or(0),
    }
}

impl IdentityReport {
    /// The report as pretty-printed JSON (the CLI's `--json`):
    /// `{"identity", "host": {"name", "ttl", "address", "host", "port", "selector"},
    /// "selector", "selectorSource", "key": {"name", "ttl", "keys": [{"type", "bits",
    /// "fingerprint", "publicKey"}]}}`.
    pub fn to_json(&self) -> String {
        let keys: Vec<_> = self
            .keys
            .iter()
            .map(|k| {
                json!({
                    "type": k.key_type().as_str(),
                    "bits": k.bits(),
                    "fingerprint": k.fingerprint(),
                    "publicKey": k.to_base64_spki(),
                })
            })
            .collect();
        let value = json!({
            "identity": self.identity.as_str(),
            "host": {
                "name": self.host_name,
                "ttl": self.host_ttl,
                "address": self.host.address(),
                "host": self.host.host.to_string(),
                "port": self.host.port,
                "selector": self.host.selector,
            },
            "selector": self.selector,
            "selectorSource": match self.selector_source {
                SelectorSource::HostRecord => "host",
                SelectorSource::Given => "argument",
            },
            "key": {
                "name": self.key_name,
                "ttl": self.key_ttl,
                "keys": keys,
            },
        });
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }
}

impl fmt::Display for IdentityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match self.selector_source {
            SelectorSource::HostRecord => "current selector from the host record",
            SelectorSource::Given => "given selector",
        };
        writeln!(f, "identity      {}", self.identity)?;
        writeln!(
            f,
            "host record   {} (TTL {} s)",
            self.host_name, self.host_ttl
        )?;
        writeln!(f, "  server      {}", self.host.address())?;
        writeln!(f, "  selector    {}", self.host.selector)?;
        writeln!(
            f,
            "key record    {} (TTL {} s; {source})",
            self.key_name, self.key_ttl
        )?;
        for key in &self.keys {
            writeln!(f, "  key type    {} ({} bits)", key.key_type(), key.bits())?;
            writeln!(f, "  fingerprint {}", key.fingerprint())?;
        }
        Ok(())
    }
}

/// A failure as pretty-printed JSON (the CLI's `--json`):
/// `{"error": {"code", "status", "temporary", "message"}}`.
pub fn error_json(error: &DnsError) -> String {
    let code = error.error_code();
    let value = json!({
        "error": {
            "code": code.as_str(),
            "status": code.status(),
            "temporary": error.is_temporary(),
            "message": error.to_string(),
        }
    });
    serde_json::to_string_pretty(&value).unwrap_or_default()
}
