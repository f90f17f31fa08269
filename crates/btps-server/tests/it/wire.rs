//! A real server under test (the pipeline behind the TLS transport on 127.0.0.1) and a
//! line client over rustls.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use btps_server::config::{Limits, Timeouts};
use btps_server::{LineHandler, Pipeline, Shutdown, TlsReloader, TlsSettings, Transport};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const WAIT: Duration = Duration::from_secs(20);

/// A running server.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) shutdown: Shutdown,
    client: Arc<rustls::ClientConfig>,
    task: tokio::task::JoinHandle<Result<(), btps_server::TransportError>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub(crate) async fn start(pipeline: Arc<Pipeline>) -> Self {
        Self::start_with(pipeline, Limits::default(), Timeouts::default()).await
    }

    pub(crate) async fn start_with(
        pipeline: Arc<Pipeline>,
        limits: Limits,
        timeouts: Timeouts,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsReloader::load(TlsSettings {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            self_signed: true,
            self_signed_names: vec!["localhost".into()],
        })
        .unwrap();
        let client = client_config(&dir.path().join("cert.pem"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handler: Arc<dyn LineHandler> = pipeline;
        let transport = Transport::new(tls, handler, limits, timeouts);
        let shutdown = Shutdown::new();
        let task = tokio::spawn(transport.serve(listener, shutdown.clone()));
        Self {
            addr,
            shutdown,
            client,
            task,
            _dir: dir,
        }
    }

    pub(crate) async fn connect(&self) -> TestClient {
        TestClient::connect(self.addr, &self.client).await
    }

    /// A client connecting from `source` (another loopback address: 127.0.0.2, …).
    pub(crate) async fn connect_from(&self, source: IpAddr) -> TestClient {
        TestClient::over(tcp_from(source, self.addr).await, &self.client).await
    }

    /// Triggers a graceful shutdown and waits for it.
    pub(crate) async fn stop(self) {
        self.shutdown.trigger();
        timeout(WAIT, self.task).await.unwrap().unwrap().unwrap();
    }
}

/// A TCP connection to `addr` from `source` (any port).
pub(crate) async fn tcp_from(source: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

/// A client configuration trusting the certificate(s) in `cert_pem`.
pub(crate) fn client_config(cert_pem: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A BTPS line client.
pub(crate) struct TestClient {
    rd: BufReader<ReadHalf<TlsStream<TcpStream>>>,
    wr: WriteHalf<TlsStream<TcpStream>>,
    closed: bool,
}

impl TestClient {
    /// Connects to `addr` over TLS, checking the certificate against `config`.
    pub(crate) async fn connect(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> Self {
        Self::over(TcpStream::connect(addr).await.unwrap(), config).await
    }

    async fn over(tcp: TcpStream, config: &Arc<rustls::ClientConfig>) -> Self {
        let tls = timeout(
            WAIT,
            TlsConnector::from(Arc::clone(config))
                .connect(ServerName::try_from("localhost").unwrap(), tcp),
        )
        .await
        .expect("handshake in time")
        .expect("handshake");
        let (rd, wr) = tokio::io::split(tls);
        Self {
            rd: BufReader::new(rd),
            wr,
            closed: false,
        }
    }

    /// Writes raw bytes.
    pub(crate) async fn write(&mut self, bytes: &[u8]) {
        self.wr.write_all(bytes).await.unwrap();
        self.wr.flush().await.unwrap();
    }

    /// The next reply line (without LF), or `None` when the server closed.
    pub(crate) async fn read_line(&mut self) -> Option<String> {
        let mut text = String::new();
        match timeout(WAIT, self.rd.read_line(&mut text))
            .await
            .expect("reply in time")
        {
            Ok(0) | Err(_) => {
                self.closed = true;
                None
            }
            Ok(_) => Some(text.trim_end_matches('\n').to_owned()),
        }
    }

    /// Writes `lines` (pipelined, one write) and reads one reply per non-blank line.
    pub(crate) async fn send_lines(&mut self, lines: &[&str]) -> Vec<String> {
        let mut bytes = Vec::new();
        for l in lines {
            bytes.extend_from_slice(l.as_bytes());
            bytes.push(b'\n');
        }
        self.write(&bytes).await;
        let mut out = Vec::new();
        for l in lines {
            if l.trim().is_empty() {
                continue;
            }
            match self.read_line().await {
                Some(r) => out.push(r),
                None => break,
            }
        }
        out
    }

    /// Whether the server has closed the connection (waits briefly for the close).
    pub(crate) async fn is_closed(&mut self) -> bool {
        if self.closed {
            return true;
        }
        let mut text = String::new();
        match timeout(Duration::from_millis(300), self.rd.read_line(&mut text)).await {
            Ok(Ok(0) | Err(_)) => {
                self.closed = true;
                true
            }
            Ok(Ok(_)) => panic!("unexpected extra reply: {text}"),
            Err(_) => false,
        }
    }
}
