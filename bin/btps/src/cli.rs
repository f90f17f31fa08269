//! The command line (clap derive): global options, commands and their arguments. No logic
//! here; `commands` runs what is parsed.

use std::net::SocketAddr;
use std::path::PathBuf;

use btps_dns::{DEFAULT_RECORD_TTL, DnssecMode};
use btps_types::UnixMillis;
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

/// BTPS command-line tool: identity keys and DNS records, offline verification and
/// decryption of artifacts, profiles.
#[derive(Debug, Parser)]
#[command(
    name = "btps",
    version,
    about = "BTPS command-line tool",
    long_about = "BTPS command-line tool: generate identity keys and the DNS records to publish, \
                  resolve identities, verify and decrypt signed artifacts (offline with a DNS \
                  table, or with live DNS), and keep settings in profiles.",
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
    /// Generates an identity key pair (RSA-2048) and prints the DNS records to publish.
    Keygen(KeygenArgs),
    /// Signed artifacts in files: verify signatures, decrypt documents.
    #[command(subcommand)]
    Artifact(ArtifactCommand),
    /// Profiles: identity, key, server, DNS settings and agent state.
    #[command(subcommand)]
    Profile(ProfileCommand),
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
published (PROTOCOL.md §6.4).")]
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
}

fn parse_instant(text: &str) -> Result<UnixMillis, String> {
    UnixMillis::parse(text).map_err(|e| format!("not a datetime (2025-07-01T09:30:00Z): {e}"))
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
}
