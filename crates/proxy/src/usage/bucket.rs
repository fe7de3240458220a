//! A token bucket as GCRA (the generic cell rate algorithm): one atomic "theoretical arrival
//! time", updated with a compare-and-swap, no lock.
//!
//! With rate `r` per second and burst `b`, each request moves the arrival time one interval
//! `T = 1/r` later (from now, if it is in the past); a request is admitted while the arrival
//! time stays within `b·T` of now. That is exactly a bucket of `b` tokens refilled at `r` per
//! second: `b` requests at once from a full bucket, then one every `T`.

use std::sync::atomic::{AtomicU64, Ordering};

use turnpike_core::model::Throttle;

const NANOS: f64 = 1e9;

/// One token bucket.
#[derive(Debug)]
pub struct Bucket {
    /// The theoretical arrival time, nanoseconds since the epoch.
    tat: AtomicU64,
    /// Nanoseconds per token; `u64::MAX` when the rate is 0 (nothing is ever admitted).
    interval: u64,
    /// How far ahead of now the arrival time may be: burst × interval.
    tolerance: u64,
    /// The settings it was built with (a change of settings replaces the bucket).
    pub settings: Throttle,
}

// === impl Bucket ===

impl Bucket {
    /// A full bucket.
    pub fn new(settings: Throttle) -> Self {
        let (interval, tolerance) = if settings.rate > 0.0 && settings.rate.is_finite() {
            // Saturating float → int casts: a rate below 1e-9/s is "never".
            let interval = ((NANOS / settings.rate).round() as u64).max(1);
            (interval, interval.saturating_mul(settings.burst))
        } else {
            (u64::MAX, 0)
        };
        Bucket {
            tat: AtomicU64::new(0),
            interval,
            tolerance,
            settings,
        }
    }

    /// Takes `n` tokens if the bucket has them.
    pub fn try_take(&self, now: u64, n: u64) -> bool {
        if n == 0 {
            return true;
        }
        let cost = self.interval.saturating_mul(n);
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now).saturating_add(cost);
            if next - now > self.tolerance {
                return false;
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(seen) => tat = seen,
            }
        }
    }

    /// Takes as many tokens as the bucket has, up to `max`; returns how many.
    pub fn take_up_to(&self, now: u64, max: u64) -> u64 {
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let base = tat.max(now);
            let room = (now.saturating_add(self.tolerance)).saturating_sub(base);
            let n = (room / self.interval.max(1)).min(max);
            if n == 0 {
                return 0;
            }
            let next = base + n * self.interval;
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return n,
                Err(seen) => tat = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_full_bucket_admits_the_burst_then_the_rate() {
        let b = Bucket::new(Throttle { rate: 10.0, burst: 5 });
        let t0 = 1_000 * S;
        assert_eq!((0..20).filter(|_| b.try_take(t0, 1)).count(), 5);
        // A tenth of a second later one more token is there, and only one.
        assert!(b.try_take(t0 + S / 10, 1));
        assert!(!b.try_take(t0 + S / 10, 1));
        // Over ten idle seconds the bucket refills to its burst, no further.
        let later = t0 + 10 * S;
        assert_eq!((0..20).filter(|_| b.try_take(later, 1)).count(), 5);
        // A second later the bucket is full again (5, not the 10 of a second's rate); then a
        // steady second admits the rate on top.
        let admitted = (0..1000u64)
            .filter(|i| b.try_take(later + S + i * S / 1000, 1))
            .count();
        assert!((14..=15).contains(&admitted), "{admitted}");
    }

    #[test]
    fn zero_rate_or_burst_admits_nothing() {
        let now = 5 * S;
        assert!(!Bucket::new(Throttle { rate: 0.0, burst: 10 }).try_take(now, 1));
        assert!(!Bucket::new(Throttle { rate: 10.0, burst: 0 }).try_take(now, 1));
    }

    #[test]
    fn take_up_to_hands_out_what_is_there() {
        let b = Bucket::new(Throttle {
            rate: 100.0,
            burst: 50,
        });
        let now = 7 * S;
        assert_eq!(b.take_up_to(now, 20), 20);
        assert_eq!(b.take_up_to(now, 100), 30);
        assert_eq!(b.take_up_to(now, 100), 0);
        assert_eq!(b.take_up_to(now + S / 10, 100), 10);
    }
}
