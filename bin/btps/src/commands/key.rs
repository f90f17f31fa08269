//! `btps key`: identity keys by selector in a key ring, and their rotation (docs/keys.md).

use std::path::PathBuf;
use std::time::Duration;

use btps_client::{KeyEntry, KeyRing, KeyRingError, KeyState};
use btps_crypto::{KeyPair, KeyPolicy, KeyType, RotationDocument};
use btps_dns::inspect_identity;
use btps_types::json::{Object, Value};
use btps_types::{Identity, Selector};

use super::dns::parse_identity;
use crate::cli::{KeyCommand, KeyringArgs};
use crate::context::{Context, block_on};
use crate::net::now;
use crate::output::{CliError, Exit, Table};

/// Runs `btps key …`.
pub(super) fn run(ctx: &Context, command: KeyCommand) -> Result<Exit, CliError> {
    match command {
        KeyCommand::Import {
            identity,
            selector,
            key,
            ring,
        } => {
            let identity = parse_identity(&identity)?;
            let selector = parse_selector(&selector)?;
            let pem = std::fs::read_to_string(&key)
                .map_err(|e| CliError::failed(format!("{}: {e}", key.display())))?;
            let pair = KeyPair::from_pem(&pem)
                .map_err(|e| CliError::usage(format!("{}: {e}", key.display())))?;
            let ring = keyring(ctx, &ring)?;
            ring.import(&identity, &selector, &pair, None, now()?)
                .map_err(ring_error)?;
            ctx.out.emit(
                || format!("{identity}: selector {selector} is the active key\n"),
                || {
                    Object::new()
                        .with("identity", identity.as_str())
                        .with("selector", selector.as_str())
                        .with("fingerprint", pair.public_key().fingerprint())
                        .into()
                },
            )?;
            Ok(Exit::Ok)
        }
        KeyCommand::Rotate {
            identity,
            selector,
            key_type,
            proof_days,
            ring,
        } => {
            let identity = parse_identity(&identity)?;
            let selector = selector.as_deref().map(parse_selector).transpose()?;
            let key_type = match key_type.as_str() {
                "rsa" => KeyType::Rsa,
                "ed25519" => KeyType::Ed25519,
                other => {
                    return Err(CliError::usage(format!(
                        "--key-type {other:?}: rsa or ed25519"
                    )));
                }
            };
            let validity = Duration::from_secs(u64::from(proof_days) * 86_400);
            let ring = keyring(ctx, &ring)?;
            let plan = ring
                .rotate(&identity, selector.as_ref(), key_type, validity, now()?)
                .map_err(ring_error)?;
            let (name, txt) = &plan.record;
            ctx.out.emit(
                || {
                    let mut text = format!(
                        "{identity}: new key at selector {} (pending; {} still signs)\n\
                         key file: {}\n\n\
                         1. Publish:\n   {name}. IN TXT \"{txt}\"\n\
                         2. Switch the host record's s= to {} when every identity of the domain \
                         has rotated.\n\
                         3. `btps key activate {identity}` once it resolves (a btps-server using \
                         this key ring switches by itself).\n\
                         4. Keep the old record published until `btps key retire {identity}` \
                         allows removing it.\n",
                        plan.new_selector,
                        plan.old_selector,
                        plan.key_file.display(),
                        plan.new_selector,
                    );
                    if key_type == KeyType::Ed25519 {
                        text.push_str(
                            "\nwarning: btps-node peers cannot verify Ed25519 identity keys\n",
                        );
                    }
                    text.push_str(&format!(
                        "\nRotation proof (valid until {}), published with `btps key proofs`.\n",
                        plan.proof.valid_until().to_datetime_string()
                    ));
                    text
                },
                || {
                    Object::new()
                        .with("identity", identity.as_str())
                        .with("oldSelector", plan.old_selector.as_str())
                        .with("newSelector", plan.new_selector.as_str())
                        .with("keyFile", plan.key_file.display().to_string())
                        .with(
                            "record",
                            Object::new()
                                .with("name", name.as_str())
                                .with("type", "TXT")
                                .with("value", txt.as_str()),
                        )
                        .with("proof", plan.proof.as_object().clone())
                        .into()
                },
            )?;
            Ok(Exit::Ok)
        }
        KeyCommand::Status {
            identity,
            ring,
            dns,
        } => {
            let identity = parse_identity(&identity)?;
            let ring = keyring(ctx, &ring)?;
            let keys = ring.identity(&identity).map_err(ring_error)?;
            let mut rows = Vec::new();
            for k in &keys.keys {
                let published = block_on(published(ctx, &dns, &identity, k))??;
                rows.push((k.clone(), published));
            }
            ctx.out.emit(
                || {
                    let mut t =
                        Table::new(&["SELECTOR", "STATE", "DNS", "FINGERPRINT", "RETIRE AFTER"]);
                    for (k, p) in &rows {
                        t.row(vec![
                            k.selector.to_string(),
                            state_name(k.state).into(),
                            p.clone(),
                            k.fingerprint.clone(),
                            k.retire_after
                                .map(|t| t.to_datetime_string())
                                .unwrap_or_default(),
                        ]);
                    }
                    t.render()
                },
                || {
                    let keys: Vec<Value> = rows
                        .iter()
                        .map(|(k, p)| {
                            let mut o = Object::new()
                                .with("selector", k.selector.as_str())
                                .with("state", state_name(k.state))
                                .with("dns", p.as_str())
                                .with("fingerprint", k.fingerprint.as_str());
                            if let Some(t) = k.retire_after {
                                o.insert("retireAfter", t.to_datetime_string());
                            }
                            Value::Object(o)
                        })
                        .collect();
                    Object::new()
                        .with("identity", identity.as_str())
                        .with("keys", keys)
                        .into()
                },
            )?;
            Ok(Exit::Ok)
        }
        KeyCommand::Activate {
            identity,
            grace_secs,
            force,
            ring,
            dns,
        } => {
            let identity = parse_identity(&identity)?;
            let ring = keyring(ctx, &ring)?;
            let keys = ring.identity(&identity).map_err(ring_error)?;
            let pending = keys
                .pending()
                .ok_or_else(|| CliError::failed(format!("{identity} has no pending key")))?;
            if !force {
                let state = block_on(published(ctx, &dns, &identity, pending))??;
                if state != "published" {
                    return Err(CliError::failed(format!(
                        "selector {} is not published yet ({state}); publish its record or pass --force",
                        pending.selector
                    )));
                }
            }
            let selector = ring
                .activate(&identity, Duration::from_secs(grace_secs), now()?)
                .map_err(ring_error)?;
            ctx.out.emit(
                || format!("{identity}: selector {selector} is now active\n"),
                || {
                    Object::new()
                        .with("identity", identity.as_str())
                        .with("selector", selector.as_str())
                        .into()
                },
            )?;
            Ok(Exit::Ok)
        }
        KeyCommand::Retire {
            identity,
            force,
            ring,
        } => {
            let identity = parse_identity(&identity)?;
            let ring = keyring(ctx, &ring)?;
            let removed = ring.retire(&identity, force, now()?).map_err(ring_error)?;
            ctx.out.emit(
                || {
                    if removed.is_empty() {
                        return format!("{identity}: no retiring key\n");
                    }
                    let mut text = String::new();
                    for k in &removed {
                        text.push_str(&format!(
                            "{identity}: retired selector {}; remove its DNS record {}\n",
                            k.selector,
                            btps_types::record::identity_record_name(
                                k.selector.as_str(),
                                &identity
                            )
                        ));
                    }
                    text
                },
                || {
                    let list: Vec<Value> = removed
                        .iter()
                        .map(|k| Value::from(k.selector.as_str()))
                        .collect();
                    Object::new()
                        .with("identity", identity.as_str())
                        .with("retired", list)
                        .into()
                },
            )?;
            Ok(Exit::Ok)
        }
        KeyCommand::Proofs { out, ring } => {
            let ring = keyring(ctx, &ring)?;
            let proofs = ring.published_proofs(now()?).map_err(ring_error)?;
            let text = RotationDocument { proofs }.to_json() + "\n";
            match out {
                Some(path) => {
                    crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644)
                        .map_err(|e| CliError::cant_write(format!("{}: {e}", path.display())))?;
                    ctx.out.emit(
                        || format!("wrote {}\n", path.display()),
                        || {
                            Object::new()
                                .with("file", path.display().to_string())
                                .into()
                        },
                    )?;
                }
                None => ctx.out.write(&text)?,
            }
            Ok(Exit::Ok)
        }
    }
}

fn parse_selector(text: &str) -> Result<Selector, CliError> {
    Selector::parse(text).map_err(|e| CliError::usage(format!("selector {text:?}: {e}")))
}

fn state_name(state: KeyState) -> &'static str {
    match state {
        KeyState::Pending => "pending",
        KeyState::Active => "active",
        KeyState::Retiring => "retiring",
    }
}

/// The key ring of `--keyring`, else `<config dir>/keyring`.
fn keyring(ctx: &Context, args: &KeyringArgs) -> Result<KeyRing, CliError> {
    let dir: PathBuf = match &args.keyring {
        Some(d) => d.clone(),
        None => ctx.profile_ref()?.config_dir.join("keyring"),
    };
    Ok(KeyRing::new(dir))
}

fn ring_error(e: KeyRingError) -> CliError {
    match e {
        KeyRingError::Io { .. } => CliError::cant_write(e.to_string()),
        _ => CliError::failed(e.to_string()),
    }
}

/// Whether DNS serves `entry`'s key at its selector: `published`, `other key`,
/// `not published`, or the temporary failure.
async fn published(
    ctx: &Context,
    dns: &crate::cli::DnsArgs,
    identity: &Identity,
    entry: &KeyEntry,
) -> Result<String, CliError> {
    let resolver = ctx.resolver(dns)?;
    Ok(
        match inspect_identity(
            &*resolver,
            identity,
            Some(entry.selector.as_str()),
            KeyPolicy::DEFAULT,
        )
        .await
        {
            Ok(report)
                if report
                    .keys
                    .iter()
                    .any(|k| k.fingerprint() == entry.fingerprint) =>
            {
                "published".into()
            }
            Ok(_) => "other key".into(),
            Err(e) if e.is_temporary() => format!("unknown ({e})"),
            Err(_) => "not published".into(),
        },
    )
}
