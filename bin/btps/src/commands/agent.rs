//! `btps agent login|refresh|ping|show|logout`: this device as an agent of the user's
//! identity at the user's server (PROTOCOL.md §8).

use std::path::{Path, PathBuf};
use std::time::Instant;

use btps_client::{Agent, AgentState};
use btps_crypto::KeyPair;
use btps_types::json::{Object, Value};

use crate::cli::{AgentCommand, LoginArgs, NetArgs};
use crate::context::{Context, block_on};
use crate::fsutil;
use crate::net::{self, AgentSession, no_agent};
use crate::output::{CliError, Exit};
use crate::profile::{AgentProfile, ProfileRef};

/// Runs a `btps agent` command.
pub(super) fn run(ctx: &Context, command: AgentCommand) -> Result<Exit, CliError> {
    match command {
        AgentCommand::Login(args) => login(ctx, &args),
        AgentCommand::Refresh(net) => refresh(ctx, &net),
        AgentCommand::Ping(net) => ping(ctx, &net),
        AgentCommand::Show => show(ctx),
        AgentCommand::Logout => logout(ctx),
    }
}

/// One line from standard input, without its line ending.
fn read_line() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CliError::usage(format!("reading standard input: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Where the device key of agent `agent_id` of profile `r` is kept.
fn key_path(r: &ProfileRef, agent_id: &str) -> PathBuf {
    let safe: String = agent_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    r.config_dir
        .join("agents")
        .join(format!("{}-{safe}.pem", r.name))
}

/// Deletes a device key file this tool wrote (one in `<config dir>/agents/`); other files
/// are left alone. Returns whether a file was deleted.
fn remove_key_file(r: &ProfileRef, path: &Path) -> bool {
    let path = r.resolve_path(path);
    path.parent() == Some(r.config_dir.join("agents").as_path())
        && std::fs::remove_file(&path).is_ok()
}

/// `btps agent login`: onboard with the auth token, then save the agent state (and the
/// server, CA, DNS settings and identity given) in the profile.
fn login(ctx: &Context, args: &LoginArgs) -> Result<Exit, CliError> {
    let (r, _) = ctx.profile_to_write()?;
    let identity = match &args.identity {
        Some(i) => i.clone(),
        None => ctx.identity(None)?,
    };
    let token = if args.token == "-" {
        read_line()?
    } else {
        args.token.clone()
    };
    if token.trim().is_empty() {
        return Err(CliError::usage("--token: empty token"));
    }
    let mut info = Object::new().with("client", format!("btps {}", env!("CARGO_PKG_VERSION")));
    info.insert("os", std::env::consts::OS);
    if let Some(name) = &args.name {
        info.insert("deviceName", name.as_str());
    }
    let state = block_on(async {
        let client = net::client(ctx, &args.net, Some(identity.domain()))?;
        let server = client.server_for(&identity).await?;
        let agent = Agent::onboard_with_key_type(
            client,
            server,
            identity.clone(),
            token.trim(),
            Some(info),
            args.key_type,
        )
        .await?;
        Ok::<_, CliError>(agent.state())
    })??;

    // The device key first: without it the saved state would be useless.
    let path = key_path(r, &state.agent_id);
    let dir = r.config_dir.join("agents");
    fsutil::create_private_dir(&dir)
        .and_then(|()| fsutil::write_atomic(&path, state.device_key_pem.as_bytes(), 0o600))
        .map_err(|e| {
            CliError::cant_write(format!(
                "agent {} registered, but its device key could not be saved to {}: {e}",
                state.agent_id,
                path.display()
            ))
        })?;
    let mut profile = r.read()?.unwrap_or_default();
    let previous = profile.agent.take();
    profile.agent = Some(AgentProfile::from_state(
        &state,
        path.clone(),
        toml::Table::new(),
    ));
    if args.identity.is_some() {
        profile.identity = Some(identity.as_str().to_owned());
    }
    if let Some(server) = &args.net.server {
        profile.server = Some(server.to_string());
    }
    if let Some(ca) = &args.net.ca {
        profile.ca = Some(fsutil::absolute(ca));
        profile.insecure = None;
    }
    if args.net.insecure {
        profile.insecure = Some(true);
    }
    if !args.net.dns.nameservers.is_empty() {
        profile.nameservers.clone_from(&args.net.dns.nameservers);
        profile.dns_file = None;
    }
    if let Some(file) = &args.net.dns.dns_file {
        profile.dns_file = Some(fsutil::absolute(file));
    }
    r.save(&profile).map_err(|e| {
        CliError::cant_write(format!(
            "agent {} registered, but the profile could not be saved: {}",
            state.agent_id, e.message
        ))
    })?;
    if let Some(old) = previous.and_then(|a| a.device_key)
        && r.resolve_path(&old) != path
    {
        remove_key_file(r, &old);
    }

    let fingerprint = KeyPair::from_pem(&state.device_key_pem)
        .map(|k| k.public_key().fingerprint().to_owned())
        .unwrap_or_default();
    let key_type = args.key_type;
    ctx.out.emit(
        || {
            format!(
                "logged in as {} at {}\nagent        {}\ndevice key   {} ({key_type}, fingerprint {fingerprint})\n\
                 expires      {} (refreshed automatically before then)\ndecrypt by   {}\n\
                 profile      {} ({})\n",
                state.identity,
                state.server,
                state.agent_id,
                path.display(),
                state.expires_at.to_datetime_string(),
                state.decrypt_by,
                r.name,
                r.path.display()
            )
        },
        || {
            state_json(&state, &path, &fingerprint)
                .with("keyType", key_type.as_str())
                .with("profile", r.name.as_str())
                .with("path", r.path.display().to_string())
                .into()
        },
    )?;
    Ok(Exit::Ok)
}

fn state_json(state: &AgentState, key: &Path, fingerprint: &str) -> Object {
    Object::new()
        .with("identity", state.identity.as_str())
        .with("server", state.server.to_string())
        .with("agentId", state.agent_id.as_str())
        .with("deviceKey", key.display().to_string())
        .with("fingerprint", fingerprint)
        .with("expiresAt", state.expires_at.to_datetime_string())
        .with("decryptBy", state.decrypt_by.as_str())
}

/// `btps agent refresh`.
fn refresh(ctx: &Context, net: &NetArgs) -> Result<Exit, CliError> {
    let state = block_on(async {
        let session = AgentSession::open(ctx, net)?;
        let result = session.agent.refresh().await.map_err(CliError::from);
        session.finish(result)
    })??;
    ctx.out.emit(
        || {
            format!(
                "refresh token of agent {} rotated; it expires {}\n",
                state.agent_id,
                state.expires_at.to_datetime_string()
            )
        },
        || {
            Object::new()
                .with("agentId", state.agent_id.as_str())
                .with("expiresAt", state.expires_at.to_datetime_string())
                .into()
        },
    )?;
    Ok(Exit::Ok)
}

/// `btps agent ping`.
fn ping(ctx: &Context, net: &NetArgs) -> Result<Exit, CliError> {
    let (state, elapsed) = block_on(async {
        let session = AgentSession::open(ctx, net)?;
        let started = Instant::now();
        let result = session.agent.ping().await.map_err(CliError::from);
        let elapsed = started.elapsed();
        session
            .finish(result)
            .map(|()| (session.agent.state(), elapsed))
    })??;
    let ms = elapsed.as_secs_f64() * 1000.0;
    ctx.out.emit(
        || {
            format!(
                "pong: {} accepts agent {} of {} ({ms:.0} ms)\n",
                state.server, state.agent_id, state.identity
            )
        },
        || {
            Object::new()
                .with("ok", true)
                .with("server", state.server.to_string())
                .with("agentId", state.agent_id.as_str())
                .with("identity", state.identity.as_str())
                .with("ms", (ms * 10.0).round() / 10.0)
                .into()
        },
    )?;
    Ok(Exit::Ok)
}

/// `btps agent show`: the saved state without the refresh token.
fn show(ctx: &Context) -> Result<Exit, CliError> {
    let (r, p) = ctx.profile()?;
    let table = p.agent.as_ref().ok_or_else(|| no_agent(r))?;
    let state = table.to_state(r)?;
    let key = table
        .device_key
        .as_deref()
        .map(|k| r.resolve_path(k))
        .unwrap_or_default();
    let (key_type, fingerprint) = KeyPair::from_pem(&state.device_key_pem)
        .map(|k| (k.key_type(), k.public_key().fingerprint().to_owned()))
        .map_err(|e| CliError::usage(format!("{}: {e}", key.display())))?;
    let expired = net::now()? >= state.expires_at;
    ctx.out.emit(
        || {
            format!(
                "identity     {}\nserver       {}\nagent        {}\ndevice key   {} ({key_type}, \
                 fingerprint {fingerprint})\nexpires      {}{}\ndecrypt by   {}\nprofile      {} ({})\n",
                state.identity,
                state.server,
                state.agent_id,
                key.display(),
                state.expires_at.to_datetime_string(),
                if expired {
                    " (expired: log in again)"
                } else {
                    ""
                },
                state.decrypt_by,
                r.name,
                r.path.display()
            )
        },
        || {
            state_json(&state, &key, &fingerprint)
                .with("keyType", key_type.as_str())
                .with("expired", expired)
                .with("profile", r.name.as_str())
                .into()
        },
    )?;
    Ok(Exit::Ok)
}

/// `btps agent logout`: forgets the state and deletes the device key file.
fn logout(ctx: &Context) -> Result<Exit, CliError> {
    let r = ctx.profile_ref()?;
    let mut profile = match r.read()? {
        Some(p) => p,
        None if !r.chosen => Default::default(),
        None => return Err(no_agent(&r)),
    };
    let Some(table) = profile.agent.take() else {
        ctx.out.emit(
            || format!("no agent in profile {}: nothing to do\n", r.name),
            || {
                Object::new()
                    .with("profile", r.name.as_str())
                    .with("agentId", Value::Null)
                    .with("deviceKeyRemoved", false)
                    .into()
            },
        )?;
        return Ok(Exit::Ok);
    };
    r.save(&profile)?;
    let removed = table
        .device_key
        .as_deref()
        .is_some_and(|k| remove_key_file(&r, k));
    let agent_id = table.agent_id.unwrap_or_default();
    ctx.out.emit(
        || {
            format!(
                "forgot agent {agent_id} (profile {}){}; the server keeps it until it expires or \
                 is revoked\n",
                r.name,
                if removed { ", device key deleted" } else { "" }
            )
        },
        || {
            Object::new()
                .with("profile", r.name.as_str())
                .with("agentId", agent_id.as_str())
                .with("deviceKeyRemoved", removed)
                .into()
        },
    )?;
    Ok(Exit::Ok)
}
