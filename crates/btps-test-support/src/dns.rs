//! A static DNS table in the `vectors/dns.json` format: `{ "name": ["txt record", ...] }`.

use std::collections::BTreeMap;
use std::path::Path;

use btps_crypto::{KeySource, PublicKey};
use btps_types::record::{KeyRecord, identity_record_name};
use btps_types::{ErrorCode, Identity};

/// Name → TXT records (one string per record), names compared case-insensitively.
#[derive(Clone, Debug, Default)]
pub struct StaticDns {
    records: BTreeMap<String, Vec<String>>,
}

/// Loading a DNS table failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

impl StaticDns {
    /// Loads a `dns.json` file.
    ///
    /// # Errors
    ///
    /// Unreadable file or a shape other than `{name: [string]}`.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LoadError(format!("{}: {e}", path.display())))?;
        let map: BTreeMap<String, Vec<String>> = serde_json::from_str(&text)
            .map_err(|e| LoadError(format!("{}: {e}", path.display())))?;
        Ok(Self {
            records: map
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        })
    }

    /// The TXT records at `name` (`None`: NXDOMAIN).
    pub fn txt(&self, name: &str) -> Option<&[String]> {
        self.records
            .get(&name.to_ascii_lowercase())
            .map(Vec::as_slice)
    }

    /// Every name and its records.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.records.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The usable keys at `<selector>._btps.identity.<account>.<domain>` (PROTOCOL.md §6.2:
    /// every record parsed separately; unusable ones skipped).
    pub fn keys(&self, identity: &Identity, selector: &str) -> Vec<PublicKey> {
        self.txt(&identity_record_name(selector, identity))
            .unwrap_or_default()
            .iter()
            .filter_map(|txt| KeyRecord::parse(txt).ok())
            .filter_map(|rec| PublicKey::from_base64_spki(&rec.public_key).ok())
            .collect()
    }
}

impl KeySource for StaticDns {
    fn identity_keys(
        &self,
        identity: &Identity,
        selector: &str,
    ) -> Result<Vec<PublicKey>, ErrorCode> {
        let keys = self.keys(identity, selector);
        if keys.is_empty() {
            Err(ErrorCode::ResolvePubkey)
        } else {
            Ok(keys)
        }
    }

    fn agent_key(&self, _agent_id: &str, _owner: &Identity) -> Result<PublicKey, ErrorCode> {
        // DNS holds no agent keys; agent keys come from the agent store.
        Err(ErrorCode::SigVerification)
    }
}
