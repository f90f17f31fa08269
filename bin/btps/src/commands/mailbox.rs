//! The mailboxes, through the agent (PROTOCOL.md §3.5, §3.10): `btps inbox`, `outbox`,
//! `sentbox`, `trash` and `draft`.

use btps_client::{Mailbox, Page, PageEntry, Query};
use btps_crypto::KeyPair;
use btps_types::json::{Object, Value, to_js_string};

use super::artifact::{key_json, key_text};
use super::send::{check_document, read_object};
use crate::cli::{
    DraftCommand, IdsArgs, InboxArgs, InboxCommand, ListArgs, NetArgs, OutboxArgs, OutboxCommand,
    QueryArgs, SentboxArgs, SentboxCommand, ShowArgs, TrashArgs, TrashCommand,
};
use crate::context::{Context, block_on};
use crate::keys::{decryption_keys, key_flags};
use crate::net::{self, AgentSession};
use crate::output::{CliError, Exit, Table, pretty};
use crate::verify::{self, Options};

/// `type` of the local delivery-failure artifacts (PROTOCOL.md §3.3).
const DELIVERY_FAILURE: &str = "BTP_DELIVERY_FAILURE";

/// The largest page the server gives (§3.10), for scanning the inbox.
const MAX_PAGE: u32 = 1000;

/// Runs `future` with the profile's agent; a rotated refresh token is saved, and the
/// session's result checked.
fn with_agent<T>(
    ctx: &Context,
    net: &NetArgs,
    f: impl AsyncFnOnce(&AgentSession) -> Result<T, CliError>,
) -> Result<T, CliError> {
    block_on(async {
        let session = AgentSession::open(ctx, net)?;
        let result = f(&session).await;
        session.finish(result)
    })?
}

fn query(args: &QueryArgs) -> Query {
    Query {
        since: args.since,
        until: args.until,
        limit: args.limit,
        cursor: args.cursor.clone(),
        sort: args.sort,
        filters: None,
    }
}

/// `btps inbox …`.
pub(super) fn inbox(ctx: &Context, args: InboxArgs) -> Result<Exit, CliError> {
    match args.command {
        None => list(ctx, Mailbox::Inbox, &args.list),
        Some(InboxCommand::List(list_args)) => list(ctx, Mailbox::Inbox, &list_args),
        Some(InboxCommand::Show(a)) => show(ctx, &a),
        Some(InboxCommand::Seen(a)) => count(ctx, &a, "marked seen", async |agent, ids| {
            agent.inbox_seen(ids).await
        }),
        Some(InboxCommand::Delete(a)) => {
            count(ctx, &a, "moved to the trash", async |agent, ids| {
                agent.inbox_delete(ids).await
            })
        }
    }
}

/// `btps outbox …`.
pub(super) fn outbox(ctx: &Context, args: OutboxArgs) -> Result<Exit, CliError> {
    match args.command {
        None => list(ctx, Mailbox::Outbox, &args.list),
        Some(OutboxCommand::List(a)) => list(ctx, Mailbox::Outbox, &a),
        Some(OutboxCommand::Cancel(a)) => cancel(ctx, &a),
    }
}

/// `btps sentbox …`.
pub(super) fn sentbox(ctx: &Context, args: SentboxArgs) -> Result<Exit, CliError> {
    match args.command {
        None => list(ctx, Mailbox::Sentbox, &args.list),
        Some(SentboxCommand::List(a)) => list(ctx, Mailbox::Sentbox, &a),
        Some(SentboxCommand::Delete(a)) => {
            count(ctx, &a, "moved to the trash", async |agent, ids| {
                agent.sentbox_delete(ids).await
            })
        }
    }
}

/// `btps trash …`.
pub(super) fn trash(ctx: &Context, args: TrashArgs) -> Result<Exit, CliError> {
    match args.command {
        None => list(ctx, Mailbox::Trash, &args.list),
        Some(TrashCommand::List(a)) => list(ctx, Mailbox::Trash, &a),
        Some(TrashCommand::Delete(a)) => count(ctx, &a, "deleted for good", async |agent, ids| {
            agent.trash_delete(ids).await
        }),
    }
}

/// `btps draft …`.
pub(super) fn draft(ctx: &Context, command: DraftCommand) -> Result<Exit, CliError> {
    match command {
        DraftCommand::List(a) => list(ctx, Mailbox::Drafts, &a),
        DraftCommand::Create(a) => {
            let document = read_object(&a.file)?;
            check_document(a.kind, &document, &a.file.display().to_string())?;
            let kind = a.kind;
            let id = with_agent(ctx, &a.net, async |s| {
                Ok(s.agent.draft_create(kind, document).await?)
            })?;
            ctx.out.emit(
                || format!("draft {id} created ({kind})\n"),
                || {
                    Object::new()
                        .with("id", id.as_str())
                        .with("type", kind.as_str())
                        .into()
                },
            )?;
            Ok(Exit::Ok)
        }
        DraftCommand::Update(a) => {
            let document = read_object(&a.file)?;
            let updated = with_agent(ctx, &a.net, async |s| {
                Ok(s.agent.draft_update(&a.id, document).await?)
            })?;
            ctx.out.emit(
                || {
                    if updated > 0 {
                        format!("draft {} updated\n", a.id)
                    } else {
                        String::new()
                    }
                },
                || {
                    Object::new()
                        .with("id", a.id.as_str())
                        .with("updated", updated as f64)
                        .into()
                },
            )?;
            if updated == 0 {
                return Err(CliError::failed(format!("no draft {}", a.id)).reported());
            }
            Ok(Exit::Ok)
        }
        DraftCommand::Delete(a) => count(ctx, &a, "moved to the trash", async |agent, ids| {
            agent.draft_delete(ids).await
        }),
    }
}

/// An action over ids that answers a count (`seen`, `delete`).
fn count(
    ctx: &Context,
    args: &IdsArgs,
    done: &str,
    action: impl AsyncFnOnce(&btps_client::Agent, &[&str]) -> btps_client::Result<u64>,
) -> Result<Exit, CliError> {
    let ids: Vec<&str> = args.ids.iter().map(String::as_str).collect();
    let n = with_agent(ctx, &args.net, async |s| Ok(action(&s.agent, &ids).await?))?;
    ctx.out.emit(
        || format!("{n} of {} {done}\n", ids.len()),
        || {
            Object::new()
                .with(
                    "ids",
                    Value::Array(ids.iter().map(|i| Value::from(*i)).collect()),
                )
                .with("count", n as f64)
                .into()
        },
    )?;
    Ok(Exit::Ok)
}

/// `btps outbox cancel`.
fn cancel(ctx: &Context, args: &IdsArgs) -> Result<Exit, CliError> {
    let ids: Vec<&str> = args.ids.iter().map(String::as_str).collect();
    let cancelled = with_agent(ctx, &args.net, async |s| {
        Ok(s.agent.outbox_cancel(&ids).await?)
    })?;
    ctx.out.emit(
        || {
            let mut text = format!("{} of {} cancelled\n", cancelled.len(), ids.len());
            for id in &cancelled {
                text.push_str(&format!("  {id}\n"));
            }
            text
        },
        || {
            Object::new()
                .with(
                    "cancelled",
                    Value::Array(cancelled.iter().map(|i| Value::from(i.as_str())).collect()),
                )
                .into()
        },
    )?;
    Ok(Exit::Ok)
}

/// The page as the server's QueryResult document.
fn page_json(page: &Page) -> Value {
    let results = page
        .results
        .iter()
        .map(|e| {
            let mut o = Object::new().with("artifact", e.artifact.clone());
            if let Some(meta) = &e.meta {
                o.insert("meta", meta.clone());
            }
            Value::Object(o)
        })
        .collect();
    Object::new()
        .with("results", Value::Array(results))
        .with("cursor", page.cursor.clone())
        .with("hasNext", page.has_next)
        .with("total", page.total.map(|t| t as f64))
        .into()
}

fn meta_str<'a>(e: &'a PageEntry, member: &str) -> &'a str {
    e.meta
        .as_ref()
        .and_then(|m| m.get_str(member))
        .unwrap_or("-")
}

fn member<'a>(e: &'a PageEntry, name: &str) -> &'a str {
    e.artifact.get_str(name).unwrap_or("-")
}

fn encrypted(e: &PageEntry) -> bool {
    e.artifact.get("encryption").is_some_and(|v| !v.is_null())
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

/// What a draft is about: the invoice title, the requester's name, or the decision.
fn summary(e: &PageEntry) -> String {
    let doc = e.artifact.get_object("document");
    ["title", "name", "decision"]
        .iter()
        .find_map(|m| doc.and_then(|d| d.get_str(m)))
        .unwrap_or("-")
        .to_owned()
}

/// The human listing of a page.
fn page_text(mailbox: Mailbox, page: &Page) -> String {
    let name = match mailbox {
        Mailbox::Inbox => "inbox",
        Mailbox::Outbox => "outbox",
        Mailbox::Sentbox => "sentbox",
        Mailbox::Drafts => "drafts",
        _ => "trash",
    };
    if page.results.is_empty() {
        return format!("the {name} is empty\n");
    }
    let mut table = match mailbox {
        Mailbox::Inbox => Table::new(&["ID", "TYPE", "FROM", "STORED", "SEEN", "ENCRYPTED"]),
        Mailbox::Outbox => Table::new(&["ID", "TYPE", "TO", "STATUS", "ATTEMPTS", "LAST ERROR"]),
        Mailbox::Sentbox => Table::new(&["ID", "TYPE", "TO", "STORED"]),
        Mailbox::Drafts => Table::new(&["ID", "TYPE", "SUMMARY", "STORED"]),
        _ => Table::new(&["ID", "TYPE", "FROM", "TO", "STORED"]),
    };
    for e in &page.results {
        let id = member(e, "id").to_owned();
        let kind = member(e, "type").to_owned();
        let stored = meta_str(e, "storedAt").to_owned();
        table.row(match mailbox {
            Mailbox::Inbox => vec![
                id,
                kind,
                member(e, "from").to_owned(),
                stored,
                yes_no(e.seen()),
                yes_no(encrypted(e)),
            ],
            Mailbox::Outbox => {
                let delivery = e.meta.as_ref().and_then(|m| m.get_object("delivery"));
                let get = |m: &str| {
                    delivery.and_then(|d| d.get(m)).map_or_else(
                        || "-".to_owned(),
                        |v| match v {
                            Value::String(s) => s.to_string(),
                            other => to_js_string(other),
                        },
                    )
                };
                vec![
                    id,
                    kind,
                    member(e, "to").to_owned(),
                    get("status"),
                    get("attempts"),
                    get("lastError"),
                ]
            }
            Mailbox::Sentbox => vec![id, kind, member(e, "to").to_owned(), stored],
            Mailbox::Drafts => vec![id, kind, summary(e), stored],
            _ => vec![
                id,
                kind,
                member(e, "from").to_owned(),
                member(e, "to").to_owned(),
                stored,
            ],
        });
    }
    let mut text = table.render();
    let shown = page.results.len();
    match page.total {
        Some(total) => text.push_str(&format!("{shown} shown of {total}")),
        None => text.push_str(&format!("{shown} shown")),
    }
    if page.has_next
        && let Some(c) = &page.cursor
    {
        text.push_str(&format!("; more: --cursor {c}"));
    }
    text.push('\n');
    text
}

/// Lists a mailbox.
fn list(ctx: &Context, mailbox: Mailbox, args: &ListArgs) -> Result<Exit, CliError> {
    let q = query(&args.query);
    let page = with_agent(ctx, &args.net, async |s| {
        Ok(s.agent.fetch(mailbox, &q).await?)
    })?;
    ctx.out
        .emit(|| page_text(mailbox, &page), || page_json(&page))?;
    Ok(Exit::Ok)
}

/// What `inbox show` found and checked.
struct Shown {
    entry: PageEntry,
    report: Option<verify::Report>,
    document: Value,
    plaintext: Option<String>,
    encrypted: bool,
}

/// `btps inbox show`: finds the artifact, verifies it, decrypts it.
fn show(ctx: &Context, args: &ShowArgs) -> Result<Exit, CliError> {
    let flags = key_flags(&args.keys);
    // Keys given on the command line are checked before anything else.
    let flag_keys = if flags.is_empty() {
        None
    } else {
        Some(decryption_keys(ctx, &flags)?)
    };
    let shown = with_agent(ctx, &args.net, async |s| {
        let entry = find(&s.agent, &args.id).await?;
        if entry.artifact.get_str("type") == Some(DELIVERY_FAILURE) {
            // Local and unsigned (PROTOCOL.md §3.3): nothing to verify or decrypt.
            let document = entry
                .artifact
                .get("document")
                .cloned()
                .unwrap_or(Value::Null);
            return Ok(Shown {
                entry,
                report: None,
                document,
                plaintext: None,
                encrypted: false,
            });
        }
        let bytes = to_js_string(&Value::Object(entry.artifact.clone()));
        let opts = Options {
            max_age_ms: None,
            now: net::now()?,
            agent_key: None,
        };
        let (_, report) = verify::verify(bytes.as_bytes(), s.agent.client().dns(), &opts).await;
        if let Err(e) = &report.outcome {
            let mut e = e.clone();
            e.message = format!("artifact {}: {}", args.id, e.message);
            return Err(e);
        }
        let encrypted = encrypted(&entry);
        let profile_keys;
        let keys: &[(String, KeyPair)] = match &flag_keys {
            Some(keys) => keys,
            None if encrypted => {
                profile_keys = decryption_keys(ctx, &[])?;
                &profile_keys
            }
            None => &[],
        };
        if encrypted && keys.is_empty() {
            return Err(CliError::usage(
                "the document is encrypted and no private key was given: pass --key or set \
                 `key` or `decrypt_keys` in the profile (btps profile add-decrypt-key)",
            ));
        }
        let pairs: Vec<(&str, &KeyPair)> = keys.iter().map(|(s, k)| (s.as_str(), k)).collect();
        let decrypted = btps_crypto::decrypt_with_any(&entry.artifact, &pairs)
            .map_err(|e| CliError::protocol(e.error_code(), e.to_string()))?;
        Ok(Shown {
            entry,
            report: Some(report),
            document: decrypted.document,
            plaintext: Some(decrypted.plaintext),
            encrypted: decrypted.encrypted,
        })
    })?;

    if ctx.out.is_json() {
        let signer = shown.report.as_ref().and_then(signer_json);
        let mut o = Object::new()
            .with("artifact", shown.entry.artifact.clone())
            .with("document", shown.document.clone())
            .with("signer", signer)
            .with("encrypted", shown.encrypted);
        if let Some(meta) = &shown.entry.meta {
            o.insert("meta", meta.clone());
        }
        ctx.out.write(&(pretty(&o.into()) + "\n"))?;
    } else if args.raw {
        match &shown.plaintext {
            Some(text) => ctx.out.write(text)?,
            None => ctx.out.write(&to_js_string(&shown.document))?,
        }
    } else {
        ctx.out.write(&show_text(&shown))?;
    }
    Ok(Exit::Ok)
}

/// The verified signer: the signing key, and for delegated artifacts the delegator (and
/// attestor) inside.
fn signer_json(report: &verify::Report) -> Option<Value> {
    let mut signer = key_json(report.signer.as_ref()?);
    if let Value::Object(o) = &mut signer {
        if let Some(d) = &report.delegator {
            o.insert("delegator", key_json(d));
        }
        if let Some(a) = &report.attestor {
            o.insert("attestor", key_json(a));
        }
        if let Some(text) = report.device_check {
            o.insert("deviceCheck", text);
        }
    }
    Some(signer)
}

fn show_text(shown: &Shown) -> String {
    let e = &shown.entry;
    let mut lines: Vec<(&str, String)> = vec![
        ("id", member(e, "id").to_owned()),
        ("type", member(e, "type").to_owned()),
        ("from", member(e, "from").to_owned()),
        ("to", member(e, "to").to_owned()),
        ("issuedAt", member(e, "issuedAt").to_owned()),
        ("stored", meta_str(e, "storedAt").to_owned()),
    ];
    match &shown.report {
        Some(report) => {
            if let Some(k) = &report.signer {
                lines.push(("signer", key_text(k)));
            }
            if let Some(k) = &report.delegator {
                lines.push(("delegator", key_text(k)));
            }
            if let Some(k) = &report.attestor {
                lines.push(("attestor", key_text(k)));
            }
            if let Some(text) = report.device_check {
                lines.push(("device", text.to_owned()));
            }
            lines.push(("verdict", "valid".to_owned()));
        }
        None => lines.push(("verdict", "unsigned (a report of your server)".to_owned())),
    }
    lines.push(("encrypted", yes_no(shown.encrypted)));
    let mut text = String::new();
    for (label, value) in lines {
        text.push_str(&format!("{label:<11}{value}\n"));
    }
    text.push('\n');
    text.push_str(&pretty(&shown.document));
    text.push('\n');
    text
}

/// The inbox entry with artifact id `id`, paging through the inbox.
async fn find(agent: &btps_client::Agent, id: &str) -> Result<PageEntry, CliError> {
    let mut q = Query::new().limit(MAX_PAGE);
    loop {
        let page = agent.inbox(&q).await?;
        if let Some(entry) = page.results.into_iter().find(|e| e.id() == Some(id)) {
            return Ok(entry);
        }
        match page.cursor {
            Some(c) if page.has_next => q = q.cursor(c),
            _ => {
                return Err(CliError::failed(format!("no artifact {id} in the inbox")));
            }
        }
    }
}
