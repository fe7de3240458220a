//! The usage summary in UsagePlan and ApiKey status: requests used in the current quota period
//! and what is left, written by the leader every `every` (30 s by default), never on the
//! request path.
//!
//! Each round reads the routing table (which keys are in which plans, and the plans' quotas)
//! and asks the proxy's [`Usage`] what each key used: from Redis when limits are shared (every
//! replica's requests), else from this process's counters (what this replica admitted).
//! [`crate::summaries`] writes `status.usage` of every object whose numbers changed:
//!
//! - ApiKey: one entry per plan with a quota, `{usagePlan, period, periodStart, used,
//!   remaining, updated}`;
//! - UsagePlan: `{period, periodStart, used, remaining, updated}`, its keys added up.
//!
//! Plans without a quota get no summary.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::{Stream, StreamExt as _, stream};
use tokio::sync::watch;

use crate::{
    metrics::ControllerMetrics,
    summaries::{self, Summary},
};
use turnpike_api::v1alpha1::usage_plan::{KeyUsageSummary, PlanUsageSummary, QuotaPeriod};
use turnpike_core::{
    compile::Kind,
    model::{self, KeyId, ObjectKey, Quota},
    routing::KeyEntry,
};
use turnpike_proxy::{
    store::TableStore,
    usage::{Usage, quota},
};
use turnpike_telemetry::access_log::civil_from_days;

/// How many usage reads are in flight at once.
const CONCURRENCY: usize = 16;

/// The usage summaries of one round, one object at a time as its usage reads come back:
/// every ApiKey's that is in a plan with a quota, then every such plan's, its keys added up.
/// Built as they are written, so a round of 10,000 keys holds a few of them at a time rather
/// than every one as JSON (about 8 MiB).
pub fn summarize(
    table: &TableStore,
    usage: Arc<Usage>,
    updated: String,
) -> impl Stream<Item = Summary> + use<> {
    let table = table.load();
    let plans: BTreeMap<ObjectKey, Quota> = table
        .apis()
        .flat_map(|a| a.stages.values())
        .flat_map(|s| s.plans.values())
        .filter_map(|p| Some((p.object.clone(), p.quota?)))
        .collect();
    let keys = table.keys().cloned().collect();
    let day = quota::day_of(usage.now());
    summaries(plans, keys, day, updated, move |plan, key, q| {
        let usage = usage.clone();
        async move { usage.used_now(&plan, &key, q).await }
    })
}

/// The summaries of `keys` in `plans` (those with a quota) on `day`, `used` telling what a key
/// used of a plan. A key in none of `plans` has none.
fn summaries<U, F>(
    plans: BTreeMap<ObjectKey, Quota>,
    mut keys: Vec<Arc<KeyEntry>>,
    day: i64,
    updated: String,
    used: U,
) -> impl Stream<Item = Summary>
where
    U: Fn(ObjectKey, KeyId, Quota) -> F,
    F: Future<Output = u64>,
{
    keys.retain(|k| k.plans.iter().any(|p| plans.contains_key(p)));
    let totals: BTreeMap<ObjectKey, PlanUsageSummary> = plans
        .iter()
        .map(|(plan, q)| (plan.clone(), plan_summary(*q, day, 0, 0, &updated)))
        .collect();
    let counted = stream::iter(keys)
        .map(move |k| {
            let reads: Vec<_> = k
                .plans
                .iter()
                .filter_map(|p| {
                    let q = *plans.get(p)?;
                    Some((p.clone(), q, used(p.clone(), k.id, q)))
                })
                .collect();
            async move {
                let mut counted = Vec::with_capacity(reads.len());
                for (plan, q, used) in reads {
                    counted.push((plan, q, used.await));
                }
                (k, counted)
            }
        })
        .buffered(CONCURRENCY)
        .fuse();
    let round = (Box::pin(counted), totals, updated);
    stream::unfold(round, move |(mut counted, mut totals, updated)| async move {
        let summary = match counted.next().await {
            Some((key, counted)) => {
                let s: Vec<KeyUsageSummary> = counted
                    .into_iter()
                    .map(|(plan, q, used)| {
                        let remaining = q.limit.saturating_sub(used);
                        if let Some(p) = totals.get_mut(&plan) {
                            p.used = p.used.saturating_add(count(used));
                            p.remaining = p.remaining.saturating_add(count(remaining));
                        }
                        KeyUsageSummary {
                            usage_plan: plan.name.to_string(),
                            period: period(q.period),
                            period_start: period_start(q, day),
                            used: count(used),
                            remaining: count(remaining),
                            updated: updated.clone(),
                        }
                    })
                    .collect();
                Summary::new(Kind::ApiKey, key.object.clone(), "usage", &s)
            }
            // Every key counted: the plans' totals.
            None => {
                let (plan, s) = totals.pop_first()?;
                Summary::new(Kind::UsagePlan, plan, "usage", &s)
            }
        };
        Some((summary, (counted, totals, updated)))
    })
}

fn plan_summary(q: Quota, day: i64, used: i64, remaining: i64, updated: &str) -> PlanUsageSummary {
    PlanUsageSummary {
        period: period(q.period),
        period_start: period_start(q, day),
        used,
        remaining,
        updated: updated.to_string(),
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn period(p: model::QuotaPeriod) -> QuotaPeriod {
    match p {
        model::QuotaPeriod::Day => QuotaPeriod::Day,
        model::QuotaPeriod::Week => QuotaPeriod::Week,
        model::QuotaPeriod::Month => QuotaPeriod::Month,
    }
}

fn period_start(q: Quota, day: i64) -> String {
    let (y, m, d) = civil_from_days(quota::window_start(q.period, quota::window_of(q.period, day)));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Writes usage summaries while this replica leads, every `every`, until the leadership
/// channel closes.
pub async fn run(
    client: kube::Client,
    table: TableStore,
    usage: Arc<Usage>,
    leader: watch::Receiver<bool>,
    every: Duration,
    metrics: Arc<ControllerMetrics>,
) {
    let round = |updated: String| summarize(&table, usage.clone(), updated);
    summaries::write_while_leading(client, table.clone(), leader, every, metrics, round).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_on_utc_day_sunday_and_the_first() {
        let day = turnpike_telemetry::access_log::days_from_civil(2026, 12, 2);
        let q = |period| Quota {
            limit: 10,
            period,
            offset: 0,
        };
        assert_eq!(period_start(q(model::QuotaPeriod::Day), day), "2026-12-02");
        assert_eq!(period_start(q(model::QuotaPeriod::Week), day), "2026-11-29");
        assert_eq!(period_start(q(model::QuotaPeriod::Month), day), "2026-12-01");
    }

    fn key(name: &str, plans: &[&str]) -> Arc<KeyEntry> {
        Arc::new(KeyEntry {
            id: KeyId::from_uid(name),
            object: ObjectKey::new("default", name),
            digest: turnpike_core::model::KeyDigest::of_value(&format!("{name}0123456789abcdefghij"))
                .unwrap(),
            enabled: true,
            customer_id: None,
            plans: plans.iter().map(|p| ObjectKey::new("default", p)).collect(),
            generation: 1,
            conditions: Arc::new([]),
        })
    }

    /// One summary per key in a plan with a quota, one entry per such plan; then one per
    /// plan, its keys added up.
    #[tokio::test]
    async fn a_round_summarizes_each_key_then_each_plan() {
        let day = turnpike_telemetry::access_log::days_from_civil(2026, 12, 2);
        let quota = |limit, period| Quota {
            limit,
            period,
            offset: 0,
        };
        let plans = BTreeMap::from([
            (
                ObjectKey::new("default", "daily"),
                quota(10, model::QuotaPeriod::Day),
            ),
            (
                ObjectKey::new("default", "monthly"),
                quota(100, model::QuotaPeriod::Month),
            ),
            (
                ObjectKey::new("default", "idle"),
                quota(5, model::QuotaPeriod::Week),
            ),
        ]);
        let keys = vec![
            key("a", &["daily", "monthly"]),
            key("b", &["daily", "unlimited"]),
            key("c", &["unlimited"]),
        ];
        let used = |plan: ObjectKey, id: KeyId, _| {
            let used = if id == KeyId::from_uid("a") { 4 } else { 7 } + u64::from(&*plan.name == "monthly");
            async move { used }
        };
        let got: Vec<Summary> = summaries(plans, keys, day, "T".into(), used).collect().await;
        let key_summary = |plan: &str, period: &str, start: &str, used: i64, remaining: i64| {
            serde_json::json!({"usagePlan": plan, "period": period, "periodStart": start,
                "used": used, "remaining": remaining, "updated": "T"})
        };
        let plan_summary = |period: &str, start: &str, used: i64, remaining: i64| {
            serde_json::json!({"period": period, "periodStart": start,
                "used": used, "remaining": remaining, "updated": "T"})
        };
        let object = |kind, name: &str, value| Summary {
            kind,
            object: ObjectKey::new("default", name),
            field: "usage",
            value,
        };
        assert_eq!(
            got,
            [
                object(
                    Kind::ApiKey,
                    "a",
                    serde_json::json!([
                        key_summary("daily", "DAY", "2026-12-02", 4, 6),
                        key_summary("monthly", "MONTH", "2026-12-01", 5, 95),
                    ])
                ),
                object(
                    Kind::ApiKey,
                    "b",
                    serde_json::json!([key_summary("daily", "DAY", "2026-12-02", 7, 3)])
                ),
                object(Kind::UsagePlan, "daily", plan_summary("DAY", "2026-12-02", 11, 9)),
                object(Kind::UsagePlan, "idle", plan_summary("WEEK", "2026-11-29", 0, 0)),
                object(
                    Kind::UsagePlan,
                    "monthly",
                    plan_summary("MONTH", "2026-12-01", 5, 95)
                ),
            ]
        );
    }
}
