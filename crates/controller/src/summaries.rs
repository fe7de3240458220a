//! The leader's periodic summaries in status (usage in UsagePlan and ApiKey, the stage cache
//! in Stage): one loop for all of them.
//!
//! While this replica leads and a table is published, every `every` a round computes the
//! summaries ([`Summary`]: an object, the status field and its value), one at a time; the
//! loop applies, as they come, with
//! server-side apply under [`SUMMARY_FIELD_MANAGER`] (so the status writer's applies neither
//! remove nor fight over them), those whose numbers changed since they were last written (the
//! `updated` time stamps aside). Followers write nothing; a new leader starts from nothing
//! written. Never on the request path.

use std::{
    collections::HashSet,
    hash::{BuildHasher, RandomState},
    sync::Arc,
    time::Duration,
};

use futures::{Stream, StreamExt as _, future};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::{metrics::ControllerMetrics, status};
use turnpike_core::{compile::Kind, model::ObjectKey};
use turnpike_proxy::store::TableStore;

/// The field manager of every summary.
pub const SUMMARY_FIELD_MANAGER: &str = "turnpike-usage";
/// How many status writes are in flight at once. Each holds a connection of its own (kube's
/// client speaks HTTP/1.1), with about 23 KB of buffers.
const CONCURRENCY: usize = 4;

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
/// leadership channel closes. `round` gets the RFC 3339 time stamp of the round and yields
/// its summaries one at a time: each is written (or passed over) as it comes, so a round of
/// 10,000 ApiKeys holds no more of them at once than are in flight.
pub async fn write_while_leading<St>(
    client: kube::Client,
    table: TableStore,
    mut leader: watch::Receiver<bool>,
    every: Duration,
    metrics: Arc<ControllerMetrics>,
    mut round: impl FnMut(String) -> St,
) where
    St: Stream<Item = Summary>,
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
        let (client, metrics) = (&client, &metrics);
        let wrote = write_round(&mut written, round(updated), |s| async move {
            let mut body = Map::new();
            body.insert(s.field.to_string(), s.value);
            let r = status::patch_status_as(
                client,
                SUMMARY_FIELD_MANAGER,
                s.kind,
                &s.object,
                &Value::Object(body),
            )
            .await;
            if let Err(e) = &r {
                metrics.failure(e);
                warn!(error = %e, field = s.field, "writing a status summary");
            }
            r.is_ok()
        })
        .await;
        if wrote > 0 {
            debug!(writes = wrote, "wrote status summaries");
        }
    }
}

/// Writes the summaries of `due` that differ from what was last written, [`CONCURRENCY`] at a
/// time, as `due` yields them; `write` says whether its write succeeded (one that failed is
/// written again next round). Returns how many were written.
async fn write_round<W, F>(written: &mut Written, due: impl Stream<Item = Summary>, write: W) -> usize
where
    W: Fn(Summary) -> F,
    F: Future<Output = bool>,
{
    let last = std::mem::take(&mut written.hashes);
    // What this round found written already, and (below) what it writes: what the next
    // round finds written.
    let mut unchanged = Vec::new();
    let done: Vec<u64> = due
        .filter_map(|s| {
            let hash = written.hash(&s);
            let due = if last.contains(&hash) {
                unchanged.push(hash);
                None
            } else {
                Some((s, hash))
            };
            future::ready(due)
        })
        .map(|(s, hash)| {
            let w = write(s);
            async move { w.await.then_some(hash) }
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(future::ready)
        .collect()
        .await;
    drop(last);
    let wrote = done.len();
    written.hashes = unchanged.into_iter().chain(done).collect();
    wrote
}

/// What the last round found written, or wrote: one 64-bit hash per summary (one per ApiKey)
/// rather than the names and the value, the hash of its slot (kind, object, field) with its
/// numbers (time stamps removed). A summary whose hash is here is what was last written in
/// its slot, time stamps aside. Each round keeps the hashes of its own summaries only, so a
/// slot holds one. With 10,000 keys that is about 0.15 MB (a map from the slot's hash to the
/// numbers' took twice that, and the names and a SHA-256 per key about 1.5 MB).
///
/// The hasher is keyed per process. A summary whose new numbers hash to one of the hashes
/// kept (odds about n / 2⁶⁴ per change: 5 · 10⁻¹⁶ for 10,000 keys) is passed over, until its
/// numbers change again.
#[derive(Default)]
struct Written {
    hashes: HashSet<u64>,
    hasher: RandomState,
}

impl Written {
    /// The hash of `s`: its slot with its numbers.
    fn hash(&self, s: &Summary) -> u64 {
        let json = serde_json::to_vec(&without_time_stamps(&s.value)).unwrap_or_default();
        self.hasher.hash_one((s.kind, &s.object, s.field, json))
    }

    /// Whether `s` is what was last written there, time stamps aside.
    #[cfg(test)]
    fn is(&self, s: &Summary) -> bool {
        self.hashes.contains(&self.hash(s))
    }

    #[cfg(test)]
    fn insert(&mut self, s: &Summary) {
        self.hashes.insert(self.hash(s));
    }

    fn clear(&mut self) {
        self.hashes = HashSet::new();
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
    use futures::stream;
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

    /// Writes every summary of `due` that `write` is asked to, and what it was asked.
    async fn round(written: &mut Written, due: Vec<Summary>, fail: &str) -> Vec<String> {
        let asked = std::cell::RefCell::new(Vec::new());
        let wrote = write_round(written, stream::iter(due), |s| {
            asked.borrow_mut().push(s.object.name.to_string());
            let ok = &*s.object.name != fail;
            async move { ok }
        })
        .await;
        let mut asked = asked.into_inner();
        assert_eq!(wrote, asked.len() - usize::from(asked.iter().any(|n| n == fail)));
        asked.sort();
        asked
    }

    #[tokio::test]
    async fn a_round_writes_what_changed_and_again_what_failed() {
        let mut written = Written::default();
        let at = |used: i64, updated: &str| json!([{"used": used, "updated": updated}]);
        let all = |b: i64, updated: &str| {
            vec![
                summary("a", at(1, updated)),
                summary("b", at(b, updated)),
                summary("c", at(3, updated)),
            ]
        };
        assert_eq!(round(&mut written, all(2, "T1"), "c").await, ["a", "b", "c"]);
        // The same numbers later: only the one that failed.
        assert_eq!(round(&mut written, all(2, "T2"), "").await, ["c"]);
        assert_eq!(round(&mut written, all(2, "T3"), "").await, Vec::<String>::new());
        assert_eq!(round(&mut written, all(5, "T4"), "").await, ["b"]);
        assert!(written.is(&summary("b", at(5, "T5"))));
    }
}
