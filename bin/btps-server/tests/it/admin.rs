//! The admin subcommands end to end against a real server: identities, trust records, and
//! an agent onboarded with a token from `agent token`, listed, then revoked.

use btps_crypto::PublicKey;
use btps_types::json::{Object, Value, to_js_string};

use crate::support::{
    BILLING, DataDir, FINANCE, LineClient, Reply, agent_line, auth_request, billing_key,
    device_key, doc_line, inbox_ids, invoice, key_path, now, stderr, unique_id,
};

fn path(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// An identity lookup (§3.6) for `identity`: the key the server hosts for it.
fn lookup(client: &mut LineClient, identity: &str) -> Reply {
    let line = Object::new()
        .with("identity", identity)
        .with("from", BILLING)
        .with("hostSelector", "btps1")
        .with("version", "1.0.0")
        .with("id", unique_id("lookup"))
        .with("issuedAt", now().to_datetime_string());
    client.request(&to_js_string(&Value::Object(line)))
}

fn fingerprint(pem: &str) -> String {
    PublicKey::from_pem(pem).unwrap().fingerprint().to_owned()
}

#[test]
fn identity_subcommands() {
    let dir = DataDir::new();
    let finance_key = key_path("finance-btps1-public.pem");
    let out = dir.admin_ok(&[
        "identity",
        "add",
        FINANCE,
        "--public-key",
        path(&finance_key),
    ]);
    assert!(
        out.starts_with(&format!("hosting {FINANCE} (selector btps1")),
        "{out}"
    );
    let billing_key = key_path("billing-btps2-public.pem");
    let extra = "extra$local.test";
    dir.admin_ok(&[
        "identity",
        "add",
        extra,
        "--public-key",
        path(&billing_key),
        "--selector",
        "btps2",
    ]);
    let list = dir.admin_ok(&["identity", "list"]);
    assert!(list.contains(&format!("{FINANCE}\tbtps1\n")), "{list}");
    assert!(list.contains(&format!("{extra}\tbtps2\n")), "{list}");

    assert_eq!(
        dir.admin_ok(&["identity", "remove", extra]),
        format!("removed {extra}\n")
    );
    let list = dir.admin_ok(&["identity", "list"]);
    assert!(!list.contains(extra), "{list}");
    assert!(list.contains(FINANCE), "{list}");

    // Errors: not hosted, not an identity, not a key.
    let again = dir.admin(&["identity", "remove", extra]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("is not hosted here"),
        "{}",
        stderr(&again)
    );
    let bad = dir.admin(&[
        "identity",
        "add",
        "nobody",
        "--public-key",
        path(&finance_key),
    ]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("is not an identity"),
        "{}",
        stderr(&bad)
    );
    let not_a_key = dir.path.join("config.toml");
    let bad = dir.admin(&["identity", "add", FINANCE, "--public-key", path(&not_a_key)]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("public key"), "{}", stderr(&bad));

    // The server answers identity lookups from what the subcommands left.
    let mut dir = dir;
    let server = dir.start();
    let mut client = server.connect();
    let found = lookup(&mut client, FINANCE);
    assert!(found.ok(), "{:?}", found.0);
    assert_eq!(found.document()["selector"], "btps1");
    assert_eq!(
        fingerprint(found.document()["publicKey"].as_str().unwrap()),
        fingerprint(&std::fs::read_to_string(&finance_key).unwrap())
    );
    assert_eq!(
        lookup(&mut client, extra).error_code(),
        Some("BTP_ERROR_IDENTITY_NOT_FOUND")
    );
    drop(client);
    server.stop();
    // The server identity was added on start.
    let list = dir.admin_ok(&["identity", "list"]);
    assert!(list.contains("server$local.test\tbtps1\n"), "{list}");
}

#[test]
fn identity_add_refuses_small_rsa_and_ed25519_keys() {
    let dir = DataDir::new();
    // A public test key of 1024 bits (PROTOCOL.md §4.2: under 2048 bits is refused).
    let small =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rsa1024-public.pem");
    let out = dir.admin(&["identity", "add", FINANCE, "--public-key", path(&small)]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("RSA key of 1024 bits is outside the accepted sizes"),
        "{}",
        stderr(&out)
    );
    // Ed25519: peers encrypt to identity keys and btps-node verifies them, so RSA only.
    let ed = dir.path.join("ed25519-public.pem");
    let pair = btps_crypto::KeyPair::generate_ed25519().unwrap();
    std::fs::write(&ed, pair.public_key().to_pem_with_newline()).unwrap();
    let out = dir.admin(&["identity", "add", FINANCE, "--public-key", path(&ed)]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("identity keys must be RSA"),
        "{}",
        stderr(&out)
    );
    let list = dir.admin_ok(&["identity", "list"]);
    assert!(!list.contains(FINANCE), "{list}");
}

#[test]
fn trust_and_agent_subcommands_against_a_running_server() {
    let mut dir = DataDir::new();
    let set = dir.admin_ok(&[
        "trust",
        "set",
        BILLING,
        FINANCE,
        "--status",
        "accepted",
        "--privacy",
        "mixed",
    ]);
    assert!(
        set.ends_with(&format!("\t{BILLING} -> {FINANCE}\taccepted\n")),
        "{set}"
    );
    let list = dir.admin_ok(&["trust", "list"]);
    assert!(
        list.contains(&format!(
            "{BILLING} -> {FINANCE}\taccepted\tmixed\texpires -"
        )),
        "{list}"
    );
    assert_eq!(dir.admin_ok(&["trust", "list", "--receiver", BILLING]), "");
    let token = dir.admin_ok(&["agent", "token", FINANCE]);
    let token = token.trim_end();
    assert_eq!(token.len(), 12, "{token:?}");
    assert!(!token.contains(char::is_whitespace));
    assert_eq!(dir.admin_ok(&["agent", "list", FINANCE]), "");
    // Tokens only for hosted identities: of a hosted domain, or added with `identity add`.
    let foreign = "ops$partner.test";
    let out = dir.admin(&["agent", "token", foreign]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not hosted here"),
        "{}",
        stderr(&out)
    );
    let key = key_path("finance-btps2-public.pem");
    dir.admin_ok(&["identity", "add", foreign, "--public-key", path(&key)]);
    assert_eq!(
        dir.admin_ok(&["agent", "token", foreign]).trim_end().len(),
        12
    );

    let server = dir.start();

    // The file store is locked while the server runs: the subcommands say so.
    for args in [
        &["identity", "list"][..],
        &["trust", "list"],
        &["agent", "token", FINANCE],
    ] {
        let out = dir.admin(args);
        assert!(!out.status.success(), "{args:?} ran beside the server");
        let err = stderr(&out);
        assert!(
            err.contains("in use by another process") && err.contains("stop it first"),
            "{args:?}: {err}"
        );
    }

    let mut client = server.connect();
    let doc_id = unique_id("inv");
    let reply = client.request(&doc_line(&doc_id, now(), &invoice(), &billing_key()));
    assert!(reply.ok(), "{:?}", reply.0);

    let device = device_key();
    let auth = auth_request(&mut client, token, &device);
    assert!(auth.ok(), "{:?}", auth.0);
    let agent_id = auth.document()["agentId"].as_str().unwrap().to_owned();
    let refresh = auth.document()["refreshToken"].as_str().unwrap().to_owned();
    assert!(agent_id.starts_with("btps_ag_"), "{agent_id}");
    assert_eq!(auth.document()["decryptBy"], FINANCE);
    // The token was single-use.
    let reused = auth_request(&mut client, token, &device);
    assert_eq!(
        reused.error_code(),
        Some("BTP_ERROR_AUTHENTICATION_INVALID"),
        "{:?}",
        reused.0
    );
    assert_eq!(
        inbox_ids(&mut client, &agent_id, &device),
        [doc_id.as_str()]
    );
    drop(client);
    server.stop();

    let agents = dir.admin_ok(&["agent", "list", FINANCE]);
    assert!(
        agents.starts_with(&format!("{agent_id}\taccepted\t")),
        "{agents}"
    );
    assert_eq!(agents.lines().count(), 1, "{agents}");
    let revoked = dir.admin_ok(&["agent", "revoke", FINANCE, &agent_id]);
    assert_eq!(
        revoked,
        format!("revoked {agent_id} (1 refresh token(s) deleted)\n")
    );
    let agents = dir.admin_ok(&["agent", "list", FINANCE]);
    assert!(
        agents.starts_with(&format!("{agent_id}\trevoked\t")),
        "{agents}"
    );
    // `agent revoke` touches agent records only.
    let not_agent = dir.admin(&["agent", "revoke", FINANCE, BILLING]);
    assert!(!not_agent.status.success());
    assert!(
        stderr(&not_agent).contains("is not an agent id"),
        "{}",
        stderr(&not_agent)
    );
    let unknown = dir.admin(&["agent", "revoke", FINANCE, "btps_ag_unknown"]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("no agent btps_ag_unknown"),
        "{}",
        stderr(&unknown)
    );

    assert_eq!(
        dir.admin_ok(&["trust", "revoke", BILLING, FINANCE]),
        format!("revoked {BILLING} -> {FINANCE}\n")
    );
    let list = dir.admin_ok(&["trust", "list", "--receiver", FINANCE]);
    assert!(
        list.contains(&format!("{BILLING} -> {FINANCE}\trevoked\t")),
        "{list}"
    );
    assert!(
        list.contains(&format!("{agent_id} -> {FINANCE}\trevoked\t")),
        "{list}"
    );

    // After a restart the revoked agent and sender are refused.
    let server = dir.start();
    let mut client = server.connect();
    let fetch = client.request(&agent_line(
        "inbox.fetch",
        &agent_id,
        None,
        &unique_id("fetch"),
        &device,
    ));
    assert_eq!(
        fetch.error_code(),
        Some("BTP_ERROR_TRUST_NOT_ALLOWED"),
        "{:?}",
        fetch.0
    );
    // Its refresh token was deleted: it cannot come back.
    let refresh_doc = Object::new()
        .with("identity", FINANCE)
        .with("authToken", refresh.as_str())
        .with("publicKey", device.public_key().to_pem());
    let refreshed = client.request(&agent_line(
        "auth.refresh",
        &agent_id,
        Some(refresh_doc.into()),
        &unique_id("refresh"),
        &device,
    ));
    assert_eq!(
        refreshed.error_code(),
        Some("BTP_ERROR_AUTHENTICATION_INVALID"),
        "{:?}",
        refreshed.0
    );
    let doc = client.request(&doc_line(
        &unique_id("inv"),
        now(),
        &invoice(),
        &billing_key(),
    ));
    assert_eq!(
        doc.error_code(),
        Some("BTP_ERROR_TRUST_NOT_ALLOWED"),
        "{:?}",
        doc.0
    );
    drop(client);
    server.stop();
    let agents = dir.admin_ok(&["agent", "list", FINANCE]);
    assert!(
        agents.starts_with(&format!("{agent_id}\trevoked\t")),
        "{agents}"
    );
}
