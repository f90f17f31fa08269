//! `cargo xtask`: the project's task runner. CI calls only `cargo xtask test`.

mod bench;
mod demo;
mod fuzz;
mod msrv;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "BTPS project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Everything CI checks: fmt, the MSRV checks, clippy (per package, -D warnings), tests,
    /// docs (-D warnings), cargo deny, the interoperability vectors, the demo, and a 20 s run
    /// of every fuzz target.
    Test {
        /// The vector directory (default: ../shared/vectors next to the repository).
        #[arg(long)]
        vectors: Option<PathBuf>,
    },
    /// What can be checked of the MSRV without its toolchain: no package of the dependency
    /// graph declares a newer `rust-version` than the workspace, every `clippy.toml` `msrv`
    /// agrees, and clippy's `incompatible_msrv` lint is allowed nowhere.
    Msrv,
    /// Runs a vector directory (index.json, dns.json, keys/, cases/) through the stateless
    /// pipeline and prints one line per case.
    Vectors {
        /// The directory (default: ../shared/vectors).
        dir: Option<PathBuf>,
    },
    /// Two companies' servers, an in-process DNS server and the `btps` CLI walking the whole
    /// story (keys, trust handshake, an encrypted invoice through the outbox, a delegated
    /// send, a revoked device). Every step is checked.
    Demo {
        /// Keep the working directory (under target/tmp) afterwards.
        #[arg(long)]
        keep: bool,
        /// Print step titles and commands only.
        #[arg(long)]
        quiet: bool,
    },
    /// Runs every fuzz target for a few seconds (needs cargo-fuzz).
    FuzzSmoke {
        /// Seconds per target.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Benchmarks (`crypto`, `dns`, `store`, `server`, `client`).
    ///
    /// `server` builds and starts `btps-server` on a throwaway data directory and measures
    /// it with the load generator (crates/btps-server/benches/server.rs): full load, latency
    /// at half load, and the memory of idle connections. Arguments after the options go to
    /// the generator (`cargo xtask bench server -- --connections 64`).
    ///
    /// `client` starts the server the same way and measures the client's signing and
    /// sending over one pooled connection against the raw signing bound, encrypted and
    /// plain (crates/btps-client/benches/client.rs); arguments after the options go to it
    /// (`cargo xtask bench client -- --rounds 9`).
    Bench {
        /// Which benchmark group.
        #[arg(default_value = "crypto")]
        group: String,
        /// Measurement time per operation in milliseconds.
        #[arg(long, default_value_t = 2000)]
        millis: u64,
        /// `server`: seconds of each timed phase (default 10); `client`: seconds of each
        /// phase in each round (default 1).
        #[arg(long)]
        seconds: Option<u64>,
        /// `server`: measure a running server instead of starting one (give the generator
        /// `--ca FILE` or `--insecure`, `--key`, `--from`, `--to`).
        #[arg(long, value_name = "HOST:PORT")]
        external: Option<String>,
        /// `server`: idle TLS connections of the memory run (default 10000; 0 skips it;
        /// with `--external` skipped unless given).
        #[arg(long)]
        idle_connections: Option<usize>,
        /// `server`: measure this `btps-server` binary instead of building one (to compare
        /// two builds in alternating runs).
        #[arg(long, value_name = "PATH")]
        server_binary: Option<PathBuf>,
        /// `server`, `client`: arguments for the load generator or the client benchmark.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    // Paths given on the command line are relative to where the task was started.
    let started_in = std::env::current_dir()?;
    std::env::set_current_dir(&root)?;
    match cli.task {
        Task::Test { vectors } => test(&root, vectors),
        Task::Msrv => msrv::check(&root),
        Task::Vectors { dir } => {
            let dir = dir.unwrap_or_else(|| default_vectors(&root));
            vectors(&dir)
        }
        Task::FuzzSmoke { seconds } => fuzz::smoke(&root, seconds),
        Task::Demo { keep, quiet } => demo::demo(&root, &demo::DemoOptions { keep, quiet }),
        Task::Bench {
            group,
            millis,
            seconds,
            external,
            idle_connections,
            server_binary,
            args,
        } => {
            if group == "server" {
                let default_idle = if external.is_some() { 0 } else { 10_000 };
                let idle_connections = idle_connections.unwrap_or(default_idle);
                bench::server(
                    &root,
                    &bench::ServerBench {
                        seconds: seconds.unwrap_or(10),
                        external,
                        idle_connections,
                        server_binary: server_binary.map(|p| started_in.join(p)),
                        args,
                    },
                )
            } else if group == "client" {
                if external.is_some() || idle_connections.is_some() || server_binary.is_some() {
                    bail!(
                        "--external, --idle-connections and --server-binary are options of \
                         `bench server`"
                    );
                }
                bench::client(
                    &root,
                    &bench::ClientBench {
                        seconds: seconds.unwrap_or(1),
                        args,
                    },
                )
            } else {
                if !args.is_empty() {
                    bail!("unexpected arguments {args:?} for benchmark group {group:?}");
                }
                if external.is_some() || idle_connections.is_some() || server_binary.is_some() {
                    bail!(
                        "--external, --idle-connections and --server-binary are options of \
                         `bench server`"
                    );
                }
                bench::run(&root, &group, millis)
            }
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

fn default_vectors(root: &Path) -> PathBuf {
    root.join("../shared/vectors")
}

/// Runs a command, echoing it, and fails when it fails.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn workspace_packages(root: &Path) -> Result<Vec<String>> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let mut packages = Vec::new();
    let mut in_members = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with("members") {
            in_members = true;
            continue;
        }
        if in_members {
            if line.starts_with(']') {
                break;
            }
            let path = line.trim_matches(|c| c == '"' || c == ',');
            if !path.is_empty() {
                let name = Path::new(path)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .context("member path")?;
                packages.push(name.to_owned());
            }
        }
    }
    Ok(packages)
}

fn test(root: &Path, vector_dir: Option<PathBuf>) -> Result<()> {
    let vector_dir = vector_dir.unwrap_or_else(|| default_vectors(root));
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    msrv::check(root)?;
    // Per package, so that feature unification across the workspace cannot hide a lint.
    for package in workspace_packages(root)? {
        run(cargo().args([
            "clippy",
            "--quiet",
            "-p",
            &package,
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    run(cargo()
        .args(["test", "--workspace", "--all-targets"])
        .env("BTPS_VECTORS", &vector_dir))?;
    run(cargo().args(["test", "--workspace", "--doc"]))?;
    run(cargo()
        .args(["doc", "--workspace", "--no-deps", "--quiet"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    deny()?;
    vectors(&vector_dir)?;
    demo::demo(
        root,
        &demo::DemoOptions {
            keep: false,
            quiet: true,
        },
    )?;
    // Last: every fuzz target for 20 s (the fuzz crate builds in fuzz/target; needs
    // cargo-fuzz, which .ci/run installs).
    fuzz::smoke(root, 20)
}

/// `cargo deny check`: bans, licenses and sources always (they need no network); advisories
/// against a freshly fetched database, else against the local copy (`--offline`), else a loud
/// warning that they were not checked.
fn deny() -> Result<()> {
    run(cargo().args([
        "deny",
        "--log-level",
        "error",
        "check",
        "bans",
        "licenses",
        "sources",
    ]))
    .context(
        "cargo deny failed (install it with `cargo install cargo-deny --locked` if missing)",
    )?;
    for (offline, how) in [
        (false, "database fetched, or cached when unreachable"),
        (true, "local database copy, may be stale"),
    ] {
        let mut cmd = cargo();
        cmd.arg("deny");
        if offline {
            cmd.arg("--offline");
        }
        cmd.args(["--log-level", "error", "check", "advisories"]);
        eprintln!("$ {cmd:?}");
        let out = cmd.output().context("starting cargo deny")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            eprintln!("advisories ok ({how})");
            return Ok(());
        }
        let db_missing = stderr.contains("advisory database")
            || stderr.contains("advisory-db")
            || stderr.contains("failed to open");
        if !db_missing {
            eprint!("{stderr}");
            bail!("cargo deny check advisories failed");
        }
    }
    eprintln!(
        "warning: cargo deny advisories NOT checked: no advisory database could be fetched or \
         found on this machine. Run `cargo deny check advisories` where it can be."
    );
    Ok(())
}

fn vectors(dir: &Path) -> Result<()> {
    let report = btps_test_support::vectors::run_dir(dir)
        .with_context(|| format!("loading vectors from {}", dir.display()))?;
    for line in &report.lines {
        println!("{line}");
    }
    println!("{} passed, {} failed", report.passed, report.failed);
    if report.failed > 0 {
        bail!("{} vector case(s) failed", report.failed);
    }
    Ok(())
}
