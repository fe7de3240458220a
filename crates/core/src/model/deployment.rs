//! A validated Deployment.

/// A validated Deployment: which RestApi it snapshots (AWS's deploy is a snapshot of the API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentDef {
    pub rest_api: String,
}
