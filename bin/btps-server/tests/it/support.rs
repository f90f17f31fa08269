//! Running the real binary: data directories made by `btps-server init` and adjusted for a
//! test, server processes on free ports, admin subcommands, a blocking TLS line client, a
//! plain HTTP GET, and signed artifacts built with the vector keys.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

use btps_crypto::{KeyPair, TransporterSigner, sign_in_place};
use btps_server::ServerConfig;
use btps_server::config::RateLimits;
use btps_types::json::{Object, Value, parse_str, to_js_string};
use btps_types::{Identity, Selector, UnixMillis, signing};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

/// The sender of test documents: its `btps1` key is in the vectors.
pub(crate) const BILLING: &str = "billing$vendorcorp.test";
/// The receiver: an identity of the embedded default's hosted domain.
pub(crate) const FINANCE: &str = "finance$local.test";

/// How long a server gets to start, answer or stop before a test fails.
const WAIT: Duration = Duration::from_secs(30);

/// The shared vectors directory (`BTPS_VECTORS` overrides).
pub(crate) fn vectors_dir() -> PathBuf {
    std::env::var_os("BTPS_VECTORS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
        PathBuf::from,
    )
}

/// A vector key file.
pub(crate) fn key_path(name: &str) -> PathBuf {
    vectors_dir().join("keys").join(name)
}

pub(crate) fn key_pair(name: &str) -> KeyPair {
    KeyPair::from_pem(&fs::read_to_string(key_path(name)).unwrap()).unwrap()
}

/// The private key of `billing$vendorcorp.test` at selector `btps1`.
pub(crate) fn billing_key() -> KeyPair {
    key_pair("billing-btps1-private.pem")
}

/// The vectors' agent device key.
pub(crate) fn device_key() -> KeyPair {
    key_pair("agent-device-private.pem")
}

/// The binary, with no `BTPS_*` variables from the test's environment (they override the
/// configuration).
pub(crate) fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_btps-server"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("BTPS_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Held by the tests that load the machine for many seconds (abuse, crash trials, faults):
/// they run one at a time, so that their timings and latency figures measure the server and
/// not each other.
pub(crate) fn heavy_test() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The current time.
pub(crate) fn now() -> UnixMillis {
    UnixMillis::from_system_time(SystemTime::now()).unwrap()
}

/// An artifact id no other call in this process returns.
pub(crate) fn unique_id(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{}-{n}", std::process::id(), now().as_millis())
}

/// A small xorshift generator; the seed is printed so that a failing run can be repeated
/// (`BTPS_TEST_SEED`).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn from_env_or_clock() -> Self {
        let seed = std::env::var("BTPS_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let t = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap();
                u64::from(t.subsec_nanos()) ^ (t.as_secs() << 20) ^ u64::from(std::process::id())
            });
        eprintln!("BTPS_TEST_SEED={seed}");
        Self(seed | 1)
    }

    /// A value in `lo..hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + self.0 % (hi - lo)
    }
}

/// A data directory made by `btps-server init`, then set up for a test: BTPS and HTTP on
/// free ports of 127.0.0.1, rate limits off, and the sender's key in the static DNS table.
pub(crate) struct DataDir {
    tmp: tempfile::TempDir,
    pub(crate) path: PathBuf,
    starts: u32,
}

impl DataDir {
    pub(crate) fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("data");
        let out = bin()
            .arg("--data-dir")
            .arg(&path)
            .arg("init")
            .output()
            .unwrap();
        assert!(out.status.success(), "init: {}", stderr(&out));

        // Rate limits off (0 disables each).
        edit_config(&path, |section, key| {
            (section == "rate_limits").then(|| format!("{key} = 0"))
        });

        // The sender's key record, as published in the vectors.
        let vectors: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(vectors_dir().join("dns.json")).unwrap())
                .unwrap();
        let name = "btps1._btps.identity.billing.vendorcorp.test";
        let mut table: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(path.join("dns.json")).unwrap()).unwrap();
        table[name] = vectors[name].clone();
        fs::write(path.join("dns.json"), table.to_string()).unwrap();

        let mut dir = Self {
            tmp,
            path,
            starts: 0,
        };
        dir.set_ports();
        let config = dir.config();
        assert_eq!(config.rate_limits, RateLimits::unlimited());
        assert_ne!(config.listen.port(), 3443);
        dir
    }

    /// Adds the vectors' DNS record `name` (an identity key record) to the static table.
    pub(crate) fn publish_vector_record(&self, name: &str) {
        let vectors: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(vectors_dir().join("dns.json")).unwrap())
                .unwrap();
        assert!(vectors[name].is_array(), "{name} is not in the vectors");
        let file = self.path.join("dns.json");
        let mut table: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
        table[name] = vectors[name].clone();
        fs::write(file, table.to_string()).unwrap();
    }

    /// Both listen addresses (BTPS and `[http]`) on fresh free ports.
    fn set_ports(&mut self) {
        edit_config(&self.path, |_, key| {
            (key == "listen").then(|| format!("listen = \"127.0.0.1:{}\"", free_port()))
        });
    }

    fn config(&self) -> ServerConfig {
        ServerConfig::from_toml(&fs::read_to_string(self.path.join("config.toml")).unwrap())
            .unwrap()
    }

    /// The configured BTPS and HTTP addresses.
    fn addrs(&self) -> (SocketAddr, SocketAddr) {
        let config = self.config();
        (config.listen, config.http.listen.unwrap())
    }

    /// The server's TLS certificate (PEM), generated on its first start.
    pub(crate) fn tls_cert_path(&self) -> PathBuf {
        self.path.join("tls/cert.pem")
    }

    /// The server's TLS key (PEM).
    pub(crate) fn tls_key_path(&self) -> PathBuf {
        self.path.join("tls/key.pem")
    }

    /// Runs a subcommand (`identity …`, `trust …`, `agent …`) on this data directory.
    pub(crate) fn admin(&self, args: &[&str]) -> Output {
        bin()
            .arg("--data-dir")
            .arg(&self.path)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs a subcommand that must succeed; its stdout.
    pub(crate) fn admin_ok(&self, args: &[&str]) -> String {
        let out = self.admin(args);
        assert!(
            out.status.success(),
            "btps-server {}: {}\n{}",
            args.join(" "),
            out.status,
            stderr(&out)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Starts `btps-server serve` and waits until it listens. A port taken in the meantime by
    /// someone else is replaced and the start retried.
    pub(crate) fn start(&mut self) -> ServerProcess {
        for _ in 0..5 {
            self.starts += 1;
            let stderr = self.tmp.path().join(format!("stderr.{}", self.starts));
            let (addr, http) = self.addrs();
            let mut child = bin()
                .arg("--data-dir")
                .arg(&self.path)
                .arg("serve")
                .env("BTPS_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(fs::File::create(&stderr).unwrap())
                .spawn()
                .unwrap();
            // stdout is read as it comes, so that a test sees "serving" at once.
            let stdout = Arc::new(Mutex::new(String::new()));
            let (serving, listening) = mpsc::channel();
            let pipe = BufReader::new(child.stdout.take().unwrap());
            let text = Arc::clone(&stdout);
            let reader = std::thread::spawn(move || {
                for line in pipe.lines().map_while(Result::ok) {
                    let is_serving = line.starts_with("btps-server: serving BTPS on");
                    let mut text = text.lock().unwrap();
                    text.push_str(&line);
                    text.push('\n');
                    if is_serving {
                        let _ = serving.send(true);
                    }
                }
                let _ = serving.send(false);
            });
            let mut server = ServerProcess {
                child,
                addr,
                http,
                stdout,
                reader: Some(reader),
                stderr,
                cert: self.tls_cert_path(),
            };
            let started = listening.recv_timeout(WAIT).unwrap_or(false);
            match server.started(started) {
                Ok(()) => return server,
                Err(text) if text.contains("listen on") && text.contains("in use") => {
                    self.set_ports();
                }
                Err(text) => panic!("btps-server did not start:\n{text}"),
            }
        }
        panic!("no free ports");
    }
}

/// Rewrites the `key = value` lines of `<data>/config.toml` for which `edit(section, key)`
/// returns a replacement (`section` is empty before the first table header).
pub(crate) fn edit_config(data: &Path, mut edit: impl FnMut(&str, &str) -> Option<String>) {
    let file = data.join("config.toml");
    let mut section = String::new();
    let mut out = String::new();
    for line in fs::read_to_string(&file).unwrap().lines() {
        if let Some(header) = line.strip_prefix('[') {
            section = header.split(']').next().unwrap_or("").to_owned();
        }
        let key = line
            .split_once('=')
            .map(|(k, _)| k.trim())
            .filter(|k| !k.starts_with(['#', '[']));
        match key.and_then(|k| edit(&section, k)) {
            Some(replacement) => out.push_str(&replacement),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    fs::write(&file, out).unwrap();
}

/// The stderr of an output, as text.
pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A `btps-server serve` child process. Dropping it kills the process.
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) http: SocketAddr,
    stdout: Arc<Mutex<String>>,
    /// The thread copying stdout, until the process exited and it was joined.
    reader: Option<std::thread::JoinHandle<()>>,
    stderr: PathBuf,
    cert: PathBuf,
}

impl ServerProcess {
    /// `Ok` when the "serving" line came; else the process's output.
    fn started(&mut self, serving: bool) -> Result<(), String> {
        if serving {
            return Ok(());
        }
        self.kill();
        let status = self.child.wait().unwrap();
        self.join_reader();
        Err(format!("{status}\n{}\n{}", self.stdout(), self.stderr()))
    }

    /// After the exit: waits until all of stdout was read.
    fn join_reader(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process printed on stdout so far.
    pub(crate) fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// What the process logged on stderr so far.
    pub(crate) fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends `signal` (`HUP`, `TERM`, …) with kill(1).
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// SIGKILL, then reap.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.join_reader();
    }

    /// The exit status, if the process has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().unwrap()?;
        self.join_reader();
        Some(status)
    }

    /// Waits for the process to exit on its own.
    pub(crate) fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "btps-server did not exit\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, and a clean exit.
    pub(crate) fn stop(mut self) {
        self.signal("TERM");
        let status = self.wait_exit();
        assert!(status.success(), "{status}\n{}", self.stderr());
    }

    /// A TLS connection trusting the server's certificate.
    pub(crate) fn connect(&self) -> LineClient {
        LineClient::connect(self.addr, &[&self.cert]).unwrap()
    }

    /// A TLS connection from the loopback address `source` (any of 127.0.0.0/8), so that
    /// per-IP limits see another client.
    pub(crate) fn connect_from(&self, source: IpAddr) -> io::Result<LineClient> {
        LineClient::connect_tcp(tcp_from(source, self.addr)?, &[&self.cert])
    }

    /// The resident set size of the process now and its peak so far, in KiB
    /// (`VmRSS`, `VmHWM` of `/proc/<pid>/status`).
    pub(crate) fn memory_kib(&self) -> (u64, u64) {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc/<pid>/status"))
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// The value of an unlabelled sample of `/metrics` (a gauge or counter).
    pub(crate) fn metric(&self, name: &str) -> f64 {
        let (code, body) = self.http_get("/metrics");
        assert_eq!(code, 200);
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
    }

    /// One plain HTTP GET on the observability listener: the status code and the body.
    pub(crate) fn http_get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(self.http).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("a status code");
        (code, body.to_owned())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// A TCP connection to `addr` from the loopback address `source` (bound before the
/// connect, which std cannot do).
pub(crate) fn tcp_from(source: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .unwrap();
    }
    let stream = RT.with(|rt| {
        rt.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(source, 0))?;
            tokio::time::timeout(WAIT, socket.connect(addr))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
                .and_then(tokio::net::TcpStream::into_std)
        })
    })?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(WAIT))?;
    stream.set_write_timeout(Some(WAIT))?;
    Ok(stream)
}

/// A blocking BTPS line client over rustls.
pub(crate) struct LineClient {
    stream: BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>,
}

impl LineClient {
    /// Connects to `addr` as `localhost`, trusting the certificates in `roots` (PEM files),
    /// and completes the handshake.
    pub(crate) fn connect(addr: SocketAddr, roots: &[&Path]) -> io::Result<Self> {
        Self::connect_tcp(TcpStream::connect(addr)?, roots)
    }

    /// The TLS handshake as `localhost` on a connected socket.
    pub(crate) fn connect_tcp(mut tcp: TcpStream, roots: &[&Path]) -> io::Result<Self> {
        let mut store = rustls::RootCertStore::empty();
        for path in roots {
            for cert in CertificateDer::pem_file_iter(path).unwrap() {
                store.add(cert.unwrap()).unwrap();
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").unwrap();
        let mut conn =
            rustls::ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;
        tcp.set_read_timeout(Some(WAIT))?;
        tcp.set_write_timeout(Some(WAIT))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)?;
        }
        Ok(Self {
            stream: BufReader::new(rustls::StreamOwned::new(conn, tcp)),
        })
    }

    /// The server's certificate (DER) on this connection.
    pub(crate) fn peer_certificate(&self) -> Vec<u8> {
        self.stream.get_ref().conn.peer_certificates().unwrap()[0].to_vec()
    }

    /// Writes `bytes` as they are (no LF added).
    pub(crate) fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let s = self.stream.get_mut();
        s.write_all(bytes)?;
        s.flush()
    }

    /// Sets the read timeout of the socket.
    pub(crate) fn set_read_timeout(&self, timeout: Duration) {
        self.stream
            .get_ref()
            .sock
            .set_read_timeout(Some(timeout))
            .unwrap();
    }

    /// Writes `lines`, each followed by LF, in one write.
    pub(crate) fn write_lines<S: AsRef<str>>(&mut self, lines: &[S]) -> io::Result<()> {
        let mut bytes = Vec::new();
        for l in lines {
            bytes.extend_from_slice(l.as_ref().as_bytes());
            bytes.push(b'\n');
        }
        let s = self.stream.get_mut();
        s.write_all(&bytes)?;
        s.flush()
    }

    /// The next reply line; an error when the server closed the connection.
    pub(crate) fn read_line(&mut self) -> io::Result<String> {
        let mut text = String::new();
        if self.stream.read_line(&mut text)? == 0 || !text.ends_with('\n') {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        text.pop();
        Ok(text)
    }

    /// Sends one line and reads its reply.
    pub(crate) fn request(&mut self, line: &str) -> Reply {
        self.write_lines(&[line]).unwrap();
        Reply::parse(&self.read_line().unwrap())
    }
}

/// A reply line.
#[derive(Debug)]
pub(crate) struct Reply(pub(crate) serde_json::Value);

impl Reply {
    pub(crate) fn parse(line: &str) -> Self {
        Self(serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
    }

    pub(crate) fn ok(&self) -> bool {
        self.0["status"]["ok"].as_bool().unwrap()
    }

    pub(crate) fn error_code(&self) -> Option<&str> {
        self.0["status"]["errorCode"].as_str()
    }

    /// The numeric `status.code` (200, 429, 503, …).
    pub(crate) fn code(&self) -> Option<u64> {
        self.0["status"]["code"].as_u64()
    }

    pub(crate) fn message(&self) -> &str {
        self.0["status"]["message"].as_str().unwrap_or("")
    }

    pub(crate) fn req_id(&self) -> Option<&str> {
        self.0["reqId"].as_str()
    }

    pub(crate) fn document(&self) -> &serde_json::Value {
        &self.0["document"]
    }
}

/// The plain invoice document of vector `transporter_doc_invoice_plain`.
pub(crate) fn invoice() -> Value {
    let case =
        fs::read_to_string(vectors_dir().join("cases/transporter_doc_invoice_plain.json")).unwrap();
    let case: serde_json::Value = serde_json::from_str(&case).unwrap();
    let line = parse_str(case["line"].as_str().unwrap()).unwrap().value;
    line.as_object().unwrap().get("document").unwrap().clone()
}

/// A signed `BTPS_DOC` line from `billing$vendorcorp.test` to `finance$local.test`.
pub(crate) fn doc_line(id: &str, issued_at: UnixMillis, document: &Value, key: &KeyPair) -> String {
    doc_line_from(BILLING, key, id, issued_at, document)
}

/// A `BTPS_DOC` line from `from` (signed by `key`, selector `btps1`) to `finance$local.test`.
pub(crate) fn doc_line_from(
    from: &str,
    key: &KeyPair,
    id: &str,
    issued_at: UnixMillis,
    document: &Value,
) -> String {
    let mut a = Object::new()
        .with("version", "1.0.0")
        .with("type", "BTPS_DOC")
        .with("from", from)
        .with("to", FINANCE)
        .with("selector", "btps1")
        .with("id", id)
        .with("issuedAt", issued_at.to_datetime_string())
        .with("document", document.clone())
        .with("encryption", Value::Null);
    TransporterSigner::new(key)
        .identity(from.parse::<Identity>().unwrap())
        .selector(Selector::parse("btps1").unwrap())
        .sign(&mut a)
        .unwrap();
    to_js_string(&Value::Object(a))
}

/// An agent artifact line of `finance$local.test`, signed by `key`, issued now.
pub(crate) fn agent_line(
    action: &str,
    agent_id: &str,
    document: Option<Value>,
    id: &str,
    key: &KeyPair,
) -> String {
    let mut a = Object::new()
        .with("action", action)
        .with("agentId", agent_id)
        .with("to", FINANCE);
    if let Some(d) = document {
        a.insert("document", d);
    }
    a.insert("encryption", Value::Null);
    a.insert("id", id);
    a.insert("issuedAt", now().to_datetime_string());
    a.insert("version", "1.0.0");
    sign_in_place(&mut a, signing::AGENT, key).unwrap();
    to_js_string(&Value::Object(a))
}

/// Onboards `device` as an agent of `finance$local.test` with a one-time `token`
/// (`auth.request`, §8.2); the reply.
pub(crate) fn auth_request(client: &mut LineClient, token: &str, device: &KeyPair) -> Reply {
    let doc = Object::new()
        .with("identity", FINANCE)
        .with("authToken", token)
        .with("publicKey", device.public_key().to_pem());
    let id = unique_id("auth");
    client.request(&agent_line(
        "auth.request",
        "temp",
        Some(doc.into()),
        &id,
        device,
    ))
}

/// Every artifact id in the inbox of `finance$local.test`, page by page (`inbox.fetch` with
/// `limit` and `cursor`), in storage order.
pub(crate) fn inbox_ids(client: &mut LineClient, agent_id: &str, device: &KeyPair) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = Object::new().with("limit", 500.0);
        if let Some(c) = &cursor {
            query.insert("cursor", c.as_str());
        }
        let id = unique_id("fetch");
        let reply = client.request(&agent_line(
            "inbox.fetch",
            agent_id,
            Some(query.into()),
            &id,
            device,
        ));
        assert!(reply.ok(), "{:?}", reply.0);
        let doc = reply.document();
        for r in doc["results"].as_array().unwrap() {
            ids.push(r["artifact"]["id"].as_str().unwrap().to_owned());
        }
        if doc["hasNext"] != serde_json::Value::Bool(true) {
            break;
        }
        cursor = Some(doc["cursor"].as_str().unwrap().to_owned());
    }
    ids
}
