//! The custom resources of group `turnpike.dev`, version `v1alpha1`, and their conversion into
//! the validated domain of `turnpike-core`.
//!
//! [`v1alpha1`] holds types only: derives, serde, schemars and CEL rules. Every `///` comment on
//! a field becomes `kubectl explain` text, so it is written for users; maintainer notes use `//`.
//! Validation that the schema cannot say lives in [`convert`], the only place that turns these
//! types into [`turnpike_core::model`] types, and the only place an AWS constraint is checked.
//!
//! May depend on: `turnpike-core`, `kube` (the `derive` feature only: no client), `k8s-openapi`,
//! serde and schemars. Start reading at [`v1alpha1::rest_api`], then [`convert::rest_api`].

pub mod convert;
mod shared;
pub mod v1alpha1;

pub use shared::*;
/// Condition types and reasons, from the core (compile writes them; the CRDs document them).
pub use turnpike_core::conditions;
pub use v1alpha1::{
    api_key::{ApiKey, ApiKeySpec, ApiKeyStatus},
    deployment::{Deployment, DeploymentSpec, DeploymentStatus},
    rest_api::{RestApi, RestApiSpec, RestApiStatus},
    stage::{Stage, StageSpec, StageStatus},
    usage_plan::{UsagePlan, UsagePlanSpec, UsagePlanStatus},
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every Turnpike resource.
pub const GROUP: &str = "turnpike.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";

/// Every Turnpike CRD, in a stable order (the order of `turnpike crds` and of `crds/`).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        RestApi::crd(),
        Deployment::crd(),
        Stage::crd(),
        UsagePlan::crd(),
        ApiKey::crd(),
    ]
}

/// Renders CRDs as a multi-document YAML stream.
pub fn crds_yaml(crds: &[CustomResourceDefinition]) -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in crds {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(crd)?);
    }
    Ok(out)
}
