//! `btps trust request|respond|list` (PROTOCOL.md §3.8, §3.9, §7.4).

use btps_client::Query;
use btps_trust::TrustRecord;
use btps_types::artifact::TransporterType;
use btps_types::json::{Object, Value};
use btps_types::{Identity, UnixMillis};

use super::send::check_document;
use crate::cli::{NetArgs, SenderArgs, TrustCommand, TrustListArgs};
use crate::context::{Context, block_on};
use crate::net::{self, AgentSession, Sender, Sent};
use crate::output::{CliError, Exit, Table};

/// Runs a `btps trust` command.
pub(super) fn run(ctx: &Context, command: TrustCommand) -> Result<Exit, CliError> {
    match command {
        TrustCommand::Request(a) => {
            let mut doc = Object::new()
                .with("id", net::new_id()?)
                .with("name", a.name.as_str())
                .with("email", a.email.as_str())
                .with("reason", a.reason.as_str())
                .with("phone", a.phone.as_str());
            if let Some(m) = &a.message {
                doc.insert("message", m.as_str());
            }
            if let Some(p) = a.privacy {
                doc.insert("privacyType", p.as_str());
            }
            let request_id = doc.get_str("id").unwrap_or_default().to_owned();
            send(
                ctx,
                TransporterType::TrustReq,
                &a.to,
                &a.sender,
                &a.net,
                |_| Ok(doc),
                |o| o.with("requestId", request_id.as_str()),
                &format!("request id {request_id}"),
            )
        }
        TrustCommand::Respond(a) => {
            let id = match &a.request_id {
                Some(id) => id.clone(),
                None => net::new_id()?,
            };
            let decided_at = net::now()?;
            let decision = a.decision;
            let build = |from: &Identity| {
                let mut doc = Object::new()
                    .with("id", id.as_str())
                    .with("decision", decision.as_str())
                    .with("decidedAt", decided_at.to_datetime_string())
                    .with("decidedBy", from.as_str());
                if let Some(m) = &a.message {
                    doc.insert("message", m.as_str());
                }
                if let Some(p) = a.privacy {
                    doc.insert("privacyType", p.as_str());
                }
                Ok(doc)
            };
            send(
                ctx,
                TransporterType::TrustRes,
                &a.to,
                &a.sender,
                &a.net,
                build,
                |o| {
                    o.with("requestId", id.as_str())
                        .with("decision", decision.as_str())
                },
                &format!("decision {decision}, request id {id}"),
            )
        }
        TrustCommand::List(a) => list(ctx, &a),
    }
}

/// Builds the document for the chosen sender's identity, checks it and sends it; prints
/// one line (or JSON with `extra` members).
#[allow(clippy::too_many_arguments, reason = "one send, spelled out")]
fn send(
    ctx: &Context,
    kind: TransporterType,
    to: &Identity,
    sender_args: &SenderArgs,
    net: &NetArgs,
    build: impl FnOnce(&Identity) -> Result<Object, CliError>,
    extra: impl FnOnce(Object) -> Object,
    detail: &str,
) -> Result<Exit, CliError> {
    let (sent, queued, from): (Sent, bool, Identity) = block_on(async {
        let sender = Sender::choose(ctx, sender_args, net, Some(to)).await?;
        let from = sender.identity();
        let result = async {
            let document = build(&from)?;
            check_document(kind, &document, kind.as_str())?;
            sender.send_document(kind, to, document, false, None).await
        }
        .await;
        sender
            .finish(result)
            .map(|sent| (sent, sender.queues(), from))
    })??;
    let what = match kind {
        TransporterType::TrustReq => "trust request",
        _ => "trust response",
    };
    // `accepted` goes without saying; `already accepted` (a re-send) does not.
    let status = if sent.status == "accepted" {
        String::new()
    } else {
        format!("; {}", sent.status)
    };
    ctx.out.emit(
        || {
            if queued {
                format!(
                    "{what} to {to} queued as {} in the outbox of {from} ({detail}{status})\n",
                    sent.id
                )
            } else {
                format!(
                    "{what} delivered to {to} as {} ({detail}{status})\n",
                    sent.id
                )
            }
        },
        || {
            let o = Object::new()
                .with("to", to.as_str())
                .with("id", sent.id.as_str());
            extra(o)
                .with(if queued { "queued" } else { "delivered" }, true)
                .with("status", sent.status)
                .into()
        },
    )?;
    Ok(Exit::Ok)
}

fn time(t: Option<UnixMillis>) -> String {
    t.map_or_else(|| "-".to_owned(), |t| t.to_datetime_string())
}

/// Whether a record is an agent (device) record of the user (PROTOCOL.md §8.2).
fn is_device(r: &TrustRecord) -> bool {
    r.sender_id.starts_with("btps_ag_")
}

/// `btps trust list`.
fn list(ctx: &Context, args: &TrustListArgs) -> Result<Exit, CliError> {
    let mut query = Query::new();
    query.limit = args.limit;
    query.cursor.clone_from(&args.cursor);
    let page = block_on(async {
        let session = AgentSession::open(ctx, &args.net)?;
        let result = session.agent.trust(&query).await.map_err(CliError::from);
        session.finish(result)
    })??;
    ctx.out.emit(
        || {
            let mut incoming = Table::new(&["FROM", "STATUS", "PRIVACY", "DECIDED", "EXPIRES"]);
            let mut devices = Table::new(&["AGENT", "STATUS", "DECIDED", "EXPIRES"]);
            for r in &page.results {
                if is_device(r) {
                    devices.row(vec![
                        r.sender_id.clone(),
                        r.status.as_str().to_owned(),
                        r.decided_at.to_datetime_string(),
                        time(r.expires_at),
                    ]);
                } else {
                    incoming.row(vec![
                        r.sender_id.clone(),
                        r.status.as_str().to_owned(),
                        r.privacy_type.as_str().to_owned(),
                        r.decided_at.to_datetime_string(),
                        time(r.expires_at),
                    ]);
                }
            }
            let mut outgoing = Table::new(&["TO", "STATUS", "PRIVACY", "DECIDED", "EXPIRES"]);
            for r in &page.outgoing {
                outgoing.row(vec![
                    r.receiver_id.clone(),
                    r.status.as_str().to_owned(),
                    r.privacy_type.as_str().to_owned(),
                    r.decided_at.to_datetime_string(),
                    time(r.expires_at),
                ]);
            }
            let mut text = String::new();
            for (title, table) in [
                ("Trusted senders (incoming)", &incoming),
                ("Your requests (outgoing)", &outgoing),
                ("Your devices (agents)", &devices),
            ] {
                text.push_str(title);
                text.push('\n');
                if table.is_empty() {
                    text.push_str("  (none)\n");
                } else {
                    text.push_str(&table.render());
                }
            }
            if page.has_next
                && let Some(c) = &page.cursor
            {
                text.push_str(&format!("more: --cursor {c}\n"));
            }
            text
        },
        || {
            let records = |list: &[TrustRecord]| {
                Value::Array(list.iter().map(|r| Value::Object(r.to_object())).collect())
            };
            Object::new()
                .with("results", records(&page.results))
                .with("outgoing", records(&page.outgoing))
                .with("cursor", page.cursor.clone())
                .with("hasNext", page.has_next)
                .into()
        },
    )?;
    Ok(Exit::Ok)
}
