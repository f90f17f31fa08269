//! `btps keygen`: key files, the records to publish, and a round trip through them.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use btps_crypto::{KeyPair, KeyPolicy, PublicKey};
use btps_dns::{RecordKind, TxtAnswer, TxtRecord, parse_host, parse_keys};
use btps_types::json::{Value, parse_str};
use btps_types::signing;

use crate::{Env, assert_exit, case, json, parse_zone, stderr, stdout};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The zone lines of the output parsed back with the btps-dns parsers (each quoted
/// character-string kept as one string of the TXT record).
fn parsed_records(text: &str) -> (btps_types::record::HostRecord, Vec<PublicKey>) {
    let records = parse_zone(text);
    assert_eq!(records.len(), 2, "{text}");
    let answer = |strings: &[String], ttl| TxtAnswer::Records {
        records: vec![TxtRecord::new(
            strings.iter().map(|s| s.as_bytes().to_vec()),
        )],
        ttl,
    };
    let (host_name, host_ttl, host_strings) = &records[0];
    let host = parse_host(host_name, &answer(host_strings, *host_ttl)).unwrap();
    let (key_name, key_ttl, key_strings) = &records[1];
    assert!(
        key_strings.len() > 1,
        "the key is split into character-strings"
    );
    assert!(key_strings.iter().all(|s| s.len() <= 255));
    let keys = parse_keys(
        RecordKind::IdentityKey,
        key_name,
        &answer(key_strings, *key_ttl),
        KeyPolicy::DEFAULT,
    )
    .unwrap();
    (host, keys)
}

#[test]
fn writes_keys_and_prints_records() {
    let env = Env::new();
    let out = env.run(&[
        "keygen",
        "--identity",
        "Billing$Example.test",
        "--host",
        "btps.example.test:4443",
        "--out",
        "keys",
    ]);
    assert_exit(&out, 0);
    let text = stdout(&out);

    let private = env
        .path()
        .join("keys/billing@example.test-btps1-private.pem");
    let public = env
        .path()
        .join("keys/billing@example.test-btps1-public.pem");
    assert_eq!(mode(&private), 0o600);
    let pem = std::fs::read_to_string(&private).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "PKCS#8");
    let pair = KeyPair::from_pem(&pem).unwrap();
    assert_eq!(pair.public_key().bits(), 2048);
    let published = PublicKey::from_pem(&std::fs::read_to_string(&public).unwrap()).unwrap();
    assert_eq!(&published, pair.public_key());
    assert!(
        text.contains(&format!("fingerprint  {}\n", published.fingerprint())),
        "{text}"
    );

    let (host, keys) = parsed_records(&text);
    assert_eq!(host.address(), "btps.example.test:4443");
    assert_eq!(host.selector, "btps1");
    assert_eq!(keys, std::slice::from_ref(&published));
    assert!(
        text.contains("_btps.host.example.test. 300 IN TXT"),
        "{text}"
    );
    assert!(
        text.contains("btps1._btps.identity.billing.example.test. 300 IN TXT"),
        "{text}"
    );
}

#[test]
fn refuses_to_overwrite_without_force() {
    let env = Env::new();
    let args = ["keygen", "--identity", "a$example.test", "--selector", "s1"];
    assert_exit(&env.run(&args), 0);
    let private = env.path().join("a@example.test-s1-private.pem");
    let before = std::fs::read(&private).unwrap();

    let out = env.run(&args);
    assert_exit(&out, 64);
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&private).unwrap(), before, "untouched");

    let mut forced = args.to_vec();
    forced.push("--force");
    assert_exit(&env.run(&forced), 0);
    let after = std::fs::read(&private).unwrap();
    assert_ne!(after, before, "a new key");
    assert_eq!(mode(&private), 0o600);
    KeyPair::from_pem(std::str::from_utf8(&after).unwrap()).unwrap();
}

#[test]
fn json_output_and_profile() {
    let env = Env::new();
    // No identity anywhere: a usage error, as JSON too.
    let out = env.run(&["--json", "keygen"]);
    assert_exit(&out, 64);
    assert!(
        json(&out)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--identity")
    );

    let out = env.run(&[
        "keygen",
        "--json",
        "--identity",
        "billing$example.test",
        "--selector",
        "btps7",
        "--save",
    ]);
    assert_exit(&out, 0);
    let report = json(&out);
    assert_eq!(report["selector"], "btps7");
    assert_eq!(report["keyType"], "rsa");
    assert_eq!(report["bits"], 2048);
    assert_eq!(
        report["host"], "btps.example.test:3443",
        "default server address"
    );
    assert_eq!(report["profile"], "default");
    let private = env.path().join(report["privateKey"].as_str().unwrap());
    let pair = KeyPair::from_pem(&std::fs::read_to_string(&private).unwrap()).unwrap();
    assert_eq!(report["fingerprint"], pair.public_key().fingerprint());
    let records = report["records"].as_array().unwrap();
    assert_eq!(records[0]["name"], "_btps.host.example.test");
    assert_eq!(
        records[0]["text"],
        "v=1.0.0;u=btps.example.test:3443;s=btps7"
    );
    assert_eq!(
        records[1]["name"],
        "btps7._btps.identity.billing.example.test"
    );

    // --save recorded identity, selector and key; the next keygen takes them from the
    // profile (and the server address too once set).
    let shown = json(&env.run(&["--json", "profile", "show"]));
    assert_eq!(shown["settings"]["identity"], "billing$example.test");
    assert_eq!(shown["settings"]["selector"], "btps7");
    assert_eq!(
        Path::new(shown["settings"]["key"].as_str().unwrap()),
        std::fs::canonicalize(&private).unwrap()
    );
    assert_exit(
        &env.run(&["profile", "set", "server", "btps.example.test:5443"]),
        0,
    );
    let out = env.run(&["--json", "keygen", "--selector", "btps8"]);
    assert_exit(&out, 0);
    let report = json(&out);
    assert_eq!(report["identity"], "billing$example.test");
    assert_eq!(report["host"], "btps.example.test:5443");
}

/// The published records verify what the new key signs: keygen, a DNS table made of its
/// records, an artifact signed with the key, `btps artifact verify`.
#[test]
fn generated_records_verify_signed_artifacts() {
    let env = Env::new();
    let out = env.run(&[
        "--json",
        "keygen",
        "--identity",
        "billing$vendorcorp.test",
        "--selector",
        "k9",
    ]);
    assert_exit(&out, 0);
    let report = json(&out);
    let mut table = serde_json::Map::new();
    for r in report["records"].as_array().unwrap() {
        table.insert(
            r["name"].as_str().unwrap().to_owned(),
            serde_json::json!([r["text"]]),
        );
    }
    let dns = env.file(
        "dns.json",
        serde_json::Value::Object(table).to_string().as_bytes(),
    );
    let pem =
        std::fs::read_to_string(env.path().join(report["privateKey"].as_str().unwrap())).unwrap();
    let key = KeyPair::from_pem(&pem).unwrap();

    let c = case("transporter_doc_invoice_plain");
    let mut value = parse_str(c["line"].as_str().unwrap()).unwrap().value;
    let obj = value.as_object_mut().unwrap();
    obj.insert("selector", "k9");
    obj.remove("signature");
    btps_crypto::sign_in_place(obj, signing::TRANSPORTER, &key).unwrap();
    let line = Value::Object(obj.clone()).to_string();

    let out = env.run_with_input(
        &["artifact", "verify", "-", "--dns-file", &dns],
        line.as_bytes(),
    );
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains(&format!(
            "selector k9, fingerprint {}",
            key.public_key().fingerprint()
        )),
        "{}",
        stdout(&out)
    );
}

#[test]
fn key_types_and_sizes() {
    let env = Env::new();
    // Larger RSA keys on request.
    let out = env.run(&[
        "--json",
        "keygen",
        "--identity",
        "big$example.test",
        "--bits",
        "3072",
        "--out",
        "keys",
    ]);
    assert_exit(&out, 0);
    let report = json(&out);
    assert_eq!(report["keyType"], "rsa");
    assert_eq!(report["bits"], 3072);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    // RSA under 2048 bits is refused, and nothing is written.
    for bits in ["1024", "512"] {
        let out = env.run(&[
            "keygen",
            "--identity",
            "weak$example.test",
            "--bits",
            bits,
            "--out",
            "weak",
        ]);
        assert_exit(&out, 64);
        assert!(
            stderr(&out).contains("RSA keys under 2048 bits are refused"),
            "{}",
            stderr(&out)
        );
    }
    assert!(!env.path().join("weak").exists());
    let out = env.run(&["keygen", "--identity", "odd$example.test", "--bits", "5000"]);
    assert_exit(&out, 64);
    assert!(
        stderr(&out).contains("2048, 3072, 4096 or 8192"),
        "{}",
        stderr(&out)
    );

    // Ed25519: k=ed25519 records, with a warning that btps-node peers cannot verify it.
    let out = env.run(&[
        "--json",
        "keygen",
        "--identity",
        "dev$example.test",
        "--type",
        "ed25519",
        "--out",
        "ed",
    ]);
    assert_exit(&out, 0);
    let report = json(&out);
    assert_eq!(report["keyType"], "ed25519");
    assert_eq!(report["bits"], 256);
    let key_record = report["records"][1].to_string();
    assert!(key_record.contains("k=ed25519"), "{report}");
    let warning = stderr(&out);
    assert!(warning.contains("warning"), "{warning}");
    assert!(warning.contains("btps-node"), "{warning}");
    assert!(warning.contains("device and delegation keys"), "{warning}");
    let private =
        std::fs::read_to_string(env.path().join("ed/dev@example.test-btps1-private.pem")).unwrap();
    assert_eq!(
        KeyPair::from_pem(&private).unwrap().key_type(),
        btps_crypto::KeyType::Ed25519
    );
    let out = env.run(&[
        "keygen",
        "--identity",
        "dev2$example.test",
        "--type",
        "ed25519",
        "--bits",
        "2048",
    ]);
    assert_exit(&out, 64);
    assert!(
        stderr(&out).contains("--bits applies to RSA keys only"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["keygen", "--identity", "x$example.test", "--type", "dsa"]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(stderr(&out).contains("rsa or ed25519"), "{}", stderr(&out));
}
