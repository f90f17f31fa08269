//! The embedded default: a data directory a newcomer can serve from at once.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use btps_crypto::KeyPair;
use btps_types::Identity;

use crate::Cli;

/// Domain of the embedded default (a reserved test name: nothing resolves it publicly).
pub(crate) const DEFAULT_DOMAIN: &str = "local.test";
/// The embedded default's server identity.
pub(crate) const DEFAULT_IDENTITY: &str = "server$local.test";

/// Options of `btps-server init` (the embedded default when serving without a configuration
/// uses the defaults).
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct InitArgs {
    /// The hosted domain (default `local.test`); the server identity becomes
    /// `server$<domain>`.
    #[arg(long)]
    pub(crate) domain: Option<String>,
    /// The `[http]` listen address (default 127.0.0.1:9443).
    #[arg(long, value_name = "IP:PORT")]
    pub(crate) http_listen: Option<std::net::SocketAddr>,
}

/// What [`ensure`] created.
#[derive(Debug, Default)]
pub(crate) struct InitReport {
    pub(crate) dir: PathBuf,
    pub(crate) created: Vec<String>,
}

impl InitReport {
    pub(crate) fn print(&self) {
        if self.created.is_empty() {
            println!("btps-server: using {}", self.dir.display());
        } else {
            println!("btps-server: created {}:", self.dir.display());
            for line in &self.created {
                println!("  {line}");
            }
        }
    }
}

/// The configuration file path of `cli`.
pub(crate) fn config_path(cli: &Cli) -> PathBuf {
    cli.config
        .clone()
        .unwrap_or_else(|| cli.data_dir.join("config.toml"))
}

/// Creates the data directory with the embedded default when its configuration is missing:
/// `config.toml`, the server key, a static DNS table publishing it, and the directories the
/// file stores and the self-signed certificate go to (the certificate itself is generated
/// by the server on start).
pub(crate) fn ensure(cli: &Cli, args: &InitArgs) -> Result<InitReport> {
    let dir = cli.data_dir.clone();
    let domain = args
        .domain
        .as_deref()
        .unwrap_or(DEFAULT_DOMAIN)
        .to_ascii_lowercase();
    let server_identity: Identity = format!("server${domain}")
        .parse()
        .with_context(|| format!("{domain:?} is not a usable domain"))?;
    let listen = cli
        .listen
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 3443)));
    let http = args
        .http_listen
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 9443)));
    let mut report = InitReport {
        dir: dir.clone(),
        created: Vec::new(),
    };
    let config = config_path(cli);
    if config.exists() {
        return Ok(report);
    }
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let key_path = dir.join("keys/server-private.pem");
    let key = if key_path.exists() {
        KeyPair::from_pem(&fs::read_to_string(&key_path)?)
            .with_context(|| format!("{}", key_path.display()))?
    } else {
        let key = KeyPair::generate_rsa2048().context("generate the server key")?;
        write_private(&key_path, key.to_pkcs8_pem()?.as_bytes())?;
        write(
            &dir.join("keys/server-public.pem"),
            key.public_key().to_pem().as_bytes(),
        )?;
        report.created.push(format!(
            "keys/server-private.pem  RSA-2048 key of {server_identity} (selector btps1)"
        ));
        key
    };
    let dns_path = dir.join("dns.json");
    if !dns_path.exists() {
        let record =
            btps_dns::identity_zone_record(&server_identity, "btps1", key.public_key(), 300)?;
        let table = serde_json::json!({
            format!("_btps.host.{domain}"): [format!("v=1.0.0;u={listen};s=btps1")],
            record.name: [record.text],
        });
        write(&dns_path, serde_json::to_string_pretty(&table)?.as_bytes())?;
        report
            .created
            .push("dns.json                 static DNS table (host record and server key)".into());
    }
    let text = DEFAULT_CONFIG
        .replace(
            "listen = \"127.0.0.1:3443\"",
            &format!("listen = \"{listen}\""),
        )
        .replace(
            "listen = \"127.0.0.1:9443\"",
            &format!("listen = \"{http}\""),
        )
        .replace(
            &format!("domains = [\"{DEFAULT_DOMAIN}\"]"),
            &format!("domains = [\"{domain}\"]"),
        )
        .replace(
            &format!("server_identity = \"{DEFAULT_IDENTITY}\""),
            &format!("server_identity = \"{server_identity}\""),
        );
    write(&config, text.as_bytes())?;
    report
        .created
        .push("config.toml              configuration (every option documented)".into());
    // The self-signed certificate now, so that peers can be given it before the first start.
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    btps_server::ensure_self_signed(&dir.join("tls/cert.pem"), &dir.join("tls/key.pem"), &names)
        .context("generate the self-signed TLS certificate")?;
    report.created.push(
        "tls/cert.pem, tls/key.pem self-signed TLS certificate (localhost, 127.0.0.1)".into(),
    );
    report
        .created
        .push("store/                   file stores, made on start".into());
    Ok(report)
}

fn write(path: &Path, contents: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, contents).with_context(|| format!("write {}", path.display()))
}

fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

/// The embedded default configuration. Paths are relative to the data directory.
pub(crate) const DEFAULT_CONFIG: &str = r#"# btps-server configuration. Every option shows its default unless marked otherwise;
# each can be overridden by an environment variable: BTPS_<OPTION>, or
# BTPS_<SECTION>__<OPTION> inside a section (for example BTPS_LIMITS__MAX_LINE_BYTES).
# Paths are relative to the data directory. See docs/server.md.

listen = "127.0.0.1:3443"
# Hosted domains: artifacts to identities of these domains are accepted (plus every
# identity in the identity store). Embedded default: the reserved test domain local.test.
domains = ["local.test"]
# The identity (and selector and key) that signs identity-lookup replies.
server_identity = "server$local.test"
server_selector = "btps1"
server_key = "keys/server-private.pem"
sign_auth_replies = false
pin_keys = false
attestors = []                      # who may attest self-signed delegations (empty: any)
# delivery_log = "delivery.jsonl"   # every accepted transporter artifact, fsynced (off)
service_name = "btps-server"

[tls]
cert = "tls/cert.pem"
key = "tls/key.pem"
self_signed = true                  # generate cert/key when missing
self_signed_names = ["localhost", "127.0.0.1"]

[store]
url = "file"                        # or postgres://user@host/db
trust_file = ".well-known/btps-trust.json"
identity_file = ".well-known/btps-identity.json"
pool_size = 16
sync_interval_us = 1000             # file store group commit: min. gap between busy syncs

[dns]
file = "dns.json"                   # static table; remove to use live DNS
nameservers = []                    # ip:port; empty = system resolver

[limits]
max_line_bytes = 4194304
max_buffered_bytes = 268435456
max_connections = 10000
max_connections_per_ip = 64
max_handshakes = 256
max_handshakes_per_ip = 16
max_in_flight = 16
max_depth = 64
freshness_window_secs = 300

[timeouts]
handshake_ms = 10000
idle_ms = 30000
line_read_ms = 10000
write_ms = 10000
request_ms = 30000
shutdown_grace_ms = 10000

[rate_limits]                       # per minute; 0 disables
per_ip_per_minute = 10
per_sender_per_minute = 100
global_per_minute = 1000
trust_requests_per_minute = 10
trust_requests_per_domain_per_minute = 30
lookups_per_ip_per_minute = 600
auth_requests_per_minute = 10
auth_failures_per_15_minutes = 5
close_after_rejections = 3

[tokens]
auth_token_secs = 900
auth_token_len = 12
refresh_token_secs = 604800

[delivery]                          # outbound: agents' queued artifacts to other servers
enabled = true
concurrency = 10                    # attempts in flight
retry_delays_secs = [60, 120, 240, 480, 960]
lifetime_secs = 86400               # no retry later than this after queueing
lease_secs = 60                     # one attempt's claim on an entry (> request timeout)
poll_ms = 1000
request_timeout_ms = 5000
ca_files = []                       # CA PEM files instead of the system trust store

[http]
listen = "127.0.0.1:9443"           # /healthz, /readyz, /metrics, /.well-known/* (plain HTTP)
# well_known_listen = "0.0.0.0:443" # HTTPS (the BTPS certificate), /.well-known/* only
publish_trust = false               # serve /.well-known/btps-trust.json (reveals relationships)

[key_rotation]                      # docs/keys.md
keyring = "keyring"                 # the server identities' keys by selector
grace_secs = 0                      # old key kept after a switch; 0 = freshness window + delivery lifetime + 1 h
check_interval_secs = 60            # how often a pending key is looked up in DNS
fetch_proofs = true                 # fetch https://<domain>/.well-known/btp-key-rotation.json for pinned senders
fetch_timeout_ms = 5000
ca_files = []                       # instead of the system trust store, for the fetch
# proof_urls = { "vendorcorp.test" = "https://127.0.0.1:8443" }

[log]
format = "text"                     # or json
level = "info"

[keys]                              # RSA under 2048 bits is always refused (docs/keys.md)
accept_ed25519 = true               # Ed25519 device/delegation keys between Rust peers
"#;
