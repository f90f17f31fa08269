//! Operator subcommands over the configured stores.

use anyhow::{Context, Result, bail};
use btps_crypto::{KeyType, PublicKey, SystemRandom};
use btps_trust::{
    IdentityKey, IdentityRecord, PageRequest, TokenHash, TokenKind, TokenRecord, TrustFilter,
    TrustRecord, TrustStatus, generate_auth_token, trust_id,
};
use btps_types::artifact::PrivacyType;
use btps_types::{Identity, UnixMillis};
use clap::Subcommand;

use crate::Cli;
use crate::run::{load_config, now, open_stores};

/// `btps-server identity …`.
#[derive(Debug, Subcommand)]
pub(crate) enum IdentityCmd {
    /// Host an identity: its public key goes to the identity store (publish it in DNS too).
    Add {
        /// `user$domain`.
        identity: String,
        /// PEM SPKI public key file: RSA, 2048 to 8192 bits.
        #[arg(long)]
        public_key: std::path::PathBuf,
        /// Selector of the key.
        #[arg(long, default_value = "btps1")]
        selector: String,
    },
    /// List hosted identities.
    List,
    /// Stop hosting an identity.
    Remove {
        /// `user$domain`.
        identity: String,
    },
}

/// `btps-server agent …`.
#[derive(Debug, Subcommand)]
pub(crate) enum AgentCmd {
    /// Print a one-time auth token for onboarding a device of `identity`.
    Token {
        /// `user$domain` (hosted here).
        identity: String,
        /// Lifetime in seconds (300–900; default from the configuration).
        #[arg(long)]
        ttl_secs: Option<u64>,
    },
    /// List the agents of `identity`.
    List {
        /// `user$domain`.
        identity: String,
    },
    /// Revoke an agent: its record becomes `revoked` and its refresh tokens are deleted.
    Revoke {
        /// `user$domain`.
        identity: String,
        /// `btps_ag_…`.
        agent_id: String,
    },
}

/// `btps-server trust …`.
#[derive(Debug, Subcommand)]
pub(crate) enum TrustCmd {
    /// List trust records (of one receiver, or all).
    List {
        /// Only records whose receiver is this identity.
        #[arg(long)]
        receiver: Option<String>,
    },
    /// Create or replace the record `sender → receiver`.
    Set {
        /// Sender identity.
        sender: String,
        /// Receiver identity.
        receiver: String,
        /// accepted, rejected, revoked, pending or blocked.
        #[arg(long, default_value = "accepted")]
        status: String,
        /// unencrypted, encrypted or mixed.
        #[arg(long, default_value = "encrypted")]
        privacy: String,
        /// Expiry (RFC 3339, e.g. 2027-01-01T00:00:00.000Z).
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// Revoke the record `sender → receiver`: further artifacts are refused at once.
    Revoke {
        /// Sender identity.
        sender: String,
        /// Receiver identity.
        receiver: String,
    },
}

/// Agent ids, and so the `senderId` of agent records, start with this.
const AGENT_PREFIX: &str = "btps_ag_";

fn identity(text: &str) -> Result<Identity> {
    text.parse()
        .map_err(|e| anyhow::anyhow!("{text:?} is not an identity (user$domain): {e}"))
}

pub(crate) async fn identity_cmd(cli: &Cli, cmd: &IdentityCmd) -> Result<()> {
    let config = load_config(cli)?;
    let stores = open_stores(&config).await?;
    match cmd {
        IdentityCmd::Add {
            identity: id,
            public_key,
            selector,
        } => {
            let id = identity(id)?;
            let pem = std::fs::read_to_string(public_key)
                .with_context(|| format!("read {}", public_key.display()))?;
            let key = PublicKey::from_pem(&pem).with_context(|| {
                format!(
                    "{}: not a usable public key (RSA keys need 2048 to 8192 bits)",
                    public_key.display()
                )
            })?;
            if key.key_type() != KeyType::Rsa {
                // Peers encrypt documents to a hosted identity's key (RSA-OAEP) and btps-node
                // peers verify it: Ed25519 is for device and delegation keys only.
                bail!(
                    "{}: identity keys must be RSA (2048 bits or more): senders encrypt \
                     documents to them with RSA-OAEP and btps-node peers cannot verify {} \
                     signatures; {} keys are for agent devices and delegations between Rust peers",
                    public_key.display(),
                    key.key_type(),
                    key.key_type()
                );
            }
            let record = match stores.identities.get_identity(id.as_str()).await? {
                Some(mut r) => {
                    r.rotate_to(IdentityKey::rsa(selector, &key.to_pem(), now()));
                    r
                }
                None => IdentityRecord::new(
                    id.clone(),
                    IdentityKey::rsa(selector, &key.to_pem(), now()),
                ),
            };
            stores.identities.put_identity(&record).await?;
            println!(
                "hosting {id} (selector {selector}, key {})",
                key.fingerprint()
            );
        }
        IdentityCmd::List => {
            let mut page = PageRequest::first(1000);
            loop {
                let p = stores.identities.list_identities(&page).await?;
                for r in &p.items {
                    println!("{}\t{}", r.identity, r.current_selector);
                }
                match p.next_cursor {
                    Some(c) => page.cursor = Some(c),
                    None => break,
                }
            }
        }
        IdentityCmd::Remove { identity: id } => {
            if !stores
                .identities
                .delete_identity(identity(id)?.as_str())
                .await?
            {
                bail!("{id} is not hosted here");
            }
            println!("removed {id}");
        }
    }
    Ok(())
}

pub(crate) async fn agent(cli: &Cli, cmd: &AgentCmd) -> Result<()> {
    let config = load_config(cli)?;
    let stores = open_stores(&config).await?;
    match cmd {
        AgentCmd::Token {
            identity: id,
            ttl_secs,
        } => {
            let id = identity(id)?;
            // The pipeline refuses `auth.request` for identities it does not host: a token
            // for one could never be used.
            let hosted = config
                .domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(id.domain()))
                || stores.identities.get_identity(id.as_str()).await?.is_some();
            if !hosted {
                bail!(
                    "{id} is not hosted here: add its domain to `domains` or run \
                     `btps-server identity add {id} --public-key …`"
                );
            }
            let ttl = ttl_secs
                .unwrap_or(config.tokens.auth_token_secs)
                .clamp(300, 900);
            let token = generate_auth_token(&SystemRandom, config.tokens.auth_token_len)?;
            let user = id.to_lowercase();
            let created = now();
            let expires = created.saturating_add_millis(i64::try_from(ttl)? * 1000);
            stores
                .identities
                .create_token(&TokenRecord {
                    kind: TokenKind::Auth,
                    hash: TokenHash::of(&token),
                    subject: user.clone(),
                    user_identity: user.clone(),
                    decrypt_by: user,
                    metadata: None,
                    created_at: created,
                    expires_at: expires,
                })
                .await?;
            println!("{token}");
            eprintln!(
                "one-time auth token for {id}, valid until {}",
                expires.to_datetime_string()
            );
        }
        AgentCmd::List { identity: id } => {
            let id = identity(id)?;
            // Agent records are among the identity's incoming trust records: every page.
            let filter = TrustFilter::Receiver(id.to_lowercase());
            let mut page = PageRequest::first(1000);
            loop {
                let p = stores.trust.list_trust(&filter, &page).await?;
                for r in p
                    .items
                    .iter()
                    .filter(|r| r.sender_id.starts_with(AGENT_PREFIX))
                {
                    println!(
                        "{}\t{}\t{}",
                        r.sender_id,
                        r.status.as_str(),
                        fmt_time(r.expires_at)
                    );
                }
                match p.next_cursor {
                    Some(c) => page.cursor = Some(c),
                    None => break,
                }
            }
        }
        AgentCmd::Revoke {
            identity: id,
            agent_id,
        } => {
            let id = identity(id)?;
            if !agent_id.starts_with(AGENT_PREFIX) {
                bail!(
                    "{agent_id:?} is not an agent id ({AGENT_PREFIX}…); for senders use \
                     `trust revoke`"
                );
            }
            let tid = trust_id(agent_id, id.as_str());
            let Some(record) = stores.trust.get_trust(&tid).await? else {
                bail!("no agent {agent_id} for {id}");
            };
            let revoked = btps_trust::revoke(&record, &config.service_name, None, now()).or_else(
                |_| -> Result<TrustRecord> {
                    let mut r = record.clone();
                    r.status = TrustStatus::Revoked;
                    Ok(r)
                },
            )?;
            stores.trust.put_trust(&revoked).await?;
            let n = stores
                .identities
                .revoke_tokens(TokenKind::Refresh, agent_id, now())
                .await?;
            println!("revoked {agent_id} ({n} refresh token(s) deleted)");
        }
    }
    Ok(())
}

fn fmt_time(t: Option<UnixMillis>) -> String {
    t.map_or_else(|| "-".to_owned(), UnixMillis::to_datetime_string)
}

pub(crate) async fn trust(cli: &Cli, cmd: &TrustCmd) -> Result<()> {
    let config = load_config(cli)?;
    let stores = open_stores(&config).await?;
    match cmd {
        TrustCmd::List { receiver } => {
            let filter = match receiver {
                Some(r) => TrustFilter::Receiver(identity(r)?.to_lowercase()),
                None => TrustFilter::All,
            };
            let mut page = PageRequest::first(1000);
            loop {
                let p = stores.trust.list_trust(&filter, &page).await?;
                for r in &p.items {
                    println!(
                        "{}\t{} -> {}\t{}\t{}\texpires {}",
                        r.id,
                        r.sender_id,
                        r.receiver_id,
                        r.status.as_str(),
                        r.privacy_type.as_str(),
                        fmt_time(r.expires_at)
                    );
                }
                match p.next_cursor {
                    Some(c) => page.cursor = Some(c),
                    None => break,
                }
            }
        }
        TrustCmd::Set {
            sender,
            receiver,
            status,
            privacy,
            expires_at,
        } => {
            let (s, r) = (identity(sender)?, identity(receiver)?);
            let status =
                TrustStatus::from_wire(status).with_context(|| format!("status {status:?}"))?;
            let privacy =
                PrivacyType::from_wire(privacy).with_context(|| format!("privacy {privacy:?}"))?;
            let expires = match expires_at {
                Some(t) => Some(UnixMillis::parse(t).map_err(|e| anyhow::anyhow!("{t}: {e}"))?),
                None => None,
            };
            let existing = stores
                .trust
                .get_trust(&trust_id(s.as_str(), r.as_str()))
                .await?;
            let mut record =
                existing.unwrap_or_else(|| TrustRecord::new(s.as_str(), r.as_str(), status, now()));
            record.status = status;
            record.privacy_type = privacy;
            record.expires_at = expires;
            record.decided_at = now();
            record.decided_by.clone_from(&config.service_name);
            stores.trust.put_trust(&record).await?;
            println!("{}\t{s} -> {r}\t{}", record.id, status.as_str());
        }
        TrustCmd::Revoke { sender, receiver } => {
            let (s, r) = (identity(sender)?, identity(receiver)?);
            let id = trust_id(s.as_str(), r.as_str());
            let Some(record) = stores.trust.get_trust(&id).await? else {
                bail!("no trust record {s} -> {r}");
            };
            let revoked = btps_trust::revoke(&record, &config.service_name, None, now())
                .with_context(|| format!("record is {}", record.status.as_str()))?;
            stores.trust.put_trust(&revoked).await?;
            println!("revoked {s} -> {r}");
        }
    }
    Ok(())
}
