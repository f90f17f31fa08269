//! `btps dns resolve` against the vectors' DNS table and a nameserver that refuses, and
//! `btps dns records` reproducing the vectors' records.

use crate::{
    assert_exit, btps, dns_file, fingerprint, json, parse_zone, refusing_nameserver, stderr,
    stdout, vectors,
};

#[test]
fn resolve_prints_host_and_key() {
    let out = btps(&[
        "dns",
        "resolve",
        "billing$vendorcorp.test",
        "--dns-file",
        &dns_file(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("127.0.0.1:3443"), "{text}");
    assert!(text.contains(&fingerprint("billing-btps1")), "{text}");
    assert!(text.contains("rsa (2048 bits)"), "{text}");

    let out = btps(&[
        "dns",
        "resolve",
        "billing$vendorcorp.test",
        "--dns-file",
        &dns_file(),
        "--selector",
        "btps2",
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let json = json(&out);
    assert_eq!(json["selector"], "btps2");
    assert_eq!(json["selectorSource"], "argument");
    assert_eq!(json["host"]["port"], 3443);
    assert_eq!(json["key"]["ttl"], 300);
    assert_eq!(
        json["key"]["keys"][0]["fingerprint"],
        fingerprint("billing-btps2").as_str()
    );
}

#[test]
fn not_found_exits_1() {
    let out = btps(&[
        "dns",
        "resolve",
        "billing$vendorcorp.test",
        "--dns-file",
        &dns_file(),
        "--selector",
        "btps9",
        "--json",
    ]);
    assert_exit(&out, 1);
    let json = json(&out);
    assert_eq!(json["error"]["code"], "BTP_ERROR_RESOLVE_PUBKEY");
    assert_eq!(json["error"]["temporary"], false);

    let out = btps(&[
        "dns",
        "resolve",
        "nobody$nowhere.test",
        "--dns-file",
        &dns_file(),
    ]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("BTP_ERROR_RESOLVE_DNS"));
}

#[test]
fn temporary_failure_exits_2() {
    let ns = refusing_nameserver();
    let out = btps(&[
        "dns",
        "resolve",
        "billing$vendorcorp.test",
        "--nameserver",
        &ns,
        "--timeout",
        "1",
        "--json",
    ]);
    assert_exit(&out, 2);
    let json = json(&out);
    assert_eq!(json["error"]["code"], "BTP_ERROR_DNS_UNAVAILABLE");
    assert_eq!(json["error"]["temporary"], true);
}

#[test]
fn bad_arguments_exit_64() {
    let out = btps(&[
        "dns",
        "resolve",
        "not-an-identity",
        "--dns-file",
        &dns_file(),
    ]);
    assert_exit(&out, 64);
    let out = btps(&["dns", "resolve"]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let out = btps(&[
        "dns",
        "resolve",
        "a$b.test",
        "--dns-file",
        "/nonexistent.json",
    ]);
    assert_exit(&out, 64);
}

#[test]
fn records_reproduce_the_published_vectors() {
    let key = vectors().join("keys/billing-btps1-public.pem");
    let out = btps(&[
        "dns",
        "records",
        "billing$vendorcorp.test",
        "--public-key",
        &key.to_string_lossy(),
        "--selector",
        "btps1",
        "--host",
        "127.0.0.1:3443",
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    // The 392-character key is split into 255-byte character-strings.
    assert!(text.lines().any(|l| l.contains("\" \"")), "{text}");
    for line in text.lines().filter(|l| !l.starts_with(';')) {
        assert!(line.contains(" 300 IN TXT \""), "{line}");
    }
    let table: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vectors().join("dns.json")).unwrap())
            .unwrap();
    let records = parse_zone(&text);
    assert_eq!(records.len(), 2);
    for (name, _, strings) in records {
        assert_eq!(table[&name][0], strings.concat().as_str(), "{name}");
    }

    // A private key file works too (its public half is published).
    let private = vectors().join("keys/billing-btps1-private.pem");
    let out = btps(&[
        "dns",
        "records",
        "billing$vendorcorp.test",
        "--public-key",
        &private.to_string_lossy(),
        "--selector",
        "btps1",
        "--host",
        "127.0.0.1:3443",
        "--ttl",
        "60",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains(&fingerprint("billing-btps1")));
    assert!(stdout(&out).contains(" 60 IN TXT "));

    // --json: the same records as data.
    let out = btps(&[
        "dns",
        "records",
        "billing$vendorcorp.test",
        "--public-key",
        &key.to_string_lossy(),
        "--selector",
        "btps1",
        "--host",
        "127.0.0.1:3443",
        "--json",
    ]);
    assert_exit(&out, 0);
    let json = json(&out);
    assert_eq!(json["fingerprint"], fingerprint("billing-btps1").as_str());
    for record in json["records"].as_array().unwrap() {
        let name = record["name"].as_str().unwrap();
        assert_eq!(table[name][0], record["text"], "{name}");
    }

    let out = btps(&[
        "dns",
        "records",
        "billing$vendorcorp.test",
        "--public-key",
        &key.to_string_lossy(),
        "--selector",
        "bad.selector",
        "--host",
        "h.example",
    ]);
    assert_exit(&out, 64);
}
