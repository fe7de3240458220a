//! Throttles and quotas: the mutable state behind usage plans, outside the routing table.
//!
//! State is keyed by stable ids, never by table entries, so it survives every table swap
//! (STYLE.md §6): a bucket by its level and the ids that name it (usage plan and key id; API
//! id, stage name, resource path and method), a quota counter by (usage plan, key id). A
//! bucket whose settings change is replaced, alone; a quota counter whose period changes
//! starts again, alone.
//!
//! Without Redis every replica enforces its share, `1/replicas` of each rate, burst and quota
//! (`--replicas`; one replica is exact). Quota usage then lives in memory: a restart starts
//! every key's current window again from zero (the `offset` applies to the first window a
//! process sees). With Redis (`--redis-url`, see [`redis`]) the counters are shared and
//! survive restarts.

pub mod bucket;
pub mod clock;
pub mod quota;

use std::{
    hash::{BuildHasher, Hash},
    sync::{Arc, RwLock},
};

use crate::error::{Reject, ThrottleLevel};
pub use bucket::Bucket;
pub use clock::{Clock, ManualClock, SystemClock};
pub use quota::KeyUsage;
use turnpike_core::model::{KeyId, ObjectKey, Quota, Throttle};
use turnpike_core::routing::FastMap;

/// How usage plans are enforced.
#[derive(Clone)]
pub struct UsageConfig {
    /// The throttle of requests no usage plan or stage limits (AWS: the account's 10,000 rps
    /// with a burst of 5,000), for this whole gateway.
    pub default_throttle: Throttle,
    /// How many replicas share the limits when they are not shared through Redis: each
    /// enforces `1/replicas` of every limit.
    pub replicas: u32,
    pub clock: Arc<dyn Clock>,
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig {
            default_throttle: Throttle {
                rate: 10_000.0,
                burst: 5_000,
            },
            replicas: 1,
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for UsageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageConfig")
            .field("default_throttle", &self.default_throttle)
            .field("replicas", &self.replicas)
            .finish_non_exhaustive()
    }
}

/// The id of a bucket or counter: a hash of its stable ids (seeded per process; the ids come
/// from configuration, not from requests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StateId(u64);

/// The buckets and quota counters of one gateway process.
pub struct Usage {
    config: UsageConfig,
    hasher: foldhash::fast::RandomState,
    gateway: Bucket,
    buckets: RwLock<FastMap<StateId, Arc<Bucket>>>,
    keys: RwLock<FastMap<StateId, Arc<KeyUsage>>>,
    /// (plan, key id) of every key counter, for usage reports.
    names: RwLock<FastMap<StateId, (ObjectKey, KeyId)>>,
}

/// The throttle that applies to a request, and the bucket it draws from.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    pub level: ThrottleLevel,
    pub id: StateId,
    pub settings: Throttle,
}

// === impl Usage ===

impl Usage {
    pub fn new(config: UsageConfig) -> Self {
        let gateway = Bucket::new(share(config.default_throttle, config.replicas));
        Usage {
            config,
            hasher: Default::default(),
            gateway,
            buckets: Default::default(),
            keys: Default::default(),
            names: Default::default(),
        }
    }

    pub fn config(&self) -> &UsageConfig {
        &self.config
    }

    pub fn now(&self) -> u64 {
        self.config.clock.now_nanos()
    }

    /// The id of a bucket or counter named by `parts`.
    pub fn id(&self, parts: impl Hash) -> StateId {
        StateId(self.hasher.hash_one(parts))
    }

    /// Takes one token from a limit's bucket, or refuses with 429 Too Many Requests.
    pub fn throttle(&self, limit: Option<Limit>, now: u64) -> Result<(), Reject> {
        let Some(limit) = limit else {
            return if self.gateway.try_take(now, 1) {
                Ok(())
            } else {
                Err(Reject::Throttled(ThrottleLevel::Gateway))
            };
        };
        let bucket = self.bucket(limit.id, share(limit.settings, self.config.replicas));
        if bucket.try_take(now, 1) {
            Ok(())
        } else {
            Err(Reject::Throttled(limit.level))
        }
    }

    /// Counts one request of a key under its plan, or refuses with 429 Limit Exceeded.
    pub fn count(&self, plan: &ObjectKey, key: &KeyId, quota: Option<Quota>, now: u64) -> Result<(), Reject> {
        let id = self.id(("quota", plan, key));
        let day = quota::day_of(now);
        let usage = self.key_usage(
            id,
            quota.map(|q| share_quota(q, self.config.replicas)),
            day,
            || (plan.clone(), key.clone()),
        );
        if usage.try_take(day) {
            usage.record(day);
            Ok(())
        } else {
            Err(Reject::QuotaExceeded)
        }
    }

    fn bucket(&self, id: StateId, settings: Throttle) -> Arc<Bucket> {
        if let Ok(map) = self.buckets.read()
            && let Some(b) = map.get(&id)
            && b.settings == settings
        {
            return b.clone();
        }
        let Ok(mut map) = self.buckets.write() else {
            return Arc::new(Bucket::new(settings));
        };
        let b = map.entry(id).or_insert_with(|| Arc::new(Bucket::new(settings)));
        if b.settings != settings {
            // New settings: this bucket alone starts again, full.
            *b = Arc::new(Bucket::new(settings));
        }
        b.clone()
    }

    fn key_usage(
        &self,
        id: StateId,
        quota: Option<Quota>,
        day: i64,
        name: impl FnOnce() -> (ObjectKey, KeyId),
    ) -> Arc<KeyUsage> {
        let same_period =
            |u: &KeyUsage| u.quota.map(|q| (q.period, q.limit)) == quota.map(|q| (q.period, q.limit));
        if let Ok(map) = self.keys.read()
            && let Some(u) = map.get(&id)
            && same_period(u)
        {
            return u.clone();
        }
        let Ok(mut map) = self.keys.write() else {
            return Arc::new(KeyUsage::new(quota, day));
        };
        let u = map
            .entry(id)
            .or_insert_with(|| Arc::new(KeyUsage::new(quota, day)));
        if !same_period(u) {
            *u = Arc::new(u.rebased(quota, day));
        }
        if let Ok(mut names) = self.names.write() {
            names.entry(id).or_insert_with(name);
        }
        u.clone()
    }

    /// The usage of every key of a plan: (key id, counter).
    pub fn plan_usage(&self, plan: &ObjectKey) -> Vec<(KeyId, Arc<KeyUsage>)> {
        let (Ok(names), Ok(keys)) = (self.names.read(), self.keys.read()) else {
            return Vec::new();
        };
        let mut out: Vec<(KeyId, Arc<KeyUsage>)> = names
            .iter()
            .filter(|(_, (p, _))| p == plan)
            .filter_map(|(id, (_, key))| Some((key.clone(), keys.get(id)?.clone())))
            .collect();
        out.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        out
    }
}

/// A replica's share of a throttle: `1/replicas` of the rate and of the burst (at least 1).
fn share(t: Throttle, replicas: u32) -> Throttle {
    if replicas <= 1 {
        return t;
    }
    Throttle {
        rate: t.rate / f64::from(replicas),
        burst: (t.burst / u64::from(replicas)).max(1),
    }
}

/// A replica's share of a quota.
fn share_quota(q: Quota, replicas: u32) -> Quota {
    if replicas <= 1 {
        return q;
    }
    Quota {
        limit: q.limit / u64::from(replicas),
        offset: q.offset / u64::from(replicas),
        ..q
    }
}
