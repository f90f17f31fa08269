//! `btps artifact verify` and `btps artifact decrypt`.

use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

use btps_crypto::KeyPair;
use btps_dns::DnsCache;
use btps_types::json::{Object, Value};
use btps_types::{Artifact, UnixMillis};

use crate::cli::{CheckArgs, DecryptArgs, VerifyArgs};
use crate::context::{Context, block_on};
use crate::keys::{decryption_keys, key_flags, read_public_key};
use crate::output::{CliError, Exit, pretty};
use crate::verify::{self, KeyInfo, Options, Report};

/// Reads the artifact: a file, or standard input for `-`. Returns the name to show.
fn read_input(path: &Path) -> Result<(String, Vec<u8>), CliError> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| CliError::usage(format!("reading standard input: {e}")))?;
        return Ok(("-".to_owned(), bytes));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::usage(format!("reading {}: {e}", path.display())))?;
    Ok((path.display().to_string(), bytes))
}

fn options(args: &CheckArgs) -> Result<Options, CliError> {
    let now = match args.at {
        Some(at) => at,
        None => UnixMillis::from_system_time(SystemTime::now())
            .ok_or_else(|| CliError::failed("the system clock is out of range"))?,
    };
    let agent_key = args.agent_key.as_deref().map(read_public_key).transpose()?;
    Ok(Options {
        max_age_ms: args
            .max_age
            .map(|s| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)),
        now,
        agent_key,
    })
}

/// Verifies `bytes` with keys from the DNS source of `args`.
fn check(
    ctx: &Context,
    args: &CheckArgs,
    bytes: &[u8],
    opts: &Options,
) -> Result<(Option<Value>, Report), CliError> {
    block_on(async {
        let dns = DnsCache::new(ctx.resolver(&args.dns)?);
        Ok(verify::verify(bytes, &dns, opts).await)
    })?
}

pub(super) fn key_text(k: &KeyInfo) -> String {
    let mut parts = vec![match (&k.agent_id, &k.identity) {
        (Some(agent), Some(identity)) => format!("device {agent} for {identity}"),
        (Some(agent), None) => format!("device {agent}"),
        (None, Some(identity)) => identity.clone(),
        (None, None) => "the key in document.publicKey (self-signed)".to_owned(),
    }];
    if let Some(selector) = &k.selector {
        parts.push(format!("selector {selector}"));
    }
    parts.push(format!("fingerprint {}", k.fingerprint));
    parts.join(", ")
}

pub(super) fn key_json(k: &KeyInfo) -> Value {
    let mut o = Object::new();
    if let Some(identity) = &k.identity {
        o.insert("identity", identity.as_str());
    }
    if let Some(selector) = &k.selector {
        o.insert("selector", selector.as_str());
    }
    if let Some(agent) = &k.agent_id {
        o.insert("agentId", agent.as_str());
    }
    o.insert("fingerprint", k.fingerprint.as_str());
    o.into()
}

fn freshness_text(report: &Report) -> String {
    match report.freshness {
        Some(f) if f.age_ms >= 0 => format!(
            "{} s old, within {} s",
            f.age_ms / 1000,
            f.max_age_ms / 1000
        ),
        Some(f) => format!(
            "{} s in the future, within {} s",
            -f.age_ms / 1000,
            f.max_age_ms / 1000
        ),
        None => "not checked (pass --max-age)".to_owned(),
    }
}

/// The report as aligned `label  value` lines.
fn report_text(file: &str, report: &Report) -> String {
    let mut lines: Vec<(&str, String)> = vec![("file", file.to_owned())];
    if let Some(kind) = report.kind {
        lines.push(("kind", kind.to_owned()));
    }
    lines.extend(report.members.iter().map(|(k, v)| (*k, v.clone())));
    if let Some(encrypted) = report.encrypted {
        lines.push(("encrypted", if encrypted { "yes" } else { "no" }.to_owned()));
    }
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
    if report.signer.is_some() {
        lines.push(("freshness", freshness_text(report)));
    }
    let verdict = match &report.outcome {
        Ok(()) => "valid".to_owned(),
        Err(e) => match e.code {
            Some(code) => format!("{}: {code}", report.verdict().as_str()),
            None => report.verdict().as_str().to_owned(),
        },
    };
    lines.push(("verdict", verdict));
    let mut text = String::new();
    for (label, value) in lines {
        text.push_str(&format!("{label:<11}{value}\n"));
    }
    text
}

fn report_json(file: &str, report: &Report) -> Object {
    let mut o = Object::new().with("file", file).with("kind", report.kind);
    for (k, v) in &report.members {
        o.insert(*k, v.as_str());
    }
    o.insert("encrypted", report.encrypted);
    o.insert("signer", report.signer.as_ref().map(key_json));
    if let Some(k) = &report.delegator {
        o.insert("delegator", key_json(k));
    }
    if let Some(k) = &report.attestor {
        o.insert("attestor", key_json(k));
    }
    if let Some(text) = report.device_check {
        o.insert("deviceCheck", text);
    }
    o.insert(
        "freshness",
        match report.freshness {
            Some(f) => Object::new()
                .with("checked", true)
                .with("maxAgeSeconds", Value::Number((f.max_age_ms / 1000) as f64))
                .with("ageSeconds", Value::Number((f.age_ms / 1000) as f64)),
            None => Object::new().with("checked", false),
        },
    );
    o.insert("verdict", report.verdict().as_str());
    if let Err(e) = &report.outcome {
        o.insert("error", e.json_member());
    }
    o
}

/// `btps artifact verify`.
pub(super) fn verify(ctx: &Context, args: &VerifyArgs) -> Result<Exit, CliError> {
    let (file, bytes) = read_input(&args.input)?;
    let opts = options(&args.check)?;
    let (_, report) = check(ctx, &args.check, &bytes, &opts)?;
    ctx.out.emit(
        || report_text(&file, &report),
        || report_json(&file, &report).into(),
    )?;
    match report.outcome {
        Ok(()) => Ok(Exit::Ok),
        Err(e) => Err(e.reported()),
    }
}

/// The object whose `document` is decrypted: the artifact, or for agent artifacts the send
/// envelope they carry.
fn document_holder(obj: &Object) -> &Object {
    match btps_types::validate_object(obj) {
        Ok(Artifact::Agent(a)) => a.envelope().unwrap_or(obj),
        _ => obj,
    }
}

/// `btps artifact decrypt`: verify first, then decrypt (PROTOCOL.md §5.3).
pub(super) fn decrypt(ctx: &Context, args: &DecryptArgs) -> Result<Exit, CliError> {
    let (file, bytes) = read_input(&args.input)?;
    let opts = options(&args.check)?;
    let flags = key_flags(&args.keys);
    // Keys given on the command line are checked before anything else.
    let flag_keys = if flags.is_empty() {
        None
    } else {
        Some(decryption_keys(ctx, &flags)?)
    };
    let (value, report) = check(ctx, &args.check, &bytes, &opts)?;
    let fail = |e: CliError| {
        if ctx.out.is_json() {
            let json = Object::new()
                .with("verification", report_json(&file, &report))
                .with("error", e.json_member());
            ctx.out.write(&(pretty(&json.into()) + "\n"))?;
            Err(e.reported())
        } else {
            Err(e)
        }
    };
    if let Err(e) = &report.outcome {
        return fail(e.clone());
    }
    let Some(obj) = value.as_ref().and_then(Value::as_object) else {
        return fail(CliError::failed("no artifact"));
    };
    let holder = document_holder(obj);
    let encrypted = holder.get("encryption").is_some_and(|v| !v.is_null());
    let keys = match flag_keys {
        Some(keys) => keys,
        None if encrypted => decryption_keys(ctx, &[])?,
        None => Vec::new(),
    };
    if encrypted && keys.is_empty() {
        return fail(CliError::usage(
            "the document is encrypted and no private key was given: pass --key or set `key` \
             or `decrypt_keys` in the profile",
        ));
    }
    let pairs: Vec<(&str, &KeyPair)> = keys.iter().map(|(s, k)| (s.as_str(), k)).collect();
    let decrypted = match btps_crypto::decrypt_with_any(holder, &pairs) {
        Ok(d) => d,
        Err(e) => return fail(CliError::protocol(e.error_code(), e.to_string())),
    };
    if ctx.out.is_json() {
        let json = Object::new()
            .with("verification", report_json(&file, &report))
            .with("encrypted", decrypted.encrypted)
            .with("document", decrypted.document.clone())
            .with("plaintext", decrypted.plaintext.as_str());
        ctx.out.write(&(pretty(&json.into()) + "\n"))?;
    } else if args.raw {
        ctx.out.write(&decrypted.plaintext)?;
    } else {
        ctx.out.write(&(pretty(&decrypted.document) + "\n"))?;
    }
    Ok(Exit::Ok)
}
