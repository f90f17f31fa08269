//! The connection pool: connections per server address, opened on demand, shared by
//! pipelined requests, closed when idle (PROTOCOL.md §11.1).
//!
//! * A request takes a slot on the least busy usable connection to its server. A new
//!   connection is opened only when every existing one has `max_in_flight` requests out
//!   (and fewer than `max_connections_per_server` exist); while one is being opened, other
//!   requests wait for it instead of opening their own. Normally there is one connection
//!   per server.
//! * With every connection busy and the limit reached, a request waits for a free slot up
//!   to its timeout, then fails with [`ClientError::PoolExhausted`].
//! * A failed connection attempt starts the server's reconnect backoff; until it is over,
//!   requests to that server fail at once with the last connect error (and the retry loop
//!   waits for the backoff before trying again). A successful connection resets it.
//! * A retried request names the connections it was already written to: it never goes out
//!   on them again (PROTOCOL.md §2.4).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::ServerAddr;
use crate::config::Backoff;
use crate::connection::{ConnSettings, Connection, Slot};
use crate::error::{ClientError, Result};

#[derive(Default)]
struct ServerState {
    conns: Vec<Arc<Connection>>,
    connecting: usize,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<ClientError>,
}

struct ServerPool {
    addr: ServerAddr,
    state: Mutex<ServerState>,
    notify: Arc<Notify>,
}

impl ServerPool {
    fn lock(&self) -> MutexGuard<'_, ServerState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Counters of a [`Pool`].
#[derive(Debug, Default)]
pub(crate) struct PoolCounters {
    pub(crate) connections_opened: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
}

pub(crate) struct Pool {
    servers: Mutex<HashMap<ServerAddr, Arc<ServerPool>>>,
    connector: TlsConnector,
    settings: ConnSettings,
    max_connections: usize,
    reconnect: Backoff,
    pub(crate) counters: PoolCounters,
}

enum Step {
    Connect,
    Wait,
}

/// Gives back a `connecting` mark if the connect future is dropped.
struct Connecting<'a> {
    server: &'a ServerPool,
    done: bool,
}

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.server.lock().connecting -= 1;
            self.server.notify.notify_waiters();
        }
    }
}

impl Pool {
    pub(crate) fn new(
        connector: TlsConnector,
        settings: ConnSettings,
        max_connections: usize,
        reconnect: Backoff,
    ) -> Self {
        Self {
            servers: Mutex::new(HashMap::new()),
            connector,
            settings,
            max_connections: max_connections.max(1),
            reconnect,
            counters: PoolCounters::default(),
        }
    }

    fn server(&self, addr: &ServerAddr) -> Arc<ServerPool> {
        let mut servers = self
            .servers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        servers
            .entry(addr.clone())
            .or_insert_with(|| {
                Arc::new(ServerPool {
                    addr: addr.clone(),
                    state: Mutex::new(ServerState::default()),
                    notify: Arc::new(Notify::new()),
                })
            })
            .clone()
    }

    /// When the server's reconnect backoff ends, if it is in one.
    pub(crate) fn retry_at(&self, addr: &ServerAddr) -> Option<Instant> {
        let server = self.server(addr);
        let st = server.lock();
        st.retry_at.filter(|at| *at > Instant::now())
    }

    /// Open connections to `addr`.
    pub(crate) fn open_connections(&self, addr: &ServerAddr) -> usize {
        let server = self.server(addr);
        let mut st = server.lock();
        st.conns.retain(|c| !c.is_closed());
        st.conns.len()
    }

    /// A request slot on a connection to `addr` that is not in `avoid`, waiting for one
    /// until `deadline`.
    pub(crate) async fn acquire(
        &self,
        addr: &ServerAddr,
        avoid: &[u64],
        deadline: Instant,
    ) -> Result<Slot> {
        let server = self.server(addr);
        loop {
            let notified = server.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let step = {
                let mut st = server.lock();
                st.conns.retain(|c| !c.is_closed());
                let best = st
                    .conns
                    .iter()
                    .filter(|c| !avoid.contains(&c.id()))
                    .map(|c| (c.free_slots(), c))
                    .filter(|(free, _)| *free > 0)
                    .max_by_key(|(free, _)| *free)
                    .map(|(_, c)| c.clone());
                if let Some(slot) = best.and_then(|c| c.try_reserve()) {
                    return Ok(slot);
                }
                if st.connecting > 0 {
                    // A connection is on its way: wait for it rather than open another.
                    Step::Wait
                } else if st.conns.len() < self.max_connections {
                    if let Some(at) = st.retry_at
                        && at > Instant::now()
                    {
                        return Err(st.last_error.clone().unwrap_or_else(|| {
                            ClientError::Connect {
                                addr: addr.to_string(),
                                reason: "reconnect backoff".into(),
                            }
                        }));
                    }
                    st.connecting += 1;
                    Step::Connect
                } else {
                    Step::Wait
                }
            };
            match step {
                Step::Wait => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return Err(ClientError::PoolExhausted {
                            addr: addr.to_string(),
                            max: self.max_connections,
                        });
                    }
                }
                Step::Connect => return self.connect(&server).await,
            }
        }
    }

    async fn connect(&self, server: &ServerPool) -> Result<Slot> {
        let mut mark = Connecting {
            server,
            done: false,
        };
        let opened = Connection::open(
            &server.addr,
            &self.connector,
            &self.settings,
            server.notify.clone(),
        )
        .await;
        let result = {
            let mut st = server.lock();
            st.connecting -= 1;
            mark.done = true;
            match opened {
                Ok(conn) => {
                    self.counters
                        .connections_opened
                        .fetch_add(1, Ordering::Relaxed);
                    st.failures = 0;
                    st.retry_at = None;
                    st.last_error = None;
                    let slot = conn.try_reserve();
                    st.conns.push(conn);
                    slot.ok_or_else(|| ClientError::ConnectionClosed {
                        addr: server.addr.to_string(),
                    })
                }
                Err(e) => {
                    self.counters
                        .connect_failures
                        .fetch_add(1, Ordering::Relaxed);
                    let delay = self.reconnect.next(st.failures);
                    st.failures = st.failures.saturating_add(1);
                    st.retry_at = Some(Instant::now() + delay);
                    st.last_error = Some(e.clone());
                    tracing::debug!(addr = %server.addr, error = %e, ?delay, "connect failed; reconnect backoff");
                    Err(e)
                }
            }
        };
        server.notify.notify_waiters();
        result
    }
}
