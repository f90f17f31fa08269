//! Counters and histograms for the Prometheus `/metrics` endpoint.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency bucket upper bounds in seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        #[allow(clippy::cast_possible_truncation, reason = "micros of one request")]
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{b}\"}} {cumulative}");
        }
        cumulative += self.counts[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {cumulative}");
        #[allow(clippy::cast_precision_loss, reason = "metrics")]
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let trimmed = labels.trim_end_matches(',');
        let _ = writeln!(out, "{name}_sum{{{trimmed}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{trimmed}}} {cumulative}");
    }
}

/// Delivery attempt outcomes, the label values of `btps_delivery_attempts_total`.
const DELIVERY_OUTCOMES: [&str; 5] = ["delivered", "retry", "failed", "cancelled", "error"];

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests by (kind, outcome): kind `BTPS_DOC`, `TRUST_REQ`, `TRUST_RES`, `agent`,
    /// `control`, `identity_lookup`, `invalid`; outcome `ok` or the error code.
    requests: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Pipeline latency of signed artifacts.
    pub artifact_latency: Histogram,
    /// Pipeline latency of everything else.
    pub other_latency: Histogram,
    /// Rate-limit rejections.
    pub rate_limited: AtomicU64,
    /// Exact re-sends answered `already accepted`.
    pub already_accepted: AtomicU64,
    /// Delivery attempts by outcome, in the order of `DELIVERY_OUTCOMES`.
    deliveries: [AtomicU64; DELIVERY_OUTCOMES.len()],
    /// Delivery attempts in flight (a gauge).
    pub deliveries_in_flight: AtomicU64,
}

impl Metrics {
    /// Counts one request.
    pub fn count(&self, kind: &'static str, outcome: &'static str) {
        let mut m = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *m.entry((kind, outcome)).or_insert(0) += 1;
    }

    /// How many requests of `kind` ended with `outcome`.
    pub fn get(&self, kind: &str, outcome: &str) -> u64 {
        let m = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.iter()
            .filter(|((k, o), _)| *k == kind && *o == outcome)
            .map(|(_, v)| *v)
            .sum()
    }

    /// Counts one delivery attempt with `outcome`: `delivered`, `retry`, `failed`,
    /// `cancelled` (the entry was cancelled meanwhile) or `error` (a store failure); other
    /// values are ignored.
    pub fn count_delivery(&self, outcome: &str) {
        if let Some(i) = DELIVERY_OUTCOMES.iter().position(|o| *o == outcome) {
            self.deliveries[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many delivery attempts ended with `outcome`.
    pub fn deliveries(&self, outcome: &str) -> u64 {
        DELIVERY_OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .map_or(0, |i| self.deliveries[i].load(Ordering::Relaxed))
    }

    /// The Prometheus text exposition of these metrics followed by further `gauges` and
    /// counters (`totals`; name, help, value) kept elsewhere (transport, DNS cache).
    pub fn render(&self, gauges: &[(&str, &str, f64)], totals: &[(&str, &str, f64)]) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP btps_requests_total Requests by kind and outcome.\n");
        out.push_str("# TYPE btps_requests_total counter\n");
        {
            let m = self
                .requests
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for ((kind, outcome), v) in m.iter() {
                let _ = writeln!(
                    out,
                    "btps_requests_total{{kind=\"{kind}\",outcome=\"{outcome}\"}} {v}"
                );
            }
        }
        out.push_str("# HELP btps_request_seconds Pipeline latency.\n");
        out.push_str("# TYPE btps_request_seconds histogram\n");
        self.artifact_latency
            .render("btps_request_seconds", "class=\"artifact\",", &mut out);
        self.other_latency
            .render("btps_request_seconds", "class=\"other\",", &mut out);
        let counters = [
            (
                "btps_rate_limited_total",
                "Requests refused by a rate limit.",
                &self.rate_limited,
            ),
            (
                "btps_already_accepted_total",
                "Exact re-sends answered as already accepted.",
                &self.already_accepted,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        out.push_str(
            "# HELP btps_delivery_attempts_total Outbound delivery attempts by outcome.\n",
        );
        out.push_str("# TYPE btps_delivery_attempts_total counter\n");
        for (outcome, v) in DELIVERY_OUTCOMES.iter().zip(&self.deliveries) {
            let _ = writeln!(
                out,
                "btps_delivery_attempts_total{{outcome=\"{outcome}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP btps_delivery_in_flight Outbound delivery attempts in flight.\n# TYPE btps_delivery_in_flight gauge\nbtps_delivery_in_flight {}",
            self.deliveries_in_flight.load(Ordering::Relaxed)
        );
        for (name, help, v) in totals {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_histograms() {
        let m = Metrics::default();
        m.count("BTPS_DOC", "ok");
        m.count("BTPS_DOC", "ok");
        m.count("BTPS_DOC", "BTP_ERROR_SIG_VERIFICATION");
        m.artifact_latency.observe(Duration::from_micros(300));
        let text = m.render(
            &[("btps_open_connections", "Open connections.", 3.0)],
            &[("btps_connections_accepted_total", "Accepted.", 9.0)],
        );
        assert!(text.contains("btps_requests_total{kind=\"BTPS_DOC\",outcome=\"ok\"} 2"));
        assert!(text.contains("btps_request_seconds_bucket{class=\"artifact\",le=\"0.0005\"} 1"));
        assert!(text.contains("btps_request_seconds_count{class=\"artifact\"} 1"));
        assert!(text.contains("btps_open_connections 3"));
        assert!(text.contains(
            "# TYPE btps_connections_accepted_total counter\nbtps_connections_accepted_total 9"
        ));
        assert_eq!(m.get("BTPS_DOC", "ok"), 2);
    }

    #[test]
    fn renders_delivery_attempts() {
        let m = Metrics::default();
        m.count_delivery("delivered");
        m.count_delivery("retry");
        m.count_delivery("retry");
        m.count_delivery("nonsense");
        m.deliveries_in_flight.fetch_add(2, Ordering::Relaxed);
        assert_eq!(m.deliveries("retry"), 2);
        assert_eq!(m.deliveries("nonsense"), 0);
        let text = m.render(&[], &[]);
        assert!(text.contains("# TYPE btps_delivery_attempts_total counter\n"));
        assert!(text.contains("btps_delivery_attempts_total{outcome=\"delivered\"} 1\n"));
        assert!(text.contains("btps_delivery_attempts_total{outcome=\"retry\"} 2\n"));
        assert!(text.contains("btps_delivery_attempts_total{outcome=\"failed\"} 0\n"));
        assert!(text.contains("# TYPE btps_delivery_in_flight gauge\nbtps_delivery_in_flight 2\n"));
    }
}
