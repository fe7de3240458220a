//! The leader's periodic summaries in status (usage in UsagePlan and ApiKey, the stage cache
//! in Stage): one loop for all of them.
//!
//! While this replica leads and a table is published, every `every` a round computes the
//! summaries ([`Summary`]: an object, the status field and its value); the loop applies, with
//! server-side apply under [`SUMMARY_FIELD_MANAGER`] (so the status writer's applies neither
//! remove nor fight over them), those whose numbers changed since they were last written (the
//! `updated` time stamps aside). Followers write nothing; a new leader starts from nothing
//! written. Never on the request path.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::Arc,
    time::Duration,
};

use futures::{StreamExt as _, stream};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::{metrics::ControllerMetrics, status};
use turnpike_core::{compile::Kind, model::ObjectKey};
use turnpike_proxy::store::TableStore;

/// The field manager of every summary.
pub const SUMMARY_FIELD_MANAGER: &str = "turnpike-usage";
/// How many status writes are in flight at once.
const CONCURRENCY: usize = 16;

/// One status field of one object, as a round computed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub kind: Kind,
    pub object: ObjectKey,
    /// The field of `status` it goes to.
    pub field: &'static str,
    pub value: Value,
}

impl Summary {
    pub fn new(kind: Kind, object: ObjectKey, field: &'static str, value: &impl Serialize) -> Self {
        Summary {
            kind,
            object,
            field,
            value: serde_json::to_value(value).unwrap_or(Value::Null),
        }
    }
}

/// Runs `round` every `every` while this replica leads, writing what changed, until the
/// leadership channel closes. `round` gets the RFC 3339 time stamp of the round.
pub async fn write_while_leading<F>(
    client: kube::Client,
    table: TableStore,
    mut leader: watch::Receiver<bool>,
    every: Duration,
    metrics: Arc<ControllerMetrics>,
    mut round: impl FnMut(String) -> F,
) where
    F: Future<Output = Vec<Summary>>,
{
    let mut written = Written::default();
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
        let mut due = round(updated).await;
        due.retain(|s| !written.is(s));
        if due.is_empty() {
            continue;
        }
        debug!(writes = due.len(), "writing status summaries");
        let client = &client;
        let results: Vec<_> = stream::iter(due)
            .map(|s| async move {
                let mut body = Map::new();
                body.insert(s.field.to_string(), s.value.clone());
                let r = status::patch_status_as(
                    client,
                    SUMMARY_FIELD_MANAGER,
                    s.kind,
                    &s.object,
                    &Value::Object(body),
                )
                .await;
                (s, r)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (s, r) in results {
            match r {
                Ok(()) => written.insert(&s),
                Err(e) => {
                    metrics.failure(&e);
                    warn!(error = %e, field = s.field, "writing a status summary");
                }
            }
        }
    }
}

/// What was last written, per object and field: one entry per ApiKey, so two 64-bit hashes
/// rather than the names and the value. The slot's hash (kind, object, field) keys the map;
/// the value is the hash of the slot with the summary's numbers (time stamps removed). With
/// 10,000 keys that is about 0.3 MB where the names and a SHA-256 per key took about 1.5 MB.
///
/// The hasher is keyed per process. Two slots whose hashes meet (odds about n² / 2⁶⁵: 3 · 10⁻¹²
/// for 10,000 keys) take turns in one entry, and neither's value can match the other's: each
/// is written again every round, never skipped.
#[derive(Default)]
struct Written {
    hashes: HashMap<u64, u64>,
    hasher: RandomState,
}

impl Written {
    fn slot(&self, s: &Summary) -> u64 {
        self.hasher.hash_one((s.kind, &s.object, s.field))
    }

    fn numbers(&self, slot: u64, s: &Summary) -> u64 {
        let json = serde_json::to_vec(&without_time_stamps(&s.value)).unwrap_or_default();
        self.hasher.hash_one((slot, json))
    }

    /// Whether `s` is what was last written there, time stamps aside.
    fn is(&self, s: &Summary) -> bool {
        let slot = self.slot(s);
        self.hashes.get(&slot) == Some(&self.numbers(slot, s))
    }

    fn insert(&mut self, s: &Summary) {
        let slot = self.slot(s);
        let numbers = self.numbers(slot, s);
        self.hashes.insert(slot, numbers);
    }

    fn clear(&mut self) {
        self.hashes = HashMap::new();
    }
}

/// A summary without its `updated` time stamps.
fn without_time_stamps(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| *k != "updated")
                .map(|(k, v)| (k.clone(), without_time_stamps(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_time_stamps).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary(name: &str, value: Value) -> Summary {
        Summary {
            kind: Kind::ApiKey,
            object: ObjectKey::new("default", name),
            field: "usage",
            value,
        }
    }

    #[test]
    fn the_time_stamp_alone_is_no_change() {
        let mut written = Written::default();
        let a = summary("k", json!([{"used": 3, "remaining": 7, "updated": "T1"}]));
        assert!(!written.is(&a), "nothing written yet");
        written.insert(&a);
        assert!(written.is(&a));
        assert!(written.is(&summary(
            "k",
            json!([{"used": 3, "remaining": 7, "updated": "T2"}])
        )));
        assert!(!written.is(&summary(
            "k",
            json!([{"used": 4, "remaining": 6, "updated": "T2"}])
        )));
    }

    #[test]
    fn the_same_numbers_of_another_object_are_not_written_yet() {
        let mut written = Written::default();
        let numbers = json!([{"used": 0, "remaining": 10, "updated": "T1"}]);
        written.insert(&summary("a", numbers.clone()));
        assert!(!written.is(&summary("b", numbers.clone())));
        let plan = Summary {
            kind: Kind::UsagePlan,
            ..summary("a", numbers)
        };
        assert!(!written.is(&plan), "nor those of another kind of the same name");
        written.clear();
        assert!(!written.is(&summary("a", json!([{"used": 0, "remaining": 10}]))));
    }
}
