//! Throttles and quotas of one gateway, end to end, with time driven by a manual clock: the
//! five throttle levels each shown winning, quota windows rolling over at DAY, WEEK and MONTH
//! boundaries, and the answers (status, body, headers).

#[path = "support/proxy.rs"]
mod support;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use support::*;
use turnpike_core::model::Throttle;
use turnpike_proxy::usage::{ManualClock, UsageConfig};

const NS: &str = "usage";
const KEY: &str = "UsageKey0123456789abcdefgh";
/// 2026-12-02 12:00:00 UTC, a Wednesday.
const WEDNESDAY_NOON: u64 = 1_796_212_800;

async fn start(yaml: &str, clock: Arc<ManualClock>, default_burst: u64) -> Gateway {
    Gateway::start_with(table(yaml, 1), |c| {
        c.usage = UsageConfig {
            default_throttle: Throttle {
                rate: 1.0,
                burst: default_burst,
            },
            replicas: 1,
            clock,
            redis: None,
        };
    })
    .await
}

/// Calls until the first refusal (at most `max` times); returns how many were admitted and
/// the refusal.
async fn admitted(client: &TestClient, url: &str, key: Option<&str>, max: usize) -> (usize, Option<Answer>) {
    for n in 0..max {
        let a = get_with_key(client, url, key).await;
        if a.status != 200 {
            return (n, Some(a));
        }
    }
    (max, None)
}

fn assert_throttled(a: &Answer) {
    assert_eq!(a.status, 429, "{}", a.body);
    assert_eq!(a.body, r#"{"message":"Too Many Requests"}"#);
    assert_eq!(a.header("x-amzn-errortype"), Some("TooManyRequestsException"));
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert!(a.header("x-amzn-requestid").is_some());
    // AWS sends no Retry-After or rate limit headers.
    assert!(a.header("retry-after").is_none());
}

fn assert_quota_exceeded(a: &Answer) {
    assert_eq!(a.status, 429, "{}", a.body);
    assert_eq!(a.body, r#"{"message":"Limit Exceeded"}"#);
    assert_eq!(a.header("x-amzn-errortype"), Some("LimitExceededException"));
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert!(a.header("x-amzn-requestid").is_some());
}

#[tokio::test]
async fn each_throttle_level_wins_where_it_is_the_most_specific() {
    let up = Upstream::start().await;
    let api = ApiSet::new(NS, "shop")
        .keyed_proxy("/a", "GET", &format!("http://{}/echo/a", up.addr))
        .keyed_proxy("/b", "GET", &format!("http://{}/echo/b", up.addr))
        .proxy("/c", "GET", &format!("http://{}/echo/c", up.addr))
        .proxy("/d", "GET", &format!("http://{}/echo/d", up.addr))
        .stage_with(
            "prod",
            "  throttle: {rateLimit: 1, burstLimit: 4}\n  methodSettings:\n    /c/GET: {throttlingRateLimit: 1, throttlingBurstLimit: 3}",
        )
        .stage("plain")
        .yaml();
    let yaml = [
        api,
        usage_plan_yaml(NS, "gold", &[], ""),
        api_key_yaml(NS, "k", KEY, &["gold"], true),
    ]
    .concat()
    // The plan's stage with a per-method throttle for /a, and the plan's own throttle.
    .replace(
        "  apiStages:\n",
        "  apiStages:\n    - restApiRef: {name: shop}\n      stage: prod\n      throttle: {/a/GET: {rateLimit: 1, burstLimit: 1}}\n  throttle: {rateLimit: 1, burstLimit: 2}\n",
    );
    let clock = Arc::new(ManualClock::at(WEDNESDAY_NOON));
    let gw = start(&yaml, clock.clone(), 5).await;
    let id = api_id(NS, "shop");
    let c = client(false);
    for (what, stage, path, key, burst) in [
        ("usage plan per method per key", "prod", "/a", Some(KEY), 1),
        ("usage plan per key", "prod", "/b", Some(KEY), 2),
        ("stage per method", "prod", "/c", None, 3),
        ("stage default", "prod", "/d", None, 4),
        ("gateway default", "plain", "/d", None, 5),
    ] {
        let (n, refusal) = admitted(&c, &gw.url(&id, stage, path), key, 20).await;
        assert_eq!(n, burst, "{what}");
        assert_throttled(&refusal.expect("refused"));
    }
    // A new table (a swap) keeps the buckets: still empty.
    gw.store.publish(table(&yaml, 2));
    assert_throttled(&get_with_key(&c, &gw.url(&id, "prod", "/b"), Some(KEY)).await);
    // A changed stage throttle resets that bucket only.
    let changed = yaml.replace("burstLimit: 4}", "burstLimit: 6}");
    gw.store.publish(table(&changed, 3));
    assert_eq!(admitted(&c, &gw.url(&id, "prod", "/d"), None, 20).await.0, 6);
    assert_throttled(&get_with_key(&c, &gw.url(&id, "prod", "/b"), Some(KEY)).await);
    // Buckets refill at their rate: one second later each admits one more.
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        get_with_key(&c, &gw.url(&id, "prod", "/a"), Some(KEY))
            .await
            .status,
        200
    );
    assert_throttled(&get_with_key(&c, &gw.url(&id, "prod", "/a"), Some(KEY)).await);
}

fn quota_yaml(up: SocketAddr, period: &str, limit: u64, offset: u64) -> String {
    let api = ApiSet::new(NS, "shop")
        .keyed_proxy("/q", "GET", &format!("http://{up}/echo/q"))
        .stage("prod")
        .stage("beta")
        .yaml();
    [
        api,
        usage_plan_yaml(
            NS,
            "metered",
            &[("shop", "prod"), ("shop", "beta")],
            &format!("  quota: {{limit: {limit}, period: {period}, offset: {offset}}}"),
        ),
        api_key_yaml(NS, "k", KEY, &["metered"], true),
    ]
    .concat()
}

/// Uses up the quota (across both stages of the plan), then checks the window rolls over at
/// `boundary` seconds and not a second before.
async fn quota_rolls_over(period: &str, start: u64, boundary: u64) {
    let up = Upstream::start().await;
    let yaml = quota_yaml(up.addr, period, 5, 2);
    let clock = Arc::new(ManualClock::at(start));
    let gw = start_gateway(&yaml, clock.clone()).await;
    let id = api_id(NS, "shop");
    let c = client(false);
    // Offset 2 of 5 used: three requests left, counted across both stages of the plan.
    assert_eq!(
        get_with_key(&c, &gw.url(&id, "prod", "/q"), Some(KEY))
            .await
            .status,
        200
    );
    assert_eq!(
        get_with_key(&c, &gw.url(&id, "beta", "/q"), Some(KEY))
            .await
            .status,
        200
    );
    assert_eq!(
        get_with_key(&c, &gw.url(&id, "prod", "/q"), Some(KEY))
            .await
            .status,
        200
    );
    assert_quota_exceeded(&get_with_key(&c, &gw.url(&id, "beta", "/q"), Some(KEY)).await);
    clock.set_secs(boundary - 1);
    assert_quota_exceeded(&get_with_key(&c, &gw.url(&id, "prod", "/q"), Some(KEY)).await);
    clock.set_secs(boundary);
    // A new window: the whole limit, no offset.
    let (n, refusal) = admitted(&c, &gw.url(&id, "prod", "/q"), Some(KEY), 20).await;
    assert_eq!(n, 5, "{period}");
    assert_quota_exceeded(&refusal.expect("refused"));
}

async fn start_gateway(yaml: &str, clock: Arc<ManualClock>) -> Gateway {
    start(yaml, clock, 1_000).await
}

#[tokio::test]
async fn day_quota_rolls_over_at_midnight_utc() {
    // Wednesday noon → Thursday 00:00.
    quota_rolls_over("DAY", WEDNESDAY_NOON, WEDNESDAY_NOON + 12 * 3600).await;
}

#[tokio::test]
async fn week_quota_rolls_over_on_sunday_utc() {
    // Wednesday 2026-12-02 noon → Sunday 2026-12-06 00:00.
    quota_rolls_over("WEEK", WEDNESDAY_NOON, WEDNESDAY_NOON + 12 * 3600 + 3 * 86_400).await;
}

#[tokio::test]
async fn month_quota_rolls_over_on_the_first_utc() {
    // Wednesday 2026-12-02 noon → 2027-01-01 00:00.
    quota_rolls_over("MONTH", WEDNESDAY_NOON, 1_798_761_600).await;
}

#[tokio::test]
async fn usage_reports_per_key_per_day_and_readyz_says_local() {
    let up = Upstream::start().await;
    let yaml = quota_yaml(up.addr, "WEEK", 10, 0);
    // Tuesday 2026-12-01 noon: three requests; Wednesday: two.
    let clock = Arc::new(ManualClock::at(WEDNESDAY_NOON - 86_400));
    let gw = start_gateway(&yaml, clock.clone()).await;
    let id = api_id(NS, "shop");
    let c = client(false);
    for _ in 0..3 {
        assert_eq!(
            get_with_key(&c, &gw.url(&id, "prod", "/q"), Some(KEY))
                .await
                .status,
            200
        );
    }
    clock.set_secs(WEDNESDAY_NOON);
    for _ in 0..2 {
        assert_eq!(
            get_with_key(&c, &gw.url(&id, "beta", "/q"), Some(KEY))
                .await
                .status,
            200
        );
    }
    let base = gw.serve_admin().await;
    let ready = get(&format!("{base}/readyz")).await;
    assert_eq!(ready.status, 200);
    assert!(ready.body.contains("limits: local"), "{}", ready.body);
    let key_id = gw.store.load().keys().next().expect("key").id.to_string();
    let report = get(&format!(
        "{base}/usage?usagePlan={NS}/metered&startDate=2026-11-30&endDate=2026-12-03"
    ))
    .await;
    assert_eq!(report.status, 200, "{}", report.body);
    assert_eq!(
        report.json(),
        serde_json::json!({
            "usagePlanId": format!("{NS}/metered"),
            "startDate": "2026-11-30",
            "endDate": "2026-12-03",
            "items": { key_id.clone(): [[0, 10], [3, 7], [2, 5], [0, 5]] },
        })
    );
    let other = get(&format!(
        "{base}/usage?usagePlan={NS}/metered&keyId=nosuchkey0&startDate=2026-12-01&endDate=2026-12-01"
    ))
    .await;
    assert_eq!(other.json()["items"], serde_json::json!({}));
    let bad = get(&format!(
        "{base}/usage?usagePlan={NS}/metered&startDate=12/01/2026&endDate=x"
    ))
    .await;
    assert_eq!(bad.status, 400);
    // The access log shows the key id, never the value (the table's Debug neither).
    assert!(!format!("{:?}", gw.store.load()).contains(KEY));
}
