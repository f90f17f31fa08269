//! `btps profile show|set|unset|path|list`.

use btps_types::json::{Object, Value};

use crate::cli::ProfileCommand;
use crate::context::Context;
use crate::output::{CliError, Exit};
use crate::profile::{HIDDEN, normalize_key};

/// Runs a `btps profile` command.
pub(super) fn run(ctx: &Context, command: ProfileCommand) -> Result<Exit, CliError> {
    let r = ctx.profile_ref()?;
    match command {
        ProfileCommand::Path => ctx.out.emit(
            || r.path.display().to_string(),
            || {
                Object::new()
                    .with("profile", r.name.as_str())
                    .with("path", r.path.display().to_string())
                    .with("configDir", r.config_dir.display().to_string())
                    .with("exists", r.path.exists())
                    .into()
            },
        )?,
        ProfileCommand::Show { show_secrets } => {
            let stored = r.read()?;
            let exists = stored.is_some();
            let profile = stored.unwrap_or_default();
            let shown = if show_secrets {
                profile
            } else {
                profile.redacted()
            };
            let json = shown.to_json()?;
            let text = shown.to_toml(&r.name)?;
            ctx.out.emit(
                || {
                    if exists {
                        format!("# {}\n{text}", r.path.display())
                    } else {
                        format!(
                            "# {}: no such file yet; `btps profile set` creates it\n",
                            r.path.display()
                        )
                    }
                },
                || {
                    Object::new()
                        .with("profile", r.name.as_str())
                        .with("path", r.path.display().to_string())
                        .with("exists", exists)
                        .with("settings", json)
                        .into()
                },
            )?;
        }
        ProfileCommand::Set { key, value } => {
            let key = normalize_key(&key)?;
            let value = if value == "-" { read_value()? } else { value };
            let mut profile = r.read()?.unwrap_or_default();
            profile.set(&key, &value)?;
            r.save(&profile)?;
            let shown = if key == "agent.refresh_token" {
                HIDDEN.to_owned()
            } else {
                value
            };
            ctx.out.emit(
                || format!("{key} = {shown} (profile {}, {})", r.name, r.path.display()),
                || changed_json(&r.name, &r.path, &key, Value::from(shown.as_str())),
            )?;
        }
        ProfileCommand::Unset { key } => {
            let key = normalize_key(&key)?;
            if let Some(mut profile) = r.read()? {
                profile.unset(&key)?;
                r.save(&profile)?;
            }
            ctx.out.emit(
                || format!("{key} unset (profile {}, {})", r.name, r.path.display()),
                || changed_json(&r.name, &r.path, &key, Value::Null),
            )?;
        }
        ProfileCommand::AddDecryptKey { selector, path } => {
            // The key must load: a typo would otherwise show only when decrypting.
            crate::keys::read_private_key(&path)?;
            let path = crate::fsutil::absolute(&path);
            let mut profile = r.read()?.unwrap_or_default();
            let added = profile.add_decrypt_key(selector.as_str(), path.clone());
            if added {
                r.save(&profile)?;
            }
            let entry = format!("{selector}={}", path.display());
            ctx.out.emit(
                || {
                    if added {
                        format!(
                            "decrypt_keys += {entry} (profile {}, {})",
                            r.name,
                            r.path.display()
                        )
                    } else {
                        format!("decrypt_keys already holds {entry} (profile {})", r.name)
                    }
                },
                || {
                    Object::new()
                        .with("profile", r.name.as_str())
                        .with("path", r.path.display().to_string())
                        .with("selector", selector.as_str())
                        .with("key", path.display().to_string())
                        .with("added", added)
                        .into()
                },
            )?;
        }
        ProfileCommand::List => {
            let names = list(&r.config_dir.join("profiles"))?;
            ctx.out.emit(
                || {
                    if names.is_empty() {
                        return format!(
                            "no profiles in {}",
                            r.config_dir.join("profiles").display()
                        );
                    }
                    names
                        .iter()
                        .map(|n| {
                            let mark = if *n == r.name { "* " } else { "  " };
                            format!("{mark}{n}\n")
                        })
                        .collect()
                },
                || {
                    Object::new()
                        .with("current", r.name.as_str())
                        .with(
                            "profiles",
                            Value::Array(names.iter().map(|n| Value::from(n.as_str())).collect()),
                        )
                        .into()
                },
            )?;
        }
    }
    Ok(Exit::Ok)
}

/// One line from standard input, without its line ending: `set KEY -` keeps secrets out of
/// the shell history.
fn read_value() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CliError::usage(format!("reading standard input: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

fn changed_json(name: &str, path: &std::path::Path, key: &str, value: Value) -> Value {
    Object::new()
        .with("profile", name)
        .with("path", path.display().to_string())
        .with("key", key)
        .with("value", value)
        .into()
}

/// The profile names in `dir` (files `<name>.toml`), sorted.
fn list(dir: &std::path::Path) -> Result<Vec<String>, CliError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CliError::usage(format!("reading {}: {e}", dir.display()))),
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".toml")?;
            crate::profile::check_name(stem).ok()?;
            Some(stem.to_owned())
        })
        .collect();
    names.sort();
    Ok(names)
}
