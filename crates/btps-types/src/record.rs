//! DNS record names and TXT record parsing ([PROTOCOL.md §6.1–§6.2], server address §2.2).
//!
//! | Record | Name | Content |
//! |---|---|---|
//! | [`HostRecord`] | `_btps.host.<domain>` | `v=1.0.0;u=<host[:port]>;s=<selector>` |
//! | [`KeyRecord`] (identity key) | `<selector>._btps.identity.<account>.<domain>` | `v=1.0.0;k=rsa;p=<base64 SPKI DER>` |
//! | [`DelegationListRecord`] | `_btps.delegation.<account>.<domain>` | `v=1.0.0;d=<deviceId>,...` |
//! | [`KeyRecord`] (device key) | `<deviceId>._btps.device.<account>.<domain>` | `v=1.0.0;k=rsa\|ed25519;p=...` |
//!
//! Every TXT record at a name is parsed **separately** (a second record never corrupts the
//! first): concatenate the record's character-strings ([`join_character_strings`]), then parse
//! the tags ([`TxtTags`]). Values are split at the **first** `=`, so padded base64 keys
//! survive (**deviation** from btps-node, which drops them).
//!
//! This module only parses. Whether `p` is a valid SubjectPublicKeyInfo of the type `k` names
//! is for the crypto crate to decide.
//!
//! [PROTOCOL.md §6.1–§6.2]: https://btps.invalid/PROTOCOL.md#61-records

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use base64::Engine as _;

use crate::Identity;
use crate::identity::is_selector;

/// The default BTPS port (PROTOCOL.md §2.2).
pub const DEFAULT_PORT: u16 = 3443;

/// The version string Rust publishers write in every record (`v=1.0.0`).
pub const RECORD_VERSION: &str = "1.0.0";

/// Why a TXT record is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// A required tag is absent.
    #[error("the record has no `{0}=` tag")]
    MissingTag(&'static str),
    /// A required tag is present but empty.
    #[error("the `{0}=` tag is empty")]
    EmptyTag(&'static str),
    /// `u` is not a usable server address.
    #[error("`u={value}` is not a usable server address: {reason}")]
    InvalidAddress {
        /// The `u` value (shortened when long).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `s` is not a selector (one DNS label of letters, digits, `-` and `_`).
    #[error("`s={0}` is not a selector (a DNS label of letters, digits, '-' and '_')")]
    InvalidSelector(String),
    /// `p` is not strict standard base64 with padding.
    #[error("`p=` is not standard base64 with padding")]
    InvalidBase64,
    /// The character-strings of the record are not UTF-8.
    #[error("the record is not UTF-8 text")]
    NotUtf8,
}

// ---------------------------------------------------------------------------------------------
// Record names
// ---------------------------------------------------------------------------------------------

/// `_btps.host.<domain>` (domain lower-cased).
///
/// # Examples
///
/// ```
/// assert_eq!(btps_types::record::host_record_name("VendorCorp.com"), "_btps.host.vendorcorp.com");
/// ```
pub fn host_record_name(domain: &str) -> String {
    format!("_btps.host.{}", domain.to_lowercase())
}

/// `<selector>._btps.identity.<account>.<domain>` (account and domain lower-cased; an account
/// with dots becomes several labels).
///
/// # Examples
///
/// ```
/// use btps_types::{Identity, record::identity_record_name};
/// let id = Identity::parse("Billing$VendorCorp.com").unwrap();
/// assert_eq!(identity_record_name("btps1", &id), "btps1._btps.identity.billing.vendorcorp.com");
/// ```
pub fn identity_record_name(selector: &str, identity: &Identity) -> String {
    format!("{selector}._btps.identity.{}", owner_labels(identity))
}

/// `_btps.delegation.<account>.<domain>` (PROTOCOL.md §6.6 extension).
pub fn delegation_list_record_name(identity: &Identity) -> String {
    format!("_btps.delegation.{}", owner_labels(identity))
}

/// `<deviceId>._btps.device.<account>.<domain>` (PROTOCOL.md §6.6 extension).
pub fn device_record_name(device_id: &str, identity: &Identity) -> String {
    format!("{device_id}._btps.device.{}", owner_labels(identity))
}

fn owner_labels(identity: &Identity) -> String {
    let mut s = identity.account().to_lowercase();
    s.push('.');
    s.push_str(&identity.domain().to_lowercase());
    s
}

// ---------------------------------------------------------------------------------------------
// Character-strings and tags
// ---------------------------------------------------------------------------------------------

/// Joins the character-strings of **one** TXT record with no separator (PROTOCOL.md §6.2
/// step 1).
///
/// # Errors
///
/// [`RecordError::NotUtf8`] when the joined bytes are not UTF-8.
pub fn join_character_strings<S: AsRef<[u8]>>(strings: &[S]) -> Result<String, RecordError> {
    let mut bytes = Vec::with_capacity(strings.iter().map(|s| s.as_ref().len()).sum());
    for s in strings {
        bytes.extend_from_slice(s.as_ref());
    }
    String::from_utf8(bytes).map_err(|_| RecordError::NotUtf8)
}

/// Splits `txt` into character-strings of at most `max` bytes (use 255, the DNS limit) for
/// publishing; the pieces concatenate back to `txt`.
///
/// Pieces end on UTF-8 character boundaries (record content is ASCII in practice); `max` is
/// raised to 4 if smaller so that every character fits.
///
/// # Examples
///
/// ```
/// use btps_types::record::split_character_strings;
/// let p = "A".repeat(600);
/// let parts = split_character_strings(&p, 255);
/// assert_eq!(parts.iter().map(|s| s.len()).collect::<Vec<_>>(), [255, 255, 90]);
/// assert_eq!(parts.concat(), p);
/// ```
pub fn split_character_strings(txt: &str, max: usize) -> Vec<&str> {
    let max = max.max(4);
    let mut out = Vec::with_capacity(txt.len() / max + 1);
    let mut rest = txt;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    if !rest.is_empty() || out.is_empty() {
        out.push(rest);
    }
    out
}

/// The `key=value` tags of one TXT record (PROTOCOL.md §6.2 step 2).
///
/// Split on `;`; each piece is trimmed of ASCII whitespace, skipped when empty, split on the
/// **first** `=` (pieces without `=` are skipped), and key and value are trimmed. Keys are
/// case-sensitive; a repeated key keeps its last value.
///
/// # Examples
///
/// ```
/// use btps_types::record::TxtTags;
/// let tags = TxtTags::parse(" v=1.0.0 ; k = rsa; p=QUJD==; junk ;p=QUJDRA==");
/// assert_eq!(tags.get("k"), Some("rsa"));
/// assert_eq!(tags.get("p"), Some("QUJDRA=="));
/// assert_eq!(tags.get("K"), None);
/// assert_eq!(tags.len(), 3);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxtTags<'a> {
    tags: Vec<(&'a str, &'a str)>,
}

impl<'a> TxtTags<'a> {
    /// Parses the (already joined) text of one TXT record.
    pub fn parse(txt: &'a str) -> Self {
        let mut tags: Vec<(&'a str, &'a str)> = Vec::with_capacity(4);
        for piece in txt.split(';') {
            let piece = piece.trim_ascii();
            if piece.is_empty() {
                continue;
            }
            let Some((key, value)) = piece.split_once('=') else {
                continue;
            };
            let (key, value) = (key.trim_ascii(), value.trim_ascii());
            match tags.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => tags.push((key, value)),
            }
        }
        Self { tags }
    }

    /// The value of tag `key` (case-sensitive).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.tags.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// Tags in first-seen order (each key once, with its last value).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> + '_ {
        self.tags.iter().copied()
    }

    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    /// Whether the record has no tags.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }
}

fn required<'a>(tags: &TxtTags<'a>, key: &'static str) -> Result<&'a str, RecordError> {
    match tags.get(key) {
        None => Err(RecordError::MissingTag(key)),
        Some("") => Err(RecordError::EmptyTag(key)),
        Some(v) => Ok(v),
    }
}

// ---------------------------------------------------------------------------------------------
// Host record
// ---------------------------------------------------------------------------------------------

/// The host part of a server address: a DNS name (lower-cased) or an IP address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ServerHost {
    /// A DNS host name, lower-cased.
    Domain(String),
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
}

impl fmt::Display for ServerHost {
    /// The name, or the address with IPv6 in brackets (`[::1]`), as in a URL authority.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(d) => f.write_str(d),
            Self::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Self::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// A host record `_btps.host.<domain>`: `v=1.0.0;u=<host[:port]>;s=<selector>`.
///
/// # Examples
///
/// ```
/// use btps_types::record::{HostRecord, ServerHost};
/// let r = HostRecord::parse("v=1.0.0;u=btps.VendorCorp.com;s=btps1").unwrap();
/// assert_eq!(r.host, ServerHost::Domain("btps.vendorcorp.com".into()));
/// assert_eq!(r.port, 3443);
/// assert_eq!(r.selector, "btps1");
/// assert_eq!(r.to_txt(), "v=1.0.0;u=btps.vendorcorp.com:3443;s=btps1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRecord {
    /// The `v` tag as published (not interpreted); `None` when absent.
    pub version: Option<String>,
    /// Server host from `u`.
    pub host: ServerHost,
    /// Server port from `u` ([`DEFAULT_PORT`] when absent or empty).
    pub port: u16,
    /// The selector currently used by identities of the domain (`s`).
    pub selector: String,
}

impl HostRecord {
    /// A record for publishing (`version` `1.0.0`).
    pub fn new(host: ServerHost, port: u16, selector: impl Into<String>) -> Self {
        Self {
            version: Some(RECORD_VERSION.to_owned()),
            host,
            port,
            selector: selector.into(),
        }
    }

    /// Parses the joined text of one TXT record. Usable only with `u` and `s`.
    ///
    /// `u` is parsed as a URL after prefixing `btps://` when it has no scheme (`host`,
    /// `host:port`, `[::1]:3443`, `btps://host:port`); the host name (or IP literal) and the
    /// port are used, anything else in the URL is ignored.
    ///
    /// # Errors
    ///
    /// [`RecordError`] naming the missing or unusable tag.
    pub fn parse(txt: &str) -> Result<Self, RecordError> {
        let tags = TxtTags::parse(txt);
        let u = required(&tags, "u")?;
        let s = required(&tags, "s")?;
        if !is_selector(s) {
            return Err(RecordError::InvalidSelector(shorten(s)));
        }
        let (host, port) = parse_server_address(u)?;
        Ok(Self {
            version: tags.get("v").map(str::to_owned),
            host,
            port,
            selector: s.to_owned(),
        })
    }

    /// The record text: always `v=1.0.0;u=<host>:<port>;s=<selector>`.
    pub fn to_txt(&self) -> String {
        format!(
            "v={RECORD_VERSION};u={}:{};s={}",
            self.host, self.port, self.selector
        )
    }

    /// `host:port` with IPv6 in brackets, ready for a socket address lookup.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Parses a server address the way a host record's `u` is read (PROTOCOL.md §2.2): prefix
/// `btps://` when there is no scheme, parse as a URL, take the host and the port (empty →
/// 3443).
///
/// # Errors
///
/// [`RecordError::InvalidAddress`].
///
/// # Examples
///
/// ```
/// use std::net::{IpAddr, Ipv6Addr};
/// use btps_types::record::{parse_server_address, ServerHost};
/// assert_eq!(
///     parse_server_address("[::1]:4443").unwrap(),
///     (ServerHost::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)), 4443)
/// );
/// ```
pub fn parse_server_address(u: &str) -> Result<(ServerHost, u16), RecordError> {
    let invalid = |reason: &str| RecordError::InvalidAddress {
        value: shorten(u),
        reason: reason.to_owned(),
    };
    let parsed = if u.contains("://") {
        url::Url::parse(u)
    } else {
        url::Url::parse(&format!("btps://{u}"))
    }
    .map_err(|e| invalid(&e.to_string()))?;
    let host = match parsed.host() {
        None => return Err(invalid("no host")),
        Some(url::Host::Domain("")) => return Err(invalid("empty host")),
        Some(url::Host::Ipv4(a)) => ServerHost::Ip(IpAddr::V4(a)),
        Some(url::Host::Ipv6(a)) => ServerHost::Ip(IpAddr::V6(a)),
        // Non-special schemes (`btps:`) keep the host opaque: recognise IPv4 ourselves.
        Some(url::Host::Domain(d)) => match d.parse::<Ipv4Addr>() {
            Ok(a) => ServerHost::Ip(IpAddr::V4(a)),
            Err(_) => ServerHost::Domain(d.to_ascii_lowercase()),
        },
    };
    // Explicit ports only: a scheme's own default (`https://h` → 443) is not a BTPS port,
    // as in the reference (`new URL(u).port || 3443`).
    let port = parsed.port().unwrap_or(DEFAULT_PORT);
    if port == 0 {
        return Err(invalid("port 0"));
    }
    Ok((host, port))
}

// ---------------------------------------------------------------------------------------------
// Key records
// ---------------------------------------------------------------------------------------------

/// The `k` tag of a key record (PROTOCOL.md §6.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum KeyType {
    /// `rsa`, also the default when `k` is absent.
    #[default]
    Rsa,
    /// `ed25519` (opt-in between Rust peers).
    Ed25519,
    /// Any other value, kept as published; such a record is unusable for btps-node peers.
    Other(String),
}

impl KeyType {
    /// Parses a `k` value (case-sensitive: `rsa`, `ed25519`, else [`KeyType::Other`]).
    pub fn from_tag(k: &str) -> Self {
        match k {
            "rsa" => Self::Rsa,
            "ed25519" => Self::Ed25519,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The `k` value.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Rsa => "rsa",
            Self::Ed25519 => "ed25519",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An identity key record (`<selector>._btps.identity.<account>.<domain>`) or a device key
/// record (`<deviceId>._btps.device.<account>.<domain>`): `v=1.0.0;k=rsa;p=<base64 SPKI DER>`.
///
/// # Examples
///
/// ```
/// use btps_types::record::{KeyRecord, KeyType};
/// let r = KeyRecord::parse("v=1.0.0; k=ed25519; p=MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=").unwrap();
/// assert_eq!(r.key_type, KeyType::Ed25519);
/// assert!(r.public_key.ends_with('='));
/// assert!(KeyRecord::parse("v=1.0.0;k=rsa;p=").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// The `v` tag as published (not interpreted); `None` when absent.
    pub version: Option<String>,
    /// The `k` tag ([`KeyType::Rsa`] when absent).
    pub key_type: KeyType,
    /// The bare base64 of the SPKI DER (`p`), non-empty and strictly decodable.
    pub public_key: String,
}

impl KeyRecord {
    /// A record for publishing (`version` `1.0.0`).
    pub fn new(key_type: KeyType, public_key: impl Into<String>) -> Self {
        Self {
            version: Some(RECORD_VERSION.to_owned()),
            key_type,
            public_key: public_key.into(),
        }
    }

    /// Parses the joined text of one TXT record.
    ///
    /// # Errors
    ///
    /// [`RecordError::MissingTag`] / [`RecordError::EmptyTag`] for `p`,
    /// [`RecordError::InvalidBase64`] when `p` does not decode.
    pub fn parse(txt: &str) -> Result<Self, RecordError> {
        let tags = TxtTags::parse(txt);
        let p = required(&tags, "p")?;
        if base64::engine::general_purpose::STANDARD.decode(p).is_err() {
            return Err(RecordError::InvalidBase64);
        }
        Ok(Self {
            version: tags.get("v").map(str::to_owned),
            key_type: tags.get("k").map(KeyType::from_tag).unwrap_or_default(),
            public_key: p.to_owned(),
        })
    }

    /// The record text: always `v=1.0.0;k=<type>;p=<base64>`.
    pub fn to_txt(&self) -> String {
        format!(
            "v={RECORD_VERSION};k={};p={}",
            self.key_type, self.public_key
        )
    }

    /// The public key as PEM (`-----BEGIN PUBLIC KEY-----`, 64-character lines, no trailing
    /// LF), the form PROTOCOL.md §6.1 rebuilds from `p`.
    pub fn public_key_pem(&self) -> String {
        let mut pem =
            String::with_capacity(self.public_key.len() + self.public_key.len() / 64 + 60);
        pem.push_str("-----BEGIN PUBLIC KEY-----\n");
        for line in split_character_strings(&self.public_key, 64) {
            pem.push_str(line);
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----");
        pem
    }
}

// ---------------------------------------------------------------------------------------------
// Delegation list record
// ---------------------------------------------------------------------------------------------

/// A delegation list record `_btps.delegation.<account>.<domain>`:
/// `v=1.0.0;d=<deviceId>[,<deviceId>...]` (PROTOCOL.md §6.6 extension).
///
/// # Examples
///
/// ```
/// use btps_types::record::DelegationListRecord;
/// let r = DelegationListRecord::parse("v=1.0.0;d= dev1 ,,dev2,").unwrap();
/// assert_eq!(r.devices, ["dev1", "dev2"]);
/// assert!(r.contains("dev2"));
/// assert_eq!(r.to_txt(), "v=1.0.0;d=dev1,dev2");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelegationListRecord {
    /// The `v` tag as published (not interpreted); `None` when absent.
    pub version: Option<String>,
    /// The listed device ids, trimmed, empty entries dropped (may be empty: no device is
    /// allowed).
    pub devices: Vec<String>,
}

impl DelegationListRecord {
    /// A record for publishing (`version` `1.0.0`).
    pub fn new<S: Into<String>>(devices: impl IntoIterator<Item = S>) -> Self {
        Self {
            version: Some(RECORD_VERSION.to_owned()),
            devices: devices.into_iter().map(Into::into).collect(),
        }
    }

    /// Parses the joined text of one TXT record.
    ///
    /// # Errors
    ///
    /// [`RecordError::MissingTag`] when there is no `d` tag (an empty `d=` is a valid, empty
    /// list).
    pub fn parse(txt: &str) -> Result<Self, RecordError> {
        let tags = TxtTags::parse(txt);
        let d = tags.get("d").ok_or(RecordError::MissingTag("d"))?;
        Ok(Self {
            version: tags.get("v").map(str::to_owned),
            devices: d
                .split(',')
                .map(str::trim_ascii)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    /// Whether `device_id` is listed (exact comparison).
    pub fn contains(&self, device_id: &str) -> bool {
        self.devices.iter().any(|d| d == device_id)
    }

    /// The record text: always `v=1.0.0;d=<id>,<id>...`.
    pub fn to_txt(&self) -> String {
        format!("v={RECORD_VERSION};d={}", self.devices.join(","))
    }
}

fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut cut = MAX;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    fn id(s: &str) -> Identity {
        Identity::parse(s).unwrap()
    }

    #[test]
    fn record_names() {
        let i = id("First.Last$Sub.Example.COM");
        assert_eq!(host_record_name(i.domain()), "_btps.host.sub.example.com");
        assert_eq!(
            identity_record_name("btps1", &i),
            "btps1._btps.identity.first.last.sub.example.com"
        );
        assert_eq!(
            delegation_list_record_name(&i),
            "_btps.delegation.first.last.sub.example.com"
        );
        assert_eq!(
            device_record_name("btps_ag_1", &i),
            "btps_ag_1._btps.device.first.last.sub.example.com"
        );
        assert_eq!(
            identity_record_name("btps1", &id("billing$vendorcorp.test")),
            "btps1._btps.identity.billing.vendorcorp.test"
        );
    }

    #[test]
    fn tags_follow_section_6_2() {
        let t = TxtTags::parse("v=1.0.0;;  ;p=AB==;novalue; k =  rsa ;x=a=b=;=empty;p=CD==");
        assert_eq!(t.get("v"), Some("1.0.0"));
        // First `=` only: padding and later `=` survive; last value wins.
        assert_eq!(t.get("p"), Some("CD=="));
        assert_eq!(t.get("x"), Some("a=b="));
        assert_eq!(t.get("k"), Some("rsa"));
        assert_eq!(t.get(""), Some("empty"));
        assert_eq!(t.get("novalue"), None);
        let keys: Vec<_> = t.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["v", "p", "k", "x", ""]);
        // Case-sensitive keys.
        assert_eq!(TxtTags::parse("P=AA==").get("p"), None);
        assert!(TxtTags::parse("").is_empty());
        assert!(TxtTags::parse(";;").is_empty());
    }

    #[test]
    fn character_strings() {
        let txt = format!("v=1.0.0;k=rsa;p={}", "A".repeat(392));
        let parts = split_character_strings(&txt, 255);
        assert!(parts.iter().all(|p| p.len() <= 255));
        assert_eq!(parts.len(), 2);
        assert_eq!(join_character_strings(&parts).unwrap(), txt);
        assert_eq!(split_character_strings("", 255), [""]);
        assert_eq!(split_character_strings("abc", 255), ["abc"]);
        // UTF-8 boundaries are respected.
        let s = "é".repeat(10);
        let parts = split_character_strings(&s, 5);
        assert!(parts.iter().all(|p| p.len() <= 5));
        assert_eq!(parts.concat(), s);
        assert_eq!(
            join_character_strings(&[b"a".as_slice(), &[0xff]]),
            Err(RecordError::NotUtf8)
        );
    }

    #[test]
    fn host_records() {
        let ok = |txt: &str| HostRecord::parse(txt).unwrap_or_else(|e| panic!("{txt}: {e}"));
        let r = ok("v=1.0.0;u=127.0.0.1:3443;s=btps1");
        assert_eq!(r.host, ServerHost::Ip("127.0.0.1".parse().unwrap()));
        assert_eq!((r.port, r.selector.as_str()), (3443, "btps1"));
        assert_eq!(r.version.as_deref(), Some("1.0.0"));
        let r = ok("u=btps.example.com:4443;s=s1");
        assert_eq!(r.host, ServerHost::Domain("btps.example.com".into()));
        assert_eq!((r.port, r.version), (4443, None));
        assert_eq!(ok("u=btps://Host.Example.com:5000;s=s1").port, 5000);
        assert_eq!(ok("u=btps://host.example.com;s=s1").port, 3443);
        assert_eq!(ok("u=host.example.com:;s=s1").port, 3443);
        assert_eq!(
            ok("u=localhost;s=s1").host,
            ServerHost::Domain("localhost".into())
        );
        assert_eq!(ok("u=localhost:99;s=s1").port, 99);
        let r = ok("u=[::1]:4443;s=s1");
        assert_eq!(r.host, ServerHost::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(r.address(), "[::1]:4443");
        assert_eq!(r.to_txt(), "v=1.0.0;u=[::1]:4443;s=s1");
        assert_eq!(ok("u=[2001:db8::1];s=s1").port, 3443);
        assert_eq!(ok("u=https://h.example:8443/x?y;s=s1").port, 8443);
        assert_eq!(ok("u=https://h.example;s=s1").port, 3443);

        assert_eq!(
            HostRecord::parse("v=1.0.0;s=btps1"),
            Err(RecordError::MissingTag("u"))
        );
        assert_eq!(
            HostRecord::parse("v=1.0.0;u=h.example"),
            Err(RecordError::MissingTag("s"))
        );
        assert_eq!(HostRecord::parse("u=;s=a"), Err(RecordError::EmptyTag("u")));
        assert_eq!(
            HostRecord::parse("u=h.example;s="),
            Err(RecordError::EmptyTag("s"))
        );
        assert!(matches!(
            HostRecord::parse("u=h.example;s=a.b"),
            Err(RecordError::InvalidSelector(_))
        ));
        for bad in [
            "u=h.example:99999;s=a",
            "u=h.example:x;s=a",
            "u=[::1;s=a",
            "u=h.example:0;s=a",
            "u=btps://:44;s=a",
        ] {
            assert!(
                matches!(
                    HostRecord::parse(bad),
                    Err(RecordError::InvalidAddress { .. })
                ),
                "{bad}"
            );
        }
        let r = HostRecord::new(ServerHost::Domain("a.example".into()), 3443, "btps2");
        assert_eq!(HostRecord::parse(&r.to_txt()).unwrap(), r);
    }

    #[test]
    fn key_records() {
        let r = KeyRecord::parse("v=1.0.0;k=rsa;p=QUJD").unwrap();
        assert_eq!(
            (r.key_type.clone(), r.public_key.as_str()),
            (KeyType::Rsa, "QUJD")
        );
        assert_eq!(KeyRecord::parse("p=QUJD").unwrap().key_type, KeyType::Rsa);
        assert_eq!(
            KeyRecord::parse("k=ecdsa;p=QUI=").unwrap().key_type,
            KeyType::Other("ecdsa".into())
        );
        // Padded keys survive (the reference drops them).
        assert_eq!(
            KeyRecord::parse("v=1.0.0;k=ed25519;p=QUI=")
                .unwrap()
                .public_key,
            "QUI="
        );
        assert_eq!(
            KeyRecord::parse("v=1.0.0;k=rsa"),
            Err(RecordError::MissingTag("p"))
        );
        assert_eq!(
            KeyRecord::parse("v=1.0.0;k=rsa;p="),
            Err(RecordError::EmptyTag("p"))
        );
        for bad in [
            "p=QUJ",
            "p=QU JD",
            "p=QUJD=",
            "p=QR==",
            "p=QUJD====",
            "p=QU-_",
            "p=QUI",
        ] {
            assert_eq!(
                KeyRecord::parse(bad),
                Err(RecordError::InvalidBase64),
                "{bad}"
            );
        }
        let r = KeyRecord::new(KeyType::Ed25519, "QUI=");
        assert_eq!(r.to_txt(), "v=1.0.0;k=ed25519;p=QUI=");
        assert_eq!(KeyRecord::parse(&r.to_txt()).unwrap(), r);
    }

    #[test]
    fn pem_rebuild() {
        let r = KeyRecord::new(KeyType::Rsa, "A".repeat(130));
        assert_eq!(
            r.public_key_pem(),
            format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n{}\nAA\n-----END PUBLIC KEY-----",
                "A".repeat(64),
                "A".repeat(64)
            )
        );
    }

    #[test]
    fn delegation_lists() {
        let r = DelegationListRecord::parse("v=1.0.0;d=").unwrap();
        assert!(r.devices.is_empty());
        assert_eq!(
            DelegationListRecord::parse("v=1.0.0"),
            Err(RecordError::MissingTag("d"))
        );
        let r = DelegationListRecord::new(["a", "b"]);
        assert_eq!(DelegationListRecord::parse(&r.to_txt()).unwrap(), r);
        assert!(!r.contains("c"));
    }

    #[test]
    fn vector_dns_table_parses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/vectors/dns.json"
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            return; // The shared vectors are optional for unit tests; the `it` test requires them.
        };
        let table = crate::json::parse_str(&text).unwrap().value;
        let table = table.as_object().unwrap();
        let mut keys = 0;
        for (name, records) in table.iter() {
            let name = name.as_str().unwrap();
            for rec in records.as_array().unwrap() {
                let txt = rec.as_str().unwrap();
                if name.starts_with("_btps.host.") {
                    let h = HostRecord::parse(txt).unwrap();
                    assert_eq!(h.port, 3443, "{name}");
                } else if name.contains("._btps.identity.") {
                    let k = KeyRecord::parse(txt).unwrap();
                    assert_eq!(k.key_type, KeyType::Rsa);
                    keys += 1;
                }
            }
        }
        assert!(keys >= 8, "{keys} identity keys");
    }
}
