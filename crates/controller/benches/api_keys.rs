//! The controller's rebuild with many API keys, offline: the time of each step of
//! `Index::rebuild` (copying the cached objects out, taking the keys' conversions for the
//! Secrets they refer to, building the world, compiling) and the memory per key of the cached objects and
//! of what a rebuild leaves (table, statuses, conversion and compile caches): resident (what
//! the allocator keeps, free pages included) and live (the bytes each part holds, counted by
//! the allocator wrapper, part by part).
//!
//! Compile is timed twice: whole (`compile`, every key compiled, as the first rebuild) and as
//! a steady rebuild (`compile_with` the cache the previous rebuild left, every key unchanged, as
//! after a Stage edit).
//!
//! Run: `cargo bench -p turnpike-controller --bench api_keys [-- KEYS]` (default 10,000).
//! Targets (DESIGN.md, for routes, which keys must stay within): full compile ≤ 50 ms,
//! ≤ 1 KiB per key. The end-to-end numbers, through a real API server, come from
//! `benches/scale/api_keys.py`.

#![allow(clippy::print_stdout)] // A report for people.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use std::alloc::System;
use turnpike_api::v1alpha1::api_key::ApiKeyStatus;
use turnpike_controller::cache::ConversionCache;
use turnpike_controller::ingest::Objects;
use turnpike_controller::keys::KeyStore;
use turnpike_core::compile::{CompileCache, CompileConfig, Compiled, compile, compile_with};

/// The system allocator, counted: the bytes each part holds, exactly, where the resident set
/// also counts the allocator's free pages. (The wrapper cannot be built around mimalloc
/// outside a nightly compiler; the bytes held do not depend on the allocator.)
#[global_allocator]
static ALLOC: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed. (A reallocation's growth or shrinkage is already in
/// the allocated or deallocated bytes; `bytes_reallocated` counts it a second time.)
fn live() -> isize {
    let s = ALLOC.stats();
    s.bytes_allocated as isize - s.bytes_deallocated as isize
}

const BASE: &str = r#"
apiVersion: turnpike.dev/v1alpha1
kind: RestApi
metadata: {name: scale, namespace: default}
spec:
  resources:
    /k:
      GET:
        apiKeyRequired: true
        integration:
          type: MOCK
          requestTemplates: {application/json: '{"statusCode": 200}'}
          integrationResponses: [{statusCode: "200"}]
---
apiVersion: turnpike.dev/v1alpha1
kind: Deployment
metadata: {name: scale-v1, namespace: default}
spec: {restApiRef: {name: scale}}
---
apiVersion: turnpike.dev/v1alpha1
kind: Stage
metadata: {name: scale-prod, namespace: default}
spec: {restApiRef: {name: scale}, stageName: prod, deploymentRef: {name: scale-v1}}
---
apiVersion: turnpike.dev/v1alpha1
kind: UsagePlan
metadata: {name: plan, namespace: default}
spec:
  apiStages: [{restApiRef: {name: scale}, stage: prod}]
  throttle: {rateLimit: 1000, burstLimit: 100}
  quota: {limit: 1000000, period: MONTH}
"#;

fn objects(keys: usize) -> Objects {
    let mut y = String::from(BASE);
    for i in 0..keys {
        let _ = write!(
            y,
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: key-{i}, namespace: default, \
             labels: {{turnpike.dev/api-key: \"true\"}}}}\nstringData: {{value: ScaleKey{i:08}abcdefghijkl}}\n\
             ---\napiVersion: turnpike.dev/v1alpha1\nkind: ApiKey\nmetadata: {{name: key-{i}, namespace: default}}\n\
             spec:\n  valueFrom: {{secretKeyRef: {{name: key-{i}, key: value}}}}\n  usagePlanRefs: [{{name: plan}}]\n"
        );
    }
    let mut objects = Objects::from_yaml(&y).expect("yaml");
    // As the watch delivers them: with the API server's uid, a resource version and the
    // status the leader wrote.
    let condition = |type_: &str, reason: &str, message: &str| Condition {
        type_: type_.into(),
        status: "True".into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: Some(1),
        last_transition_time: Time(Default::default()),
    };
    for (i, k) in objects.api_keys.iter_mut().enumerate() {
        let k = Arc::make_mut(k);
        // A uid as the API server makes them: a UUID (version 4).
        k.metadata.uid = Some(format!(
            "{:08x}-5c1e-4a7b-9d2f-{:012x}",
            i,
            0x7e57_0000_0000_u64 + i as u64
        ));
        k.metadata.resource_version = Some(format!("{}", 1000 + i));
        k.metadata.generation = Some(1);
        k.status = Some(ApiKeyStatus {
            key_id: Some("abcdefghij".into()),
            conditions: vec![
                condition("Accepted", "Accepted", "the spec is valid"),
                condition("ResolvedRefs", "ResolvedRefs", "every reference resolved"),
                condition("Ready", "Ready", "in 1 usage plan(s), 1 stage(s)"),
            ],
            ..Default::default()
        });
    }
    objects
}

/// The process's resident set, in bytes.
fn rss() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .unwrap_or(0)
        * 1024
}

/// CPU time this thread has had, from /proc/thread-self/schedstat (the machine may be
/// busy: wall time would measure the other processes too).
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(
        stat.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let keys: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let base = rss();
    // The keys as the watch keeps them; the other objects as the reflectors do.
    let mut cached = objects(keys);
    let store = KeyStore::offline();
    store.relist(&std::mem::take(&mut cached.api_keys));
    let held = rss() - base;

    let mut cache = ConversionCache::default();
    let mut compile_cache = CompileCache::default();
    let (mut copy, mut convert, mut world, mut whole, mut comp) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut kept = None;
    for _ in 0..11 {
        let t = cpu();
        let mut objects = cached.clone();
        copy.push(cpu() - t);
        let t = cpu();
        // As the rebuild does, for the Secrets the keys refer to.
        let converted = store.converted();
        convert.push(cpu() - t);
        let t = cpu();
        let w = cache.world_with_keys(&mut objects, converted);
        world.push(cpu() - t);
        let t = cpu();
        drop(compile(&w, &CompileConfig::default(), 1));
        whole.push(cpu() - t);
        let t = cpu();
        let compiled = compile_with(&w, &CompileConfig::default(), 1, &mut compile_cache);
        comp.push(cpu() - t);
        drop((objects, w, kept.take()));
        let before = rss() - base;
        kept = Some((compiled, before));
    }
    let (compiled, before) = kept.take().expect("compiled");
    assert_eq!(compiled.table.keys().count(), keys, "every key is served");
    assert_eq!(compile_cache.len(), keys, "every key's outcome is kept");
    let after = rss() - base;
    let (copy, convert, world, whole, comp) = (
        median(copy),
        median(convert),
        median(world),
        median(whole),
        median(comp),
    );
    println!("keys: {keys}");
    println!(
        "rebuild, CPU time (median of 11): copy {copy:?} + keys converted {convert:?} + world {world:?} \
         + compile {comp:?} (steady; whole {whole:?}) = {:?}",
        copy + convert + world + comp
    );
    println!(
        "resident per key: cached objects {} B; then rebuilds {} B",
        held / keys as i64,
        (after - held).max(before - held) / keys as i64
    );

    // What each part holds, as the bytes freed when it is dropped, in this order (a part
    // shares `Arc`s with the ones after it: they count there).
    let per_key = |bytes: isize| bytes / keys as isize;
    let freed = |part: Box<dyn FnOnce()>| {
        let before = live();
        part();
        per_key(before - live())
    };
    let Compiled { table, statuses } = compiled;
    let table = freed(Box::new(move || drop(table)));
    let statuses = freed(Box::new(move || drop(statuses)));
    let compile_cache = freed(Box::new(move || drop(compile_cache)));
    let conversions = freed(Box::new(move || drop(cache)));
    let api_keys = freed(Box::new(move || drop(store)));
    let secrets = freed(Box::new(move || drop(cached)));
    println!(
        "live per key: ApiKeys as kept {api_keys} B; Secrets as cached {secrets} B; \
         other kinds' conversions {conversions} B; compile cache {compile_cache} B; statuses {statuses} B; \
         table {table} B; in all {} B",
        api_keys + secrets + conversions + compile_cache + statuses + table
    );
}
