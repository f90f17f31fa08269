//! The `btps` binary end to end: `btps dns resolve` against the vectors' DNS table and a
//! nameserver that refuses, and `btps dns records` reproducing the vectors' records.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Command, Output};

use btps_crypto::PublicKey;

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors")
}

fn btps(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_btps"))
        .args(args)
        .output()
        .expect("btps runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn dns_file() -> String {
    vectors().join("dns.json").to_string_lossy().into_owned()
}

fn fingerprint(key: &str) -> String {
    let pem = std::fs::read_to_string(vectors().join(format!("keys/{key}-public.pem"))).unwrap();
    PublicKey::from_pem(&pem).unwrap().fingerprint().to_owned()
}

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
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"]["code"], "BTP_ERROR_RESOLVE_PUBKEY");
    assert_eq!(json["error"]["temporary"], false);

    let out = btps(&[
        "dns",
        "resolve",
        "nobody$nowhere.test",
        "--dns-file",
        &dns_file(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("BTP_ERROR_RESOLVE_DNS"));
}

/// A nameserver on 127.0.0.1 that answers REFUSED to every query.
fn refusing_nameserver() -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let mut reply = buf[..n].to_vec();
            reply[2] |= 0x80; // QR: response
            reply[3] = (reply[3] & 0xf0) | 5; // RCODE: REFUSED
            let _ = socket.send_to(&reply, peer);
        }
    });
    addr.to_string()
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
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let out = btps(&["dns", "resolve"]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let out = btps(&[
        "dns",
        "resolve",
        "a$b.test",
        "--dns-file",
        "/nonexistent.json",
    ]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
}

/// Parses `name. ttl IN TXT "a" "b"` lines back into (name, joined text).
fn parse_zone(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with(';') && !l.is_empty())
        .map(|l| {
            let (name, rest) = l.split_once(' ').unwrap();
            let quoted = &rest[rest.find('"').unwrap()..];
            let joined: String = quoted.split("\" \"").map(|s| s.trim_matches('"')).collect();
            (name.trim_end_matches('.').to_owned(), joined)
        })
        .collect()
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
    for (name, joined) in records {
        assert_eq!(table[&name][0], joined.as_str(), "{name}");
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
    assert_eq!(out.status.code(), Some(64), "{out:?}");
}
