//! The rebuild hold-off (Contour's `HoldoffDelay`/`HoldoffMaxDelay`): a change that arrives
//! after a quiet spell (no rebuild for `max`) is rebuilt at once, as Contour does, so an
//! isolated `kubectl apply` propagates without waiting; otherwise a burst of changes becomes
//! one rebuild, fired `delay` after the last change of the burst and never more than `max`
//! after its first, so a steady trickle of changes cannot starve publication.

use std::time::Duration;

use tokio::{sync::Notify, time::Instant};

/// The hold-off state of one burst. Pure: every method takes the time, so tests drive it with
/// made-up instants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holdoff {
    delay: Duration,
    max: Duration,
    first: Instant,
    last: Instant,
}

impl Holdoff {
    /// A burst that started with a change at `now`, after the last rebuild at `last_rebuild`:
    /// when that was `max` or longer ago, the burst fires at once.
    pub fn after(delay: Duration, max: Duration, now: Instant, last_rebuild: Option<Instant>) -> Self {
        let quiet = last_rebuild.is_none_or(|t| now.saturating_duration_since(t) >= max);
        if quiet {
            Holdoff {
                delay: Duration::ZERO,
                max: Duration::ZERO,
                first: now,
                last: now,
            }
        } else {
            Holdoff::new(delay, max, now)
        }
    }

    /// A burst that started with a change at `now`.
    pub fn new(delay: Duration, max: Duration, now: Instant) -> Self {
        Holdoff {
            delay,
            max,
            first: now,
            last: now,
        }
    }

    /// Another change at `now` pushes the deadline out (but never past `first + max`).
    pub fn changed(&mut self, now: Instant) {
        self.last = self.last.max(now);
    }

    /// When the rebuild fires: `delay` after the last change, capped at `max` after the first.
    pub fn deadline(&self) -> Instant {
        (self.last + self.delay).min(self.first + self.max)
    }
}

/// Waits for the first change, then for the hold-off of the burst it starts to end.
///
/// `changes` is the Notify every watch pokes; a permit stored before the call counts as the
/// first change. `last_rebuild` is when the previous rebuild ran.
pub async fn settle(changes: &Notify, delay: Duration, max: Duration, last_rebuild: Option<Instant>) {
    changes.notified().await;
    let mut holdoff = Holdoff::after(delay, max, Instant::now(), last_rebuild);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(holdoff.deadline()) => return,
            _ = changes.notified() => holdoff.changed(Instant::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn one_change_fires_after_the_delay() {
        let t0 = Instant::now();
        let h = Holdoff::new(100 * MS, 1000 * MS, t0);
        assert_eq!(h.deadline(), t0 + 100 * MS);
    }

    #[test]
    fn later_changes_push_the_deadline_out() {
        let t0 = Instant::now();
        let mut h = Holdoff::new(100 * MS, 1000 * MS, t0);
        h.changed(t0 + 50 * MS);
        assert_eq!(h.deadline(), t0 + 150 * MS);
        // An out-of-order (earlier) instant never pulls it back in.
        h.changed(t0 + 10 * MS);
        assert_eq!(h.deadline(), t0 + 150 * MS);
    }

    #[test]
    fn a_change_after_a_quiet_spell_fires_at_once() {
        let t0 = Instant::now();
        let h = Holdoff::after(100 * MS, 1000 * MS, t0 + 2000 * MS, Some(t0));
        assert_eq!(h.deadline(), t0 + 2000 * MS);
        let first = Holdoff::after(100 * MS, 1000 * MS, t0, None);
        assert_eq!(first.deadline(), t0);
    }

    #[test]
    fn a_change_soon_after_a_rebuild_is_held_off() {
        let t0 = Instant::now();
        let h = Holdoff::after(100 * MS, 1000 * MS, t0 + 300 * MS, Some(t0));
        assert_eq!(h.deadline(), t0 + 400 * MS);
    }

    #[test]
    fn a_steady_trickle_fires_at_the_max() {
        let t0 = Instant::now();
        let mut h = Holdoff::new(100 * MS, 1000 * MS, t0);
        for i in 1..=30 {
            h.changed(t0 + i * 50 * MS);
        }
        assert_eq!(h.deadline(), t0 + 1000 * MS);
    }
}
