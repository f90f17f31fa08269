//! Token-bucket rate limits keyed per request (PROTOCOL.md §11): per remote IP, per sender
//! identity, global, and for specific actions. Process-local.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use btps_types::UnixMillis;

const SHARDS: usize = 16;
/// Above this many keys in a shard, full (idle) buckets are dropped.
const SHARD_SOFT_CAP: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: i64,
}

/// A family of token buckets: each key may spend `capacity` requests at once and regains
/// `capacity` per `window_ms`. A capacity of 0 disables the limit.
#[derive(Debug)]
pub struct RateLimiter {
    capacity: f64,
    per_ms: f64,
    shards: Vec<Mutex<HashMap<String, Bucket>>>,
}

impl RateLimiter {
    /// `capacity` requests per `window_ms` per key.
    pub fn new(capacity: u32, window_ms: u64) -> Self {
        let capacity = f64::from(capacity);
        #[allow(clippy::cast_precision_loss, reason = "window is a few minutes in ms")]
        let per_ms = if window_ms == 0 {
            0.0
        } else {
            capacity / window_ms as f64
        };
        Self {
            capacity,
            per_ms,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// `count` per minute.
    pub fn per_minute(count: u32) -> Self {
        Self::new(count, 60_000)
    }

    /// Whether the limit is on.
    pub fn enabled(&self) -> bool {
        self.capacity > 0.0
    }

    /// Takes one token for `key` at `now`; `false` when the key is over its limit.
    pub fn check(&self, key: &str, now: UnixMillis) -> bool {
        if !self.enabled() {
            return true;
        }
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        #[allow(clippy::cast_possible_truncation, reason = "shard index")]
        let shard = &self.shards[(h.finish() as usize) % SHARDS];
        let mut map = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = now.as_millis();
        if map.len() >= SHARD_SOFT_CAP && !map.contains_key(key) {
            let (cap, per_ms) = (self.capacity, self.per_ms);
            map.retain(|_, b| refill(b, now, cap, per_ms) < cap);
        }
        let bucket = map.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.capacity,
            at: now,
        });
        let tokens = refill(bucket, now, self.capacity, self.per_ms);
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            bucket.at = now;
            true
        } else {
            bucket.tokens = tokens;
            bucket.at = now;
            false
        }
    }

    /// Whether `key` has a token left, without taking it.
    pub fn peek(&self, key: &str, now: UnixMillis) -> bool {
        if !self.enabled() {
            return true;
        }
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        #[allow(clippy::cast_possible_truncation, reason = "shard index")]
        let shard = &self.shards[(h.finish() as usize) % SHARDS];
        let map = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key).is_none_or(|b| {
            refill(&mut b.clone(), now.as_millis(), self.capacity, self.per_ms) >= 1.0
        })
    }
}

fn refill(b: &mut Bucket, now: i64, capacity: f64, per_ms: f64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "elapsed milliseconds")]
    let elapsed = now.saturating_sub(b.at).max(0) as f64;
    (b.tokens + elapsed * per_ms).min(capacity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_spends_and_refills() {
        let l = RateLimiter::per_minute(3);
        let t = UnixMillis::from_millis(1_000_000);
        assert!(l.check("a", t));
        assert!(l.check("a", t));
        assert!(l.check("a", t));
        assert!(!l.check("a", t));
        assert!(l.check("b", t), "keys are independent");
        // One token comes back every 20 s.
        assert!(!l.check("a", t.saturating_add_millis(19_000)));
        // 40 s after the start two tokens are back (the refused attempt did not spend one).
        assert!(l.check("a", t.saturating_add_millis(40_000)));
        assert!(l.check("a", t.saturating_add_millis(40_000)));
        assert!(!l.check("a", t.saturating_add_millis(40_000)));
    }

    #[test]
    fn zero_disables() {
        let l = RateLimiter::per_minute(0);
        for _ in 0..1000 {
            assert!(l.check("a", UnixMillis::EPOCH));
        }
    }

    #[test]
    fn many_keys_stay_bounded() {
        let l = RateLimiter::per_minute(5);
        let t = UnixMillis::from_millis(0);
        for i in 0..100_000 {
            l.check(&format!("k{i}"), t.saturating_add_millis(i * 1000));
        }
        let total: usize = l.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= SHARDS * SHARD_SOFT_CAP, "{total}");
    }
}
