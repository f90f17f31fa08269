//! `btps artifact verify` and `btps artifact decrypt` over the interoperability vectors.

use std::time::SystemTime;

use btps_crypto::KeyPair;
use btps_types::json::{Value, parse_str};
use btps_types::{UnixMillis, format_datetime, signing};

use crate::{
    Env, all_cases, assert_exit, case, dns_file, expected, fingerprint, json, refusing_nameserver,
    stderr, stdout, vector_path,
};

/// Codes that only decryption produces: such cases verify.
const DECRYPT_CODES: [&str; 2] = [
    "BTP_ERROR_DECRYPTION_FAILED",
    "BTP_ERROR_DECRYPTION_UNINTENDED",
];

fn line(case: &serde_json::Value) -> &[u8] {
    case["line"].as_str().unwrap().as_bytes()
}

/// `btps --json artifact verify - --dns-file vectors/dns.json [extra]` on a case's line.
fn verify_case(env: &Env, name: &str, extra: &[&str]) -> std::process::Output {
    let dns = dns_file();
    let mut args = vec!["artifact", "verify", "-", "--dns-file", &dns];
    args.extend_from_slice(extra);
    env.run_with_input(&args, line(&case(name)))
}

/// Every signed transporter case behaves as its verdict says (`expectRust` over `expect`);
/// decryption-stage failures verify (their decrypt step is tested below).
#[test]
fn every_signed_transporter_case_verifies_as_expected() {
    let env = Env::new();
    let dns = dns_file();
    let mut checked = 0;
    for case in all_cases() {
        if case["kind"] != "transporter" || case["signed"] != true {
            continue;
        }
        let name = case["name"].as_str().unwrap();
        let expect = expected(&case);
        let code = expect["errorCode"]
            .as_str()
            .filter(|c| !DECRYPT_CODES.contains(c));
        let out = env.run_with_input(
            &["--json", "artifact", "verify", "-", "--dns-file", &dns],
            line(&case),
        );
        let report = json(&out);
        match code {
            None => {
                assert_exit(&out, 0);
                assert_eq!(report["verdict"], "valid", "{name}");
                assert!(report.get("error").is_none(), "{name}");
                assert!(stderr(&out).is_empty(), "{name}: {}", stderr(&out));
            }
            Some(code) => {
                assert_exit(&out, 1);
                assert_eq!(report["verdict"], "invalid", "{name}");
                assert_eq!(report["error"]["code"], code, "{name}");
                assert!(
                    stderr(&out).trim_end().ends_with(&format!("({code})")),
                    "{name}: {}",
                    stderr(&out)
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} transporter cases");
}

#[test]
fn accepted_artifact_report() {
    let env = Env::new();
    let out = verify_case(&env, "transporter_doc_invoice_plain", &[]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    for expected in [
        "kind       transporter\n".to_owned(),
        "type       BTPS_DOC\n".to_owned(),
        "from       billing$vendorcorp.test\n".to_owned(),
        "encrypted  no\n".to_owned(),
        format!(
            "signer     billing$vendorcorp.test, selector btps1, fingerprint {}\n",
            fingerprint("billing-btps1")
        ),
        "freshness  not checked (pass --max-age)\n".to_owned(),
        "verdict    valid\n".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected:?} in\n{text}");
    }
}

#[test]
fn tampered_artifact_fails_with_its_code() {
    let env = Env::new();
    let out = verify_case(&env, "neg_tampered_document_value", &[]);
    assert_exit(&out, 1);
    assert!(stdout(&out).contains("verdict    invalid: BTP_ERROR_SIG_VERIFICATION"));
    assert_eq!(
        stderr(&out),
        "btps: signature verification failed: signature does not verify (BTP_ERROR_SIG_VERIFICATION)\n"
    );

    let out = verify_case(&env, "neg_selector_sender_key_mismatch", &["--json"]);
    assert_exit(&out, 1);
    assert_eq!(json(&out)["error"]["code"], "BTP_ERROR_SIG_MISMATCH");
    assert_eq!(json(&out)["error"]["status"], 401);

    let out = verify_case(&env, "neg_unknown_selector", &[]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("btps9._btps.identity.billing.vendorcorp.test: not found"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("(BTP_ERROR_RESOLVE_PUBKEY)"));

    let out = verify_case(&env, "neg_truncated_json", &["--json"]);
    assert_exit(&out, 1);
    assert_eq!(json(&out)["kind"], serde_json::Value::Null);
    assert_eq!(json(&out)["error"]["code"], "BTP_ERROR_INVALID_JSON");

    let out = verify_case(&env, "neg_duplicate_key_different_value", &[]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("/to"), "{}", stderr(&out));
    assert!(stderr(&out).contains("(BTP_ERROR_VALIDATION)"));
}

#[test]
fn delegated_and_attested() {
    let env = Env::new();
    let out = verify_case(&env, "transporter_delegated_saas", &["--json"]);
    assert_exit(&out, 0);
    let report = json(&out);
    assert_eq!(
        report["signer"]["agentId"],
        "btps_ag_7d0b6a3e-2c41-4f8e-9a55-1b2c3d4e5f60"
    );
    assert_eq!(
        report["signer"]["fingerprint"],
        fingerprint("agent-device").as_str()
    );
    assert_eq!(report["delegator"]["identity"], "admin$vendorcorp.test");
    assert_eq!(
        report["delegator"]["fingerprint"],
        fingerprint("admin-vendorcorp").as_str()
    );
    assert!(report.get("attestor").is_none());
    assert!(
        report["deviceCheck"]
            .as_str()
            .unwrap()
            .contains("no delegation list"),
        "{report}"
    );

    // Accepted although btps-node rejects it (PROTOCOL.md §9.3): the delegation signature
    // excludes the attestation.
    let out = verify_case(&env, "transporter_delegated_attested", &[]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("attestor   attest$trustauthority.test, selector btps1"),
        "{text}"
    );
    assert!(text.contains("verdict    valid"), "{text}");

    let out = verify_case(&env, "neg_delegation_other_domain", &[]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("(BTP_ERROR_DELEGATION_INVALID)"));
    let out = verify_case(&env, "neg_delegation_agent_key_swapped", &[]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("(BTP_ERROR_DELEGATION_SIG_VERIFICATION)"));
}

/// `btps artifact decrypt` of a case with the given `--key` values.
fn decrypt_case(env: &Env, name: &str, keys: &[&str], extra: &[&str]) -> std::process::Output {
    let dns = dns_file();
    let mut args = vec!["artifact", "decrypt", "-", "--dns-file", &dns];
    for key in keys {
        args.extend(["--key", *key]);
    }
    args.extend_from_slice(extra);
    env.run_with_input(&args, line(&case(name)))
}

#[test]
fn decrypt_with_the_right_key() {
    let env = Env::new();
    for name in [
        "transporter_doc_invoice_encrypted",
        "transporter_doc_unicode_encrypted",
        "transporter_doc_escapes_encrypted",
        "transporter_doc_nested_encrypted",
        "transporter_delegated_saas",
    ] {
        let c = case(name);
        let key = vector_path(c["decrypt"]["receiverPrivateKey"].as_str().unwrap());
        let document_json = c["decrypt"]["documentJson"].as_str().unwrap();

        // --raw: the plaintext byte for byte.
        let out = decrypt_case(&env, name, &[&key], &["--raw"]);
        assert_exit(&out, 0);
        assert_eq!(stdout(&out), document_json, "{name}");

        // Default: JSON.stringify(document, null, 2), the same document.
        let out = decrypt_case(&env, name, &[&key], &[]);
        assert_exit(&out, 0);
        let pretty = stdout(&out);
        assert!(pretty.starts_with("{\n  \""), "{name}: {pretty}");
        let back = parse_str(&pretty).unwrap().value;
        assert_eq!(back.to_string(), document_json, "{name}");

        // --json: verification, document and plaintext.
        let out = decrypt_case(&env, name, &[&key], &["--json"]);
        assert_exit(&out, 0);
        let json = json(&out);
        assert_eq!(json["verification"]["verdict"], "valid");
        assert_eq!(json["encrypted"], true);
        assert_eq!(json["plaintext"], document_json);
        assert_eq!(json["document"], c["decrypt"]["document"], "{name}");
    }
}

#[test]
fn decrypt_failures() {
    let env = Env::new();
    let finance1 = vector_path("keys/finance-btps1-private.pem");
    let finance2 = vector_path("keys/finance-btps2-private.pem");

    // The wrong key: not intended for this receiver.
    let out = decrypt_case(
        &env,
        "transporter_doc_invoice_encrypted",
        &[&vector_path("keys/billing-btps1-private.pem")],
        &[],
    );
    assert_exit(&out, 1);
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("(BTP_ERROR_DECRYPTION_UNINTENDED)"));
    let out = decrypt_case(
        &env,
        "neg_encrypted_for_other_receiver",
        &[&finance1],
        &["--json"],
    );
    assert_exit(&out, 1);
    let json = json(&out);
    assert_eq!(json["verification"]["verdict"], "valid");
    assert_eq!(json["error"]["code"], "BTP_ERROR_DECRYPTION_UNINTENDED");

    // Re-signed ciphertext: the signature verifies, GCM authentication fails.
    let out = verify_case(&env, "neg_gcm_auth_fails_resigned", &[]);
    assert_exit(&out, 0);
    let out = decrypt_case(&env, "neg_gcm_auth_fails_resigned", &[&finance1], &[]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("(BTP_ERROR_DECRYPTION_FAILED)"));

    // Never decrypt what does not verify.
    let out = decrypt_case(&env, "neg_tampered_ciphertext", &[&finance1], &[]);
    assert_exit(&out, 1);
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("(BTP_ERROR_SIG_VERIFICATION)"));

    // Rotation: only the btps1 key fails; with both, the selector's key is tried first.
    let out = decrypt_case(&env, "neg_rotated_decrypt_with_old_key", &[&finance1], &[]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("(BTP_ERROR_DECRYPTION_UNINTENDED)"));
    let rotated = case("transporter_doc_rotated_selector_btps2");
    let out = decrypt_case(
        &env,
        "transporter_doc_rotated_selector_btps2",
        &[&format!("btps1={finance1}"), &format!("btps2={finance2}")],
        &["--raw"],
    );
    assert_exit(&out, 0);
    assert_eq!(
        stdout(&out),
        rotated["decrypt"]["documentJson"].as_str().unwrap()
    );

    // No key at all, an unreadable key.
    let out = decrypt_case(&env, "transporter_doc_invoice_encrypted", &[], &[]);
    assert_exit(&out, 64);
    assert!(stderr(&out).contains("--key"), "{}", stderr(&out));
    let out = decrypt_case(
        &env,
        "transporter_doc_invoice_encrypted",
        &["/nonexistent.pem"],
        &[],
    );
    assert_exit(&out, 64);
}

#[test]
fn decrypt_plain_needs_no_key_and_uses_profile_keys() {
    let env = Env::new();
    let plain = case("transporter_doc_invoice_plain");
    let out = decrypt_case(&env, "transporter_doc_invoice_plain", &[], &["--raw"]);
    assert_exit(&out, 0);
    let document = parse_str(plain["line"].as_str().unwrap()).unwrap().value;
    let document = document
        .as_object()
        .unwrap()
        .get("document")
        .unwrap()
        .to_string();
    assert_eq!(stdout(&out), document);

    // Keys from the profile: `key` under `selector`, then `decrypt_keys`.
    let finance1 = vector_path("keys/finance-btps1-private.pem");
    let finance2 = vector_path("keys/finance-btps2-private.pem");
    assert_exit(&env.run(&["profile", "set", "key", &finance1]), 0);
    assert_exit(&env.run(&["profile", "set", "selector", "btps1"]), 0);
    assert_exit(
        &env.run(&[
            "profile",
            "set",
            "decrypt_keys",
            &format!("btps2={finance2}"),
        ]),
        0,
    );
    for name in [
        "transporter_doc_invoice_encrypted",
        "transporter_doc_rotated_selector_btps2",
    ] {
        let out = decrypt_case(&env, name, &[], &["--raw"]);
        assert_exit(&out, 0);
        assert_eq!(
            stdout(&out),
            case(name)["decrypt"]["documentJson"].as_str().unwrap(),
            "{name}"
        );
    }
}

#[test]
fn agent_artifacts_need_the_device_key() {
    let env = Env::new();
    let out = verify_case(&env, "agent_inbox_fetch", &[]);
    assert_exit(&out, 64);
    assert!(stderr(&out).contains("--agent-key"), "{}", stderr(&out));
    let device = vector_path("keys/agent-device-public.pem");
    let out = verify_case(&env, "agent_inbox_fetch", &["--agent-key", &device]);
    assert_exit(&out, 0);
    let out = verify_case(&env, "neg_agent_tampered_query", &["--agent-key", &device]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("(BTP_ERROR_SIG_VERIFICATION)"));
    // auth.request is self-signed with the key it registers.
    let out = verify_case(&env, "agent_auth_request", &[]);
    assert_exit(&out, 0);

    // The encrypted send envelope inside an agent artifact.
    let c = case("agent_artifact_send_encrypted");
    let key = vector_path(c["decrypt"]["receiverPrivateKey"].as_str().unwrap());
    let out = decrypt_case(
        &env,
        "agent_artifact_send_encrypted",
        &[&key],
        &["--raw", "--agent-key", &device],
    );
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), c["decrypt"]["documentJson"].as_str().unwrap());
}

#[test]
fn replies_and_unsigned_kinds() {
    let env = Env::new();
    let out = verify_case(&env, "response_identity_lookup_signed", &["--json"]);
    assert_exit(&out, 0);
    assert_eq!(json(&out)["kind"], "response");
    assert_eq!(json(&out)["signer"]["identity"], "server$buyer.test");
    let out = verify_case(&env, "neg_response_tampered_public_key", &[]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("(BTP_ERROR_SIG_VERIFICATION)"));

    for name in [
        "control_ping",
        "identity_lookup_request",
        "response_success_unsigned",
    ] {
        let out = verify_case(&env, name, &["--json"]);
        assert_exit(&out, 1);
        assert_eq!(json(&out)["verdict"], "unsigned", "{name}");
        assert!(stderr(&out).contains("not signed"), "{name}");
    }
}

/// A copy of the vector invoice signed now with the vectors' `billing` key.
fn fresh_invoice() -> String {
    let c = case("transporter_doc_invoice_plain");
    let mut value = parse_str(c["line"].as_str().unwrap()).unwrap().value;
    let obj = value.as_object_mut().unwrap();
    let now = UnixMillis::from_system_time(SystemTime::now()).unwrap();
    obj.insert("issuedAt", format_datetime(now));
    obj.remove("signature");
    let pem = std::fs::read_to_string(vector_path("keys/billing-btps1-private.pem")).unwrap();
    let key = KeyPair::from_pem(&pem).unwrap();
    btps_crypto::sign_in_place(obj, signing::TRANSPORTER, &key).unwrap();
    Value::Object(obj.clone()).to_string()
}

#[test]
fn freshness_only_on_request() {
    let env = Env::new();
    let c = case("transporter_doc_invoice_plain");
    let issued = parse_str(c["line"].as_str().unwrap()).unwrap().value;
    let issued = issued
        .as_object()
        .unwrap()
        .get_str("issuedAt")
        .unwrap()
        .to_owned();

    // The vectors are old: without --max-age they verify, with it they are stale.
    let out = verify_case(&env, "transporter_doc_invoice_plain", &["--max-age", "300"]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("(BTP_ERROR_STALE_ARTIFACT)"),
        "{}",
        stderr(&out)
    );
    // At the instant it was issued, it is fresh.
    let out = verify_case(
        &env,
        "transporter_doc_invoice_plain",
        &["--max-age", "300", "--at", &issued, "--json"],
    );
    assert_exit(&out, 0);
    assert_eq!(json(&out)["freshness"]["checked"], true);
    assert_eq!(json(&out)["freshness"]["ageSeconds"], 0);
    // Delegated: the reference time is delegation.issuedAt.
    let out = verify_case(&env, "transporter_delegated_saas", &["--max-age", "300"]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("delegation.issuedAt"),
        "{}",
        stderr(&out)
    );

    // An artifact signed now.
    let line = fresh_invoice();
    let dns = dns_file();
    let out = env.run_with_input(
        &[
            "artifact",
            "verify",
            "-",
            "--dns-file",
            &dns,
            "--max-age",
            "300",
        ],
        line.as_bytes(),
    );
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("s old, within 300 s"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn inputs_and_dns_sources() {
    let env = Env::new();
    let c = case("transporter_doc_invoice_plain");
    // A file with a trailing newline, as NDJSON lines are saved.
    let file = env.file(
        "a.json",
        format!("{}\n", c["line"].as_str().unwrap()).as_bytes(),
    );
    let dns = dns_file();
    let out = env.run(&["artifact", "verify", &file, "--dns-file", &dns]);
    assert_exit(&out, 0);
    assert!(stdout(&out).starts_with(&format!("file       {file}\n")));

    assert_exit(
        &env.run(&[
            "artifact",
            "verify",
            "/nonexistent.json",
            "--dns-file",
            &dns,
        ]),
        64,
    );
    assert_exit(
        &env.run(&[
            "artifact",
            "verify",
            &file,
            "--dns-file",
            "/nonexistent.json",
        ]),
        64,
    );

    // The profile's dns_file when no flag is given.
    assert_exit(&env.run(&["profile", "set", "dns_file", &dns]), 0);
    assert_exit(&env.run(&["artifact", "verify", &file]), 0);

    // A flag overrides the profile: a nameserver that refuses is a temporary failure.
    let ns = refusing_nameserver();
    let out = env.run(&[
        "--json",
        "artifact",
        "verify",
        &file,
        "--nameserver",
        &ns,
        "--timeout",
        "1",
    ]);
    assert_exit(&out, 2);
    let json = json(&out);
    assert_eq!(json["verdict"], "unverified");
    assert_eq!(json["error"]["code"], "BTP_ERROR_DNS_UNAVAILABLE");
    assert_eq!(json["error"]["temporary"], true);
}
