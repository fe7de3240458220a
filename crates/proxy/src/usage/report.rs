//! Usage reports in the shape of AWS GetUsage, on the admin listener:
//!
//! ```text
//! GET /usage?usagePlan={namespace}/{name}&startDate=2026-12-01&endDate=2026-12-07[&keyId=…]
//! → {"usagePlanId":"ns/name","startDate":"2026-12-01","endDate":"2026-12-07",
//!    "items":{"{keyId}":[[used, remaining], …one per day…]}}
//! ```
//!
//! `used` is the requests admitted that day, `remaining` what was left of the quota window at
//! the end of it (0 without a quota). With Redis (`--redis-url`) the history is read from
//! Redis, where every replica counts what it admits per UTC day (kept 90 days), so any replica
//! answers for all of them; the keys listed are those of the plan in the routing table and
//! any this process counted. Without Redis (or while it is down) it is this process's own
//! store: each replica reports what it admitted, since it started.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use super::{Usage, quota};
use crate::store::TableStore;
use turnpike_core::model::{KeyId, ObjectKey, Quota};
use turnpike_telemetry::access_log::{civil_from_days, days_from_civil};

/// Answers a `/usage` query.
pub async fn answer(usage: &Usage, store: &TableStore, query: &str) -> Response<Full<Bytes>> {
    match report(usage, store, query).await {
        Ok(body) => {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Err(message) => {
            let body = serde_json::json!({ "message": message }).to_string();
            let mut r = Response::new(Full::new(Bytes::from(body)));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
    }
}

async fn report(usage: &Usage, store: &TableStore, query: &str) -> Result<String, String> {
    let mut plan = None;
    let (mut start, mut end, mut key) = (None, None, None);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "usagePlan" | "usagePlanId" => plan = Some(v.into_owned()),
            "startDate" => start = Some(parse_date(&v)?),
            "endDate" => end = Some(parse_date(&v)?),
            "keyId" => key = Some(v.into_owned()),
            _ => {}
        }
    }
    let plan_name = plan.ok_or("usagePlan (namespace/name) is required")?;
    let (ns, name) = plan_name.split_once('/').ok_or("usagePlan is namespace/name")?;
    let plan = ObjectKey::new(ns, name);
    let (start, end) = (
        start.ok_or("startDate is required")?,
        end.ok_or("endDate is required")?,
    );
    if end < start || end - start > 90 {
        return Err("endDate is 0 to 90 days after startDate".into());
    }
    let table = store.load();
    let quota: Option<Quota> = table
        .apis()
        .flat_map(|a| a.stages.values())
        .find_map(|s| s.plans.get(&plan))
        .and_then(|p| p.quota);
    usage.flush_history().await;
    // The plan's keys: those the table puts in it, and any this process counted.
    let mut keys: Vec<KeyId> = usage.plan_usage(&plan).into_iter().map(|(k, _)| k).collect();
    if usage.shared_usage() {
        keys.extend(table.keys().filter(|k| k.plans.contains(&plan)).map(|k| k.id));
    }
    keys.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    keys.dedup();
    let mut items = serde_json::Map::new();
    for key_id in keys {
        if key.as_deref().is_some_and(|k| k != key_id.as_str()) {
            continue;
        }
        // Count from the start of the first day's window, for `remaining`.
        let from = quota.map_or(start, |q| {
            quota::window_start(q.period, quota::window_of(q.period, start))
        });
        let days: Vec<(i64, u64)> = usage
            .history(&plan, &key_id)
            .await
            .into_iter()
            .filter(|(d, _)| (from..=end).contains(d))
            .collect();
        let per_day: Vec<serde_json::Value> = (start..=end)
            .map(|day| {
                let used = days.iter().find(|(d, _)| *d == day).map_or(0, |(_, n)| *n);
                let remaining = quota.map_or(0, |q| {
                    let window = quota::window_of(q.period, day);
                    let so_far: u64 = days
                        .iter()
                        .filter(|(d, _)| *d <= day && quota::window_of(q.period, *d) == window)
                        .map(|(_, n)| n)
                        .sum();
                    q.limit.saturating_sub(so_far)
                });
                serde_json::json!([used, remaining])
            })
            .collect();
        items.insert(key_id.to_string(), per_day.into());
    }
    Ok(serde_json::json!({
        "usagePlanId": plan_name,
        "startDate": format_date(start),
        "endDate": format_date(end),
        "items": items,
    })
    .to_string())
}

/// `YYYY-MM-DD` to days since the epoch.
fn parse_date(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not a YYYY-MM-DD date");
    let mut parts = s.splitn(3, '-');
    let y: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let m: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let d: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    Ok(days_from_civil(y, m, d))
}

fn format_date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}
