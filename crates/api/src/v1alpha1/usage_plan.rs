//! UsagePlan: throttling and a quota for the API keys in the plan, on a set of stages.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Conditions, LocalRef, ThrottleSettings};

/// A usage plan: who (the API keys that name it, or that its selector matches) may call which stages, how fast and how much.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "turnpike.dev",
    version = "v1alpha1",
    kind = "UsagePlan",
    doc = "A UsagePlan: throttling and a quota for the API keys in the plan, on a set of stages.",
    plural = "usageplans",
    namespaced,
    status = "UsagePlanStatus",
    shortname = "uplan",
    category = "turnpike",
    printcolumn = r#"{"name":"RATE","type":"number","jsonPath":".spec.throttle.rateLimit"}"#,
    printcolumn = r#"{"name":"BURST","type":"integer","jsonPath":".spec.throttle.burstLimit"}"#,
    printcolumn = r#"{"name":"QUOTA","type":"integer","jsonPath":".spec.quota.limit"}"#,
    printcolumn = r#"{"name":"PERIOD","type":"string","jsonPath":".spec.quota.period"}"#,
    printcolumn = r#"{"name":"USED","type":"integer","jsonPath":".status.usage.used"}"#,
    printcolumn = r#"{"name":"REMAINING","type":"integer","jsonPath":".status.usage.remaining"}"#,
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct UsagePlanSpec {
    /// Free-form description of the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The stages the plan applies to.
    #[serde(default)]
    pub api_stages: Vec<ApiStage>,
    /// The throttle of each API key of the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleSettings>,
    /// The quota of each API key of the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaSettings>,
    /// Beyond AWS: the ApiKeys of this namespace whose labels match are in the plan, as if each
    /// named it in `usagePlanRefs`. Kubernetes label selector semantics: `{}` selects every key
    /// of the namespace; without the field, only keys that name the plan are in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_selector: Option<ApiKeySelector>,
}

/// A label selector over ApiKeys (the shape of Kubernetes' `LabelSelector`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeySelector {
    /// Labels a key must carry with exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Requirements a key's labels must all meet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<SelectorRequirement>,
}

/// A requirement on one label.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectorRequirement {
    /// The label key.
    pub key: String,
    /// In, NotIn, Exists or DoesNotExist.
    pub operator: SelectorOperator,
    /// The values for In and NotIn (at least one); empty for Exists and DoesNotExist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// How a [`SelectorRequirement`] tests its label.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SelectorOperator {
    #[default]
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// A stage a usage plan applies to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiStage {
    /// The RestApi.
    pub rest_api_ref: LocalRef,
    /// The stage name (`Stage.spec.stageName`).
    pub stage: String,
    /// Per-method throttles, keyed `RESOURCE_PATH/METHOD` (e.g. `/pets/GET`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub throttle: BTreeMap<String, ThrottleSettings>,
}

/// A quota: at most `limit` requests per period.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaSettings {
    /// The number of requests a key may make in a period.
    #[schemars(range(min = 0))]
    pub limit: i64,
    /// DAY, WEEK or MONTH.
    pub period: QuotaPeriod,
    /// How many requests of the first period are already used up.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub offset: i64,
}

/// A quota period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum QuotaPeriod {
    /// A UTC day.
    #[default]
    Day,
    /// A week starting on Sunday 00:00 UTC (as AWS).
    Week,
    /// A calendar month, UTC.
    Month,
}

/// The observed state of a UsagePlan.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsagePlanStatus {
    /// How many API keys are in the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_count: Option<i64>,
    /// Conditions: Accepted, ResolvedRefs, Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
    /// The quota used by all the plan's keys in the current period (plans with a quota),
    /// written by the leader at most every 30 s (never on the request path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<PlanUsageSummary>,
}

/// What a usage plan's keys used of their quotas in the current period.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanUsageSummary {
    /// DAY, WEEK or MONTH.
    pub period: QuotaPeriod,
    /// The first day of the current period (UTC), `YYYY-MM-DD`.
    pub period_start: String,
    /// Requests used in the period by all the plan's keys together (offsets included).
    pub used: i64,
    /// What the plan's keys have left in the period, added up.
    pub remaining: i64,
    /// When the leader counted (RFC 3339).
    pub updated: String,
}

/// What one key used of one plan's quota in the current period.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyUsageSummary {
    /// The UsagePlan's name.
    pub usage_plan: String,
    /// DAY, WEEK or MONTH.
    pub period: QuotaPeriod,
    /// The first day of the current period (UTC), `YYYY-MM-DD`.
    pub period_start: String,
    /// Requests used in the period (the offset included).
    pub used: i64,
    /// Requests left in the period.
    pub remaining: i64,
    /// When the leader counted (RFC 3339).
    pub updated: String,
}
