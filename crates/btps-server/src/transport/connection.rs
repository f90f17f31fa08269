//! One connection (PROTOCOL.md §2.3, §2.4): the TLS handshake, then a reader that frames
//! lines and starts one handler task per line, and a writer that writes the replies in
//! request order. Both run in the connection's task; dropping that task (end of the
//! shutdown grace) drops the socket and aborts the handler tasks.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::framing::{Frame, LineFramer};
use super::limits::{BufferedBytes, ByteBudget, ConnectionGuard, HandshakeGuard};
use super::shutdown::Shutdown;
use super::stats::TransportStats;
use super::tls::TlsReloader;
use crate::config::{Limits, Timeouts};
use crate::handler::{Handled, LineHandler, Peer, TransportEvent};

/// Largest single read, in bytes.
const READ_CHUNK: usize = 16 * 1024;

/// How long a closing connection keeps reading (and discarding) what the client still
/// sends, so that unread input does not turn the close into a reset that could destroy the
/// last reply before the client reads it.
const LINGER: Duration = Duration::from_secs(1);

/// What all connections share.
pub(crate) struct Shared {
    pub(crate) tls: TlsReloader,
    pub(crate) handler: Arc<dyn LineHandler>,
    pub(crate) limits: Limits,
    pub(crate) timeouts: Timeouts,
    pub(crate) stats: Arc<TransportStats>,
    pub(crate) shutdown: Shutdown,
    /// Concurrent TLS handshakes.
    pub(crate) handshakes: Arc<Semaphore>,
    /// Process-wide budget of buffered, not yet processed request bytes.
    pub(crate) budget: Arc<ByteBudget>,
}

/// Handshake, then serve lines until the connection ends. `handshake_place` is the
/// address's place among its concurrent handshakes, given back when the handshake ends.
///
/// The connection's task keeps the memory of its largest state for as long as it lives, so
/// the handshake (rustls' handshake state, the timeout) runs in its own allocation, freed
/// when it completes: an idle connection holds only the serving state.
pub(crate) async fn run(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: Peer,
    guard: ConnectionGuard,
    handshake_place: HandshakeGuard,
) {
    let _ = tcp.set_nodelay(true);
    let Some(stream) = Box::pin(handshake(&shared, tcp, peer, handshake_place)).await else {
        shared.stats.handshake_failed();
        return;
    };
    let (rd, wr) = tokio::io::split(stream);
    serve_stream(&shared, rd, wr, peer).await;
    drop(guard);
}

/// The TLS handshake, within the handshake timeout (which covers the wait for a slot);
/// `_place` (the address's place among its handshakes) is given back when it ends.
async fn handshake(
    shared: &Shared,
    tcp: TcpStream,
    peer: Peer,
    _place: HandshakeGuard,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let acceptor = TlsAcceptor::from(shared.tls.current());
    let tls = async {
        // Queue for a handshake slot; the handshake timeout covers the wait.
        let _slot = shared.handshakes.acquire().await.ok()?;
        match acceptor.accept(tcp).await {
            Ok(stream) => Some(stream),
            Err(e) => {
                debug!(connection = peer.connection, error = %e, "TLS handshake failed");
                None
            }
        }
    };
    let handshake_ms = Duration::from_millis(shared.timeouts.handshake_ms);
    timeout(handshake_ms, tls).await.ok().flatten()
}

/// A queued reply, in request order.
enum Item {
    /// A handler task and the in-flight slot it occupies until its reply is written.
    Request {
        task: Task,
        slot: OwnedSemaphorePermit,
    },
    /// A transport reply; the connection closes after it.
    Final(Vec<u8>),
}

/// A handler task, aborted when dropped unwritten (connection gone).
struct Task(JoinHandle<Handled>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Signals from the handler tasks and the writer to the reader.
#[derive(Default)]
struct Signals {
    /// A handler answered `close` (QUIT): stop reading.
    quit: Notify,
    /// The writer freed an in-flight slot.
    written: Notify,
}

/// Why the reader stopped.
#[derive(Debug)]
enum ReadEnd {
    Eof,
    Error,
    Quit,
    Shutdown,
    WriterGone,
    TooLong,
    Timeout,
}

/// Why the writer stopped.
#[derive(Debug, PartialEq, Eq)]
enum WriteEnd {
    /// All replies written (or the closing one): close cleanly.
    Done,
    /// The socket failed or timed out, or a handler task failed: just drop.
    Broken,
}

/// Serves the two halves of a connection. It takes them split (rather than the stream): an
/// argument of an `async fn` keeps its place in the future for the future's whole life.
async fn serve_stream<R, W>(shared: &Arc<Shared>, mut rd: R, mut wr: W, peer: Peer)
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let signals = Arc::new(Signals::default());
    let slots = Arc::new(Semaphore::new(shared.limits.max_in_flight));
    let (read_end, write_end) = tokio::join!(
        read_loop(&mut rd, shared, peer, tx, &signals, &slots),
        write_loop(&mut wr, shared, rx, &signals),
    );
    debug!(
        connection = peer.connection,
        ?read_end,
        ?write_end,
        "connection ends"
    );
    if write_end == WriteEnd::Done {
        let write_ms = Duration::from_millis(shared.timeouts.write_ms);
        // close_notify, then FIN.
        if timeout(write_ms, wr.shutdown()).await.is_ok() && !matches!(read_end, ReadEnd::Error) {
            linger(&mut rd, LINGER.min(write_ms)).await;
        }
    }
}

/// Reads until EOF, an error or `limit`, discarding the bytes.
async fn linger<R: AsyncRead + Unpin>(rd: &mut R, limit: Duration) {
    let mut scratch = vec![0u8; 4096];
    let _ = timeout(limit, async {
        while let Ok(n) = rd.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// One read into `framer`, once the byte budget allows it; the bytes read are counted
/// against it. The bytes pass through a buffer on the stack, so a connection waiting for
/// input holds no read buffer.
async fn read_chunk<R: AsyncRead + Unpin>(
    rd: &mut R,
    budget: &Arc<ByteBudget>,
    framer: &mut LineFramer,
) -> io::Result<(usize, BufferedBytes)> {
    budget.below().await;
    let n = std::future::poll_fn(|cx| {
        let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut chunk);
        ready!(Pin::new(&mut *rd).poll_read(cx, &mut buf))?;
        framer.push(buf.filled());
        Poll::Ready(Ok::<_, io::Error>(buf.filled().len()))
    })
    .await?;
    Ok((n, budget.add(n)))
}

async fn read_loop<R: AsyncRead + Unpin>(
    rd: &mut R,
    shared: &Arc<Shared>,
    peer: Peer,
    tx: mpsc::UnboundedSender<Item>,
    signals: &Arc<Signals>,
    slots: &Arc<Semaphore>,
) -> ReadEnd {
    let max_in_flight = shared.limits.max_in_flight;
    let idle = Duration::from_millis(shared.timeouts.idle_ms);
    let line_read = Duration::from_millis(shared.timeouts.line_read_ms);
    let mut framer = LineFramer::new(shared.limits.max_line_bytes);
    // The budget counted for the bytes in `framer`.
    let mut held = shared.budget.add(0);
    // A complete line waiting for an in-flight slot (reading stops meanwhile).
    let mut pending: Option<(Vec<u8>, BufferedBytes)> = None;
    // When the first byte of the current partial line arrived.
    let mut line_started: Option<Instant> = None;
    // Since when nothing was received and nothing was in flight.
    let mut idle_since = Instant::now();
    let mut eof = false;

    let dispatch = |line: Vec<u8>, bytes: BufferedBytes, slot| {
        shared.stats.line();
        let handler = Arc::clone(&shared.handler);
        let signals = Arc::clone(signals);
        let task = tokio::spawn(async move {
            let handled = handler.handle(&line, &peer).await;
            // The line is processed: its bytes leave the budget.
            drop((line, bytes));
            if handled.close {
                signals.quit.notify_one();
            }
            handled
        });
        tx.send(Item::Request {
            task: Task(task),
            slot,
        })
        .is_ok()
    };

    loop {
        // Hand every complete line to the handler while in-flight slots are free.
        loop {
            if pending.is_none() {
                match framer.next_frame() {
                    None => break,
                    Some(Frame::Blank { consumed }) => {
                        line_started = None;
                        drop(held.split(consumed));
                        continue;
                    }
                    Some(Frame::Line { line, consumed }) => {
                        line_started = None;
                        pending = Some((line, held.split(consumed)));
                    }
                    Some(Frame::TooLong) => {
                        // Framing is lost: stop buffering, answer after the replies in
                        // flight, close.
                        framer.clear();
                        drop(held.split(usize::MAX));
                        shared.stats.line_too_long();
                        let reply = shared
                            .handler
                            .transport_reply(TransportEvent::LineTooLong, None);
                        let _ = tx.send(Item::Final(reply));
                        return ReadEnd::TooLong;
                    }
                }
            }
            let Ok(slot) = Arc::clone(slots).try_acquire_owned() else {
                break;
            };
            if let Some((line, bytes)) = pending.take()
                && !dispatch(line, bytes, slot)
            {
                return ReadEnd::WriterGone;
            }
        }
        if eof && pending.is_none() {
            // A partial line without LF at EOF is dropped.
            return ReadEnd::Eof;
        }
        let now = Instant::now();
        if framer.buffered() > 0 {
            line_started.get_or_insert(now);
        } else {
            line_started = None;
        }
        let in_flight = max_in_flight - slots.available_permits();
        let deadline = if pending.is_some() {
            // Waiting for our own backpressure, not for the client.
            None
        } else if let Some(started) = line_started {
            started.checked_add(line_read)
        } else if in_flight == 0 {
            // Idle: nothing buffered, nothing in flight. The framer's buffer goes, so an idle
            // connection holds no request memory.
            framer.clear();
            idle_since.checked_add(idle)
        } else {
            None
        };
        let timer = sleep_until(deadline.unwrap_or(now));

        tokio::select! {
            biased;
            () = shared.shutdown.triggered() => return ReadEnd::Shutdown,
            () = signals.quit.notified() => return ReadEnd::Quit,
            () = tx.closed() => return ReadEnd::WriterGone,
            slot = Arc::clone(slots).acquire_owned(), if pending.is_some() => {
                let Ok(slot) = slot else { return ReadEnd::WriterGone };
                if let Some((line, bytes)) = pending.take()
                    && !dispatch(line, bytes, slot)
                {
                    return ReadEnd::WriterGone;
                }
                // Reading resumes now: the current line's clock restarts.
                line_started = None;
            }
            () = signals.written.notified(), if pending.is_none() && in_flight > 0 => {
                if slots.available_permits() == max_in_flight {
                    idle_since = Instant::now();
                }
            }
            () = timer, if deadline.is_some() => {
                shared.stats.timed_out();
                let reply = shared.handler.transport_reply(TransportEvent::Timeout, None);
                let _ = tx.send(Item::Final(reply));
                return ReadEnd::Timeout;
            }
            read = read_chunk(rd, &shared.budget, &mut framer), if pending.is_none() && !eof => {
                match read {
                    Ok((0, _)) => eof = true,
                    Ok((_, bytes)) => {
                        held.merge(bytes);
                        idle_since = Instant::now();
                    }
                    Err(e) => {
                        debug!(connection = peer.connection, error = %e, "read failed");
                        return ReadEnd::Error;
                    }
                }
            }
        }
    }
}

/// Replies collected before a write at most (a burst stops growing past it).
const COALESCE_LIMIT: usize = 64 * 1024;

async fn write_loop<W: AsyncWrite + Unpin>(
    wr: &mut W,
    shared: &Shared,
    mut rx: mpsc::UnboundedReceiver<Item>,
    signals: &Signals,
) -> WriteEnd {
    let write_ms = Duration::from_millis(shared.timeouts.write_ms);
    // The pipeline answers 503 at the request deadline itself; a handler that has not
    // returned long after it is abandoned and the connection closed without a reply.
    let abandon = Duration::from_millis(shared.timeouts.request_ms.saturating_mul(2));
    let write = async |wr: &mut W, bytes: &[u8]| -> bool {
        let done = timeout(write_ms, async {
            wr.write_all(bytes).await?;
            wr.flush().await
        })
        .await;
        match done {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                debug!(error = %e, "write failed");
                false
            }
            Err(_) => {
                shared.stats.write_timed_out();
                false
            }
        }
    };
    // Replies that are ready one after the other are written together (one TLS record and
    // one system call for a burst of pipelined replies); a reply is never held back waiting
    // for a later request.
    let mut buf: Vec<u8> = Vec::new();
    let mut held: Option<Item> = None;
    // §11: consecutive rate-limited replies, and how many close the connection (0: never).
    let close_after = shared.handler.close_after_rejections();
    let mut rejections = 0u32;
    loop {
        let item = match held.take() {
            Some(item) => item,
            None => match rx.recv().await {
                Some(item) => item,
                None => break,
            },
        };
        match item {
            Item::Request { mut task, slot } => {
                if !buf.is_empty() && !task.0.is_finished() {
                    if !write(wr, &buf).await {
                        return WriteEnd::Broken;
                    }
                    buf.clear();
                }
                let handled = match timeout(abandon, &mut task.0).await {
                    Ok(Ok(handled)) => handled,
                    Ok(Err(e)) => {
                        warn!(error = %e, "line handler failed; closing the connection");
                        return WriteEnd::Broken;
                    }
                    Err(_) => {
                        warn!("line handler did not return; closing the connection");
                        return WriteEnd::Broken;
                    }
                };
                if let Some(reply) = &handled.reply {
                    buf.extend_from_slice(reply);
                    rejections = if handled.rate_limited {
                        rejections.saturating_add(1)
                    } else {
                        0
                    };
                }
                let rejected_too_often = close_after > 0 && rejections >= close_after;
                if rejected_too_often {
                    shared.stats.closed_for_rejections();
                }
                if handled.close || rejected_too_often {
                    return if write(wr, &buf).await {
                        WriteEnd::Done
                    } else {
                        WriteEnd::Broken
                    };
                }
                // More ready right now? Keep collecting (bounded); else write.
                held = if buf.len() < COALESCE_LIMIT {
                    rx.try_recv().ok()
                } else {
                    None
                };
                if held.is_none() && !buf.is_empty() {
                    if !write(wr, &buf).await {
                        return WriteEnd::Broken;
                    }
                    buf.clear();
                }
                drop(slot);
                signals.written.notify_one();
            }
            Item::Final(reply) => {
                buf.extend_from_slice(&reply);
                return if write(wr, &buf).await {
                    WriteEnd::Done
                } else {
                    WriteEnd::Broken
                };
            }
        }
    }
    if !buf.is_empty() && !write(wr, &buf).await {
        return WriteEnd::Broken;
    }
    WriteEnd::Done
}
