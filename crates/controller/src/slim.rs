//! The ApiKeys and API key Secrets as their watches read them: only the fields the controller
//! reads are deserialized.
//!
//! A cluster may hold 10,000 keys and as many Secrets, listed in pages of [`LIST_PAGE`]. A
//! typed object off the wire carries its `managedFields` (a tree of maps per field manager,
//! often larger than the rest of the object), its annotations and, for an ApiKey, its usage
//! summaries; a page of them, held while the watch hands them over one at a time, made the
//! largest allocation of a gateway's life, which the allocator then keeps. [`KeyObject`] and
//! [`KeySecret`] skip all that while they are read: what is left is what [`crate::keys`] and
//! [`crate::secrets`] keep of each (a Secret's values are digested as they are read). A status
//! write's answer, which nobody reads, is read as [`Unread`].

use std::{borrow::Cow, collections::BTreeMap, marker::PhantomData};

use k8s_openapi::{ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::{Resource, runtime::watcher};
use serde::{Deserialize, Deserializer, de::IgnoredAny};

use crate::ingest;
use turnpike_api::{ApiKey, ApiKeySpec, ApiKeyStatus};
use turnpike_core::model::SecretData;

/// Objects per page of a list of ApiKeys or of their Secrets: what a list holds at once.
pub const LIST_PAGE: u32 = 100;

/// The metadata the controller reads of a key or its Secret: its identity, version and labels
/// (no annotations, owner references or managed fields).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    generation: Option<i64>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

fn meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = SlimMeta::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        generation: m.generation,
        resource_version: m.resource_version,
        labels: m.labels,
        ..ObjectMeta::default()
    })
}

/// An ApiKey as its watch reads it: the metadata of [`SlimMeta`], the spec, and the status
/// without its usage summaries (which the key store leaves out of what it keeps).
#[derive(Clone, Debug, Deserialize)]
pub struct KeyObject {
    #[serde(deserialize_with = "meta")]
    metadata: ObjectMeta,
    spec: ApiKeySpec,
    #[serde(default, deserialize_with = "status_without_usage")]
    status: Option<ApiKeyStatus>,
}

/// The fields of an ApiKey's status but `usage`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimStatus {
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    conditions: turnpike_api::Conditions,
}

fn status_without_usage<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ApiKeyStatus>, D::Error> {
    Ok(Option::<SlimStatus>::deserialize(d)?.map(|s| ApiKeyStatus {
        key_id: s.key_id,
        conditions: s.conditions,
        usage: Vec::new(),
    }))
}

impl From<KeyObject> for ApiKey {
    fn from(k: KeyObject) -> ApiKey {
        ApiKey {
            metadata: k.metadata,
            spec: k.spec,
            status: k.status,
        }
    }
}

/// An API key Secret as its watch reads it: the metadata of [`SlimMeta`], and its values as
/// digests ([`ingest::secret_data`]), never the values.
#[derive(Clone, Debug)]
pub struct KeySecret {
    metadata: ObjectMeta,
    pub data: SecretData,
}

impl KeySecret {
    /// What is kept of `s`.
    pub fn of(s: &Secret) -> KeySecret {
        let mut metadata = s.metadata.clone();
        metadata.managed_fields = None;
        metadata.annotations = None;
        KeySecret {
            metadata,
            data: ingest::secret_data(s),
        }
    }
}

impl<'de> Deserialize<'de> for KeySecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            #[serde(deserialize_with = "meta")]
            metadata: ObjectMeta,
            #[serde(default)]
            data: Option<BTreeMap<String, ByteString>>,
            #[serde(default)]
            string_data: Option<BTreeMap<String, String>>,
        }
        let w = Wire::deserialize(d)?;
        let values = Secret {
            data: w.data,
            string_data: w.string_data,
            ..Secret::default()
        };
        Ok(KeySecret {
            metadata: w.metadata,
            data: ingest::secret_data(&values),
        })
    }
}

/// An object of `K`'s kind that is read and dropped unread: what a write answers with (the
/// whole object) when the writer reads none of it. A summaries round writes the status of
/// every ApiKey; reading each answer as a typed ApiKey was a few kilobytes of allocations
/// per key, freed at once but scattered over the heap.
#[derive(Clone, Debug)]
pub struct Unread<K> {
    metadata: ObjectMeta,
    kind: PhantomData<K>,
}

impl<'de, K> Deserialize<'de> for Unread<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d)?;
        Ok(Unread {
            metadata: ObjectMeta::default(),
            kind: PhantomData,
        })
    }
}

/// Implements `Resource` for `$t`, a type that reads objects of `$of`'s kind (its metadata in
/// its field `metadata`): requests go where they would for `$of`.
macro_rules! resource_of {
    ($of:ty => $t:ty $(, $k:ident)?) => {
        impl<$($k: Resource<DynamicType = ()>)?> Resource for $t {
            type DynamicType = ();
            type Scope = <$of as Resource>::Scope;

            fn kind(dt: &()) -> Cow<'_, str> {
                <$of>::kind(dt)
            }

            fn group(dt: &()) -> Cow<'_, str> {
                <$of>::group(dt)
            }

            fn version(dt: &()) -> Cow<'_, str> {
                <$of>::version(dt)
            }

            fn plural(dt: &()) -> Cow<'_, str> {
                <$of>::plural(dt)
            }

            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

resource_of!(ApiKey => KeyObject);
resource_of!(Secret => KeySecret);
resource_of!(K => Unread<K>, K);

/// A watch event of one type as one of another.
pub fn event<K, T: From<K>>(e: watcher::Event<K>) -> watcher::Event<T> {
    match e {
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(k) => watcher::Event::InitApply(k.into()),
        watcher::Event::InitDone => watcher::Event::InitDone,
        watcher::Event::Apply(k) => watcher::Event::Apply(k.into()),
        watcher::Event::Delete(k) => watcher::Event::Delete(k.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An ApiKey off the wire reads as the typed ApiKey without what the controller never
    /// reads: managed fields, annotations, usage summaries.
    #[test]
    fn a_key_reads_as_the_typed_key_without_what_is_not_read() {
        let wire = json!({
            "apiVersion": "turnpike.dev/v1alpha1", "kind": "ApiKey",
            "metadata": {
                "name": "a", "namespace": "default", "uid": "u", "generation": 2,
                "resourceVersion": "7", "labels": {"tier": "gold"},
                "annotations": {"note": "x"},
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
            },
            "spec": {"valueFrom": {"secretKeyRef": {"name": "a", "key": "v"}}},
            "status": {"keyId": "abcdefghij",
                "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                    "message": "", "lastTransitionTime": "2026-12-05T00:00:00Z"}],
                "usage": [{"usagePlan": "p", "period": "DAY", "periodStart": "2026-12-05",
                    "used": 1, "remaining": 9, "updated": "2026-12-05T00:00:00Z"}]},
        });
        let typed: ApiKey = serde_json::from_value(wire.clone()).unwrap();
        let slim = ApiKey::from(serde_json::from_value::<KeyObject>(wire).unwrap());
        assert_eq!(slim.spec, typed.spec);
        let (status, typed_status) = (slim.status.unwrap(), typed.status.unwrap());
        assert_eq!(status.key_id, typed_status.key_id);
        assert_eq!(status.conditions, typed_status.conditions);
        assert!(status.usage.is_empty());
        let m = &slim.metadata;
        assert_eq!(
            (m.name.as_deref(), m.namespace.as_deref()),
            (Some("a"), Some("default"))
        );
        assert_eq!((m.uid.as_deref(), m.generation), (Some("u"), Some(2)));
        assert_eq!(m.resource_version.as_deref(), Some("7"));
        assert_eq!(m.labels, typed.metadata.labels);
        assert_eq!((&m.annotations, &m.managed_fields), (&None, &None));
        let bare = json!({"metadata": {"name": "b"}, "spec": {}});
        let bare = ApiKey::from(serde_json::from_value::<KeyObject>(bare).unwrap());
        assert!(bare.spec.enabled && bare.status.is_none());
    }

    /// A Secret off the wire reads as the digests of its values, as a typed one does.
    #[test]
    fn a_secret_reads_as_its_digests() {
        let wire = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "a", "namespace": "default", "resourceVersion": "3",
                "labels": {"turnpike.dev/api-key": "true"},
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:data": {}}}]},
            // "ScaleKey00000001abcdefghijkl", and "short".
            "data": {"value": "U2NhbGVLZXkwMDAwMDAwMWFiY2RlZmdoaWprbA==", "other": "c2hvcnQ="},
        });
        let typed: Secret = serde_json::from_value(wire.clone()).unwrap();
        let slim: KeySecret = serde_json::from_value(wire).unwrap();
        assert_eq!(slim.data, ingest::secret_data(&typed));
        assert!(slim.data.get("value").unwrap().is_ok());
        assert!(slim.data.get("other").unwrap().is_err());
        assert_eq!(slim.metadata.name.as_deref(), Some("a"));
        assert_eq!(slim.metadata.managed_fields, None);
        assert_eq!(KeySecret::of(&typed).data, slim.data);
    }
}
