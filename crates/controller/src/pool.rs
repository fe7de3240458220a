//! Values many objects repeat, kept once: the 10,000 ApiKeys of a usage plan hold one copy
//! of their list of plans rather than one small allocation each.

use std::{collections::HashSet, hash::Hash, sync::Arc};

/// Shared values handed out as `Arc`s: a value equal to one kept gets the one kept. Values
/// nothing else holds any more leave the pool when it has doubled since it last looked.
#[derive(Debug)]
pub struct Pool<T: ?Sized> {
    kept: HashSet<Arc<T>>,
    /// How many were kept after the last sweep.
    swept: usize,
}

impl<T: ?Sized> Default for Pool<T> {
    fn default() -> Self {
        Pool {
            kept: HashSet::new(),
            swept: 0,
        }
    }
}

/// The fewest values a pool keeps before it sweeps.
const SWEEP_FROM: usize = 32;

impl<T: ?Sized + Eq + Hash> Pool<T> {
    /// The kept value equal to `value`, or `value`, kept from now on.
    pub fn share(&mut self, value: Arc<T>) -> Arc<T> {
        if let Some(kept) = self.kept.get(&*value) {
            return kept.clone();
        }
        if self.kept.len() >= 2 * self.swept.max(SWEEP_FROM) {
            self.kept.retain(|v| Arc::strong_count(v) > 1);
            self.swept = self.kept.len();
        }
        self.kept.insert(value.clone());
        value
    }

    /// How many values are kept.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal values come back as one; a value no one holds leaves once the pool has doubled.
    #[test]
    fn equal_values_are_kept_once_and_unheld_ones_leave() {
        let mut pool: Pool<str> = Pool::default();
        let a = pool.share(Arc::from("default"));
        let b = pool.share(Arc::from("default"));
        assert!(Arc::ptr_eq(&a, &b));
        let other = pool.share(Arc::from("shop"));
        assert!(!Arc::ptr_eq(&a, &other));
        assert_eq!(pool.len(), 2);

        drop(other);
        let held: Vec<Arc<str>> = (0..SWEEP_FROM * 2)
            .map(|i| pool.share(Arc::from(format!("ns-{i}"))))
            .collect();
        assert!(pool.len() <= held.len() + 1, "shop left: {}", pool.len());
        assert!(Arc::ptr_eq(&a, &pool.share(Arc::from("default"))), "held, kept");

        let mut lists: Pool<[Box<str>]> = Pool::default();
        let one = lists.share(Arc::from(vec![Box::from("gold")]));
        let again = lists.share(Arc::from(vec![Box::from("gold")]));
        assert!(Arc::ptr_eq(&one, &again));
    }
}
