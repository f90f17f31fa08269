//! `btps key`: import, rotate, status against DNS, activate only once published, retire only
//! after the grace period, and the proofs document.

use btps_crypto::{KeyPair, KeyPolicy, RotationDocument};

use crate::{Env, assert_exit, dns_file, fingerprint, json, stderr, stdout, vector_path};

const BILLING: &str = "billing$vendorcorp.test";

#[test]
fn a_rotation_from_import_to_retirement() {
    let env = Env::new();
    let ring = env.path().join("ring").to_string_lossy().into_owned();
    let key = vector_path("keys/billing-btps1-private.pem");
    let out = env.run(&["key", "import", BILLING, "--key", &key, "--keyring", &ring]);
    assert_exit(&out, 0);

    // (The vectors' table already publishes another key at btps2.)
    let out = env.run(&[
        "--json",
        "key",
        "rotate",
        BILLING,
        "--selector",
        "rot2",
        "--keyring",
        &ring,
    ]);
    assert_exit(&out, 0);
    let plan = json(&out);
    assert_eq!(plan["newSelector"], "rot2");
    let name = plan["record"]["name"].as_str().unwrap().to_owned();
    let txt = plan["record"]["value"].as_str().unwrap().to_owned();
    assert_eq!(name, "rot2._btps.identity.billing.vendorcorp.test");
    let new_fp = plan["proof"]["newPublicKeyFingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        plan["proof"]["oldPublicKeyFingerprint"].as_str().unwrap(),
        fingerprint("billing-btps1")
    );

    // Not published yet: status says so and activate refuses.
    let out = env.run(&[
        "--json",
        "key",
        "status",
        BILLING,
        "--keyring",
        &ring,
        "--dns-file",
        &dns_file(),
    ]);
    assert_exit(&out, 0);
    let status = json(&out);
    assert_eq!(status["keys"][0]["dns"], "published");
    assert_eq!(status["keys"][1]["state"], "pending");
    assert_eq!(status["keys"][1]["dns"], "not published");
    let out = env.run(&[
        "key",
        "activate",
        BILLING,
        "--keyring",
        &ring,
        "--dns-file",
        &dns_file(),
    ]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("not published"), "{}", stderr(&out));

    // Published: activate switches; the old key is retiring for the grace period.
    let mut table: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dns_file()).unwrap()).unwrap();
    table[&name] = serde_json::json!([txt]);
    let published = env.file("dns.json", table.to_string().as_bytes());
    let out = env.run(&[
        "key",
        "activate",
        BILLING,
        "--keyring",
        &ring,
        "--dns-file",
        &published,
    ]);
    assert_exit(&out, 0);
    let out = env.run(&[
        "--json",
        "key",
        "status",
        BILLING,
        "--keyring",
        &ring,
        "--dns-file",
        &published,
    ]);
    let status = json(&out);
    assert_eq!(status["keys"][0]["state"], "retiring");
    assert_eq!(status["keys"][1]["state"], "active");
    assert_eq!(status["keys"][1]["fingerprint"], new_fp.as_str());

    // The proofs document verifies with the old key.
    let out = env.run(&["key", "proofs", "--keyring", &ring]);
    assert_exit(&out, 0);
    let (doc, skipped) =
        RotationDocument::parse(stdout(&out).as_bytes(), KeyPolicy::DEFAULT).unwrap();
    assert_eq!((doc.proofs.len(), skipped), (1, 0));
    let old = KeyPair::from_pem(&std::fs::read_to_string(&key).unwrap()).unwrap();
    doc.proofs[0]
        .verify(old.public_key(), doc.proofs[0].valid_from())
        .unwrap();

    // Retiring waits for the grace period unless forced.
    let out = env.run(&["key", "retire", BILLING, "--keyring", &ring]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("grace period"), "{}", stderr(&out));
    let out = env.run(&[
        "--json",
        "key",
        "retire",
        BILLING,
        "--force",
        "--keyring",
        &ring,
    ]);
    assert_exit(&out, 0);
    assert_eq!(json(&out)["retired"][0], "btps1");
    let out = env.run(&[
        "--json",
        "key",
        "status",
        BILLING,
        "--keyring",
        &ring,
        "--dns-file",
        &published,
    ]);
    assert_eq!(json(&out)["keys"].as_array().unwrap().len(), 1);
}
