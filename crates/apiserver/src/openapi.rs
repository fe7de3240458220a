//! OpenAPI documents built from the registry: `/openapi/v3` (the index), one document per
//! group version with the CRD schemas (what `kubectl explain` and kubectl's server-side field
//! validation check read), and a JSON `/openapi/v2`. Built-in kinds get a minimal,
//! unknown-preserving schema.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::registry::{Registry, ResourceType};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

fn reverse_group(group: &str) -> String {
    if group.is_empty() {
        return "io.k8s.api.core".into();
    }
    group.split('.').rev().collect::<Vec<_>>().join(".")
}

/// The component name of a kind (`dev.turnpike.v1alpha1.RestApi`).
pub fn schema_name(t: &ResourceType) -> String {
    format!("{}.{}.{}", reverse_group(&t.group), t.version, t.kind)
}

fn gvk(t: &ResourceType) -> Value {
    json!({"group": t.group, "version": t.version, "kind": t.kind})
}

fn object_meta() -> Value {
    json!({
        "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
        "type": "object",
        "properties": {
            "name": {"description": "Name must be unique within a namespace.", "type": "string"},
            "generateName": {"description": "GenerateName is an optional prefix, used by the server, to generate a unique name.", "type": "string"},
            "namespace": {"description": "Namespace defines the space within which each name must be unique.", "type": "string"},
            "labels": {"description": "Map of string keys and values that can be used to organize and categorize objects.", "type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"description": "Annotations is an unstructured key value map stored with a resource.", "type": "object", "additionalProperties": {"type": "string"}},
            "uid": {"description": "UID is the unique in time and space value for this object.", "type": "string"},
            "resourceVersion": {"description": "An opaque value that represents the internal version of this object.", "type": "string"},
            "generation": {"description": "A sequence number representing a specific generation of the desired state.", "type": "integer", "format": "int64"},
            "creationTimestamp": {"description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "type": "string", "format": "date-time"},
            "deletionTimestamp": {"description": "DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted.", "type": "string", "format": "date-time"},
            "finalizers": {"description": "Must be empty before the object is deleted from the registry.", "type": "array", "items": {"type": "string"}},
            "ownerReferences": {"description": "List of objects depended by this object.", "type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            "managedFields": {"description": "ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow.", "type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
        }
    })
}

fn kind_schema(t: &ResourceType) -> Value {
    let mut s = t
        .crd
        .as_ref()
        .and_then(|c| c.schema.clone())
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "description": format!("{} is a built-in kind; this server publishes no schema for it.", t.kind)}));
    let Some(obj) = s.as_object_mut() else { return s };
    let props = obj.entry("properties").or_insert_with(|| json!({}));
    if let Some(p) = props.as_object_mut() {
        p.insert("apiVersion".into(), json!({"description": "APIVersion defines the versioned schema of this representation of an object.", "type": "string"}));
        p.insert("kind".into(), json!({"description": "Kind is a string value representing the REST resource this object represents.", "type": "string"}));
        p.insert("metadata".into(), json!({"description": "Standard object's metadata.", "allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}]}));
    }
    obj.insert("x-kubernetes-group-version-kind".into(), json!([gvk(t)]));
    s
}

fn item_path(t: &ResourceType) -> String {
    if t.namespaced {
        format!(
            "{}/namespaces/{{namespace}}/{}/{{name}}",
            t.api_prefix(),
            t.plural
        )
    } else {
        format!("{}/{}/{{name}}", t.api_prefix(), t.plural)
    }
}

fn patch_op(t: &ResourceType) -> Value {
    let schema = json!({"type": "object"});
    let mut content = Map::new();
    for ct in [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ] {
        content.insert(ct.into(), json!({"schema": schema}));
    }
    json!({
        "description": format!("partially update the specified {}", t.kind),
        "operationId": format!("patch{}", t.kind),
        "parameters": [
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "force", "in": "query", "schema": {"type": "boolean"}}
        ],
        "requestBody": {"content": content, "required": true},
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", schema_name(t))}}}}},
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": gvk(t),
    })
}

/// The OpenAPI v3 document of one group version.
pub fn v3_group_version(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = reg.in_group_version(group, version);
    if types.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(OBJECT_META.into(), object_meta());
    for t in &types {
        paths.insert(item_path(t), json!({"patch": patch_op(t)}));
        schemas.insert(schema_name(t), kind_schema(t));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": super::GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn hash(doc: &Value) -> String {
    hex::encode_upper(Sha256::digest(doc.to_string().as_bytes()))
}

/// `/openapi/v3`: one entry per group version, with a content hash clients cache by.
pub fn v3_index(reg: &Registry) -> Value {
    let mut paths = Map::new();
    for (g, vs) in reg.groups() {
        for v in vs {
            let key = if g.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{g}/{v}")
            };
            let h = v3_group_version(reg, &g, &v)
                .map(|d| hash(&d))
                .unwrap_or_default();
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={h}")}),
            );
        }
    }
    json!({"paths": paths})
}

/// `/openapi/v2` as JSON (Swagger 2.0) with every kind's schema as a definition.
pub fn v2(reg: &Registry) -> Value {
    let mut defs = Map::new();
    let mut meta = object_meta();
    if let Some(m) = meta.as_object_mut() {
        m.remove("x-kubernetes-group-version-kind");
    }
    defs.insert(OBJECT_META.into(), meta);
    for t in reg.all() {
        let s = kind_schema(t)
            .to_string()
            .replace("#/components/schemas/", "#/definitions/");
        defs.insert(schema_name(t), serde_json::from_str(&s).unwrap_or(Value::Null));
    }
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": super::GIT_VERSION}, "paths": {}, "definitions": defs})
}
