//! `cargo xtask bench <group>`: runs the benchmark binaries in the optimized bench profile.
//!
//! `server` and `client` are different: they start the real `btps-server` binary (release
//! build) on a throwaway data directory ([`LocalServer`]). `server` drives it with the load
//! generator (`crates/btps-server/benches/server.rs`), or drives a running server
//! (`--external`); `client` measures the client's signing and sending over one connection
//! against it (`crates/btps-client/benches/client.rs`).

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub(crate) fn run(root: &Path, group: &str, millis: u64) -> Result<()> {
    let targets: &[(&str, &str)] = match group {
        "crypto" => &[("btps-crypto", "crypto")],
        "dns" => &[("btps-dns", "dns")],
        // Both store backends: the file backend, then PostgreSQL (a throwaway cluster, or
        // BTPS_TEST_DATABASE_URL).
        "store" => &[("btps-trust", "store"), ("btps-store-postgres", "store")],
        other => {
            bail!("unknown benchmark group {other:?} (known: crypto, dns, store, server, client)")
        }
    };
    for (package, bench) in targets {
        crate::run(
            crate::cargo()
                .current_dir(root)
                .args(["bench", "-p", package, "--bench", bench])
                .env("BTPS_BENCH_MILLIS", millis.to_string()),
        )?;
    }
    Ok(())
}

/// Options of `cargo xtask bench server`.
#[derive(Debug)]
pub(crate) struct ServerBench {
    /// Seconds per timed phase.
    pub(crate) seconds: u64,
    /// A running server (`HOST:PORT`) instead of a local one.
    pub(crate) external: Option<String>,
    /// Idle connections of the memory run (0: skip it).
    pub(crate) idle_connections: usize,
    /// A `btps-server` binary to measure instead of building one (A/B runs of two builds).
    pub(crate) server_binary: Option<PathBuf>,
    /// Further load generator arguments, appended last (so they win).
    pub(crate) args: Vec<String>,
}

const SENDER: &str = "sender$vendor.test";
const RECEIVER: &str = "bench$local.test";

/// `cargo xtask bench server`.
///
/// Local: builds `btps-server` (release), starts it on a throwaway data directory
/// ([`LocalServer`], with the sender key and its DNS record from `--setup` of the
/// generator), then runs [`phases`]: idle connections (memory), the closed loop at full
/// speed, and an open loop at half the measured rate (latency at half load). Stops the
/// server (SIGTERM) and removes the directory afterwards.
pub(crate) fn server(root: &Path, opts: &ServerBench) -> Result<()> {
    if let Some(addr) = &opts.external {
        return external(root, addr, opts);
    }
    let target_dir = target_dir(root);
    let binary = match &opts.server_binary {
        Some(path) => {
            fs::canonicalize(path).with_context(|| format!("--server-binary {}", path.display()))?
        }
        None => build_server(root, &target_dir)?,
    };
    let nofile = raise_nofile_limit();

    let dir = target_dir.join(format!("tmp/bench-server-{}", std::process::id()));
    let idle = match nofile {
        Some(limit) if limit < opts.idle_connections as u64 + 512 => {
            let n = usize::try_from(limit.saturating_sub(512)).unwrap_or(0);
            println!(
                "note: this machine allows {limit} open files per process: the idle run opens \
                 {n} connections, not {}",
                opts.idle_connections
            );
            n
        }
        _ => opts.idle_connections,
    };
    let server = LocalServer::start(&binary, dir, idle, |dir| {
        crate::run(generator(root).args(["--setup".as_ref(), dir.as_os_str()]))
    })?;
    let (dir, port, pid) = (&server.dir, server.port, server.pid);

    let common = |phase: &str| -> Vec<String> {
        let mut args = vec![
            "--port".to_owned(),
            port.to_string(),
            "--ca".to_owned(),
            dir.join("tls/cert.pem").display().to_string(),
            "--server-name".to_owned(),
            "localhost".to_owned(),
            "--server-pid".to_owned(),
            pid.to_string(),
            "--json-out".to_owned(),
            dir.join(format!("{phase}.json")).display().to_string(),
        ];
        if phase != "idle" {
            args.extend(
                [
                    "--from",
                    SENDER,
                    "--to",
                    RECEIVER,
                    "--key",
                    &dir.join("bench/sender-private.pem").display().to_string(),
                    "--seconds",
                    &opts.seconds.to_string(),
                ]
                .map(str::to_owned),
            );
        }
        args
    };

    let result = phases(root, dir, &common, &opts.args, idle);
    let stopped = server.stop();
    let summary = result?;
    stopped?;
    print!("{}", summary.render());
    Ok(())
}

/// Options of `cargo xtask bench client`.
#[derive(Debug)]
pub(crate) struct ClientBench {
    /// Seconds of each phase in each round.
    pub(crate) seconds: u64,
    /// Further arguments of the client benchmark, appended last (so they win).
    pub(crate) args: Vec<String>,
}

/// `cargo xtask bench client`.
///
/// Starts the release `btps-server` on a throwaway data directory ([`LocalServer`], on
/// tmpfs when there is one; the sender and receiver keys and their DNS records come from
/// `--setup` of the client benchmark), then runs `crates/btps-client/benches/client.rs` against it: signing and
/// encrypting artifacts on one thread with no network (the raw bound) against the same
/// work sent over one pooled `Client` connection, encrypted and plain, in alternating
/// rounds. Prints the ratios; stops the server and removes the directory afterwards.
pub(crate) fn client(root: &Path, opts: &ClientBench) -> Result<()> {
    let target_dir = target_dir(root);
    let binary = build_server(root, &target_dir)?;
    // The server stores every artifact durably; on tmpfs its fsync latency (which on a
    // shared disk reaches tens of milliseconds) stays out of a measurement of the client.
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        target_dir.join("tmp")
    };
    let dir = base.join(format!("btps-bench-client-{}", std::process::id()));
    let server = LocalServer::start(&binary, dir, 0, |dir| {
        crate::run(client_bench(root).args(["--setup".as_ref(), dir.as_os_str()]))
    })?;
    let dir = &server.dir;
    let json = dir.join("client.json");
    let mut cmd = client_bench(root);
    cmd.args(["--port", &server.port.to_string(), "--ca"])
        .arg(dir.join("tls/cert.pem"))
        .args(["--server-pid", &server.pid.to_string()])
        .args(["--from", SENDER, "--to", RECEIVER, "--key"])
        .arg(dir.join("bench/sender-private.pem"))
        .arg("--dns-file")
        .arg(dir.join("dns.json"))
        .args([
            "--seconds",
            &opts.seconds.to_string(),
            "--plain",
            "--json-out",
        ])
        .arg(&json)
        .args(&opts.args);
    println!("\n== signing and sending over one connection ==");
    let result = crate::run(&mut cmd);
    let summary = read_json(&json);
    let stopped = server.stop();
    result?;
    stopped?;
    print!("{}", render_client(summary.as_ref()));
    Ok(())
}

/// The client benchmark: `cargo bench` gives it `--bench`.
fn client_bench(root: &Path) -> Command {
    let mut cmd = crate::cargo();
    cmd.current_dir(root).args([
        "bench",
        "--quiet",
        "-p",
        "btps-client",
        "--bench",
        "client",
        "--",
    ]);
    cmd
}

fn render_client(json: Option<&serde_json::Value>) -> String {
    let mut out = String::from("\n== summary ==\n");
    let Some(j) = json else {
        out.push_str("no results (see the output above)\n");
        return out;
    };
    let f = |j: &serde_json::Value, key: &str| j[key].as_f64().unwrap_or(f64::NAN);
    for row in j["rows"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:9}  raw {:.0}/s, sent over one connection {:.0}/s: ratio {:.3} (target ≥ {:.2}); \
             p50 {:.2} ms, p99 {:.2} ms; not accepted {}\n           \
             per artifact: signing {:.0} µs alone; {:.0} µs signing and {:.0} µs handing over \
             when sending",
            row["row"].as_str().unwrap_or("?"),
            f(row, "raw_per_s"),
            f(row, "send_per_s"),
            f(row, "ratio"),
            f(j, "target_ratio"),
            f(row, "p50_ms"),
            f(row, "p99_ms"),
            row["errors"],
            f(row, "raw_us_per_artifact"),
            f(row, "send_sign_us_per_artifact"),
            f(row, "send_handoff_us_per_artifact"),
        );
    }
    if let Some(other) = j["other_cpu_pct"].as_f64() {
        let _ = writeln!(
            out,
            "other processes on the machine: {other:.0}% of one core (median over the phases)"
        );
    }
    out
}

/// A release `btps-server` serving a throwaway data directory on 127.0.0.1, for the
/// benchmarks. Created by `btps-server init` with a benchmark configuration (rate limits
/// off, connection limits raised for `idle` connections, logging at `warn` unless `BTPS_LOG` says otherwise), and trust
/// `sender$vendor.test → bench$local.test` accepted with privacy `mixed`. Stopped and
/// removed by [`stop`](Self::stop), or on drop.
struct LocalServer {
    dir: PathBuf,
    port: u16,
    pid: u32,
    guard: Guard,
}

impl LocalServer {
    /// Creates `dir`, lets `setup` add keys and DNS records to it (after `init`, before the
    /// configuration is written), and starts the server.
    fn start(
        binary: &Path,
        dir: PathBuf,
        idle: usize,
        setup: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<Self> {
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let mut guard = Guard {
            dir: dir.clone(),
            server: None,
        };
        let server_cmd = |args: &[&str]| {
            let mut cmd = Command::new(binary);
            cmd.arg("--data-dir").arg(&dir).args(args);
            cmd
        };
        crate::run(server_cmd(&["init"]).stdout(Stdio::null()))?;
        setup(&dir)?;
        let port = free_port()?;
        let http_port = free_port()?;
        fs::write(dir.join("config.toml"), config(port, http_port, idle))?;
        crate::run(
            server_cmd(&[
                "trust",
                "set",
                SENDER,
                RECEIVER,
                "--status",
                "accepted",
                "--privacy",
                "mixed",
            ])
            .stdout(Stdio::null()),
        )?;

        let log = fs::File::create(dir.join("server.log"))?;
        let mut cmd = server_cmd(&[]);
        cmd.stdout(log.try_clone()?).stderr(log);
        eprintln!("$ {cmd:?}");
        let child = cmd.spawn().context("start btps-server")?;
        let pid = child.id();
        guard.server = Some(child);
        wait_for_port(&mut guard, port)?;
        println!(
            "btps-server (pid {pid}) serving on 127.0.0.1:{port}, data in {}",
            dir.display()
        );
        Ok(Self {
            dir,
            port,
            pid,
            guard,
        })
    }

    /// Stops the server (SIGTERM), prints the last warnings and errors of its log, and
    /// removes the directory.
    fn stop(mut self) -> Result<()> {
        let stopped = self.guard.stop_server();
        if let Ok(text) = fs::read_to_string(self.dir.join("server.log")) {
            let problems: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect();
            if !problems.is_empty() {
                println!(
                    "\nserver log: {} warning/error lines, last ones:",
                    problems.len()
                );
                for line in problems.iter().rev().take(5).rev() {
                    println!("  {line}");
                }
            }
        }
        stopped
    }
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Builds `btps-server` (release); returns the binary.
fn build_server(root: &Path, target_dir: &Path) -> Result<PathBuf> {
    crate::run(crate::cargo().current_dir(root).args([
        "build",
        "--release",
        "-p",
        "btps-server-bin",
    ]))?;
    Ok(target_dir.join("release/btps-server"))
}

/// `--external HOST:PORT`: [`phases`] against a running server (idle connections only when
/// `--idle-connections` is given); the arguments after the options (`--ca` or `--insecure`,
/// `--key`, `--from`, `--to`, `--server-pid` when it runs here) go to the generator.
fn external(root: &Path, addr: &str, opts: &ServerBench) -> Result<()> {
    let (host, port) = addr
        .rsplit_once(':')
        .with_context(|| format!("--external {addr:?}: expected HOST:PORT"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let dir = std::env::temp_dir().join(format!("bench-server-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let base = |phase: &str| -> Vec<String> {
        vec![
            "--host".to_owned(),
            host.to_owned(),
            "--port".to_owned(),
            port.to_owned(),
            "--seconds".to_owned(),
            opts.seconds.to_string(),
            "--json-out".to_owned(),
            dir.join(format!("{phase}.json")).display().to_string(),
        ]
    };
    println!("measuring {addr}");
    let result = phases(root, &dir, &base, &opts.args, opts.idle_connections);
    let _ = fs::remove_dir_all(&dir);
    print!("{}", result?.render());
    Ok(())
}

/// The runs: idle connections first (while the server holds no stored artifacts, so its
/// memory is that of the connections), then full load in a closed loop, then an open loop
/// at half the rate measured. `args(phase)` gives the generator's arguments for a phase;
/// `extra` is appended to each (so it wins). A failed idle run is reported, not fatal.
fn phases(
    root: &Path,
    dir: &Path,
    args: &dyn Fn(&str) -> Vec<String>,
    extra: &[String],
    idle: usize,
) -> Result<Summary> {
    let mut summary = Summary::default();
    if idle > 0 {
        println!("\n== {idle} idle TLS connections ==");
        let mut cmd = generator(root);
        cmd.args(args("idle"))
            .args(extra)
            .args(["--idle-connections", &idle.to_string()]);
        if let Err(e) = crate::run(&mut cmd) {
            println!("the idle-connection run failed on this machine: {e:#}");
        }
        summary.idle = read_json(&dir.join("idle.json"));
    }
    println!("\n== full load (closed loop) ==");
    crate::run(generator(root).args(args("full")).args(extra))?;
    summary.full = read_json(&dir.join("full.json"));
    let rate = summary
        .full
        .as_ref()
        .and_then(|j| j["artifacts_per_s"].as_f64())
        .unwrap_or(0.0);
    if rate >= 2.0 {
        let half = (rate / 2.0).round();
        println!("\n== half load: open loop at {half:.0} artifacts/s ==");
        crate::run(
            generator(root)
                .args(args("half"))
                .args(extra)
                .args(["--rate", &half.to_string()]),
        )?;
        summary.half = read_json(&dir.join("half.json"));
    }
    Ok(summary)
}

/// The load generator: `cargo bench` gives it `--bench`.
fn generator(root: &Path) -> Command {
    let mut cmd = crate::cargo();
    cmd.current_dir(root).args([
        "bench",
        "--quiet",
        "-p",
        "btps-server",
        "--bench",
        "server",
        "--",
    ]);
    cmd
}

/// The benchmark configuration: the embedded default's identity, TLS, stores and DNS; rate
/// limits off; connection limits and the idle timeout raised for the idle run (every
/// connection comes from 127.0.0.1).
fn config(port: u16, http_port: u16, idle: usize) -> String {
    let connections = idle.max(10_000) + 1_000;
    format!(
        r#"# Written by `cargo xtask bench server`.
listen = "127.0.0.1:{port}"
domains = ["local.test"]
server_identity = "server$local.test"
server_selector = "btps1"
server_key = "keys/server-private.pem"

[tls]
cert = "tls/cert.pem"
key = "tls/key.pem"
self_signed = true
self_signed_names = ["localhost", "127.0.0.1"]

[store]
url = "file"

[dns]
file = "dns.json"

[limits]
max_connections = {connections}
max_connections_per_ip = {connections}
max_handshakes_per_ip = {connections}

[timeouts]
idle_ms = 300000

[rate_limits]
per_ip_per_minute = 0
per_sender_per_minute = 0
global_per_minute = 0
trust_requests_per_minute = 0
lookups_per_ip_per_minute = 0
auth_requests_per_minute = 0
auth_failures_per_15_minutes = 0
close_after_rejections = 0

[http]
listen = "127.0.0.1:{http_port}"

[log]
level = "warn"
"#
    )
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(guard: &mut Guard, port: u16) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(child) = guard.server.as_mut()
            && let Some(status) = child.try_wait()?
        {
            let log = fs::read_to_string(guard.dir.join("server.log")).unwrap_or_default();
            bail!("btps-server exited ({status}) before listening:\n{log}");
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("btps-server did not listen on {addr} within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Raises this process's soft open-files limit to the hard one (the server and the
/// generator inherit it); returns the limit in force.
fn raise_nofile_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
    getrlimit(Resource::Nofile).current
}

/// Stops the server and removes the data directory, also on errors.
struct Guard {
    dir: PathBuf,
    server: Option<Child>,
}

impl Guard {
    /// SIGTERM, then up to 20 s for the graceful shutdown, then SIGKILL.
    fn stop_server(&mut self) -> Result<()> {
        let Some(mut child) = self.server.take() else {
            return Ok(());
        };
        if child.try_wait()?.is_some() {
            bail!("btps-server exited during the benchmark (see its log above)");
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Some(status) = child.try_wait()? {
                println!("btps-server stopped ({status})");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        child.kill()?;
        child.wait()?;
        bail!("btps-server did not stop within 20 s of SIGTERM and was killed")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&fs::read_to_string(path).ok()?).ok()
}

/// The figures of the three runs.
#[derive(Default)]
struct Summary {
    full: Option<serde_json::Value>,
    half: Option<serde_json::Value>,
    idle: Option<serde_json::Value>,
}

impl Summary {
    fn render(&self) -> String {
        let f = |j: &serde_json::Value, key: &str| j[key].as_f64().unwrap_or(f64::NAN);
        let mut out = String::from("\n== summary ==\n");
        if let Some(j) = &self.full {
            let _ = writeln!(
                out,
                "full load:  {:.0} artifacts/s, p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, errors {}",
                f(j, "artifacts_per_s"),
                f(j, "p50_ms"),
                f(j, "p99_ms"),
                f(j, "p999_ms"),
                j["errors"]
            );
            if j["server_cpu_pct"].is_number() {
                let _ = writeln!(
                    out,
                    "            server CPU {:.0}% of one core ({:.0} µs per artifact), RSS {:.1} MiB; \
                     load generator CPU {:.0}%; other processes {:.0}%",
                    f(j, "server_cpu_pct"),
                    f(j, "server_cpu_us_per_artifact"),
                    f(j, "server_rss_mib"),
                    f(j, "client_cpu_pct"),
                    f(j, "other_cpu_pct")
                );
            }
            let _ = writeln!(
                out,
                "            verify bound {:.0}/s on one core, ratio {:.2}",
                f(j, "verify_per_s"),
                f(j, "ratio_to_verify_bound")
            );
        }
        if let Some(j) = &self.half {
            let _ = writeln!(
                out,
                "half load:  {:.0} artifacts/s offered, {:.0} accepted, p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms",
                f(j, "rate_target"),
                f(j, "artifacts_per_s"),
                f(j, "p50_ms"),
                f(j, "p99_ms"),
                f(j, "p999_ms")
            );
        }
        if let Some(j) = &self.idle {
            let _ = writeln!(
                out,
                "idle:       {} of {} connections open, server RSS {:.1} MiB ({:.1} MiB before, {:.1} KiB per connection)",
                j["opened"],
                j["requested"],
                f(j, "server_rss_mib"),
                f(j, "server_rss_before_mib"),
                f(j, "kib_per_connection")
            );
        }
        out
    }
}
