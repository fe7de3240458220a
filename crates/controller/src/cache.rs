//! Conversions that a rebuild would otherwise repeat for objects that did not change: the
//! validation of every RestApi and every ApiKey, and the reading of every snapshot ConfigMap
//! (JSON, digest, validation). Entries are keyed by uid and resourceVersion — any change to the object makes
//! a new key — and every rebuild keeps only the entries it used.
//!
//! The world is otherwise built by [`ingest::world`]; this only replaces its two costly maps
//! with the same values, computed once per object version.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt as _;

use crate::ingest::{self, Objects, snapshot_name};
use turnpike_core::compile::{Obj, RestApiObj, Snapshot, World};
use turnpike_core::model::{ApiKeyDef, DeploymentId, ObjectKey};

type Key = (String, String);

fn key_of<K: kube::Resource>(obj: &K) -> Option<Key> {
    let m = obj.meta();
    Some((m.uid.clone()?, m.resource_version.clone()?))
}

/// The caches, carried from rebuild to rebuild.
#[derive(Debug, Default)]
pub struct ConversionCache {
    rest_apis: HashMap<Key, RestApiObj>,
    /// By uid: the resource version converted, and the conversion.
    api_keys: HashMap<String, (String, Arc<Obj<ApiKeyDef>>)>,
    snapshots: HashMap<Key, Snapshot>,
}

impl ConversionCache {
    /// [`ingest::world`] of `objects`, reusing earlier conversions.
    pub fn world(&mut self, objects: &mut Objects) -> World {
        let rest_apis = std::mem::take(&mut objects.rest_apis);
        let config_maps = std::mem::take(&mut objects.config_maps);
        let api_keys = std::mem::take(&mut objects.api_keys);
        let mut world = ingest::world(objects);
        objects.rest_apis = rest_apis;
        objects.config_maps = config_maps;
        objects.api_keys = api_keys;

        // Labels are metadata: a change to them moves the resource version too.
        // Looked up by reference: a rebuild that changes nothing allocates nothing here.
        let mut used_keys = HashMap::with_capacity(objects.api_keys.len());
        for k in &objects.api_keys {
            let (Some(uid), Some(version)) = (&k.metadata.uid, &k.metadata.resource_version) else {
                let obj = Arc::new(ingest::api_key_obj(k));
                world.api_keys.insert(obj.meta.key.clone(), obj);
                continue;
            };
            let entry = match self.api_keys.remove_entry(uid) {
                Some((uid, (v, obj))) if v == *version => (uid, (v, obj)),
                _ => (uid.clone(), (version.clone(), Arc::new(ingest::api_key_obj(k)))),
            };
            world
                .api_keys
                .insert(entry.1.1.meta.key.clone(), entry.1.1.clone());
            used_keys.insert(entry.0, entry.1);
        }
        self.api_keys = used_keys;
        ingest::add_secrets(&mut world, objects);

        let mut used_apis = HashMap::with_capacity(objects.rest_apis.len());
        for a in &objects.rest_apis {
            let expansion = objects
                .open_api
                .get(&ObjectKey::new(a.namespace().unwrap_or_default(), a.name_any()));
            // An imported spec changes with its ConfigMap, not only with the RestApi.
            let key = key_of(a).map(|(uid, version)| match expansion {
                Some(e) => (uid, format!("{version}/{}", e.source_version)),
                None => (uid, version),
            });
            let obj = match key.as_ref().and_then(|k| self.rest_apis.remove(k)) {
                Some(obj) => obj,
                None => ingest::rest_api_obj(a, expansion),
            };
            world.rest_apis.insert(obj.meta.key.clone(), obj.clone());
            if let Some(k) = key {
                used_apis.insert(k, obj);
            }
        }
        self.rest_apis = used_apis;

        let by_name: HashMap<ObjectKey, &ConfigMap> = objects
            .config_maps
            .iter()
            .map(|c| (ObjectKey::new(c.namespace().unwrap_or_default(), c.name_any()), c))
            .collect();
        let mut used_snapshots = HashMap::new();
        for (key, d) in world.deployments.iter_mut() {
            let name = snapshot_name(&DeploymentId::from_uid(&d.meta.uid));
            let Some(cm) = by_name.get(&key.sibling(&name)) else {
                d.snapshot = Snapshot::Pending;
                continue;
            };
            let ck = key_of(*cm);
            let snapshot = match ck.as_ref().and_then(|k| self.snapshots.remove(k)) {
                Some(s) => s,
                None => ingest::read_snapshot(cm),
            };
            d.snapshot = snapshot.clone();
            if let Some(k) = ck {
                used_snapshots.insert(k, snapshot);
            }
        }
        self.snapshots = used_snapshots;
        world
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ingest's RestApi and Deployment, and a Stage serving it.
    fn yaml() -> String {
        format!(
            "{}---\napiVersion: turnpike.dev/v1alpha1\nkind: Stage\nmetadata: {{name: prod}}\nspec: {{restApiRef: {{name: shop}}, stageName: prod, deploymentRef: {{name: shop-v1}}}}\n",
            ingest::tests::VALID
        ) + KEY
    }

    /// An ApiKey in a plan of the stage, with its Secret.
    const KEY: &str = "---\napiVersion: turnpike.dev/v1alpha1\nkind: UsagePlan\nmetadata: {name: plan}\n\
        spec: {apiStages: [{restApiRef: {name: shop}, stage: prod}]}\n---\napiVersion: turnpike.dev/v1alpha1\n\
        kind: ApiKey\nmetadata: {name: k, labels: {tier: gold}}\nspec: {valueFrom: {secretKeyRef: {name: k, key: v}}, \
        usagePlanRefs: [{name: plan}]}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: k, labels: \
        {turnpike.dev/api-key: \"true\"}}\nstringData: {v: AbCdEfGhIjKlMnOpQrStUvWx12}\n";

    /// The cached world compiles exactly like the uncached one, on every rebuild.
    #[test]
    fn the_cached_world_compiles_like_ingest() {
        let mut objects = Objects::from_yaml(&yaml()).unwrap();
        for api in &mut objects.rest_apis {
            api.metadata.resource_version = Some("1".into());
            api.metadata.generation = Some(1);
        }
        objects.record_missing_snapshots();
        for k in &mut objects.api_keys {
            Arc::make_mut(k).metadata.resource_version = Some("3".into());
        }
        for cm in &mut objects.config_maps {
            cm.metadata.uid = Some("cm-uid".into());
            cm.metadata.resource_version = Some("7".into());
        }
        let config = turnpike_core::compile::CompileConfig::default();
        let plain = turnpike_core::compile::compile(&ingest::world(&objects), &config, 1);
        let mut cache = ConversionCache::default();
        for _ in 0..2 {
            let cached = turnpike_core::compile::compile(&cache.world(&mut objects), &config, 1);
            assert_eq!(cached.statuses, plain.statuses);
            assert_eq!(cached.table.route_count(), plain.table.route_count());
            assert_eq!(cached.table.keys().count(), 1);
        }
        assert_eq!(cache.rest_apis.len(), 1);
        assert_eq!(cache.api_keys.len(), 1);
        assert_eq!(cache.snapshots.len(), 1);
        assert_eq!(objects.rest_apis.len(), 1, "objects are given back whole");
    }
}
