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
//! - With `--cache-backend redis` ([`shared`]), a key the in-memory tier misses is looked up
//!   in Redis by the request that leads its fetch, and what the backend answers is stored in
//!   both tiers; flushes reach Redis through the stage's generation.

pub mod shared;

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use moka::{Expiry, future::Cache};
use tokio::sync::watch;

use crate::usage::{Clock, redis::Shared};
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

/// Where a stage's cache is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// In each replica's memory.
    #[default]
    Memory,
    /// In memory, in front of Redis (the usage plans' `--redis-url`), shared by the replicas.
    Redis,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "memory" => Ok(Backend::Memory),
            "redis" => Ok(Backend::Redis),
            other => Err(format!("{other:?}: memory or redis")),
        }
    }
}

/// How the stage caches are kept.
#[derive(Clone, Copy, Debug, Default)]
pub struct CacheConfig {
    pub backend: Backend,
    /// At most this many bytes per stage, whatever its `cacheClusterSize` (tests, small
    /// machines); `None`: the size as given.
    pub budget_cap: Option<u64>,
}

/// The caches of every stage that caches.
pub struct StageCaches {
    stages: RwLock<HashMap<StageId, Arc<StageCache>>>,
    clock: Arc<dyn Clock>,
    /// The shared tier (`--cache-backend redis`).
    redis: Option<Arc<Shared>>,
    budget_cap: Option<u64>,
}

/// A generation not read from Redis yet.
const UNKNOWN: u64 = u64::MAX;

/// One stage's cache.
pub struct StageCache {
    id: StageId,
    budget: u64,
    flush: Option<String>,
    entries: Cache<String, Arc<Entry>>,
    redis: Option<Arc<Shared>>,
    /// The stage's generation in Redis ([`UNKNOWN`] until read); shared by the caches that
    /// replace this one on a new flush token.
    generation: Arc<AtomicU64>,
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
        StageCaches::with_config(clock, CacheConfig::default(), None)
    }

    /// Stage caches kept as `config` says; `redis` is the usage plans' connection, used when
    /// the backend is [`Backend::Redis`].
    pub fn with_config(clock: Arc<dyn Clock>, config: CacheConfig, redis: Option<Arc<Shared>>) -> Self {
        StageCaches {
            stages: RwLock::new(HashMap::new()),
            clock,
            redis: redis.filter(|_| config.backend == Backend::Redis),
            budget_cap: config.budget_cap,
        }
    }

    /// The byte budget of a stage whose `cacheClusterSize` is `size` bytes (the cap applied).
    pub fn budget_of(&self, size: u64) -> u64 {
        self.budget_cap.map_or(size, |cap| size.min(cap))
    }

    /// Whether the caches are shared through Redis.
    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    /// Now, on the proxy's clock (nanoseconds).
    pub fn now(&self) -> u64 {
        self.clock.now_nanos()
    }

    /// The cache of a stage as the table describes it: created on first use, emptied when
    /// the stage's flush token changed, replaced when its budget did.
    pub fn stage(&self, api: &str, stage: &StageEntry) -> Arc<StageCache> {
        let flush = stage.cache_flush.as_deref();
        let budget = self.budget_of(stage.cache_budget);
        let id = StageId::new(api, &stage.name);
        if let Ok(map) = self.stages.read()
            && let Some(c) = map.get(&id)
            && c.budget == budget
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
            Some(c) if c.budget == budget && c.flush.as_deref() == flush => return c,
            Some(c) if c.budget == budget => {
                tracing::info!(api, stage = %stage.name, "stage cache flushed (flush-cache annotation)");
                c.entries.invalidate_all();
                Arc::new(StageCache {
                    id: c.id.clone(),
                    budget: c.budget,
                    flush: flush.map(str::to_owned),
                    entries: c.entries.clone(),
                    redis: c.redis.clone(),
                    generation: c.generation.clone(),
                    inflight: c.inflight.clone(),
                })
            }
            _ => {
                let mut c = StageCache::new(budget, flush.map(str::to_owned));
                c.id = id.clone();
                c.redis = self.redis.clone();
                Arc::new(c)
            }
        };
        map.insert(id, next.clone());
        next
    }

    /// Empties a stage's cache (the admin endpoint), and with the shared tier, every
    /// replica's: the stage's generation in Redis moves on. `None` when the stage has no cache
    /// on this replica; else whether the shared tier was flushed too.
    pub async fn flush(&self, api: &str, stage: &str) -> Option<bool> {
        let id = StageId::new(api, stage);
        let found = self.stages.read().ok().and_then(|m| m.get(&id).cloned())?;
        found.entries.invalidate_all();
        let shared = match &found.redis {
            Some(redis) => {
                let cmd = redis::cmd("INCR").arg(shared::gen_key(&id)).clone();
                let next: Option<u64> = redis.command(&cmd, shared::BOUND).await;
                if let Some(g) = next {
                    found.generation.store(g, Ordering::Relaxed);
                }
                next.is_some()
            }
            None => false,
        };
        tracing::info!(api, stage, shared, "stage cache flushed (admin)");
        Some(shared)
    }

    /// With the shared tier: reads every stage's generation and empties the in-memory tier
    /// of those whose generation moved (another replica flushed them). Every 500 ms.
    pub async fn sync_generations(&self) {
        if self.redis.is_none() {
            return;
        }
        let caches: Vec<Arc<StageCache>> = match self.stages.read() {
            Ok(m) => m.values().cloned().collect(),
            Err(_) => return,
        };
        for c in caches {
            let Some(g) = c.read_generation().await else {
                continue;
            };
            let before = c.generation.swap(g, Ordering::Relaxed);
            if before != UNKNOWN && before != g {
                tracing::info!(api = %c.id.api, stage = %c.id.stage, "stage cache flushed (by another replica)");
                c.entries.invalidate_all();
            }
        }
    }

    /// Each stage's cache: (api id, stage name, entries, bytes), counts applied first.
    pub async fn sizes(&self) -> Vec<(StageId, u64, u64)> {
        let caches: Vec<Arc<StageCache>> = match self.stages.read() {
            Ok(m) => m.values().cloned().collect(),
            Err(_) => return Vec::new(),
        };
        let mut out = Vec::with_capacity(caches.len());
        for c in caches {
            c.sync().await;
            out.push((c.id.clone(), c.entry_count(), c.weighted_size()));
        }
        out
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
            id: StageId::new("", ""),
            budget,
            flush,
            entries,
            redis: None,
            generation: Arc::new(AtomicU64::new(UNKNOWN)),
            inflight: Arc::default(),
        }
    }

    /// The stage's generation in Redis (0 before the first flush); `None` when Redis failed.
    async fn read_generation(&self) -> Option<u64> {
        let redis = self.redis.as_ref()?;
        let cmd = redis::cmd("GET").arg(shared::gen_key(&self.id)).clone();
        let g: Option<Option<u64>> = redis.command(&cmd, shared::BOUND).await;
        g.map(Option::unwrap_or_default)
    }

    /// The Redis name of `key`, reading the generation first if it is not known yet.
    async fn shared_name(&self, key: &str) -> Option<(&Shared, String)> {
        let redis = self.redis.as_deref()?;
        if !redis.is_up() {
            return None;
        }
        let mut g = self.generation.load(Ordering::Relaxed);
        if g == UNKNOWN {
            g = self.read_generation().await?;
            let _ = self
                .generation
                .compare_exchange(UNKNOWN, g, Ordering::Relaxed, Ordering::Relaxed);
        }
        Some((redis, shared::entry_key(&self.id, self.flush.as_deref(), g, key)))
    }

    /// The shared tier's fresh entry of a key at `now`, kept in the in-memory tier too;
    /// `None` without the shared tier, on a miss, or when Redis failed (bounded).
    pub async fn get_shared(&self, key: &str, now: u64) -> Option<Arc<Entry>> {
        let (redis, name) = self.shared_name(key).await?;
        let cmd = redis::cmd("GET").arg(name).clone();
        let bytes: Option<Vec<u8>> = redis.command(&cmd, shared::BOUND).await?;
        let entry = shared::decode(&bytes?)?;
        if !entry.fresh(now) {
            return None;
        }
        let entry = Arc::new(entry);
        self.entries.insert(key.to_string(), entry.clone()).await;
        Some(entry)
    }

    /// Stores an entry in the shared tier for its remaining TTL (no-op without it, or when
    /// Redis failed: bounded).
    pub async fn put_shared(&self, key: &str, entry: &Entry, now: u64) {
        let left = entry
            .ttl
            .saturating_sub(Duration::from_nanos(now.saturating_sub(entry.stored_at)));
        let left_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
        if left_ms == 0 {
            return;
        }
        let Some((redis, name)) = self.shared_name(key).await else {
            return;
        };
        let cmd = redis::cmd("SET")
            .arg(name)
            .arg(shared::encode(entry))
            .arg("PX")
            .arg(left_ms)
            .clone();
        let _: Option<()> = redis.command(&cmd, shared::BOUND).await;
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

    pub async fn insert(&self, key: String, entry: Entry) -> Arc<Entry> {
        let entry = Arc::new(entry);
        self.entries.insert(key, entry.clone()).await;
        entry
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
