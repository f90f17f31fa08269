//! `btps-server`: runs a BTPS server, or administers its stores.
//!
//! With no arguments it serves the embedded default: `./btps-data/` (created on first run
//! with a configuration, a server key, a self-signed certificate, file stores and a static
//! DNS table) on 127.0.0.1:3443.

mod admin;
mod init;
mod run;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: the server allocates and frees small objects per artifact on both runtime
/// threads (tasks move between them), where it costs about a quarter less CPU per artifact
/// than the system allocator (docs/server.md, Performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A BTPS server.
#[derive(Debug, Parser)]
#[command(name = "btps-server", version, about)]
struct Cli {
    /// Data directory (created with an embedded default configuration when missing).
    #[arg(
        long,
        global = true,
        env = "BTPS_DATA_DIR",
        default_value = "btps-data"
    )]
    data_dir: PathBuf,
    /// Configuration file (default: `<data-dir>/config.toml`).
    #[arg(long, global = true, env = "BTPS_CONFIG")]
    config: Option<PathBuf>,
    /// Store: `file` or a `postgres://` URL (overrides `store.url`).
    #[arg(long, global = true)]
    store: Option<String>,
    /// Static DNS table (`{"name": ["txt", ...]}`) instead of live DNS.
    #[arg(long, global = true)]
    dns_file: Option<PathBuf>,
    /// Nameserver `ip:port` (repeatable) instead of the system resolver.
    #[arg(long, global = true)]
    nameserver: Vec<SocketAddr>,
    /// BTPS listen address (overrides `listen`).
    #[arg(long, global = true)]
    listen: Option<SocketAddr>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Create the data directory with the embedded default and exit.
    Init(init::InitArgs),
    /// Hosted identities.
    #[command(subcommand)]
    Identity(admin::IdentityCmd),
    /// Agents (devices, apps) of hosted identities.
    #[command(subcommand)]
    Agent(admin::AgentCmd),
    /// Trust records.
    #[command(subcommand)]
    Trust(admin::TrustCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("btps-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            None | Some(Command::Serve) => run::serve(&cli).await,
            Some(Command::Init(args)) => init::ensure(&cli, args).map(|report| report.print()),
            Some(Command::Identity(cmd)) => admin::identity_cmd(&cli, cmd).await,
            Some(Command::Agent(cmd)) => admin::agent(&cli, cmd).await,
            Some(Command::Trust(cmd)) => admin::trust(&cli, cmd).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("btps-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}
