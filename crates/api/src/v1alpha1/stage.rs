//! Stage: a named lifecycle state (dev, prod) of an API, serving one Deployment.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Conditions, LocalRef, ThrottleSettings};

/// A stage of a RestApi: the deployment it serves, its variables, throttling and canary.
///
/// Rollback is editing `deploymentRef`. Promotion of a canary is moving the canary's deployment
/// into `deploymentRef` and removing `canarySettings`.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "turnpike.dev",
    version = "v1alpha1",
    kind = "Stage",
    doc = "A Stage: a named lifecycle state (dev, prod) of a RestApi that serves one Deployment, with variables, throttling and a canary.",
    plural = "stages",
    namespaced,
    status = "StageStatus",
    shortname = "apistage",
    shortname = "stg",
    category = "turnpike",
    printcolumn = r#"{"name":"API","type":"string","jsonPath":".spec.restApiRef.name"}"#,
    printcolumn = r#"{"name":"STAGE","type":"string","jsonPath":".spec.stageName"}"#,
    printcolumn = r#"{"name":"DEPLOYMENT","type":"string","jsonPath":".status.deploymentId"}"#,
    printcolumn = r#"{"name":"CANARY%","type":"number","jsonPath":".spec.canarySettings.percentTraffic"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.invokeUrl"}"#,
    printcolumn = r#"{"name":"CACHED","type":"integer","jsonPath":".status.cache.entries","priority":1}"#,
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[x_kube(validation = kube::core::Rule::new("has(self.deploymentRef) || (has(self.autoDeploy) && self.autoDeploy)").message("deploymentRef is required unless autoDeploy is true"))]
#[serde(rename_all = "camelCase")]
pub struct StageSpec {
    /// The RestApi this stage belongs to. Immutable.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("restApiRef is immutable"))]
    pub rest_api_ref: LocalRef,

    /// The stage name, the first path segment of the invoke URL: letters, digits, `-` and `_`,
    /// at most 128 characters. Immutable.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,128}$"))]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("stageName is immutable"))]
    pub stage_name: String,

    /// Free-form description of the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,

    /// The Deployment the stage serves. Edit it to roll forward or back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_ref: Option<LocalRef>,

    /// Serve the live RestApi definition instead of a Deployment snapshot: every edit of the
    /// RestApi is published at once (the GitOps-friendly mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_deploy: Option<bool>,

    /// Stage variables, available to integrations as `${stageVariables.NAME}`. At most 100;
    /// names are alphanumerics and `_` (at most 64), values at most 512 characters of
    /// `[A-Za-z0-9-._~:/?#&=,]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,

    /// The default throttle of every method of the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleSettings>,

    /// Per-method settings keyed `RESOURCE_PATH/METHOD` (e.g. `/pets/GET`, with `~1` for `/`
    /// inside the path as in AWS: `~1pets/GET`), or `*/*` for every method.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub method_settings: BTreeMap<String, MethodSetting>,

    /// Whether the stage has a response cache. With it, GET methods are cached for 300
    /// seconds unless `methodSettings` say otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_cluster_enabled: Option<bool>,

    /// The size of the stage's cache in GB, as in AWS: `0.5`, `1.6`, `6.1`, `13.5`, `28.4`,
    /// `58.2`, `118` or `237` (default `0.5`). It is the memory budget of the cache of each
    /// gateway replica for this stage; the least valuable entries are evicted beyond it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_cluster_size: Option<String>,

    /// The canary of the stage: a second deployment that receives a share of the requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_settings: Option<CanarySettings>,

    /// Access log settings of the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_settings: Option<AccessLogSettings>,
}

/// Settings of one method (or of every method, for `*/*`) of a stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MethodSetting {
    /// Steady-state requests per second for the method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub throttling_rate_limit: Option<f64>,
    /// Burst size for the method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub throttling_burst_limit: Option<i64>,
    /// Whether responses of the method are cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caching_enabled: Option<bool>,
    /// How long a cached response lives, in seconds (0 to 3600, default 300); 0 disables
    /// caching of the method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub cache_ttl_in_seconds: Option<i64>,
    /// Whether cached responses are encrypted. Accepted for AWS compatibility: the cache is
    /// held in the gateway's memory only and is never written out, so there is nothing to
    /// encrypt at rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_data_encrypted: Option<bool>,
    /// Whether a client's `Cache-Control: max-age=0` (which invalidates the cached entry)
    /// needs authorization: an API key in a usage plan of the stage. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_authorization_for_cache_control: Option<bool>,
    /// What an unauthorized `Cache-Control: max-age=0` gets: `FAIL_WITH_403`,
    /// `SUCCEED_WITH_RESPONSE_HEADER` (the header is ignored and the answer says so in a
    /// `Warning` header; the default) or `SUCCEED_WITHOUT_RESPONSE_HEADER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unauthorized_cache_control_header_strategy: Option<String>,
}

/// The canary of a stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanarySettings {
    /// The canary's Deployment; defaults to the stage's own deployment, as in AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_ref: Option<LocalRef>,
    /// The percentage of the stage's requests sent to the canary, 0.0 to 100.0.
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub percent_traffic: f64,
    /// Stage variables that take other values for canary requests only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stage_variable_overrides: BTreeMap<String, String>,
    /// Whether canary requests share the stage's cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_stage_cache: Option<bool>,
}

/// Access log settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogSettings {
    /// The line format: `CLF`, `JSON`, or a template of `$context.*` variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// The observed state of a Stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageStatus {
    /// The URL clients call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoke_url: Option<String>,
    /// The id of the deployment the stage serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// The id of the canary's deployment, when a canary is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_deployment_id: Option<String>,
    /// Conditions: Accepted, ResolvedRefs, Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
    /// The stage cache as the leader replica holds it (`cacheClusterEnabled` stages), written
    /// by the leader at most every 30 s (never on the request path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<StageCacheSummary>,
}

/// What a stage's cache holds on the leader replica.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageCacheSummary {
    /// Entries held in memory.
    pub entries: i64,
    /// Bytes they weigh against the budget (bodies, headers and keys).
    pub size_bytes: i64,
    /// The budget in bytes: `cacheClusterSize`.
    pub budget_bytes: i64,
    /// `memory` (each replica its own) or `redis` (in memory in front of a tier shared by
    /// every replica; the counts are the in-memory tier's).
    pub backend: String,
    /// When the leader counted (RFC 3339).
    pub updated: String,
}
