//! The TXT records an identity publishes (PROTOCOL.md §6.1, §6.6), in zone-file syntax:
//! what `btps dns records` prints.

use std::fmt;

use btps_crypto::{KeyType, PublicKey};
use btps_types::Identity;
use btps_types::record::{
    DelegationListRecord, HostRecord, KeyRecord, KeyType as TagKeyType,
    delegation_list_record_name, device_record_name, host_record_name, identity_record_name,
    parse_server_address, split_character_strings,
};

use crate::error::{DnsError, RecordKind};

/// The TTL of published records unless told otherwise: 300 s (PROTOCOL.md §6.5 caps caches
/// at 300 s; §6.6 recommends 60–300 s for delegation records).
pub const DEFAULT_RECORD_TTL: u32 = 300;

/// One TXT record to publish.
///
/// Displayed in zone-file syntax, on one line, with the text split into quoted
/// character-strings of at most 255 bytes:
///
/// ```
/// use btps_dns::ZoneRecord;
/// let r = ZoneRecord::new("_btps.host.example.com", 300, "v=1.0.0;u=btps.example.com:3443;s=btps1");
/// assert_eq!(
///     r.to_string(),
///     r#"_btps.host.example.com. 300 IN TXT "v=1.0.0;u=btps.example.com:3443;s=btps1""#
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneRecord {
    /// The owner name, without the trailing dot.
    pub name: String,
    /// TTL in seconds.
    pub ttl: u32,
    /// The record text (joined).
    pub text: String,
}

impl ZoneRecord {
    /// A record.
    pub fn new(name: impl Into<String>, ttl: u32, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ttl,
            text: text.into(),
        }
    }

    /// The text split into character-strings of at most 255 bytes.
    pub fn character_strings(&self) -> Vec<&str> {
        split_character_strings(&self.text, 255)
    }
}

impl fmt::Display for ZoneRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}. {} IN TXT", self.name, self.ttl)?;
        for s in self.character_strings() {
            f.write_str(" \"")?;
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        }
        Ok(())
    }
}

fn key_record(key: &PublicKey) -> KeyRecord {
    let key_type = match key.key_type() {
        KeyType::Rsa => TagKeyType::Rsa,
        KeyType::Ed25519 => TagKeyType::Ed25519,
        other => TagKeyType::Other(other.as_str().to_owned()),
    };
    KeyRecord::new(key_type, key.to_base64_spki())
}

fn label(kind: RecordKind, text: &str) -> Result<(), DnsError> {
    if btps_types::is_selector(text) {
        Ok(())
    } else {
        Err(DnsError::InvalidName {
            kind,
            name: text.to_owned(),
            reason: "not one DNS label of letters, digits, '-' and '_'".to_owned(),
        })
    }
}

/// `_btps.host.<domain> TXT "v=1.0.0;u=<host>:<port>;s=<selector>"`.
pub fn host_zone_record(domain: &str, host: &HostRecord, ttl: u32) -> ZoneRecord {
    ZoneRecord::new(host_record_name(domain), ttl, host.to_txt())
}

/// `<selector>._btps.identity.<account>.<domain> TXT "v=1.0.0;k=<type>;p=<base64 SPKI>"`.
///
/// # Errors
///
/// [`DnsError::InvalidName`] when `selector` is not a selector.
pub fn identity_zone_record(
    identity: &Identity,
    selector: &str,
    key: &PublicKey,
    ttl: u32,
) -> Result<ZoneRecord, DnsError> {
    label(RecordKind::IdentityKey, selector)?;
    Ok(ZoneRecord::new(
        identity_record_name(selector, identity),
        ttl,
        key_record(key).to_txt(),
    ))
}

/// `_btps.delegation.<account>.<domain> TXT "v=1.0.0;d=<id>,<id>…"` (PROTOCOL.md §6.6).
///
/// # Errors
///
/// [`DnsError::InvalidName`] when a device id is not one DNS label.
pub fn delegation_list_zone_record<S: AsRef<str>>(
    identity: &Identity,
    device_ids: &[S],
    ttl: u32,
) -> Result<ZoneRecord, DnsError> {
    for id in device_ids {
        label(RecordKind::DelegationList, id.as_ref())?;
    }
    let list = DelegationListRecord::new(device_ids.iter().map(|d| d.as_ref().to_owned()));
    Ok(ZoneRecord::new(
        delegation_list_record_name(identity),
        ttl,
        list.to_txt(),
    ))
}

/// `<deviceId>._btps.device.<account>.<domain> TXT "v=1.0.0;k=<type>;p=<base64 SPKI>"`
/// (PROTOCOL.md §6.6).
///
/// # Errors
///
/// [`DnsError::InvalidName`] when `device_id` is not one DNS label.
pub fn device_zone_record(
    identity: &Identity,
    device_id: &str,
    key: &PublicKey,
    ttl: u32,
) -> Result<ZoneRecord, DnsError> {
    label(RecordKind::DeviceKey, device_id)?;
    Ok(ZoneRecord::new(
        device_record_name(device_id, identity),
        ttl,
        key_record(key).to_txt(),
    ))
}

/// The records an identity publishes: its domain's host record (server `server`, current
/// selector `selector`) and its key at `selector`. `server` is `host`, `host:port` or
/// `btps://host:port` (PROTOCOL.md §2.2; port 3443 when absent).
///
/// # Errors
///
/// [`DnsError::InvalidName`] for an unusable server address or selector.
///
/// # Examples
///
/// ```
/// use btps_crypto::KeyPair;
/// use btps_dns::identity_zone_records;
/// use btps_types::Identity;
/// let key = KeyPair::generate_ed25519().unwrap();
/// let id = Identity::parse("billing$example.com").unwrap();
/// let records = identity_zone_records(&id, key.public_key(), "btps1", "btps.example.com", 300).unwrap();
/// assert_eq!(records[0].text, "v=1.0.0;u=btps.example.com:3443;s=btps1");
/// assert!(records[1].text.starts_with("v=1.0.0;k=ed25519;p=MCowBQYDK2VwAyEA"));
/// ```
pub fn identity_zone_records(
    identity: &Identity,
    key: &PublicKey,
    selector: &str,
    server: &str,
    ttl: u32,
) -> Result<Vec<ZoneRecord>, DnsError> {
    label(RecordKind::IdentityKey, selector)?;
    let (host, port) = parse_server_address(server).map_err(|e| DnsError::InvalidName {
        kind: RecordKind::Host,
        name: server.to_owned(),
        reason: e.to_string(),
    })?;
    let host = HostRecord::new(host, port, selector);
    Ok(vec![
        host_zone_record(identity.domain(), &host, ttl),
        identity_zone_record(identity, selector, key, ttl)?,
    ])
}

#[cfg(test)]
mod tests {
    use btps_crypto::KeyPair;

    use super::*;

    #[test]
    fn zone_syntax() {
        let r = ZoneRecord::new("a.example", 60, format!("x\"y\\z{}", "A".repeat(300)));
        let s = r.to_string();
        assert!(s.starts_with(r#"a.example. 60 IN TXT "x\"y\\zA"#), "{s}");
        assert_eq!(s.matches("\" \"").count(), 1, "two quoted strings: {s}");
        assert_eq!(r.character_strings().len(), 2);
    }

    #[test]
    fn records() {
        let id = Identity::parse("Billing$Example.com").unwrap();
        let key = KeyPair::generate_ed25519().unwrap();
        let recs =
            identity_zone_records(&id, key.public_key(), "btps2", "[::1]:4443", 120).unwrap();
        assert_eq!(recs[0].name, "_btps.host.example.com");
        assert_eq!(recs[0].text, "v=1.0.0;u=[::1]:4443;s=btps2");
        assert_eq!(recs[1].name, "btps2._btps.identity.billing.example.com");
        assert!(identity_zone_records(&id, key.public_key(), "a.b", "h.example", 1).is_err());
        assert!(identity_zone_records(&id, key.public_key(), "s", "h.example:0", 1).is_err());
        let list = delegation_list_zone_record(&id, &["btps_ag_1", "btps_ag_2"], 60).unwrap();
        assert_eq!(list.text, "v=1.0.0;d=btps_ag_1,btps_ag_2");
        assert!(delegation_list_zone_record(&id, &["a,b"], 60).is_err());
        let dev = device_zone_record(&id, "btps_ag_1", key.public_key(), 60).unwrap();
        assert_eq!(dev.name, "btps_ag_1._btps.device.billing.example.com");
        assert!(dev.text.starts_with("v=1.0.0;k=ed25519;p="));
    }
}
