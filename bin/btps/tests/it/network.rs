//! The network commands against a real server: `btps agent`, `send` (agent, direct,
//! delegated), `trust`, `inbox`, `outbox`, `sentbox`, `trash`, `draft`, over TLS, with keys
//! and host records from a real DNS server (see `support`).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use btps_trust::Mailbox;
use serde_json::Value;

use crate::{assert_exit, json, stderr, stdout};
use support::{BILLING, FINANCE, Live, invoice, key};

/// Runs and parses `--json` output, which must succeed.
#[track_caller]
fn ok_json(out: &Output) -> Value {
    assert_exit(out, 0);
    json(out)
}

fn profile_text(live: &Live, name: &str) -> String {
    std::fs::read_to_string(live.config_dir().join(format!("profiles/{name}.toml"))).unwrap()
}

/// The direct-send options for billing (its vectors key).
fn as_billing() -> Vec<String> {
    vec![
        "--key".into(),
        key("billing-btps1-private.pem"),
        "--from".into(),
        BILLING.into(),
    ]
}

fn with<'a>(args: &[&'a str], more: &'a [String]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(more.iter().map(String::as_str));
    all
}

#[test]
fn agent_login_saves_the_state_and_rotates_the_refresh_token() {
    let live = Live::start();
    let token = live.auth_token(FINANCE);
    let out = live.run_net(&[
        "--json",
        "--profile",
        "fin",
        "agent",
        "login",
        "--identity",
        FINANCE,
        "--token",
        &token,
        "--name",
        "test device",
    ]);
    let login = ok_json(&out);
    let agent_id = login["agentId"].as_str().unwrap().to_owned();
    assert!(agent_id.starts_with("btps_ag_"), "{login}");
    assert_eq!(login["identity"], FINANCE);
    assert_eq!(login["decryptBy"], FINANCE);
    let device_key = login["deviceKey"].as_str().unwrap().to_owned();
    let mode = std::fs::metadata(&device_key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(device_key.starts_with(&*live.config_dir().to_string_lossy()));

    // The profile holds the agent table and what was given, so later commands need only
    // --profile.
    let text = profile_text(&live, "fin");
    for needle in [
        "identity = \"finance$buyer.test\"",
        "[agent]",
        &format!("agent_id = \"{agent_id}\""),
        "refresh_token = ",
        "expires_at = ",
        "decrypt_by = \"finance$buyer.test\"",
        &format!("nameservers = [\"{}\"]", live.nameserver()),
        &format!("ca = \"{}\"", live.ca.display()),
        &format!("device_key = \"{device_key}\""),
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    let token_of = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("refresh_token = "))
            .unwrap()
            .to_owned()
    };
    let first_token = token_of(&text);

    // The one-time token is used up.
    let again = live.run_net(&[
        "--profile",
        "other",
        "agent",
        "login",
        "--identity",
        FINANCE,
        "--token",
        &token,
    ]);
    assert_exit(&again, 3);
    assert!(
        stderr(&again).contains("(BTP_ERROR_AUTHENTICATION_INVALID)"),
        "{}",
        stderr(&again)
    );

    let shown = ok_json(&live.run(&["--json", "--profile", "fin", "agent", "show"]));
    assert_eq!(shown["agentId"], agent_id.as_str());
    assert_eq!(shown["expired"], false);
    let out = live.run(&["--profile", "fin", "agent", "show"]);
    assert_exit(&out, 0);
    assert!(!stdout(&out).contains(&first_token[1..10]), "no secret");
    assert!(stdout(&out).contains(&agent_id));

    let pong = ok_json(&live.run(&["--json", "--profile", "fin", "agent", "ping"]));
    assert_eq!(pong["ok"], true);
    assert_eq!(pong["agentId"], agent_id.as_str());
    let out = live.run(&["--profile", "fin", "agent", "ping"]);
    assert_exit(&out, 0);
    assert!(stdout(&out).starts_with("pong: "), "{}", stdout(&out));

    // An explicit refresh rotates the token, and the new one is saved.
    let refreshed = ok_json(&live.run(&["--json", "--profile", "fin", "agent", "refresh"]));
    assert_eq!(refreshed["agentId"], agent_id.as_str());
    let second_token = token_of(&profile_text(&live, "fin"));
    assert_ne!(first_token, second_token);
    // And it works: the old one would have revoked the agent (§8.4).
    assert_exit(&live.run(&["--profile", "fin", "agent", "ping"]), 0);

    // Logout forgets the state and the key.
    let out = ok_json(&live.run(&["--json", "--profile", "fin", "agent", "logout"]));
    assert_eq!(out["agentId"], agent_id.as_str());
    assert_eq!(out["deviceKeyRemoved"], true);
    assert!(!std::path::Path::new(&device_key).exists());
    assert!(!profile_text(&live, "fin").contains("[agent]"));
    assert!(
        profile_text(&live, "fin").contains("identity = "),
        "the rest stays"
    );
    let out = live.run(&["--profile", "fin", "agent", "ping"]);
    assert_exit(&out, 64);
    assert!(
        stderr(&out).contains("btps agent login"),
        "{}",
        stderr(&out)
    );
    let out = ok_json(&live.run(&["--json", "--profile", "fin", "agent", "logout"]));
    assert_eq!(out["agentId"], Value::Null);
}

#[test]
fn trust_handshake_direct_sends_and_the_inbox() {
    let live = Live::start();
    assert_exit(&live.login("fin", FINANCE), 0);
    let billing = as_billing();

    // Billing asks Finance for trust, directly with its key (default profile: flags only).
    let out = live.run_net(&with(
        &[
            "--json",
            "trust",
            "request",
            "--to",
            FINANCE,
            "--name",
            "Vendor Corp",
            "--email",
            "billing@vendorcorp.test",
            "--reason",
            "Monthly invoices",
            "--phone",
            "+1 555 0100",
            "--privacy",
            "mixed",
        ],
        &billing,
    ));
    let request = ok_json(&out);
    assert_eq!(request["delivered"], true, "{request}");
    assert_eq!(request["status"], "accepted");
    let request_id = request["requestId"].as_str().unwrap().to_owned();

    let inbox = ok_json(&live.run(&["--json", "--profile", "fin", "inbox"]));
    let entry = inbox["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["artifact"]["type"] == "TRUST_REQ")
        .unwrap_or_else(|| panic!("{inbox}"));
    assert_eq!(entry["artifact"]["document"]["id"], request_id.as_str());
    assert_eq!(entry["meta"]["seen"], false);
    assert_eq!(inbox["hasNext"], false);

    // Finance accepts through its agent: queued in its outbox.
    let out = live.run(&[
        "--json",
        "--profile",
        "fin",
        "trust",
        "respond",
        "--to",
        BILLING,
        "--decision",
        "accepted",
        "--request-id",
        &request_id,
        "--privacy",
        "mixed",
    ]);
    let response = ok_json(&out);
    assert_eq!(response["queued"], true, "{response}");
    assert_eq!(response["decision"], "accepted");
    let outbox = live.messages(FINANCE, Mailbox::Outbox);
    assert!(
        outbox
            .iter()
            .any(|m| m.artifact.get_str("type") == Some("TRUST_RES")),
        "{outbox:?}"
    );
    let list = ok_json(&live.run(&["--json", "--profile", "fin", "trust", "list"]));
    let record = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["senderId"] == BILLING)
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(record["status"], "accepted");
    let out = live.run(&["--profile", "fin", "trust", "list"]);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains(BILLING), "{}", stdout(&out));

    // Billing, now trusted, sends an invoice directly and keeps the signed artifact.
    let file = live.file("invoice.json", &invoice("INV-1"));
    let saved = live.env.path().join("sent");
    let saved_str = saved.to_string_lossy().into_owned();
    let out = live.run_net(&with(
        &[
            "--json", "send", &file, "--to", FINANCE, "--save", &saved_str,
        ],
        &billing,
    ));
    let sent = ok_json(&out);
    let result = &sent["results"][0];
    assert_eq!(result["delivered"], true, "{sent}");
    assert_eq!(result["status"], "accepted");
    assert_eq!(result["file"], file.as_str());
    let plain_id = result["id"].as_str().unwrap().to_owned();
    // Sent again as it is: the receiver has it already.
    let again = saved.join(format!("{plain_id}.json"));
    let out = live.run_net(&with(
        &["--json", "send", &again.to_string_lossy()],
        &billing,
    ));
    let resent = ok_json(&out);
    assert_eq!(
        resent["results"][0]["status"], "already accepted",
        "{resent}"
    );
    assert_eq!(resent["results"][0]["id"], plain_id.as_str());

    // An encrypted one; text output names the recipient and the id.
    let encrypted_file = live.file("invoice-2.json", &invoice("INV-2"));
    let out = live.run_net(&with(
        &["send", &encrypted_file, "--to", FINANCE, "--encrypt"],
        &billing,
    ));
    assert_exit(&out, 0);
    let line = stdout(&out);
    assert!(
        line.contains(&format!("delivered to {FINANCE} as ")),
        "{line}"
    );
    assert!(line.contains("(accepted)"), "{line}");
    let inbox = live.messages(FINANCE, Mailbox::Inbox);
    let stored = inbox
        .iter()
        .find(|m| m.artifact.get("encryption").is_some_and(|e| !e.is_null()))
        .unwrap_or_else(|| panic!("{inbox:?}"));
    let encrypted_id = stored.id.clone();

    // The inbox: the table, then the encrypted artifact verified and decrypted with the
    // profile's decryption key.
    let out = live.run(&["--profile", "fin", "inbox"]);
    assert_exit(&out, 0);
    let table = stdout(&out);
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table.contains(&encrypted_id) && table.contains(&plain_id),
        "{table}"
    );
    assert!(table.contains("3 shown"), "{table}");

    let out = live.run(&["--profile", "fin", "inbox", "show", &encrypted_id]);
    assert_exit(&out, 64);
    assert!(stderr(&out).contains("add-decrypt-key"), "{}", stderr(&out));
    let out = live.run(&[
        "--json",
        "--profile",
        "fin",
        "profile",
        "add-decrypt-key",
        "btps1",
        &key("finance-btps1-private.pem"),
    ]);
    assert_eq!(ok_json(&out)["added"], true);
    let shown = ok_json(&live.run(&["--json", "--profile", "fin", "inbox", "show", &encrypted_id]));
    let expected: Value = serde_json::from_str(&invoice("INV-2")).unwrap();
    assert_eq!(shown["document"], expected);
    assert_eq!(shown["encrypted"], true);
    assert!(shown["artifact"]["document"].is_string(), "as received");
    assert_eq!(shown["signer"]["identity"], BILLING);
    assert_eq!(shown["signer"]["selector"], "btps1");
    let out = live.run(&["--profile", "fin", "inbox", "show", &encrypted_id, "--raw"]);
    assert_exit(&out, 0);
    let raw: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(raw, expected);
    let out = live.run(&["--profile", "fin", "inbox", "show", &encrypted_id]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("verdict    valid"), "{text}");
    assert!(text.contains("\"title\": \"Invoice INV-2\""), "{text}");
    let out = live.run(&["--profile", "fin", "inbox", "show", "no-such-id"]);
    assert_exit(&out, 1);

    // Seen, delete, trash.
    let seen = ok_json(&live.run(&["--json", "--profile", "fin", "inbox", "seen", &encrypted_id]));
    assert_eq!(seen["count"], 1);
    let inbox = ok_json(&live.run(&["--json", "--profile", "fin", "inbox", "list"]));
    let entry = inbox["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["artifact"]["id"] == encrypted_id.as_str())
        .unwrap();
    assert_eq!(entry["meta"]["seen"], true);
    let page = ok_json(&live.run(&["--json", "--profile", "fin", "inbox", "--limit", "1"]));
    assert_eq!(page["results"].as_array().unwrap().len(), 1);
    assert_eq!(page["hasNext"], true, "{page}");
    let cursor = page["cursor"].as_str().unwrap().to_owned();
    let next = ok_json(&live.run(&[
        "--json",
        "--profile",
        "fin",
        "inbox",
        "--limit",
        "1",
        "--cursor",
        &cursor,
    ]));
    assert_ne!(
        next["results"][0]["artifact"]["id"],
        page["results"][0]["artifact"]["id"]
    );

    let deleted = ok_json(&live.run(&["--json", "--profile", "fin", "inbox", "delete", &plain_id]));
    assert_eq!(deleted["count"], 1);
    let trash = ok_json(&live.run(&["--json", "--profile", "fin", "trash"]));
    assert!(
        trash["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["artifact"]["id"] == plain_id.as_str()),
        "{trash}"
    );
    let out = ok_json(&live.run(&["--json", "--profile", "fin", "trash", "delete", &plain_id]));
    assert_eq!(out["count"], 1);
    let sentbox = ok_json(&live.run(&["--json", "--profile", "fin", "sentbox"]));
    assert_eq!(sentbox["results"], serde_json::json!([]));
}

#[test]
fn agent_sends_queue_in_the_outbox_and_drafts_round_trip() {
    let live = Live::start();
    assert_exit(&live.login("fin", FINANCE), 0);

    // Agent mode: the encrypted invoice is queued in Finance's outbox as a device-signed
    // envelope.
    let file = live.file("invoice.json", &invoice("INV-7"));
    let sent = ok_json(&live.run(&[
        "--json",
        "--profile",
        "fin",
        "send",
        &file,
        "--to",
        BILLING,
        "--encrypt",
    ]));
    let result = &sent["results"][0];
    assert_eq!(result["queued"], true, "{sent}");
    assert_eq!(result["status"], "accepted");
    let id = result["id"].as_str().unwrap().to_owned();
    let outbox = live.messages(FINANCE, Mailbox::Outbox);
    let queued = outbox
        .iter()
        .find(|m| m.id == id)
        .unwrap_or_else(|| panic!("{outbox:?}"));
    assert_eq!(queued.artifact.get_str("to"), Some(BILLING));
    assert!(
        queued.artifact.get("document").unwrap().is_string(),
        "encrypted"
    );
    assert!(
        queued
            .artifact
            .get("encryption")
            .unwrap()
            .as_object()
            .is_some()
    );

    let page = ok_json(&live.run(&["--json", "--profile", "fin", "outbox"]));
    let entry = &page["results"][0];
    assert_eq!(entry["artifact"]["id"], id.as_str());
    assert_eq!(entry["meta"]["delivery"]["status"], "pending");
    let out = live.run(&["--profile", "fin", "outbox"]);
    assert_exit(&out, 0);
    let table = stdout(&out);
    assert!(
        table.contains("STATUS") && table.contains("pending"),
        "{table}"
    );

    // Several files: one line each; a saved signed artifact cannot go through the agent,
    // so that file fails and the exit is the worst.
    let second = live.file("invoice-8.json", &invoice("INV-8"));
    let artifact = btps_types::json::to_js_string(&queued.artifact.clone().into());
    let signed = live.file("signed.json", &artifact);
    let out = live.run(&[
        "--json",
        "--profile",
        "fin",
        "send",
        &second,
        &signed,
        "--to",
        BILLING,
    ]);
    assert_exit(&out, 64);
    let report = json(&out);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["queued"], true);
    assert_eq!(results[1]["queued"], false);
    assert_eq!(results[1]["status"], "failed");
    assert!(results[1]["error"]["message"].is_string(), "{report}");
    assert!(
        stderr(&out).contains("1 of 2 files not sent"),
        "{}",
        stderr(&out)
    );

    let cancelled = ok_json(&live.run(&["--json", "--profile", "fin", "outbox", "cancel", &id]));
    assert_eq!(cancelled["cancelled"], serde_json::json!([id]));
    assert!(
        live.messages(FINANCE, Mailbox::Outbox)
            .iter()
            .all(|m| m.id != id)
    );
    let trash = ok_json(&live.run(&["--json", "--profile", "fin", "trash"]));
    assert!(
        trash["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["artifact"]["id"] == id.as_str()),
        "{trash}"
    );

    // Drafts.
    let created = ok_json(&live.run(&[
        "--json",
        "--profile",
        "fin",
        "draft",
        "create",
        &file,
        "--type",
        "BTPS_DOC",
    ]));
    let draft = created["id"].as_str().unwrap().to_owned();
    let out = live.run(&["--profile", "fin", "draft", "list"]);
    assert_exit(&out, 0);
    assert!(stdout(&out).contains(&draft) && stdout(&out).contains("Invoice INV-7"));
    let changed = live.file("changed.json", &invoice("INV-7b"));
    let updated = ok_json(&live.run(&[
        "--json",
        "--profile",
        "fin",
        "draft",
        "update",
        &draft,
        &changed,
    ]));
    assert_eq!(updated["updated"], 1);
    let drafts = ok_json(&live.run(&["--json", "--profile", "fin", "draft", "list"]));
    assert_eq!(
        drafts["results"][0]["artifact"]["document"]["title"],
        "Invoice INV-7b"
    );
    let out = live.run(&["--profile", "fin", "draft", "update", "no-such", &changed]);
    assert_exit(&out, 1);
    let deleted = ok_json(&live.run(&["--json", "--profile", "fin", "draft", "delete", &draft]));
    assert_eq!(deleted["count"], 1);
    let drafts = ok_json(&live.run(&["--json", "--profile", "fin", "draft", "list"]));
    assert_eq!(drafts["results"], serde_json::json!([]));
    let bad = live.file("bad.json", r#"{"title":"no invoice"}"#);
    let out = live.run(&["--profile", "fin", "draft", "create", &bad]);
    assert_exit(&out, 64);
    assert!(
        stderr(&out).contains("BTP_ERROR_VALIDATION"),
        "{}",
        stderr(&out)
    );

    // A revoked device is refused (exit 3, with the code).
    let shown = ok_json(&live.run(&["--json", "--profile", "fin", "agent", "show"]));
    live.revoke_agent(shown["agentId"].as_str().unwrap(), FINANCE);
    let out = live.run(&["--profile", "fin", "send", &file, "--to", BILLING]);
    assert_exit(&out, 3);
    assert!(
        stderr(&out).contains("(BTP_ERROR_TRUST_NOT_ALLOWED)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn delegated_sends_carry_a_delegation_and_verify_in_the_inbox() {
    let live = Live::start();
    live.trust(BILLING, FINANCE, "billing-btps1-public.pem");
    let file = live.file("invoice.json", &invoice("INV-9"));
    let out = live.run_net(&[
        "--json",
        "send",
        &file,
        "--from",
        BILLING,
        "--to",
        FINANCE,
        "--encrypt",
        "--device-key",
        &key("agent-device-private.pem"),
        "--agent-id",
        "btps_ag_saas-platform",
        "--delegator",
        "admin$vendorcorp.test",
        "--delegator-key",
        &key("admin-vendorcorp-private.pem"),
    ]);
    let sent = ok_json(&out);
    assert_eq!(sent["results"][0]["delivered"], true, "{sent}");
    let id = sent["results"][0]["id"].as_str().unwrap().to_owned();
    let inbox = live.messages(FINANCE, Mailbox::Inbox);
    let stored = inbox.iter().find(|m| m.id == id).unwrap();
    let delegation = stored.artifact.get_object("delegation").unwrap();
    assert_eq!(delegation.get_str("agentId"), Some("btps_ag_saas-platform"));
    assert_eq!(
        delegation.get_str("signedBy"),
        Some("admin$vendorcorp.test")
    );

    // The recipient's agent verifies the delegation and decrypts.
    assert_exit(&live.login("fin", FINANCE), 0);
    let shown = ok_json(&live.run(&[
        "--json",
        "--profile",
        "fin",
        "inbox",
        "show",
        &id,
        "--key",
        &format!("btps1={}", key("finance-btps1-private.pem")),
    ]));
    assert_eq!(shown["signer"]["agentId"], "btps_ag_saas-platform");
    assert!(shown["signer"]["deviceCheck"].is_string(), "{shown}");
    assert_eq!(
        shown["signer"]["delegator"]["identity"],
        "admin$vendorcorp.test"
    );
    assert_eq!(
        shown["document"],
        serde_json::from_str::<Value>(&invoice("INV-9")).unwrap()
    );

    // A delegator key that is not its DNS key is refused before anything is sent.
    let out = live.run_net(&[
        "send",
        &file,
        "--from",
        BILLING,
        "--to",
        FINANCE,
        "--device-key",
        &key("agent-device-private.pem"),
        "--agent-id",
        "btps_ag_saas-platform",
        "--delegator",
        "admin$vendorcorp.test",
        "--delegator-key",
        &key("evil-admin-private.pem"),
    ]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("BTP_ERROR_SIG_MISMATCH"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn refusals_exit_3_with_the_code_and_unreachable_servers_exit_2() {
    let live = Live::start();
    let file = live.file("invoice.json", &invoice("INV-3"));
    let billing = as_billing();

    // No trust: refused (exit 3) with the code, in text and JSON.
    let out = live.run_net(&with(&["send", &file, "--to", FINANCE], &billing));
    assert_exit(&out, 3);
    assert!(
        stderr(&out).contains("(BTP_ERROR_TRUST_NON_EXISTENT)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
    let out = live.run_net(&with(&["--json", "send", &file, "--to", FINANCE], &billing));
    assert_exit(&out, 3);
    let report = json(&out);
    let result = &report["results"][0];
    assert_eq!(result["delivered"], false);
    assert_eq!(result["status"], "refused");
    assert_eq!(result["error"]["code"], "BTP_ERROR_TRUST_NON_EXISTENT");
    assert_eq!(result["error"]["temporary"], false);

    // A bad token.
    let out = live.run_net(&[
        "--json",
        "agent",
        "login",
        "--identity",
        FINANCE,
        "--token",
        "WRONGTOKEN23",
    ]);
    assert_exit(&out, 3);
    assert_eq!(
        json(&out)["error"]["code"],
        "BTP_ERROR_AUTHENTICATION_INVALID"
    );

    // A server that is down: temporary (exit 2).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let down = format!("127.0.0.1:{port}");
    let out = live.run_net(&with(
        &["--json", "send", &file, "--to", FINANCE, "--server", &down],
        &billing,
    ));
    assert_exit(&out, 2);
    let report = json(&out);
    assert_eq!(report["results"][0]["error"]["temporary"], true, "{report}");
    let out = live.run_net(&[
        "agent",
        "login",
        "--identity",
        FINANCE,
        "--token",
        "X",
        "--server",
        &down,
    ]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("cannot connect"), "{}", stderr(&out));

    // TLS: the system's trust store does not know the self-signed certificate (exit 1; 64
    // on a machine without a trust store); --insecure accepts it.
    let nameserver = live.nameserver();
    let no_ca = with(
        &["send", &file, "--to", FINANCE, "--nameserver", &nameserver],
        &billing,
    );
    let out = live.run(&no_ca);
    if out.status.code() == Some(1) {
        assert!(stderr(&out).contains("certificate"), "{}", stderr(&out));
    } else {
        assert_exit(&out, 64);
    }
    let mut insecure = no_ca.clone();
    insecure.push("--insecure");
    let out = live.run(&insecure);
    assert_exit(&out, 3);
    assert!(
        stderr(&out).contains("BTP_ERROR_TRUST_NON_EXISTENT"),
        "{}",
        stderr(&out)
    );

    // Nothing to send with, and a document that is not one.
    let out = live.run_net(&["send", &file, "--to", FINANCE]);
    assert_exit(&out, 64);
    assert!(stderr(&out).contains("no sender"), "{}", stderr(&out));
    let bad = live.file("bad.json", r#"{"title":"x"}"#);
    let out = live.run_net(&with(&["send", &bad, "--to", FINANCE], &billing));
    assert_exit(&out, 64);
    assert!(
        stderr(&out).contains("BTP_ERROR_VALIDATION"),
        "{}",
        stderr(&out)
    );
    let out = live.run_net(&with(
        &[
            "send",
            &file,
            "--to",
            FINANCE,
            "--type",
            "TRUST_REQ",
            "--encrypt",
        ],
        &billing,
    ));
    assert_exit(&out, 64);
}

#[test]
fn agent_login_with_an_ed25519_device_key() {
    let live = Live::start();
    let token = live.auth_token(FINANCE);
    let login = ok_json(&live.run_net(&[
        "--json",
        "--profile",
        "fin",
        "agent",
        "login",
        "--identity",
        FINANCE,
        "--token",
        &token,
        "--key-type",
        "ed25519",
    ]));
    assert_eq!(login["keyType"], "ed25519", "{login}");
    let pem = std::fs::read_to_string(login["deviceKey"].as_str().unwrap()).unwrap();
    let device = btps_crypto::KeyPair::from_pem(&pem).unwrap();
    assert_eq!(device.key_type(), btps_crypto::KeyType::Ed25519);
    assert_eq!(login["fingerprint"], device.public_key().fingerprint());

    let shown = ok_json(&live.run(&["--json", "--profile", "fin", "agent", "show"]));
    assert_eq!(shown["keyType"], "ed25519");
    let out = live.run(&["--profile", "fin", "agent", "show"]);
    assert!(
        stdout(&out).contains("(ed25519, fingerprint "),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        ok_json(&live.run(&["--json", "--profile", "fin", "agent", "ping"]))["ok"],
        true
    );
    ok_json(&live.run(&["--json", "--profile", "fin", "agent", "refresh"]));
    ok_json(&live.run(&["--json", "--profile", "fin", "inbox"]));

    // An unknown key type is a usage error.
    let out = live.run_net(&[
        "agent",
        "login",
        "--identity",
        FINANCE,
        "--token",
        &token,
        "--key-type",
        "dsa",
    ]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(stderr(&out).contains("rsa or ed25519"), "{}", stderr(&out));
}

#[test]
fn delegated_sends_with_an_ed25519_device_key() {
    let live = Live::start();
    live.trust(BILLING, FINANCE, "billing-btps1-public.pem");
    let device = btps_crypto::KeyPair::generate_ed25519().unwrap();
    let device_file = live.file("device.pem", &device.to_pkcs8_pem().unwrap());
    let file = live.file("invoice.json", &invoice("INV-ED"));
    let sent = ok_json(&live.run_net(&[
        "--json",
        "send",
        &file,
        "--from",
        BILLING,
        "--to",
        FINANCE,
        "--device-key",
        &device_file,
        "--agent-id",
        "btps_ag_saas-ed25519",
        "--delegator",
        "admin$vendorcorp.test",
        "--delegator-key",
        &key("admin-vendorcorp-private.pem"),
    ]));
    assert_eq!(sent["results"][0]["delivered"], true, "{sent}");
    let id = sent["results"][0]["id"].as_str().unwrap().to_owned();
    let inbox = live.messages(FINANCE, Mailbox::Inbox);
    let stored = inbox.iter().find(|m| m.id == id).unwrap();
    let delegation = stored.artifact.get_object("delegation").unwrap();
    let agent_key =
        btps_crypto::PublicKey::from_pem(delegation.get_str("agentPubKey").unwrap()).unwrap();
    assert_eq!(&agent_key, device.public_key());
}
