//! The [`TxtResolver`] trait: raw TXT answers from somewhere (DNS, a table), with the
//! TTL and a temporary / permanent distinction. Parsing and caching live above it
//! ([`crate::parse`], [`crate::DnsCache`]).

mod hickory;
mod table;

use std::fmt;
use std::sync::Arc;

use btps_types::record::{RecordError, join_character_strings, split_character_strings};

pub use hickory::{DnssecMode, HickoryConfig, HickoryResolver};
pub use table::StaticTable;

/// One TXT record: its character-strings (each at most 255 bytes on the wire), in order.
///
/// # Examples
///
/// ```
/// use btps_dns::TxtRecord;
/// let long = format!("v=1.0.0;k=rsa;p={}", "A".repeat(400));
/// let record = TxtRecord::from_text(&long);
/// assert_eq!(record.strings().len(), 2);
/// assert_eq!(record.text().unwrap(), long);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TxtRecord {
    strings: Box<[Box<[u8]>]>,
}

impl TxtRecord {
    /// A record made of these character-strings.
    pub fn new<S: Into<Box<[u8]>>>(strings: impl IntoIterator<Item = S>) -> Self {
        Self {
            strings: strings.into_iter().map(Into::into).collect(),
        }
    }

    /// A record holding `text`, split into character-strings of at most 255 bytes as a
    /// publisher would split it.
    pub fn from_text(text: &str) -> Self {
        Self::new(
            split_character_strings(text, 255)
                .into_iter()
                .map(|s| s.as_bytes().to_vec()),
        )
    }

    /// The character-strings.
    pub fn strings(&self) -> &[Box<[u8]>] {
        &self.strings
    }

    /// The character-strings joined with no separator (PROTOCOL.md §6.2 step 1).
    ///
    /// # Errors
    ///
    /// [`RecordError::NotUtf8`] when the bytes are not UTF-8.
    pub fn text(&self) -> Result<String, RecordError> {
        join_character_strings(&self.strings)
    }
}

/// Why a name has no usable TXT answer although the query itself succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Absence {
    /// NXDOMAIN: the name does not exist.
    NxDomain,
    /// NODATA: the name exists but has no TXT record.
    NoData,
    /// DNSSEC `require`: the answer could not be validated as secure (unsigned zone or no
    /// chain of trust). Treated as not found (PROTOCOL.md §6.5).
    DnssecInsecure,
    /// DNSSEC `require`: the answer failed validation (bogus). Treated as not found
    /// (PROTOCOL.md §6.5).
    DnssecBogus,
}

impl fmt::Display for Absence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NxDomain => "NXDOMAIN",
            Self::NoData => "no TXT record at the name",
            Self::DnssecInsecure => "DNSSEC required but the answer is not validated as secure",
            Self::DnssecBogus => "DNSSEC validation failed (bogus answer)",
        })
    }
}

/// The answer to one TXT query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxtAnswer {
    /// One or more TXT records.
    Records {
        /// The records, each parsed separately (PROTOCOL.md §6.2).
        records: Vec<TxtRecord>,
        /// The smallest TTL of the records, in seconds.
        ttl: u32,
    },
    /// No TXT record at the name.
    NotFound {
        /// Why.
        absence: Absence,
        /// The negative-caching TTL of the answer (RFC 2308: from the SOA), when known.
        negative_ttl: Option<u32>,
    },
}

/// A query that produced no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// No response within the timeout, after every attempt.
    #[error("query timed out")]
    Timeout,
    /// The server answered SERVFAIL.
    #[error("server failure (SERVFAIL)")]
    ServFail,
    /// The server answered REFUSED.
    #[error("query refused (REFUSED)")]
    Refused,
    /// Another error response code (FORMERR, NOTIMP, …).
    #[error("error response {0}")]
    ResponseCode(String),
    /// Socket or connection trouble.
    #[error("network error: {0}")]
    Network(String),
    /// Anything else the resolver reported.
    #[error("{0}")]
    Other(String),
    /// The name cannot be queried (permanent).
    #[error("not a valid DNS name: {0}")]
    InvalidName(String),
}

impl LookupError {
    /// Every lookup error is temporary except [`LookupError::InvalidName`].
    pub fn is_temporary(&self) -> bool {
        !matches!(self, Self::InvalidName(_))
    }
}

/// Where TXT records come from: DNS ([`HickoryResolver`]) or a table ([`StaticTable`]).
///
/// Implementations return what the source says, record by record, without parsing,
/// joining or caching: [`crate::DnsCache`] does that once for every source.
///
/// # Examples
///
/// ```
/// use btps_dns::{StaticTable, TxtAnswer, TxtResolver};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let table = StaticTable::from_json(r#"{"_btps.host.example.com": ["v=1.0.0;u=btps.example.com;s=btps1"]}"#).unwrap();
/// let answer = table.lookup_txt("_btps.host.example.com").await.unwrap();
/// assert!(matches!(answer, TxtAnswer::Records { .. }));
/// # });
/// ```
#[async_trait::async_trait]
pub trait TxtResolver: Send + Sync {
    /// The TXT records at `name` (a fully qualified name without the trailing dot).
    ///
    /// # Errors
    ///
    /// [`LookupError`] when there is no answer at all; NXDOMAIN and NODATA are answers
    /// ([`TxtAnswer::NotFound`]).
    async fn lookup_txt(&self, name: &str) -> Result<TxtAnswer, LookupError>;
}

#[async_trait::async_trait]
impl<T: TxtResolver + ?Sized> TxtResolver for Arc<T> {
    async fn lookup_txt(&self, name: &str) -> Result<TxtAnswer, LookupError> {
        (**self).lookup_txt(name).await
    }
}

#[async_trait::async_trait]
impl<T: TxtResolver + ?Sized> TxtResolver for Box<T> {
    async fn lookup_txt(&self, name: &str) -> Result<TxtAnswer, LookupError> {
        (**self).lookup_txt(name).await
    }
}

/// Checks that `name` can be a DNS name: at most 253 bytes, labels of 1 to 63 bytes, no
/// whitespace or control characters.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err(format!("{} bytes (1 to 253 allowed)", name.len()));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("a label is empty or longer than 63 bytes".to_owned());
        }
        if label
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'\\')
        {
            return Err("whitespace, control characters or backslashes".to_owned());
        }
    }
    Ok(())
}

/// Lower-cases a name and strips one trailing dot: the form tables are keyed on.
pub(crate) fn normalize_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_join_their_strings() {
        let r = TxtRecord::new([b"v=1.0.0;p=AB".to_vec(), b"CD==".to_vec()]);
        assert_eq!(r.text().unwrap(), "v=1.0.0;p=ABCD==");
        let r = TxtRecord::new([vec![0xffu8]]);
        assert_eq!(r.text(), Err(RecordError::NotUtf8));
        let text = "x".repeat(600);
        let r = TxtRecord::from_text(&text);
        assert_eq!(
            r.strings().iter().map(|s| s.len()).collect::<Vec<_>>(),
            [255, 255, 90]
        );
    }

    #[test]
    fn names() {
        assert!(check_name("btps1._btps.identity.billing.vendorcorp.test").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a..b").is_err());
        assert!(check_name(&"a".repeat(64)).is_err());
        assert!(check_name(&["a"; 130].join(".")).is_err());
        assert!(check_name("a b.c").is_err());
        assert_eq!(normalize_name("A.Example.COM."), "a.example.com");
        assert!(LookupError::Timeout.is_temporary());
        assert!(!LookupError::InvalidName("x".into()).is_temporary());
    }
}
