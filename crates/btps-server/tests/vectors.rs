//! Every server-side interoperability vector case (transporter, agent, control, identity
//! lookup) sent to a running server, with the §13.1 state, and the reply compared with the
//! verdict PROTOCOL.md §13 expects: acceptance or the first error code, the numeric class
//! (§2.6), `reqId`, and for encrypted cases the stored artifact decrypting to `documentJson`.
//! (`response` cases are replies a client verifies; they run in btps-test-support.)

#[path = "it/harness.rs"]
#[allow(dead_code, unreachable_pub)]
mod harness;
#[path = "it/wire.rs"]
#[allow(dead_code, unreachable_pub)]
mod wire;

use std::sync::Arc;

use btps_crypto::KeyPair;
use btps_test_support::dns::StaticDns;
use btps_test_support::vectors::{Case, VectorSet};
use btps_trust::{Mailbox, MessageStore};
use btps_types::ErrorCode;
use btps_types::json::{Object, parse_str};
use harness::{TrustState, reference_time, vectors_dir};
use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let dir = vectors_dir();
    let set = Arc::new(
        VectorSet::load(&dir)
            .unwrap_or_else(|e| panic!("loading vectors from {}: {e}", dir.display())),
    );
    let refresh = set
        .cases
        .iter()
        .find(|c| c.name == "agent_auth_refresh")
        .and_then(|c| parse_str(&c.line).ok())
        .and_then(|p| {
            p.value
                .as_object()
                .and_then(|o| o.get_object("document"))
                .and_then(|d| d.get_str("authToken"))
                .map(str::to_owned)
        });
    let trials: Vec<Trial> = (0..set.cases.len())
        .filter(|i| set.cases[*i].kind != "response")
        .map(|i| {
            let set = set.clone();
            let refresh = refresh.clone();
            let name = set.cases[i].name.clone();
            Trial::test(name, move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(run(&set, &set.cases[i], refresh.as_deref()))
                    .map_err(Failed::from)
            })
        })
        .collect();
    assert!(
        trials.len() >= 50,
        "too few server cases in {}",
        dir.display()
    );
    libtest_mimic::run(&Arguments::from_args(), trials).exit();
}

async fn run(set: &VectorSet, case: &Case, refresh: Option<&str>) -> Result<(), String> {
    let now = reference_time(&case.line);
    // Keys resolve through a real DNS server (hickory, in process) serving dns.json.
    let h = harness::harness_dns(
        now,
        TrustState::for_case(&case.name),
        refresh,
        harness::vector_options(),
        true,
    )
    .await;
    let server = wire::TestServer::start(h.pipeline.clone()).await;
    let mut client = server.connect().await;
    let replies = client.send_lines(&[case.line.as_str()]).await;
    let reply_text = replies
        .first()
        .ok_or_else(|| "no reply".to_owned())?
        .clone();
    let reply = parse_str(&reply_text)
        .map_err(|e| format!("reply is not JSON: {e}: {reply_text}"))?
        .value;
    let reply = reply.as_object().ok_or("reply is not an object")?;
    let status = reply.get_object("status").ok_or("reply without status")?;
    let ok = status.get("ok").and_then(|v| v.as_bool()) == Some(true);
    let code = status.get("code").and_then(|v| v.as_f64()).unwrap_or(0.0);

    // reqId: the line's id whenever it parsed to an object with a string id (§2.4).
    let line_id = parse_str(&case.line).ok().and_then(|p| {
        p.value
            .as_object()
            .and_then(|o| o.get_str("id"))
            .map(str::to_owned)
    });
    if reply.get_str("reqId").map(str::to_owned) != line_id {
        return Err(format!(
            "reqId {:?}, line id {line_id:?}: {reply_text}",
            reply.get_str("reqId")
        ));
    }

    let expected = case.expected();
    let decryption_code = matches!(
        expected.error_code.as_deref(),
        Some("BTP_ERROR_DECRYPTION_UNINTENDED" | "BTP_ERROR_DECRYPTION_FAILED")
    );
    match expected.error_code.as_deref() {
        Some(code_str) if !decryption_code => {
            let want: ErrorCode = code_str
                .parse()
                .map_err(|_| format!("unknown {code_str}"))?;
            let got = status.get_str("errorCode");
            if ok || got != Some(want.as_str()) || code != f64::from(want.status()) {
                return Err(format!(
                    "expected {code_str} ({}), got {reply_text}",
                    want.status()
                ));
            }
            if client.is_closed().await {
                return Err("connection closed after an error reply".into());
            }
        }
        _ => {
            if !ok || code != 200.0 {
                return Err(format!("expected acceptance, got {reply_text}"));
            }
            check_accepted(set, case, reply, &h, &mut client).await?;
            let asked = h.dns_server.as_ref().map_or(0, |d| d.queries());
            if case.kind == "transporter" && asked == 0 {
                return Err("accepted without asking the DNS server".into());
            }
        }
    }
    Ok(())
}

async fn check_accepted(
    set: &VectorSet,
    case: &Case,
    reply: &Object,
    h: &harness::Harness,
    client: &mut wire::TestClient,
) -> Result<(), String> {
    let message = reply
        .get_object("status")
        .and_then(|s| s.get_str("message"))
        .unwrap_or("");
    match case.name.as_str() {
        "control_ping" if message != "pong" => return Err(format!("message {message}")),
        "control_quit" => {
            if message != "bye" {
                return Err(format!("message {message}"));
            }
            if !client.is_closed().await {
                return Err("QUIT did not close the connection".into());
            }
        }
        "identity_lookup_request" => {
            let dns = StaticDns::load(&set.dir.join("dns.json")).map_err(|e| e.0)?;
            btps_crypto::verify_response_object(reply, &dns)
                .map_err(|e| format!("signed lookup reply does not verify: {e}"))?;
            let doc = reply.get_object("document").ok_or("no document")?;
            let pem = harness::read_key("finance-btps1-public.pem");
            if doc.get_str("publicKey").map(str::trim) != Some(pem.trim())
                || doc.get_str("selector") != Some("btps1")
            {
                return Err(format!("lookup document {doc:?}"));
            }
        }
        _ => {}
    }
    if let Some(d) = &case.decrypt {
        // The stored artifact (inbox for transporters, the owner's outbox for agent sends)
        // decrypts to the exact plaintext.
        let line = parse_str(&case.line).map_err(|e| e.to_string())?.value;
        let line = line.as_object().ok_or("line")?;
        let (owner, mailbox, artifact) = match d.artifact_path.as_deref() {
            Some("document") => {
                let env = line.get_object("document").ok_or("document")?;
                (env.get_str("from").ok_or("from")?, Mailbox::Outbox, env)
            }
            _ => (line.get_str("to").ok_or("to")?, Mailbox::Inbox, line),
        };
        let id = artifact.get_str("id").ok_or("id")?;
        let stored = h
            .store
            .get_message(owner, mailbox, id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{id} not stored in {owner}'s {mailbox}"))?;
        // Outbox entries carry the pending delegation {agentId, agentPubKey} (docs/server.md);
        // otherwise the stored artifact is the received one.
        let mut stored_artifact = stored.artifact.clone();
        if mailbox == Mailbox::Outbox {
            let pending = stored_artifact
                .remove("delegation")
                .ok_or("outbox entry without a pending delegation")?;
            let pending = pending.as_object().ok_or("delegation is not an object")?;
            let agent_id = line.get_str("agentId");
            if pending.get_str("agentId") != agent_id || pending.get_str("agentPubKey").is_none() {
                return Err(format!("pending delegation {pending:?}"));
            }
        }
        if stored_artifact != *artifact {
            return Err("stored artifact differs from the received one".into());
        }
        let key = KeyPair::from_pem(
            &std::fs::read_to_string(set.dir.join(&d.receiver_private_key)).unwrap(),
        )
        .map_err(|e| e.to_string())?;
        let want = case.expected().error_code.as_deref();
        match (btps_crypto::decrypt_document(&stored.artifact, &key), want) {
            (Ok(dec), None) if dec.plaintext == d.document_json => {}
            (Ok(dec), _) => return Err(format!("decrypted {}", dec.plaintext)),
            (Err(e), Some(w)) if e.error_code().as_str() == w => {}
            (Err(e), _) => return Err(format!("decrypt: {e}")),
        }
    }
    Ok(())
}
