//! Conversions that a rebuild would otherwise repeat for objects that did not change: the
//! validation of every RestApi and the reading of every snapshot ConfigMap (JSON, digest,
//! validation). Entries are keyed by uid and resourceVersion — any change to the object makes
//! a new key — and every rebuild keeps only the entries it used. (ApiKeys, which may number
//! 10,000, are converted once as the watch delivers them: [`KeyStore`](crate::keys::KeyStore).)
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
    snapshots: HashMap<Key, Snapshot>,
}

impl ConversionCache {
    /// [`ingest::world`] of `objects` with the ApiKeys converted already (`keys`, from the
    /// [`KeyStore`](crate::keys::KeyStore): `objects.api_keys` is not read), reusing earlier
    /// conversions of the other kinds.
    pub fn world_with_keys(&mut self, objects: &mut Objects, keys: Vec<Arc<Obj<ApiKeyDef>>>) -> World {
        let rest_apis = std::mem::take(&mut objects.rest_apis);
        let config_maps = std::mem::take(&mut objects.config_maps);
        let api_keys = std::mem::take(&mut objects.api_keys);
        let mut world = ingest::world(objects);
        objects.rest_apis = rest_apis;
        objects.config_maps = config_maps;
        objects.api_keys = api_keys;

        for obj in keys {
            world.api_keys.insert(obj.meta.key.clone(), obj);
        }
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
            let name = snapshot_name(&d.meta.uid.with_str(DeploymentId::from_uid));
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
    use crate::keys::KeyStore;
    use turnpike_core::model::KeyDigest;

    /// What a rebuild converts with: the ApiKeys as the watch keeps them, and the cache.
    struct Rebuild {
        keys: KeyStore,
        conversions: ConversionCache,
    }

    impl Default for Rebuild {
        fn default() -> Self {
            Rebuild {
                keys: KeyStore::offline(),
                conversions: ConversionCache::default(),
            }
        }
    }

    impl Rebuild {
        /// The world of `objects`, its ApiKeys listed as the watch would.
        fn world(&mut self, objects: &mut Objects) -> World {
            self.keys.relist(&objects.api_keys);
            self.conversions.world_with_keys(objects, self.keys.converted())
        }
    }

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
        let mut cache = Rebuild::default();
        for _ in 0..2 {
            let cached = turnpike_core::compile::compile(&cache.world(&mut objects), &config, 1);
            assert_eq!(cached.statuses, plain.statuses);
            assert_eq!(cached.table.route_count(), plain.table.route_count());
            assert_eq!(cached.table.keys().count(), 1);
        }
        assert_eq!(cache.conversions.rest_apis.len(), 1);
        assert_eq!(cache.keys.state().len(), 1);
        assert_eq!(cache.conversions.snapshots.len(), 1);
        assert_eq!(objects.rest_apis.len(), 1, "objects are given back whole");
    }

    /// The Stage and plan of [`yaml`], and ApiKeys `names` in the plan, each with a Secret of
    /// its name holding `value` under `v`; the keys carry a resource version, as watched.
    fn keyed(names: &[&str]) -> Objects {
        let mut y = format!(
            "{}---\napiVersion: turnpike.dev/v1alpha1\nkind: Stage\nmetadata: {{name: prod}}\nspec: {{restApiRef: {{name: shop}}, stageName: prod, deploymentRef: {{name: shop-v1}}}}\n\
             ---\napiVersion: turnpike.dev/v1alpha1\nkind: UsagePlan\nmetadata: {{name: plan}}\n\
             spec: {{apiStages: [{{restApiRef: {{name: shop}}, stage: prod}}]}}\n",
            ingest::tests::VALID
        );
        for (i, name) in names.iter().enumerate() {
            y += &format!(
                "---\napiVersion: turnpike.dev/v1alpha1\nkind: ApiKey\nmetadata: {{name: {name}}}\n\
                 spec: {{valueFrom: {{secretKeyRef: {{name: {name}, key: v}}}}, usagePlanRefs: [{{name: plan}}]}}\n\
                 ---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, labels: {{turnpike.dev/api-key: \"true\"}}}}\n\
                 stringData: {{v: AbCdEfGhIjKlMnOpQrStUvW{i:03}}}\n"
            );
        }
        let mut objects = Objects::from_yaml(&y).unwrap();
        objects.record_missing_snapshots();
        for k in &mut objects.api_keys {
            let meta = &mut Arc::make_mut(k).metadata;
            meta.resource_version = Some("1".into());
            meta.generation = Some(1);
        }
        objects
    }

    /// Compiles `objects` with both caches, checks the outcome is the uncached compile's, and
    /// returns the ApiKeys' statuses.
    fn check(
        conversions: &mut Rebuild,
        compiled: &mut turnpike_core::compile::CompileCache,
        objects: &mut Objects,
    ) -> Vec<turnpike_core::compile::Status> {
        use turnpike_core::compile::{CompileConfig, Kind, compile, compile_with};
        let config = CompileConfig::default();
        let plain = compile(&ingest::world(objects), &config, 1);
        let cached = compile_with(&conversions.world(objects), &config, 1, compiled);
        assert_eq!(cached.statuses, plain.statuses);
        let keys = |c: &turnpike_core::compile::Compiled| {
            let mut keys: Vec<String> = c.table.keys().map(|k| format!("{k:?}")).collect();
            keys.sort();
            keys
        };
        assert_eq!(keys(&cached), keys(&plain));
        cached
            .statuses
            .into_iter()
            .filter(|s| s.kind() == Kind::ApiKey)
            .collect()
    }

    fn set_value(objects: &mut Objects, secret: &str, value: &str) {
        let data = [("v".to_string(), KeyDigest::of_value(value))]
            .into_iter()
            .collect();
        Arc::make_mut(&mut objects.secrets).insert(ObjectKey::new("default", secret), data);
    }

    /// A rebuild that changes nothing the keys read reuses every key's outcome; one that does
    /// (a Secret, another key's value, a key gone, the plan) compiles the keys it touches
    /// again, and every outcome is the uncached compile's.
    #[test]
    fn unchanged_keys_reuse_their_outcome_and_changed_inputs_compile_again() {
        let mut objects = keyed(&["a", "b", "c"]);
        let (mut conversions, mut compiled) = (Rebuild::default(), Default::default());
        let first = check(&mut conversions, &mut compiled, &mut objects);
        assert_eq!(first.len(), 3);
        assert!(first.iter().all(|s| s.is_ready()), "{first:#?}");

        // A Stage edit: the keys read nothing of it.
        objects.stages[0].spec.variables.insert("edit".into(), "1".into());
        let edited = check(&mut conversions, &mut compiled, &mut objects);
        assert!(first.iter().zip(&edited).all(|(a, b)| a.same(b)), "reused");

        // a takes c's value: a (first in order) compiles again and keeps it; c, whose
        // outcome is cached, finds it taken and is compiled again as a duplicate.
        set_value(&mut objects, "a", "AbCdEfGhIjKlMnOpQrStUvW002");
        let taken = check(&mut conversions, &mut compiled, &mut objects);
        assert!(!edited[0].same(&taken[0]));
        assert!(edited[1].same(&taken[1]), "b is untouched");
        assert!(!taken[2].is_ready(), "{:#?}", taken[2]);
        assert!(
            format!("{:?}", taken[2]).contains("DuplicateApiKey"),
            "{:#?}",
            taken[2]
        );
        assert_eq!(compiled.len(), 2, "a duplicate's outcome is not kept");

        // Without a, c has its value to itself again.
        objects.api_keys.remove(0);
        let gone = check(&mut conversions, &mut compiled, &mut objects);
        assert_eq!(gone.len(), 2);
        assert!(gone[1].is_ready(), "{:#?}", gone[1]);

        // An edit of the key itself (a new generation).
        Arc::make_mut(&mut objects.api_keys[0]).spec.enabled = false;
        Arc::make_mut(&mut objects.api_keys[0]).metadata.generation = Some(2);
        let disabled = check(&mut conversions, &mut compiled, &mut objects);
        assert!(!disabled[0].is_ready());

        // Without the plan, every key compiles again and says so.
        objects.usage_plans.clear();
        let planless = check(&mut conversions, &mut compiled, &mut objects);
        assert!(!planless.iter().any(|s| s.same(&disabled[1])));
        assert!(
            format!("{planless:?}").contains("UsagePlanNotFound"),
            "{planless:#?}"
        );
    }

    /// A served key's status is read from its table entry (no allocation of its own), and is
    /// what compile decided for it; a key the table does not serve has an update of its own.
    #[test]
    fn a_served_keys_status_is_its_table_entry() {
        use turnpike_core::compile::{CompileConfig, Status, compile};
        let mut objects = keyed(&["a", "b"]);
        Arc::make_mut(&mut objects.secrets).remove(&ObjectKey::new("default", "b"));
        let compiled = compile(&ingest::world(&objects), &CompileConfig::default(), 1);
        let keys: Vec<&Status> = compiled
            .statuses
            .iter()
            .filter(|s| s.kind() == turnpike_core::compile::Kind::ApiKey)
            .collect();
        let [Status::Key(a), Status::Update(b)] = keys.as_slice() else {
            panic!("{keys:#?}");
        };
        let served = compiled.table.keys().next().expect("a is served");
        assert!(Arc::ptr_eq(a, served));
        assert!(keys[0].is_ready() && !b.is_ready());
        let update = keys[0].update();
        assert_eq!(*update.object.name, *"a");
        assert_eq!(update.observed_generation, 1);
        assert_eq!(update.fields.key_id, Some(a.id));
        assert_eq!(
            update.conditions.iter().map(|c| c.type_).collect::<Vec<_>>(),
            ["Accepted", "ResolvedRefs", "Ready"]
        );
        assert!(format!("{b:?}").contains("SecretNotFound"), "{b:#?}");
    }

    /// Keys with the same outcome share one copy of their conditions; a key whose outcome
    /// differs has its own.
    #[test]
    fn keys_with_the_same_outcome_share_their_conditions() {
        let mut objects = keyed(&["a", "b", "c"]);
        let (mut conversions, mut compiled) = (Rebuild::default(), Default::default());
        let first = check(&mut conversions, &mut compiled, &mut objects);
        assert!(std::ptr::eq(first[0].conditions(), first[1].conditions()));
        assert!(std::ptr::eq(first[1].conditions(), first[2].conditions()));

        Arc::make_mut(&mut objects.api_keys[1]).spec.enabled = false;
        Arc::make_mut(&mut objects.api_keys[1]).metadata.generation = Some(2);
        let edited = check(&mut conversions, &mut compiled, &mut objects);
        assert!(std::ptr::eq(edited[0].conditions(), edited[2].conditions()));
        assert!(!std::ptr::eq(edited[0].conditions(), edited[1].conditions()));
        assert_ne!(edited[0].conditions(), edited[1].conditions(), "{:#?}", edited[1]);
    }
}
