//! The stage cache: hits and misses with TTL expiry on an injected clock, the cache key (path
//! parameters and declared key parameters in, everything else out), what is never cached
//! (non-GET, non-2xx, over 1 MiB), `Cache-Control: max-age=0` under the three strategies with
//! and without an API key, flushes (the Stage annotation and the admin endpoint), deployment
//! changes, canaries with and without `useStageCache`, coalescing, EDGE headers and metrics.
//! One gateway per test; each case uses its own paths so the entries never meet. The admin
//! flush with a token file has its own test.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use http::Request;
use turnpike_proxy::usage::ManualClock;

use crate::support::*;

const KEY: &str = "cachekey0123456789abcdef";

/// The cached EDGE API `cached` (deployments v1 and v2; `prod` serves `deployment`), the API
/// `canary` (stage `split` with its own canary entries, stage `shared` with `useStageCache`),
/// a usage plan on `cached/prod` with the key [`KEY`], and a Stage annotation when `flush` is
/// set.
fn world(up: SocketAddr, deployment: &str, flush: Option<&str>) -> String {
    let echo = |path: &str| format!("http://{up}/echo{path}");
    let mut cached = ApiSet::new(NS, "cached")
        .endpoint("EDGE")
        .method(
            "/items/{id}",
            "GET",
            &format!(
                "        integration:\n          type: HTTP_PROXY\n          uri: \"{}\"\n          cacheKeyParameters: [method.request.querystring.type, method.request.header.Accept]",
                echo("/items/{id}")
            ),
        )
        .proxy("/items/{id}", "POST", &echo("/items/{id}"))
        .proxy("/status/{code}", "GET", &format!("http://{up}/status/{{code}}"))
        .proxy("/text/{n}", "GET", &format!("http://{up}/text/{{n}}"))
        .proxy("/bytes/{n}", "GET", &format!("http://{up}/bytes/{{n}}"))
        .proxy("/slow", "GET", &format!("http://{up}/sleep/300"))
        .proxy("/encoded", "GET", &format!("http://{up}/encoded"))
        .proxy("/cookie", "GET", &format!("http://{up}/cookie"))
        .proxy("/private", "GET", &format!("http://{up}/private"))
        .method(
            "/mock",
            "GET",
            "        integration:\n          type: MOCK\n          requestTemplates: {application/json: '{\"statusCode\": 200}'}\n          integrationResponses:\n            - statusCode: \"200\"\n              responseTemplates: {application/json: '{\"by\":\"$context.requestId\"}'}",
        );
    for path in ["/warn", "/quiet", "/open", "/off", "/zero", "/flushed", "/ttl"] {
        cached = cached.proxy(path, "GET", &echo(path));
    }
    let settings = r#"  cacheClusterEnabled: true
  cacheClusterSize: "0.5"
  methodSettings:
    "*/*": {cacheTtlInSeconds: 60, requireAuthorizationForCacheControl: true, unauthorizedCacheControlHeaderStrategy: FAIL_WITH_403, cacheDataEncrypted: true}
    "/warn/GET": {unauthorizedCacheControlHeaderStrategy: SUCCEED_WITH_RESPONSE_HEADER}
    "/quiet/GET": {unauthorizedCacheControlHeaderStrategy: SUCCEED_WITHOUT_RESPONSE_HEADER}
    "/open/GET": {requireAuthorizationForCacheControl: false}
    "/off/GET": {cachingEnabled: false}
    "/zero/GET": {cacheTtlInSeconds: 0}"#;
    let mut yaml = cached.deployment("cached-v1").stage_with("prod", settings).yaml();
    yaml += &deployment_yaml(NS, "cached", "cached-v2");
    yaml = yaml.replace(
        "stageName: prod\n  deploymentRef: {name: cached-v1}",
        &format!("stageName: prod\n  deploymentRef: {{name: {deployment}}}"),
    );
    if let Some(token) = flush {
        yaml = yaml.replace(
            "metadata: {name: cached-prod, namespace: shop}",
            &format!("metadata: {{name: cached-prod, namespace: shop, annotations: {{turnpike.dev/flush-cache: \"{token}\"}}}}"),
        );
    }
    yaml += &usage_plan_yaml(NS, "cacheplan", &[("cached", "prod")], "");
    yaml += &api_key_yaml(NS, "cachekey", KEY, &["cacheplan"], true);

    let canary = |use_stage_cache: bool| {
        format!(
            "  cacheClusterEnabled: true\n  canarySettings: {{deploymentRef: {{name: canary-v2}}, percentTraffic: 50, useStageCache: {use_stage_cache}}}"
        )
    };
    yaml += &ApiSet::new(NS, "canary")
        .proxy("/c/{id}", "GET", &echo("/c/{id}"))
        .deployment("canary-v1")
        .stage_with("split", &canary(false))
        .stage_with("shared", &canary(true))
        .yaml();
    yaml += &deployment_yaml(NS, "canary", "canary-v2");
    yaml
}

struct Env {
    gw: Gateway,
    up: Upstream,
    clock: Arc<ManualClock>,
    api: String,
}

impl Env {
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.get_on("cached", "prod", path, headers).await
    }

    async fn get_on(&self, api: &str, stage: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = Request::get(self.gw.url(&api_id(NS, api), stage, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        send(&client(false), req.body(empty()).expect("request")).await
    }

    /// GETs `path` and says how many backend requests it took (0: a hit).
    async fn calls(&self, path: &str, headers: &[(&str, &str)]) -> usize {
        let before = self.up.hits();
        let a = self.get(path, headers).await;
        assert!((200..300).contains(&a.status) || a.status == 404, "{path}: {a:?}");
        self.up.hits() - before
    }
}

async fn env() -> Env {
    let up = Upstream::start().await;
    let clock = Arc::new(ManualClock::at(1_796_212_800));
    let c = clock.clone();
    let gw = Gateway::start_with(table(&world(up.addr, "cached-v1", None), 1), move |config| {
        config.usage.clock = c;
    })
    .await;
    Env {
        gw,
        up,
        clock,
        api: api_id(NS, "cached"),
    }
}

#[tokio::test]
async fn stage_cache_follows_aws_rules() {
    let e = env().await;

    // Hit and miss, the EDGE headers, and TTL expiry on the injected clock.
    let a = e.get("/ttl", &[]).await;
    assert_eq!(a.header("x-cache"), Some("Miss from cloudfront"), "{a:?}");
    assert_eq!(a.header("age"), None);
    e.clock.advance(Duration::from_secs(5));
    let hits = e.up.hits();
    let b = e.get("/ttl", &[]).await;
    assert_eq!(e.up.hits(), hits, "the second GET is a hit");
    assert_eq!(b.header("x-cache"), Some("Hit from cloudfront"));
    assert_eq!(b.header("age"), Some("5"));
    assert_eq!(a.body, b.body);
    assert_ne!(
        a.header("x-amzn-requestid"),
        b.header("x-amzn-requestid"),
        "each answer has its own request id"
    );
    e.clock.advance(Duration::from_secs(56));
    assert_eq!(e.calls("/ttl", &[]).await, 1, "expired after the 60 s TTL");
    assert_eq!(e.calls("/ttl", &[]).await, 0);

    // A MOCK answer is cached too: the body names the request that produced it.
    let a = e.get("/mock", &[]).await;
    let b = e.get("/mock", &[]).await;
    assert_eq!((a.status, b.status), (200, 200), "{a:?}");
    assert_eq!(a.body, b.body);
    assert!(
        a.body.contains(a.header("x-amzn-requestid").expect("id")),
        "{a:?}"
    );
    assert_eq!(b.header("x-cache"), Some("Hit from cloudfront"));

    // The key: path parameters and declared parameters in; the rest out.
    let q = |s: &str| format!("/items/1?{s}");
    assert_eq!(e.calls(&q("type=a"), &[]).await, 1);
    assert_eq!(e.calls(&q("type=a"), &[]).await, 0);
    assert_eq!(
        e.calls(&q("type=a&other=z"), &[]).await,
        0,
        "undeclared query string"
    );
    assert_eq!(
        e.calls(&q("type=a"), &[("x-other", "1")]).await,
        0,
        "undeclared header"
    );
    assert_eq!(e.calls(&q("type=b"), &[]).await, 1, "declared query string");
    assert_eq!(
        e.calls(&q("type=a"), &[("accept", "text/plain")]).await,
        1,
        "declared header"
    );
    assert_eq!(e.calls("/items/2?type=a", &[]).await, 1, "path parameter");
    assert_eq!(e.calls("/items/2?type=a", &[]).await, 0);

    // Not cached: another method, a non-2xx answer, caching off, TTL 0, an answer the
    // backend content-encoded, one that sets a cookie or that the backend marks private or
    // no-store.
    let post = |path: &str| {
        let url = e.gw.url(&e.api, "prod", path);
        async move { send(&client(false), Request::post(url).body(empty()).expect("request")).await }
    };
    for _ in 0..2 {
        let hits = e.up.hits();
        assert_eq!(post("/items/1?type=a").await.status, 200);
        assert_eq!(e.up.hits(), hits + 1, "POST is never cached");
    }
    for path in [
        "/status/404",
        "/status/404",
        "/off",
        "/off",
        "/zero",
        "/zero",
        "/encoded",
        "/encoded",
        "/cookie",
        "/cookie",
        "/private",
        "/private",
    ] {
        assert_eq!(e.calls(path, &[]).await, 1, "{path}");
    }
    assert_eq!(e.calls("/status/201", &[]).await, 1);
    assert_eq!(e.calls("/status/201", &[]).await, 0, "every 2xx is cached");

    // 1 MiB: at the limit cached, above not, streamed or not; the answer is whole either way.
    for (path, cached) in [
        ("/text/1048576", true),
        ("/text/1048577", false),
        ("/bytes/1000", true),
        ("/bytes/1048577", false),
    ] {
        let a = e.get(path, &[]).await;
        let n: usize = path.rsplit('/').next().and_then(|n| n.parse().ok()).expect("n");
        assert_eq!(a.bytes.len(), n, "{path}");
        let hits = e.up.hits();
        let b = e.get(path, &[]).await;
        assert_eq!(b.bytes.len(), n, "{path}");
        assert_eq!(e.up.hits() == hits, cached, "{path}");
    }

    // Cache-Control: max-age=0.
    let max_age = ("cache-control", "max-age=0");
    let key = ("x-api-key", KEY);
    assert_eq!(e.calls("/items/3", &[]).await, 1);
    let a = e.get("/items/3", &[max_age]).await;
    assert_eq!(a.status, 403, "FAIL_WITH_403 without a key: {a:?}");
    assert_eq!(a.header("x-amzn-errortype"), Some("AccessDeniedException"));
    assert!(a.body.contains("execute-api:InvalidateCache"), "{}", a.body);
    let a = e
        .get("/items/3", &[max_age, ("x-api-key", "unknownkey0123456789xx")])
        .await;
    assert_eq!(a.status, 403, "a key in no plan of the stage does not authorize");
    assert_eq!(
        e.calls("/items/3", &[max_age, key]).await,
        1,
        "a key of the stage's plan"
    );
    assert_eq!(e.calls("/items/3", &[]).await, 0, "the entry was replaced");
    for path in ["/warn", "/quiet"] {
        assert_eq!(e.calls(path, &[]).await, 1);
        let hits = e.up.hits();
        let a = e.get(path, &[max_age]).await;
        assert_eq!(a.status, 200);
        assert_eq!(e.up.hits(), hits, "{path}: the header is ignored");
        assert_eq!(a.header("warning").is_some(), path == "/warn", "{path}: {a:?}");
        assert_eq!(e.calls(path, &[max_age, key]).await, 1, "{path} with a key");
    }
    assert_eq!(e.calls("/open", &[]).await, 1);
    assert_eq!(e.calls("/open", &[max_age]).await, 1, "no authorization required");

    // Flush by the admin endpoint.
    let admin = e.gw.serve_admin().await;
    assert_eq!(e.calls("/flushed", &[]).await, 1);
    let flush = |query: String| {
        let url = format!("{admin}/cache/flush?{query}");
        async move { curl(&["-X", "POST", &url]).await }
    };
    let (status, _) = flush(format!("api={}&stage=prod", e.api)).await;
    assert_eq!(status, 200);
    assert_eq!(e.calls("/flushed", &[]).await, 1, "flushed by the admin endpoint");
    assert_eq!(flush(format!("api={}&stage=nope", e.api)).await.0, 404);
    assert_eq!(flush("api=x".into()).await.0, 400);

    // The flush is an admin endpoint only: on the public listener the path is an API's.
    let hits = e.up.hits();
    let public = e.gw.url(&e.api, "prod", "/cache/flush");
    let (status, _) = curl(&["-X", "POST", &format!("{public}?api={}&stage=prod", e.api)]).await;
    assert_ne!(status, 200, "POST /cache/flush on the public listener");
    assert_eq!(e.calls("/flushed", &[]).await, 0, "nothing flushed");
    assert_eq!(e.up.hits(), hits);

    // Flush by the Stage annotation: a new value flushes, the same value again does not.
    assert_eq!(e.calls("/flushed", &[]).await, 0);
    e.gw.store
        .publish(table(&world(e.up.addr, "cached-v1", Some("1")), 2));
    assert_eq!(e.calls("/flushed", &[]).await, 1, "flushed by the annotation");
    e.gw.store
        .publish(table(&world(e.up.addr, "cached-v1", Some("1")), 3));
    assert_eq!(
        e.calls("/flushed", &[]).await,
        0,
        "the same value flushes nothing"
    );

    // A new deployment never serves the old one's entries.
    e.gw.store
        .publish(table(&world(e.up.addr, "cached-v2", Some("1")), 4));
    assert_eq!(e.calls("/flushed", &[]).await, 1, "deployment v2");
    assert_eq!(e.calls("/flushed", &[]).await, 0);

    // Canary: its own entries, unless useStageCache.
    let canary = |stage: &'static str, which: &'static str| {
        let e = &e;
        async move {
            let before = e.up.hits();
            let a = e
                .get_on("canary", stage, "/c/1", &[("x-turnpike-canary", which)])
                .await;
            assert_eq!(a.status, 200, "{a:?}");
            e.up.hits() - before
        }
    };
    assert_eq!(canary("split", "never").await, 1);
    assert_eq!(
        canary("split", "always").await,
        1,
        "the canary has its own entries"
    );
    assert_eq!(canary("split", "always").await, 0);
    assert_eq!(canary("shared", "never").await, 1);
    assert_eq!(
        canary("shared", "always").await,
        0,
        "useStageCache: the stage's entry"
    );

    // Coalescing: 100 concurrent misses of one key make one backend request.
    let hits = e.up.hits();
    let answers = futures::future::join_all((0..100).map(|_| e.get("/slow", &[]))).await;
    assert!(answers.iter().all(|a| a.status == 200 && a.body == "slept"));
    assert_eq!(
        e.up.hits(),
        hits + 1,
        "one backend request for 100 concurrent misses"
    );

    // Metrics.
    let metrics = e.gw.metrics_text();
    for name in [
        "turnpike_cache_hit_count_total{",
        "turnpike_cache_miss_count_total{",
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(name) && l.contains(r#"resource="/items/{id}""#)),
            "{name} in {metrics}"
        );
    }

    // A stage that leaves the table takes its cache with it.
    assert!(e.gw.shared.cache.get(&e.api, "prod").is_some());
    let without = world(e.up.addr, "cached-v2", Some("1")).replace(
        "cacheClusterEnabled: true\n  cacheClusterSize",
        "cacheClusterEnabled: false\n  cacheClusterSize",
    );
    e.gw.store.publish(table(&without, 5));
    for _ in 0..200 {
        if e.gw.shared.cache.get(&e.api, "prod").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        e.gw.shared.cache.get(&e.api, "prod").is_none(),
        "dropped with the stage's cache"
    );
}

#[test]
fn cache_settings_are_validated_with_field_paths() {
    let yaml = ApiSet::new(NS, "badcache")
        .method(
            "/x",
            "GET",
            "        integration:\n          type: MOCK\n          cacheKeyParameters: [method.request.cookie.a]\n          cacheNamespace: \"\"",
        )
        .stage_with(
            "prod",
            "  cacheClusterEnabled: true\n  cacheClusterSize: \"2\"\n  methodSettings:\n    \"*/*\": {cacheTtlInSeconds: 3601, unauthorizedCacheControlHeaderStrategy: DENY}",
        )
        .yaml();
    let world = turnpike_controller::ingest::world_from_yaml(&yaml).expect("yaml");
    let compiled = turnpike_core::compile::compile(&world, &Default::default(), 1);
    let text = format!("{:?}", compiled.statuses);
    for expected in [
        r#"spec.resources[\"/x\"].GET.integration.cacheKeyParameters[0]"#,
        r#"spec.resources[\"/x\"].GET.integration.cacheNamespace: must be 1 to 128 characters"#,
        "spec.cacheClusterSize: \\\"2\\\": one of 0.5, 1.6",
        r#"spec.methodSettings[\"*/*\"].cacheTtlInSeconds: 3601 is out of range"#,
        r#"spec.methodSettings[\"*/*\"].unauthorizedCacheControlHeaderStrategy: \"DENY\""#,
        "InvalidCacheSettings",
    ] {
        assert!(text.contains(expected), "{expected} not in {text}");
    }
}

/// With an admin token file, `POST /cache/flush` takes the bearer token (any peer, loopback
/// too): none or another is 401 and flushes nothing.
#[tokio::test]
async fn the_admin_flush_takes_the_token_when_one_is_set() {
    let e = env().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "admin-token-0123456789\n").expect("token");
    let admin = turnpike_proxy::admin::Admin::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("admin")
        .with_cache(e.gw.shared.cache.clone())
        .with_token_file(Some(token));
    let base = format!("http://{}", admin.local_addr().expect("addr"));
    tokio::spawn(admin.run(e.gw.store.clone(), e.gw.registry.clone(), std::future::pending()));
    let url = format!("{base}/cache/flush?api={}&stage=prod", e.api);

    assert_eq!(e.calls("/flushed", &[]).await, 1);
    for auth in [None, Some("Bearer wrong"), Some("admin-token-0123456789")] {
        let mut args = vec!["-X", "POST"];
        let header;
        if let Some(a) = auth {
            header = format!("Authorization: {a}");
            args.extend(["-H", header.as_str()]);
        }
        args.push(&url);
        let (status, text) = curl(&args).await;
        assert_eq!(status, 401, "{auth:?}: {text}");
        assert!(
            text.to_ascii_lowercase().contains("www-authenticate: bearer"),
            "{text}"
        );
        assert_eq!(e.calls("/flushed", &[]).await, 0, "{auth:?}: nothing flushed");
    }
    let (status, text) = curl(&[
        "-X",
        "POST",
        "-H",
        "Authorization: Bearer admin-token-0123456789",
        &url,
    ])
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(e.calls("/flushed", &[]).await, 1, "flushed with the token");
}
