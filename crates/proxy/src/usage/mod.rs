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
pub mod redis;
pub mod report;

use std::{
    hash::{BuildHasher, Hash},
    sync::{Arc, RwLock},
    time::Duration,
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
    /// Shares buckets and quotas across replicas.
    pub redis: Option<redis::RedisConfig>,
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
            redis: None,
        }
    }
}

impl std::fmt::Debug for UsageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageConfig")
            .field("default_throttle", &self.default_throttle)
            .field("replicas", &self.replicas)
            .field("redis", &self.redis)
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
    shared: Option<Arc<redis::Shared>>,
}

/// The throttle that applies to a request, and the bucket it draws from.
#[derive(Clone, Copy, Debug)]
pub struct Limit<'a> {
    pub level: ThrottleLevel,
    pub name: BucketName<'a>,
    pub settings: Throttle,
}

/// The stable ids that name a bucket.
#[derive(Clone, Copy, Debug, Hash)]
pub enum BucketName<'a> {
    /// (plan, key id, resource path, method).
    PlanMethod(&'a ObjectKey, &'a KeyId, &'a str, &'a str),
    /// (plan, key id).
    Plan(&'a ObjectKey, &'a KeyId),
    /// (api id, stage, resource path, method).
    StageMethod(&'a str, &'a str, &'a str, &'a str),
    /// (api id, stage, resource path, method): the stage default, per method.
    Stage(&'a str, &'a str, &'a str, &'a str),
    Gateway,
}

impl BucketName<'_> {
    /// The name in Redis keys (braces of path templates replaced: they would end the hash
    /// tag early).
    fn redis_name(&self) -> String {
        let name = match self {
            BucketName::PlanMethod(p, k, path, m) => format!("pm/{}/{}/{k}/{m}{path}", p.namespace, p.name),
            BucketName::Plan(p, k) => format!("p/{}/{}/{k}", p.namespace, p.name),
            BucketName::StageMethod(a, s, path, m) => format!("sm/{a}/{s}/{m}{path}"),
            BucketName::Stage(a, s, path, m) => format!("s/{a}/{s}/{m}{path}"),
            BucketName::Gateway => "gateway".to_string(),
        };
        name.replace('{', "(").replace('}', ")")
    }
}

/// A key's quota under its plan.
#[derive(Clone, Copy, Debug)]
pub struct Metered<'a> {
    pub plan: &'a ObjectKey,
    pub key: &'a KeyId,
    pub quota: Option<Quota>,
}

/// Whether a request is admitted: known now, or after a round trip to Redis.
pub enum Admission {
    Now(Result<(), Reject>),
    Later(redis::Wait),
}

impl std::fmt::Debug for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Usage")
            .field("config", &self.config)
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

// === impl Usage ===

impl Usage {
    /// The usage state; with Redis configured, starts connecting to it in the background
    /// (so it needs a Tokio runtime).
    pub fn new(config: UsageConfig, mode_gauge: prometheus_client::metrics::gauge::Gauge) -> Self {
        let gateway = Bucket::new(share(config.default_throttle, config.replicas));
        let shared = config.redis.clone().map(|r| redis::Shared::start(r, mode_gauge));
        Usage {
            shared,
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

    /// Which limits are in force: `None` without Redis (local limits).
    pub fn mode(&self) -> Option<redis::Mode> {
        self.shared.as_ref().map(|s| s.mode())
    }

    /// Takes a token from the request's bucket (`None`: the gateway default), then counts the
    /// request against its key's quota. Refusals: 429 Too Many Requests, 429 Limit Exceeded,
    /// or 503 while Redis is down in closed mode.
    pub fn admit(self: &Arc<Self>, limit: Option<Limit<'_>>, metered: Option<Metered<'_>>) -> Admission {
        let now = self.now();
        let Some(shared) = &self.shared else {
            return Admission::Now(self.admit_locally(limit, metered, now));
        };
        match shared.mode() {
            redis::Mode::Shared => {}
            redis::Mode::LocalFallback => return Admission::Now(self.admit_locally(limit, metered, now)),
            redis::Mode::Closed => return Admission::Now(Err(Reject::LimitsUnavailable)),
        }
        let settings = limit.map_or(self.config.default_throttle, |l| l.settings);
        let level = limit.map_or(ThrottleLevel::Gateway, |l| l.level);
        let name = limit.map_or(BucketName::Gateway, |l| l.name);
        let bucket = shared.lease(self.id(("bucket", name)));
        let token = bucket.take_token(now);
        let day = quota::day_of(now);
        let quota = metered.and_then(|m| Some((m, m.quota?)));
        let lease = quota.map(|(m, q)| (m, q, shared.lease(self.id(("quota", m.plan, m.key)))));
        let request = lease
            .as_ref()
            .is_none_or(|(_, q, l)| token && l.take_request(quota::window_of(q.period, day)));
        if token && request {
            if let Some(m) = metered {
                self.record(m, now);
            }
            return Admission::Now(Ok(()));
        }
        // A slice ran out: one round trip for it.
        let this = self.clone();
        let shared = shared.clone();
        let bucket_name = (!token).then(|| name.redis_name());
        let quota_name = quota.map(|(m, _)| format!("q/{}/{}/{}", m.plan.namespace, m.plan.name, m.key));
        let owned = metered.map(|m| (m.plan.clone(), m.key.clone(), m.quota));
        let lease = lease.map(|(_, q, l)| (q, l));
        Admission::Later(Box::pin(async move {
            let _refilling = match &bucket_name {
                Some(_) => Some(bucket.refill.lock().await),
                None => None,
            };
            // Another request may have leased a slice while this one waited.
            let bucket_name = bucket_name.filter(|_| !bucket.take_token(this.now()));
            if let Some(name) = bucket_name {
                // Up to 20 ms of the rate, at least one token, at most the burst.
                let cap = ((settings.rate / 50.0).ceil() as u64).clamp(1, settings.burst.max(1));
                let want = bucket.bucket_want(now, cap);
                match shared
                    .lease_bucket(&name, settings.rate, settings.burst, want)
                    .await
                {
                    Some(0) => return Err(Reject::Throttled(level)),
                    Some(n) => bucket.put_tokens(n, this.now(), Duration::from_millis(20)),
                    None => return this.fallback((level, settings), owned, now),
                }
            }
            if let (Some((q, lease)), Some(name)) = (&lease, quota_name) {
                let window = quota::window_of(q.period, day);
                let _refilling = lease.refill.lock().await;
                if !lease.take_request(window) {
                    let days = match q.period {
                        turnpike_core::model::QuotaPeriod::Day => 1,
                        turnpike_core::model::QuotaPeriod::Week => 7,
                        turnpike_core::model::QuotaPeriod::Month => 31,
                    };
                    match shared
                        .lease_quota(&name, q.limit, lease.next_want(), q.offset, window, days, day)
                        .await
                    {
                        Some((0, _)) => return Err(Reject::QuotaExceeded),
                        Some((granted, used)) => {
                            lease.put_requests(window, granted, q.limit.saturating_sub(used))
                        }
                        None => return this.fallback((level, settings), owned, now),
                    }
                }
            }
            if let Some((plan, key, quota)) = &owned {
                this.record(
                    Metered {
                        plan,
                        key,
                        quota: *quota,
                    },
                    now,
                );
            }
            Ok(())
        }))
    }

    /// Records an admitted keyed request for usage reports (local).
    fn record(&self, m: Metered<'_>, now: u64) {
        let day = quota::day_of(now);
        let id = self.id(("quota", m.plan, m.key));
        // Under Redis the local counter only keeps the per-day history.
        self.key_usage(id, None, day, || (m.plan.clone(), m.key.clone()))
            .record(day);
    }

    /// Redis failed during the request: the failure mode decides.
    fn fallback(
        &self,
        limit: (ThrottleLevel, Throttle),
        owned: Option<(ObjectKey, KeyId, Option<Quota>)>,
        now: u64,
    ) -> Result<(), Reject> {
        match self.mode() {
            Some(redis::Mode::Closed) => Err(Reject::LimitsUnavailable),
            _ => {
                let (level, settings) = limit;
                let bucket = self.bucket(
                    self.id(("fallback", level.as_str())),
                    share(settings, self.config.replicas),
                );
                if !bucket.try_take(now, 1) {
                    return Err(Reject::Throttled(level));
                }
                match &owned {
                    Some((plan, key, quota)) => self.count(
                        Metered {
                            plan,
                            key,
                            quota: *quota,
                        },
                        now,
                    ),
                    None => Ok(()),
                }
            }
        }
    }

    fn admit_locally(
        &self,
        limit: Option<Limit<'_>>,
        metered: Option<Metered<'_>>,
        now: u64,
    ) -> Result<(), Reject> {
        match limit {
            None => {
                if !self.gateway.try_take(now, 1) {
                    return Err(Reject::Throttled(ThrottleLevel::Gateway));
                }
            }
            Some(limit) => {
                let bucket = self.bucket(
                    self.id(("bucket", limit.name)),
                    share(limit.settings, self.config.replicas),
                );
                if !bucket.try_take(now, 1) {
                    return Err(Reject::Throttled(limit.level));
                }
            }
        }
        match metered {
            Some(m) => self.count(m, now),
            None => Ok(()),
        }
    }

    /// Counts one request of a key under its plan, or refuses with 429 Limit Exceeded.
    fn count(&self, m: Metered<'_>, now: u64) -> Result<(), Reject> {
        let id = self.id(("quota", m.plan, m.key));
        let day = quota::day_of(now);
        let quota = m.quota.map(|q| share_quota(q, self.config.replicas));
        let usage = self.key_usage(id, quota, day, || (m.plan.clone(), m.key.clone()));
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
