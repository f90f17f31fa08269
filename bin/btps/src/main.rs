//! `btps`: the BTPS command-line tool. Thin: parses arguments, picks the resolver, calls
//! the library (`btps_dns`), prints, and maps failures to exit codes.
//!
//! Exit codes: 0 success; 1 not found or unusable (a permanent DNS answer); 2 temporary
//! DNS failure (retry later); 64 bad arguments or unreadable input files.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use btps_crypto::{KeyPair, KeyPolicy, PublicKey};
use btps_dns::{
    DEFAULT_RECORD_TTL, DnsError, DnssecMode, HickoryConfig, HickoryResolver, StaticTable,
    TxtResolver, error_json, identity_zone_records, inspect_identity,
};
use btps_types::Identity;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "btps", version, about = "BTPS command-line tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// DNS records of BTPS identities.
    #[command(subcommand)]
    Dns(DnsCommand),
}

#[derive(Subcommand)]
enum DnsCommand {
    /// Resolves an identity's host record and public key (fingerprint, key type, TTL).
    /// Exit 1: not found or unusable; 2: temporary DNS failure.
    Resolve(ResolveArgs),
    /// Prints the TXT records an identity publishes, in zone-file syntax.
    Records(RecordsArgs),
}

#[derive(Args)]
struct ResolveArgs {
    /// The identity, `account$domain`.
    identity: String,
    /// Key selector (default: the current selector `s=` of the host record).
    #[arg(long)]
    selector: Option<String>,
    /// Nameserver to ask, `ip:port` (repeatable; default: the system configuration).
    #[arg(long = "nameserver", value_name = "IP:PORT")]
    nameservers: Vec<SocketAddr>,
    /// Answer from a JSON table in the `vectors/dns.json` format instead of DNS.
    #[arg(long, value_name = "FILE", conflicts_with = "nameservers")]
    dns_file: Option<PathBuf>,
    /// DNSSEC validation: off, prefer or require.
    #[arg(long, default_value = "off")]
    dnssec: DnssecMode,
    /// Timeout of one query attempt, in seconds (2 attempts).
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    timeout: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RecordsArgs {
    /// The identity, `account$domain`.
    identity: String,
    /// The public key (PEM; a private key PEM also works, its public half is used).
    #[arg(long, value_name = "FILE")]
    public_key: PathBuf,
    /// The key's selector; it also becomes the domain's current selector.
    #[arg(long)]
    selector: String,
    /// The BTPS server address for the host record.
    #[arg(long, value_name = "HOST:PORT")]
    host: String,
    /// TTL of the records, in seconds.
    #[arg(long, default_value_t = DEFAULT_RECORD_TTL)]
    ttl: u32,
}

const EXIT_NOT_FOUND: u8 = 1;
const EXIT_TEMPORARY: u8 = 2;
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Dns(DnsCommand::Resolve(args)) => resolve(&args),
        Command::Dns(DnsCommand::Records(args)) => records(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("btps: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn resolve(args: &ResolveArgs) -> Result<ExitCode> {
    let identity = Identity::parse(&args.identity)
        .with_context(|| format!("{:?} is not an identity (account$domain)", args.identity))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        let resolver: Box<dyn TxtResolver> = match &args.dns_file {
            Some(file) => Box::new(StaticTable::load(file).map_err(|e| anyhow!("{e}"))?),
            None => {
                let mut config = HickoryConfig::with_nameservers(args.nameservers.iter().copied());
                config.timeout = Duration::from_secs(args.timeout.max(1));
                config.dnssec = args.dnssec;
                Box::new(HickoryResolver::new(&config).map_err(|e| anyhow!("{e}"))?)
            }
        };
        anyhow::Ok(
            inspect_identity(
                &*resolver,
                &identity,
                args.selector.as_deref(),
                KeyPolicy::DEFAULT,
            )
            .await,
        )
    })?;
    match outcome {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{report}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if args.json {
                println!("{}", error_json(&e));
            }
            eprintln!("btps: {e} ({})", e.error_code().as_str());
            Ok(ExitCode::from(exit_code(&e)))
        }
    }
}

fn exit_code(e: &DnsError) -> u8 {
    if e.is_temporary() {
        EXIT_TEMPORARY
    } else {
        EXIT_NOT_FOUND
    }
}

fn records(args: &RecordsArgs) -> Result<ExitCode> {
    let identity = Identity::parse(&args.identity)
        .with_context(|| format!("{:?} is not an identity (account$domain)", args.identity))?;
    let pem = std::fs::read_to_string(&args.public_key)
        .with_context(|| format!("reading {}", args.public_key.display()))?;
    let key = match PublicKey::from_pem(&pem) {
        Ok(key) => key,
        Err(public_err) => KeyPair::from_pem(&pem)
            .map(|pair| pair.public_key().clone())
            .map_err(|_| anyhow!("{}: {public_err}", args.public_key.display()))?,
    };
    let records = identity_zone_records(&identity, &key, &args.selector, &args.host, args.ttl)
        .map_err(|e| anyhow!("{e}"))?;
    println!(
        "; BTPS records for {identity}: {} key, fingerprint {}",
        key.key_type(),
        key.fingerprint()
    );
    for record in records {
        println!("{record}");
    }
    Ok(ExitCode::SUCCESS)
}
