//! A real authoritative DNS server (hickory-server) on 127.0.0.1, in process: an in-memory
//! zone `test.` behind a handler that counts queries and can be told to misbehave. Tests of
//! btps-dns and btps-server resolve through it with a real `HickoryResolver`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use btps_dns::{HickoryConfig, HickoryResolver};
use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType, RrKey};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, MessageResponseBuilder, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

/// How the server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// From the zone.
    Normal,
    /// SERVFAIL to everything.
    ServFail,
    /// REFUSED to everything.
    Refused,
    /// No answer at all (the client times out).
    Silent,
}

#[derive(Default)]
struct Control {
    queries: AtomicUsize,
    tcp_queries: AtomicUsize,
    per_name: Mutex<HashMap<String, usize>>,
    mode: Mutex<Option<Mode>>,
    delay_ms: AtomicU32,
}

struct Handler {
    catalog: Catalog,
    control: Arc<Control>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let c = &self.control;
        c.queries.fetch_add(1, Ordering::SeqCst);
        if request.protocol() == Protocol::Tcp {
            c.tcp_queries.fetch_add(1, Ordering::SeqCst);
        }
        if let Ok(info) = request.request_info() {
            let name = info.query.name().to_string().to_ascii_lowercase();
            let name = name.trim_end_matches('.').to_owned();
            *c.per_name.lock().unwrap().entry(name).or_default() += 1;
        }
        let delay = c.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(u64::from(delay))).await;
        }
        let mode = c.mode.lock().unwrap().unwrap_or(Mode::Normal);
        let code = match mode {
            Mode::Normal => {
                return self
                    .catalog
                    .handle_request::<R, T>(request, response_handle)
                    .await;
            }
            Mode::Silent => {
                let mut metadata = Metadata::new(
                    request.metadata.id,
                    MessageType::Response,
                    request.metadata.op_code,
                );
                metadata.response_code = ResponseCode::ServFail;
                return ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                });
            }
            Mode::ServFail => ResponseCode::ServFail,
            Mode::Refused => ResponseCode::Refused,
        };
        let response =
            MessageResponseBuilder::new(&request.queries, None).error_msg(&request.metadata, code);
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => panic!("test server could not answer: {e}"),
        }
    }
}

/// The zone every test server serves.
pub const ZONE: &str = "test";

/// A running server for the zone `test.`; stops when dropped.
pub struct TestServer {
    /// The UDP and TCP address it answers on.
    pub addr: SocketAddr,
    zone: Arc<InMemoryZoneHandler>,
    control: Arc<Control>,
    serial: AtomicU32,
    server: Server<Handler>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.shutdown_token().cancel();
    }
}

fn name(n: &str) -> Name {
    let fqdn = if n.ends_with('.') {
        n.to_owned()
    } else {
        format!("{n}.")
    };
    Name::from_ascii(fqdn).unwrap()
}

impl TestServer {
    /// Starts a server with an empty `test.` zone (SOA minimum `negative_ttl`).
    pub async fn start_with_negative_ttl(negative_ttl: u32) -> Self {
        let origin = name(ZONE);
        let mut zone =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let soa = SOA::new(
            name("ns.test"),
            name("hostmaster.test"),
            1,
            3600,
            600,
            86400,
            negative_ttl,
        );
        assert!(zone.upsert_mut(Record::from_rdata(origin.clone(), 3600, RData::SOA(soa)), 1));
        let zone = Arc::new(zone);
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![zone.clone()]);
        let control = Arc::new(Control::default());
        let handler = Handler {
            catalog,
            control: control.clone(),
        };
        let mut server = Server::new(handler);
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().unwrap();
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64);
        Self {
            addr,
            zone,
            control,
            serial: AtomicU32::new(2),
            server,
        }
    }

    /// Starts a server with an empty `test.` zone (SOA minimum 30 s).
    pub async fn start() -> Self {
        Self::start_with_negative_ttl(30).await
    }

    fn next_serial(&self) -> u32 {
        self.serial.fetch_add(1, Ordering::SeqCst)
    }

    /// Adds one TXT record made of these character-strings at `owner`.
    pub async fn add_txt_strings(&self, owner: &str, ttl: u32, strings: &[&[u8]]) {
        let txt = TXT::from_bytes(strings.to_vec());
        let ok = self
            .zone
            .upsert(
                Record::from_rdata(name(owner), ttl, RData::TXT(txt)),
                self.next_serial(),
            )
            .await;
        assert!(ok, "insert {owner}");
    }

    /// Adds one TXT record at `owner`, split into 255-byte character-strings.
    pub async fn add_txt(&self, owner: &str, ttl: u32, text: &str) {
        let parts = btps_types::record::split_character_strings(text, 255);
        let parts: Vec<&[u8]> = parts.iter().map(|s| s.as_bytes()).collect();
        self.add_txt_strings(owner, ttl, &parts).await;
    }

    /// Adds an A record (so that the name exists without TXT: NODATA).
    pub async fn add_a(&self, owner: &str, ttl: u32) {
        let ok = self
            .zone
            .upsert(
                Record::from_rdata(name(owner), ttl, RData::A(A::new(127, 0, 0, 1))),
                self.next_serial(),
            )
            .await;
        assert!(ok);
    }

    /// Removes every TXT record at `owner`.
    pub async fn remove_txt(&self, owner: &str) {
        let key = RrKey::new(LowerName::new(&name(owner)), RecordType::TXT);
        let removed = self.zone.records_mut().await.remove(&key);
        assert!(removed.is_some(), "no TXT at {owner}");
    }

    /// Replaces the TXT records at `owner` with one record.
    pub async fn replace_txt(&self, owner: &str, ttl: u32, text: &str) {
        self.remove_txt(owner).await;
        self.add_txt(owner, ttl, text).await;
    }

    /// Changes how it answers from now on.
    pub fn set_mode(&self, mode: Mode) {
        *self.control.mode.lock().unwrap() = Some(mode);
    }

    /// Delays every answer by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.control
            .delay_ms
            .store(u32::try_from(delay.as_millis()).unwrap(), Ordering::SeqCst);
    }

    /// Queries received (UDP and TCP).
    pub fn queries(&self) -> usize {
        self.control.queries.load(Ordering::SeqCst)
    }

    /// Queries received over TCP.
    pub fn tcp_queries(&self) -> usize {
        self.control.tcp_queries.load(Ordering::SeqCst)
    }

    /// Queries received for `owner`.
    pub fn queries_for(&self, owner: &str) -> usize {
        self.control
            .per_name
            .lock()
            .unwrap()
            .get(&owner.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// A resolver that asks only this server (short timeout, one attempt).
    pub fn resolver(&self) -> HickoryResolver {
        HickoryResolver::new(&self.config()).unwrap()
    }

    /// The resolver settings for this server.
    pub fn config(&self) -> HickoryConfig {
        let mut config = HickoryConfig::with_nameservers([self.addr]);
        config.timeout = Duration::from_millis(500);
        config.attempts = 1;
        config
    }
}

/// A UDP socket and a TCP listener on the same random port of 127.0.0.1.
async fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
            return (udp, tcp);
        }
    }
    panic!("no free UDP+TCP port pair on 127.0.0.1");
}

/// A UDP socket that receives queries and never answers (nothing listens on TCP): its
/// address makes every query time out. Keep the socket alive for the test.
pub async fn silent_socket() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}
