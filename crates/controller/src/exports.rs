//! AWS GetExport for the admin listener: `GET /restapis/{apiId}/stages/{stage}/exports/{type}`
//! answers the OpenAPI document of what the stage serves: its Deployment's snapshot, or the
//! live RestApi for an `autoDeploy` stage. Read from the reflector stores, so every replica
//! answers, leader or not.

use http::StatusCode;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use turnpike_api::RestApiSpec;
use turnpike_core::model::DeploymentId;
use turnpike_openapi::{ExportOptions, ExportType, Extensions};
use turnpike_proxy::admin::{ExportRequest, Exported, Exports};

use crate::{
    index::Stores,
    ingest::{SNAPSHOT_DATA_KEY, snapshot_name},
};

/// Exports from the controller's read cache.
pub struct StageExports {
    stores: Stores,
    region: String,
    base_domain: String,
}

impl StageExports {
    /// Exports over `stores`; hosts are `{apiId}.execute-api.{region}.{baseDomain}`.
    pub fn new(stores: Stores, region: String, base_domain: String) -> Self {
        StageExports {
            stores,
            region,
            base_domain,
        }
    }

    /// The RestApi name and the spec the stage serves.
    fn served(&self, api_id: &str, stage: &str) -> Result<(String, RestApiSpec), (StatusCode, String)> {
        let not_found = |what: &str| {
            (
                StatusCode::NOT_FOUND,
                format!("Invalid {what} identifier specified"),
            )
        };
        let api = self
            .stores
            .rest_apis
            .state()
            .into_iter()
            .find(|a| a.status.as_ref().and_then(|s| s.api_id.as_deref()) == Some(api_id))
            .ok_or_else(|| not_found("API"))?;
        let namespace = api.namespace().unwrap_or_default();
        let name = api.name_any();
        let stage = self
            .stores
            .stages
            .state()
            .into_iter()
            .find(|s| {
                s.namespace().as_deref() == Some(&namespace)
                    && s.spec.rest_api_ref.name == name
                    && s.spec.stage_name == stage
            })
            .ok_or_else(|| not_found("stage"))?;
        if stage.spec.auto_deploy == Some(true) {
            // The live definition is the imported one when the RestApi has `spec.openApi`.
            let config_maps: Vec<ConfigMap> = self
                .stores
                .openapi_config_maps
                .state()
                .iter()
                .map(|c| (**c).clone())
                .collect();
            return match crate::openapi::expand(&namespace, &api.spec, &config_maps) {
                None => Ok((name, api.spec.clone())),
                Some(e) => match e.spec {
                    Some(spec) => Ok((name, spec)),
                    None => Err((
                        StatusCode::CONFLICT,
                        "the RestApi's spec.openApi cannot be imported (see its OpenApiImported condition)"
                            .to_string(),
                    )),
                },
            };
        }
        let deployment = stage
            .spec
            .deployment_ref
            .as_ref()
            .and_then(|r| {
                self.stores
                    .deployments
                    .state()
                    .into_iter()
                    .find(|d| d.namespace().as_deref() == Some(&namespace) && d.name_any() == r.name)
            })
            .ok_or_else(|| not_found("deployment"))?;
        let pending = || {
            (
                StatusCode::CONFLICT,
                "the stage's deployment has no snapshot yet".to_string(),
            )
        };
        let id = deployment
            .status
            .as_ref()
            .and_then(|s| s.deployment_id.as_deref())
            .and_then(DeploymentId::parse)
            .ok_or_else(pending)?;
        let snapshot = snapshot_name(&id);
        let config_map = self
            .stores
            .config_maps
            .state()
            .into_iter()
            .find(|c| c.namespace().as_deref() == Some(&namespace) && c.name_any() == snapshot)
            .ok_or_else(pending)?;
        let spec = config_map
            .data
            .as_ref()
            .and_then(|d| d.get(SNAPSHOT_DATA_KEY))
            .and_then(|json| serde_json::from_str::<RestApiSpec>(json).ok())
            .ok_or_else(|| {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the deployment's snapshot is unreadable".into(),
                )
            })?;
        Ok((name, spec))
    }
}

impl Exports for StageExports {
    fn export(&self, request: &ExportRequest<'_>) -> Result<Exported, (StatusCode, String)> {
        let bad = |m: String| (StatusCode::BAD_REQUEST, m);
        let kind: ExportType = request.kind.parse().map_err(bad)?;
        let extensions: Extensions = request.extensions.unwrap_or_default().parse().map_err(bad)?;
        let (name, spec) = self.served(request.api_id, request.stage)?;
        let options = ExportOptions {
            kind,
            extensions,
            title: name,
            version: "1".into(),
            host: Some(format!(
                "{}.execute-api.{}.{}",
                request.api_id, self.region, self.base_domain
            )),
            stage: Some(request.stage.to_string()),
        };
        let doc = turnpike_openapi::export(&spec, &options).map_err(|e| bad(e.to_string()))?;
        let rendered = if request.yaml {
            serde_yaml::to_string(&doc).map(|body| Exported {
                content_type: "application/yaml",
                body,
            })
        } else {
            Ok(Exported {
                content_type: "application/json",
                body: serde_json::to_string_pretty(&doc).unwrap_or_default(),
            })
        };
        rendered.map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    }
}
