//! Deployment snapshots, as the leader records them.
//!
//! The first time the leader rebuilds with a Deployment that has no snapshot ConfigMap, it
//! records the RestApi's current spec ([`crate::ingest::snapshot_config_map`]: immutable,
//! owned by the Deployment, content-hashed) — only for a valid RestApi, the same rule as
//! [`Objects::record_missing_snapshots`], which it reuses. The leader compiles with the
//! recorded snapshot at once and creates the ConfigMap before writing any status; followers
//! serve the snapshot when their ConfigMap watch delivers it. A Deployment whose snapshot is
//! missing (not recorded yet, deleted, or unreadable) is a condition, never a crash.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt as _;

use crate::ingest::{Objects, snapshot_name};
use turnpike_api::Deployment;
use turnpike_core::compile::{Snapshot, World};
use turnpike_core::model::{DeploymentId, ObjectKey};

/// What [`record`] decided.
#[derive(Debug, Default)]
pub struct Recorded {
    /// New snapshot ConfigMaps (to create); already added to the objects.
    pub new: Vec<ConfigMap>,
    /// Deployments whose snapshot was recorded once (their status names it) and is gone.
    /// They are never recorded again — that would silently serve a later definition — and
    /// report `SnapshotInvalid` instead (see [`mark_lost`]).
    pub lost: Vec<(ObjectKey, String)>,
}

/// Records the missing snapshots into `objects`, except for Deployments whose snapshot was
/// recorded before and has since disappeared.
///
/// `pending` holds snapshots recorded by earlier rebuilds that the ConfigMap watch has not
/// delivered yet: they count as present (so a RestApi edit in between cannot record a
/// different one), and are dropped from `pending` once the watch has them.
pub fn record(objects: &mut Objects, pending: &mut BTreeMap<ObjectKey, ConfigMap>) -> Recorded {
    let existing: BTreeSet<ObjectKey> = objects.config_maps.iter().map(key_of).collect();
    pending.retain(|k, _| !existing.contains(k));
    objects.config_maps.extend(pending.values().cloned());
    let present: BTreeSet<ObjectKey> = objects.config_maps.iter().map(key_of).collect();

    let mut lost = Vec::new();
    let (gone, keep): (Vec<Deployment>, Vec<Deployment>) = std::mem::take(&mut objects.deployments)
        .into_iter()
        .partition(|d| {
            let recorded = d.status.as_ref().and_then(|s| s.snapshot.as_ref());
            recorded.is_some_and(|name| {
                !present.contains(&ObjectKey::new(d.namespace().unwrap_or_default(), name.clone()))
            })
        });
    for d in &gone {
        let name = d
            .status
            .as_ref()
            .and_then(|s| s.snapshot.clone())
            .unwrap_or_default();
        lost.push((
            ObjectKey::new(d.namespace().unwrap_or_default(), d.name_any()),
            name,
        ));
    }
    objects.deployments = keep;
    let before = objects.config_maps.len();
    objects.record_missing_snapshots();
    let new = objects.config_maps[before..].to_vec();
    objects.deployments.extend(gone);
    for cm in &new {
        pending.insert(key_of(cm), cm.clone());
    }
    Recorded { new, lost }
}

/// Marks the Deployments whose recorded snapshot is gone: a condition, not a crash.
pub fn mark_lost(world: &mut World, lost: &[(ObjectKey, String)]) {
    for (key, name) in lost {
        if let Some(d) = world.deployments.get_mut(key) {
            d.snapshot = Snapshot::Corrupt {
                message: format!(
                    "snapshot ConfigMap {name:?} was recorded and no longer exists; a Deployment is \
                     never recorded twice, so create a new Deployment to deploy the current RestApi"
                ),
            };
        }
    }
}

fn key_of(cm: &ConfigMap) -> ObjectKey {
    ObjectKey::new(cm.namespace().unwrap_or_default(), cm.name_any())
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

    use crate::ingest::tests::VALID as YAML;

    #[test]
    fn records_once() {
        let mut objects = Objects::from_yaml(YAML).unwrap();
        let mut pending = BTreeMap::new();
        let first = record(&mut objects, &mut pending);
        assert_eq!(first.new.len(), 1);
        assert_eq!(objects.config_maps.len(), 1);
        assert!(record(&mut objects, &mut pending).new.is_empty());
        let n = names(&objects);
        assert_eq!(n.len(), 1);
        assert!(n.values().all(|v| v.starts_with("turnpike-snapshot-")));
    }

    #[test]
    fn an_invalid_rest_api_is_not_recorded() {
        let mut objects =
            Objects::from_yaml(&YAML.replace("{type: MOCK}", "{type: HTTP_PROXY, uri: nope}")).unwrap();
        assert!(record(&mut objects, &mut BTreeMap::new()).new.is_empty());
        assert!(names(&objects).is_empty());
    }

    #[test]
    fn a_pending_snapshot_is_not_recorded_again_after_an_edit() {
        let mut objects = Objects::from_yaml(YAML).unwrap();
        let mut pending = BTreeMap::new();
        let first = record(&mut objects, &mut pending).new;
        // The next rebuild: the watch has not delivered the ConfigMap, the RestApi changed.
        let mut next = Objects::from_yaml(&YAML.replace("/pets", "/cats")).unwrap();
        assert!(record(&mut next, &mut pending).new.is_empty());
        assert_eq!(next.config_maps, first);
        // Once the watch has it, it is no longer pending.
        let mut later = Objects::from_yaml(YAML).unwrap();
        later.config_maps = first;
        record(&mut later, &mut pending);
        assert!(pending.is_empty());
    }

    #[test]
    fn a_deleted_snapshot_is_never_recorded_again() {
        let mut objects = Objects::from_yaml(YAML).unwrap();
        let name = record(&mut objects, &mut BTreeMap::new()).new[0].name_any();
        let mut after = Objects::from_yaml(YAML).unwrap();
        after.deployments[0].status = Some(turnpike_api::DeploymentStatus {
            snapshot: Some(name.clone()),
            ..Default::default()
        });
        let r = record(&mut after, &mut BTreeMap::new());
        assert!(r.new.is_empty());
        assert_eq!(r.lost, vec![(ObjectKey::new("default", "shop-v1"), name)]);
        let mut world = crate::ingest::world(&after);
        mark_lost(&mut world, &r.lost);
        assert!(matches!(
            world.deployments[&ObjectKey::new("default", "shop-v1")].snapshot,
            Snapshot::Corrupt { .. }
        ));
    }
}
