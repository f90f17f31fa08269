//! The command line (clap derive): global options, commands and their arguments. No logic
//! here; `commands` runs what is parsed.

use std::net::SocketAddr;
use std::path::PathBuf;

use btps_client::ServerAddr;
use btps_crypto::KeyType;
use btps_dns::{DEFAULT_RECORD_TTL, DnssecMode};
use btps_types::artifact::{PrivacyType, SortOrder, TransporterType, TrustDecision};
use btps_types::{Identity, Selector, UnixMillis};
use clap::{Args, Parser, Subcommand};

/// The long help's tail: exit codes, profiles, environment.
const AFTER_LONG_HELP: &str = "\
Exit codes:
  0   success
  1   not found, unusable, or verification failed: a permanent answer
      (the BTP error code is printed, e.g. BTP_ERROR_SIG_VERIFICATION)
  2   temporary failure (DNS or server unavailable, timeout): retry later
  3   refused by the server: a permanent error reply (network commands)
  64  bad arguments or unreadable input (files, keys, profile)
  74  an output file could not be written

Errors are one line `btps: <message>` on standard error. With --json, standard output
holds one JSON document: the result, or {\"error\": {\"code\", \"status\", \"temporary\",
\"message\"}}.

Profiles: settings live in profiles/<NAME>.toml in the configuration directory
($BTPS_CONFIG_DIR, else $XDG_CONFIG_HOME/btps, else ~/.config/btps). The profile is chosen
with --profile or $BTPS_PROFILE (default: `default`). Command-line flags override profile
values, which override the defaults. See `btps profile --help`.";

/// BTPS command-line tool: identity keys and DNS records, verification and decryption of
/// artifacts, profiles, and the network commands (agent login, send, trust, mailboxes).
#[derive(Debug, Parser)]
#[command(
    name = "btps",
    version,
    about = "BTPS command-line tool",
    long_about = "BTPS command-line tool: generate identity keys and the DNS records to publish, \
                  resolve identities, verify and decrypt signed artifacts (offline with a DNS \
                  table, or with live DNS), keep settings in profiles, log a device in to your \
                  BTPS server, send documents and trust requests, and read your mailboxes.",
    after_long_help = AFTER_LONG_HELP
)]
pub(crate) struct Cli {
    /// Print one JSON document on standard output (errors too, as {"error": …}).
    #[arg(long, global = true, help_heading = "Global options")]
    pub(crate) json: bool,
    /// Profile to use: `profiles/<NAME>.toml` in the configuration directory (env: BTPS_PROFILE;
    /// default: default).
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        help_heading = "Global options"
    )]
    pub(crate) profile: Option<String>,
    /// Configuration directory (env: BTPS_CONFIG_DIR; default: $XDG_CONFIG_HOME/btps, else
    /// ~/.config/btps).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help_heading = "Global options"
    )]
    pub(crate) config_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// DNS records of BTPS identities.
    #[command(subcommand)]
    Dns(DnsCommand),
    /// Generates an identity key pair (RSA-2048 by default) and prints the DNS records to
    /// publish.
    Keygen(KeygenArgs),
    /// Identity keys by selector in a key ring: import, rotate, status, activate, retire,
    /// and the rotation proofs to publish (docs/keys.md).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Signed artifacts in files: verify signatures, decrypt documents.
    #[command(subcommand)]
    Artifact(ArtifactCommand),
    /// Profiles: identity, key, server, DNS settings and agent state.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// This device as an agent of your identity at your BTPS server: login, refresh, ping,
    /// show, logout.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Sends documents (invoices, trust requests and responses) or saved signed artifacts.
    Send(SendArgs),
    /// Trust: ask for it, answer a request, list your trust records.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Received artifacts (agent): list, show (verified and decrypted), mark seen, delete.
    Inbox(InboxArgs),
    /// Artifacts queued for delivery by your server (agent): list with delivery state,
    /// cancel.
    Outbox(OutboxArgs),
    /// Delivered artifacts (agent): list, delete.
    Sentbox(SentboxArgs),
    /// Deleted artifacts (agent): list, delete for good.
    Trash(TrashArgs),
    /// Drafts kept by your server (agent): list, create, update, delete.
    #[command(subcommand)]
    Draft(DraftCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum DnsCommand {
    /// Resolves an identity's host record and public key (fingerprint, key type, TTL).
    /// Exit 1: not found or unusable; 2: temporary DNS failure.
    Resolve(ResolveArgs),
    /// Prints the TXT records an identity publishes, in zone-file syntax.
    Records(RecordsArgs),
}

/// Where DNS answers come from; shared by every command that resolves keys.
#[derive(Debug, Args)]
pub(crate) struct DnsArgs {
    /// Nameserver to ask, `ip:port` (repeatable; default: the profile's `nameservers`, else
    /// the system configuration).
    #[arg(long = "nameserver", value_name = "IP:PORT")]
    pub(crate) nameservers: Vec<SocketAddr>,
    /// Answer from a JSON table in the `vectors/dns.json` format instead of DNS (default: the
    /// profile's `dns_file`).
    #[arg(long, value_name = "FILE", conflicts_with = "nameservers")]
    pub(crate) dns_file: Option<PathBuf>,
    /// DNSSEC validation: off, prefer or require.
    #[arg(long, default_value = "off")]
    pub(crate) dnssec: DnssecMode,
    /// Timeout of one query attempt, in seconds (2 attempts).
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub(crate) timeout: u64,
}

#[derive(Debug, Args)]
pub(crate) struct ResolveArgs {
    /// The identity, `account$domain`.
    pub(crate) identity: String,
    /// Key selector (default: the current selector `s=` of the host record).
    #[arg(long)]
    pub(crate) selector: Option<String>,
    #[command(flatten)]
    pub(crate) dns: DnsArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RecordsArgs {
    /// The identity, `account$domain`.
    pub(crate) identity: String,
    /// The public key (PEM; a private key PEM also works, its public half is used).
    #[arg(long, value_name = "FILE")]
    pub(crate) public_key: PathBuf,
    /// The key's selector; it also becomes the domain's current selector.
    #[arg(long)]
    pub(crate) selector: String,
    /// The BTPS server address for the host record.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) host: String,
    /// TTL of the records, in seconds.
    #[arg(long, default_value_t = DEFAULT_RECORD_TTL)]
    pub(crate) ttl: u32,
}

#[derive(Debug, Args)]
#[command(after_long_help = "\
Files: <DIR>/<account>@<domain>-<selector>-private.pem (PKCS#8, mode 0600) and
<DIR>/<account>@<domain>-<selector>-public.pem (SPKI). Existing files are kept unless --force.

The host record's s= names the domain's current selector: publishing it switches every
identity of the domain to that selector. During a rotation keep the old key record
published (PROTOCOL.md §6.4).

Key types: RSA (--bits 2048, 3072, 4096 or 8192; under 2048 is refused) is what identity
keys must be: senders encrypt documents to them with RSA-OAEP and btps-node peers verify
them. Ed25519 (--type ed25519, k=ed25519) is for device and delegation keys between Rust
peers only; btps-node cannot verify Ed25519 signatures (PROTOCOL.md §6.3).")]
pub(crate) struct KeygenArgs {
    /// The identity, `account$domain` (default: the profile's `identity`).
    #[arg(long)]
    pub(crate) identity: Option<String>,
    /// The key's selector (default: the profile's `selector`, else btps1).
    #[arg(long)]
    pub(crate) selector: Option<String>,
    /// The BTPS server address for the host record (default: the profile's `server`, else
    /// `btps.<domain>:3443`).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) host: Option<String>,
    /// Directory for the key files (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub(crate) out: PathBuf,
    /// TTL of the printed records, in seconds.
    #[arg(long, default_value_t = DEFAULT_RECORD_TTL)]
    pub(crate) ttl: u32,
    /// Replace existing key files.
    #[arg(long)]
    pub(crate) force: bool,
    /// Record identity, selector and the private key's path in the profile.
    #[arg(long)]
    pub(crate) save: bool,
    /// Key type: rsa, or ed25519 (device and delegation keys between Rust peers only).
    #[arg(long = "type", value_name = "TYPE", default_value = "rsa", value_parser = parse_key_type)]
    pub(crate) key_type: KeyType,
    /// RSA modulus size: 2048, 3072, 4096 or 8192 (default 2048).
    #[arg(long, value_name = "BITS")]
    pub(crate) bits: Option<u32>,
}

/// Where the key ring is.
#[derive(Debug, Args)]
pub(crate) struct KeyringArgs {
    /// The key-ring directory (default: `<config dir>/keyring`; a server's is
    /// `<data dir>/keyring`).
    #[arg(long, value_name = "DIR")]
    pub(crate) keyring: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Adds an existing private key as the active key of an identity.
    Import {
        /// The identity, `account$domain`.
        identity: String,
        /// The key's selector.
        #[arg(long, default_value = "btps1")]
        selector: String,
        /// The private key (PEM).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[command(flatten)]
        ring: KeyringArgs,
    },
    /// Creates the next selector's key (pending), signs a rotation proof with the active
    /// key, and prints the DNS record to publish.
    Rotate {
        /// The identity, `account$domain`.
        identity: String,
        /// The new selector (default: the active one counted up, btps1 → btps2).
        #[arg(long)]
        selector: Option<String>,
        /// rsa (RSA-2048, default) or ed25519 (Rust peers only).
        #[arg(long, default_value = "rsa")]
        key_type: String,
        /// How long receivers may use the rotation proof, in days.
        #[arg(long, default_value_t = 90)]
        proof_days: u32,
        #[command(flatten)]
        ring: KeyringArgs,
    },
    /// Lists an identity's keys with their state and whether DNS serves them.
    Status {
        /// The identity, `account$domain`.
        identity: String,
        #[command(flatten)]
        ring: KeyringArgs,
        #[command(flatten)]
        dns: DnsArgs,
    },
    /// Makes the pending key active once DNS serves it; the old key keeps decrypting for
    /// the grace period.
    Activate {
        /// The identity, `account$domain`.
        identity: String,
        /// Seconds the old key stays usable (at least the receivers' freshness window
        /// plus the longest delivery retry period: the default is 25 hours).
        #[arg(long, default_value_t = 25 * 3600)]
        grace_secs: u64,
        /// Activate without checking DNS.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        ring: KeyringArgs,
        #[command(flatten)]
        dns: DnsArgs,
    },
    /// Removes retiring keys whose grace period ended; prints the DNS records to delete.
    Retire {
        /// The identity, `account$domain`.
        identity: String,
        /// Retire before the grace period ends.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        ring: KeyringArgs,
    },
    /// Prints (or writes) `/.well-known/btp-key-rotation.json` for the key ring: every
    /// rotation proof still valid.
    Proofs {
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        ring: KeyringArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ArtifactCommand {
    /// Verifies a signed artifact: kind, signer, selector, delegation and attestation, over
    /// the JSON exactly as received. Exit 1 with the BTP error code when it does not verify.
    Verify(VerifyArgs),
    /// Verifies an artifact, then decrypts its document with your private key(s) and prints
    /// it.
    Decrypt(DecryptArgs),
}

/// How an artifact is checked; shared by `verify` and `decrypt`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Also check freshness (PROTOCOL.md §10.1): the artifact's reference time must be within
    /// this many seconds of the verify instant. Not checked by default, so archived
    /// artifacts still verify.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) max_age: Option<u64>,
    /// The verify instant for --max-age, a datetime like 2025-07-01T09:30:00Z (default: now).
    #[arg(long, value_name = "DATETIME", requires = "max_age", value_parser = parse_instant)]
    pub(crate) at: Option<UnixMillis>,
    /// Device public key (PEM) for agent artifacts: agent keys are not published in DNS.
    #[arg(long, value_name = "FILE")]
    pub(crate) agent_key: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) dns: DnsArgs,
}

#[derive(Debug, Args)]
#[command(after_long_help = "\
The artifact file holds one JSON text (a trailing newline is fine); `-` reads standard input.
Signatures are checked over the parsed text exactly as received, never over a re-serialized
copy. Keys come from DNS (or --dns-file); for delegated artifacts the delegator's and
attestor's keys, and the device-delegation records of PROTOCOL.md §6.6 when published.")]
pub(crate) struct VerifyArgs {
    /// The artifact file (`-`: standard input).
    #[arg(value_name = "FILE")]
    pub(crate) input: PathBuf,
    #[command(flatten)]
    pub(crate) check: CheckArgs,
}

#[derive(Debug, Args)]
#[command(after_long_help = "\
Keys: --key PATH or --key SELECTOR=PATH (repeatable). The key whose selector equals the
artifact's `selector` is tried first, then the others in order (PROTOCOL.md §5.4). Without
--key, the profile's `key` (under its `selector`) and `decrypt_keys` are used.

Output: the document as `JSON.stringify(document, null, 2)`; --raw prints the decrypted
plaintext exactly as it was encrypted, byte for byte, without a trailing newline. With
--json: {\"verification\": …, \"encrypted\", \"document\", \"plaintext\"}.")]
pub(crate) struct DecryptArgs {
    /// The artifact file (`-`: standard input).
    #[arg(value_name = "FILE")]
    pub(crate) input: PathBuf,
    /// A private key PEM, optionally as SELECTOR=PATH (repeatable).
    #[arg(long = "key", value_name = "[SELECTOR=]PATH")]
    pub(crate) keys: Vec<String>,
    /// Print the exact decrypted text instead of the pretty-printed document.
    #[arg(long)]
    pub(crate) raw: bool,
    #[command(flatten)]
    pub(crate) check: CheckArgs,
}

#[derive(Debug, Subcommand)]
#[command(after_long_help = "\
Keys for `set` and `unset`: identity, selector, key, server, ca, insecure, nameservers
(comma-separated ip:port), dns_file, decrypt_keys (comma-separated SELECTOR=PATH),
agent.server, agent.identity, agent.agent_id, agent.device_key, agent.refresh_token,
agent.expires_at, agent.decrypt_by. Relative paths given to `set` are made absolute; relative
paths written by hand in a profile are relative to the configuration directory.

Profiles are written atomically (temporary file, fsync, rename) with mode 0600: the agent
table holds a refresh token.")]
pub(crate) enum ProfileCommand {
    /// Prints the profile (the refresh token is hidden unless --show-secrets).
    Show {
        /// Print the agent refresh token too.
        #[arg(long)]
        show_secrets: bool,
    },
    /// Sets a value in the profile (creating the file if needed).
    Set {
        /// The key, e.g. identity or agent.server.
        key: String,
        /// The value; `-` reads it from standard input (keeps a refresh token out of the
        /// shell history).
        value: String,
    },
    /// Removes a value from the profile.
    Unset {
        /// The key.
        key: String,
    },
    /// Prints the path of the profile file.
    Path,
    /// Lists the profiles in the configuration directory.
    List,
    /// Adds a private key for decryption (`decrypt_keys`): the key of an older selector, or
    /// the identity key when the profile's `key` is not set.
    AddDecryptKey {
        /// The selector the key is published under.
        #[arg(value_parser = parse_selector)]
        selector: Selector,
        /// The private key (PEM).
        path: PathBuf,
    },
}

/// How to reach BTPS servers; shared by every network command.
#[derive(Debug, Args)]
pub(crate) struct NetArgs {
    /// The server `host:port` to talk to instead of the one the DNS host record names: your
    /// server for `agent login` and the agent commands, the recipient's for direct and
    /// delegated sends (default: the agent's server; for a domain, the profile's `server`
    /// when it is the profile identity's domain).
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_server)]
    pub(crate) server: Option<ServerAddr>,
    /// CA certificates (PEM) for the server's TLS certificate, instead of the system's trust
    /// store (default: the profile's `ca`).
    #[arg(long, value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
    /// Accept any TLS certificate: anyone on the path can read and change the traffic. For
    /// tests only.
    #[arg(long, conflicts_with = "ca")]
    pub(crate) insecure: bool,
    #[command(flatten)]
    pub(crate) dns: DnsArgs,
}

#[derive(Debug, Subcommand)]
#[command(after_long_help = "\
The agent state (server, identity, agent id, device key file, refresh token and its expiry,
decrypting identity) is kept in the profile's [agent] table; the device private key is a file
under the configuration directory (agents/<profile>-<agent id>.pem, mode 0600). The refresh
token is single-use: every command that rotates it (refresh, or any agent command when it
expires within 10 minutes) saves the new one in the profile.")]
pub(crate) enum AgentCommand {
    /// Registers this device with your server using a one-time token (PROTOCOL.md §8.2) and
    /// saves the agent state, plus the server, CA, nameservers and identity given, in the
    /// profile.
    Login(LoginArgs),
    /// Rotates the refresh token now (PROTOCOL.md §8.4).
    Refresh(NetArgs),
    /// Checks that the server accepts this agent (`system.ping`).
    Ping(NetArgs),
    /// Prints the agent state (without the refresh token). No network.
    Show,
    /// Forgets the agent state and deletes the device key file. The server keeps the device
    /// until it expires or its administrator revokes it.
    Logout,
}

#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    /// Your identity, `account$domain` (default: the profile's `identity`).
    #[arg(long, value_name = "ID", value_parser = parse_identity)]
    pub(crate) identity: Option<Identity>,
    /// The one-time auth token your server's administrator gave you; `-` reads it from
    /// standard input.
    #[arg(long)]
    pub(crate) token: String,
    /// A name for this device, shown to the server's administrator.
    #[arg(long, value_name = "DEVICE")]
    pub(crate) name: Option<String>,
    /// Device key type: rsa (RSA-2048), or ed25519 — only when your server accepts it and
    /// everything you send goes to servers of this implementation: btps-node cannot verify
    /// Ed25519 device signatures.
    #[arg(long, value_name = "TYPE", default_value = "rsa", value_parser = parse_key_type)]
    pub(crate) key_type: KeyType,
    #[command(flatten)]
    pub(crate) net: NetArgs,
}

/// Who sends: the agent of the profile, an identity key (direct), or a delegated device key.
#[derive(Debug, Args)]
pub(crate) struct SenderArgs {
    /// Send directly, signed with this identity private key (PEM), instead of through the
    /// agent (default: the profile's `key` when the profile has no agent).
    #[arg(long, value_name = "FILE", conflicts_with = "device_key")]
    pub(crate) key: Option<PathBuf>,
    /// The sending identity (default: the profile's `identity`).
    #[arg(long, value_name = "ID", value_parser = parse_identity)]
    pub(crate) from: Option<Identity>,
    /// The selector of --key (default: the profile's `selector`, else btps1).
    #[arg(long, value_parser = parse_selector)]
    pub(crate) selector: Option<Selector>,
    /// Send directly, signed with this device private key (PEM) and delegated by
    /// --delegator (PROTOCOL.md §9.4).
    #[arg(
        long,
        value_name = "FILE",
        requires_all = ["agent_id", "delegator", "delegator_key"]
    )]
    pub(crate) device_key: Option<PathBuf>,
    /// The agent id the device key is delegated under.
    #[arg(long, value_name = "ID", requires = "device_key")]
    pub(crate) agent_id: Option<String>,
    /// The identity that delegates the device: the service identity of the sender's domain,
    /// or the sender itself.
    #[arg(long, value_name = "ID", value_parser = parse_identity, requires = "device_key")]
    pub(crate) delegator: Option<Identity>,
    /// The delegator's private key (PEM); it must be its DNS key at --delegator-selector.
    #[arg(long, value_name = "FILE", requires = "device_key")]
    pub(crate) delegator_key: Option<PathBuf>,
    /// The selector of the delegator's key (default: the current selector `s=` of the
    /// delegator domain's host record).
    #[arg(long, value_name = "S", value_parser = parse_selector, requires = "device_key")]
    pub(crate) delegator_selector: Option<Selector>,
}

#[derive(Debug, Args)]
#[command(after_long_help = "\
Modes:
  agent      the profile has an agent (btps agent login) and neither --key nor --device-key
             is given: each document goes to your server (artifact.send, trust.request,
             trust.respond), which queues it in your outbox, delegates and delivers it;
  direct     --key FILE (and --from, or the profile's identity), or a profile with `key` and
             no agent: signed with the identity key and sent to the recipient's server;
  delegated  --device-key FILE --agent-id ID --delegator ID --delegator-key FILE: signed with
             the device key, with a delegation by the delegator, sent to the recipient's server
             (PROTOCOL.md §9.4).

A FILE holds one JSON document of --type, or a complete signed transporter artifact (for
instance one written by --save), which is sent again as it is (direct) or with a fresh
delegation (delegated): the receiver answers `already accepted` when it has it.

Output: one line per file; with --json {\"results\": [{\"file\", \"id\", \"delivered\" (direct,
delegated) or \"queued\" (agent), \"status\", \"error\"?}]}. The exit code is the worst of
the files'. A progress bar is shown on a terminal when sending several files.")]
pub(crate) struct SendArgs {
    /// Files with the documents (JSON), or signed artifacts to send again.
    #[arg(value_name = "FILE", required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// The recipient, `account$domain` (required for documents).
    #[arg(long, value_name = "ID", value_parser = parse_identity)]
    pub(crate) to: Option<Identity>,
    /// The document type.
    #[arg(long = "type", value_name = "TYPE", default_value = "BTPS_DOC", value_parser = parse_type)]
    pub(crate) kind: TransporterType,
    /// Encrypt each document to the recipient's DNS key (PROTOCOL.md §5).
    #[arg(long)]
    pub(crate) encrypt: bool,
    /// Write each signed artifact to `DIR/<id>.json` before sending it (direct and delegated
    /// modes), so it can be sent again as it is.
    #[arg(long, value_name = "DIR")]
    pub(crate) save: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) sender: SenderArgs,
    #[command(flatten)]
    pub(crate) net: NetArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TrustCommand {
    /// Asks an identity for trust with a TRUST_REQ document (PROTOCOL.md §3.8, §7.4).
    Request(TrustRequestArgs),
    /// Answers a trust request with a TRUST_RES document (PROTOCOL.md §3.9, §7.4).
    Respond(TrustRespondArgs),
    /// Lists your trust records (agent): incoming, a page at a time, and outgoing.
    List(TrustListArgs),
}

#[derive(Debug, Args)]
pub(crate) struct TrustRequestArgs {
    /// The identity asked for trust.
    #[arg(long, value_name = "ID", value_parser = parse_identity)]
    pub(crate) to: Identity,
    /// Your (company) name.
    #[arg(long)]
    pub(crate) name: String,
    /// Your contact email.
    #[arg(long)]
    pub(crate) email: String,
    /// Why you ask.
    #[arg(long)]
    pub(crate) reason: String,
    /// Your contact phone (free text).
    #[arg(long)]
    pub(crate) phone: String,
    /// A message for the recipient.
    #[arg(long)]
    pub(crate) message: Option<String>,
    /// The privacy policy you ask for: encrypted, unencrypted or mixed.
    #[arg(long, value_parser = parse_privacy)]
    pub(crate) privacy: Option<PrivacyType>,
    #[command(flatten)]
    pub(crate) sender: SenderArgs,
    #[command(flatten)]
    pub(crate) net: NetArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TrustRespondArgs {
    /// The identity that asked.
    #[arg(long, value_name = "ID", value_parser = parse_identity)]
    pub(crate) to: Identity,
    /// The decision: accepted, rejected, revoked or blocked.
    #[arg(long, value_parser = parse_decision)]
    pub(crate) decision: TrustDecision,
    /// The `id` of the request document answered (default: a new id).
    #[arg(long, value_name = "ID")]
    pub(crate) request_id: Option<String>,
    /// A message for the requester.
    #[arg(long)]
    pub(crate) message: Option<String>,
    /// The privacy policy granted: encrypted, unencrypted or mixed.
    #[arg(long, value_parser = parse_privacy)]
    pub(crate) privacy: Option<PrivacyType>,
    #[command(flatten)]
    pub(crate) sender: SenderArgs,
    #[command(flatten)]
    pub(crate) net: NetArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TrustListArgs {
    /// Page size (the server clamps it to 1..1000).
    #[arg(long)]
    pub(crate) limit: Option<u32>,
    /// The page after this cursor (printed with the previous page).
    #[arg(long)]
    pub(crate) cursor: Option<String>,
    #[command(flatten)]
    pub(crate) net: NetArgs,
}

/// A mailbox query (PROTOCOL.md §3.10).
#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    /// Page size (the server clamps it to 1..1000; default: the server's, 100).
    #[arg(long)]
    pub(crate) limit: Option<u32>,
    /// The page after this cursor (printed with the previous page).
    #[arg(long)]
    pub(crate) cursor: Option<String>,
    /// Only artifacts issued at or after this datetime (2025-07-01T09:30:00Z).
    #[arg(long, value_name = "DATETIME", value_parser = parse_instant)]
    pub(crate) since: Option<UnixMillis>,
    /// Only artifacts issued at or before this datetime.
    #[arg(long, value_name = "DATETIME", value_parser = parse_instant)]
    pub(crate) until: Option<UnixMillis>,
    /// Order: asc or desc.
    #[arg(long, value_parser = parse_sort)]
    pub(crate) sort: Option<SortOrder>,
}

/// Listing a mailbox: the query and the network options.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub(crate) query: QueryArgs,
    #[command(flatten)]
    pub(crate) net: NetArgs,
}

/// Ids of artifacts in a mailbox.
#[derive(Debug, Args)]
pub(crate) struct IdsArgs {
    /// Artifact ids.
    #[arg(value_name = "ID", required = true)]
    pub(crate) ids: Vec<String>,
    #[command(flatten)]
    pub(crate) net: NetArgs,
}

#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_long_help = "\
Without a subcommand: the list. --json prints the page as the server's QueryResult:
{\"results\": [{\"artifact\": {…as received…}, \"meta\": {…}}], \"cursor\", \"hasNext\",
\"total\"}."
)]
pub(crate) struct InboxArgs {
    #[command(subcommand)]
    pub(crate) command: Option<InboxCommand>,
    #[command(flatten)]
    pub(crate) list: ListArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum InboxCommand {
    /// Lists received artifacts (the default).
    List(ListArgs),
    /// Verifies one received artifact and prints its document, decrypted with the
    /// profile's keys (`key`, `decrypt_keys`) or --key.
    Show(ShowArgs),
    /// Marks artifacts seen.
    Seen(IdsArgs),
    /// Moves artifacts to the trash.
    Delete(IdsArgs),
}

#[derive(Debug, Args)]
#[command(after_long_help = "\
The artifact is verified as `btps artifact verify` does (keys from DNS, delegation and device
checks) before anything is decrypted (PROTOCOL.md §5.3). Keys: --key PATH or --key
SELECTOR=PATH (repeatable), else the profile's `key` (under its `selector`) and `decrypt_keys`;
the key whose selector equals the artifact's `selector` is tried first.
--json prints {\"artifact\", \"document\", \"signer\"}.")]
pub(crate) struct ShowArgs {
    /// The artifact id.
    pub(crate) id: String,
    /// Print the decrypted text exactly as it was encrypted.
    #[arg(long)]
    pub(crate) raw: bool,
    /// A private key PEM, optionally as SELECTOR=PATH (repeatable).
    #[arg(long = "key", value_name = "[SELECTOR=]PATH")]
    pub(crate) keys: Vec<String>,
    #[command(flatten)]
    pub(crate) net: NetArgs,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct OutboxArgs {
    #[command(subcommand)]
    pub(crate) command: Option<OutboxCommand>,
    #[command(flatten)]
    pub(crate) list: ListArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum OutboxCommand {
    /// Lists queued artifacts with their delivery state (the default).
    List(ListArgs),
    /// Stops the delivery of queued artifacts (they move to the trash).
    Cancel(IdsArgs),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct SentboxArgs {
    #[command(subcommand)]
    pub(crate) command: Option<SentboxCommand>,
    #[command(flatten)]
    pub(crate) list: ListArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SentboxCommand {
    /// Lists delivered artifacts (the default).
    List(ListArgs),
    /// Moves artifacts to the trash.
    Delete(IdsArgs),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct TrashArgs {
    #[command(subcommand)]
    pub(crate) command: Option<TrashCommand>,
    #[command(flatten)]
    pub(crate) list: ListArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TrashCommand {
    /// Lists deleted artifacts (the default).
    List(ListArgs),
    /// Deletes artifacts for good.
    Delete(IdsArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum DraftCommand {
    /// Lists drafts.
    List(ListArgs),
    /// Creates a draft from a document file; prints its id.
    Create(DraftCreateArgs),
    /// Replaces the document of a draft.
    Update(DraftUpdateArgs),
    /// Moves drafts to the trash.
    Delete(IdsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DraftCreateArgs {
    /// The document (JSON).
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
    /// The document type.
    #[arg(long = "type", value_name = "TYPE", default_value = "BTPS_DOC", value_parser = parse_type)]
    pub(crate) kind: TransporterType,
    #[command(flatten)]
    pub(crate) net: NetArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DraftUpdateArgs {
    /// The draft id.
    pub(crate) id: String,
    /// The new document (JSON).
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
    #[command(flatten)]
    pub(crate) net: NetArgs,
}

fn parse_instant(text: &str) -> Result<UnixMillis, String> {
    UnixMillis::parse(text).map_err(|e| format!("not a datetime (2025-07-01T09:30:00Z): {e}"))
}

fn parse_identity(text: &str) -> Result<Identity, String> {
    Identity::parse(text).map_err(|e| format!("not an identity (account$domain): {e}"))
}

fn parse_key_type(text: &str) -> Result<KeyType, String> {
    text.parse::<KeyType>()
        .map_err(|_| "not a key type (rsa or ed25519)".to_owned())
}

fn parse_selector(text: &str) -> Result<Selector, String> {
    Selector::parse(text)
        .map_err(|_| "not a selector (one DNS label of letters, digits, '-' and '_')".to_owned())
}

fn parse_server(text: &str) -> Result<ServerAddr, String> {
    ServerAddr::parse(text).map_err(|e| e.to_string())
}

/// A closed set of wire strings as a command-line value.
fn wire<T>(text: &str, from_wire: fn(&str) -> Option<T>, all: &[T]) -> Result<T, String>
where
    T: Copy + std::fmt::Display,
{
    from_wire(text).ok_or_else(|| {
        let names: Vec<String> = all.iter().map(ToString::to_string).collect();
        format!("one of {}", names.join(", "))
    })
}

fn parse_type(text: &str) -> Result<TransporterType, String> {
    wire(text, TransporterType::from_wire, TransporterType::ALL)
}

fn parse_decision(text: &str) -> Result<TrustDecision, String> {
    wire(text, TrustDecision::from_wire, TrustDecision::ALL)
}

fn parse_privacy(text: &str) -> Result<PrivacyType, String> {
    wire(text, PrivacyType::from_wire, PrivacyType::ALL)
}

fn parse_sort(text: &str) -> Result<SortOrder, String> {
    wire(text, SortOrder::from_wire, SortOrder::ALL)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = Cli::try_parse_from([
            "btps",
            "artifact",
            "verify",
            "a.json",
            "--json",
            "--profile",
            "work",
        ])
        .unwrap();
        assert!(cli.json);
        assert_eq!(cli.profile.as_deref(), Some("work"));
        assert!(
            Cli::try_parse_from([
                "btps",
                "artifact",
                "verify",
                "a",
                "--at",
                "2025-07-01T09:30Z"
            ])
            .is_err(),
            "--at needs --max-age"
        );
        assert!(
            Cli::try_parse_from([
                "btps",
                "dns",
                "resolve",
                "a$b.c",
                "--dns-file",
                "x",
                "--nameserver",
                "127.0.0.1:53"
            ])
            .is_err()
        );
    }

    #[test]
    fn network_commands() {
        let parse = |args: &[&str]| Cli::try_parse_from(args);
        // A mailbox without a subcommand lists it, with the query options.
        let cli = parse(&["btps", "inbox", "--limit", "5", "--sort", "desc"]).unwrap();
        let Command::Inbox(inbox) = cli.command else {
            panic!("inbox")
        };
        assert!(inbox.command.is_none());
        assert_eq!(inbox.list.query.limit, Some(5));
        assert_eq!(inbox.list.query.sort, Some(SortOrder::Desc));
        let cli = parse(&["btps", "inbox", "show", "a1", "--raw", "--json"]).unwrap();
        assert!(cli.json);
        assert!(matches!(
            cli.command,
            Command::Inbox(InboxArgs {
                command: Some(InboxCommand::Show(ShowArgs { raw: true, .. })),
                ..
            })
        ));
        assert!(parse(&["btps", "inbox", "seen"]).is_err(), "ids required");
        assert!(parse(&["btps", "inbox", "--sort", "up"]).is_err());

        let cli = parse(&[
            "btps",
            "send",
            "a.json",
            "b.json",
            "--to",
            "pay$client.test",
            "--type",
            "TRUST_REQ",
        ])
        .unwrap();
        let Command::Send(send) = cli.command else {
            panic!("send")
        };
        assert_eq!(send.files.len(), 2);
        assert_eq!(send.kind, TransporterType::TrustReq);
        assert!(parse(&["btps", "send", "a.json", "--to", "nobody"]).is_err());
        assert!(parse(&["btps", "send", "a.json", "--type", "INVOICE"]).is_err());
        // A delegated send needs all of its parts; --key and --device-key exclude each other.
        assert!(parse(&["btps", "send", "a.json", "--device-key", "d.pem"]).is_err());
        assert!(
            parse(&[
                "btps",
                "send",
                "a.json",
                "--device-key",
                "d.pem",
                "--agent-id",
                "x",
                "--delegator",
                "admin$a.test",
                "--delegator-key",
                "k.pem",
            ])
            .is_ok()
        );
        assert!(
            parse(&[
                "btps",
                "send",
                "a.json",
                "--key",
                "k.pem",
                "--device-key",
                "d.pem",
                "--agent-id",
                "x",
                "--delegator",
                "admin$a.test",
                "--delegator-key",
                "k.pem",
            ])
            .is_err()
        );
        assert!(parse(&["btps", "agent", "ping", "--ca", "c.pem", "--insecure"]).is_err());
        assert!(parse(&["btps", "agent", "login", "--identity", "a$b.test"]).is_err());
        assert!(
            parse(&[
                "btps",
                "trust",
                "respond",
                "--to",
                "a$b.test",
                "--decision",
                "maybe",
            ])
            .is_err()
        );
        assert!(parse(&["btps", "draft", "create", "d.json"]).is_ok());
        assert!(parse(&["btps", "profile", "add-decrypt-key", "a.b", "k.pem"]).is_err());
    }
}
