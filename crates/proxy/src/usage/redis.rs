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
//!   replica leases one at a time and the whole quota is reachable. A replica gives back what
//!   it leased and did not use when the slice sits idle (no request took from it between two
//!   sweeps, 0.5 to 1 s apart) and when it shuts down, so clients that stop using a replica do
//!   not strand its slice: what a crashed replica held (at most a sixteenth of what was left
//!   when it leased) is the only part of a quota that may stay unused.
//! - Usage history: each replica counts what it admits per key and UTC day in memory and adds
//!   it to `…:days` (a hash by day, kept 90 days after its last write) every 500 ms and at
//!   shutdown, so `/usage` and the usage summaries report what every replica admitted, with no
//!   round trip on the request path.
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

    /// A plain command, bounded like a script call; `None` on error or timeout.
    async fn query<T: FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Option<T> {
        let run = async {
            match self {
                Conn::Single(c) => cmd.query_async(c).await,
                Conn::Cluster(c) => cmd.query_async(c).await,
            }
        };
        match tokio::time::timeout(Duration::from_millis(500), run).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "redis read failed");
                None
            }
            Err(_) => None,
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

/// `KEYS[1]` counter of the window, `KEYS[2]` the first window ever seen; `ARGV` limit, want,
/// offset, ttl s, window. Returns {granted, used}.
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
return {grant, used + grant}
";

/// `KEYS[1]` counter of the window; `ARGV` requests. Gives back leased requests a replica did
/// not use (no more than the window counts; `DECRBY` keeps the expiry). Returns how many.
const RETURN: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = math.min(tonumber(ARGV[1]), used)
if n <= 0 then return 0 end
redis.call('DECRBY', KEYS[1], n)
return n
";

/// `KEYS[1]` uses per day; `ARGV` day, requests, ttl s. Adds admitted requests to a day.
const HISTORY: &str = r"
redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
";

/// How long per-day usage history is kept in Redis after its last write.
const HISTORY_TTL_SECS: u64 = 90 * 86_400;

/// A slice leased from Redis, handed out locally.
#[derive(Debug, Default)]
pub struct Lease {
    tokens: AtomicU64,
    /// Bucket leases: when the tokens expire (ns). Quota leases: the window they belong to.
    until: AtomicI64,
    /// The next slice to ask for.
    want: AtomicU64,
    /// Quota leases: set by every request that takes from the slice, cleared by each sweep;
    /// a slice still holding requests at a sweep that finds this clear is given back.
    touched: AtomicBool,
    /// Quota leases: the Redis name of the counter.
    origin: std::sync::OnceLock<String>,
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
    give_back: Script,
    history: Script,
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
            give_back: Script::new(RETURN),
            history: Script::new(HISTORY),
            leases: RwLock::default(),
        });
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            let mut round = 0u64;
            while let Some(shared) = weak.upgrade() {
                shared.check().await;
                round += 1;
                if round.is_multiple_of(2) && shared.mode() == Mode::Shared {
                    shared.sweep(false).await;
                }
                drop(shared);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        shared
    }

    /// Gives back the requests of quota slices nobody took from since the last sweep (all of
    /// them with `all`, at shutdown).
    pub async fn sweep(&self, all: bool) {
        let leases: Vec<Arc<Lease>> = match self.leases.read() {
            Ok(map) => map
                .values()
                .filter(|l| l.origin.get().is_some())
                .cloned()
                .collect(),
            Err(_) => return,
        };
        for lease in leases {
            if !lease.touched.swap(false, Ordering::Relaxed) || all {
                let (Some(name), n) = (lease.origin.get(), lease.tokens.swap(0, Ordering::Relaxed)) else {
                    continue;
                };
                if n == 0 {
                    continue;
                }
                let window = lease.until.load(Ordering::Relaxed);
                let mut call = self.give_back.prepare_invoke();
                call.key(format!("tp:{{{name}}}:q:{window}")).arg(n);
                let returned: Option<u64> = self.call(call).await;
                tracing::debug!(requests = n, returned = ?returned, "quota slice given back");
            }
        }
    }

    /// Requests used of a quota window (`offset` included, slices leased and not yet given
    /// back included); `None` when Redis failed.
    pub async fn quota_used(&self, name: &str, window: i64) -> Option<u64> {
        let conn = self.conn.load_full()?;
        let mut c = (*conn).clone();
        let cmd = redis::cmd("GET").arg(format!("tp:{{{name}}}:q:{window}")).clone();
        let got: Option<Option<u64>> = c.query(&cmd).await;
        got.map(Option::unwrap_or_default)
    }

    /// Requests admitted per day (days since the epoch) of a quota counter; `None` when Redis
    /// failed.
    pub async fn quota_days(&self, name: &str) -> Option<Vec<(i64, u64)>> {
        let conn = self.conn.load_full()?;
        let mut c = (*conn).clone();
        let cmd = redis::cmd("HGETALL").arg(format!("tp:{{{name}}}:days")).clone();
        let days: Option<std::collections::HashMap<i64, i64>> = c.query(&cmd).await;
        days.map(|d| {
            let mut d: Vec<(i64, u64)> = d
                .into_iter()
                .filter_map(|(day, n)| Some((day, u64::try_from(n).ok()?)))
                .collect();
            d.sort_unstable();
            d
        })
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
        self.bounded(Duration::from_millis(500), c.run(&call)).await
    }

    /// The answer of a call, unless it fails or takes over `bound`: then Redis is marked down.
    async fn bounded<T>(&self, bound: Duration, call: impl Future<Output = RedisResult<T>>) -> Option<T> {
        match tokio::time::timeout(bound, call).await {
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

    /// Whether Redis answered lately (no call is made while it is down: the ping task brings
    /// it back).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// A plain command for another user of this connection (the stage cache's shared tier),
    /// bounded by `bound`. `None` at once while Redis is down; an error or a call over the
    /// bound marks it down, so the next requests do not wait for it either.
    pub async fn command<T: FromRedisValue>(&self, cmd: &redis::Cmd, bound: Duration) -> Option<T> {
        if !self.is_up() {
            return None;
        }
        let conn = self.conn.load_full()?;
        let mut c = (*conn).clone();
        let run = async {
            match &mut c {
                Conn::Single(c) => cmd.query_async(c).await,
                Conn::Cluster(c) => cmd.query_async(c).await,
            }
        };
        self.bounded(bound, run).await
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
    ) -> Option<(u64, u64)> {
        let mut call = self.quota.prepare_invoke();
        call.key(format!("tp:{{{name}}}:q:{window}"))
            .key(format!("tp:{{{name}}}:first"))
            .arg(limit)
            .arg(want)
            .arg(offset)
            // Kept a period past its end, for usage summaries and late replicas.
            .arg(period_days * 2 * 86_400)
            .arg(window);
        self.call(call).await
    }

    /// Adds `requests` admitted on `day` to a quota counter's history; `None` when Redis
    /// failed.
    pub async fn add_history(&self, name: &str, day: i64, requests: u64) -> Option<()> {
        let mut call = self.history.prepare_invoke();
        call.key(format!("tp:{{{name}}}:days"))
            .arg(day)
            .arg(requests)
            .arg(HISTORY_TTL_SECS);
        self.call::<i64>(call).await.map(|_| ())
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
        let taken = take_one(&self.tokens);
        if taken && !self.touched.load(Ordering::Relaxed) {
            self.touched.store(true, Ordering::Relaxed);
        }
        taken
    }

    /// Stores newly leased quota requests of the counter `name`, of which the caller uses
    /// one, and sizes the next slice from what is left.
    pub fn put_requests(&self, name: &str, window: i64, granted: u64, left: u64) {
        if self.origin.get().is_none() {
            let _ = self.origin.set(name.to_string());
        }
        self.touched.store(true, Ordering::Relaxed);
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
