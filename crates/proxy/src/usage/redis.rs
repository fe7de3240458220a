//! Limits shared across replicas through Redis (standalone or Cluster; TLS with `rediss://`,
//! AUTH as `redis://user:pass@host`).
//!
//! **Leases.** A request must not wait for Redis, so replicas lease small slices of a bucket
//! or quota with one atomic Lua script and hand them out locally; a request costs a round trip
//! only when its replica's slice is used up (at most one per request, most requests none).
//!
//! - Quota: the script grants up to `want` requests of the current window and never more than
//!   is left, so admitted requests never exceed the quota across replicas. The slice shrinks
//!   with what is left (a sixteenth of it, at most 1,000, at least 1), so near the end every
//!   replica leases one at a time and the whole quota is reachable: what may stay unused is
//!   what a replica leased and then saw no more requests for, at most a sixteenth of what was
//!   left when it leased.
//! - Throttle: a GCRA bucket in Redis, on the Redis server's clock (`TIME`), so replicas agree.
//!   A replica leases at most 20 ms of the rate (at least one token, at most the burst), and a
//!   lease expires after 20 ms. The slice follows the replica's own demand: it doubles when
//!   the last one was used up and halves when it expired unused. **Error bound:** over any interval `t`, admitted ≤
//!   `rate·t + burst + R·slice` (R replicas: each may spend a lease taken just before the
//!   interval); unused expiring leases can only admit less, by at most `R·slice` per 20 ms of
//!   idleness.
//!
//! Keys carry a hash tag (`tp:{<id>}:…`) so one bucket's or one key's counters live in one
//! Cluster slot and a script touches one slot.
//!
//! **Failure.** A Redis error or a call over 500 ms marks Redis down; a background task pings
//! it every 250 ms and marks it up when it answers (the connection reconnects by itself).
//! While it is down, `--redis-failure-mode open` enforces local limits with this replica's
//! share (`1/--replicas`), `closed` answers 503. `/readyz` and the metric
//! `turnpike_limits_shared` say which is in force.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwapOption;
use prometheus_client::metrics::gauge::Gauge;
use redis::{FromRedisValue, RedisResult, Script, ScriptInvocation, aio::ConnectionManager};

use super::StateId;
use turnpike_core::routing::FastMap;

/// What to do while Redis is unreachable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailureMode {
    /// Enforce local limits with this replica's share.
    #[default]
    Open,
    /// Answer 503.
    Closed,
}

impl std::str::FromStr for FailureMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(FailureMode::Open),
            "closed" => Ok(FailureMode::Closed),
            other => Err(format!("{other:?}: open or closed")),
        }
    }
}

/// Where Redis is.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// One URL for standalone Redis; with `cluster`, the seed nodes.
    pub urls: Vec<String>,
    pub cluster: bool,
    pub failure_mode: FailureMode,
}

/// Which limits are in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Shared through Redis.
    Shared,
    /// Redis is down: local limits with this replica's share.
    LocalFallback,
    /// Redis is down: requests with limits answer 503.
    Closed,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Shared => "shared",
            Mode::LocalFallback => "local",
            Mode::Closed => "closed",
        }
    }
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Conn {
    async fn run<T: FromRedisValue>(&mut self, call: &ScriptInvocation<'_>) -> RedisResult<T> {
        match self {
            Conn::Single(c) => call.invoke_async(c).await,
            Conn::Cluster(c) => call.invoke_async(c).await,
        }
    }

    async fn ping(&mut self) -> RedisResult<()> {
        let cmd = redis::cmd("PING");
        match self {
            Conn::Single(c) => cmd.query_async(c).await,
            Conn::Cluster(c) => cmd.query_async(c).await,
        }
    }
}

/// `KEYS[1]` bucket; `ARGV` interval µs, tolerance µs, want. Returns the tokens granted.
const BUCKET: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local base = math.max(tat, now)
local n = math.floor((now + tolerance - base) / interval)
n = math.min(n, tonumber(ARGV[3]))
if n <= 0 then return 0 end
local next = base + n * interval
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.floor((next - now) / 1000) + 1000)
return n
";

/// `KEYS[1]` counter of the window, `KEYS[2]` the first window ever seen, `KEYS[3]` uses per
/// day; `ARGV` limit, want, offset, ttl s, window, day. Returns {granted, used}.
const QUOTA: &str = r"
local used = redis.call('GET', KEYS[1])
if used then
  used = tonumber(used)
elseif redis.call('SET', KEYS[2], ARGV[5], 'NX') then
  used = tonumber(ARGV[3])
else
  used = 0
end
local grant = math.min(tonumber(ARGV[2]), tonumber(ARGV[1]) - used)
if grant < 0 then grant = 0 end
redis.call('SET', KEYS[1], used + grant, 'EX', ARGV[4])
if grant > 0 then
  redis.call('HINCRBY', KEYS[3], ARGV[6], grant)
end
return {grant, used + grant}
";

/// A slice leased from Redis, handed out locally.
#[derive(Debug, Default)]
pub struct Lease {
    tokens: AtomicU64,
    /// Bucket leases: when the tokens expire (ns). Quota leases: the window they belong to.
    until: AtomicI64,
    /// The next slice to ask for.
    want: AtomicU64,
    /// Held while a slice is leased: requests that run out together wait for one round
    /// trip instead of each making their own.
    pub refill: tokio::sync::Mutex<()>,
}

/// The Redis side of [`super::Usage`].
pub struct Shared {
    config: RedisConfig,
    conn: ArcSwapOption<Conn>,
    up: AtomicBool,
    bucket: Script,
    quota: Script,
    leases: RwLock<FastMap<StateId, Arc<Lease>>>,
    /// `turnpike_limits_mode`.
    gauge: Gauge,
}

pub type Wait = Pin<Box<dyn Future<Output = Result<(), crate::error::Reject>> + Send>>;

// === impl Shared ===

impl Shared {
    /// Starts connecting (in the background, again and again until it works).
    pub fn start(config: RedisConfig, gauge: Gauge) -> Arc<Self> {
        gauge.set(if config.failure_mode == FailureMode::Open {
            0
        } else {
            -1
        });
        let shared = Arc::new(Shared {
            gauge,
            config,
            conn: ArcSwapOption::empty(),
            up: AtomicBool::new(false),
            bucket: Script::new(BUCKET),
            quota: Script::new(QUOTA),
            leases: RwLock::default(),
        });
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            while let Some(shared) = weak.upgrade() {
                shared.check().await;
                drop(shared);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        shared
    }

    async fn connect(&self) -> RedisResult<Conn> {
        if self.config.cluster {
            let client = redis::cluster::ClusterClient::new(self.config.urls.clone())?;
            Ok(Conn::Cluster(client.get_async_connection().await?))
        } else {
            let url = self
                .config
                .urls
                .first()
                .map_or("redis://127.0.0.1", String::as_str);
            let client = redis::Client::open(url)?;
            let cfg = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Duration::from_millis(500))
                .set_response_timeout(Duration::from_millis(500))
                .set_number_of_retries(1);
            Ok(Conn::Single(
                ConnectionManager::new_with_config(client, cfg).await?,
            ))
        }
    }

    /// Connects if needed and pings while down; marks Redis up when it answers.
    async fn check(&self) {
        if self.up.load(Ordering::Relaxed) {
            return;
        }
        let conn = match self.conn.load_full() {
            Some(c) => c,
            None => match tokio::time::timeout(Duration::from_secs(2), self.connect()).await {
                Ok(Ok(c)) => {
                    let c = Arc::new(c);
                    self.conn.store(Some(c.clone()));
                    c
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "redis connect failed");
                    return;
                }
                Err(_) => return,
            },
        };
        let mut c = (*conn).clone();
        if let Ok(Ok(())) = tokio::time::timeout(Duration::from_millis(500), c.ping()).await {
            tracing::info!("redis reachable: limits are shared");
            // Leases from before the outage may be stale; start afresh.
            if let Ok(mut l) = self.leases.write() {
                l.clear();
            }
            self.up.store(true, Ordering::Relaxed);
            self.gauge.set(1);
        }
    }

    fn down(&self, error: &dyn std::fmt::Display) {
        if self.up.swap(false, Ordering::Relaxed) {
            self.gauge.set(if self.config.failure_mode == FailureMode::Open {
                0
            } else {
                -1
            });
            tracing::warn!(error = %error, mode = ?self.config.failure_mode, "redis unreachable");
        }
    }

    pub fn mode(&self) -> Mode {
        match (self.up.load(Ordering::Relaxed), self.config.failure_mode) {
            (true, _) => Mode::Shared,
            (false, FailureMode::Open) => Mode::LocalFallback,
            (false, FailureMode::Closed) => Mode::Closed,
        }
    }

    pub fn lease(&self, id: StateId) -> Arc<Lease> {
        if let Ok(map) = self.leases.read()
            && let Some(l) = map.get(&id)
        {
            return l.clone();
        }
        match self.leases.write() {
            Ok(mut map) => map.entry(id).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    async fn call<T: FromRedisValue>(&self, call: ScriptInvocation<'_>) -> Option<T> {
        let conn = self.conn.load_full()?;
        let mut c = (*conn).clone();
        match tokio::time::timeout(Duration::from_millis(500), c.run(&call)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.down(&e);
                None
            }
            Err(_) => {
                self.down(&"timed out");
                None
            }
        }
    }

    /// Leases tokens of a bucket named `name` (with its hash tag); `None` when Redis failed.
    pub async fn lease_bucket(&self, name: &str, rate: f64, burst: u64, want: u64) -> Option<u64> {
        let interval = if rate > 0.0 {
            (1e6 / rate).round().max(1.0) as u64
        } else {
            u64::MAX / 4
        };
        let tolerance = interval.saturating_mul(burst);
        let mut call = self.bucket.prepare_invoke();
        call.key(format!("tp:{{{name}}}:b"))
            .arg(interval)
            .arg(tolerance)
            .arg(want);
        self.call(call).await
    }

    /// Leases requests of a quota window; `None` when Redis failed, else (granted, used).
    #[allow(clippy::too_many_arguments)]
    pub async fn lease_quota(
        &self,
        name: &str,
        limit: u64,
        want: u64,
        offset: u64,
        window: i64,
        period_days: u64,
        day: i64,
    ) -> Option<(u64, u64)> {
        let mut call = self.quota.prepare_invoke();
        call.key(format!("tp:{{{name}}}:q:{window}"))
            .key(format!("tp:{{{name}}}:first"))
            .key(format!("tp:{{{name}}}:days"))
            .arg(limit)
            .arg(want)
            .arg(offset)
            // Kept a period past its end, for usage reports and late replicas.
            .arg(period_days * 2 * 86_400)
            .arg(window)
            .arg(day);
        self.call(call).await
    }
}

// === impl Lease ===

impl Lease {
    /// Takes a bucket token leased earlier, if it has not expired.
    pub fn take_token(&self, now: u64) -> bool {
        if i64::try_from(now).unwrap_or(i64::MAX) > self.until.load(Ordering::Relaxed) {
            return false;
        }
        take_one(&self.tokens)
    }

    /// The next bucket slice to ask for, at most `cap`: it follows this replica's demand,
    /// doubling when the last slice was used up and halving when it expired unused, so a
    /// replica never holds much more than it spends in a lease's life.
    pub fn bucket_want(&self, now: u64, cap: u64) -> u64 {
        let want = self.want.load(Ordering::Relaxed).max(1);
        let expired = i64::try_from(now).unwrap_or(i64::MAX) > self.until.load(Ordering::Relaxed);
        let next = if expired && self.tokens.load(Ordering::Relaxed) > 0 {
            want / 2
        } else {
            want * 2
        };
        let next = next.clamp(1, cap.max(1));
        self.want.store(next, Ordering::Relaxed);
        next
    }

    /// Stores newly leased bucket tokens, of which the caller uses one.
    pub fn put_tokens(&self, granted: u64, now: u64, valid: Duration) {
        let until = now.saturating_add(u64::try_from(valid.as_nanos()).unwrap_or(u64::MAX));
        self.tokens.store(granted.saturating_sub(1), Ordering::Relaxed);
        self.until
            .store(i64::try_from(until).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// Takes a quota request leased earlier for `window`.
    pub fn take_request(&self, window: i64) -> bool {
        if self.until.load(Ordering::Relaxed) != window {
            return false;
        }
        take_one(&self.tokens)
    }

    /// Stores newly leased quota requests, of which the caller uses one, and sizes the next
    /// slice from what is left.
    pub fn put_requests(&self, window: i64, granted: u64, left: u64) {
        if self.until.swap(window, Ordering::Relaxed) != window {
            self.tokens.store(0, Ordering::Relaxed);
        }
        self.tokens
            .fetch_add(granted.saturating_sub(1), Ordering::Relaxed);
        self.want.store((left / 16).clamp(1, 1_000), Ordering::Relaxed);
    }

    pub fn next_want(&self) -> u64 {
        self.want.load(Ordering::Relaxed).max(1)
    }
}

fn take_one(tokens: &AtomicU64) -> bool {
    tokens
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| t.checked_sub(1))
        .is_ok()
}
