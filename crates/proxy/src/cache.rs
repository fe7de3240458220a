//! The stage cache: answers of cached methods, kept per stage, outside the routing table.
//!
//! ```text
//! StageCaches ── (api id, stage name) ──► StageCache { budget, flush token, entries, in flight }
//!                                              entries: moka (bytes weigher, W-TinyLFU, per-entry TTL)
//! ```
//!
//! Contract:
//! - One [`StageCache`] per stage, keyed by stable ids (the api id and the stage name), so it
//!   survives table swaps. It is replaced (emptied) when the stage's budget changes, emptied
//!   when its flush token (the `turnpike.dev/flush-cache` annotation) changes or when the
//!   admin endpoint flushes it, and dropped when the stage leaves the table or stops caching
//!   ([`StageCaches::retain`]).
//! - The budget is `cacheClusterSize` in bytes, per replica; entries weigh their key, headers
//!   and body. moka's admission (W-TinyLFU) keeps frequently used entries over one-off ones
//!   when the budget is full.
//! - Freshness is decided against the proxy's clock ([`Clock`], injectable for tests): an
//!   entry older than its TTL is a miss. moka's own per-entry expiry, on the real clock, is the
//!   backstop that frees the memory.
//! - Misses are coalesced per key ([`StageCache::lead`]): the first request for a key leads,
//!   the others wait (bounded) until its answer is stored or it gives up.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use moka::{Expiry, future::Cache};
use tokio::sync::watch;

use crate::usage::Clock;
use turnpike_core::routing::{RoutingTable, StageEntry};

/// The largest answer body that is cached (AWS: 1,048,576 bytes).
pub const MAX_ENTRY_BYTES: usize = 1_048_576;

/// A stage, by stable ids: the api id and the stage name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StageId {
    pub api: String,
    pub stage: String,
}

impl StageId {
    fn new(api: &str, stage: &str) -> Self {
        StageId {
            api: api.to_string(),
            stage: stage.to_string(),
        }
    }
}

/// A cached answer.
#[derive(Debug)]
pub struct Entry {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When it was stored, on the proxy's clock (nanoseconds).
    pub stored_at: u64,
    pub ttl: Duration,
}

// === impl Entry ===

impl Entry {
    /// Whole seconds since the entry was stored (the `Age` header).
    pub fn age_secs(&self, now: u64) -> u64 {
        now.saturating_sub(self.stored_at) / 1_000_000_000
    }

    fn fresh(&self, now: u64) -> bool {
        u128::from(now.saturating_sub(self.stored_at)) < self.ttl.as_nanos()
    }

    /// What the entry weighs against the budget: the body, the headers and the key.
    fn weight(&self, key: &str) -> u32 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 32)
            .sum();
        u32::try_from(key.len() + headers + self.body.len() + 128).unwrap_or(u32::MAX)
    }
}

/// moka's per-entry expiry: the entry's own TTL, on the real clock (the backstop).
struct EntryTtl;

impl Expiry<String, Arc<Entry>> for EntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The caches of every stage that caches.
pub struct StageCaches {
    stages: RwLock<HashMap<StageId, Arc<StageCache>>>,
    clock: Arc<dyn Clock>,
}

/// One stage's cache.
pub struct StageCache {
    budget: u64,
    flush: Option<String>,
    entries: Cache<String, Arc<Entry>>,
    /// Keys being fetched, each with the channel its waiters watch (closed when the leader
    /// is done).
    inflight: Arc<RwLock<HashMap<String, watch::Receiver<()>>>>,
}

/// What [`StageCache::lead`] makes of a miss.
pub enum Lead {
    /// Fetch it; waiters are released when the guard drops.
    Leader(LeadGuard),
    /// Another request is fetching it: wait for it.
    Wait(watch::Receiver<()>),
}

/// Held by the request that fetches a key; dropping it releases the waiters.
pub struct LeadGuard {
    key: String,
    inflight: Arc<RwLock<HashMap<String, watch::Receiver<()>>>>,
    _done: watch::Sender<()>,
}

impl Drop for LeadGuard {
    fn drop(&mut self) {
        if let Ok(mut map) = self.inflight.write() {
            map.remove(&self.key);
        }
    }
}

// === impl StageCaches ===

impl std::fmt::Debug for StageCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageCaches")
            .field("stages", &self.stage_count())
            .finish_non_exhaustive()
    }
}

impl StageCaches {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        StageCaches {
            stages: RwLock::new(HashMap::new()),
            clock,
        }
    }

    /// Now, on the proxy's clock (nanoseconds).
    pub fn now(&self) -> u64 {
        self.clock.now_nanos()
    }

    /// The cache of a stage as the table describes it: created on first use, emptied when
    /// the stage's flush token changed, replaced when its budget did.
    pub fn stage(&self, api: &str, stage: &StageEntry) -> Arc<StageCache> {
        let flush = stage.cache_flush.as_deref();
        let id = StageId::new(api, &stage.name);
        if let Ok(map) = self.stages.read()
            && let Some(c) = map.get(&id)
            && c.budget == stage.cache_budget
            && c.flush.as_deref() == flush
        {
            return c.clone();
        }
        let mut map = match self.stages.write() {
            Ok(map) => map,
            // A panic while the map was held leaves it as it was: keep using it.
            Err(poisoned) => poisoned.into_inner(),
        };
        let current = map.get(&id).cloned();
        let next = match current {
            Some(c) if c.budget == stage.cache_budget && c.flush.as_deref() == flush => return c,
            Some(c) if c.budget == stage.cache_budget => {
                tracing::info!(api, stage = %stage.name, "stage cache flushed (flush-cache annotation)");
                c.entries.invalidate_all();
                Arc::new(StageCache {
                    budget: c.budget,
                    flush: flush.map(str::to_owned),
                    entries: c.entries.clone(),
                    inflight: c.inflight.clone(),
                })
            }
            _ => Arc::new(StageCache::new(stage.cache_budget, flush.map(str::to_owned))),
        };
        map.insert(id, next.clone());
        next
    }

    /// Empties a stage's cache (the admin endpoint); `false` when the stage has none.
    pub fn flush(&self, api: &str, stage: &str) -> bool {
        let id = StageId::new(api, stage);
        let found = self.stages.read().ok().and_then(|m| m.get(&id).cloned());
        match found {
            Some(c) => {
                c.entries.invalidate_all();
                tracing::info!(api, stage, "stage cache flushed (admin)");
                true
            }
            None => false,
        }
    }

    /// Drops the caches of stages that are gone from `table` or no longer cache.
    pub fn retain(&self, table: &RoutingTable) {
        let Ok(mut map) = self.stages.write() else { return };
        map.retain(|id, _| {
            table
                .api(&id.api)
                .and_then(|a| a.stages.get(&id.stage))
                .is_some_and(|s| s.cache_enabled)
        });
    }

    /// The cache of a stage, if it has one (tests, admin).
    pub fn get(&self, api: &str, stage: &str) -> Option<Arc<StageCache>> {
        let id = StageId::new(api, stage);
        self.stages.read().ok().and_then(|m| m.get(&id).cloned())
    }

    /// How many stages have a cache.
    pub fn stage_count(&self) -> usize {
        self.stages.read().map_or(0, |m| m.len())
    }
}

// === impl StageCache ===

impl StageCache {
    fn new(budget: u64, flush: Option<String>) -> Self {
        let entries = Cache::builder()
            .max_capacity(budget)
            .weigher(|k: &String, v: &Arc<Entry>| v.weight(k))
            .expire_after(EntryTtl)
            .build();
        StageCache {
            budget,
            flush,
            entries,
            inflight: Arc::default(),
        }
    }

    /// The fresh entry of a key at `now`; a stale one is removed.
    pub async fn get(&self, key: &str, now: u64) -> Option<Arc<Entry>> {
        let entry = self.entries.get(key).await?;
        if entry.fresh(now) {
            return Some(entry);
        }
        self.entries.invalidate(key).await;
        None
    }

    pub async fn insert(&self, key: String, entry: Entry) {
        self.entries.insert(key, Arc::new(entry)).await;
    }

    pub async fn invalidate(&self, key: &str) {
        self.entries.invalidate(key).await;
    }

    /// Leads the fetch of `key`, or joins the one in flight.
    pub fn lead(&self, key: &str) -> Lead {
        let mut map = match self.inflight.write() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(rx) = map.get(key) {
            return Lead::Wait(rx.clone());
        }
        let (tx, rx) = watch::channel(());
        map.insert(key.to_string(), rx);
        Lead::Leader(LeadGuard {
            key: key.to_string(),
            inflight: self.inflight.clone(),
            _done: tx,
        })
    }

    /// The budget, in bytes.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Applies pending evictions and counts (moka does its housekeeping lazily).
    pub async fn sync(&self) {
        self.entries.run_pending_tasks().await;
    }

    /// Entries held (approximate until [`StageCache::sync`]).
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// Bytes held against the budget (approximate until [`StageCache::sync`]).
    pub fn weighted_size(&self) -> u64 {
        self.entries.weighted_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(bytes: usize, stored_at: u64) -> Entry {
        Entry {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(vec![b'x'; bytes]),
            stored_at,
            ttl: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn a_stream_of_distinct_keys_stays_within_the_budget() {
        let budget = 100_000;
        let cache = StageCache::new(budget, None);
        for i in 0..1_000 {
            cache.insert(format!("key-{i}"), entry(1_000, 0)).await;
        }
        cache.sync().await;
        assert!(
            cache.weighted_size() <= budget,
            "{} > {budget}",
            cache.weighted_size()
        );
        assert!(cache.entry_count() < 100, "{} entries", cache.entry_count());
        assert!(cache.entry_count() > 0);
    }

    #[tokio::test]
    async fn entries_expire_on_the_given_clock() {
        let cache = StageCache::new(1_000_000, None);
        cache.insert("k".into(), entry(10, 1_000)).await;
        let at = |secs: u64| 1_000 + secs * 1_000_000_000;
        assert_eq!(cache.get("k", at(59)).await.map(|e| e.age_secs(at(59))), Some(59));
        assert!(cache.get("k", at(60)).await.is_none());
        assert!(cache.get("k", at(1)).await.is_none(), "a stale entry is removed");
    }

    #[tokio::test]
    async fn one_leader_per_key_and_waiters_are_released_when_it_is_done() {
        let cache = StageCache::new(1_000_000, None);
        let Lead::Leader(guard) = cache.lead("k") else {
            panic!("the first is the leader")
        };
        let Lead::Wait(mut waiter) = cache.lead("k") else {
            panic!("the second waits")
        };
        assert!(matches!(cache.lead("other"), Lead::Leader(_)));
        drop(guard);
        assert!(waiter.changed().await.is_err(), "released");
        assert!(
            matches!(cache.lead("k"), Lead::Leader(_)),
            "the next miss leads again"
        );
    }
}
