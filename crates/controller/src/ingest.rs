//! Kubernetes objects → [`World`]: the one place cluster objects become compile input.
//!
//! Also owns the format of Deployment snapshots: an immutable ConfigMap
//! `turnpike-snapshot-{deploymentId}`, owned by the Deployment, holding the RestApi spec as it
//! was when the Deployment was first reconciled, and the sha256 digest of that spec.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use k8s_openapi::{
    api::{
        core::v1::{ConfigMap, Secret, Service},
        discovery::v1::EndpointSlice,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{Resource, ResourceExt};
use serde::{Deserialize as _, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use crate::openapi::{Expansion, ImportCache, OPENAPI_CONFIG_MAP_LABEL};
use turnpike_api::{ApiKey, Deployment, RestApi, RestApiSpec, Stage, UsagePlan, convert};
use turnpike_core::compile::{
    DeploymentObj, Meta, Obj, RestApiObj, SecretMap, ServiceFacts, ServicePortFacts, Snapshot, World,
};
use turnpike_core::model::{
    API_KEY_SECRET_LABEL, ApiKeyDef, DeploymentId, KeyDigest, KeyValueSource, ObjectKey, SecretData,
};

/// The ConfigMap key that holds the snapshot (RestApi spec as JSON).
pub const SNAPSHOT_DATA_KEY: &str = "restapi.json";
/// The Stage annotation whose every new value flushes the stage's cache (AWS
/// FlushStageCache): `kubectl annotate stage prod turnpike.dev/flush-cache=$(date +%s) --overwrite`.
pub const FLUSH_CACHE_ANNOTATION: &str = "turnpike.dev/flush-cache";

/// The annotation that holds the snapshot digest.
pub const DIGEST_ANNOTATION: &str = "turnpike.dev/digest";
/// The label naming the Deployment a snapshot belongs to.
pub const DEPLOYMENT_LABEL: &str = "turnpike.dev/deployment";
/// The label that selects EndpointSlices of a Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The sha256 (hex) of a RestApi spec's canonical JSON. Struct fields serialize in declaration
/// order and maps are BTreeMaps, so equal specs give equal digests.
pub fn spec_digest(spec: &RestApiSpec) -> String {
    let json = serde_json::to_vec(spec).unwrap_or_default();
    hex::encode(Sha256::digest(&json))
}

/// The name of a Deployment's snapshot ConfigMap.
pub fn snapshot_name(id: &DeploymentId) -> String {
    format!("turnpike-snapshot-{id}")
}

/// The snapshot ConfigMap that records `rest_api` for `deployment`.
pub fn snapshot_config_map(deployment: &Deployment, rest_api: &RestApi) -> ConfigMap {
    let id = DeploymentId::from_uid(deployment.uid().as_deref().unwrap_or_default());
    let json = serde_json::to_string(&rest_api.spec).unwrap_or_default();
    let owner = deployment.controller_owner_ref(&()).map(|mut o: OwnerReference| {
        o.block_owner_deletion = Some(true);
        o
    });
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(snapshot_name(&id)),
            namespace: deployment.namespace(),
            labels: Some(BTreeMap::from([(
                DEPLOYMENT_LABEL.to_string(),
                deployment.name_any(),
            )])),
            annotations: Some(BTreeMap::from([(
                DIGEST_ANNOTATION.to_string(),
                spec_digest(&rest_api.spec),
            )])),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        immutable: Some(true),
        data: Some(BTreeMap::from([(SNAPSHOT_DATA_KEY.to_string(), json)])),
        ..Default::default()
    }
}

/// Reads a snapshot ConfigMap.
pub fn read_snapshot(config_map: &ConfigMap) -> Snapshot {
    let namespace = config_map.namespace().unwrap_or_default();
    let Some(json) = config_map.data.as_ref().and_then(|d| d.get(SNAPSHOT_DATA_KEY)) else {
        return Snapshot::Corrupt {
            message: format!(
                "snapshot ConfigMap {:?} has no {SNAPSHOT_DATA_KEY}",
                config_map.name_any()
            ),
        };
    };
    let spec: RestApiSpec = match serde_json::from_str(json) {
        Ok(s) => s,
        Err(e) => {
            return Snapshot::Corrupt {
                message: format!(
                    "snapshot ConfigMap {:?} is not a RestApi spec: {e}",
                    config_map.name_any()
                ),
            };
        }
    };
    let digest = spec_digest(&spec);
    let recorded = config_map.annotations().get(DIGEST_ANNOTATION);
    if recorded != Some(&digest) {
        return Snapshot::Corrupt {
            message: format!(
                "snapshot ConfigMap {:?} does not match its digest annotation",
                config_map.name_any()
            ),
        };
    }
    Snapshot::Recorded {
        def: Box::new(convert::rest_api(&namespace, &spec)),
        digest,
    }
}

/// The cluster objects a World is built from.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    pub rest_apis: Vec<RestApi>,
    pub deployments: Vec<Deployment>,
    pub stages: Vec<Stage>,
    pub usage_plans: Vec<UsagePlan>,
    /// Shared with the reflector's store: a rebuild copies no ApiKey.
    pub api_keys: Vec<Arc<ApiKey>>,
    /// Snapshot ConfigMaps (others are ignored).
    pub config_maps: Vec<ConfigMap>,
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    /// The referenced Secrets the controller holds (labelled `turnpike.dev/api-key`), as
    /// digests ([`secret_data`]); shared with the controller's Secret cache.
    pub secrets: Arc<SecretMap>,
    /// Referenced Secrets that exist without the label (their data is never read).
    pub unlabelled_secrets: BTreeSet<ObjectKey>,
    /// ConfigMaps labelled `turnpike.dev/openapi` (documents `spec.openApi` refers to).
    pub openapi_config_maps: Vec<ConfigMap>,
    /// How each RestApi with `spec.openApi` was expanded ([`Objects::expand_open_api`]).
    pub open_api: BTreeMap<ObjectKey, Expansion>,
}

/// A YAML document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("document {index}: {source}")]
    Parse { index: usize, source: serde_yaml::Error },
    #[error("document {index}: unsupported kind {kind:?}")]
    Kind { index: usize, kind: String },
}

impl Objects {
    /// Reads a multi-document YAML stream. Objects without a namespace go to `default`; objects
    /// without a uid get one derived from kind, namespace and name, so ids are stable in tests.
    /// A Secret without the `turnpike.dev/api-key` label is only named in
    /// [`Objects::unlabelled_secrets`], as the controller's label-selected watch would leave it.
    pub fn from_yaml(yaml: &str) -> Result<Self, YamlError> {
        let mut out = Objects::default();
        for (index, doc) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
            let value =
                serde_yaml::Value::deserialize(doc).map_err(|source| YamlError::Parse { index, source })?;
            if value.is_null() {
                continue;
            }
            let kind = value
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or_default()
                .to_string();
            match kind.as_str() {
                "RestApi" => out.rest_apis.push(decode(value, index)?),
                "Deployment" => out.deployments.push(decode(value, index)?),
                "Stage" => out.stages.push(decode(value, index)?),
                "UsagePlan" => out.usage_plans.push(decode(value, index)?),
                "ApiKey" => out.api_keys.push(Arc::new(decode(value, index)?)),
                // As the controller's watches would: documents by their label.
                "ConfigMap" => {
                    let cm: ConfigMap = decode(value, index)?;
                    if cm.labels().contains_key(OPENAPI_CONFIG_MAP_LABEL) {
                        out.openapi_config_maps.push(cm);
                    } else {
                        out.config_maps.push(cm);
                    }
                }
                "Service" => out.services.push(decode(value, index)?),
                "EndpointSlice" => out.endpoint_slices.push(decode(value, index)?),
                // As the controller's watch would: only labelled Secrets are read.
                "Secret" => {
                    let secret: Secret = decode(value, index)?;
                    let key = ObjectKey::new(secret.namespace().unwrap_or_default(), secret.name_any());
                    if secret.labels().contains_key(API_KEY_SECRET_LABEL) {
                        Arc::make_mut(&mut out.secrets).insert(key, secret_data(&secret));
                    } else {
                        out.unlabelled_secrets.insert(key);
                    }
                }
                _ => return Err(YamlError::Kind { index, kind }),
            }
        }
        Ok(out)
    }

    /// Imports every RestApi's `spec.openApi` into its spec, in place (see [`crate::openapi`]),
    /// and keeps the outcomes for the world. Runs before anything else reads the RestApis.
    pub fn expand_open_api(&mut self, cache: &mut ImportCache) {
        self.open_api = cache.expand_all(&mut self.rest_apis, &self.openapi_config_maps);
    }

    /// Whether a RestApi's `spec.openApi` could not be imported.
    fn import_failed(&self, api: &RestApi) -> bool {
        let key = ObjectKey::new(api.namespace().unwrap_or_default(), api.name_any());
        self.open_api.get(&key).is_some_and(|e| e.spec.is_none())
    }

    /// Records a snapshot of the current RestApi for every Deployment that has none, as the
    /// leader does on a Deployment's first reconcile.
    ///
    /// A snapshot is immutable, so an invalid RestApi is never recorded: the Deployment waits
    /// (compile reports `RestApiInvalid`) and is recorded once the RestApi is fixed, instead of
    /// freezing a definition that can never be served.
    pub fn record_missing_snapshots(&mut self) {
        let mut recorded = Vec::new();
        for d in &self.deployments {
            let id = DeploymentId::from_uid(d.uid().as_deref().unwrap_or_default());
            let name = snapshot_name(&id);
            let ns = d.namespace();
            if self
                .config_maps
                .iter()
                .any(|c| c.name_any() == name && c.namespace() == ns)
            {
                continue;
            }
            let api = self
                .rest_apis
                .iter()
                .find(|a| a.name_any() == d.spec.rest_api_ref.name && a.namespace() == ns);
            let valid = |a: &RestApi| {
                !self.import_failed(a)
                    && convert::rest_api(&a.namespace().unwrap_or_default(), &a.spec).is_ok()
            };
            if let Some(api) = api.filter(|a| valid(a)) {
                recorded.push(snapshot_config_map(d, api));
            }
        }
        self.config_maps.extend(recorded);
    }
}

fn decode<T: DeserializeOwned + Resource<DynamicType = ()>>(
    value: serde_yaml::Value,
    index: usize,
) -> Result<T, YamlError> {
    let mut obj: T = serde_yaml::from_value(value).map_err(|source| YamlError::Parse { index, source })?;
    let meta = obj.meta_mut();
    if meta.namespace.is_none() {
        meta.namespace = Some("default".to_string());
    }
    if meta.uid.is_none() {
        let kind = T::kind(&()).to_string();
        meta.uid = Some(format!(
            "uid-{kind}-{}-{}",
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default()
        ));
    }
    Ok(obj)
}

fn meta_of<K: Resource>(obj: &K) -> Meta {
    Meta {
        key: ObjectKey::new(obj.namespace().unwrap_or_default(), obj.name_any()),
        uid: obj.uid().unwrap_or_default().into(),
        generation: obj.meta().generation.unwrap_or(0),
    }
}

/// A RestApi (its spec already expanded) as compile reads it, with how its `spec.openApi`
/// import went.
pub fn rest_api_obj(a: &RestApi, expansion: Option<&Expansion>) -> RestApiObj {
    let meta = meta_of(a);
    let def = match expansion.and_then(Expansion::invalid) {
        Some(invalid) => Err(vec![invalid]),
        None => convert::rest_api(&meta.key.namespace, &a.spec),
    };
    RestApiObj {
        def,
        digest: spec_digest(&a.spec),
        open_api: expansion.map(|e| e.import.clone()),
        meta,
    }
}

/// Builds the world from cluster objects (RestApis expanded by [`Objects::expand_open_api`]).
pub fn world(objects: &Objects) -> World {
    let mut world = World::default();
    for a in &objects.rest_apis {
        let obj = rest_api_obj(a, objects.open_api.get(&meta_of(a).key));
        world.rest_apis.insert(obj.meta.key.clone(), obj);
    }
    let snapshots: BTreeMap<ObjectKey, &ConfigMap> = objects
        .config_maps
        .iter()
        .map(|c| (ObjectKey::new(c.namespace().unwrap_or_default(), c.name_any()), c))
        .collect();
    for d in &objects.deployments {
        let meta = meta_of(d);
        let id = meta.uid.with_str(DeploymentId::from_uid);
        let snapshot = snapshots
            .get(&meta.key.sibling(&snapshot_name(&id)))
            .map_or(Snapshot::Pending, |c| read_snapshot(c));
        world.deployments.insert(
            meta.key.clone(),
            DeploymentObj {
                def: convert::deployment(&d.spec),
                snapshot,
                meta,
            },
        );
    }
    for s in &objects.stages {
        let meta = meta_of(s);
        world.stages.insert(
            meta.key.clone(),
            Obj {
                def: convert::stage(&s.spec).map(|mut def| {
                    def.cache_flush = s.annotations().get(FLUSH_CACHE_ANNOTATION).cloned();
                    def
                }),
                meta,
            },
        );
    }
    for p in &objects.usage_plans {
        let meta = meta_of(p);
        world.usage_plans.insert(
            meta.key.clone(),
            Obj {
                def: convert::usage_plan(&p.spec),
                meta,
            },
        );
    }
    for k in &objects.api_keys {
        let obj = api_key_obj(k);
        world.api_keys.insert(obj.meta.key.clone(), Arc::new(obj));
    }
    add_secrets(&mut world, objects);
    for svc in &objects.services {
        let key = ObjectKey::new(svc.namespace().unwrap_or_default(), svc.name_any());
        let slices: Vec<&EndpointSlice> = objects
            .endpoint_slices
            .iter()
            .filter(|s| {
                s.namespace() == svc.namespace()
                    && s.labels().get(SERVICE_NAME_LABEL).map(String::as_str) == Some(&*key.name)
            })
            .collect();
        let ports = svc
            .spec
            .iter()
            .flat_map(|s| s.ports.iter().flatten())
            .filter_map(|p| {
                let port = u16::try_from(p.port).ok()?;
                let endpoints = ready_endpoints(&slices, p.name.as_deref());
                Some(ServicePortFacts {
                    name: p.name.clone(),
                    port,
                    endpoints,
                })
            })
            .collect();
        world.services.insert(key, ServiceFacts { ports });
    }
    world
}

/// Ready addresses of the slices, on the slice port named like the Service port. Endpoints
/// with no `ready` condition count as ready, as Kubernetes says.
fn ready_endpoints(slices: &[&EndpointSlice], port_name: Option<&str>) -> Vec<SocketAddr> {
    let mut out = BTreeSet::new();
    for slice in slices {
        let port = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref().unwrap_or("") == port_name.unwrap_or(""));
        let Some(port) = port.and_then(|p| p.port).and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for e in &slice.endpoints {
            if e.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            out.extend(
                e.addresses
                    .iter()
                    .filter_map(|a| a.parse::<IpAddr>().ok())
                    .map(|ip| SocketAddr::new(ip, port)),
            );
        }
    }
    out.into_iter().collect()
}

/// An ApiKey converted, with its labels (which `apiKeySelector`s match).
pub fn api_key_obj(k: &ApiKey) -> Obj<ApiKeyDef> {
    let meta = meta_of(k);
    let def = convert::api_key(&meta.key.name, &k.spec).map(|mut d| {
        d.labels = k.labels().clone().into();
        // A Secret most often has its key's name: one copy of the name serves both.
        if let KeyValueSource::Secret { name, .. } = &mut d.value
            && *name == meta.key.name
        {
            *name = meta.key.name.clone();
        }
        d
    });
    Obj { def, meta }
}

/// The Secrets and unlabelled Secret names ApiKeys refer to. The map is shared, not copied:
/// compile looks up only the Secrets its keys name, so one that no key names (a Secret of a
/// YAML stream, or one the controller has not dropped yet) changes nothing.
pub(crate) fn add_secrets(world: &mut World, objects: &Objects) {
    world.secrets = objects.secrets.clone();
    world.unlabelled_secrets = objects.unlabelled_secrets.clone();
}

/// What the controller keeps of an API key Secret: each value's digest (`data`, then
/// `stringData` over it, as the API server merges them), never the value.
pub fn secret_data(s: &Secret) -> SecretData {
    let data = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), KeyDigest::of_secret(&v.0)));
    let string_data = s
        .string_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), KeyDigest::of_secret(v.as_bytes())));
    data.chain(string_data).collect()
}

/// Reads YAML, records missing snapshots as the leader would, and builds the world.
pub fn world_from_yaml(yaml: &str) -> Result<World, YamlError> {
    let mut objects = Objects::from_yaml(yaml)?;
    objects.expand_open_api(&mut ImportCache::default());
    objects.record_missing_snapshots();
    Ok(world(&objects))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid RestApi and a Deployment of it (shared with the controller's snapshot tests).
    pub(crate) const VALID: &str = r#"
apiVersion: turnpike.dev/v1alpha1
kind: RestApi
metadata: {name: shop}
spec:
  resources:
    /pets:
      GET: {integration: {type: MOCK}}
---
apiVersion: turnpike.dev/v1alpha1
kind: Deployment
metadata: {name: shop-v1}
spec: {restApiRef: {name: shop}}
"#;

    #[test]
    fn records_a_snapshot_of_a_valid_rest_api() {
        let mut objects = Objects::from_yaml(VALID).expect("yaml");
        objects.record_missing_snapshots();
        assert_eq!(objects.config_maps.len(), 1);
        assert!(matches!(
            read_snapshot(&objects.config_maps[0]),
            Snapshot::Recorded { def, .. } if def.is_ok()
        ));
    }

    #[test]
    fn never_records_a_snapshot_of_an_invalid_rest_api() {
        let yaml = VALID.replace("{type: MOCK}", "{type: HTTP_PROXY, uri: not-a-url}");
        let mut objects = Objects::from_yaml(&yaml).expect("yaml");
        objects.record_missing_snapshots();
        assert!(objects.config_maps.is_empty());
    }
}
