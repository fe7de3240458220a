//! The stage cache summary in Stage status: `status.cache` = `{entries, sizeBytes,
//! budgetBytes, backend, updated}` of every stage with `cacheClusterEnabled`, as this
//! replica's cache holds it, written by the leader every `every` (30 s by default), never on
//! the request path.
//!
//! Each round counts the proxy's [`StageCaches`] (moka's pending evictions applied first);
//! [`crate::summaries`] writes the summary of every stage whose numbers changed. A caching
//! stage this replica has not served yet shows 0 entries.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::{StreamExt as _, stream};
use tokio::sync::watch;

use crate::{
    metrics::ControllerMetrics,
    summaries::{self, Summary},
};
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
    leader: watch::Receiver<bool>,
    every: Duration,
    metrics: Arc<ControllerMetrics>,
) {
    let round = |updated: String| {
        let (table, caches) = (table.clone(), caches.clone());
        // Each stage's summary is small, and there are few stages: counted in one go.
        stream::once(async move { summarize(&table, &caches, &updated).await })
            .flat_map(stream::iter)
            .map(|(stage, s)| Summary::new(Kind::Stage, stage, "cache", &s))
    };
    summaries::write_while_leading(client, table.clone(), leader, every, metrics, round).await;
}
