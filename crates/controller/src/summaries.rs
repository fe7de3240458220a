//! The leader's periodic summaries in status (usage in UsagePlan and ApiKey, the stage cache
//! in Stage): one loop for all of them.
//!
//! While this replica leads and a table is published, every `every` a round computes the
//! summaries ([`Summary`]: an object, the status field and its value); the loop applies, with
//! server-side apply under [`SUMMARY_FIELD_MANAGER`] (so the status writer's applies neither
//! remove nor fight over them), those whose numbers changed since they were last written (the
//! `updated` time stamps aside). Followers write nothing; a new leader starts from nothing
//! written. Never on the request path.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::{StreamExt as _, stream};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
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
    // The digest of what was last written per object and field, time stamps removed: one
    // per ApiKey, so a digest rather than the value.
    let mut written: BTreeMap<(Kind, ObjectKey, &'static str), Digest> = BTreeMap::new();
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
        due.retain(|s| written.get(&(s.kind, s.object.clone(), s.field)) != Some(&numbers(&s.value)));
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
                Ok(()) => {
                    written.insert((s.kind, s.object, s.field), numbers(&s.value));
                }
                Err(e) => {
                    metrics.failure(&e);
                    warn!(error = %e, field = s.field, "writing a status summary");
                }
            }
        }
    }
}

/// The SHA-256 of a summary's JSON.
type Digest = [u8; 32];

/// The digest of a summary without its time stamps, to tell whether the numbers changed.
fn numbers(v: &Value) -> Digest {
    let json = serde_json::to_vec(&without_time_stamps(v)).unwrap_or_default();
    Sha256::digest(&json).into()
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

    #[test]
    fn the_time_stamp_alone_is_no_change() {
        let a = json!({"used": 3, "remaining": 7, "updated": "T1"});
        let b = json!({"used": 3, "remaining": 7, "updated": "T2"});
        assert_eq!(numbers(&a), numbers(&b));
        let c = json!([{"used": 4, "remaining": 6, "updated": "T2"}]);
        assert_ne!(numbers(&json!([a])), numbers(&c));
    }
}
