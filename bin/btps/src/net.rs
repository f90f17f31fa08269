//! Talking to BTPS servers through btps-client: the [`Client`] built from the network
//! options and the profile ([`client`]), the profile's agent with the hook that saves its
//! rotated refresh tokens ([`AgentSession`]), and who sends a document ([`Sender`]: the
//! agent, an identity key, or a delegated device key).

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use btps_client::{
    Agent, AgentState, Backoff, Client, ClientConfig, Delegator, DeliveryStatus, DeviceSender,
    RetryPolicy, TlsTrust, Transporter,
};
use btps_crypto::SystemRandom;
use btps_dns::DnsCache;
use btps_types::artifact::TransporterType;
use btps_types::json::{Object, to_js_string};
use btps_types::{ErrorCode, Identity, Selector, UnixMillis};

use crate::cli::{NetArgs, SenderArgs};
use crate::context::Context;
use crate::fsutil;
use crate::keys::read_private_key;
use crate::output::{CliError, Exit};
use crate::profile::{AgentProfile, ProfileRef};

/// Retries of the command line: three attempts within about two seconds, so that a server
/// that is down is reported quickly (exit 2) instead of after the library's default
/// schedule.
const RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    backoff: Backoff {
        initial: Duration::from_millis(500),
        max: Duration::from_secs(4),
        jitter: 0.5,
    },
};

/// The wall clock.
pub(crate) fn now() -> Result<UnixMillis, CliError> {
    UnixMillis::from_system_time(SystemTime::now())
        .ok_or_else(|| CliError::failed("the system clock is out of range"))
}

/// A fresh UUIDv4 (document ids).
pub(crate) fn new_id() -> Result<String, CliError> {
    btps_trust::generate_uuid_v4(&SystemRandom)
        .map_err(|e| CliError::failed(format!("generating an id: {e}")))
}

/// The TLS trust setting: `--insecure`, else `--ca`, else the profile's `insecure`, else its
/// `ca`, else the system's trust store.
fn tls_trust(ctx: &Context, net: &NetArgs) -> Result<TlsTrust, CliError> {
    if net.insecure {
        return Ok(TlsTrust::DangerousAcceptAnyCertificate);
    }
    if let Some(ca) = &net.ca {
        return Ok(TlsTrust::CaFile(ca.clone()));
    }
    let (r, p) = ctx.profile()?;
    Ok(if p.insecure == Some(true) {
        TlsTrust::DangerousAcceptAnyCertificate
    } else if let Some(ca) = &p.ca {
        TlsTrust::CaFile(r.resolve_path(ca))
    } else {
        TlsTrust::SystemRoots
    })
}

/// A client for `net` and the profile. Server addresses: `--server` for `target` (the domain
/// the command talks to) when given; the profile's `server` for the domain of the profile's
/// `identity`; every other domain through its host record. Call inside the runtime
/// ([`crate::context::block_on`]).
///
/// # Errors
///
/// A malformed profile, an unusable DNS or TLS setting (exit 64).
pub(crate) fn client(
    ctx: &Context,
    net: &NetArgs,
    target: Option<&str>,
) -> Result<Client, CliError> {
    let (r, p) = ctx.profile()?;
    let mut config = ClientConfig {
        tls: tls_trust(ctx, net)?,
        retry: RETRY,
        reconnect: RETRY.backoff,
        ..ClientConfig::default()
    };
    let own = p.identity.as_deref().and_then(|i| Identity::parse(i).ok());
    if let (Some(server), Some(identity)) = (&p.server, &own) {
        let addr = btps_client::ServerAddr::parse(server)
            .map_err(|e| CliError::usage(format!("profile {}: server: {e}", r.name)))?;
        config = config.with_override(identity.domain(), addr);
    }
    config.requester = own;
    if let (Some(addr), Some(domain)) = (&net.server, target) {
        config = config.with_override(domain, addr.clone());
    }
    let dns = DnsCache::new(ctx.resolver(&net.dns)?);
    Client::new(config, dns).map_err(CliError::from)
}

/// The error for a profile without agent state.
pub(crate) fn no_agent(r: &ProfileRef) -> CliError {
    CliError::usage(format!(
        "no agent in profile {:?}: log in with `btps agent login --identity ID --token TOKEN`",
        r.name
    ))
}

/// The profile's agent, with a state hook that saves every rotated refresh token in the
/// profile. Call [`finish`](Self::finish) with the command's result.
pub(crate) struct AgentSession {
    /// The agent.
    pub(crate) agent: Agent,
    saved: Arc<Mutex<Option<CliError>>>,
}

impl AgentSession {
    /// The agent of the selected profile, talking to `--server` if given, else the server it
    /// logged in at. Call inside the runtime.
    ///
    /// # Errors
    ///
    /// No agent state or a damaged one, an unusable client setting (exit 64).
    pub(crate) fn open(ctx: &Context, net: &NetArgs) -> Result<Self, CliError> {
        let (r, p) = ctx.profile()?;
        let table = p.agent.as_ref().ok_or_else(|| no_agent(r))?;
        let mut state = table.to_state(r)?;
        if let Some(server) = &net.server {
            state.server = server.clone();
        }
        let client = client(ctx, net, None)?;
        let mut agent = Agent::resume(client, state).map_err(|e| {
            CliError::usage(format!(
                "profile {}: agent.device_key: {e}; log in again with `btps agent login`",
                r.name
            ))
        })?;
        let saved = Arc::new(Mutex::new(None));
        agent.set_state_hook(save_rotated(r.clone(), saved.clone()));
        Ok(Self { agent, saved })
    }

    /// `result`, or when it succeeded but a rotated refresh token could not be saved, that
    /// failure (exit 74).
    pub(crate) fn finish<T>(&self, result: Result<T, CliError>) -> Result<T, CliError> {
        let failed = self
            .saved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match (result, failed) {
            (Err(e), _) => Err(login_hint(e)),
            (Ok(_), Some(e)) => Err(e),
            (Ok(v), None) => Ok(v),
        }
    }
}

/// An agent refused as unauthenticated needs a new login: say so.
fn login_hint(mut e: CliError) -> CliError {
    if e.code == Some(ErrorCode::AuthenticationInvalid) {
        e.message.push_str("; log in again with `btps agent login`");
    }
    e
}

/// The state hook: writes the new refresh token, its expiry and the decrypting identity
/// into the profile's agent table (the server and key path stay as saved at login).
fn save_rotated(
    r: ProfileRef,
    failure: Arc<Mutex<Option<CliError>>>,
) -> impl Fn(&AgentState) + Send + Sync + 'static {
    move |state: &AgentState| {
        let result = (|| {
            let mut profile = r.load()?;
            let table = profile.agent.get_or_insert_with(AgentProfile::default);
            if table.agent_id.as_deref() != Some(state.agent_id.as_str()) {
                return Err(CliError::cant_write(format!(
                    "profile {} now holds another agent",
                    r.name
                )));
            }
            table.refresh_token = Some(state.refresh_token.clone());
            table.expires_at = Some(state.expires_at.to_datetime_string());
            table.decrypt_by = Some(state.decrypt_by.as_str().to_owned());
            r.save(&profile)
        })();
        if let Err(e) = result {
            let e = CliError::cant_write(format!(
                "the rotated refresh token of agent {} was not saved ({}): log in again with \
                 `btps agent login`",
                state.agent_id, e.message
            ));
            *failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
        }
    }
}

/// Who sends.
pub(crate) enum Sender {
    /// Through the profile's agent: queued in the user's outbox.
    Agent(AgentSession),
    /// Signed with the identity key, sent to the recipient's server.
    Direct(Transporter),
    /// Signed with a device key plus a delegation, sent to the recipient's server, for this
    /// user identity.
    Delegated(DeviceSender, Identity),
}

/// What became of one send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sent {
    /// The transporter artifact's id.
    pub(crate) id: String,
    /// `accepted`, `already accepted` or `duplicate`.
    pub(crate) status: &'static str,
}

impl Sender {
    /// Chooses the mode (see `btps send --help`): `--device-key` delegated, `--key` direct,
    /// else the profile's agent, else the profile's `key` direct. `target` is the recipient
    /// (`--server` applies to its domain). Call inside the runtime.
    ///
    /// # Errors
    ///
    /// Missing or unreadable keys and identities (64); a delegator key that is not its DNS
    /// key (1); DNS failures.
    pub(crate) async fn choose(
        ctx: &Context,
        args: &SenderArgs,
        net: &NetArgs,
        target: Option<&Identity>,
    ) -> Result<Self, CliError> {
        let domain = target.map(Identity::domain);
        if let Some(device_key) = &args.device_key {
            return Self::delegated(ctx, args, net, domain, device_key).await;
        }
        if let Some(key) = &args.key {
            return Self::direct(ctx, args, net, domain, key);
        }
        let (r, p) = ctx.profile()?;
        if p.agent.is_some() {
            let session = AgentSession::open(ctx, net)?;
            let identity = session.agent.identity();
            if let Some(from) = &args.from
                && !from.as_str().eq_ignore_ascii_case(identity.as_str())
            {
                return Err(CliError::usage(format!(
                    "--from {from}: the agent of profile {} sends as {identity}; pass --key to \
                     send as another identity",
                    r.name
                )));
            }
            return Ok(Self::Agent(session));
        }
        if let Some(key) = &p.key {
            let key = r.resolve_path(key);
            return Self::direct(ctx, args, net, domain, &key);
        }
        Err(CliError::usage(format!(
            "no sender: log in with `btps agent login`, pass --key FILE and --from ID, or set \
             `key` and `identity` in profile {:?}",
            r.name
        )))
    }

    fn direct(
        ctx: &Context,
        args: &SenderArgs,
        net: &NetArgs,
        domain: Option<&str>,
        key: &Path,
    ) -> Result<Self, CliError> {
        let from = ctx.identity(args.from.as_ref().map(Identity::as_str))?;
        let selector = ctx.selector(args.selector.as_ref().map(Selector::as_str))?;
        let selector = Selector::parse(&selector)
            .map_err(|e| CliError::usage(format!("selector {selector:?}: {e}")))?;
        let key = read_private_key(key)?;
        let proof = rotation_proof(ctx, &from, &key)?;
        let client = client(ctx, net, domain)?;
        let mut transporter = Transporter::builder(client)
            .identity(from)
            .selector(selector)
            .key(key)
            .build();
        if let Some(proof) = proof {
            transporter = transporter.with_rotation_proof(proof);
        }
        Ok(Self::Direct(transporter))
    }

    async fn delegated(
        ctx: &Context,
        args: &SenderArgs,
        net: &NetArgs,
        domain: Option<&str>,
        device_key: &Path,
    ) -> Result<Self, CliError> {
        let missing = |flag: &str| CliError::usage(format!("--device-key needs {flag}"));
        let from = ctx.identity(args.from.as_ref().map(Identity::as_str))?;
        let agent_id = args.agent_id.clone().ok_or_else(|| missing("--agent-id"))?;
        let delegator = args
            .delegator
            .clone()
            .ok_or_else(|| missing("--delegator"))?;
        let delegator_key = args
            .delegator_key
            .as_deref()
            .ok_or_else(|| missing("--delegator-key"))?;
        let device = read_private_key(device_key)?;
        let delegator_key = read_private_key(delegator_key)?;
        let client = client(ctx, net, domain)?;
        let selector = match &args.delegator_selector {
            Some(s) => s.clone(),
            None => {
                let host = client
                    .dns()
                    .host(delegator.domain())
                    .await
                    .map_err(|e| CliError::from(&e))?;
                Selector::parse(&host.selector).map_err(|e| {
                    CliError::failed(format!(
                        "the host record of {} names selector {:?}: {e}",
                        delegator.domain(),
                        host.selector
                    ))
                })?
            }
        };
        let delegator = Delegator::new(delegator, selector, delegator_key, client.dns()).await?;
        Ok(Self::Delegated(
            DeviceSender::new(client, from.clone(), agent_id, device, delegator),
            from,
        ))
    }

    /// Whether sends are queued by the user's server (agent mode) rather than delivered.
    pub(crate) fn queues(&self) -> bool {
        matches!(self, Self::Agent(_))
    }

    /// The sending identity.
    pub(crate) fn identity(&self) -> Identity {
        match self {
            Self::Agent(s) => s.agent.identity(),
            Self::Direct(t) => t.identity().clone(),
            Self::Delegated(_, from) => from.clone(),
        }
    }

    /// Signs and sends `document` of `kind` to `to`; in direct and delegated mode the signed
    /// artifact is first written to `save/<id>.json` when given.
    ///
    /// # Errors
    ///
    /// The server's refusal (exit 3), transport and DNS failures, a save that fails (74).
    pub(crate) async fn send_document(
        &self,
        kind: TransporterType,
        to: &Identity,
        document: Object,
        encrypt: bool,
        save: Option<&Path>,
    ) -> Result<Sent, CliError> {
        match self {
            Self::Agent(session) => {
                let agent = &session.agent;
                let queued = match kind {
                    TransporterType::TrustReq => agent.trust_request(to, document).await,
                    TransporterType::TrustRes => agent.trust_respond(to, document).await,
                    _ => agent.send(to, document, encrypt).await,
                }
                .map_err(|e| login_hint(e.into()))?;
                Ok(Sent {
                    id: queued.artifact_id,
                    status: if queued.already_accepted {
                        "already accepted"
                    } else {
                        "accepted"
                    },
                })
            }
            Self::Direct(t) => {
                let artifact = t
                    .artifact(kind, to.clone(), document)
                    .encrypt(encrypt)
                    .sign()
                    .await?;
                save_artifact(save, &artifact)?;
                self.send_artifact(artifact).await
            }
            Self::Delegated(d, _) => {
                let artifact = d.sign(kind, to, document, None, encrypt).await?;
                save_artifact(save, &artifact)?;
                self.send_artifact(artifact).await
            }
        }
    }

    /// Sends a signed transporter artifact as it is (direct) or with a fresh delegation
    /// (delegated).
    ///
    /// # Errors
    ///
    /// As [`send_document`](Self::send_document); in agent mode a usage error (the agent
    /// sends only what its device signs).
    pub(crate) async fn send_artifact(&self, artifact: Object) -> Result<Sent, CliError> {
        let id = artifact.get_str("id").unwrap_or_default().to_owned();
        let delivery = match self {
            Self::Agent(_) => {
                return Err(CliError::usage(
                    "a signed artifact is sent again as it is only directly (--key) or \
                     delegated (--device-key), not through the agent",
                ));
            }
            Self::Direct(t) => t.send(&artifact).await?,
            Self::Delegated(d, _) => d.send(&artifact).await?,
        };
        let status = match delivery.status {
            DeliveryStatus::Accepted => "accepted",
            DeliveryStatus::AlreadyAccepted => "already accepted",
            DeliveryStatus::Duplicate => "duplicate",
            _ => "delivered",
        };
        Ok(Sent { id, status })
    }

    /// Ends the run: in agent mode, reports a rotated refresh token that could not be saved.
    pub(crate) fn finish<T>(&self, result: Result<T, CliError>) -> Result<T, CliError> {
        match self {
            Self::Agent(session) => session.finish(result),
            _ => result,
        }
    }
}

/// Writes `artifact` to `dir/<id>.json` (mode 0600), when `dir` is given.
fn save_artifact(dir: Option<&Path>, artifact: &Object) -> Result<(), CliError> {
    let Some(dir) = dir else {
        return Ok(());
    };
    let id = artifact.get_str("id").unwrap_or_default();
    if id.is_empty() || id.contains(['/', '\\']) || id.starts_with('.') {
        return Err(CliError::failed(format!(
            "artifact id {id:?} cannot be a file name"
        )));
    }
    let path = dir.join(format!("{id}.json"));
    let text = to_js_string(&artifact.clone().into()) + "\n";
    fsutil::create_private_dir(dir)
        .and_then(|()| fsutil::write_atomic(&path, text.as_bytes(), 0o600))
        .map_err(|e| CliError::cant_write(format!("{}: {e}", path.display())))
}

/// The worst of several exits: the highest code.
pub(crate) fn worst(exits: impl IntoIterator<Item = Exit>) -> Exit {
    exits
        .into_iter()
        .max_by_key(|e| e.code())
        .unwrap_or(Exit::Ok)
}

/// The rotation proof to carry in-band when `key` is `identity`'s active key in the default
/// key ring (`<config dir>/keyring`) and a proof of it is still valid (docs/keys.md).
fn rotation_proof(
    ctx: &Context,
    identity: &Identity,
    key: &btps_crypto::KeyPair,
) -> Result<Option<btps_crypto::RotationProof>, CliError> {
    let ring = btps_client::KeyRing::new(ctx.profile_ref()?.config_dir.join("keyring"));
    let Ok(keys) = ring.identity(identity) else {
        return Ok(None);
    };
    if keys
        .active()
        .is_none_or(|a| a.fingerprint != key.public_key().fingerprint())
    {
        return Ok(None);
    }
    Ok(ring.current_proof(identity, now()?).ok().flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_exit_and_login_hint() {
        assert_eq!(worst([]), Exit::Ok);
        assert_eq!(
            worst([Exit::Ok, Exit::Refused, Exit::Temporary]),
            Exit::Refused
        );
        assert_eq!(worst([Exit::Temporary, Exit::Usage]), Exit::Usage);
        let e = login_hint(CliError::protocol(
            ErrorCode::AuthenticationInvalid,
            "rejected",
        ));
        assert!(e.message.ends_with("`btps agent login`"), "{}", e.message);
        let e = login_hint(CliError::protocol(ErrorCode::TrustBlocked, "rejected"));
        assert_eq!(e.message, "rejected");
    }

    #[test]
    fn saved_artifacts_need_a_file_name_id() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = Object::new().with("id", "a-1").with("x", 1_u32);
        save_artifact(Some(dir.path()), &artifact).unwrap();
        let text = std::fs::read_to_string(dir.path().join("a-1.json")).unwrap();
        assert_eq!(text, "{\"id\":\"a-1\",\"x\":1}\n");
        for bad in ["", "../x", ".hidden", "a/b"] {
            let artifact = Object::new().with("id", bad);
            assert!(save_artifact(Some(dir.path()), &artifact).is_err(), "{bad}");
        }
        save_artifact(None, &artifact).unwrap();
    }
}
