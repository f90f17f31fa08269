//! `cargo xtask bench client` (or `cargo bench -p btps-client --bench client -- --port P …`):
//! how close the client comes to the raw signing bound when it signs, encrypts and sends
//! artifacts over one pooled connection (PROTOCOL.md §5, §11.1).
//!
//! Every artifact is a `BTPS_DOC` invoice built with [`Transporter::artifact`] (fresh `id`,
//! `issuedAt` = now), encrypted to the receiver's DNS key (§5.2, §5.4) and signed. Per
//! round, for the encrypted row (and with `--plain` a plain, sign-only row):
//!
//! * **raw**: on the main thread, build and sign artifacts with no network: the bound;
//! * **send**: the same work on the same thread, each artifact then handed to a task that
//!   sends it with [`Transporter::send`] over one [`Client`] connection
//!   (`max_connections_per_server = 1`), at most `--depth` in flight, so that signing the
//!   next artifact overlaps waiting for the replies to the previous ones. Only `accepted`
//!   replies count; latency is from handing the artifact over to its verdict.
//!
//! The two phases of a round run back to back (raw first in even rounds, send first in odd
//! ones) so that drifts of the machine's speed affect both alike. The report gives the
//! medians of the rounds' rates, `ratio` = the median of the rounds' `send ÷ raw`, reply
//! latency, where the time per artifact goes (signing, handing over, waiting for a free
//! slot), the CPU of the signing thread, of the client and, with `--server-pid`, of the
//! server, and one final JSON line.
//!
//! `--io-threads N` (default 1): the client's connection tasks run on N Tokio worker
//! threads while the main thread signs; 0 runs everything on the main thread
//! (a current-thread runtime: signing, TLS and reply handling share one core).
//!
//! `--setup DIR` prepares a `btps-server init` data directory: a sender key and a receiver
//! key (RSA-2048) under `DIR/bench/`, their identity records in `DIR/dns.json` (the
//! receiver's public key is what the client encrypts to; the server never decrypts).
//!
//! Without `--bench` in its arguments (`cargo test --all-targets`), it is a quick smoke run
//! against an in-process acknowledging TLS server that judges only the program itself.

use std::collections::BTreeMap;
use std::error::Error;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use btps_client::{
    Client, ClientConfig, DeliveryStatus, RetryPolicy, ServerAddr, TlsTrust, Transporter,
};
use btps_crypto::KeyPair;
use btps_dns::{DnsCache, StaticTable};
use btps_types::artifact::TransporterType;
use btps_types::json::{Object, parse_str};
use btps_types::{Identity, Selector};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

type BoxError = Box<dyn Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

/// The ratio of send to raw throughput this benchmark is judged by.
const TARGET_RATIO: f64 = 0.90;

/// The plain invoice document of vector `transporter_doc_invoice_plain`.
const INVOICE: &str = r#"{"title":"Invoice INV-1001","id":"INV-1001","issuedAt":"2025-07-01T09:00:00.000Z","status":"unpaid","dueAt":"2025-07-31T00:00:00.000Z","totalAmount":{"value":1234.5,"currency":"AUD"},"lineItems":{"columns":["Description","Quantity","Unit Price","Amount"],"rows":[{"Description":"Consulting hours","Quantity":10,"Unit Price":100,"Amount":1000},{"Description":"Support plan","Quantity":1,"Unit Price":234.5,"Amount":234.5}]},"issuer":{"name":"VendorCorp Pty Ltd","email":"billing@vendorcorp.test","phone":"+61 2 9000 0000"},"paymentLink":{"linkText":"Pay now","url":"https://pay.vendorcorp.test/inv/INV-1001"},"description":"Services for June 2025"}"#;

const USAGE: &str = "\
usage: client --bench [options]
  --host H                 server host (127.0.0.1)
  --port P                 server port (required for a run)
  --ca FILE                trust this PEM certificate (chain) for the server
  --insecure               accept any server certificate (benchmarks only)
  --server-name NAME       TLS server name; the client connects to the name it checks,
                           so it replaces --host (default: --host)
  --key PEMFILE            the sender's private key (required for a run)
  --from IDENTITY          sender (sender$vendor.test)
  --to IDENTITY            receiver (bench$local.test)
  --selector SEL           sender key selector, and the receiver's encryption key (btps1)
  --dns-file FILE          static DNS table with the receiver's key record (required)
  --seconds S              length of each phase in each round (1)
  --count N                artifacts per phase and round instead of --seconds
  --rounds R               rounds; each runs raw and send per row (10)
  --depth D                artifacts in flight on the connection at most (16)
  --io-threads N           Tokio worker threads for the client's I/O; 0: all on the
                           signing thread (1)
  --plain                  also measure plain (sign-only) artifacts, as a second row
  --server-pid PID         report the server's CPU from /proc
  --json-out FILE          also write the final JSON line to FILE
  --setup DIR              add sender and receiver keys and their DNS records to a
                           btps-server data directory
Under `cargo bench` the working directory is crates/btps-client: give absolute paths.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let measuring = args.iter().any(|a| a == "--bench");
    let result = if measuring {
        Options::parse(&args).and_then(Options::run)
    } else {
        smoke()
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench client: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------
// Options

/// How long a phase lasts.
#[derive(Clone, Copy, Debug)]
enum Limit {
    Seconds(f64),
    Count(usize),
}

impl Limit {
    fn done(self, n: usize, start: Instant) -> bool {
        match self {
            Self::Count(count) => n >= count,
            Self::Seconds(s) => start.elapsed().as_secs_f64() >= s,
        }
    }
}

/// Command-line options.
#[derive(Clone, Debug)]
struct Options {
    host: String,
    port: Option<u16>,
    ca: Option<PathBuf>,
    insecure: bool,
    server_name: Option<String>,
    key: Option<PathBuf>,
    from: String,
    to: String,
    selector: String,
    dns_file: Option<PathBuf>,
    limit: Limit,
    rounds: usize,
    depth: usize,
    io_threads: usize,
    plain: bool,
    server_pid: Option<u32>,
    json_out: Option<PathBuf>,
    setup: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: None,
            ca: None,
            insecure: false,
            server_name: None,
            key: None,
            from: "sender$vendor.test".to_owned(),
            to: "bench$local.test".to_owned(),
            selector: "btps1".to_owned(),
            dns_file: None,
            limit: Limit::Seconds(1.0),
            rounds: 10,
            depth: 16,
            io_threads: 1,
            plain: false,
            server_pid: None,
            json_out: None,
            setup: None,
        }
    }
}

fn number<T: std::str::FromStr>(name: &str, text: &str) -> Result<T> {
    text.parse()
        .map_err(|_| format!("{name}: {text:?} is not a valid number").into())
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Self::default();
        let mut count = None;
        let mut seconds = None;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
                _ => (arg.as_str(), None),
            };
            let mut value = || -> Result<String> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("{name} needs a value").into()),
                }
            };
            match name {
                "--bench" => {}
                "--help" | "-h" => {
                    print!("{USAGE}");
                    std::process::exit(0);
                }
                "--host" => o.host = value()?,
                "--port" => o.port = Some(number(name, &value()?)?),
                "--ca" => o.ca = Some(value()?.into()),
                "--insecure" => o.insecure = true,
                "--server-name" => o.server_name = Some(value()?),
                "--key" => o.key = Some(value()?.into()),
                "--from" => o.from = value()?,
                "--to" => o.to = value()?,
                "--selector" => o.selector = value()?,
                "--dns-file" => o.dns_file = Some(value()?.into()),
                "--seconds" => seconds = Some(number::<f64>(name, &value()?)?),
                "--count" => count = Some(number::<usize>(name, &value()?)?),
                "--rounds" => o.rounds = number(name, &value()?)?,
                "--depth" => o.depth = number(name, &value()?)?,
                "--io-threads" => o.io_threads = number(name, &value()?)?,
                "--plain" => o.plain = true,
                "--server-pid" => o.server_pid = Some(number(name, &value()?)?),
                "--json-out" => o.json_out = Some(value()?.into()),
                "--setup" => o.setup = Some(value()?.into()),
                other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
            }
        }
        o.limit = match (count, seconds) {
            (Some(_), Some(_)) => return Err("give --count or --seconds, not both".into()),
            (Some(0), None) => return Err("--count must be at least 1".into()),
            (Some(n), None) => Limit::Count(n),
            (None, Some(s)) if !(s.is_finite() && s > 0.0) => {
                return Err("--seconds must be positive".into());
            }
            (None, Some(s)) => Limit::Seconds(s),
            (None, None) => o.limit,
        };
        if o.rounds == 0 || o.depth == 0 {
            return Err("--rounds and --depth must be at least 1".into());
        }
        Ok(o)
    }

    fn run(self) -> Result<bool> {
        if let Some(dir) = &self.setup {
            setup(dir, &self.from, &self.to, &self.selector)?;
            return Ok(true);
        }
        let port = self.port.ok_or("--port is required")?;
        let key_path = self.key.as_ref().ok_or("--key is required")?;
        let key = KeyPair::from_pem(&std::fs::read_to_string(key_path)?)
            .map_err(|e| format!("{}: {e}", key_path.display()))?;
        let dns_path = self.dns_file.as_ref().ok_or("--dns-file is required")?;
        let table = StaticTable::load(dns_path)?;
        let tls = match (&self.ca, self.insecure) {
            (Some(ca), _) => TlsTrust::CaFile(ca.clone()),
            (None, true) => TlsTrust::DangerousAcceptAnyCertificate,
            (None, false) => return Err("give --ca FILE (or --insecure)".into()),
        };
        let host = self.server_name.as_deref().unwrap_or(&self.host);
        if self.server_name.is_some() && host != self.host {
            println!(
                "note: the client connects to the name it checks: {host} (not {})",
                self.host
            );
        }
        let addr = server_addr(host, port)?;
        let runtime = runtime(self.io_threads)?;
        let bench = runtime.block_on(Bench::new(&self, key, table, tls, addr))?;
        let report = runtime.block_on(bench.run(&self))?;
        let good = report.print(&self, &bench)?;
        drop(bench);
        // Lets the connection say QUIT.
        runtime.shutdown_timeout(Duration::from_secs(2));
        Ok(good)
    }
}

/// `host:port` as a [`ServerAddr`] (IPv6 in brackets).
fn server_addr(host: &str, port: u16) -> Result<ServerAddr> {
    let text = if host.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6()) {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(ServerAddr::parse(&text)?)
}

/// 0: a current-thread runtime (signing and I/O share the main thread); N: N workers for
/// the client's tasks while the main thread signs inside `block_on`.
fn runtime(io_threads: usize) -> Result<tokio::runtime::Runtime> {
    let mut builder = if io_threads == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(io_threads);
        b
    };
    Ok(builder.enable_all().build()?)
}

// ---------------------------------------------------------------------------------------
// Setup of a `btps-server init` data directory

/// Writes `DIR/bench/{sender,receiver}-{private,public}.pem` (RSA-2048, PKCS#8) and
/// publishes both keys at `selector` in `DIR/dns.json`.
fn setup(dir: &Path, from: &str, to: &str, selector: &str) -> Result<()> {
    let dns_path = dir.join("dns.json");
    let text = std::fs::read_to_string(&dns_path).map_err(|e| {
        format!(
            "{}: {e} (run `btps-server --data-dir DIR init` first; under `cargo bench` a \
             relative path is relative to crates/btps-client)",
            dns_path.display()
        )
    })?;
    let mut table: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)?;
    let keys = dir.join("bench");
    std::fs::create_dir_all(&keys)?;
    for (role, identity) in [("sender", from), ("receiver", to)] {
        let identity: Identity = identity.parse()?;
        let key = KeyPair::generate_rsa2048()?;
        let private = keys.join(format!("{role}-private.pem"));
        write_private(&private, key.to_pkcs8_pem()?.as_bytes())?;
        std::fs::write(
            keys.join(format!("{role}-public.pem")),
            key.public_key().to_pem(),
        )?;
        let record = btps_dns::identity_zone_record(&identity, selector, key.public_key(), 3600)?;
        table.insert(record.name.clone(), serde_json::json!([record.text]));
        println!("{role} key: {} ({identity})", private.display());
        println!("DNS record: {}", record.name);
    }
    std::fs::write(&dns_path, serde_json::to_string_pretty(&table)?)?;
    println!("DNS table: {}", dns_path.display());
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(bytes)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CPU figures from /proc

/// CPU seconds used so far by `/proc/<entry>`: a process id, `self`, or `thread-self`
/// (the calling thread).
fn cpu_secs(entry: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{entry}/stat")).ok()?;
    // After the command name (which may contain spaces): utime is field 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks_to_secs(ticks))
}

/// CPU seconds the whole machine spent busy so far (`/proc/stat`, all cores).
fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is counted in user).
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum();
    Some(ticks_to_secs(busy))
}

#[allow(clippy::cast_precision_loss, reason = "CPU ticks")]
fn ticks_to_secs(ticks: u64) -> f64 {
    ticks as f64 / rustix::param::clock_ticks_per_second().max(1) as f64
}

/// CPU counters at one instant, taken on the signing thread.
#[derive(Clone, Copy, Debug)]
struct CpuSample {
    at: Instant,
    signer: Option<f64>,
    own: Option<f64>,
    server: Option<f64>,
    machine: Option<f64>,
}

impl CpuSample {
    fn now(server_pid: Option<u32>) -> Self {
        Self {
            at: Instant::now(),
            signer: cpu_secs("thread-self"),
            own: cpu_secs("self"),
            server: server_pid.and_then(|p| cpu_secs(&p.to_string())),
            machine: machine_busy_secs(),
        }
    }

    /// CPU use from `self` to `later` in percent of one core: the signing thread, this
    /// process, the server, and everything else on the machine.
    fn since(&self, later: &Self) -> Cpu {
        let wall = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let pct = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / wall * 100.0);
        let signer = pct(self.signer, later.signer);
        let own = pct(self.own, later.own);
        let server = pct(self.server, later.server);
        let machine = pct(self.machine, later.machine);
        let other = machine.map(|m| (m - own.unwrap_or(0.0) - server.unwrap_or(0.0)).max(0.0));
        Cpu {
            signer,
            own,
            server,
            other,
        }
    }
}

/// CPU use over a phase, percent of one core.
#[derive(Clone, Copy, Debug, Default)]
struct Cpu {
    signer: Option<f64>,
    own: Option<f64>,
    server: Option<f64>,
    other: Option<f64>,
}

// ---------------------------------------------------------------------------------------
// The phases

/// Encrypted or plain artifacts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Row {
    Encrypted,
    Plain,
}

impl Row {
    fn name(self) -> &'static str {
        match self {
            Self::Encrypted => "encrypted",
            Self::Plain => "plain",
        }
    }

    fn encrypt(self) -> bool {
        self == Self::Encrypted
    }
}

/// The figures of one raw phase.
#[derive(Clone, Debug)]
struct RawPhase {
    n: usize,
    secs: f64,
    cpu: Cpu,
}

impl RawPhase {
    #[allow(clippy::cast_precision_loss, reason = "a rate")]
    fn rate(&self) -> f64 {
        self.n as f64 / self.secs
    }
}

/// The figures of one send phase.
#[derive(Clone, Debug, Default)]
struct SendPhase {
    signed: usize,
    accepted: usize,
    other: BTreeMap<String, usize>,
    secs: f64,
    /// Of `secs`: building and signing artifacts, waiting for a free slot (all `depth` in
    /// flight), and waiting for the last replies after the last artifact was handed over.
    /// The rest is handing artifacts over (and, on a current-thread runtime, the I/O).
    sign_secs: f64,
    slot_wait_secs: f64,
    drain_secs: f64,
    latencies: Vec<Duration>,
    cpu: Cpu,
    max_in_flight: usize,
}

impl SendPhase {
    #[allow(clippy::cast_precision_loss, reason = "a rate")]
    fn rate(&self) -> f64 {
        self.accepted as f64 / self.secs
    }

    fn errors(&self) -> usize {
        self.other.values().sum()
    }

    /// Microseconds per artifact handed over: signing, waiting for a slot, handing over,
    /// waiting for the last replies.
    #[allow(clippy::cast_precision_loss, reason = "per-artifact times")]
    fn breakdown_us(&self) -> [f64; 4] {
        let n = self.signed.max(1) as f64;
        let handoff = self.secs - self.sign_secs - self.slot_wait_secs - self.drain_secs;
        [
            self.sign_secs,
            self.slot_wait_secs,
            handoff,
            self.drain_secs,
        ]
        .map(|s| s / n * 1e6)
    }
}

/// The sender, its client and the artifact template.
struct Bench {
    transporter: Transporter,
    to: Identity,
    invoice: Object,
    addr: ServerAddr,
}

impl Bench {
    async fn new(
        o: &Options,
        key: KeyPair,
        table: StaticTable,
        tls: TlsTrust,
        addr: ServerAddr,
    ) -> Result<Self> {
        let from: Identity = o.from.parse()?;
        let to: Identity = o.to.parse()?;
        let mut config = ClientConfig::default()
            .with_tls(tls)
            .with_override(to.domain(), addr.clone());
        config.max_connections_per_server = 1;
        config.max_in_flight = o.depth;
        // Every failure is counted, none hidden behind a retry.
        config.retry = RetryPolicy::none();
        let client = Client::new(config, DnsCache::new(table))?;
        let transporter = Transporter::builder(client)
            .identity(from)
            .selector(Selector::parse(&o.selector)?)
            .key(key)
            .build();
        let invoice = parse_str(INVOICE)?
            .value
            .as_object()
            .cloned()
            .ok_or("the invoice is not an object")?;
        Ok(Self {
            transporter,
            to,
            invoice,
            addr,
        })
    }

    fn client(&self) -> &Client {
        self.transporter.client()
    }

    /// One artifact, as both phases build it: fresh id, `issuedAt` now, signed (and
    /// encrypted to the receiver's key, resolved through the DNS cache).
    async fn artifact(&self, row: Row) -> Result<Object> {
        Ok(self
            .transporter
            .artifact(
                TransporterType::BtpsDoc,
                self.to.clone(),
                self.invoice.clone(),
            )
            .encrypt(row.encrypt())
            .sign()
            .await?)
    }

    /// Builds and signs on this thread, no network.
    async fn raw(&self, row: Row, limit: Limit, server_pid: Option<u32>) -> Result<RawPhase> {
        let before = CpuSample::now(server_pid);
        let start = Instant::now();
        let mut n = 0;
        while !limit.done(n, start) {
            std::hint::black_box(self.artifact(row).await?);
            n += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        Ok(RawPhase {
            n,
            secs,
            cpu: before.since(&CpuSample::now(server_pid)),
        })
    }

    /// The same work, each artifact handed to a task that sends it; at most `depth` in
    /// flight. The phase ends when the last reply is in.
    async fn send(
        &self,
        row: Row,
        limit: Limit,
        depth: usize,
        server_pid: Option<u32>,
    ) -> Result<SendPhase> {
        type Outcome = (Duration, Result<DeliveryStatus, String>);
        let slots = Arc::new(Semaphore::new(depth));
        let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
        let before = CpuSample::now(server_pid);
        let start = Instant::now();
        let mut out = SendPhase::default();
        while !limit.done(out.signed, start) {
            let t0 = Instant::now();
            let slot = Arc::clone(&slots).acquire_owned().await?;
            let t1 = Instant::now();
            let artifact = self.artifact(row).await?;
            out.slot_wait_secs += (t1 - t0).as_secs_f64();
            out.sign_secs += t1.elapsed().as_secs_f64();
            out.max_in_flight = out.max_in_flight.max(depth - slots.available_permits());
            let transporter = self.transporter.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let handed = Instant::now();
                let verdict = match transporter.send(&artifact).await {
                    Ok(delivery) => Ok(delivery.status),
                    Err(e) => Err(e.error_code().to_string()),
                };
                let _ = tx.send((handed.elapsed(), verdict));
                drop(slot);
            });
            out.signed += 1;
            // On a current-thread runtime, this is where the connection's tasks run.
            tokio::task::yield_now().await;
        }
        drop(tx);
        let drain = Instant::now();
        while let Some((latency, verdict)) = rx.recv().await {
            match verdict {
                Ok(DeliveryStatus::Accepted) => {
                    out.accepted += 1;
                    out.latencies.push(latency);
                }
                Ok(other) => *out.other.entry(format!("{other:?}")).or_default() += 1,
                Err(code) => *out.other.entry(code).or_default() += 1,
            }
        }
        out.drain_secs = drain.elapsed().as_secs_f64();
        out.secs = start.elapsed().as_secs_f64();
        out.cpu = before.since(&CpuSample::now(server_pid));
        Ok(out)
    }

    /// Warm-up (not timed: opens the connection, fills the DNS cache), then the rounds.
    async fn run(&self, o: &Options) -> Result<Report> {
        let rows: &[Row] = if o.plain {
            &[Row::Encrypted, Row::Plain]
        } else {
            &[Row::Encrypted]
        };
        println!(
            "btps client benchmark: {} → {} at {}, one connection, {} in flight at most, {}",
            o.from,
            o.to,
            self.addr,
            o.depth,
            match o.io_threads {
                0 => "signing and I/O on one thread".to_owned(),
                1 => "signing on the main thread, I/O on one worker thread".to_owned(),
                n => format!("signing on the main thread, I/O on {n} worker threads"),
            }
        );
        for &row in rows {
            let warm = self.send(row, Limit::Count(8), o.depth, None).await?;
            if warm.accepted == 0 {
                return Err(format!(
                    "warm-up: no {} artifact was accepted ({:?})",
                    row.name(),
                    warm.other
                )
                .into());
            }
        }
        let mut report = Report::new(rows);
        for round in 0..o.rounds {
            for (i, &row) in rows.iter().enumerate() {
                let send_first = round % 2 == 1;
                let (raw, send) = if send_first {
                    let s = self.send(row, o.limit, o.depth, o.server_pid).await?;
                    (self.raw(row, o.limit, o.server_pid).await?, s)
                } else {
                    let r = self.raw(row, o.limit, o.server_pid).await?;
                    (r, self.send(row, o.limit, o.depth, o.server_pid).await?)
                };
                println!(
                    "round {}/{} {:9}: raw {:7.1}/s  send {:7.1}/s  ratio {:.3}  \
                     (µs: sign {:.0} / {:.0} + hand-off {:.0})  p50 {:.2} ms  \
                     signing thread {:.0}%/{:.0}%  client {:.0}%/{:.0}%{}{}{}",
                    round + 1,
                    o.rounds,
                    row.name(),
                    raw.rate(),
                    send.rate(),
                    send.rate() / raw.rate(),
                    1e6 / raw.rate(),
                    send.breakdown_us()[0],
                    send.breakdown_us()[2],
                    percentile_ms(&mut send.latencies.clone(), 0.5),
                    raw.cpu.signer.unwrap_or(f64::NAN),
                    send.cpu.signer.unwrap_or(f64::NAN),
                    raw.cpu.own.unwrap_or(f64::NAN),
                    send.cpu.own.unwrap_or(f64::NAN),
                    send.cpu
                        .server
                        .map_or_else(String::new, |s| format!("  server CPU {s:.0}%")),
                    send.cpu
                        .other
                        .filter(|other| *other > 10.0)
                        .map_or_else(String::new, |other| format!(
                            "  other processes {other:.0}%"
                        )),
                    if send.errors() > 0 {
                        format!("  errors {:?}", send.other)
                    } else {
                        String::new()
                    }
                );
                report.rows[i].raw.push(raw);
                report.rows[i].send.push(send);
            }
        }
        Ok(report)
    }
}

// ---------------------------------------------------------------------------------------
// Report

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        f64::midpoint(v[mid - 1], v[mid])
    }
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "percentile index"
)]
fn percentile_ms(latencies: &mut [Duration], q: f64) -> f64 {
    if latencies.is_empty() {
        return f64::NAN;
    }
    latencies.sort_unstable();
    let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
    latencies[i].as_secs_f64() * 1000.0
}

/// The rounds of one row.
struct RowResult {
    row: Row,
    raw: Vec<RawPhase>,
    send: Vec<SendPhase>,
}

impl RowResult {
    fn raw_rate(&self) -> f64 {
        median(&self.raw.iter().map(RawPhase::rate).collect::<Vec<_>>())
    }

    fn send_rate(&self) -> f64 {
        median(&self.send.iter().map(SendPhase::rate).collect::<Vec<_>>())
    }

    /// The median of the rounds' ratios: the two phases of a round run back to back, so
    /// drifts of the machine's speed (other work, CPU frequency) largely cancel in it.
    fn ratio(&self) -> f64 {
        median(&self.round_ratios())
    }

    /// The ratio of each round (its send and raw phases ran back to back).
    fn round_ratios(&self) -> Vec<f64> {
        self.raw
            .iter()
            .zip(&self.send)
            .map(|(r, s)| s.rate() / r.rate())
            .collect()
    }

    fn latencies(&self) -> Vec<Duration> {
        self.send
            .iter()
            .flat_map(|s| s.latencies.iter().copied())
            .collect()
    }

    fn errors(&self) -> BTreeMap<String, usize> {
        let mut all = BTreeMap::new();
        for s in &self.send {
            for (k, v) in &s.other {
                *all.entry(k.clone()).or_default() += v;
            }
        }
        all
    }

    fn cpu(phases: impl Iterator<Item = Cpu>) -> Cpu {
        let phases: Vec<Cpu> = phases.collect();
        let med = |f: fn(&Cpu) -> Option<f64>| {
            let v: Vec<f64> = phases.iter().filter_map(f).collect();
            (!v.is_empty()).then(|| median(&v))
        };
        Cpu {
            signer: med(|c| c.signer),
            own: med(|c| c.own),
            server: med(|c| c.server),
            other: med(|c| c.other),
        }
    }
}

struct Report {
    rows: Vec<RowResult>,
}

impl Report {
    fn new(rows: &[Row]) -> Self {
        Self {
            rows: rows
                .iter()
                .map(|&row| RowResult {
                    row,
                    raw: Vec::new(),
                    send: Vec::new(),
                })
                .collect(),
        }
    }

    fn print(&self, o: &Options, bench: &Bench) -> Result<bool> {
        let stats = bench.client().stats();
        let open = bench.client().open_connections(&bench.addr);
        println!();
        println!(
            "medians of {} rounds ({}):",
            o.rounds,
            match o.limit {
                Limit::Seconds(s) => format!("{s} s per phase"),
                Limit::Count(n) => format!("{n} artifacts per phase"),
            }
        );
        println!(
            "{:10} {:>10} {:>10} {:>7} {:>8} {:>8} {:>7}  {:>12} {:>10}",
            "row",
            "raw /s",
            "send /s",
            "ratio*",
            "p50 ms",
            "p99 ms",
            "errors",
            "client CPU",
            "server CPU"
        );
        let mut rows_json = Vec::new();
        let mut met = true;
        for r in &self.rows {
            let mut lat = r.latencies();
            let (p50, p99) = (percentile_ms(&mut lat, 0.5), percentile_ms(&mut lat, 0.99));
            let send_cpu = RowResult::cpu(r.send.iter().map(|s| s.cpu));
            let raw_cpu = RowResult::cpu(r.raw.iter().map(|s| s.cpu));
            let errors = r.errors();
            let error_count: usize = errors.values().sum();
            let ratio = r.ratio();
            met &= ratio >= TARGET_RATIO;
            println!(
                "{:10} {:>10.1} {:>10.1} {:>7.3} {:>8.2} {:>8.2} {:>7}  {:>12} {:>10}",
                r.row.name(),
                r.raw_rate(),
                r.send_rate(),
                ratio,
                p50,
                p99,
                error_count,
                send_cpu
                    .own
                    .map_or_else(|| "-".to_owned(), |c| format!("{c:.0}%")),
                send_cpu
                    .server
                    .map_or_else(|| "-".to_owned(), |c| format!("{c:.0}%")),
            );
            let us_per = |cpu: Option<f64>, rate: f64| cpu.map(|c| c / 100.0 / rate * 1e6);
            let raw_us = 1e6 / r.raw_rate();
            let [sign_us, wait_us, handoff_us, drain_us]: [f64; 4] = std::array::from_fn(|i| {
                median(
                    &r.send
                        .iter()
                        .map(|s| s.breakdown_us()[i])
                        .collect::<Vec<_>>(),
                )
            });
            let cpu_us = [
                us_per(raw_cpu.own, r.raw_rate()),
                us_per(send_cpu.own, r.send_rate()),
                us_per(raw_cpu.signer, r.raw_rate()),
                us_per(send_cpu.signer, r.send_rate()),
            ];
            rows_json.push(serde_json::json!({
                "row": r.row.name(),
                "raw_per_s": r.raw_rate(),
                "send_per_s": r.send_rate(),
                "ratio": ratio,
                "round_ratios": r.round_ratios(),
                "ratio_of_medians": r.send_rate() / r.raw_rate(),
                "raw_rounds_per_s": r.raw.iter().map(RawPhase::rate).collect::<Vec<_>>(),
                "send_rounds_per_s": r.send.iter().map(SendPhase::rate).collect::<Vec<_>>(),
                "accepted": r.send.iter().map(|s| s.accepted).sum::<usize>(),
                "errors": errors,
                "p50_ms": p50,
                "p99_ms": p99,
                "max_in_flight": r.send.iter().map(|s| s.max_in_flight).max().unwrap_or(0),
                "raw_us_per_artifact": raw_us,
                "send_sign_us_per_artifact": sign_us,
                "send_handoff_us_per_artifact": handoff_us,
                "send_slot_wait_us_per_artifact": wait_us,
                "send_drain_us_per_artifact": drain_us,
                "raw_client_cpu_pct": raw_cpu.own,
                "send_client_cpu_pct": send_cpu.own,
                "raw_signer_cpu_pct": raw_cpu.signer,
                "send_signer_cpu_pct": send_cpu.signer,
                "raw_client_cpu_us_per_artifact": cpu_us[0],
                "send_client_cpu_us_per_artifact": cpu_us[1],
                "raw_signer_cpu_us_per_artifact": cpu_us[2],
                "send_signer_cpu_us_per_artifact": cpu_us[3],
                "send_server_cpu_pct": send_cpu.server,
                "raw_other_cpu_pct": raw_cpu.other,
                "send_other_cpu_pct": send_cpu.other,
            }));
            println!(
                "{:10} per artifact: signing alone {raw_us:.0} µs; sending: signing {sign_us:.0} µs, \
                 handing over {handoff_us:.0} µs, waiting for a free slot {wait_us:.0} µs, for the \
                 last replies {drain_us:.0} µs",
                ""
            );
            if let [Some(raw), Some(send), Some(raw_signer), Some(send_signer)] = cpu_us {
                println!(
                    "{:10} CPU per artifact: client {raw:.0} µs alone, {send:.0} µs sending; \
                     signing thread {raw_signer:.0} µs alone, {send_signer:.0} µs sending \
                     (busy {:.0}% of the time)",
                    "",
                    send_cpu.signer.unwrap_or(f64::NAN)
                );
            }
            if !errors.is_empty() {
                println!("{:10} not accepted: {errors:?}", "");
            }
        }
        println!(
            "* ratio: the median of the rounds' send ÷ raw (each round's phases ran back to back)"
        );
        let other = self
            .rows
            .iter()
            .flat_map(|r| {
                r.send
                    .iter()
                    .map(|s| s.cpu)
                    .chain(r.raw.iter().map(|s| s.cpu))
            })
            .filter_map(|c| c.other)
            .collect::<Vec<_>>();
        let other = (!other.is_empty()).then(|| median(&other));
        if let Some(other) = other {
            println!(
                "other processes: {other:.0}% of one core (median over the phases){}",
                if other > 20.0 {
                    " — figures disturbed by other work on this machine"
                } else {
                    ""
                }
            );
        }
        println!(
            "connections opened: {} (open now: {open}); target ratio ≥ {TARGET_RATIO:.2}: {}",
            stats.connections_opened,
            if met { "met" } else { "NOT met" }
        );
        let json = serde_json::json!({
            "bench": "client",
            "rounds": o.rounds,
            "seconds_per_phase": match o.limit { Limit::Seconds(s) => Some(s), Limit::Count(_) => None },
            "count_per_phase": match o.limit { Limit::Count(n) => Some(n), Limit::Seconds(_) => None },
            "depth": o.depth,
            "io_threads": o.io_threads,
            "connections_opened": stats.connections_opened,
            "rows": rows_json,
            "other_cpu_pct": other,
            "target_ratio": TARGET_RATIO,
        });
        let line = json.to_string();
        if let Some(path) = &o.json_out {
            std::fs::write(path, format!("{line}\n"))?;
        }
        println!("{line}");
        Ok(self
            .rows
            .iter()
            .all(|r| r.send.iter().all(|s| s.accepted > 0)))
    }
}

// ---------------------------------------------------------------------------------------
// Smoke run (`cargo test --all-targets`): against an in-process server that acknowledges
// every line

fn smoke() -> Result<bool> {
    use btps_types::json::{Value, to_js_string};
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der())),
        )?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_tls));

    let o = Options {
        limit: Limit::Count(6),
        rounds: 2,
        depth: 4,
        plain: true,
        ..Options::default()
    };
    let receiver = KeyPair::generate_rsa2048()?;
    let to: Identity = o.to.parse()?;
    let record = btps_dns::identity_zone_record(&to, &o.selector, receiver.public_key(), 300)?;
    let mut table = StaticTable::new();
    table.insert(&record.name, [record.text]);

    let runtime = runtime(1)?;
    let (report, bench) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let (rd, mut wr) = tokio::io::split(tls);
                    let mut lines = BufReader::new(rd).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let Ok(parsed) = parse_str(&line) else { return };
                        let Some(request) = parsed.value.as_object().cloned() else {
                            return;
                        };
                        let quit = request.get_str("action") == Some("QUIT");
                        let status = Object::new()
                            .with("ok", true)
                            .with("code", 200_u32)
                            .with("message", if quit { "bye" } else { "success" });
                        let reply = Object::new()
                            .with("version", "1.0.0")
                            .with("status", status)
                            .with("id", "reply")
                            .with("issuedAt", "2025-07-01T09:30:00.000Z")
                            .with("reqId", request.get_str("id").unwrap_or_default())
                            .with("type", "btps_response");
                        let mut out = to_js_string(&Value::Object(reply)).into_bytes();
                        out.push(b'\n');
                        if wr.write_all(&out).await.is_err() || quit {
                            return;
                        }
                    }
                });
            }
        });
        let tls = TlsTrust::CaPem(cert.cert.pem().into_bytes());
        let addr = server_addr("127.0.0.1", port)?;
        let bench = Bench::new(&o, KeyPair::generate_rsa2048()?, table, tls, addr).await?;
        let report = bench.run(&o).await?;
        Ok::<_, BoxError>((report, bench))
    })?;
    let accepted: usize = report
        .rows
        .iter()
        .flat_map(|r| r.send.iter().map(|s| s.accepted))
        .sum();
    let errors: usize = report
        .rows
        .iter()
        .flat_map(|r| r.send.iter().map(SendPhase::errors))
        .sum();
    let connections = bench.client().stats().connections_opened;
    let good = accepted == 2 * 2 * 6 && errors == 0 && connections == 1;
    println!(
        "btps client benchmark (smoke run, unoptimized; use `cargo xtask bench client`): \
         {accepted} of 24 artifacts acknowledged, {errors} errors, {connections} connection(s)"
    );
    drop(bench);
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(good)
}
