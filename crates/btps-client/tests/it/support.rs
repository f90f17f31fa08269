//! Test helpers: certificates (rcgen), a scripted BTPS server over real TLS that can be
//! told to misbehave, the vectors' keys and DNS served by a real authoritative DNS server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use btps_client::{Backoff, Client, ClientConfig, RetryPolicy, ServerAddr, TlsTrust};
use btps_crypto::{KeyPair, sign_in_place};
use btps_dns::{CacheConfig, DnsCache, StaticTable};
use btps_test_support::dns_server::TestServer as DnsServer;
use btps_types::json::{Object, Value, parse_str, to_js_string};
use btps_types::signing;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The vectors directory.
pub(crate) fn vectors_dir() -> PathBuf {
    std::env::var_os("BTPS_VECTORS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
        PathBuf::from,
    )
}

/// A key pair of the vectors (`keys/<name>-private.pem`).
pub(crate) fn vector_key(name: &str) -> KeyPair {
    let pem =
        std::fs::read_to_string(vectors_dir().join(format!("keys/{name}-private.pem"))).unwrap();
    KeyPair::from_pem(&pem).unwrap()
}

/// A public key PEM of the vectors.
pub(crate) fn vector_public_pem(name: &str) -> String {
    std::fs::read_to_string(vectors_dir().join(format!("keys/{name}-public.pem"))).unwrap()
}

/// A real DNS server serving the vectors' `dns.json` (zone `test.`), and a cache over it.
pub(crate) async fn vector_dns() -> (DnsServer, DnsCache) {
    let server = DnsServer::start().await;
    let table = StaticTable::load(&vectors_dir().join("dns.json")).unwrap();
    for (name, records) in table.iter() {
        for record in records {
            server.add_txt(name, 300, record).await;
        }
    }
    let cache = DnsCache::with_config(server.resolver(), CacheConfig::default());
    (server, cache)
}

/// A test CA and a server certificate it issued.
pub(crate) struct Pki {
    /// The CA certificate, PEM.
    pub(crate) ca_pem: String,
    /// The server certificate, DER.
    pub(crate) leaf: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Pki {
    /// A CA and a server certificate for `names` (DNS names or IP addresses).
    pub(crate) fn new(names: &[&str]) -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "btps test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let leaf = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        Self {
            ca_pem: ca.pem(),
            leaf: leaf.der().clone(),
            key_der: leaf_key.serialize_der(),
        }
    }

    fn acceptor(&self) -> TlsAcceptor {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![self.leaf.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .unwrap();
        TlsAcceptor::from(Arc::new(config))
    }
}

/// What the scripted server does for one received line.
pub(crate) enum Act {
    /// Writes this line (an LF is added).
    Reply(String),
    /// Writes these bytes as they are.
    Raw(Vec<u8>),
    /// Waits.
    Sleep(Duration),
    /// Closes the connection.
    Close,
}

/// Per-connection behaviour: called with every received line (parsed).
pub(crate) type Behaviour = Box<dyn FnMut(&Object) -> Vec<Act> + Send>;

/// A BTPS server over real TLS on 127.0.0.1 that follows a script. It answers `QUIT`
/// with `bye` and closes by itself, counts handshakes and records every line per
/// connection.
pub(crate) struct ScriptServer {
    port: u16,
    handshakes: Arc<AtomicUsize>,
    lines: Arc<Mutex<Vec<Vec<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptServer {
    /// Starts a server with certificate `pki`; `behaviour(n)` scripts connection `n`
    /// (0-based, in accept order).
    pub(crate) async fn start(
        pki: &Pki,
        behaviour: impl Fn(usize) -> Behaviour + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = pki.acceptor();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let lines: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
        let behaviour = Arc::new(behaviour);
        let task = {
            let handshakes = handshakes.clone();
            let lines = lines.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let acceptor = acceptor.clone();
                    let handshakes = handshakes.clone();
                    let lines = lines.clone();
                    let behaviour = behaviour.clone();
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let index = {
                            let mut l = lines.lock().unwrap();
                            l.push(Vec::new());
                            l.len() - 1
                        };
                        handshakes.fetch_add(1, Ordering::SeqCst);
                        serve(tls, index, behaviour(index), lines).await;
                    });
                }
            })
        };
        Self {
            port,
            handshakes,
            lines,
            task,
        }
    }

    /// Its address as `localhost:<port>` (the certificate's name).
    pub(crate) fn addr(&self) -> ServerAddr {
        format!("localhost:{}", self.port).parse().unwrap()
    }

    /// Its address as `127.0.0.1:<port>`.
    pub(crate) fn ip_addr(&self) -> ServerAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }

    /// The port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// TLS handshakes completed.
    pub(crate) fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// The lines received, per connection.
    pub(crate) fn lines(&self) -> Vec<Vec<String>> {
        self.lines.lock().unwrap().clone()
    }

    /// How many received lines carry `"id":"<id>"`, per connection.
    pub(crate) fn count_id(&self, id: &str) -> Vec<usize> {
        let needle = format!("\"id\":\"{id}\"");
        self.lines()
            .iter()
            .map(|c| c.iter().filter(|l| l.contains(&needle)).count())
            .collect()
    }
}

async fn serve(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    index: usize,
    mut behaviour: Behaviour,
    lines: Arc<Mutex<Vec<Vec<String>>>>,
) {
    let (rd, mut wr) = tokio::io::split(tls);
    let mut rd = BufReader::new(rd);
    let mut line = String::new();
    loop {
        line.clear();
        match rd.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = line.trim_end().to_owned();
        lines.lock().unwrap()[index].push(text.clone());
        let Some(obj) = parse_str(&text)
            .ok()
            .and_then(|p| p.value.as_object().cloned())
        else {
            continue;
        };
        let acts = if obj.get_str("action") == Some("QUIT") {
            vec![
                Act::Reply(reply_to(&obj, 200, "bye", None, None)),
                Act::Close,
            ]
        } else {
            behaviour(&obj)
        };
        for act in acts {
            match act {
                Act::Reply(mut text) => {
                    text.push('\n');
                    if wr.write_all(text.as_bytes()).await.is_err() {
                        return;
                    }
                    let _ = wr.flush().await;
                }
                Act::Raw(bytes) => {
                    if wr.write_all(&bytes).await.is_err() {
                        return;
                    }
                    let _ = wr.flush().await;
                }
                Act::Sleep(d) => tokio::time::sleep(d).await,
                Act::Close => {
                    let _ = wr.shutdown().await;
                    return;
                }
            }
        }
    }
}

/// A reply envelope: `reqId` when given; `errorCode` for errors.
pub(crate) fn reply(
    req_id: Option<&str>,
    code: u16,
    message: &str,
    error_code: Option<&str>,
    document: Option<Value>,
) -> Object {
    let ok = code == 200;
    let mut status = Object::new()
        .with("ok", ok)
        .with("code", u32::from(code))
        .with("message", message);
    if let Some(c) = error_code {
        status.insert("errorCode", c);
    }
    let mut r = Object::new()
        .with("version", "1.0.0")
        .with("status", status)
        .with("id", format!("reply-{}", req_id.unwrap_or("none")))
        .with("issuedAt", "2025-07-01T09:30:00.000Z");
    if let Some(id) = req_id {
        r.insert("reqId", id);
    }
    r.insert("type", if ok { "btps_response" } else { "btps_error" });
    if let Some(d) = document {
        r.insert("document", d);
    }
    r
}

/// A reply line to `request`.
pub(crate) fn reply_to(
    request: &Object,
    code: u16,
    message: &str,
    error_code: Option<&str>,
    document: Option<Value>,
) -> String {
    line(&reply(
        request.get_str("id"),
        code,
        message,
        error_code,
        document,
    ))
}

/// A success reply echoing the request's id in `document.echo`.
pub(crate) fn echo(request: &Object) -> String {
    let id = request.get_str("id").unwrap_or_default();
    reply_to(
        request,
        200,
        "success",
        None,
        Some(Value::Object(Object::new().with("echo", id))),
    )
}

/// Signs a reply as `signed_by` at `selector` with `key` (`encryption` left out).
pub(crate) fn sign_reply(mut reply: Object, signed_by: &str, key: &KeyPair) -> Object {
    reply.insert("signedBy", signed_by);
    reply.insert("selector", "btps1");
    sign_in_place(&mut reply, signing::RESPONSE, key).unwrap();
    reply
}

pub(crate) fn line(obj: &Object) -> String {
    to_js_string(&Value::Object(obj.clone()))
}

/// A request object (a `PING` control artifact) with this id.
pub(crate) fn ping(id: &str) -> Object {
    Object::new()
        .with("version", "1.0.0")
        .with("id", id)
        .with("issuedAt", "2025-07-01T09:30:00.000Z")
        .with("action", "PING")
}

/// Fast retries and short timeouts for tests, trusting `pki`'s CA.
pub(crate) fn config(pki: &Pki) -> ClientConfig {
    let fast = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
        jitter: 0.5,
    };
    ClientConfig {
        tls: TlsTrust::CaPem(pki.ca_pem.clone().into_bytes()),
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 3,
            backoff: fast,
        },
        reconnect: fast,
        ..ClientConfig::default()
    }
}

/// A client with [`config`] and a DNS cache over an empty table (for tests that need no
/// DNS).
pub(crate) fn client(config: ClientConfig) -> Client {
    Client::new(config, DnsCache::new(StaticTable::new())).unwrap()
}

/// An address nothing listens on.
pub(crate) async fn dead_addr() -> ServerAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = l.local_addr().unwrap();
    drop(l);
    format!("localhost:{}", addr.port()).parse().unwrap()
}
