//! Shared helpers: vector paths, key loading, case files and the static DNS table.

use std::path::{Path, PathBuf};

use btps_crypto::{KeyPair, PublicKey};
use btps_types::json::{Object, parse_str};

/// `shared/vectors`, a sibling of the repository root (as CI checks it out).
pub(crate) fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors")
}

/// Reads a file below `shared/vectors`.
pub(crate) fn read_vector(rel: &str) -> String {
    let path = vectors_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads a fixture below `tests/data`.
pub(crate) fn read_data(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The public key `keys/<name>-public.pem`.
pub(crate) fn public_key(name: &str) -> PublicKey {
    PublicKey::from_pem(&read_vector(&format!("keys/{name}-public.pem")))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The key pair `keys/<name>-private.pem`.
pub(crate) fn key_pair(name: &str) -> KeyPair {
    KeyPair::from_pem(&read_vector(&format!("keys/{name}-private.pem")))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A public key named by a case file path (`keys/...pem`).
pub(crate) fn public_key_at(rel: &str) -> PublicKey {
    PublicKey::from_pem(&read_vector(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A key pair named by a case file path (`keys/...pem`).
pub(crate) fn key_pair_at(rel: &str) -> KeyPair {
    KeyPair::from_pem(&read_vector(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// One case file: its JSON (read with serde_json) and its parsed `line`.
pub(crate) struct Case {
    pub(crate) meta: serde_json::Value,
    pub(crate) artifact: Object,
}

impl Case {
    /// A string member of the case file, e.g. `signerPublicKey`.
    pub(crate) fn meta_str(&self, pointer: &str) -> &str {
        self.meta
            .pointer(pointer)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_else(|| panic!("case member {pointer} missing"))
    }
}

/// The raw case file `cases/<name>.json`.
pub(crate) fn case_meta(name: &str) -> serde_json::Value {
    serde_json::from_str(&read_vector(&format!("cases/{name}.json")))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The case `cases/<name>.json` with its `line` parsed by the btps-types parser.
pub(crate) fn case(name: &str) -> Case {
    let meta = case_meta(name);
    let line = meta["line"].as_str().expect("line");
    let parsed = parse_str(line).unwrap_or_else(|e| panic!("{name}: {e}"));
    let artifact = parsed
        .value
        .as_object()
        .unwrap_or_else(|| panic!("{name}: line is not an object"))
        .clone();
    Case { meta, artifact }
}

/// The public key published in `dns.json` for (`identity`, `selector`), read per
/// PROTOCOL.md §6.1–6.2; `None` when there is no usable record.
pub(crate) fn dns_key(identity: &str, selector: &str) -> Option<PublicKey> {
    let (account, domain) = identity.split_once('$')?;
    let name = format!("{selector}._btps.identity.{account}.{domain}").to_lowercase();
    let table: serde_json::Value = serde_json::from_str(&read_vector("dns.json")).unwrap();
    let records = table.get(&name)?.as_array()?;
    records
        .iter()
        .filter_map(serde_json::Value::as_str)
        .find_map(|record| {
            let p = record
                .split(';')
                .filter_map(|piece| piece.trim().split_once('='))
                .filter(|(k, _)| k.trim() == "p")
                .map(|(_, v)| v.trim())
                .next_back()?;
            PublicKey::from_base64_spki(p).ok()
        })
}

/// The string member `key` of `obj`.
pub(crate) fn str_of<'a>(obj: &'a Object, key: &str) -> &'a str {
    obj.get_str(key)
        .unwrap_or_else(|| panic!("member {key} missing"))
}
