//! Wall-clock time for freshness, expiry and timestamps; injectable for tests.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::SystemTime;

use btps_types::UnixMillis;

/// Where the pipeline reads the time.
pub trait WallClock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> UnixMillis;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemWallClock;

impl WallClock for SystemWallClock {
    fn now(&self) -> UnixMillis {
        UnixMillis::from_system_time(SystemTime::now()).unwrap_or(UnixMillis::EPOCH)
    }
}

/// A clock that says what it is told (tests, vector replays).
#[derive(Debug, Default)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    /// A clock at `t`.
    pub fn new(t: UnixMillis) -> Self {
        Self(AtomicI64::new(t.as_millis()))
    }

    /// Moves it to `t`.
    pub fn set(&self, t: UnixMillis) {
        self.0.store(t.as_millis(), Ordering::SeqCst);
    }

    /// Moves it by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl WallClock for FixedClock {
    fn now(&self) -> UnixMillis {
        UnixMillis::from_millis(self.0.load(Ordering::SeqCst))
    }
}
