//! One TLS connection to a BTPS server: a writer task and a reader task around the NDJSON
//! stream, and the map of requests in flight by `id` (PROTOCOL.md §2.3, §2.4).
//!
//! Rules kept here:
//!
//! * a reply goes to the request whose `id` equals its `reqId`, and to no other; a reply
//!   whose `reqId` matches no request in flight (and none this connection gave up on) is a
//!   protocol violation: it is logged, the connection is closed and every request on it
//!   fails with [`ClientError::Protocol`];
//! * a reply without `reqId` (408 idle or read timeout, 413 line too long) fails every
//!   request in flight with that error, and the connection is closed;
//! * a reply line over the limit fails every request with [`ClientError::ReplyTooLong`]
//!   and closes the connection (framing is lost);
//! * a request that timed out is forgotten (its late reply is dropped quietly) and the
//!   connection takes no new requests; it closes once its other requests are answered;
//! * an idle connection (nothing in flight for the idle TTL) says `QUIT` and closes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use btps_types::json::{Object, Value, to_js_string};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::ServerAddr;
use crate::error::{ClientError, Result};
use crate::response::Response;
use crate::tls::handshake_error;
use crate::util;

/// The settings a connection needs.
#[derive(Clone, Debug)]
pub(crate) struct ConnSettings {
    pub(crate) connect_timeout: Duration,
    pub(crate) max_reply_bytes: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) idle_ttl: Duration,
}

/// How long a closing connection waits for the server's `bye` before dropping the socket.
const QUIT_GRACE: Duration = Duration::from_secs(2);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

type Waiter = oneshot::Sender<Result<Response>>;

struct State {
    /// Requests written (or about to be) and not yet answered, by `id`.
    pending: HashMap<String, Waiter>,
    /// Ids whose requests were given up (timed out or cancelled): their late replies are
    /// dropped without complaint.
    abandoned: HashSet<String>,
    /// Slots handed out by the pool and not yet given back.
    reserved: usize,
    last_used: Instant,
    /// Takes no new requests (timed out, closing).
    retired: bool,
    closed: bool,
}

struct Shared {
    id: u64,
    addr: String,
    settings: ConnSettings,
    state: Mutex<State>,
    closed_tx: watch::Sender<bool>,
    /// Wakes the writer to re-check idleness and retirement.
    wake: Notify,
    /// Wakes requests waiting in the pool for a free slot.
    pool_notify: Arc<Notify>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Closes the connection: every request in flight fails with `error`.
    fn close(&self, error: &ClientError) {
        let waiters: Vec<Waiter> = {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            st.closed = true;
            st.retired = true;
            st.abandoned.clear();
            st.pending.drain().map(|(_, w)| w).collect()
        };
        if !waiters.is_empty() {
            tracing::debug!(conn = self.id, addr = %self.addr, n = waiters.len(), error = %error, "failing requests of a closed connection");
        }
        for w in waiters {
            let _ = w.send(Err(error.clone()));
        }
        let _ = self.closed_tx.send(true);
        self.wake.notify_one();
        self.pool_notify.notify_waiters();
    }
}

/// A live connection. Dropping the last handle lets the writer say `QUIT` and close.
pub(crate) struct Connection {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Vec<u8>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.shared.id)
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects (TCP, then TLS with `addr`'s host as the server name) within the connect
    /// timeout and starts the reader and writer tasks.
    pub(crate) async fn open(
        addr: &ServerAddr,
        connector: &TlsConnector,
        settings: &ConnSettings,
        pool_notify: Arc<Notify>,
    ) -> Result<Arc<Self>> {
        let name = addr.to_string();
        let deadline = Instant::now() + settings.connect_timeout;
        let server_name = match &addr.host {
            btps_types::record::ServerHost::Domain(d) => ServerName::try_from(d.clone())
                .map_err(|e| ClientError::Config(format!("server name {d:?}: {e}")))?,
            btps_types::record::ServerHost::Ip(ip) => ServerName::IpAddress((*ip).into()),
        };
        let tcp = match timeout_at(
            deadline,
            TcpStream::connect((addr.connect_host().as_str(), addr.port)),
        )
        .await
        {
            Err(_) => {
                return Err(ClientError::Connect {
                    addr: name,
                    reason: format!("no connection within {:?}", settings.connect_timeout),
                });
            }
            Ok(Err(e)) => {
                return Err(ClientError::Connect {
                    addr: name,
                    reason: e.to_string(),
                });
            }
            Ok(Ok(tcp)) => tcp,
        };
        let _ = tcp.set_nodelay(true);
        let tls = match timeout_at(deadline, connector.connect(server_name, tcp)).await {
            Err(_) => {
                return Err(ClientError::Tls {
                    addr: name,
                    reason: format!("no handshake within {:?}", settings.connect_timeout),
                });
            }
            Ok(Err(e)) => return Err(handshake_error(&name, &e)),
            Ok(Ok(tls)) => tls,
        };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(conn = id, addr = %name, "connected");
        let (closed_tx, closed_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            id,
            addr: name,
            settings: settings.clone(),
            state: Mutex::new(State {
                pending: HashMap::new(),
                abandoned: HashSet::new(),
                reserved: 0,
                last_used: Instant::now(),
                retired: false,
                closed: false,
            }),
            closed_tx,
            wake: Notify::new(),
            pool_notify,
        });
        let (rd, wr) = tokio::io::split(tls);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(reader(
            shared.clone(),
            BufReader::with_capacity(64 * 1024, rd),
            closed_rx.clone(),
        ));
        tokio::spawn(writer(shared.clone(), wr, rx, closed_rx));
        Ok(Arc::new(Self { shared, tx }))
    }

    /// This connection's process-unique number.
    pub(crate) fn id(&self) -> u64 {
        self.shared.id
    }

    /// Whether the connection is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Free request slots (0 when retired or closed).
    pub(crate) fn free_slots(&self) -> usize {
        let st = self.shared.lock();
        if st.closed || st.retired {
            0
        } else {
            self.shared
                .settings
                .max_in_flight
                .saturating_sub(st.reserved)
        }
    }

    /// Takes a request slot, if one is free.
    pub(crate) fn try_reserve(self: &Arc<Self>) -> Option<Slot> {
        let mut st = self.shared.lock();
        if st.closed || st.retired || st.reserved >= self.shared.settings.max_in_flight {
            return None;
        }
        st.reserved += 1;
        st.last_used = Instant::now();
        Some(Slot { conn: self.clone() })
    }

    fn release(&self) {
        {
            let mut st = self.shared.lock();
            st.reserved = st.reserved.saturating_sub(1);
            st.last_used = Instant::now();
        }
        self.shared.wake.notify_one();
        self.shared.pool_notify.notify_waiters();
    }

    /// Registers `id` and queues its line. When the connection is already closed, the line
    /// comes back unwritten.
    fn submit(
        &self,
        id: &str,
        line: Vec<u8>,
    ) -> std::result::Result<oneshot::Receiver<Result<Response>>, Submit> {
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.shared.lock();
            if st.closed {
                return Err(Submit::Closed(line));
            }
            if st.pending.contains_key(id) || st.abandoned.contains(id) {
                return Err(Submit::Refused(ClientError::Invalid(format!(
                    "a request with id {id:?} is already in flight on this connection"
                ))));
            }
            st.pending.insert(id.to_owned(), tx);
            st.last_used = Instant::now();
        }
        if let Err(mpsc::error::SendError(line)) = self.tx.send(line) {
            self.shared.lock().pending.remove(id);
            return Err(Submit::Closed(line));
        }
        Ok(rx)
    }

    /// Gives up on request `id`: its late reply will be dropped. With `retire`, the
    /// connection takes no new requests (a timed-out connection is discarded, §2.4).
    fn abandon(&self, id: &str, retire: bool) {
        {
            let mut st = self.shared.lock();
            if st.pending.remove(id).is_some() && !st.closed {
                st.abandoned.insert(id.to_owned());
            }
            if retire && !st.retired {
                st.retired = true;
                tracing::debug!(conn = self.shared.id, addr = %self.shared.addr, "connection retired after a timeout");
            }
        }
        self.shared.wake.notify_one();
        self.shared.pool_notify.notify_waiters();
    }

    fn closed_error(&self) -> ClientError {
        ClientError::ConnectionClosed {
            addr: self.shared.addr.clone(),
        }
    }
}

/// A request slot on a connection; given back when dropped.
pub(crate) struct Slot {
    conn: Arc<Connection>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.conn.release();
    }
}

impl Slot {
    /// The connection's number.
    pub(crate) fn connection_id(&self) -> u64 {
        self.conn.id()
    }

    /// Writes `line` (one JSON object and its LF) for request `id` and waits up to
    /// `wait` for the reply whose `reqId` is `id`. [`Sent::NotWritten`] gives the line
    /// back when the connection closed before it could be queued (it never left).
    pub(crate) async fn request(&self, id: &str, line: Vec<u8>, wait: Duration) -> Sent {
        let rx = match self.conn.submit(id, line) {
            Ok(rx) => rx,
            Err(Submit::Closed(line)) => return Sent::NotWritten(line),
            Err(Submit::Refused(e)) => return Sent::Done(Err(e)),
        };
        let mut guard = Abandon {
            conn: &self.conn,
            id,
            armed: true,
        };
        let result = timeout(wait, rx).await;
        guard.armed = false;
        Sent::Done(match result {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(self.conn.closed_error()),
            Err(_) => {
                self.conn.abandon(id, true);
                Err(ClientError::Timeout {
                    addr: self.conn.shared.addr.clone(),
                    after: wait,
                })
            }
        })
    }
}

/// Why a line was not queued on a connection.
enum Submit {
    /// The connection is closed; the line, unwritten.
    Closed(Vec<u8>),
    /// The request cannot go on this connection.
    Refused(ClientError),
}

/// The outcome of [`Slot::request`].
pub(crate) enum Sent {
    /// The request was written (or refused before writing); this is its outcome.
    Done(Result<Response>),
    /// The connection closed before the line could be queued: it never left.
    NotWritten(Vec<u8>),
}

/// Forgets a request whose caller stopped waiting (its future was dropped).
struct Abandon<'a> {
    conn: &'a Connection,
    id: &'a str,
    armed: bool,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.conn.abandon(self.id, false);
        }
    }
}

enum LineError {
    TooLong,
    Closed,
}

/// Reads one line without its LF (and a CR before it) into `buf`. `Ok(false)` at a clean
/// end of stream.
async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::result::Result<bool, LineError> {
    buf.clear();
    loop {
        let available = r.fill_buf().await.map_err(|_| LineError::Closed)?;
        if available.is_empty() {
            return if buf.is_empty() {
                Ok(false)
            } else {
                Err(LineError::Closed)
            };
        }
        if let Some(pos) = available.iter().position(|b| *b == b'\n') {
            if buf.len() + pos > max.saturating_add(1) {
                return Err(LineError::TooLong);
            }
            buf.extend_from_slice(&available[..pos]);
            r.consume(pos + 1);
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            if buf.len() > max {
                return Err(LineError::TooLong);
            }
            return Ok(true);
        }
        let n = available.len();
        if buf.len() + n > max.saturating_add(1) {
            return Err(LineError::TooLong);
        }
        buf.extend_from_slice(available);
        r.consume(n);
    }
}

async fn reader(
    shared: Arc<Shared>,
    mut rd: BufReader<ReadHalf<TlsStream<TcpStream>>>,
    mut closed_rx: watch::Receiver<bool>,
) {
    let max = shared.settings.max_reply_bytes;
    let mut buf = Vec::new();
    loop {
        let read = tokio::select! {
            biased;
            () = wait_closed(&mut closed_rx) => return,
            read = read_line(&mut rd, &mut buf, max) => read,
        };
        match read {
            Ok(false) | Err(LineError::Closed) => {
                let error = ClientError::ConnectionClosed {
                    addr: shared.addr.clone(),
                };
                shared.close(&error);
                return;
            }
            Err(LineError::TooLong) => {
                tracing::warn!(conn = shared.id, addr = %shared.addr, limit = max, "reply line too long: closing the connection");
                shared.close(&ClientError::ReplyTooLong { limit: max });
                return;
            }
            Ok(true) => {
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if let Err(violation) = dispatch(&shared, &buf) {
                    tracing::error!(conn = shared.id, addr = %shared.addr, error = %violation, "protocol violation: closing the connection");
                    shared.close(&violation);
                    return;
                }
            }
        }
    }
}

/// Hands one reply line to its request. `Err` is a violation that closes the connection.
fn dispatch(shared: &Shared, line: &[u8]) -> Result<()> {
    let max = shared.settings.max_reply_bytes;
    let reply = match Response::from_line(line, max) {
        Ok(reply) => reply,
        Err(error) => {
            // A malformed reply that still names a request in flight fails that request
            // only; anything else cannot be attributed.
            let req_id = btps_types::json::parse_str(&String::from_utf8_lossy(line))
                .ok()
                .and_then(|p| match p.value {
                    Value::Object(o) => o.get_str("reqId").map(str::to_owned),
                    _ => None,
                });
            let (waiter, abandoned) = req_id.as_deref().map_or((None, false), |id| {
                let mut st = shared.lock();
                (st.pending.remove(id), st.abandoned.remove(id))
            });
            return match waiter {
                Some(w) => {
                    let _ = w.send(Err(error));
                    Ok(())
                }
                None if abandoned => Ok(()),
                None => Err(error),
            };
        }
    };
    match reply.req_id() {
        Some(id) => {
            let waiter = {
                let mut st = shared.lock();
                match st.pending.remove(id) {
                    Some(w) => Some(w),
                    None if st.abandoned.remove(id) => {
                        tracing::debug!(
                            conn = shared.id,
                            req_id = id,
                            "late reply to an abandoned request dropped"
                        );
                        return Ok(());
                    }
                    None => None,
                }
            };
            match waiter {
                Some(w) => {
                    let _ = w.send(Ok(reply));
                    Ok(())
                }
                None => Err(ClientError::Protocol(format!(
                    "reply with reqId {id:?}, which matches no request in flight"
                ))),
            }
        }
        None if !reply.ok() => {
            // A connection-level error (408 timeout, 413 line too long): the server
            // closes; every request in flight fails with it.
            tracing::debug!(
                conn = shared.id,
                code = reply.code(),
                "error reply without reqId"
            );
            shared.close(&reply.rejection());
            Ok(())
        }
        None => Err(ClientError::Protocol(
            "success reply without reqId cannot be matched to a request".into(),
        )),
    }
}

/// Resolves once the connection is closed.
async fn wait_closed(rx: &mut watch::Receiver<bool>) {
    loop {
        let closed = *rx.borrow_and_update();
        if closed || rx.changed().await.is_err() {
            return;
        }
    }
}

/// The `QUIT` control artifact (PROTOCOL.md §3.6).
fn quit_line(id: &str) -> Vec<u8> {
    let quit = Object::with_capacity(4)
        .with("version", "1.0.0")
        .with("id", id)
        .with("issuedAt", util::now().to_datetime_string())
        .with("action", "QUIT");
    let mut line = to_js_string(&Value::Object(quit)).into_bytes();
    line.push(b'\n');
    line
}

enum Next {
    /// Keep serving; re-check at this instant.
    Serve(Instant),
    /// Idle or retired with nothing in flight: say `QUIT` and close.
    Quit,
}

fn next_step(shared: &Shared) -> Next {
    let mut st = shared.lock();
    let quiet = st.reserved == 0 && st.pending.is_empty();
    let idle_until = st.last_used + shared.settings.idle_ttl;
    if quiet && (st.retired || Instant::now() >= idle_until) {
        st.retired = true;
        Next::Quit
    } else {
        Next::Serve(idle_until)
    }
}

async fn writer(
    shared: Arc<Shared>,
    mut wr: WriteHalf<TlsStream<TcpStream>>,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    mut closed_rx: watch::Receiver<bool>,
) {
    let mut batch = Vec::new();
    let quit = loop {
        let until = match next_step(&shared) {
            Next::Quit => break true,
            Next::Serve(until) => until,
        };
        tokio::select! {
            biased;
            () = wait_closed(&mut closed_rx) => break false,
            line = rx.recv() => {
                let Some(line) = line else {
                    // Every handle is gone (slots hold one, so nothing is in flight):
                    // nothing more will be sent.
                    break true;
                };
                batch.clear();
                batch.extend_from_slice(&line);
                while let Ok(more) = rx.try_recv() {
                    batch.extend_from_slice(&more);
                }
                let written = async {
                    wr.write_all(&batch).await?;
                    wr.flush().await
                };
                if let Err(e) = written.await {
                    tracing::debug!(conn = shared.id, error = %e, "write failed");
                    shared.close(&ClientError::ConnectionClosed { addr: shared.addr.clone() });
                    break false;
                }
            }
            () = shared.wake.notified() => {}
            () = sleep_until(until) => {}
        }
    };
    if quit {
        // Graceful close: QUIT, close_notify, then wait briefly for `bye` and the end.
        let id = util::new_id().unwrap_or_else(|_| format!("quit-{}", shared.id));
        shared.lock().abandoned.insert(id.clone());
        tracing::debug!(conn = shared.id, addr = %shared.addr, "idle: QUIT");
        let _ = timeout(QUIT_GRACE, async {
            wr.write_all(&quit_line(&id)).await?;
            wr.flush().await?;
            wr.shutdown().await
        })
        .await;
        let _ = timeout(QUIT_GRACE, wait_closed(&mut closed_rx)).await;
        shared.close(&ClientError::ConnectionClosed {
            addr: shared.addr.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<std::result::Result<Vec<u8>, &'static str>> {
        let mut r = BufReader::with_capacity(3, input);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        loop {
            match read_line(&mut r, &mut buf, max).await {
                Ok(true) => out.push(Ok(buf.clone())),
                Ok(false) => return out,
                Err(LineError::TooLong) => {
                    out.push(Err("long"));
                    return out;
                }
                Err(LineError::Closed) => {
                    out.push(Err("closed"));
                    return out;
                }
            }
        }
    }

    #[tokio::test]
    async fn framing() {
        assert_eq!(
            lines(b"{\"a\":1}\r\n\n{}\n", 10).await,
            vec![Ok(b"{\"a\":1}".to_vec()), Ok(vec![]), Ok(b"{}".to_vec())]
        );
        assert_eq!(
            lines(b"0123456789\n", 10).await,
            vec![Ok(b"0123456789".to_vec())]
        );
        assert_eq!(
            lines(b"0123456789\r\n", 10).await,
            vec![Ok(b"0123456789".to_vec())]
        );
        assert_eq!(lines(b"0123456789a\n", 10).await, vec![Err("long")]);
        assert_eq!(lines(b"0123456789abcdef", 10).await, vec![Err("long")]);
        assert_eq!(
            lines(b"{}\n{\"a\"", 10).await,
            vec![Ok(b"{}".to_vec()), Err("closed")]
        );
    }
}
