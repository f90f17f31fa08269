//! The DNS table the reference resolved (`shared/vectors/dns.json`, one list entry per TXT
//! record) through the record-name builders and the TXT parsers (PROTOCOL.md §6.1–§6.2).

use std::collections::BTreeMap;
use std::path::Path;

use btps_types::Identity;
use btps_types::record::{
    DEFAULT_PORT, HostRecord, KeyRecord, KeyType, TxtTags, host_record_name, identity_record_name,
    join_character_strings, split_character_strings,
};

fn dns_table() -> BTreeMap<String, Vec<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/dns.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The identities of the vectors (`shared/vectors/README.md`) and their published selectors.
const IDENTITIES: &[(&str, &[&str])] = &[
    ("billing$vendorcorp.test", &["btps1", "btps2"]),
    ("finance$buyer.test", &["btps1", "btps2"]),
    ("admin$vendorcorp.test", &["btps1"]),
    ("attest$trustauthority.test", &["btps1"]),
    ("server$buyer.test", &["btps1"]),
    ("admin$evil.test", &["btps1"]),
];

#[test]
fn every_record_of_the_table_parses_by_its_name() {
    let table = dns_table();
    assert!(!table.is_empty());
    for (name, records) in &table {
        assert!(!records.is_empty(), "{name}: no record");
        for txt in records {
            if name.starts_with("_btps.host.") {
                let r = HostRecord::parse(txt).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(r.selector, "btps1", "{name}");
                assert_eq!(r.port, DEFAULT_PORT, "{name}");
                assert_eq!(r.address(), "127.0.0.1:3443", "{name}");
                assert_eq!(r.version.as_deref(), Some("1.0.0"), "{name}");
                assert_eq!(
                    HostRecord::parse(&r.to_txt()).as_ref(),
                    Ok(&r),
                    "{name}: to_txt round trip"
                );
            } else if name.contains("._btps.identity.") {
                let r = KeyRecord::parse(txt).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(r.key_type, KeyType::Rsa, "{name}");
                // RSA-2048 SPKI DER is 294 bytes: 392 base64 characters, no padding.
                assert_eq!(r.public_key.len(), 392, "{name}");
                assert_eq!(
                    KeyRecord::parse(&r.to_txt()).as_ref(),
                    Ok(&r),
                    "{name}: to_txt round trip"
                );
            } else {
                panic!("{name}: unexpected record name in the table");
            }
        }
    }
}

#[test]
fn record_names_are_rebuilt_from_identities() {
    let table = dns_table();
    for (identity, selectors) in IDENTITIES {
        let id = Identity::parse(identity).unwrap_or_else(|e| panic!("{identity}: {e}"));
        assert!(
            table.contains_key(&host_record_name(id.domain())),
            "{identity}: no host record {}",
            host_record_name(id.domain())
        );
        for sel in *selectors {
            let name = identity_record_name(sel, &id);
            assert!(
                table.contains_key(&name),
                "{identity}: no key record {name}"
            );
            // Names are built lower-case whatever the spelling of the identity.
            let shouting = Identity::parse(&identity.to_uppercase()).unwrap();
            assert_eq!(identity_record_name(sel, &shouting), name, "{identity}");
        }
    }
    // Unknown selector of the vector `neg_unknown_selector`: not in the table (NXDOMAIN).
    let billing = Identity::parse("billing$vendorcorp.test").unwrap();
    assert!(!table.contains_key(&identity_record_name("btps9", &billing)));
}

#[test]
fn key_records_survive_publishing_as_character_strings() {
    for (name, records) in dns_table() {
        for txt in records {
            let parts = split_character_strings(&txt, 255);
            assert!(parts.iter().all(|p| p.len() <= 255), "{name}");
            assert_eq!(parts.concat(), txt, "{name}");
            if txt.len() > 255 {
                assert!(
                    parts.len() > 1,
                    "{name}: a {}-byte record needs several strings",
                    txt.len()
                );
            }
            let joined = join_character_strings(&parts).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(joined, txt, "{name}");
            // Tags parse the same from the joined strings.
            assert_eq!(TxtTags::parse(&joined), TxtTags::parse(&txt), "{name}");
        }
    }
}

#[test]
fn padded_keys_and_second_records_do_not_vanish() {
    // PROTOCOL.md §6.2 deviation: the reference drops values that contain '=' and fuses every
    // record at a name into one string. Each record parses on its own here.
    let ed25519 =
        "v=1.0.0;k=ed25519;p=MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=";
    let r = KeyRecord::parse(ed25519).unwrap();
    assert_eq!(r.key_type, KeyType::Ed25519);
    assert!(r.public_key.ends_with('='));
    let table = dns_table();
    let rsa = &table["btps1._btps.identity.billing.vendorcorp.test"][0];
    for txt in [rsa.as_str(), ed25519] {
        assert!(KeyRecord::parse(txt).is_ok(), "{txt}");
    }
}
