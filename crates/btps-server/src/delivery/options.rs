//! [`DeliveryOptions`]: the delivery worker's settings, from `[delivery]` (docs/server.md).

use std::time::Duration;

use crate::config::ServerConfig;
use crate::error::{Result, ServerError};

/// The delivery worker's settings (PROTOCOL.md §11.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// Attempts in flight at once (10).
    pub concurrency: usize,
    /// The wait after each failed attempt: after 1, 2, 4, 8 and 16 minutes (five retries);
    /// when they are used up the failure is final.
    pub retry_delays: Vec<Duration>,
    /// No retry is scheduled later than this after the artifact was queued (1 day).
    pub lifetime: Duration,
    /// How long a claimed entry is reserved for one attempt (60 s); longer than
    /// `request_timeout`. An entry whose worker died is attempted again when it ends.
    pub lease: Duration,
    /// How often the outbox is polled for due entries (1 s); a queued artifact also wakes
    /// the worker at once.
    pub poll: Duration,
    /// The longest wait for the receiver's reply (5 s); then the attempt is retried.
    pub request_timeout: Duration,
    /// On shutdown, how long attempts in flight may still run (10 s).
    pub shutdown_grace: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self::from_config(&ServerConfig::default())
    }
}

impl DeliveryOptions {
    /// The options of `config` (`[delivery]`, and `timeouts.shutdown_grace_ms`).
    pub fn from_config(config: &ServerConfig) -> Self {
        let d = &config.delivery;
        Self {
            concurrency: d.concurrency,
            retry_delays: d
                .retry_delays_secs
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            lifetime: Duration::from_secs(d.lifetime_secs),
            lease: Duration::from_secs(d.lease_secs),
            poll: Duration::from_millis(d.poll_ms),
            request_timeout: Duration::from_millis(d.request_timeout_ms),
            shutdown_grace: Duration::from_millis(config.timeouts.shutdown_grace_ms),
        }
    }

    /// Checks the options: at least one attempt in flight, a poll interval, and a lease
    /// longer than the request timeout (otherwise a slow attempt's entry could be claimed
    /// again while it runs).
    ///
    /// # Errors
    ///
    /// [`ServerError::Config`] naming the option.
    pub fn validate(&self) -> Result<()> {
        if self.concurrency == 0 {
            return Err(ServerError::Config(
                "delivery.concurrency must be > 0".into(),
            ));
        }
        if self.poll.is_zero() {
            return Err(ServerError::Config("delivery.poll_ms must be > 0".into()));
        }
        if self.request_timeout.is_zero() {
            return Err(ServerError::Config(
                "delivery.request_timeout_ms must be > 0".into(),
            ));
        }
        if self.lease <= self.request_timeout {
            return Err(ServerError::Config(format!(
                "delivery.lease_secs ({} s) must exceed delivery.request_timeout_ms ({} ms)",
                self.lease.as_secs(),
                self.request_timeout.as_millis()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_protocol() {
        let o = DeliveryOptions::default();
        let minutes: Vec<u64> = o.retry_delays.iter().map(|d| d.as_secs() / 60).collect();
        assert_eq!(minutes, [1, 2, 4, 8, 16]);
        assert_eq!(o.concurrency, 10);
        assert_eq!(o.request_timeout, Duration::from_secs(5));
        assert_eq!(o.poll, Duration::from_secs(1));
        o.validate().unwrap();
    }

    #[test]
    fn the_lease_must_outlast_the_request_timeout() {
        let o = DeliveryOptions {
            lease: Duration::from_secs(5),
            ..DeliveryOptions::default()
        };
        let e = o.validate().unwrap_err().to_string();
        assert!(e.contains("lease_secs"), "{e}");
        let o = DeliveryOptions {
            concurrency: 0,
            ..DeliveryOptions::default()
        };
        assert!(o.validate().is_err());
    }
}
