//! The transport over real TLS on loopback (PROTOCOL.md §2.1–§2.4, §11), with a scripted
//! line handler.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use btps_server::config::{Limits, Timeouts};
use btps_server::{
    Handled, LineHandler, Peer, Shutdown, TlsReloader, TlsSettings, Transport, TransportError,
    TransportEvent, TransportStats, ensure_self_signed,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Upper bound for anything a test waits for.
const WAIT: Duration = Duration::from_secs(10);

/// `sleep:<ms>:<tag>` sleeps, then echoes `tag`; `big:<n>` answers with `n` bytes; `QUIT`
/// answers `bye` and closes; anything else is echoed.
#[derive(Default)]
struct Script {
    calls: AtomicUsize,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

fn echo(text: &str) -> Vec<u8> {
    format!("{{\"echo\":\"{text}\"}}\n").into_bytes()
}

#[async_trait]
impl LineHandler for Script {
    async fn handle(&self, line: &[u8], _peer: &Peer) -> Handled {
        self.calls.fetch_add(1, SeqCst);
        let running = self.running.fetch_add(1, SeqCst) + 1;
        self.max_running.fetch_max(running, SeqCst);
        let text = String::from_utf8_lossy(line).into_owned();
        let handled = if text == "QUIT" {
            Handled {
                reply: Some(b"{\"bye\":true}\n".to_vec()),
                close: true,
                rate_limited: false,
            }
        } else if let Some(rest) = text.strip_prefix("sleep:") {
            let (ms, tag) = rest.split_once(':').unwrap_or((rest, ""));
            sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
            Handled::reply(echo(tag))
        } else if let Some(n) = text.strip_prefix("big:") {
            Handled::reply(echo(&"x".repeat(n.parse().unwrap_or(0))))
        } else {
            Handled::reply(echo(&text))
        };
        self.running.fetch_sub(1, SeqCst);
        handled
    }

    fn transport_reply(&self, event: TransportEvent, req_id: Option<&str>) -> Vec<u8> {
        assert!(req_id.is_none());
        let code = match event {
            TransportEvent::LineTooLong => 413,
            TransportEvent::Timeout => 408,
            TransportEvent::Overloaded => 429,
        };
        format!("{{\"event\":\"{event:?}\",\"code\":{code}}}\n").into_bytes()
    }
}

const TOO_LONG: &str = "{\"event\":\"LineTooLong\",\"code\":413}\n";
const TIMEOUT: &str = "{\"event\":\"Timeout\",\"code\":408}\n";
const BYE: &str = "{\"bye\":true}\n";

fn echoed(text: &str) -> Option<String> {
    Some(String::from_utf8(echo(text)).unwrap())
}

fn timeouts() -> Timeouts {
    Timeouts {
        handshake_ms: 5_000,
        idle_ms: 10_000,
        line_read_ms: 10_000,
        write_ms: 5_000,
        request_ms: 10_000,
        shutdown_grace_ms: 5_000,
    }
}

struct Server {
    addr: SocketAddr,
    shutdown: Shutdown,
    stats: Arc<TransportStats>,
    task: JoinHandle<Result<(), TransportError>>,
    script: Arc<Script>,
    tls: TlsReloader,
    client: Arc<rustls::ClientConfig>,
    dir: tempfile::TempDir,
}

impl Server {
    async fn start(limits: Limits, timeouts: Timeouts) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsReloader::load(TlsSettings {
            cert: dir.path().join("tls/cert.pem"),
            key: dir.path().join("tls/key.pem"),
            self_signed: true,
            self_signed_names: vec!["localhost".into(), "127.0.0.1".into()],
        })
        .unwrap();
        let client = client_config(&dir.path().join("tls/cert.pem"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Script::default());
        let handler: Arc<dyn LineHandler> = script.clone();
        let transport = Transport::new(tls.clone(), handler, limits, timeouts);
        let stats = transport.stats();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(transport.serve(listener, shutdown.clone()));
        Self {
            addr,
            shutdown,
            stats,
            task,
            script,
            tls,
            client,
            dir,
        }
    }

    async fn connect(&self) -> Client {
        Client::connect(self.addr, &self.client).await.unwrap()
    }

    async fn wait_for(&self, what: &str, check: impl Fn(&TransportStats) -> bool) {
        let start = Instant::now();
        while !check(&self.stats) {
            assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
            sleep(Duration::from_millis(10)).await;
        }
    }
}

fn client_config(cert_pem: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

struct Client {
    rd: BufReader<ReadHalf<TlsStream<TcpStream>>>,
    wr: WriteHalf<TlsStream<TcpStream>>,
    server_cert: Vec<u8>,
}

impl Client {
    async fn connect(
        addr: SocketAddr,
        config: &Arc<rustls::ClientConfig>,
    ) -> std::io::Result<Self> {
        Self::handshake(TcpStream::connect(addr).await?, config).await
    }

    /// Connects from `source` (another loopback address: 127.0.0.2, …).
    async fn connect_from(
        source: IpAddr,
        addr: SocketAddr,
        config: &Arc<rustls::ClientConfig>,
    ) -> std::io::Result<Self> {
        Self::handshake(tcp_from(source, addr).await, config).await
    }

    async fn handshake(
        tcp: TcpStream,
        config: &Arc<rustls::ClientConfig>,
    ) -> std::io::Result<Self> {
        let name = ServerName::try_from("localhost").unwrap();
        let tls = timeout(
            WAIT,
            TlsConnector::from(Arc::clone(config)).connect(name, tcp),
        )
        .await
        .expect("handshake in time")?;
        let server_cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(|cert| cert.to_vec())
            .unwrap_or_default();
        let (rd, wr) = tokio::io::split(tls);
        Ok(Self {
            rd: BufReader::new(rd),
            wr,
            server_cert,
        })
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.wr.write_all(bytes).await.unwrap();
        self.wr.flush().await.unwrap();
    }

    /// The next reply line, or `None` once the server closed with close_notify. Fails on
    /// an unclean close and when nothing arrives in time.
    async fn line(&mut self) -> Option<String> {
        let mut text = String::new();
        let n = timeout(WAIT, self.rd.read_line(&mut text))
            .await
            .expect("reply in time")
            .expect("clean read");
        (n > 0).then_some(text)
    }
}

/// A TCP connection to `addr` from `source` (any port).
async fn tcp_from(source: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// Whether the server closed `tcp` within `within` (EOF or reset).
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        timeout(within, tcp.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn pipelined_replies_come_in_request_order() {
    let server = Server::start(Limits::default(), timeouts()).await;
    let mut c = server.connect().await;
    c.send(b"sleep:400:a\nsleep:50:b\nc\n").await;
    assert_eq!(c.line().await, echoed("a"));
    assert_eq!(c.line().await, echoed("b"));
    assert_eq!(c.line().await, echoed("c"));
    // The later lines ran while the first one slept.
    assert!(server.script.max_running.load(SeqCst) >= 2);
    assert_eq!(server.stats.snapshot().lines, 3);
}

#[tokio::test]
async fn blank_lines_get_no_reply_and_crlf_is_tolerated() {
    let server = Server::start(Limits::default(), timeouts()).await;
    let mut c = server.connect().await;
    c.send(b"\n   \n\t\r\n\r\none\r\ntwo\n").await;
    c.send(b"  \r\nthree\n").await;
    assert_eq!(c.line().await, echoed("one"));
    assert_eq!(c.line().await, echoed("two"));
    assert_eq!(c.line().await, echoed("three"));
    assert_eq!(server.script.calls.load(SeqCst), 3);
}

#[tokio::test]
async fn line_too_long_gets_413_after_earlier_replies_then_close() {
    let limits = Limits {
        max_line_bytes: 64,
        ..Limits::default()
    };
    let server = Server::start(limits, timeouts()).await;
    let mut c = server.connect().await;
    let at_limit = "y".repeat(64);
    c.send(format!("{at_limit}\r\nsleep:200:first\n").as_bytes())
        .await;
    c.send("x".repeat(300).as_bytes()).await;
    assert_eq!(c.line().await, echoed(&at_limit));
    assert_eq!(c.line().await, echoed("first"));
    assert_eq!(c.line().await.as_deref(), Some(TOO_LONG));
    assert_eq!(c.line().await, None);
    let stats = server.stats.snapshot();
    assert_eq!(stats.lines_too_long, 1);
    assert_eq!(stats.lines, 2);
}

#[tokio::test]
async fn idle_timeout_counts_from_the_last_reply_then_closes() {
    let server = Server::start(
        Limits::default(),
        Timeouts {
            idle_ms: 300,
            ..timeouts()
        },
    )
    .await;
    let mut c = server.connect().await;
    // In flight longer than the idle timer: not idle.
    c.send(b"sleep:700:slow\n").await;
    assert_eq!(c.line().await, echoed("slow"));
    let replied = Instant::now();
    assert_eq!(c.line().await.as_deref(), Some(TIMEOUT));
    assert!(replied.elapsed() >= Duration::from_millis(200));
    assert_eq!(c.line().await, None);
    assert_eq!(server.stats.snapshot().timeouts, 1);
}

#[tokio::test]
async fn slow_loris_partial_line_hits_the_line_read_timeout() {
    let server = Server::start(
        Limits::default(),
        Timeouts {
            line_read_ms: 300,
            ..timeouts()
        },
    )
    .await;
    let Client { mut rd, mut wr, .. } = server.connect().await;
    let start = Instant::now();
    // One byte every 50 ms: never idle, never a complete line.
    let dribble = tokio::spawn(async move {
        for _ in 0..100 {
            if wr.write_all(b"x").await.is_err() || wr.flush().await.is_err() {
                break;
            }
            sleep(Duration::from_millis(50)).await;
        }
    });
    let mut text = String::new();
    timeout(WAIT, rd.read_line(&mut text))
        .await
        .unwrap()
        .unwrap();
    dribble.abort();
    assert_eq!(text, TIMEOUT);
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    text.clear();
    assert_eq!(
        timeout(WAIT, rd.read_line(&mut text))
            .await
            .unwrap()
            .unwrap(),
        0
    );
    assert_eq!(server.stats.snapshot().timeouts, 1);
    assert_eq!(server.script.calls.load(SeqCst), 0);
}

#[tokio::test]
async fn per_ip_connection_limit_closes_before_tls() {
    let limits = Limits {
        max_connections_per_ip: 2,
        ..Limits::default()
    };
    let server = Server::start(limits, timeouts()).await;
    let mut c1 = server.connect().await;
    let mut c2 = server.connect().await;
    c1.send(b"one\n").await;
    c2.send(b"two\n").await;
    assert_eq!(c1.line().await, echoed("one"));
    assert_eq!(c2.line().await, echoed("two"));
    assert!(Client::connect(server.addr, &server.client).await.is_err());
    assert_eq!(server.stats.snapshot().rejected, 1);
    assert_eq!(server.stats.snapshot().handshake_failures, 0);
    drop(c1);
    server
        .wait_for("a place to free up", |s| s.open_connections() == 1)
        .await;
    let mut c3 = server.connect().await;
    c3.send(b"three\n").await;
    assert_eq!(c3.line().await, echoed("three"));
    assert_eq!(server.stats.snapshot().accepted, 4);
}

#[tokio::test]
async fn total_connection_limit_closes_before_tls() {
    let limits = Limits {
        max_connections: 1,
        ..Limits::default()
    };
    let server = Server::start(limits, timeouts()).await;
    let mut c1 = server.connect().await;
    c1.send(b"one\n").await;
    assert_eq!(c1.line().await, echoed("one"));
    assert!(Client::connect(server.addr, &server.client).await.is_err());
    assert_eq!(server.stats.snapshot().rejected, 1);
}

#[tokio::test]
async fn quit_finishes_in_flight_requests_then_closes_with_close_notify() {
    let server = Server::start(Limits::default(), timeouts()).await;
    let mut c = server.connect().await;
    c.send(b"sleep:300:a\nQUIT\nafter\n").await;
    assert_eq!(c.line().await, echoed("a"));
    assert_eq!(c.line().await.as_deref(), Some(BYE));
    // `line` fails on a close without close_notify.
    assert_eq!(c.line().await, None);
    server
        .wait_for("the connection to close", |s| s.open_connections() == 0)
        .await;
}

#[tokio::test]
async fn graceful_shutdown_drains_in_flight_requests() {
    let server = Server::start(Limits::default(), timeouts()).await;
    let mut c = server.connect().await;
    c.send(b"sleep:400:a\n").await;
    server
        .wait_for("the line", |s| s.snapshot().lines == 1)
        .await;
    server.shutdown.trigger();
    assert_eq!(c.line().await, echoed("a"));
    assert_eq!(c.line().await, None);
    let started = Instant::now();
    timeout(WAIT, server.task).await.unwrap().unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "still accepting"
    );
}

#[tokio::test]
async fn shutdown_grace_bounds_requests_that_do_not_finish() {
    let server = Server::start(
        Limits::default(),
        Timeouts {
            shutdown_grace_ms: 300,
            ..timeouts()
        },
    )
    .await;
    let Client { mut rd, mut wr, .. } = server.connect().await;
    wr.write_all(b"sleep:60000:never\n").await.unwrap();
    wr.flush().await.unwrap();
    server
        .wait_for("the line", |s| s.snapshot().lines == 1)
        .await;
    let started = Instant::now();
    server.shutdown.trigger();
    timeout(WAIT, server.task).await.unwrap().unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    // Closed without a reply.
    let mut rest = Vec::new();
    let _ = timeout(WAIT, rd.read_to_end(&mut rest)).await.unwrap();
    assert!(rest.is_empty());
    assert_eq!(server.stats.open_connections(), 0);
}

#[tokio::test]
async fn handshake_timeout_closes_silent_clients() {
    let server = Server::start(
        Limits::default(),
        Timeouts {
            handshake_ms: 300,
            ..timeouts()
        },
    )
    .await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let read = timeout(WAIT, tcp.read(&mut buf)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    server
        .wait_for("the handshake failure", |s| {
            s.snapshot().handshake_failures == 1
        })
        .await;
}

#[tokio::test]
async fn write_timeout_closes_when_the_client_does_not_read() {
    let server = Server::start(
        Limits::default(),
        Timeouts {
            write_ms: 300,
            ..timeouts()
        },
    )
    .await;
    let mut c = server.connect().await;
    // 40 replies of 1 MB each: more than the socket buffers hold.
    c.send("big:1000000\n".repeat(40).as_bytes()).await;
    server
        .wait_for("the write timeout", |s| s.snapshot().write_timeouts == 1)
        .await;
    server
        .wait_for("the connection to close", |s| s.open_connections() == 0)
        .await;
}

#[tokio::test]
async fn byte_budget_pauses_reading_without_losing_lines() {
    // A budget of a few lines: reading pauses until handlers finish and free it.
    let limits = Limits {
        max_line_bytes: 100,
        max_buffered_bytes: 300,
        ..Limits::default()
    };
    let server = Server::start(limits, timeouts()).await;
    let mut c = server.connect().await;
    let tag = |i: usize| format!("line-{i:03}-{}", "p".repeat(40));
    let mut batch = String::new();
    for i in 0..400 {
        batch.push_str(&format!("sleep:5:{}\n", tag(i)));
    }
    // More than one read's worth, sent while the first lines are processed.
    let Client { mut rd, mut wr, .. } = c;
    let writer = tokio::spawn(async move {
        wr.write_all(batch.as_bytes()).await.unwrap();
        wr.flush().await.unwrap();
        wr
    });
    for i in 0..400 {
        let mut text = String::new();
        timeout(WAIT, rd.read_line(&mut text))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(Some(text), echoed(&tag(i)));
    }
    let wr = writer.await.unwrap();
    c = Client {
        rd,
        wr,
        server_cert: Vec::new(),
    };
    c.send(b"last\n").await;
    assert_eq!(c.line().await, echoed("last"));
    let stats = server.stats.snapshot();
    assert_eq!(stats.lines, 401);
    assert_eq!(stats.buffered_bytes, 0, "budget leaked");
}

#[tokio::test]
async fn reload_swaps_the_certificate_for_new_connections_only() {
    let server = Server::start(Limits::default(), timeouts()).await;
    let mut old = server.connect().await;
    let cert_a = old.server_cert.clone();
    let cert_path = server.dir.path().join("tls/cert.pem");
    let key_path = server.dir.path().join("tls/key.pem");

    // A new pair in place of the old one.
    std::fs::remove_file(&cert_path).unwrap();
    assert!(ensure_self_signed(&cert_path, &key_path, &["localhost".to_owned()]).unwrap());
    server.tls.reload().unwrap();

    let client_b = client_config(&cert_path);
    let mut new = Client::connect(server.addr, &client_b).await.unwrap();
    assert_ne!(new.server_cert, cert_a);
    assert!(
        Client::connect(server.addr, &server.client).await.is_err(),
        "new connections must not see the old certificate"
    );
    // The established connection is unaffected.
    old.send(b"still\n").await;
    assert_eq!(old.line().await, echoed("still"));
    new.send(b"fresh\n").await;
    assert_eq!(new.line().await, echoed("fresh"));

    // A failed reload keeps the current certificate.
    std::fs::write(&cert_path, "not a certificate").unwrap();
    assert!(server.tls.reload().is_err());
    let again = Client::connect(server.addr, &client_b).await.unwrap();
    assert_eq!(again.server_cert, new.server_cert);
}

#[test]
fn self_signed_generation_creates_usable_files() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("a/b/cert.pem");
    let key = dir.path().join("a/c/key.pem");
    let names = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    assert!(ensure_self_signed(&cert, &key, &names).unwrap());
    let pem = std::fs::read(&cert).unwrap();
    assert_eq!(CertificateDer::pem_slice_iter(&pem).count(), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Present files are left alone.
    assert!(!ensure_self_signed(&cert, &key, &names).unwrap());
    assert_eq!(std::fs::read(&cert).unwrap(), pem);
    TlsSettings::from_files(&cert, &key)
        .server_config()
        .unwrap();
    // A mismatched key is refused.
    let other = dir.path().join("other");
    ensure_self_signed(&other.join("cert.pem"), &other.join("key.pem"), &names).unwrap();
    let mismatched = TlsSettings::from_files(&cert, other.join("key.pem")).server_config();
    assert!(
        matches!(mismatched, Err(TransportError::Tls(_))),
        "{mismatched:?}"
    );
    let missing = TlsSettings::from_files(dir.path().join("none.pem"), &key).server_config();
    assert!(
        matches!(missing, Err(TransportError::Pem { .. })),
        "{missing:?}"
    );
}

/// `max_handshakes = 4`, `max_handshakes_per_ip = 3`: ten connections from 127.0.0.1 that
/// never start their handshake hold three slots; the seven over the per-address bound are
/// closed at once, before TLS. A client from 127.0.0.2 then completes its handshake at once
/// (without the per-address bound it would wait for the handshake timeout, 3 s).
#[tokio::test]
async fn handshakes_per_ip_are_capped_so_other_addresses_get_a_slot() {
    let limits = Limits {
        max_handshakes: 4,
        max_handshakes_per_ip: 3,
        ..Limits::default()
    };
    let server = Server::start(
        limits,
        Timeouts {
            handshake_ms: 3_000,
            ..timeouts()
        },
    )
    .await;
    let started = Instant::now();
    let mut stuck = Vec::new();
    for _ in 0..10 {
        stuck.push(tcp_from(loopback(1), server.addr).await);
    }
    server
        .wait_for("seven rejections", |s| s.snapshot().rejected == 7)
        .await;
    let mut closed = 0;
    for tcp in &mut stuck {
        closed += usize::from(closed_within(tcp, Duration::from_millis(100)).await);
    }
    assert_eq!(closed, 7, "closed before TLS");
    assert!(started.elapsed() < Duration::from_millis(2_000));
    assert_eq!(server.stats.snapshot().handshake_failures, 0);

    let t = Instant::now();
    let mut good = Client::connect_from(loopback(2), server.addr, &server.client)
        .await
        .unwrap();
    let handshake = t.elapsed();
    eprintln!(
        "handshakes: a client from another address completed its handshake in {handshake:?} while 3 of 4 slots were held"
    );
    assert!(handshake < Duration::from_millis(1_000), "{handshake:?}");
    good.send(b"hello\n").await;
    assert_eq!(good.line().await, echoed("hello"));
    // The three held handshakes are still waiting (closed by the handshake timeout later).
    assert_eq!(server.stats.snapshot().handshake_failures, 0);
    for tcp in &mut stuck {
        assert!(closed_within(tcp, WAIT).await);
    }
    server
        .wait_for("the handshake timeouts", |s| {
            s.snapshot().handshake_failures == 3
        })
        .await;
}

/// At the global bound (`max_handshakes = 2`, both held by silent connections) a new
/// handshake waits for a slot: it proceeds as soon as a silent client leaves, and, when
/// the slots stay held, as soon as the handshake timeout (1.5 s) closes a silent
/// connection. The timeout counts the wait: the waiting connection's own timer runs from
/// its accept.
#[tokio::test]
async fn at_the_handshake_bound_new_handshakes_wait_for_a_slot() {
    const HANDSHAKE_MS: u64 = 1_500;
    let limits = Limits {
        max_handshakes: 2,
        max_handshakes_per_ip: 2,
        ..Limits::default()
    };
    let server = Server::start(
        limits,
        Timeouts {
            handshake_ms: HANDSHAKE_MS,
            ..timeouts()
        },
    )
    .await;
    let a = tcp_from(loopback(1), server.addr).await;
    let held_since = Instant::now();
    let _b = tcp_from(loopback(1), server.addr).await;
    server
        .wait_for("both connections", |s| s.open_connections() == 2)
        .await;

    // (1) A slot freed by a client leaving.
    let (addr, client) = (server.addr, server.client.clone());
    let t = Instant::now();
    let waiting =
        tokio::spawn(async move { Client::connect_from(loopback(2), addr, &client).await });
    sleep(Duration::from_millis(400)).await;
    assert!(
        !waiting.is_finished(),
        "a handshake got through at the bound"
    );
    drop(a);
    let mut first = timeout(WAIT, waiting).await.unwrap().unwrap().unwrap();
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(380) && waited < Duration::from_millis(1_200),
        "{waited:?}"
    );
    first.send(b"one\n").await;
    assert_eq!(first.line().await, echoed("one"));

    // (2) Slots held until the handshake timeout: a new silent connection takes the freed
    // slot, and the next handshake waits until the first silent one (`_b`) is closed.
    let _c = tcp_from(loopback(1), server.addr).await;
    server
        .wait_for("three connections", |s| s.open_connections() == 3)
        .await;
    let t = Instant::now();
    let mut second = Client::connect_from(loopback(3), server.addr, &server.client)
        .await
        .unwrap();
    let done = held_since.elapsed();
    eprintln!(
        "handshakes at the bound: waited {waited:?} for a leaving client; {:?} for the \
         handshake timeout ({HANDSHAKE_MS} ms after the held connection's accept, done {done:?} after it)",
        t.elapsed()
    );
    assert!(
        done >= Duration::from_millis(HANDSHAKE_MS - 100)
            && done < Duration::from_millis(HANDSHAKE_MS + 1_000),
        "{done:?}"
    );
    assert!(server.stats.snapshot().handshake_failures >= 2);
    second.send(b"two\n").await;
    assert_eq!(second.line().await, echoed("two"));
}
