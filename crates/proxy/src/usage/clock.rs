//! The time limits are measured in: a trait, so tests drive quota windows and buckets by hand
//! instead of sleeping.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Wall-clock time, in nanoseconds since the Unix epoch (UTC). Buckets need it to move
/// forward; quota windows need it to be the calendar (UTC days, weeks, months).
pub trait Clock: Send + Sync + 'static {
    fn now_nanos(&self) -> u64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_nanos(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

// === impl ManualClock ===

impl ManualClock {
    /// A clock at `unix_secs` seconds after the epoch.
    pub fn at(unix_secs: u64) -> Self {
        ManualClock(AtomicU64::new(unix_secs.saturating_mul(1_000_000_000)))
    }

    pub fn set_secs(&self, unix_secs: u64) {
        self.0
            .store(unix_secs.saturating_mul(1_000_000_000), Ordering::Relaxed);
    }

    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(by, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_nanos(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
