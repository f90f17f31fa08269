//! Resource limits (PROTOCOL.md §2.3, §11): concurrent connections in total and per remote
//! IP, concurrent TLS handshakes per remote IP, and the process-wide budget of buffered
//! request bytes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use super::stats::TransportStats;

/// The process-wide budget of buffered, not yet processed request bytes (§2.3). It is a
/// soft limit: a connection reads only while the total is under the budget, and counts
/// what it read afterwards, so the total can pass the budget by at most one read per
/// connection. An idle connection waiting for input holds nothing.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    max: u64,
    stats: Arc<TransportStats>,
    freed: Notify,
}

/// Bytes counted against the [`ByteBudget`]; dropping them gives them back.
#[derive(Debug)]
pub(crate) struct BufferedBytes {
    budget: Arc<ByteBudget>,
    n: u64,
}

impl ByteBudget {
    /// A budget of `max` bytes; the total is kept in `stats` (`buffered_bytes`).
    pub(crate) fn new(max: usize, stats: Arc<TransportStats>) -> Self {
        Self {
            max: u64::try_from(max).unwrap_or(u64::MAX),
            stats,
            freed: Notify::new(),
        }
    }

    /// Completes while the total is under the budget (at once if it is).
    pub(crate) async fn below(&self) {
        loop {
            let mut freed = pin!(self.freed.notified());
            // Registered before the check, so a release in between is not missed.
            freed.as_mut().enable();
            if self.stats.buffered_bytes() < self.max {
                return;
            }
            freed.await;
        }
    }

    /// Counts `n` bytes just read.
    pub(crate) fn add(self: &Arc<Self>, n: usize) -> BufferedBytes {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        self.stats.add_buffered(n);
        BufferedBytes {
            budget: Arc::clone(self),
            n,
        }
    }
}

impl BufferedBytes {
    /// Splits `n` bytes (at most all of them) off into their own guard.
    pub(crate) fn split(&mut self, n: usize) -> Self {
        let n = u64::try_from(n).unwrap_or(u64::MAX).min(self.n);
        self.n -= n;
        Self {
            budget: Arc::clone(&self.budget),
            n,
        }
    }

    /// Takes over the bytes of `other`.
    pub(crate) fn merge(&mut self, mut other: Self) {
        self.n += std::mem::take(&mut other.n);
    }
}

impl Drop for BufferedBytes {
    fn drop(&mut self) {
        if self.n == 0 {
            return;
        }
        let before = self.budget.stats.sub_buffered(self.n);
        let max = self.budget.max;
        if before >= max && before - self.n < max {
            self.budget.freed.notify_waiters();
        }
    }
}

/// Counts places held per remote IP (and in total) and admits new ones while under both
/// limits: open connections ([`ConnectionLimiter`], which also keeps the open-connection
/// statistic), and TLS handshakes under way, those waiting for a handshake slot included
/// ([`HandshakeLimiter`], per IP only: so that a few addresses cannot take every slot of the
/// global handshake bound).
#[derive(Debug)]
pub(crate) struct AddressLimiter {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
    stats: Option<Arc<TransportStats>>,
}

/// Open connections per IP and in total.
pub(crate) type ConnectionLimiter = AddressLimiter;
/// TLS handshakes under way per IP.
pub(crate) type HandshakeLimiter = AddressLimiter;
/// One admitted connection; dropping it frees its place.
pub(crate) type ConnectionGuard = Place;
/// One admitted handshake; dropping it (when the handshake ends, either way) frees its
/// place.
pub(crate) type HandshakeGuard = Place;

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted place of an [`AddressLimiter`]; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Place {
    limiter: Arc<AddressLimiter>,
    ip: IpAddr,
}

impl AddressLimiter {
    /// Open connections: at most `max_total`, `max_per_ip` per address; counted in `stats`.
    pub(crate) fn connections(
        max_total: usize,
        max_per_ip: usize,
        stats: Arc<TransportStats>,
    ) -> Self {
        Self {
            max_total,
            max_per_ip,
            counts: Mutex::new(Counts::default()),
            stats: Some(stats),
        }
    }

    /// Handshakes under way: at most `max_per_ip` per address.
    pub(crate) fn handshakes(max_per_ip: usize) -> Self {
        Self {
            max_total: usize::MAX,
            max_per_ip,
            counts: Mutex::new(Counts::default()),
            stats: None,
        }
    }

    /// A place for `ip`, or `None` over either limit (the caller closes the connection
    /// before TLS).
    pub(crate) fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Option<Place> {
        // IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
        let ip = ip.to_canonical();
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let per_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
        if counts.total >= self.max_total || per_ip >= self.max_per_ip {
            return None;
        }
        counts.total += 1;
        counts.per_ip.insert(ip, per_ip + 1);
        drop(counts);
        if let Some(stats) = &self.stats {
            stats.opened();
        }
        Some(Place {
            limiter: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut counts = self
            .limiter
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
        drop(counts);
        if let Some(stats) = &self.limiter.stats {
            stats.closed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn byte_budget_blocks_reads_over_it_until_freed() {
        let stats = Arc::new(TransportStats::new());
        let budget = Arc::new(ByteBudget::new(100, Arc::clone(&stats)));
        budget.below().await;
        let mut a = budget.add(150);
        let b = a.split(100);
        assert_eq!(stats.buffered_bytes(), 150);
        let waiter = tokio::spawn({
            let budget = Arc::clone(&budget);
            async move { budget.below().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(a); // 100 left: still at the budget
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let mut c = budget.add(0);
        c.merge(b);
        drop(c);
        waiter.await.unwrap();
        assert_eq!(stats.buffered_bytes(), 0);
    }

    #[test]
    fn total_and_per_ip_limits() {
        let stats = Arc::new(TransportStats::new());
        let limiter = Arc::new(ConnectionLimiter::connections(3, 2, Arc::clone(&stats)));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let g1 = limiter.try_admit(a).unwrap();
        let g2 = limiter.try_admit(mapped).unwrap();
        assert!(limiter.try_admit(a).is_none(), "per-IP limit");
        let g3 = limiter.try_admit(b).unwrap();
        assert!(
            limiter.try_admit("192.0.2.3".parse().unwrap()).is_none(),
            "total limit"
        );
        assert_eq!(stats.open_connections(), 3);
        drop(g1);
        assert!(limiter.try_admit(a).is_some());
        drop((g2, g3));
        assert_eq!(stats.open_connections(), 0);
        assert!(limiter.counts.lock().unwrap().per_ip.is_empty());
    }

    #[test]
    fn handshakes_per_ip() {
        let limiter = Arc::new(HandshakeLimiter::handshakes(2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let g1 = limiter.try_admit(a).unwrap();
        let g2 = limiter.try_admit(mapped).unwrap();
        assert!(limiter.try_admit(a).is_none(), "per-IP limit");
        let g3 = limiter.try_admit(b).unwrap();
        drop(g1);
        let g4 = limiter.try_admit(a).unwrap();
        drop((g2, g3, g4));
        assert!(limiter.counts.lock().unwrap().per_ip.is_empty());
    }
}
