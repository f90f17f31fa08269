//! [`StaticTable`]: TXT records from a JSON table in the `vectors/dns.json` format.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::DnsError;
use crate::resolver::{Absence, LookupError, TxtAnswer, TxtRecord, TxtResolver, normalize_name};

/// A fixed table of TXT records, the offline resolver for demos, tests and air-gapped use.
///
/// The JSON format is the one of `vectors/dns.json`: an object mapping a record name to the
/// list of its TXT records, each record one string (already joined; it is served split into
/// 255-byte character-strings, as DNS would carry it):
///
/// ```json
/// { "_btps.host.vendorcorp.test": ["v=1.0.0;u=127.0.0.1:3443;s=btps1"] }
/// ```
///
/// Names are compared case-insensitively, with or without a trailing dot. A name that is
/// not in the table is NXDOMAIN; a name with an empty list is NODATA. Every answer carries
/// the same TTL ([`StaticTable::DEFAULT_TTL`] unless set with [`StaticTable::with_ttl`]).
///
/// # Examples
///
/// ```
/// use btps_dns::StaticTable;
/// let mut table = StaticTable::new();
/// table.insert("_btps.host.Example.com.", ["v=1.0.0;u=btps.example.com;s=btps1"]);
/// assert_eq!(table.txt("_btps.host.example.com").unwrap().len(), 1);
/// assert!(table.txt("_btps.host.example.org").is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticTable {
    records: BTreeMap<String, Vec<String>>,
    ttl: u32,
}

impl Default for StaticTable {
    fn default() -> Self {
        Self::new()
    }
}

impl StaticTable {
    /// The TTL of every answer unless changed: 300 s.
    pub const DEFAULT_TTL: u32 = 300;

    /// An empty table.
    pub fn new() -> Self {
        Self {
            records: BTreeMap::new(),
            ttl: Self::DEFAULT_TTL,
        }
    }

    /// Parses a table from JSON text.
    ///
    /// # Errors
    ///
    /// [`DnsError::Config`] when the text is not an object of string arrays.
    pub fn from_json(text: &str) -> Result<Self, DnsError> {
        let map: BTreeMap<String, Vec<String>> =
            serde_json::from_str(text).map_err(|e| DnsError::Config(format!("DNS table: {e}")))?;
        let mut table = Self::new();
        for (name, records) in map {
            table.insert(&name, records);
        }
        Ok(table)
    }

    /// Loads a table from a JSON file (the `vectors/dns.json` format).
    ///
    /// # Errors
    ///
    /// [`DnsError::Config`] naming the file when it cannot be read or parsed.
    pub fn load(path: &Path) -> Result<Self, DnsError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DnsError::Config(format!("{}: {e}", path.display())))?;
        Self::from_json(&text).map_err(|e| DnsError::Config(format!("{}: {e}", path.display())))
    }

    /// The same table answering with `ttl` seconds.
    #[must_use]
    pub fn with_ttl(mut self, ttl: u32) -> Self {
        self.ttl = ttl;
        self
    }

    /// The TTL of every answer.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// Adds `records` to those at `name` (appending to existing ones).
    pub fn insert<S: Into<String>>(&mut self, name: &str, records: impl IntoIterator<Item = S>) {
        self.records
            .entry(normalize_name(name))
            .or_default()
            .extend(records.into_iter().map(Into::into));
    }

    /// Removes the name and its records; returns them.
    pub fn remove(&mut self, name: &str) -> Option<Vec<String>> {
        self.records.remove(&normalize_name(name))
    }

    /// The records at `name` (`None`: NXDOMAIN).
    pub fn txt(&self, name: &str) -> Option<&[String]> {
        self.records.get(&normalize_name(name)).map(Vec::as_slice)
    }

    /// Every name (lower-cased, no trailing dot) and its records, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.records.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The answer for `name`, synchronously.
    pub fn answer(&self, name: &str) -> TxtAnswer {
        match self.txt(name) {
            None => TxtAnswer::NotFound {
                absence: Absence::NxDomain,
                negative_ttl: Some(self.ttl),
            },
            Some([]) => TxtAnswer::NotFound {
                absence: Absence::NoData,
                negative_ttl: Some(self.ttl),
            },
            Some(records) => TxtAnswer::Records {
                records: records.iter().map(|r| TxtRecord::from_text(r)).collect(),
                ttl: self.ttl,
            },
        }
    }
}

#[async_trait::async_trait]
impl TxtResolver for StaticTable {
    async fn lookup_txt(&self, name: &str) -> Result<TxtAnswer, LookupError> {
        Ok(self.answer(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let mut t =
            StaticTable::from_json(r#"{"A.example.com": ["x=1", "y=2"], "b.example.com": []}"#)
                .unwrap()
                .with_ttl(7);
        assert_eq!(
            t.answer("a.example.com."),
            TxtAnswer::Records {
                records: vec![TxtRecord::from_text("x=1"), TxtRecord::from_text("y=2")],
                ttl: 7
            }
        );
        assert_eq!(
            t.answer("b.example.com"),
            TxtAnswer::NotFound {
                absence: Absence::NoData,
                negative_ttl: Some(7)
            }
        );
        assert!(matches!(
            t.answer("c.example.com"),
            TxtAnswer::NotFound {
                absence: Absence::NxDomain,
                ..
            }
        ));
        assert_eq!(t.remove("A.EXAMPLE.COM").unwrap().len(), 2);
        assert_eq!(t.iter().count(), 1);
        assert!(matches!(
            StaticTable::from_json("[1]"),
            Err(DnsError::Config(_))
        ));
        assert!(matches!(
            StaticTable::load(Path::new("/nonexistent/dns.json")),
            Err(DnsError::Config(m)) if m.contains("/nonexistent/dns.json")
        ));
    }
}
