//! `vectors/dns.json` resolves every identity the vectors use, through the static table and
//! through the real server, and the keys it yields verify the vectors as expected.

use std::collections::BTreeSet;

use btps_crypto::{KeyRef, PublicKey, required_keys, verify_artifact, verify_response};
use btps_dns::{DnsCache, StaticTable, TxtAnswer, TxtResolver};
use btps_test_support::vectors::VectorSet;
use btps_types::json::parse_str;
use btps_types::{Artifact, ErrorCode, Identity};

use crate::common::vectors_dir;
use btps_test_support::dns_server::TestServer;

fn table() -> StaticTable {
    StaticTable::load(&vectors_dir().join("dns.json")).expect("vectors/dns.json loads")
}

fn set() -> VectorSet {
    VectorSet::load(&vectors_dir()).expect("the vectors load")
}

/// Every (identity, selector) a vector's signatures need, and every identity named.
fn used(set: &VectorSet) -> (BTreeSet<(Identity, String)>, BTreeSet<Identity>) {
    let mut keys = BTreeSet::new();
    let mut identities = BTreeSet::new();
    for case in &set.cases {
        let Ok(parsed) = parse_str(&case.line) else {
            continue;
        };
        if case.kind == "response" {
            if let Some(obj) = parsed.value.as_object()
                && let Ok(reply) = btps_types::validate_response(obj)
                && let (Some(by), Some(sel)) = (&reply.signed_by, reply.selector)
            {
                keys.insert((by.clone(), sel.to_owned()));
                identities.insert(by.clone());
            }
            continue;
        }
        let Ok(artifact) = btps_types::validate(&parsed.value) else {
            continue;
        };
        if let Artifact::Transporter(t) = &artifact {
            identities.insert(t.from.clone());
            identities.insert(t.to.clone());
        }
        for key in required_keys(&artifact) {
            if let KeyRef::Identity { identity, selector } = key {
                identities.insert(identity.clone());
                keys.insert((identity, selector));
            }
        }
    }
    (keys, identities)
}

#[tokio::test]
async fn dns_json_resolves_every_identity_the_vectors_use() {
    let set = set();
    let (keys, identities) = used(&set);
    assert!(keys.len() >= 6, "{keys:?}");
    let dns = DnsCache::new(table());
    for identity in &identities {
        let host = dns.host(identity.domain()).await;
        assert!(host.is_ok(), "{identity}: {host:?}");
    }
    for (identity, selector) in &keys {
        let result = dns.identity_keys(identity, selector).await;
        if selector == "btps9" {
            // neg_unknown_selector: no record at that selector.
            let e = result.unwrap_err();
            assert!(e.is_not_found());
            assert_eq!(e.error_code(), ErrorCode::ResolvePubkey);
        } else {
            assert_eq!(result.unwrap().len(), 1, "{identity} {selector}");
        }
    }
}

#[tokio::test]
async fn resolved_keys_verify_the_vectors() {
    let set = set();
    let dns = DnsCache::new(table());
    let mut checked = 0;
    for case in &set.cases {
        let expected = case.expected();
        let expected_code: Option<ErrorCode> =
            expected.error_code.as_deref().and_then(|c| c.parse().ok());
        let Ok(parsed) = parse_str(&case.line) else {
            continue;
        };
        let verdict = if case.kind == "response" {
            let Some(reply) = parsed
                .value
                .as_object()
                .and_then(|o| btps_types::validate_response(o).ok())
            else {
                continue;
            };
            let (Some(by), Some(sel)) = (&reply.signed_by, reply.selector) else {
                continue;
            };
            let keys = dns
                .resolve_keys(&[KeyRef::Identity {
                    identity: by.clone(),
                    selector: sel.to_owned(),
                }])
                .await;
            verify_response(&reply, &keys).map(|_| ())
        } else {
            let Ok(artifact) = btps_types::validate(&parsed.value) else {
                continue;
            };
            let refs = required_keys(&artifact);
            if refs.is_empty() {
                continue;
            }
            let mut keys = dns.resolve_keys(&refs).await;
            // Agent keys are not in DNS: the caller adds them (here from the case).
            for key in &refs {
                if let KeyRef::Agent { .. } = key {
                    let pem = case
                        .signer_public_key
                        .as_ref()
                        .map(|f| std::fs::read_to_string(set.dir.join(f)).unwrap());
                    let answer = pem
                        .and_then(|p| PublicKey::from_pem(&p).ok())
                        .map(|k| vec![k])
                        .ok_or(ErrorCode::SigVerification);
                    keys.insert(key.clone(), answer);
                }
            }
            verify_artifact(&artifact, &keys).map(|_| ())
        };
        match expected.signature_valid {
            Some(true) => assert!(verdict.is_ok(), "{}: {verdict:?}", case.name),
            Some(false) => {
                let e = verdict.expect_err(&case.name);
                if let Some(code) = expected_code {
                    assert_eq!(e.error_code(), code, "{}", case.name);
                }
            }
            None => continue,
        }
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} vector cases checked");
}

#[tokio::test]
async fn dns_json_served_by_a_real_server_resolves_the_same() {
    let table = table();
    let server = TestServer::start().await;
    let mut names = 0;
    for (name, records) in table.iter() {
        assert!(name.ends_with(".test"), "{name} is in the test zone");
        for record in records {
            server.add_txt(name, 300, record).await;
        }
        names += 1;
    }
    let resolver = server.resolver();
    for (name, _) in table.iter() {
        let (TxtAnswer::Records { records: a, .. }, TxtAnswer::Records { records: b, .. }) =
            (resolver.lookup_txt(name).await.unwrap(), table.answer(name))
        else {
            panic!("{name}: records expected");
        };
        let text = |r: &[btps_dns::TxtRecord]| -> Vec<String> {
            r.iter().map(|r| r.text().unwrap()).collect()
        };
        assert_eq!(text(&a), text(&b), "{name}");
    }
    let (keys, _) = used(&set());
    let over_dns = DnsCache::new(resolver);
    let offline = DnsCache::new(table);
    for (identity, selector) in &keys {
        let a = over_dns.identity_keys(identity, selector).await;
        let b = offline.identity_keys(identity, selector).await;
        match (a, b) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(a.error_code(), b.error_code()),
            (a, b) => panic!("{identity} {selector}: {a:?} vs {b:?}"),
        }
    }
    assert_eq!(server.queries(), names + keys.len());
}
