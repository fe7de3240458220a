//! Deployment: an immutable point-in-time snapshot of a RestApi.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Conditions, LocalRef};

/// A deployment: the RestApi's definition as it was when the deployment was first reconciled.
/// Later edits of the RestApi never change what an existing deployment serves; deploy again to
/// publish them.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "turnpike.dev",
    version = "v1alpha1",
    kind = "Deployment",
    doc = "A Deployment: an immutable snapshot of a RestApi, as it was when the Deployment was first reconciled.",
    plural = "deployments",
    namespaced,
    status = "DeploymentStatus",
    shortname = "apideploy",
    shortname = "apid",
    category = "turnpike",
    printcolumn = r#"{"name":"API","type":"string","jsonPath":".spec.restApiRef.name"}"#,
    printcolumn = r#"{"name":"DEPLOYMENT-ID","type":"string","jsonPath":".status.deploymentId"}"#,
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    /// The RestApi to snapshot. Immutable.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("restApiRef is immutable"))]
    pub rest_api_ref: LocalRef,
    /// Free-form description of the deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The observed state of a Deployment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    /// The deployment id: 6 lowercase alphanumerics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// The content digest (sha256) of the recorded snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The name of the ConfigMap that holds the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Conditions: Accepted, ResolvedRefs, Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
}
