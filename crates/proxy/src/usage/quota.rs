//! Quota windows (UTC calendar) and the per-key counters.
//!
//! Windows: DAY is a UTC day; WEEK starts on **Sunday** 00:00 UTC (AWS: a week period with the
//! default start day begins on Sunday); MONTH is a calendar month in UTC. A window is named by
//! an index: days since the epoch, weeks since the Sunday before it, or `year × 12 + month`.

use std::{
    collections::BTreeMap,
    sync::{
        RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use turnpike_core::model::{Quota, QuotaPeriod};
use turnpike_telemetry::access_log::{civil_from_days, days_from_civil};

const DAY_NANOS: u64 = 86_400 * 1_000_000_000;
/// 1970-01-01 was a Thursday: day 3 (1970-01-04) is the first Sunday.
const FIRST_SUNDAY: i64 = 3;

/// The day (since the epoch, UTC) of a time.
pub fn day_of(now_nanos: u64) -> i64 {
    i64::try_from(now_nanos / DAY_NANOS).unwrap_or(i64::MAX)
}

/// The index of the window that contains `day`.
pub fn window_of(period: QuotaPeriod, day: i64) -> i64 {
    match period {
        QuotaPeriod::Day => day,
        QuotaPeriod::Week => (day - FIRST_SUNDAY).div_euclid(7),
        QuotaPeriod::Month => {
            let (y, m, _) = civil_from_days(day);
            y * 12 + i64::from(m) - 1
        }
    }
}

/// The first day of a window.
pub fn window_start(period: QuotaPeriod, window: i64) -> i64 {
    match period {
        QuotaPeriod::Day => window,
        QuotaPeriod::Week => window * 7 + FIRST_SUNDAY,
        QuotaPeriod::Month => {
            let month = u32::try_from(window.rem_euclid(12)).unwrap_or(0) + 1;
            days_from_civil(window.div_euclid(12), month, 1)
        }
    }
}

/// What one key has used under one plan: the quota counter of the current window and a
/// count per day (for usage reports). Lock-free for the quota; the per-day map takes a read
/// lock (and a write lock once a day).
#[derive(Debug)]
pub struct KeyUsage {
    /// `window << 40 | used` of the current quota window.
    state: AtomicU64,
    /// The quota it was made for (a change of period starts the count again).
    pub quota: Option<Quota>,
    days: RwLock<BTreeMap<i64, AtomicU64>>,
}

const USED_BITS: u32 = 40;
const USED_MASK: u64 = (1 << USED_BITS) - 1;

fn pack(window: i64, used: u64) -> u64 {
    (u64::try_from(window).unwrap_or(0) << USED_BITS) | used.min(USED_MASK)
}

fn unpack(state: u64) -> (i64, u64) {
    (i64::try_from(state >> USED_BITS).unwrap_or(0), state & USED_MASK)
}

// === impl KeyUsage ===

impl KeyUsage {
    /// A counter whose first window (the one `day` is in) starts with `offset` used.
    pub fn new(quota: Option<Quota>, day: i64) -> Self {
        let state = quota.map_or(0, |q| pack(window_of(q.period, day), q.offset));
        KeyUsage {
            state: AtomicU64::new(state),
            quota,
            days: RwLock::new(BTreeMap::new()),
        }
    }

    /// The same usage under a changed quota: the count carries over when the period is the
    /// same (a new limit applies to what is already used); a new period starts from zero.
    pub fn rebased(&self, quota: Option<Quota>, day: i64) -> Self {
        let same = matches!((self.quota, quota), (Some(a), Some(b)) if a.period == b.period);
        let state = match quota {
            Some(_) if same => self.state.load(Ordering::Relaxed),
            Some(q) => pack(window_of(q.period, day), 0),
            None => 0,
        };
        let days = self.days.read().map_or_else(
            |_| BTreeMap::new(),
            |d| {
                d.iter()
                    .map(|(k, v)| (*k, AtomicU64::new(v.load(Ordering::Relaxed))))
                    .collect()
            },
        );
        KeyUsage {
            state: AtomicU64::new(state),
            quota,
            days: RwLock::new(days),
        }
    }

    /// Counts one request against the quota; `false` when the window's quota is used up.
    pub fn try_take(&self, day: i64) -> bool {
        let Some(q) = self.quota else {
            return true;
        };
        let window = window_of(q.period, day);
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            let (w, used) = unpack(state);
            let used = if w == window { used } else { 0 };
            if used >= q.limit {
                return false;
            }
            match self.state.compare_exchange_weak(
                state,
                pack(window, used + 1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => state = seen,
            }
        }
    }

    /// Requests used in the window of `day` (including the offset of the first window).
    pub fn used(&self, day: i64) -> u64 {
        let Some(q) = self.quota else {
            return 0;
        };
        let (w, used) = unpack(self.state.load(Ordering::Relaxed));
        if w == window_of(q.period, day) { used } else { 0 }
    }

    /// Records an admitted request on its day (for usage reports).
    pub fn record(&self, day: i64) {
        if let Ok(days) = self.days.read()
            && let Some(n) = days.get(&day)
        {
            n.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Ok(mut days) = self.days.write() {
            days.entry(day).or_default().fetch_add(1, Ordering::Relaxed);
            // Keep about three months of history.
            while days.len() > 100 {
                days.pop_first();
            }
        }
    }

    /// Requests admitted per day, from `first` to `last` (inclusive), days without requests
    /// left out.
    pub fn days(&self, first: i64, last: i64) -> Vec<(i64, u64)> {
        self.days.read().map_or_else(
            |_| Vec::new(),
            |d| {
                d.range(first..=last)
                    .map(|(day, n)| (*day, n.load(Ordering::Relaxed)))
                    .collect()
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i64, m: u32, d: u32) -> i64 {
        days_from_civil(y, m, d)
    }

    #[test]
    fn weeks_start_on_sunday_and_months_on_the_first() {
        // 2026-11-29 is a Sunday.
        let sunday = day(2026, 11, 29);
        let w = window_of(QuotaPeriod::Week, sunday);
        assert_eq!(window_of(QuotaPeriod::Week, sunday - 1), w - 1);
        assert_eq!(window_of(QuotaPeriod::Week, sunday + 6), w);
        assert_eq!(window_start(QuotaPeriod::Week, w), sunday);
        let m = window_of(QuotaPeriod::Month, day(2026, 12, 31));
        assert_eq!(window_of(QuotaPeriod::Month, day(2027, 1, 1)), m + 1);
        assert_eq!(window_start(QuotaPeriod::Month, m), day(2026, 12, 1));
        assert_eq!(window_start(QuotaPeriod::Month, m + 1), day(2027, 1, 1));
        assert_eq!(
            window_start(
                QuotaPeriod::Month,
                window_of(QuotaPeriod::Month, day(2028, 2, 29))
            ),
            day(2028, 2, 1)
        );
    }

    #[test]
    fn the_offset_counts_in_the_first_window_only() {
        let q = Quota {
            limit: 3,
            period: QuotaPeriod::Day,
            offset: 2,
        };
        let today = day(2026, 12, 2);
        let u = KeyUsage::new(Some(q), today);
        assert!(u.try_take(today));
        assert!(!u.try_take(today));
        assert_eq!(u.used(today), 3);
        assert_eq!((0..5).filter(|_| u.try_take(today + 1)).count(), 3);
        assert_eq!(u.used(today + 2), 0);
    }
}
