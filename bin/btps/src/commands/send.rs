//! `btps send`: documents (or saved signed artifacts) through the agent, directly, or
//! delegated (PROTOCOL.md §3.2, §3.5, §5, §9.4).

use std::path::Path;

use btps_types::artifact::{BusinessDocument, TransporterType};
use btps_types::json::{Object, ParseLimits, Value, parse};
use btps_types::{ArtifactKind, ErrorCode, Identity};

use crate::cli::SendArgs;
use crate::context::{Context, block_on};
use crate::net::{Sender, Sent, worst};
use crate::output::{CliError, Exit};
use crate::progress::Progress;

/// Reads a file holding one JSON object (exit 64 otherwise).
pub(super) fn read_object(path: &Path) -> Result<Object, CliError> {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::usage(format!("reading {}: {e}", path.display())))?;
    let parsed = parse(&bytes, &ParseLimits::DEFAULT)
        .map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?;
    if parsed.duplicates.has_conflicting() {
        return Err(CliError::usage(format!(
            "{}: duplicate keys with different values (PROTOCOL.md §4.6)",
            path.display()
        )));
    }
    match parsed.value {
        Value::Object(o) => Ok(o),
        other => Err(CliError::usage(format!(
            "{}: expected a JSON object, found {}",
            path.display(),
            other.type_name()
        ))),
    }
}

/// Checks `document` against the schema of `kind` (exit 64 with `BTP_ERROR_VALIDATION`).
pub(super) fn check_document(
    kind: TransporterType,
    document: &Object,
    what: &str,
) -> Result<(), CliError> {
    let value = Value::Object(document.clone());
    BusinessDocument::validate(kind, &value).map_err(|e| {
        let mut err = CliError::usage(format!("{what}: not a valid {kind} document: {e}"));
        err.code = Some(ErrorCode::Validation);
        err
    })?;
    Ok(())
}

/// Whether `obj` is a complete signed transporter artifact rather than a document.
fn is_signed_artifact(obj: &Object) -> bool {
    btps_types::classify_object(obj) == Some(ArtifactKind::Transporter)
        && obj.contains_key("signature")
}

/// The result of one file.
struct FileResult {
    file: String,
    to: Option<String>,
    outcome: Result<Sent, CliError>,
}

async fn send_file(sender: &Sender, args: &SendArgs, path: &Path) -> FileResult {
    let file = path.display().to_string();
    let mut to = args.to.as_ref().map(|t| t.as_str().to_owned());
    let outcome = async {
        let obj = read_object(path)?;
        if is_signed_artifact(&obj) {
            let artifact_to = obj.get_str("to").unwrap_or_default().to_owned();
            if let Some(t) = &args.to
                && !t.as_str().eq_ignore_ascii_case(&artifact_to)
            {
                return Err(CliError::usage(format!(
                    "{file}: a signed artifact for {artifact_to}, not {t}"
                )));
            }
            to = Some(artifact_to);
            return sender.send_artifact(obj).await;
        }
        let recipient: &Identity = args.to.as_ref().ok_or_else(|| {
            CliError::usage(format!("{file}: --to is required to send a document"))
        })?;
        check_document(args.kind, &obj, &file)?;
        sender
            .send_document(
                args.kind,
                recipient,
                obj,
                args.encrypt,
                args.save.as_deref(),
            )
            .await
    }
    .await
    // The file is named once, by the caller's line or report.
    .map_err(|mut e| {
        if let Some(rest) = e.message.strip_prefix(&format!("{file}: ")) {
            e.message = rest.to_owned();
        }
        e
    });
    FileResult { file, to, outcome }
}

fn result_json(r: &FileResult, queued: bool) -> Value {
    let flag = if queued { "queued" } else { "delivered" };
    let mut o = Object::new()
        .with("file", r.file.as_str())
        .with("to", r.to.clone());
    match &r.outcome {
        Ok(sent) => {
            o.insert("id", sent.id.as_str());
            o.insert(flag, true);
            o.insert("status", sent.status);
        }
        Err(e) => {
            o.insert("id", Value::Null);
            o.insert(flag, false);
            o.insert(
                "status",
                if e.exit == Exit::Refused {
                    "refused"
                } else {
                    "failed"
                },
            );
            o.insert("error", e.json_member());
        }
    }
    Value::Object(o)
}

fn result_text(r: &FileResult, sender: &Sender) -> String {
    let to = r.to.as_deref().unwrap_or("?");
    match &r.outcome {
        Ok(sent) if sender.queues() => format!(
            "{}: queued for {to} as {} in the outbox of {} ({})",
            r.file,
            sent.id,
            sender.identity(),
            sent.status
        ),
        Ok(sent) => format!(
            "{}: delivered to {to} as {} ({})",
            r.file, sent.id, sent.status
        ),
        Err(e) => format!("{}: not sent: {e}", r.file),
    }
}

/// `btps send`.
pub(super) fn run(ctx: &Context, args: &SendArgs) -> Result<Exit, CliError> {
    if args.encrypt && args.kind != TransporterType::BtpsDoc {
        return Err(CliError::usage(format!(
            "--encrypt: {} documents are sent plain (the receiving server reads them, \
             PROTOCOL.md §7.4)",
            args.kind
        )));
    }
    let (results, queued, single_text) = block_on(async {
        let sender = Sender::choose(ctx, &args.sender, &args.net, args.to.as_ref()).await?;
        if args.save.is_some() && sender.queues() {
            return Err(CliError::usage(
                "--save: the agent's server keeps what it queues (btps outbox, btps sentbox); \
                 --save applies to direct and delegated sends",
            ));
        }
        // The bar only for several files (and only on a terminal, never with --json).
        let mut bar =
            (args.files.len() > 1).then(|| Progress::stderr(args.files.len(), "files", ctx.out));
        let mut results = Vec::with_capacity(args.files.len());
        for path in &args.files {
            let result = send_file(&sender, args, path).await;
            if let Some(bar) = &mut bar {
                // Several files in text mode: each line as soon as its file is done.
                if !ctx.out.is_json() {
                    let line = result_text(&result, &sender) + "\n";
                    bar.above(|| ctx.out.write(&line))?;
                }
                bar.inc();
            }
            results.push(result);
        }
        if let Some(bar) = bar {
            bar.finish();
        }
        let single = results
            .first()
            .filter(|_| results.len() == 1)
            .map(|r| result_text(r, &sender));
        sender
            .finish(Ok(()))
            .map(|()| (results, sender.queues(), single))
    })??;

    let exit = worst(
        results
            .iter()
            .map(|r| r.outcome.as_ref().map_or_else(|e| e.exit, |_| Exit::Ok)),
    );
    let single = results.len() == 1;
    ctx.out.emit(
        // One file: its line when it was sent (a failure is the error line on standard
        // error); several files were listed as they went.
        || match (&single_text, results.first().map(|r| r.outcome.is_ok())) {
            (Some(text), Some(true)) => format!("{text}\n"),
            _ => String::new(),
        },
        || {
            Object::new()
                .with(
                    "results",
                    Value::Array(results.iter().map(|r| result_json(r, queued)).collect()),
                )
                .into()
        },
    )?;
    if exit == Exit::Ok {
        return Ok(Exit::Ok);
    }
    let failed: Vec<&CliError> = results
        .iter()
        .filter_map(|r| r.outcome.as_ref().err())
        .collect();
    let mut e = if single {
        failed[0].clone()
    } else {
        let first = results
            .iter()
            .find(|r| r.outcome.is_err())
            .map(|r| r.file.as_str())
            .unwrap_or_default();
        let mut e = failed[0].clone();
        e.message = format!(
            "{} of {} files not sent (first: {first}: {})",
            failed.len(),
            results.len(),
            e.message
        );
        e
    };
    e.exit = exit;
    Err(e.reported())
}
