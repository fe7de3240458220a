//! Throttles and quotas: the mutable state behind usage plans, outside the routing table.
//!
//! State is keyed by stable ids, never by table entries, so it survives every table swap
//! (STYLE.md §6): a bucket by its level and the ids that name it (usage plan and key id; API
//! id, stage name, resource path and method), a quota counter by (usage plan, key id). A
//! bucket whose settings change is replaced, alone; a quota counter whose period changes
//! starts again, alone.
//!
//! Without Redis every replica enforces its share, `1/replicas` of each rate, burst and quota
//! (one replica is exact). The replica count comes from the replicas' own Leases (the
//! controller's `replicas` module calls [`Usage::set_replicas`]) unless `--replicas` fixes it;
//! a change of count replaces the buckets (full, at the new share) and keeps what each key
//! used of its quota. Quota usage then lives in memory: a restart starts
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
    sync::{
        Arc, RwLock,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwap;

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
    /// enforces `1/replicas` of every limit. The count at start; [`Usage::set_replicas`]
    /// changes it.
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
    /// The replica count in force (`config.replicas` at start).
    replicas: AtomicU32,
    hasher: foldhash::fast::RandomState,
    gateway: ArcSwap<Bucket>,
    buckets: RwLock<FastMap<StateId, Arc<Bucket>>>,
    keys: RwLock<FastMap<StateId, Arc<KeyUsage>>>,
    /// (plan, key id) of every key counter, for usage reports.
    names: RwLock<FastMap<StateId, (ObjectKey, KeyId)>>,
    shared: Option<Arc<redis::Shared>>,
    /// With Redis: how much of each (key counter, day) was added to the history in Redis.
    flushed: tokio::sync::Mutex<FastMap<(StateId, i64), u64>>,
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
            replicas: AtomicU32::new(config.replicas.max(1)),
            config,
            hasher: Default::default(),
            gateway: ArcSwap::from_pointee(gateway),
            buckets: Default::default(),
            keys: Default::default(),
            names: Default::default(),
            flushed: Default::default(),
        }
    }

    /// With Redis, starts adding what this process admits per key and day to the history in
    /// Redis, every 500 ms (needs a Tokio runtime).
    pub fn start_history(self: &Arc<Self>) {
        if self.shared.is_none() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(usage) = weak.upgrade() {
                usage.flush_history().await;
                drop(usage);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    /// Adds to the history in Redis what this process admitted since the last flush.
    pub async fn flush_history(&self) {
        let Some(shared) = &self.shared else {
            return;
        };
        if shared.mode() != redis::Mode::Shared {
            return;
        }
        let counters: Vec<(StateId, String, Arc<KeyUsage>)> = {
            let (Ok(names), Ok(keys)) = (self.names.read(), self.keys.read()) else {
                return;
            };
            names
                .iter()
                .filter_map(|(id, (plan, key))| Some((*id, quota_name(plan, key), keys.get(id)?.clone())))
                .collect()
        };
        let mut flushed = self.flushed.lock().await;
        let today = quota::day_of(self.now());
        // Days the in-memory history no longer keeps.
        flushed.retain(|(_, day), _| *day > today - 120);
        for (id, name, usage) in counters {
            for (day, n) in usage.days(i64::MIN, i64::MAX) {
                let done = flushed.entry((id, day)).or_default();
                if n > *done {
                    if shared.add_history(&name, day, n - *done).await.is_none() {
                        return;
                    }
                    *done = n;
                }
            }
        }
    }

    pub fn config(&self) -> &UsageConfig {
        &self.config
    }

    /// How many replicas share the local limits now.
    pub fn replicas(&self) -> u32 {
        self.replicas.load(Ordering::Relaxed)
    }

    /// Sets how many replicas share the local limits: each enforces `1/replicas` of every
    /// limit from now on (buckets start again, full, at the new share; quota counts carry
    /// over).
    pub fn set_replicas(&self, replicas: u32) {
        let replicas = replicas.max(1);
        if self.replicas.swap(replicas, Ordering::Relaxed) != replicas {
            self.gateway.store(Arc::new(Bucket::new(share(
                self.config.default_throttle,
                replicas,
            ))));
            tracing::info!(replicas, "local limits: each replica enforces 1/{replicas}");
        }
    }

    /// Gives back to Redis every quota request this replica leased and did not use (at
    /// shutdown, so the other replicas can admit them).
    pub async fn release(&self) {
        if let Some(shared) = &self.shared
            && shared.mode() == redis::Mode::Shared
        {
            shared.sweep(true).await;
            self.flush_history().await;
        }
    }

    /// Requests `key` used of its quota under `plan` in the current window (the offset
    /// included): from Redis when limits are shared (across every replica), else from this
    /// process's counters.
    pub async fn used_now(&self, plan: &ObjectKey, key: &KeyId, quota: Quota) -> u64 {
        let day = quota::day_of(self.now());
        if let Some(shared) = &self.shared
            && shared.mode() == redis::Mode::Shared
        {
            let window = quota::window_of(quota.period, day);
            return shared
                .quota_used(&quota_name(plan, key), window)
                .await
                .unwrap_or_default();
        }
        let id = self.id(("quota", plan, key));
        let usage = self.keys.read().ok().and_then(|m| m.get(&id).cloned());
        usage.map_or(0, |u| u.used(day))
    }

    /// Requests `key` made per day under `plan` (days since the epoch, in order): from Redis
    /// when limits are shared (every replica's, as of their last flush: call
    /// [`Usage::flush_history`] first to include this process's latest), else from this
    /// process's counters.
    pub async fn history(&self, plan: &ObjectKey, key: &KeyId) -> Vec<(i64, u64)> {
        if let Some(shared) = &self.shared
            && shared.mode() == redis::Mode::Shared
            && let Some(days) = shared.quota_days(&quota_name(plan, key)).await
        {
            return days;
        }
        let id = self.id(("quota", plan, key));
        let usage = self.keys.read().ok().and_then(|m| m.get(&id).cloned());
        usage.map_or_else(Vec::new, |u| u.days(i64::MIN, i64::MAX))
    }

    /// Whether usage is read from Redis (shared by every replica) rather than this process.
    pub fn shared_usage(&self) -> bool {
        self.mode() == Some(redis::Mode::Shared)
    }

    pub fn now(&self) -> u64 {
        self.config.clock.now_nanos()
    }

    /// The id of a bucket or counter named by `parts`.
    pub fn id(&self, parts: impl Hash) -> StateId {
        StateId(self.hasher.hash_one(parts))
    }

    /// The Redis connection, when one is configured (the stage cache's shared tier uses it too).
    pub fn redis(&self) -> Option<Arc<redis::Shared>> {
        self.shared.clone()
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
        let quota_name = quota.map(|(m, _)| quota_name(m.plan, m.key));
        let owned = metered.map(|m| (m.plan.clone(), *m.key, m.quota));
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
                        .lease_quota(&name, q.limit, lease.next_want(), q.offset, window, days)
                        .await
                    {
                        Some((0, _)) => return Err(Reject::QuotaExceeded),
                        Some((granted, used)) => {
                            lease.put_requests(&name, window, granted, q.limit.saturating_sub(used))
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
        self.key_usage(id, None, day, || (m.plan.clone(), *m.key))
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
                    share(settings, self.replicas()),
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
                if !self.gateway.load().try_take(now, 1) {
                    return Err(Reject::Throttled(ThrottleLevel::Gateway));
                }
            }
            Some(limit) => {
                let bucket = self.bucket(
                    self.id(("bucket", limit.name)),
                    share(limit.settings, self.replicas()),
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
        let quota = m.quota.map(|q| share_quota(q, self.replicas()));
        let usage = self.key_usage(id, quota, day, || (m.plan.clone(), *m.key));
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
            .filter_map(|(id, (_, key))| Some((*key, keys.get(id)?.clone())))
            .collect();
        out.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        out
    }
}

/// The name of a key's quota counter in Redis (inside the hash tag).
fn quota_name(plan: &ObjectKey, key: &KeyId) -> String {
    format!("q/{}/{}/{key}", plan.namespace, plan.name)
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
