//! ApiKey: a client identity, sent as `x-api-key`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Conditions, LocalRef};

/// An API key: a secret value clients send in `x-api-key`, and the usage plans it belongs to.
/// The value lives in a Secret; it is never copied into this object or its status.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "turnpike.dev",
    version = "v1alpha1",
    kind = "ApiKey",
    doc = "An ApiKey: a client identity sent as x-api-key, whose value lives in a Secret, and the usage plans it belongs to.",
    plural = "apikeys",
    namespaced,
    status = "ApiKeyStatus",
    shortname = "akey",
    category = "turnpike",
    printcolumn = r#"{"name":"KEY-ID","type":"string","jsonPath":".status.keyId"}"#,
    printcolumn = r#"{"name":"ENABLED","type":"boolean","jsonPath":".spec.enabled"}"#,
    printcolumn = r#"{"name":"CUSTOMER","type":"string","jsonPath":".spec.customerId"}"#,
    printcolumn = r#"{"name":"USED","type":"integer","jsonPath":".status.usage[*].used"}"#,
    printcolumn = r#"{"name":"REMAINING","type":"integer","jsonPath":".status.usage[*].remaining"}"#,
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeySpec {
    /// Whether the key is accepted. Defaults to true.
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// An identifier of the customer the key belongs to, for reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Free-form description of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where the key value is read from. Without it, a value is generated into a Secret named
    /// `{name}-apikey`, owned by the key and labelled `turnpike.dev/api-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ApiKeyValueSource>,
    /// The usage plans the key belongs to (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub usage_plan_refs: Vec<LocalRef>,
}

fn enabled_default() -> bool {
    true
}

/// The source of an API key value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyValueSource {
    /// A key of a Secret in the ApiKey's namespace. The value must be 20 to 128 alphanumerics.
    /// The Secret must carry the label `turnpike.dev/api-key` (e.g. `"true"`): the controller
    /// watches only Secrets with that label, and reports `SecretNotLabelled` on an ApiKey whose
    /// Secret lacks it.
    pub secret_key_ref: SecretKeyRef,
}

/// A key of a Secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret (labelled `turnpike.dev/api-key`).
    pub name: String,
    /// The key within the Secret's data.
    pub key: String,
}

/// The observed state of an ApiKey.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyStatus {
    /// The key id: 10 lowercase alphanumerics, stable for the life of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Conditions: Accepted, ResolvedRefs, Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
    /// What the key used of each of its plans' quotas in the current period (plans with a
    /// quota), written by the leader at most every 30 s (never on the request path).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<crate::v1alpha1::usage_plan::KeyUsageSummary>,
}
