//! The accept loop (PROTOCOL.md §2.4, §11): connection limits before TLS, one task per
//! connection, graceful shutdown.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout};
use tracing::{debug, info, warn};

use super::connection::{self, Shared};
use super::error::TransportError;
use super::limits::{ByteBudget, ConnectionLimiter, HandshakeLimiter};
use super::shutdown::Shutdown;
use super::stats::TransportStats;
use super::tls::TlsReloader;
use crate::config::{Limits, Timeouts};
use crate::handler::{LineHandler, Peer};

/// Pause after an accept error that is not about one connection (out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The BTPS transport: TLS, NDJSON framing, pipelining and limits around a
/// [`LineHandler`]. Build it, keep [`stats`](Self::stats) for the metrics endpoint, then
/// [`serve`](Self::serve).
pub struct Transport {
    tls: TlsReloader,
    handler: Arc<dyn LineHandler>,
    limits: Limits,
    timeouts: Timeouts,
    stats: Arc<TransportStats>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("limits", &self.limits)
            .field("timeouts", &self.timeouts)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A transport serving `handler` with the TLS configuration of `tls` (reload it to
    /// change the certificate of new connections).
    pub fn new(
        tls: TlsReloader,
        handler: Arc<dyn LineHandler>,
        limits: Limits,
        timeouts: Timeouts,
    ) -> Self {
        Self {
            tls,
            handler,
            limits,
            timeouts,
            stats: Arc::new(TransportStats::new()),
        }
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<TransportStats> {
        Arc::clone(&self.stats)
    }

    /// Accepts connections on `listener` until `shutdown` is triggered, then stops
    /// accepting, lets the connections finish their requests in flight for at most
    /// `shutdown_grace_ms`, closes whatever remains and returns.
    ///
    /// Connections over `max_connections` or `max_connections_per_ip`, and those from an
    /// address that already has `max_handshakes_per_ip` handshakes under way (waiting for a
    /// slot included), are closed before TLS. At `max_handshakes` a new handshake waits for
    /// a slot; the handshake timeout counts the wait, so a connection that gets no slot
    /// within `handshake_ms` is closed. Failures of single connections are counted in
    /// [`stats`](Self::stats), never returned.
    ///
    /// # Errors
    ///
    /// [`TransportError::InvalidSetting`] for limits or timeouts that cannot work: a zero,
    /// or a `max_buffered_bytes` not larger than `max_line_bytes + 1` (a line of the
    /// maximum length with its CR LF could never be buffered).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: Shutdown,
    ) -> Result<(), TransportError> {
        validate(&self.limits, &self.timeouts)?;
        let limiter = Arc::new(ConnectionLimiter::connections(
            self.limits.max_connections,
            self.limits.max_connections_per_ip,
            Arc::clone(&self.stats),
        ));
        let per_ip_handshakes = Arc::new(HandshakeLimiter::handshakes(
            self.limits.max_handshakes_per_ip,
        ));
        let grace = Duration::from_millis(self.timeouts.shutdown_grace_ms);
        let shared = Arc::new(Shared {
            tls: self.tls,
            handler: self.handler,
            handshakes: Arc::new(Semaphore::new(self.limits.max_handshakes)),
            budget: Arc::new(ByteBudget::new(
                self.limits.max_buffered_bytes,
                Arc::clone(&self.stats),
            )),
            limits: self.limits,
            timeouts: self.timeouts,
            stats: self.stats,
            shutdown: shutdown.clone(),
        });
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                biased;
                () = shutdown.triggered() => break,
                Some(done) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(e) = done
                        && e.is_panic()
                    {
                        warn!(error = %e, "connection task panicked");
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((tcp, addr)) => {
                        let connection = shared.stats.accepted();
                        let Some(guard) = limiter.try_admit(addr.ip()) else {
                            shared.stats.rejected();
                            debug!(%addr, "connection limit reached; closing before TLS");
                            drop(tcp);
                            continue;
                        };
                        let Some(handshake) = per_ip_handshakes.try_admit(addr.ip()) else {
                            shared.stats.rejected();
                            debug!(%addr, "handshake limit per IP reached; closing before TLS");
                            drop(tcp);
                            drop(guard);
                            continue;
                        };
                        let peer = Peer { addr, connection };
                        connections.spawn(connection::run(
                            Arc::clone(&shared),
                            tcp,
                            peer,
                            guard,
                            handshake,
                        ));
                    }
                    Err(e) if is_per_connection(&e) => {}
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        sleep(ACCEPT_BACKOFF).await;
                    }
                },
            }
        }
        drop(listener);
        info!(
            connections = connections.len(),
            "shutting down: draining connections"
        );
        let drained = timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(
                connections = connections.len(),
                "shutdown grace over; closing the remaining connections"
            );
            connections.shutdown().await;
        }
        Ok(())
    }
}

/// Accepts connections on `listener` with a new [`Transport`] until `shutdown` is
/// triggered and the connections are drained (see [`Transport::serve`]). Use
/// [`Transport`] directly to read its [`TransportStats`] while it runs.
///
/// # Errors
///
/// As [`Transport::serve`].
pub async fn serve(
    listener: TcpListener,
    tls: TlsReloader,
    handler: Arc<dyn LineHandler>,
    limits: Limits,
    timeouts: Timeouts,
    shutdown: Shutdown,
) -> Result<(), TransportError> {
    Transport::new(tls, handler, limits, timeouts)
        .serve(listener, shutdown)
        .await
}

/// Checks the settings.
fn validate(limits: &Limits, timeouts: &Timeouts) -> Result<(), TransportError> {
    let invalid = TransportError::InvalidSetting;
    let nonzero = [
        (limits.max_line_bytes, "max_line_bytes is 0"),
        (limits.max_connections, "max_connections is 0"),
        (limits.max_connections_per_ip, "max_connections_per_ip is 0"),
        (limits.max_handshakes, "max_handshakes is 0"),
        (limits.max_handshakes_per_ip, "max_handshakes_per_ip is 0"),
        (limits.max_in_flight, "max_in_flight is 0"),
    ];
    for (value, message) in nonzero {
        if value == 0 {
            return Err(invalid(message));
        }
    }
    let timers = [
        (timeouts.handshake_ms, "handshake_ms is 0"),
        (timeouts.idle_ms, "idle_ms is 0"),
        (timeouts.line_read_ms, "line_read_ms is 0"),
        (timeouts.write_ms, "write_ms is 0"),
        (timeouts.request_ms, "request_ms is 0"),
    ];
    for (value, message) in timers {
        if value == 0 {
            return Err(invalid(message));
        }
    }
    if limits.max_in_flight > Semaphore::MAX_PERMITS
        || limits.max_handshakes > Semaphore::MAX_PERMITS
    {
        return Err(invalid("max_in_flight or max_handshakes is too large"));
    }
    // A connection holding a partial line of the maximum length plus its CR must still be
    // allowed to read the LF.
    if limits.max_buffered_bytes <= limits.max_line_bytes.saturating_add(1) {
        return Err(invalid(
            "max_buffered_bytes must be larger than max_line_bytes + 1",
        ));
    }
    Ok(())
}

/// Accept errors that concern one connection only (it was reset before we took it).
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_validated() {
        let limits = Limits::default();
        let timeouts = Timeouts::default();
        validate(&limits, &timeouts).unwrap();
        let small = Limits {
            max_line_bytes: 100,
            max_buffered_bytes: 102,
            ..Limits::default()
        };
        validate(&small, &timeouts).unwrap();
        let tight = Limits {
            max_buffered_bytes: 101,
            ..small.clone()
        };
        assert!(validate(&tight, &timeouts).is_err());
        let no_flight = Limits {
            max_in_flight: 0,
            ..Limits::default()
        };
        assert!(validate(&no_flight, &timeouts).is_err());
        let no_idle = Timeouts {
            idle_ms: 0,
            ..Timeouts::default()
        };
        assert!(validate(&limits, &no_idle).is_err());
    }
}
