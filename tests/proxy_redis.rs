//! Limits shared across gateways through a real Redis (standalone and Cluster): quota
//! accuracy with clients spread over three gateways, the throttle rate across three gateways,
//! Redis killed mid-run in both failure modes, and quota usage kept across a restart.
//!
//! The three gateways are three proxies in this process, each with its own limit state and
//! its own Redis connection: to Redis they are three replicas.

#[path = "support/redis.rs"]
mod redis_support;
#[path = "support/proxy.rs"]
mod support;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use redis_support::{Cluster, Redis};
use support::*;
use turnpike_proxy::usage::{
    UsageConfig,
    redis::{FailureMode, Mode, RedisConfig},
};

const NS: &str = "shared";
const KEY: &str = "SharedKey0123456789abcdefg";

fn yaml(up: SocketAddr, plan_extra: &str, stage_extra: &str) -> String {
    let api = ApiSet::new(NS, "shop")
        .keyed_proxy("/q", "GET", &format!("http://{up}/echo/q"))
        .proxy("/open", "GET", &format!("http://{up}/echo/open"))
        .stage_with("prod", stage_extra)
        .yaml();
    [
        api,
        usage_plan_yaml(NS, "metered", &[("shop", "prod")], plan_extra),
        api_key_yaml(NS, "k", KEY, &["metered"], true),
    ]
    .concat()
}

fn redis_config(urls: Vec<String>, cluster: bool, mode: FailureMode) -> UsageConfig {
    UsageConfig {
        redis: Some(RedisConfig {
            urls,
            cluster,
            failure_mode: mode,
        }),
        replicas: 3,
        ..UsageConfig::default()
    }
}

async fn gateway(yaml: &str, usage: UsageConfig) -> Gateway {
    let gw = Gateway::start_with(table(yaml, 1), |c| c.usage = usage).await;
    wait_for_mode(&gw, Mode::Shared).await;
    gw
}

/// Waits (bounded) until a gateway's limits are in `mode`.
async fn wait_for_mode(gw: &Gateway, mode: Mode) {
    for _ in 0..400 {
        if gw.shared.usage.mode() == Some(mode) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("limits never became {mode:?}: {:?}", gw.shared.usage.mode());
}

/// Clients spread over the gateways call with the key until every gateway refuses; returns
/// how many were admitted.
async fn drain_quota(urls: Vec<String>, clients: usize) -> usize {
    let admitted = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let urls = urls.clone();
        let admitted = admitted.clone();
        tasks.push(tokio::spawn(async move {
            let client = client(false);
            let mut refused_in_a_row = 0;
            for i in 0..20_000 {
                let a = get_with_key(&client, &urls[(c + i) % urls.len()], Some(KEY)).await;
                match a.status {
                    200 => {
                        admitted.fetch_add(1, Ordering::Relaxed);
                        refused_in_a_row = 0;
                    }
                    429 => {
                        assert_eq!(a.body, r#"{"message":"Limit Exceeded"}"#);
                        assert_eq!(a.header("x-amzn-errortype"), Some("LimitExceededException"));
                        refused_in_a_row += 1;
                        if refused_in_a_row >= 2 * urls.len() {
                            return;
                        }
                    }
                    other => panic!("unexpected {other}: {}", a.body),
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    admitted.load(Ordering::Relaxed)
}

async fn quota_across_three(urls: Vec<String>, cluster: bool) {
    let up = Upstream::start().await;
    let yaml = yaml(up.addr, "  quota: {limit: 1000, period: DAY}", "");
    let mut gws = Vec::new();
    for _ in 0..3 {
        gws.push(gateway(&yaml, redis_config(urls.clone(), cluster, FailureMode::Closed)).await);
    }
    let id = api_id(NS, "shop");
    let targets: Vec<String> = gws.iter().map(|g| g.url(&id, "prod", "/q")).collect();
    let admitted = drain_quota(targets, 9).await;
    assert!(admitted <= 1000, "admitted {admitted} of a quota of 1000");
    assert!(admitted >= 990, "admitted {admitted}: under 99% of the quota");
}

#[tokio::test]
async fn quota_is_exact_across_three_gateways_on_one_redis() {
    let redis = Redis::start().await;
    quota_across_three(vec![redis.url()], false).await;
}

#[tokio::test]
async fn quota_is_exact_across_three_gateways_on_a_redis_cluster() {
    let cluster = Cluster::start().await;
    quota_across_three(cluster.urls(), true).await;
}

#[tokio::test]
async fn throttle_rate_across_three_gateways_over_ten_seconds() {
    let redis = Redis::start().await;
    let up = Upstream::start().await;
    let yaml = yaml(up.addr, "", "  throttle: {rateLimit: 100, burstLimit: 10}");
    let mut gws = Vec::new();
    for _ in 0..3 {
        gws.push(gateway(&yaml, redis_config(vec![redis.url()], false, FailureMode::Closed)).await);
    }
    let id = api_id(NS, "shop");
    let urls: Vec<String> = gws.iter().map(|g| g.url(&id, "prod", "/open")).collect();
    let admitted = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let run = Duration::from_secs(10);
    let mut tasks = Vec::new();
    for c in 0..6 {
        let urls = urls.clone();
        let admitted = admitted.clone();
        tasks.push(tokio::spawn(async move {
            let client = client(false);
            let mut i = c;
            while start.elapsed() < run {
                let a = get_with_key(&client, &urls[i % urls.len()], None).await;
                i += 1;
                match a.status {
                    200 => {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                    429 => assert_eq!(a.header("x-amzn-errortype"), Some("TooManyRequestsException")),
                    other => panic!("unexpected {other}: {}", a.body),
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    let secs = start.elapsed().as_secs_f64();
    // The bucket starts full: the burst comes on top of the rate.
    let rate = (admitted.load(Ordering::Relaxed) as f64 - 10.0) / secs;
    assert!(
        (95.0..=105.0).contains(&rate),
        "{rate:.1} requests/s for a rate of 100"
    );
}

#[tokio::test]
async fn redis_killed_mid_run_open_and_closed_then_recovery() {
    let mut redis = Redis::start().await;
    let up = Upstream::start().await;
    let yaml = yaml(up.addr, "  quota: {limit: 100000, period: DAY}", "");
    let open = gateway(&yaml, redis_config(vec![redis.url()], false, FailureMode::Open)).await;
    let closed = gateway(&yaml, redis_config(vec![redis.url()], false, FailureMode::Closed)).await;
    let id = api_id(NS, "shop");
    let client = client(false);
    for gw in [&open, &closed] {
        assert_eq!(
            get_with_key(&client, &gw.url(&id, "prod", "/q"), Some(KEY))
                .await
                .status,
            200
        );
    }
    redis.kill().await;
    // Requests go on until the gateways notice (a slice may still be leased).
    for gw in [&open, &closed] {
        for _ in 0..400 {
            if gw.shared.usage.mode() != Some(Mode::Shared) {
                break;
            }
            let _ = get_with_key(&client, &gw.url(&id, "prod", "/q"), Some(KEY)).await;
        }
    }
    wait_for_mode(&open, Mode::LocalFallback).await;
    wait_for_mode(&closed, Mode::Closed).await;
    assert!(
        open.metrics_text().contains("turnpike_limits_mode 0"),
        "{}",
        open.metrics_text()
    );
    assert!(closed.metrics_text().contains("turnpike_limits_mode -1"));
    for path in ["/q", "/open"] {
        let key = (path == "/q").then_some(KEY);
        let a = get_with_key(&client, &open.url(&id, "prod", path), key).await;
        assert_eq!(a.status, 200, "open mode: local limits; {}", a.body);
        let a = get_with_key(&client, &closed.url(&id, "prod", path), key).await;
        assert_eq!(a.status, 503, "closed mode; {}", a.body);
        assert_eq!(a.body, r#"{"message": "Service Unavailable"}"#);
        assert!(a.header("x-amzn-requestid").is_some());
    }
    redis.restart().await;
    wait_for_mode(&open, Mode::Shared).await;
    wait_for_mode(&closed, Mode::Shared).await;
    assert!(closed.metrics_text().contains("turnpike_limits_mode 1"));
    for gw in [&open, &closed] {
        assert_eq!(
            get_with_key(&client, &gw.url(&id, "prod", "/q"), Some(KEY))
                .await
                .status,
            200
        );
        assert_eq!(
            get_with_key(&client, &gw.url(&id, "prod", "/open"), None)
                .await
                .status,
            200
        );
    }
}

#[tokio::test]
async fn a_restarted_gateway_keeps_the_quota_usage() {
    let redis = Redis::start().await;
    let up = Upstream::start().await;
    let yaml = yaml(up.addr, "  quota: {limit: 50, period: MONTH}", "");
    let id = api_id(NS, "shop");
    let client = client(false);
    let mut first = gateway(&yaml, redis_config(vec![redis.url()], false, FailureMode::Closed)).await;
    for _ in 0..30 {
        assert_eq!(
            get_with_key(&client, &first.url(&id, "prod", "/q"), Some(KEY))
                .await
                .status,
            200
        );
    }
    first.shutdown().await;
    drop(first);
    let second = gateway(&yaml, redis_config(vec![redis.url()], false, FailureMode::Closed)).await;
    let admitted = drain_quota(vec![second.url(&id, "prod", "/q")], 1).await;
    // 30 were used before the restart; what the first process had leased and not used it
    // gave back when it stopped.
    assert_eq!(admitted, 20, "admitted after the restart");
}

/// Calls through one gateway until it has refused for `patience` in a row; returns how many
/// were admitted.
async fn drain_patiently(url: &str, patience: Duration) -> usize {
    let client = client(false);
    let (mut admitted, mut refused_since) = (0, None);
    for _ in 0..20_000 {
        let a = get_with_key(&client, url, Some(KEY)).await;
        match a.status {
            200 => {
                admitted += 1;
                refused_since = None;
            }
            429 => {
                let since = *refused_since.get_or_insert_with(Instant::now);
                if since.elapsed() > patience {
                    return admitted;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("unexpected {other}: {}", a.body),
        }
    }
    panic!("never refused for {patience:?}");
}

#[tokio::test]
async fn an_idle_gateway_gives_its_quota_slice_back() {
    let redis = Redis::start().await;
    let up = Upstream::start().await;
    let yaml = yaml(up.addr, "  quota: {limit: 400, period: DAY}", "");
    let id = api_id(NS, "shop");
    let client = client(false);
    let busy = gateway(&yaml, redis_config(vec![redis.url()], false, FailureMode::Closed)).await;
    let idle = gateway(&yaml, redis_config(vec![redis.url()], false, FailureMode::Closed)).await;
    // The idle gateway leases slices (a sixteenth of what is left, growing with use), then
    // its clients go away.
    for _ in 0..40 {
        assert_eq!(
            get_with_key(&client, &idle.url(&id, "prod", "/q"), Some(KEY))
                .await
                .status,
            200
        );
    }
    // Within a second of idleness its slice goes back: the busy one reaches the whole quota.
    let admitted = drain_patiently(&busy.url(&id, "prod", "/q"), Duration::from_secs(2)).await;
    assert_eq!(40 + admitted, 400, "{admitted} admitted by the busy gateway");
}

#[tokio::test]
async fn usage_reports_read_every_gateways_history_from_redis() {
    let redis = Redis::start().await;
    usage_reports_across_two(vec![redis.url()], false).await;
}

#[tokio::test]
async fn usage_reports_read_every_gateways_history_from_a_redis_cluster() {
    let cluster = Cluster::start().await;
    usage_reports_across_two(cluster.urls(), true).await;
}

async fn usage_reports_across_two(urls: Vec<String>, cluster: bool) {
    use turnpike_proxy::usage::ManualClock;
    let up = Upstream::start().await;
    let yaml = yaml(up.addr, "  quota: {limit: 10, period: WEEK}", "");
    // Tuesday 2026-12-01 noon UTC, then Wednesday.
    let clock = Arc::new(ManualClock::at(1_796_212_800 - 86_400));
    let config = || UsageConfig {
        clock: clock.clone(),
        ..redis_config(urls.clone(), cluster, FailureMode::Closed)
    };
    let (a, b) = (gateway(&yaml, config()).await, gateway(&yaml, config()).await);
    let id = api_id(NS, "shop");
    let client = client(false);
    for _ in 0..3 {
        let r = get_with_key(&client, &a.url(&id, "prod", "/q"), Some(KEY)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    clock.set_secs(1_796_212_800);
    for _ in 0..2 {
        let r = get_with_key(&client, &b.url(&id, "prod", "/q"), Some(KEY)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // b adds its days to Redis every 500 ms; a reads (after adding its own).
    b.shared.usage.flush_history().await;
    let base = a.serve_admin().await;
    let key_id = a.store.load().keys().next().expect("key").id.to_string();
    let report = get(&format!(
        "{base}/usage?usagePlan={NS}/metered&startDate=2026-11-30&endDate=2026-12-03"
    ))
    .await;
    assert_eq!(report.status, 200, "{}", report.body);
    assert_eq!(
        report.json()["items"],
        serde_json::json!({ key_id: [[0, 10], [3, 7], [2, 5], [0, 5]] }),
    );
    let ready = get(&format!("{base}/readyz")).await;
    assert!(ready.body.contains("limits: shared"), "{}", ready.body);
}
