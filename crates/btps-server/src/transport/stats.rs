//! Live transport counters for the metrics endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live transport counters, shared with the metrics endpoint through an `Arc`
/// ([`Transport::stats`](crate::Transport::stats)). Counters only grow, except
/// `open_connections`.
#[derive(Debug, Default)]
pub struct TransportStats {
    open_connections: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    handshake_failures: AtomicU64,
    lines: AtomicU64,
    lines_too_long: AtomicU64,
    timeouts: AtomicU64,
    write_timeouts: AtomicU64,
    rejection_closes: AtomicU64,
    buffered_bytes: AtomicU64,
}

/// A copy of the [`TransportStats`] counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportStatsSnapshot {
    /// Connections open now (handshaking or established).
    pub open_connections: u64,
    /// TCP connections accepted since start, the rejected ones included.
    pub accepted: u64,
    /// Connections closed before TLS by the total or per-IP connection limit (§11).
    pub rejected: u64,
    /// TLS handshakes that failed or timed out (§2.1).
    pub handshake_failures: u64,
    /// Non-blank lines handed to the handler.
    pub lines: u64,
    /// Connections closed for a line over the maximum length (§2.3).
    pub lines_too_long: u64,
    /// Connections closed by the idle or line-read timeout (§2.4).
    pub timeouts: u64,
    /// Connections closed because a reply could not be written in time (§2.4).
    pub write_timeouts: u64,
    /// Connections closed after too many consecutive rate-limited replies (§11).
    pub rejection_closes: u64,
    /// Request bytes received and not yet processed, over all connections (§2.3).
    pub buffered_bytes: u64,
}

impl TransportStats {
    /// All counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counters now. Each is read atomically; the set is not one atomic snapshot.
    pub fn snapshot(&self) -> TransportStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportStatsSnapshot {
            open_connections: get(&self.open_connections),
            accepted: get(&self.accepted),
            rejected: get(&self.rejected),
            handshake_failures: get(&self.handshake_failures),
            lines: get(&self.lines),
            lines_too_long: get(&self.lines_too_long),
            timeouts: get(&self.timeouts),
            write_timeouts: get(&self.write_timeouts),
            rejection_closes: get(&self.rejection_closes),
            buffered_bytes: get(&self.buffered_bytes),
        }
    }

    /// Connections open now.
    pub fn open_connections(&self) -> u64 {
        self.open_connections.load(Ordering::Relaxed)
    }

    /// Request bytes received and not yet processed, over all connections.
    pub fn buffered_bytes(&self) -> u64 {
        self.buffered_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn add_buffered(&self, n: u64) {
        self.buffered_bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Returns the total before the subtraction.
    pub(crate) fn sub_buffered(&self, n: u64) -> u64 {
        self.buffered_bytes.fetch_sub(n, Ordering::Relaxed)
    }

    /// Counts an accepted TCP connection; returns its sequence number (from 1).
    pub(crate) fn accepted(&self) -> u64 {
        self.accepted.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn opened(&self) {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self) {
        self.open_connections.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn handshake_failed(&self) {
        self.handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn line(&self) {
        self.lines.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn line_too_long(&self) {
        self.lines_too_long.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn timed_out(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn write_timed_out(&self) {
        self.write_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed_for_rejections(&self) {
        self.rejection_closes.fetch_add(1, Ordering::Relaxed);
    }
}
