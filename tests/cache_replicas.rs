//! The stage cache with real processes: two `turnpike run` processes sharing a stage's cache
//! through one real `redis-server` (`--cache-backend redis`): a miss on one is a hit on the
//! other with one backend call, an admin flush through one empties the other, and with Redis
//! killed both still serve from memory. Then the memory budget: one process with a small
//! budget (`--cache-budget-cap-bytes`) under a stream of distinct keys keeps its cache within
//! the budget (the Stage's `status.cache`, written by the leader) and its RSS bounded.
//! Waits are bounded; nothing is timed.

mod controller_support;
#[allow(dead_code)]
#[path = "support/redis.rs"]
mod redis_support;
#[path = "support/proxy.rs"]
mod support;

use controller_support::{Cluster, DEADLINE, Replica, eventually};
use redis_support::Redis;
use serde_json::Value;
use support::{Answer, ApiSet, Upstream};

/// Two replicas share the limits; the leader writes `status.cache` every 300 ms.
const COMMON: &[&str] = &["--replicas", "2", "--usage-status-interval-ms", "300"];

impl Replica {
    async fn get(&self, api: &str, path: &str) -> Answer {
        let url = format!(
            "https://{}/restapis/{api}/prod/_user_request_{path}",
            self.addr("public")
        );
        support::get(&url).await
    }

    /// `POST /cache/flush` on the admin listener (from loopback, no token).
    async fn flush(&self, api: &str) -> (u16, String) {
        let url = format!("http://{}/cache/flush?api={api}&stage=prod", self.addr("admin"));
        let req = http::Request::post(url).body(support::empty()).expect("request");
        let a = support::send(&support::client(false), req).await;
        (a.status, a.body.trim().to_string())
    }
}

/// The EDGE API `shared` (its `prod` Stage caches every GET for an hour) proxying
/// `/items/{id}` and `/bytes/{n}` to the upstream.
fn api(up: &Upstream, size: &str) -> String {
    ApiSet::new("default", "shared")
        .endpoint("EDGE")
        .proxy("/items/{id}", "GET", &format!("http://{}/echo/items/{{id}}", up.addr))
        .proxy("/bytes/{n}", "GET", &format!("http://{}/bytes/{{n}}", up.addr))
        .stage_with(
            "prod",
            &format!(
                "  cacheClusterEnabled: true\n  cacheClusterSize: \"{size}\"\n  methodSettings:\n    \"*/*\": {{cacheTtlInSeconds: 3600}}"
            ),
        )
        .yaml()
}

async fn ready(c: &Cluster, replicas: &[&Replica], api: &str) {
    eventually("stage Ready", DEADLINE, || async {
        (c.condition("stage/shared-prod", "Ready")?["status"] == "True").then_some(())
    })
    .await;
    for (i, r) in replicas.iter().enumerate() {
        eventually(&format!("replica {i} serves"), DEADLINE, || async {
            (r.get(api, "/items/ready").await.status == 200).then_some(())
        })
        .await;
    }
}

/// The Stage's `status.cache`, once the leader wrote one that `accept`s.
async fn cache_status(c: &Cluster, accept: impl Fn(&Value) -> bool) -> Value {
    eventually("status.cache", DEADLINE, || async {
        let s = c.get("stage/shared-prod")?["status"]["cache"].clone();
        accept(&s).then_some(s)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_a_stage_cache_through_redis() {
    let c = Cluster::start().await;
    let mut redis = Redis::start().await;
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = redis.url();
    let shared = [COMMON, &["--cache-backend", "redis", "--redis-url", &url]].concat();
    let a = Replica::start(&c, dir.path(), "a", &shared).await;
    let b = Replica::start(&c, dir.path(), "b", &shared).await;
    c.apply(&api(&up, "0.5"));
    let id = c.api_id("shared").await;
    ready(&c, &[&a, &b], &id).await;

    // A miss on one process, then a hit on the other: one backend call.
    let before = up.hits();
    let first = a.get(&id, "/items/1").await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.header("x-cache"), Some("Miss from cloudfront"));
    let second = b.get(&id, "/items/1").await;
    assert_eq!(
        second.header("x-cache"),
        Some("Hit from cloudfront"),
        "{second:?}"
    );
    assert_eq!(second.body, first.body);
    assert_eq!(up.hits() - before, 1, "the backend was called once");
    let keys = redis.cli(&["--scan", "--pattern", "tp:cache:*"]).await;
    assert!(
        keys.lines().any(|k| k.starts_with("tp:cache:{")),
        "entries in Redis: {keys}"
    );

    // The leader writes the stage's cache summary.
    let s = cache_status(&c, |s| s["entries"].as_i64().is_some_and(|n| n >= 1)).await;
    assert_eq!(s["backend"], "redis", "{s}");
    assert_eq!(s["budgetBytes"], 500_000_000, "{s}");
    assert!(s["sizeBytes"].as_i64().is_some_and(|n| n > 0), "{s}");

    // A flush through one process empties the other (it follows the stage's generation).
    let (code, body) = a.flush(&id).await;
    assert_eq!(
        (code, body),
        (200, format!("flushed {id}/prod (every replica: shared tier)"))
    );
    let flushed = up.hits();
    eventually("b misses after the flush", DEADLINE, || async {
        let answer = b.get(&id, "/items/1").await;
        (answer.header("x-cache") == Some("Miss from cloudfront")).then_some(())
    })
    .await;
    assert_eq!(up.hits(), flushed + 1, "b fetched it again, once");
    assert_eq!(
        a.get(&id, "/items/1").await.header("x-cache"),
        Some("Hit from cloudfront"),
        "a reads what b stored after the flush"
    );
    assert_eq!(up.hits(), flushed + 1);

    // Redis killed: both still serve, each from its own memory.
    redis.kill().await;
    for r in [&a, &b] {
        let before = up.hits();
        let miss = r.get(&id, "/items/2").await;
        assert_eq!(miss.status, 200, "{miss:?}");
        let hit = r.get(&id, "/items/2").await;
        assert_eq!(hit.status, 200, "{hit:?}");
        assert_eq!(hit.header("x-cache"), Some("Hit from cloudfront"));
        assert_eq!(up.hits() - before, 1, "one backend call, then memory");
    }
    let (code, body) = b.flush(&id).await;
    assert_eq!(
        (code, body),
        (
            200,
            format!("flushed {id}/prod (this replica only: Redis unreachable)")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_budget_holds_under_a_stream_of_distinct_keys() {
    const BUDGET: i64 = 4_000_000;
    const BODY: usize = 64 * 1024;
    const KEYS: usize = 1_200; // after the warm-up, 62.5 MiB of distinct answers: 16 budgets
    let c = Cluster::start().await;
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = BUDGET.to_string();
    let r = Replica::start(
        &c,
        dir.path(),
        "m",
        &[COMMON, &["--cache-budget-cap-bytes", &cap]].concat(),
    )
    .await;
    c.apply(&api(&up, "0.5"));
    let id = c.api_id("shared").await;
    ready(&c, &[&r], &id).await;

    // Warm up (connections, buffers, a full cache), then measure.
    let client = support::client(false);
    let base = format!(
        "https://{}/restapis/{id}/prod/_user_request_/bytes",
        r.addr("public")
    );
    let stream = |from: usize, to: usize| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            for i in from..to {
                // The path parameter is in the key: every request is a new entry.
                let url = format!("{base}/{}", BODY + i);
                let req = http::Request::get(url).body(support::empty()).expect("request");
                let a = support::send(&client, req).await;
                assert_eq!(a.status, 200);
            }
        }
    };
    stream(0, 200).await;
    let before = r.rss_kib();
    stream(200, KEYS).await;
    let after = r.rss_kib();

    let s = cache_status(&c, |s| s["entries"].as_i64().is_some_and(|n| n > 0)).await;
    assert_eq!(s["budgetBytes"], BUDGET, "{s}");
    let size = s["sizeBytes"].as_i64().expect("sizeBytes");
    assert!(
        size <= BUDGET,
        "the cache weighs {size} bytes, over its budget {BUDGET}: {s}"
    );
    let entries = s["entries"].as_i64().expect("entries");
    assert!(
        entries <= BUDGET / BODY as i64,
        "{entries} entries of 64 KiB in a budget of {BUDGET}"
    );
    // Unbounded, the measured stream would add at least 62.5 MiB of answers. Bounded, what
    // the process grows by is freed 64 KiB blocks the allocator keeps between purges, which
    // has reached 32 MiB on a busy machine: the bound sits between the two.
    let grown = after.saturating_sub(before);
    eprintln!("cache {s}; RSS {before} → {after} KiB");
    assert!(
        grown < 48 * 1024,
        "RSS grew by {grown} KiB ({before} → {after} KiB)"
    );
}
