//! Deployment snapshots, as the leader records them.
//!
//! The first time the leader rebuilds with a Deployment that has no snapshot ConfigMap, it
//! records the RestApi's current spec ([`crate::ingest::snapshot_config_map`]: immutable,
//! owned by the Deployment, content-hashed) — only for a valid RestApi, the same rule as
//! [`Objects::record_missing_snapshots`], which it reuses. The leader compiles with the
//! recorded snapshot at once and creates the ConfigMap before writing any status; followers
//! serve the snapshot when their ConfigMap watch delivers it. A Deployment whose snapshot is
//! missing (not recorded yet, deleted, or unreadable) is a condition, never a crash.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt as _;

use crate::{
    ingest::{Objects, snapshot_name},
    model::{DeploymentId, ObjectKey},
};

/// Records the missing snapshots into `objects` and returns the new ConfigMaps (to create).
pub fn record(objects: &mut Objects) -> Vec<ConfigMap> {
    let before = objects.config_maps.len();
    objects.record_missing_snapshots();
    objects.config_maps[before..].to_vec()
}

/// Deployment → the name of its snapshot ConfigMap, for every Deployment that has one.
pub fn names(objects: &Objects) -> BTreeMap<ObjectKey, String> {
    let existing: std::collections::BTreeSet<(Option<String>, String)> = objects
        .config_maps
        .iter()
        .map(|c| (c.namespace(), c.name_any()))
        .collect();
    objects
        .deployments
        .iter()
        .filter_map(|d| {
            let name = snapshot_name(&DeploymentId::from_uid(d.uid().as_deref().unwrap_or_default()));
            existing.contains(&(d.namespace(), name.clone())).then(|| {
                (
                    ObjectKey::new(d.namespace().unwrap_or_default(), d.name_any()),
                    name,
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
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
    fn records_once() {
        let mut objects = Objects::from_yaml(YAML).unwrap();
        let first = record(&mut objects);
        assert_eq!(first.len(), 1);
        assert_eq!(objects.config_maps.len(), 1);
        assert!(record(&mut objects).is_empty());
        let n = names(&objects);
        assert_eq!(n.len(), 1);
        assert!(n.values().all(|v| v.starts_with("turnpike-snapshot-")));
    }

    #[test]
    fn an_invalid_rest_api_is_not_recorded() {
        let mut objects =
            Objects::from_yaml(&YAML.replace("{type: MOCK}", "{type: HTTP_PROXY, uri: nope}")).unwrap();
        assert!(record(&mut objects).is_empty());
        assert!(names(&objects).is_empty());
    }
}
