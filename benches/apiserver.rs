//! Throughput and memory of the embedded API server with 10k custom objects.
//!
//! Run with: `cargo bench --bench apiserver` (optionally `-- <count> <concurrency>`); under
//! `cargo test --all-targets` it does nothing.
//! The server runs in-process on 127.0.0.1:0 over a temporary data directory; the client is
//! kube-rs. Reported: create/s (each create is an fsync'ed SQLite commit), full list time,
//! paginated list time, watch initial-events/s, live watch delivery, and the process RSS.

use std::time::Instant;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api,
    api::{ListParams, PostParams, WatchEvent, WatchParams},
};
use turnpike_api::RestApi;
use turnpike_apiserver::{ApiServer, ApiServerConfig};

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn restapi(i: usize) -> RestApi {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "turnpike.dev/v1alpha1", "kind": "RestApi",
        "metadata": {"name": format!("api-{i:05}"), "labels": {"shard": format!("s{}", i % 10)}},
        "spec": {"description": "bench", "endpointConfiguration": {"types": ["REGIONAL"]},
                 "resources": {"/pets": {"GET": {"integration": {"type": "HTTP_PROXY", "uri": "http://pets:8080/pets"}}}}}
    }))
    .expect("restapi")
}

#[allow(clippy::print_stdout)]
fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let count: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let conc: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(32);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let base_rss = rss_mib();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ApiServerConfig::new(dir.path()).with_addr("127.0.0.1:0".parse().expect("addr"));
        let handle = ApiServer::start(config).await.expect("start");
        let client = handle.client().await.expect("client");
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in turnpike_api::crds() {
            crds.create(&PostParams::default(), &crd).await.expect("crd");
        }
        let api: Api<RestApi> = Api::namespaced(client.clone(), "default");
        let idle_rss = rss_mib();

        // A live watch started before the creates: how fast are events delivered?
        let rv = api.list(&ListParams::default().limit(1)).await.expect("list").metadata.resource_version.expect("rv");
        let live = api.watch(&WatchParams::default(), &rv).await.expect("watch");
        let live_task = tokio::spawn(async move {
            let mut live = live.boxed();
            let mut n = 0;
            while n < count {
                match live.try_next().await {
                    Ok(Some(WatchEvent::Added(_))) => n += 1,
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            (n, Instant::now())
        });

        let t = Instant::now();
        futures::stream::iter(0..count)
            .map(|i| {
                let api = api.clone();
                async move { api.create(&PostParams::default(), &restapi(i)).await.expect("create") }
            })
            .buffer_unordered(conc)
            .for_each(|_| async {})
            .await;
        let create = t.elapsed();
        let (seen, last) = live_task.await.expect("live watch");
        let watch_live = last.duration_since(t);
        let after_create_rss = rss_mib();

        let t = Instant::now();
        let all = api.list(&ListParams::default()).await.expect("list");
        let list_full = t.elapsed();
        assert_eq!(all.items.len(), count);

        let t = Instant::now();
        let mut token: Option<String> = None;
        let mut n = 0;
        loop {
            let mut lp = ListParams::default().limit(500);
            if let Some(c) = &token {
                lp = lp.continue_token(c);
            }
            let page = api.list(&lp).await.expect("page");
            n += page.items.len();
            token = page.metadata.continue_.filter(|c| !c.is_empty());
            if token.is_none() {
                break;
            }
        }
        let list_paged = t.elapsed();
        assert_eq!(n, count);

        let t = Instant::now();
        let sel = api.list(&ListParams::default().labels("shard=s3")).await.expect("selector");
        let list_sel = t.elapsed();

        let t = Instant::now();
        let mut w = api.watch(&WatchParams::default(), "0").await.expect("watch").boxed();
        let mut initial = 0;
        while initial < count {
            match w.try_next().await {
                Ok(Some(WatchEvent::Added(_))) => initial += 1,
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        let watch_initial = t.elapsed();
        let peak_rss = rss_mib();

        println!("objects: {count} RestApis, create concurrency {conc}");
        println!("create:            {:>8.0} objects/s ({:.2?} total)", count as f64 / create.as_secs_f64(), create);
        println!("live watch:        {seen} ADDED events, last one {:.2?} after the first create", watch_live);
        println!("list (one page):   {:.2?} ({:.0} objects/s)", list_full, count as f64 / list_full.as_secs_f64());
        println!("list (limit 500):  {:.2?}", list_paged);
        println!("list (selector):   {:.2?} for {} matches", list_sel, sel.items.len());
        println!("watch from rv=0:   {:.2?} for {initial} initial events ({:.0} events/s)", watch_initial, initial as f64 / watch_initial.as_secs_f64());
        println!(
            "RSS: base {base_rss:.1} MiB, idle server {idle_rss:.1} MiB, after creates {after_create_rss:.1} MiB, \
             peak {peak_rss:.1} MiB (client in the same process)"
        );
        let db = std::fs::metadata(dir.path().join("state.db")).map(|m| m.len()).unwrap_or(0)
            + std::fs::metadata(dir.path().join("state.db-wal")).map(|m| m.len()).unwrap_or(0);
        println!("database: {:.1} MiB", db as f64 / (1024.0 * 1024.0));
    });
}
