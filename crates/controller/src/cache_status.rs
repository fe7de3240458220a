//! The stage cache summary in Stage status: `status.cache` = `{entries, sizeBytes,
//! budgetBytes, backend, updated}` of every stage with `cacheClusterEnabled`, as this
//! replica's cache holds it, written by the leader every `every` (30 s by default), never on
//! the request path.
//!
//! Each round counts the proxy's [`StageCaches`] (moka's pending evictions applied first) and
//! applies, with server-side apply under the usage summaries' field manager, the summary of
//! every stage whose numbers changed since the last round. A caching stage this replica has
//! not served yet shows 0 entries. Followers write nothing; a new leader starts from nothing
//! written.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::{metrics::ControllerMetrics, status, usage::USAGE_FIELD_MANAGER};
use turnpike_api::v1alpha1::stage::StageCacheSummary;
use turnpike_core::{compile::Kind, model::ObjectKey};
use turnpike_proxy::{cache::StageCaches, store::TableStore};

/// The summary of every caching stage in the table, by Stage object.
pub async fn summarize(
    table: &TableStore,
    caches: &StageCaches,
    updated: &str,
) -> BTreeMap<ObjectKey, StageCacheSummary> {
    let counted: BTreeMap<(String, String), (u64, u64)> = caches
        .sizes()
        .await
        .into_iter()
        .map(|(id, entries, bytes)| ((id.api, id.stage), (entries, bytes)))
        .collect();
    let backend = if caches.is_shared() { "redis" } else { "memory" };
    let table = table.load();
    let mut out = BTreeMap::new();
    for api in table.apis() {
        for stage in api.stages.values().filter(|s| s.cache_enabled) {
            let (entries, bytes) = counted
                .get(&(api.id.to_string(), stage.name.clone()))
                .copied()
                .unwrap_or_default();
            out.insert(
                stage.object.clone(),
                StageCacheSummary {
                    entries: count(entries),
                    size_bytes: count(bytes),
                    budget_bytes: count(caches.budget_of(stage.cache_budget)),
                    backend: backend.to_string(),
                    updated: updated.to_string(),
                },
            );
        }
    }
    out
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Writes stage cache summaries while this replica leads, every `every`, until the leadership
/// channel closes.
pub async fn run(
    client: kube::Client,
    table: TableStore,
    caches: Arc<StageCaches>,
    mut leader: watch::Receiver<bool>,
    every: Duration,
    metrics: Arc<ControllerMetrics>,
) {
    // What was last written per Stage (without the time stamp).
    let mut written: BTreeMap<ObjectKey, (i64, i64, i64, String)> = BTreeMap::new();
    loop {
        tokio::select! {
            r = leader.changed() => {
                if r.is_err() { return }
                written.clear();
                continue;
            }
            _ = tokio::time::sleep(every) => {}
        }
        if !*leader.borrow() || !table.is_published() {
            continue;
        }
        let updated = status::now_rfc3339();
        let summaries = summarize(&table, &caches, &updated).await;
        for (stage, s) in summaries {
            let numbers = (s.entries, s.size_bytes, s.budget_bytes, s.backend.clone());
            if written.get(&stage) == Some(&numbers) {
                continue;
            }
            let v = serde_json::to_value(&s).unwrap_or(Value::Null);
            debug!(stage = %stage.name, entries = s.entries, bytes = s.size_bytes, "writing a stage cache summary");
            match status::patch_status_as(
                &client,
                USAGE_FIELD_MANAGER,
                Kind::Stage,
                &stage,
                &json!({ "cache": v }),
            )
            .await
            {
                Ok(()) => {
                    written.insert(stage, numbers);
                }
                Err(e) => {
                    metrics.failure(&e);
                    warn!(error = %e, "writing a stage cache summary");
                }
            }
        }
    }
}
