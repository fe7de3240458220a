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

use futures::{StreamExt as _, stream};
use tokio::sync::watch;

use crate::{
    metrics::ControllerMetrics,
    summaries::{self, Summary},
};
use turnpike_api::v1alpha1::usage_plan::{KeyUsageSummary, PlanUsageSummary, QuotaPeriod};
use turnpike_core::{
    compile::Kind,
    model::{self, KeyId, ObjectKey, Quota},
};
use turnpike_proxy::{
    store::TableStore,
    usage::{Usage, quota},
};
use turnpike_telemetry::access_log::civil_from_days;

/// How many usage reads are in flight at once.
const CONCURRENCY: usize = 16;

/// The summaries of one round, by object.
#[derive(Debug, Default, PartialEq)]
pub struct Summaries {
    pub keys: BTreeMap<ObjectKey, Vec<KeyUsageSummary>>,
    pub plans: BTreeMap<ObjectKey, PlanUsageSummary>,
}

/// Counts what every key of every plan with a quota used in the current period.
pub async fn summarize(table: &TableStore, usage: &Usage, updated: &str) -> Summaries {
    let table = table.load();
    let plans: BTreeMap<ObjectKey, Quota> = table
        .apis()
        .flat_map(|a| a.stages.values())
        .flat_map(|s| s.plans.values())
        .filter_map(|p| Some((p.object.clone(), p.quota?)))
        .collect();
    let day = quota::day_of(usage.now());
    let wanted: Vec<(ObjectKey, KeyId, ObjectKey, Quota)> = table
        .keys()
        .flat_map(|k| {
            k.plans
                .iter()
                .filter_map(|p| Some((k.object.clone(), k.id, p.clone(), *plans.get(p)?)))
        })
        .collect();
    let counted: Vec<(ObjectKey, ObjectKey, Quota, u64)> = stream::iter(wanted)
        .map(|(key, id, plan, q)| async move {
            let used = usage.used_now(&plan, &id, q).await;
            (key, plan, q, used)
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut out = Summaries::default();
    for (plan, q) in &plans {
        out.plans
            .insert(plan.clone(), plan_summary(*q, day, 0, 0, updated));
    }
    for (key, plan, q, used) in counted {
        let remaining = q.limit.saturating_sub(used);
        out.keys.entry(key).or_default().push(KeyUsageSummary {
            usage_plan: plan.name.to_string(),
            period: period(q.period),
            period_start: period_start(q, day),
            used: count(used),
            remaining: count(remaining),
            updated: updated.to_string(),
        });
        if let Some(p) = out.plans.get_mut(&plan) {
            p.used = p.used.saturating_add(count(used));
            p.remaining = p.remaining.saturating_add(count(remaining));
        }
    }
    out
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
    let round = |updated: String| {
        let (table, usage) = (table.clone(), usage.clone());
        async move {
            let summaries = summarize(&table, &usage, &updated).await;
            let keys = summaries
                .keys
                .into_iter()
                .map(|(key, s)| Summary::new(Kind::ApiKey, key, "usage", &s));
            let plans = summaries
                .plans
                .into_iter()
                .map(|(plan, s)| Summary::new(Kind::UsagePlan, plan, "usage", &s));
            keys.chain(plans).collect()
        }
    };
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
}
