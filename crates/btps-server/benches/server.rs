//! `cargo xtask bench server` (or `cargo bench -p btps-server --bench server -- --port P …`):
//! a load generator for a BTPS server over TLS (PROTOCOL.md §2, §3.2, §4, §10).
//!
//! * **Preparation** (not timed): signs unique `BTPS_DOC` invoice artifacts (fresh ids,
//!   `issuedAt` = signing time) on every core. Without `--artifacts` or `--rate`, a short
//!   calibration run against the server sizes the pool; signing stops early when the oldest
//!   artifact would no longer be fresh (§10.1) by the end of the timed phase.
//! * **Verify bound**: single-thread [`btps_crypto::verify`] over the parsed pre-signed
//!   artifacts for about a second: what one core can verify at most.
//! * **Timed phase**: `--connections` TLS connections, either closed loop (each keeps
//!   `--depth` requests in flight) or open loop (`--rate` artifacts/s in total, latency from
//!   the scheduled send time). Replies are matched in order per connection (`reqId` checked).
//!   Reported: accepted artifacts/s, errors by `errorCode`, p50/p99/p999 latency, server CPU
//!   and RSS from `/proc` (`--server-pid`), the ratio to the verify bound, and one final JSON
//!   line.
//! * `--idle-connections N`: opens N TLS connections that stay idle and reports the server's
//!   RSS with them open.
//! * `--setup DIR`: prepares a `btps-server init` data directory for a run: a sender key
//!   (RSA-2048) and its identity record in `DIR/dns.json`.
//!
//! Without `--bench` in its arguments (`cargo test --all-targets`), it is a quick smoke run
//! against an in-process server that judges nothing but the generator itself.

use std::collections::BTreeMap;
use std::error::Error;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use btps_crypto::{KeyPair, PublicKey, SystemRandom, TransporterSigner};
use btps_types::json::{Object, Value, parse_str, to_js_string};
use btps_types::{Identity, Selector, UnixMillis, signing};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

type BoxError = Box<dyn Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

/// The throughput target (artifacts/s) and the idle-connection memory target.
const TARGET_RATE: f64 = 20_000.0;
const TARGET_IDLE_CONNECTIONS: usize = 10_000;
const TARGET_IDLE_RSS_MIB: f64 = 150.0;

/// Artifacts per second the default pool is sized for at most.
const MAX_POOL_RATE: f64 = 25_000.0;
/// Memory the pool may take.
const MAX_POOL_BYTES: usize = 1 << 30;
/// The freshness window W (§10.1) and the margin kept from it.
const FRESHNESS_SECS: f64 = 300.0;
const FRESHNESS_MARGIN_SECS: f64 = 30.0;
/// How long replies may still arrive after the timed phase.
const DRAIN: Duration = Duration::from_secs(15);

/// The plain invoice document of vector `transporter_doc_invoice_plain`.
const INVOICE: &str = r#"{"title":"Invoice INV-1001","id":"INV-1001","issuedAt":"2025-07-01T09:00:00.000Z","status":"unpaid","dueAt":"2025-07-31T00:00:00.000Z","totalAmount":{"value":1234.5,"currency":"AUD"},"lineItems":{"columns":["Description","Quantity","Unit Price","Amount"],"rows":[{"Description":"Consulting hours","Quantity":10,"Unit Price":100,"Amount":1000},{"Description":"Support plan","Quantity":1,"Unit Price":234.5,"Amount":234.5}]},"issuer":{"name":"VendorCorp Pty Ltd","email":"billing@vendorcorp.test","phone":"+61 2 9000 0000"},"paymentLink":{"linkText":"Pay now","url":"https://pay.vendorcorp.test/inv/INV-1001"},"description":"Services for June 2025"}"#;

const USAGE: &str = "\
usage: server --bench [options]
  --host H                 server host (127.0.0.1)
  --port P                 server port (required for a run)
  --ca FILE                trust this PEM certificate (chain) for the server
  --insecure               accept any server certificate (benchmarks only)
  --server-name NAME       TLS server name / SNI (localhost)
  --connections N          load connections (32)
  --seconds S              timed phase (10)
  --rate R                 open loop: R artifacts/s in total (default: closed loop)
  --depth D                closed loop: requests in flight per connection (16)
  --artifacts N            pool size (default: from a calibration run, or from --rate)
  --from IDENTITY          sender (sender$vendor.test)
  --to IDENTITY            receiver (bench$local.test)
  --selector SEL           sender key selector (btps1)
  --key PEMFILE            the sender's private key (required for a run)
  --server-pid PID         report the server's CPU and RSS from /proc
  --verify-seconds S       single-core verify bound measurement (1)
  --idle-connections N     open N idle TLS connections and report the server's RSS
  --json-out FILE          also write the final JSON line to FILE
  --setup DIR              add a sender key and its DNS record to a btps-server data dir
Under `cargo bench` the working directory is crates/btps-server: give absolute paths.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let measuring = args.iter().any(|a| a == "--bench");
    let result = if measuring {
        Options::parse(&args).and_then(|o| o.run())
    } else {
        smoke()
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench server: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------
// Options

/// Command-line options.
#[derive(Clone, Debug)]
struct Options {
    host: String,
    port: Option<u16>,
    ca: Option<PathBuf>,
    insecure: bool,
    server_name: String,
    connections: usize,
    seconds: f64,
    rate: Option<f64>,
    depth: usize,
    artifacts: Option<usize>,
    from: String,
    to: String,
    selector: String,
    key: Option<PathBuf>,
    server_pid: Option<u32>,
    verify_seconds: f64,
    idle_connections: usize,
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
            server_name: "localhost".to_owned(),
            connections: 32,
            seconds: 10.0,
            rate: None,
            depth: 16,
            artifacts: None,
            from: "sender$vendor.test".to_owned(),
            to: "bench$local.test".to_owned(),
            selector: "btps1".to_owned(),
            key: None,
            server_pid: None,
            verify_seconds: 1.0,
            idle_connections: 0,
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
                "--server-name" => o.server_name = value()?,
                "--connections" => o.connections = number(name, &value()?)?,
                "--seconds" => o.seconds = number(name, &value()?)?,
                "--rate" => o.rate = Some(number(name, &value()?)?),
                "--depth" => o.depth = number(name, &value()?)?,
                "--artifacts" => o.artifacts = Some(number(name, &value()?)?),
                "--from" => o.from = value()?,
                "--to" => o.to = value()?,
                "--selector" => o.selector = value()?,
                "--key" => o.key = Some(value()?.into()),
                "--server-pid" => o.server_pid = Some(number(name, &value()?)?),
                "--verify-seconds" => o.verify_seconds = number(name, &value()?)?,
                "--idle-connections" => o.idle_connections = number(name, &value()?)?,
                "--json-out" => o.json_out = Some(value()?.into()),
                "--setup" => o.setup = Some(value()?.into()),
                other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
            }
        }
        if o.connections == 0 || o.depth == 0 {
            return Err("--connections and --depth must be at least 1".into());
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(o.seconds) || o.rate.is_some_and(|r| !positive(r)) {
            return Err("--seconds and --rate must be positive".into());
        }
        Ok(o)
    }

    fn run(self) -> Result<bool> {
        if let Some(dir) = &self.setup {
            setup(dir, &self.from, &self.selector)?;
            return Ok(true);
        }
        raise_nofile_limit();
        let target = Target::from_options(&self)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        if self.idle_connections > 0 {
            idle_run(&self, &target, &runtime)
        } else {
            load_run(&self, &target, &runtime)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Setup of a `btps-server init` data directory

/// Writes `DIR/bench/sender-private.pem` (RSA-2048, PKCS#8) and `sender-public.pem`, and
/// publishes the key for `from` at `selector` in `DIR/dns.json`.
fn setup(dir: &Path, from: &str, selector: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let identity: Identity = from.parse()?;
    let dns_path = dir.join("dns.json");
    let text = std::fs::read_to_string(&dns_path).map_err(|e| {
        format!(
            "{}: {e} (run `btps-server --data-dir DIR init` first; under `cargo bench` a \
             relative path is relative to crates/btps-server)",
            dns_path.display()
        )
    })?;
    let mut table: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)?;
    let key = KeyPair::generate_rsa2048()?;
    let keys = dir.join("bench");
    std::fs::create_dir_all(&keys)?;
    let private = keys.join("sender-private.pem");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&private)?
        .write_all(key.to_pkcs8_pem()?.as_bytes())?;
    std::fs::write(keys.join("sender-public.pem"), key.public_key().to_pem())?;
    let record = btps_dns::identity_zone_record(&identity, selector, key.public_key(), 3600)?;
    table.insert(record.name.clone(), serde_json::json!([record.text]));
    std::fs::write(&dns_path, serde_json::to_string_pretty(&table)?)?;
    println!("sender key: {}", private.display());
    println!("DNS record: {} in {}", record.name, dns_path.display());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Process figures from /proc

/// Raises the soft limit on open files to the hard limit (many connections).
fn raise_nofile_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.maximum != limit.current {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// CPU time and memory of a process at one instant.
#[derive(Clone, Copy, Debug)]
struct ProcSample {
    at: Instant,
    cpu_secs: f64,
    rss_kib: u64,
    hwm_kib: u64,
}

impl ProcSample {
    fn of(pid: &str) -> Option<Self> {
        let at = Instant::now();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may contain spaces): state is field 3, utime
        // field 14, stime field 15.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let hz = rustix::param::clock_ticks_per_second().max(1);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        #[allow(clippy::cast_precision_loss, reason = "CPU ticks")]
        let cpu_secs = ticks as f64 / hz as f64;
        Some(Self {
            at,
            cpu_secs,
            rss_kib: kib("VmRSS:"),
            hwm_kib: kib("VmHWM:"),
        })
    }

    fn server(pid: Option<u32>) -> Option<Self> {
        pid.and_then(|p| Self::of(&p.to_string()))
    }

    fn own() -> Option<Self> {
        Self::of("self")
    }

    /// CPU use between `self` and `later` in percent of one core.
    fn cpu_percent(&self, later: &Self) -> f64 {
        let wall = later.at.duration_since(self.at).as_secs_f64();
        if wall > 0.0 {
            (later.cpu_secs - self.cpu_secs) / wall * 100.0
        } else {
            0.0
        }
    }
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
    let hz = rustix::param::clock_ticks_per_second().max(1);
    #[allow(clippy::cast_precision_loss, reason = "CPU ticks")]
    let secs = busy as f64 / hz as f64;
    Some(secs)
}

#[allow(clippy::cast_precision_loss, reason = "memory figures")]
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The soft open-files limit of process `pid` (`/proc/PID/limits`).
fn nofile_limit_of(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------
// TLS

/// Where to connect and how.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    server_name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
}

impl Target {
    fn from_options(o: &Options) -> Result<Self> {
        let port = o.port.ok_or("--port is required")?;
        let addr = (o.host.as_str(), port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| format!("{}:{port} does not resolve", o.host))?;
        let tls = match (&o.ca, o.insecure) {
            (Some(ca), _) => client_config(ca)?,
            (None, true) => danger::insecure_client_config()?,
            (None, false) => return Err("give --ca FILE (or --insecure)".into()),
        };
        Ok(Self {
            addr,
            server_name: ServerName::try_from(o.server_name.clone())?,
            tls,
        })
    }

    async fn connect(&self) -> Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let connector = TlsConnector::from(Arc::clone(&self.tls));
        let stream = timeout(
            Duration::from_secs(30),
            connector.connect(self.server_name.clone(), tcp),
        )
        .await
        .map_err(|_| "TLS handshake timed out")??;
        Ok(stream)
    }
}

fn client_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))? {
        roots.add(cert.map_err(|e| format!("{}: {e}", ca.display()))?)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// `--insecure`: no verification of the server certificate. For benchmarks against a
/// server whose certificate is at hand anyway; never for real traffic.
mod danger {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
    use rustls::{DigitallySignedStruct, SignatureScheme};
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

    /// Accepts every certificate (handshake signatures are still checked).
    #[derive(Debug)]
    struct AcceptAnyServerCert(Arc<CryptoProvider>);

    impl ServerCertVerifier for AcceptAnyServerCert {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    pub(crate) fn insecure_client_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

// ---------------------------------------------------------------------------------------
// The artifact pool

/// Pre-signed artifact lines (LF included), oldest first, handed out once each.
struct Pool {
    lines: Vec<Box<[u8]>>,
    ids: Vec<Box<str>>,
    next: AtomicUsize,
    /// Signing stopped early to keep the artifacts fresh.
    capped_by_freshness: bool,
    sign_secs: f64,
}

impl Pool {
    fn take(&self) -> Option<usize> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.lines.len()).then_some(i)
    }

    fn len(&self) -> usize {
        self.lines.len()
    }

    fn line_bytes(&self) -> usize {
        self.lines.first().map_or(0, |l| l.len())
    }
}

/// What every artifact shares.
struct ArtifactSpec {
    from: Identity,
    to: String,
    selector: Selector,
    key: KeyPair,
    document: Value,
}

impl ArtifactSpec {
    fn new(o: &Options, key: KeyPair) -> Result<Self> {
        Ok(Self {
            from: o.from.parse()?,
            to: o.to.parse::<Identity>()?.as_str().to_owned(),
            selector: Selector::parse(&o.selector)?,
            key,
            document: parse_str(INVOICE)?.value,
        })
    }

    /// One signed `BTPS_DOC` line with a fresh id, `issuedAt` = now.
    fn sign(&self) -> Result<(Box<[u8]>, Box<str>)> {
        let id = btps_trust::generate_uuid_v4(&SystemRandom)?;
        let now = UnixMillis::from_system_time(SystemTime::now()).ok_or("clock before 1970")?;
        let mut a = Object::with_capacity(10)
            .with("version", "1.0.0")
            .with("type", "BTPS_DOC")
            .with("from", self.from.as_str())
            .with("to", self.to.as_str())
            .with("selector", self.selector.as_str())
            .with("id", id.as_str())
            .with("issuedAt", now.to_datetime_string())
            .with("document", self.document.clone())
            .with("encryption", Value::Null);
        TransporterSigner::new(&self.key)
            .identity(self.from.clone())
            .selector(self.selector.clone())
            .sign(&mut a)?;
        let mut line = to_js_string(&Value::Object(a)).into_bytes();
        line.push(b'\n');
        Ok((line.into_boxed_slice(), id.into_boxed_str()))
    }
}

/// Signed artifacts in signing order: sequence number, line, id.
type Signed = Vec<(usize, Box<[u8]>, Box<str>)>;

/// Signs up to `n` artifacts on every core, stopping after `max_secs`.
fn sign_pool(spec: &ArtifactSpec, n: usize, max_secs: f64, quiet: bool) -> Result<Pool> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let claimed = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let start = std::time::Instant::now();
    let limit = Duration::from_secs_f64(max_secs.max(1.0));
    let mut parts: Vec<Signed> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<Signed> {
                    let mut out = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let seq = claimed.fetch_add(1, Ordering::Relaxed);
                        if seq >= n {
                            break;
                        }
                        let (line, id) = spec.sign()?;
                        out.push((seq, line, id));
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(out)
                })
            })
            .collect();
        let mut last_report = start;
        while !workers.iter().all(|w| w.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
            if start.elapsed() > limit {
                stop.store(true, Ordering::Relaxed);
            }
            if !quiet && last_report.elapsed() > Duration::from_secs(10) {
                last_report = std::time::Instant::now();
                println!(
                    "  signed {} of {n} ({:.0} s)",
                    done.load(Ordering::Relaxed),
                    start.elapsed().as_secs_f64()
                );
            }
        }
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a signing thread panicked".into()))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let mut all: Vec<_> = parts.iter_mut().flat_map(std::mem::take).collect();
    all.sort_unstable_by_key(|(seq, _, _)| *seq);
    let capped = all.len() < n;
    let (lines, ids) = all.into_iter().map(|(_, l, i)| (l, i)).unzip();
    Ok(Pool {
        lines,
        ids,
        next: AtomicUsize::new(0),
        capped_by_freshness: capped,
        sign_secs: start.elapsed().as_secs_f64(),
    })
}

/// Single-thread signature verifications per second over the pool's artifacts, parsed
/// beforehand (what the server's RSA work costs on one core).
fn verify_bound(pool: &Pool, key: &PublicKey, secs: f64) -> Result<f64> {
    let objects = pool
        .lines
        .iter()
        .take(1000)
        .map(|line| -> Result<Object> {
            let text = std::str::from_utf8(line)?.trim_end();
            parse_str(text)?
                .value
                .as_object()
                .cloned()
                .ok_or_else(|| "not an object".into())
        })
        .collect::<Result<Vec<_>>>()?;
    if objects.is_empty() {
        return Ok(0.0);
    }
    let limit = Duration::from_secs_f64(secs);
    let start = std::time::Instant::now();
    let mut n = 0u64;
    'outer: loop {
        for obj in &objects {
            btps_crypto::verify(obj, signing::TRANSPORTER, key)?;
            n += 1;
            if n.is_multiple_of(32) && start.elapsed() >= limit {
                break 'outer;
            }
        }
    }
    #[allow(clippy::cast_precision_loss, reason = "a rate")]
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------------------------------
// The timed phase

/// How to drive the connections.
#[derive(Clone, Copy, Debug)]
struct LoadSpec {
    connections: usize,
    depth: usize,
    seconds: f64,
    /// Open loop at this total rate; `None`: closed loop with `depth` in flight.
    rate: Option<f64>,
}

/// What every connection task shares.
struct Shared {
    pool: Arc<Pool>,
    start: Instant,
    deadline: Instant,
    exhausted: AtomicBool,
}

/// One connection's results.
#[derive(Default)]
struct ConnStats {
    sent: u64,
    ok_in_window: u64,
    ok_total: u64,
    errors: BTreeMap<String, u64>,
    latencies_us: Vec<u32>,
    /// The second of the timed phase each request was (scheduled to be) sent in, in the
    /// order of `latencies_us`.
    send_second: Vec<u16>,
    unanswered: u64,
    last_reply: Option<Instant>,
    failure: Option<String>,
}

/// The reply envelope members that matter here (§2.5).
#[derive(Deserialize)]
struct ReplyLine<'a> {
    #[serde(borrow)]
    status: ReplyStatus<'a>,
    #[serde(rename = "reqId", borrow, default)]
    req_id: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ReplyStatus<'a> {
    ok: bool,
    #[serde(rename = "errorCode", borrow, default)]
    error_code: Option<std::borrow::Cow<'a, str>>,
}

/// The results of a timed phase.
#[derive(Default)]
struct LoadResult {
    connections: usize,
    connect_failures: Vec<String>,
    window_secs: f64,
    sent: u64,
    ok: u64,
    ok_total: u64,
    errors: BTreeMap<String, u64>,
    latencies_us: Vec<u32>,
    /// p99 latency in milliseconds of the requests sent in each second.
    p99_by_second: Vec<f64>,
    unanswered: u64,
    exhausted: bool,
    failures: Vec<String>,
    server: Option<(ProcSample, ProcSample)>,
    client: Option<(ProcSample, ProcSample)>,
    /// Busy CPU seconds of the whole machine before and after.
    machine: Option<(f64, f64)>,
}

impl LoadResult {
    fn rate(&self) -> f64 {
        if self.window_secs > 0.0 {
            #[allow(clippy::cast_precision_loss, reason = "a rate")]
            let ok = self.ok as f64;
            ok / self.window_secs
        } else {
            0.0
        }
    }

    /// Latency percentile in milliseconds.
    fn percentile_ms(&self, q: f64) -> f64 {
        percentile_ms(&self.latencies_us, q)
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// CPU used by other processes than the server and this one, in percent of one core
    /// (noise: another build, another benchmark).
    fn other_cpu_percent(&self) -> Option<f64> {
        let (m0, m1) = self.machine?;
        let (c0, c1) = self.client.as_ref()?;
        let server = self
            .server
            .as_ref()
            .map_or(0.0, |(b, a)| a.cpu_secs - b.cpu_secs);
        let wall = c1.at.duration_since(c0.at).as_secs_f64();
        (wall > 0.0)
            .then(|| ((m1 - m0) - server - (c1.cpu_secs - c0.cpu_secs)).max(0.0) / wall * 100.0)
    }

    /// Server CPU time per accepted artifact in microseconds: steadier than the rate on a
    /// machine shared with other work.
    fn server_cpu_us_per_artifact(&self) -> Option<f64> {
        let (before, after) = self.server.as_ref()?;
        #[allow(clippy::cast_precision_loss, reason = "a ratio")]
        let ok = self.ok_total as f64;
        (ok > 0.0).then(|| (after.cpu_secs - before.cpu_secs) / ok * 1e6)
    }
}

/// The `q` quantile of sorted latencies in microseconds, in milliseconds.
fn percentile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "an index into a sorted sample"
    )]
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    f64::from(sorted_us[rank - 1]) / 1000.0
}

/// Runs one timed phase: connect, then send until `seconds` pass or the pool runs out.
async fn run_load(
    target: &Target,
    pool: Arc<Pool>,
    spec: LoadSpec,
    server_pid: Option<u32>,
) -> Result<LoadResult> {
    let mut connecting = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections {
        let target = target.clone();
        connecting.push(tokio::spawn(async move { target.connect().await }));
    }
    let mut streams = Vec::with_capacity(spec.connections);
    let mut result = LoadResult::default();
    for c in connecting {
        match c.await? {
            Ok(s) => streams.push(s),
            Err(e) => result.connect_failures.push(e.to_string()),
        }
    }
    if streams.is_empty() {
        return Err(format!(
            "no connection to {} could be opened: {}",
            target.addr,
            result.connect_failures.first().map_or("", String::as_str)
        )
        .into());
    }
    result.connections = streams.len();

    let server_before = ProcSample::server(server_pid);
    let client_before = ProcSample::own();
    let machine_before = machine_busy_secs();
    let start = Instant::now();
    let shared = Arc::new(Shared {
        pool,
        start,
        deadline: start + Duration::from_secs_f64(spec.seconds),
        exhausted: AtomicBool::new(false),
    });
    let n = streams.len();
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, stream)| {
            let shared = Arc::clone(&shared);
            tokio::spawn(connection(stream, shared, spec, i, n))
        })
        .collect();
    let mut stats = Vec::with_capacity(tasks.len());
    for t in tasks {
        stats.push(t.await?);
    }
    let server_after = ProcSample::server(server_pid);
    let client_after = ProcSample::own();
    let machine_after = machine_busy_secs();

    result.exhausted = shared.exhausted.load(Ordering::Relaxed);
    let end = if result.exhausted {
        stats
            .iter()
            .filter_map(|s| s.last_reply)
            .max()
            .unwrap_or(shared.deadline)
    } else {
        shared.deadline
    };
    result.window_secs = end.duration_since(start).as_secs_f64();
    let mut by_second: Vec<Vec<u32>> = Vec::new();
    for s in stats {
        result.sent += s.sent;
        result.ok += if result.exhausted {
            s.ok_total
        } else {
            s.ok_in_window
        };
        result.ok_total += s.ok_total;
        for (code, count) in s.errors {
            *result.errors.entry(code).or_default() += count;
        }
        for (&second, &latency) in s.send_second.iter().zip(&s.latencies_us) {
            let second = usize::from(second);
            if by_second.len() <= second {
                by_second.resize_with(second + 1, Vec::new);
            }
            by_second[second].push(latency);
        }
        result.latencies_us.extend(s.latencies_us);
        result.unanswered += s.unanswered;
        result.failures.extend(s.failure);
    }
    result.latencies_us.sort_unstable();
    result.p99_by_second = by_second
        .into_iter()
        .map(|mut v| {
            v.sort_unstable();
            percentile_ms(&v, 0.99)
        })
        .collect();
    result.server = server_before.zip(server_after);
    result.client = client_before.zip(client_after);
    result.machine = machine_before.zip(machine_after);
    Ok(result)
}

/// One connection: a writer feeding lines and a reader matching replies in order.
async fn connection(
    stream: TlsStream<TcpStream>,
    shared: Arc<Shared>,
    spec: LoadSpec,
    index: usize,
    connections: usize,
) -> ConnStats {
    let (rd, mut wr) = tokio::io::split(stream);
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let (tx, rx) = mpsc::unbounded_channel();
    let window = spec.rate.is_none().then(|| Semaphore::new(spec.depth));
    let mut stats = ConnStats::default();
    let (sent, write_failure) = {
        let writer = write_loop(
            &mut wr,
            tx,
            &shared,
            spec,
            window.as_ref(),
            index,
            connections,
        );
        let reader = read_loop(&mut rd, rx, &shared, window.as_ref(), &mut stats);
        let (written, ()) = tokio::join!(writer, reader);
        written
    };
    stats.sent = sent;
    if stats.failure.is_none() {
        stats.failure = write_failure;
    }
    // close_notify, then FIN; the server answers with its own close.
    let _ = timeout(Duration::from_secs(2), wr.shutdown()).await;
    stats
}

/// Sends lines until the deadline or the end of the pool; returns how many were sent and
/// why writing failed, if it did.
async fn write_loop<W: AsyncWrite + Unpin>(
    wr: &mut W,
    tx: mpsc::UnboundedSender<(Instant, usize)>,
    shared: &Shared,
    spec: LoadSpec,
    window: Option<&Semaphore>,
    index: usize,
    connections: usize,
) -> (u64, Option<String>) {
    let pool = &shared.pool;
    let mut batch = Vec::with_capacity(64 * 1024);
    let mut sent = 0u64;
    // Open loop: this connection's share of the rate, its first send staggered.
    let interval = spec.rate.map(|r| {
        #[allow(clippy::cast_precision_loss, reason = "a rate")]
        let per_connection = r / connections as f64;
        Duration::from_secs_f64(1.0 / per_connection)
    });
    #[allow(clippy::cast_possible_truncation, reason = "small index")]
    let mut next = shared.start
        + interval.map_or(Duration::ZERO, |i| {
            i * index as u32 / connections.max(1) as u32
        });
    loop {
        batch.clear();
        let mut out_of_pool = false;
        if let Some(window) = window {
            // Closed loop: wait for a free slot, then fill every free slot.
            match timeout_at(shared.deadline, window.acquire()).await {
                Ok(Ok(permit)) => permit.forget(),
                _ => break,
            }
            let mut n = 1;
            while let Ok(permit) = window.try_acquire() {
                permit.forget();
                n += 1;
            }
            let now = Instant::now();
            if now >= shared.deadline {
                break;
            }
            for _ in 0..n {
                let Some(i) = pool.take() else {
                    out_of_pool = true;
                    break;
                };
                batch.extend_from_slice(&pool.lines[i]);
                if tx.send((now, i)).is_err() {
                    return (sent, None);
                }
                sent += 1;
            }
        } else if let Some(interval) = interval {
            // Open loop: every send due by now, each timed from its scheduled instant.
            if next >= shared.deadline {
                break;
            }
            sleep_until(next).await;
            let now = Instant::now();
            let mut n = 0;
            while next <= now && next < shared.deadline && n < 256 {
                let Some(i) = pool.take() else {
                    out_of_pool = true;
                    break;
                };
                batch.extend_from_slice(&pool.lines[i]);
                if tx.send((next, i)).is_err() {
                    return (sent, None);
                }
                sent += 1;
                n += 1;
                next += interval;
            }
        }
        if out_of_pool {
            shared.exhausted.store(true, Ordering::Relaxed);
        }
        if !batch.is_empty() {
            let written = timeout_at(shared.deadline + DRAIN, async {
                wr.write_all(&batch).await?;
                wr.flush().await
            })
            .await;
            match written {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return (sent, Some(format!("write: {e}"))),
                Err(_) => return (sent, Some("write timed out".to_owned())),
            }
        }
        if out_of_pool || shared.exhausted.load(Ordering::Relaxed) {
            break;
        }
    }
    (sent, None)
}

/// Reads one reply per sent line, in order.
async fn read_loop<R: AsyncRead + Unpin>(
    rd: &mut BufReader<R>,
    mut rx: mpsc::UnboundedReceiver<(Instant, usize)>,
    shared: &Shared,
    window: Option<&Semaphore>,
    stats: &mut ConnStats,
) {
    let mut line = Vec::with_capacity(1024);
    while let Some((sent_at, i)) = rx.recv().await {
        line.clear();
        let read = timeout_at(shared.deadline + DRAIN, rd.read_until(b'\n', &mut line)).await;
        let failure = match read {
            Ok(Ok(0)) => Some("the server closed the connection".to_owned()),
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(format!("read: {e}")),
            Err(_) => Some("no reply in time".to_owned()),
        };
        if let Some(f) = failure {
            stats.unanswered += 1;
            rx.close();
            while rx.recv().await.is_some() {
                stats.unanswered += 1;
            }
            stats.failure = Some(f);
            if let Some(w) = window {
                w.close();
            }
            return;
        }
        let now = Instant::now();
        stats.last_reply = Some(now);
        let micros = now.duration_since(sent_at).as_micros();
        stats
            .latencies_us
            .push(u32::try_from(micros).unwrap_or(u32::MAX));
        let second = sent_at.saturating_duration_since(shared.start).as_secs();
        stats
            .send_second
            .push(u16::try_from(second).unwrap_or(u16::MAX));
        let expected = &shared.pool.ids[i];
        match serde_json::from_slice::<ReplyLine<'_>>(&line) {
            Ok(r) if r.status.ok && r.req_id.as_deref() == Some(&**expected) => {
                stats.ok_total += 1;
                if now <= shared.deadline {
                    stats.ok_in_window += 1;
                }
            }
            Ok(r) if r.status.ok => {
                *stats.errors.entry("REQID_MISMATCH".to_owned()).or_default() += 1;
            }
            Ok(r) => {
                let code = r
                    .status
                    .error_code
                    .map_or_else(|| "(no errorCode)".to_owned(), std::borrow::Cow::into_owned);
                *stats.errors.entry(code).or_default() += 1;
            }
            Err(_) => {
                *stats
                    .errors
                    .entry("UNPARSABLE_REPLY".to_owned())
                    .or_default() += 1;
            }
        }
        if let Some(w) = window {
            w.add_permits(1);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Runs

fn load_run(o: &Options, target: &Target, runtime: &tokio::runtime::Runtime) -> Result<bool> {
    let key_path = o.key.as_ref().ok_or("--key PEMFILE is required")?;
    let key = KeyPair::from_pem(
        &std::fs::read_to_string(key_path).map_err(|e| format!("{}: {e}", key_path.display()))?,
    )?;
    let public = key.public_key().clone();
    let spec = ArtifactSpec::new(o, key)?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let load = LoadSpec {
        connections: o.connections,
        depth: o.depth,
        seconds: o.seconds,
        rate: o.rate,
    };
    println!(
        "btps server benchmark: {} → {} at {} ({}), {} connections, {}, {} s",
        o.from,
        o.to,
        target.addr,
        o.server_name,
        o.connections,
        o.rate.map_or_else(
            || format!("closed loop, depth {}", o.depth),
            |r| format!("open loop at {r:.0} artifacts/s")
        ),
        o.seconds
    );
    println!("machine: {cores} cores; load generator and server share them when both run here");

    // Pool size: given, from the rate, or from a calibration run.
    let in_flight = o.connections * o.depth;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "pool sizes"
    )]
    let (wanted, calibration) = match (o.artifacts, o.rate) {
        (Some(n), _) => (n, None),
        (None, Some(r)) => ((r * o.seconds * 1.02).ceil() as usize + in_flight, None),
        (None, None) => {
            let n = (6 * in_flight).max(3000);
            println!("calibration: signing {n} artifacts");
            let pool = Arc::new(sign_pool(&spec, n, 120.0, true)?);
            let cal_spec = LoadSpec {
                seconds: o.seconds.min(10.0),
                ..load
            };
            let cal = runtime.block_on(run_load(target, pool.clone(), cal_spec, None))?;
            let sign_rate = pool.len() as f64 / pool.sign_secs;
            println!(
                "calibration: {:.0} artifacts/s over {:.2} s ({} ok, {} errors); signing {:.0}/s",
                cal.rate(),
                cal.window_secs,
                cal.ok,
                cal.error_count(),
                sign_rate
            );
            if cal.ok == 0 {
                print_errors(&cal);
                return Err("calibration: no artifact was accepted".into());
            }
            let want = (cal.rate() * 1.25 * o.seconds).ceil() as usize + in_flight;
            (want, Some(cal))
        }
    };
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "pool sizes"
    )]
    let max_by_rate = (MAX_POOL_RATE * o.seconds) as usize + in_flight;
    let line_len = 1400;
    let size = wanted
        .min(max_by_rate)
        .min(MAX_POOL_BYTES / line_len)
        .max(1);
    // Sign no longer than keeps the first artifact fresh until the end of the run.
    let sign_budget = (FRESHNESS_SECS - FRESHNESS_MARGIN_SECS - o.seconds - 15.0).max(30.0);
    println!(
        "preparation: signing {size} artifacts on {cores} threads (at most {sign_budget:.0} s)"
    );
    let pool = Arc::new(sign_pool(&spec, size, sign_budget, false)?);
    #[allow(clippy::cast_precision_loss, reason = "a rate")]
    let sign_rate = pool.len() as f64 / pool.sign_secs;
    println!(
        "preparation: {} artifacts of {} bytes in {:.1} s ({:.0}/s){}",
        pool.len(),
        pool.line_bytes(),
        pool.sign_secs,
        sign_rate,
        if pool.capped_by_freshness {
            " — stopped early to keep them fresh"
        } else {
            ""
        }
    );

    let verify = verify_bound(&pool, &public, o.verify_seconds)?;
    println!("verify bound: {verify:.0} RSA-2048 verifications/s on one core");

    let result = runtime.block_on(run_load(target, pool.clone(), load, o.server_pid))?;
    report_load(o, &result, verify, pool.len(), calibration.as_ref())
}

fn print_errors(r: &LoadResult) {
    for (code, n) in &r.errors {
        println!("  error {code}: {n}");
    }
    for f in r.connect_failures.iter().chain(&r.failures).take(5) {
        println!("  connection: {f}");
    }
}

fn report_load(
    o: &Options,
    r: &LoadResult,
    verify: f64,
    pool: usize,
    calibration: Option<&LoadResult>,
) -> Result<bool> {
    let rate = r.rate();
    let ratio = if verify > 0.0 { rate / verify } else { 0.0 };
    println!();
    println!(
        "accepted: {} artifacts in {:.2} s = {rate:.0} artifacts/s ({} sent, {} replies, {} unanswered)",
        r.ok,
        r.window_secs,
        r.sent,
        r.ok_total + r.error_count(),
        r.unanswered
    );
    if r.exhausted {
        println!(
            "  the pool of {pool} artifacts ran out after {:.2} s: the timed phase ended early",
            r.window_secs
        );
    }
    if r.error_count() > 0 || !r.failures.is_empty() || !r.connect_failures.is_empty() {
        println!(
            "errors: {} replies, {} connections failed to open, {} broke",
            r.error_count(),
            r.connect_failures.len(),
            r.failures.len()
        );
        print_errors(r);
    } else {
        println!("errors: none");
    }
    println!(
        "latency{}: p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, max {:.2} ms",
        if o.rate.is_some() {
            " (from the scheduled send)"
        } else {
            ""
        },
        r.percentile_ms(0.50),
        r.percentile_ms(0.99),
        r.percentile_ms(0.999),
        r.percentile_ms(1.0)
    );
    if r.p99_by_second.len() > 1 {
        let line: Vec<String> = r
            .p99_by_second
            .iter()
            .take(60)
            .map(|ms| format!("{ms:.1}"))
            .collect();
        println!("p99 by second of the run (ms): {}", line.join(" "));
    }
    if let Some((before, after)) = &r.server {
        println!(
            "server: CPU {:.0}% of one core ({:.0} µs per artifact), RSS {:.1} MiB (peak {:.1} MiB)",
            before.cpu_percent(after),
            r.server_cpu_us_per_artifact().unwrap_or(0.0),
            mib(after.rss_kib),
            mib(after.hwm_kib)
        );
    }
    if let Some((before, after)) = &r.client {
        println!(
            "load generator: CPU {:.0}% of one core; other processes: {:.0}% of one core{}",
            before.cpu_percent(after),
            r.other_cpu_percent().unwrap_or(0.0),
            if r.other_cpu_percent().unwrap_or(0.0) > 20.0 {
                " (figures disturbed by other work on this machine)"
            } else {
                ""
            }
        );
    }
    println!(
        "verify bound: {verify:.0}/s on one core; accepted ÷ bound = {ratio:.2}{}",
        if ratio > 0.0 {
            format!(" (≈ {:.2} cores of RSA verification)", ratio)
        } else {
            String::new()
        }
    );
    let met = rate >= TARGET_RATE;
    if o.rate.is_none() {
        println!(
            "target ≥ {TARGET_RATE:.0} artifacts/s: {}",
            if met { "met" } else { "NOT met" }
        );
    }
    let json = serde_json::json!({
        "bench": "server",
        "mode": if o.rate.is_some() { "open" } else { "closed" },
        "connections": r.connections,
        "depth": o.depth,
        "rate_target": o.rate,
        "seconds": r.window_secs,
        "pool": pool,
        "pool_exhausted": r.exhausted,
        "calibration_per_s": calibration.map(LoadResult::rate),
        "sent": r.sent,
        "ok": r.ok,
        "artifacts_per_s": rate,
        "errors": r.errors,
        "unanswered": r.unanswered,
        "connect_failures": r.connect_failures.len(),
        "p50_ms": r.percentile_ms(0.50),
        "p99_ms": r.percentile_ms(0.99),
        "p999_ms": r.percentile_ms(0.999),
        "max_ms": r.percentile_ms(1.0),
        "p99_by_second_ms": r.p99_by_second,
        "server_cpu_pct": r.server.as_ref().map(|(b, a)| b.cpu_percent(a)),
        "server_cpu_us_per_artifact": r.server_cpu_us_per_artifact(),
        "server_rss_mib": r.server.as_ref().map(|(_, a)| mib(a.rss_kib)),
        "server_peak_rss_mib": r.server.as_ref().map(|(_, a)| mib(a.hwm_kib)),
        "client_cpu_pct": r.client.as_ref().map(|(b, a)| b.cpu_percent(a)),
        "other_cpu_pct": r.other_cpu_percent(),
        "verify_per_s": verify,
        "ratio_to_verify_bound": ratio,
        "target_per_s": TARGET_RATE,
    });
    emit_json(o, &json)?;
    Ok(r.ok > 0)
}

fn emit_json(o: &Options, json: &serde_json::Value) -> Result<()> {
    let line = json.to_string();
    if let Some(path) = &o.json_out {
        std::fs::write(path, format!("{line}\n"))?;
    }
    println!("{line}");
    Ok(())
}

fn idle_run(o: &Options, target: &Target, runtime: &tokio::runtime::Runtime) -> Result<bool> {
    let n = o.idle_connections;
    let own_limit = raise_nofile_limit();
    println!(
        "btps server benchmark: {n} idle TLS connections to {} ({})",
        target.addr, o.server_name
    );
    let n_u64 = u64::try_from(n).unwrap_or(u64::MAX);
    if own_limit < n_u64 + 64 {
        println!("note: this process may open only {own_limit} files; connections past that fail");
    }
    if let Some(limit) = o.server_pid.and_then(nofile_limit_of)
        && limit < n_u64 + 64
    {
        println!("note: the server may open only {limit} files; connections past that fail");
    }
    let before = ProcSample::server(o.server_pid);
    let (streams, failures, secs) = runtime.block_on(async {
        let start = Instant::now();
        let slots = Arc::new(Semaphore::new(128));
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let target = target.clone();
            let slots = Arc::clone(&slots);
            tasks.push(tokio::spawn(async move {
                let _slot = slots.acquire_owned().await;
                target.connect().await
            }));
        }
        let mut streams = Vec::with_capacity(n);
        let mut failures: BTreeMap<String, usize> = BTreeMap::new();
        for t in tasks {
            match t.await {
                Ok(Ok(s)) => streams.push(s),
                Ok(Err(e)) => *failures.entry(e.to_string()).or_default() += 1,
                Err(e) => *failures.entry(e.to_string()).or_default() += 1,
            }
        }
        let secs = start.elapsed().as_secs_f64();
        // Let the server settle (session tickets written, buffers trimmed).
        sleep(Duration::from_secs(2)).await;
        (streams, failures, secs)
    });
    let after = ProcSample::server(o.server_pid);
    let opened = streams.len();
    println!(
        "opened {opened} of {n} connections in {secs:.1} s ({:.0} handshakes/s)",
        if secs > 0.0 {
            #[allow(clippy::cast_precision_loss, reason = "a rate")]
            let r = opened as f64 / secs;
            r
        } else {
            0.0
        }
    );
    for (e, count) in failures.iter().take(5) {
        println!("  {count} failed: {e}");
    }
    let mut json = serde_json::json!({
        "bench": "server-idle",
        "requested": n,
        "opened": opened,
        "failed": n - opened,
        "handshake_secs": secs,
    });
    if let (Some(b), Some(a)) = (before, after) {
        let delta = a.rss_kib.saturating_sub(b.rss_kib);
        #[allow(clippy::cast_precision_loss, reason = "per-connection memory")]
        let per = if opened > 0 {
            delta as f64 / opened as f64
        } else {
            0.0
        };
        println!(
            "server RSS: {:.1} MiB before, {:.1} MiB with {opened} idle connections (+{:.1} MiB, {per:.1} KiB each)",
            mib(b.rss_kib),
            mib(a.rss_kib),
            mib(delta)
        );
        let judged = opened >= TARGET_IDLE_CONNECTIONS;
        println!(
            "target {TARGET_IDLE_CONNECTIONS} idle connections < {TARGET_IDLE_RSS_MIB:.0} MiB: {}",
            match (judged, mib(a.rss_kib) < TARGET_IDLE_RSS_MIB) {
                (false, _) => "not judged (fewer connections open)",
                (true, true) => "met",
                (true, false) => "NOT met",
            }
        );
        json["server_rss_before_mib"] = mib(b.rss_kib).into();
        json["server_rss_mib"] = mib(a.rss_kib).into();
        json["server_rss_delta_mib"] = mib(delta).into();
        json["kib_per_connection"] = per.into();
    }
    drop(streams);
    emit_json(o, &json)?;
    Ok(opened > 0)
}

// ---------------------------------------------------------------------------------------
// Smoke run (`cargo test --all-targets`): the generator against an in-process server

fn smoke() -> Result<bool> {
    use btps_dns::{DnsCache, StaticTable};
    use btps_server::config::RateLimits;
    use btps_server::{
        Pipeline, PipelineOptions, Server, ServerConfig, Shutdown, Stores, TlsReloader, TlsSettings,
    };
    use btps_trust::file::{FileStore, FileStoreConfig};
    use btps_trust::{TrustRecord, TrustStatus, TrustStore};

    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base)?;
    let dir = tempfile::tempdir_in(base)?;
    let o = Options::default();
    let key = KeyPair::generate_rsa2048()?;
    let sender: Identity = o.from.parse()?;
    let record = btps_dns::identity_zone_record(&sender, &o.selector, key.public_key(), 300)?;
    let mut table = StaticTable::new();
    table.insert(&record.name, [record.text]);
    let public = key.public_key().clone();
    let spec = ArtifactSpec::new(&o, key)?;
    let pool = Arc::new(sign_pool(&spec, 24, 60.0, true)?);
    let verify = verify_bound(&pool, &public, 0.05)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let now = UnixMillis::from_system_time(SystemTime::now()).ok_or("clock")?;
    let (result, idle) = runtime.block_on(async {
        let store = Arc::new(FileStore::open(
            &FileStoreConfig::new(dir.path().join("store")),
            now,
        )?);
        let trust = TrustRecord::new(&o.from, &o.to, TrustStatus::Accepted, now)
            .with_privacy(btps_types::artifact::PrivacyType::Mixed);
        store.put_trust(&trust).await?;
        let opts = PipelineOptions {
            domains: vec!["local.test".to_owned()],
            rate_limits: RateLimits::unlimited(),
            ..PipelineOptions::default()
        };
        let pipeline = Pipeline::new(Stores::from_backend(store), DnsCache::new(table), opts);
        let tls = TlsReloader::load(TlsSettings {
            cert: dir.path().join("tls/cert.pem"),
            key: dir.path().join("tls/key.pem"),
            self_signed: true,
            self_signed_names: vec!["localhost".to_owned()],
        })?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let config = ServerConfig {
            listen: listener.local_addr()?,
            data_dir: dir.path().to_path_buf(),
            ..ServerConfig::default()
        };
        let target = Target {
            addr: config.listen,
            server_name: ServerName::try_from("localhost")?,
            tls: client_config(&dir.path().join("tls/cert.pem"))?,
        };
        let server = Server::new(config, Arc::new(pipeline), tls);
        let shutdown = Shutdown::new();
        let serving = tokio::spawn(server.run(listener, None, shutdown.clone(), None));

        let load = LoadSpec {
            connections: 2,
            depth: 4,
            seconds: 30.0,
            rate: None,
        };
        let result = run_load(&target, Arc::clone(&pool), load, None).await?;
        let mut idle = Vec::new();
        for _ in 0..3 {
            idle.push(target.connect().await?);
        }
        let idle_open = idle.len();
        drop(idle);
        shutdown.trigger();
        let _ = timeout(Duration::from_secs(15), serving).await;
        Ok::<_, BoxError>((result, idle_open))
    })?;
    let good = result.ok == 24
        && result.error_count() == 0
        && result.exhausted
        && idle == 3
        && verify > 0.0;
    println!(
        "btps server benchmark (smoke run, unoptimized; use `cargo xtask bench server`): \
         {} of 24 artifacts accepted, {} errors, {idle} idle connections opened, p50 {:.1} ms, {verify:.0} verifications/s",
        result.ok,
        result.error_count(),
        result.percentile_ms(0.5)
    );
    if !good {
        print_errors(&result);
    }
    Ok(good)
}
