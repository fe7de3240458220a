//! What the server does to every object it stores: system metadata (uid, timestamps,
//! generation), status subresource semantics, schema validation for custom resources, managed
//! fields, and finishing deletions whose finalizers are gone.

use std::sync::Arc;

use rand::Rng as _;
use serde_json::{Map, Value, json};

use super::{
    errors::{Cause, Result, StatusError},
    registry::ResourceType,
    schema, ssa,
    store::Write,
};

/// Which endpoint a write came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// The object itself.
    Main,
    /// The `/status` subresource.
    Status,
}

/// Per-request write options.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `fieldManager`, or a default derived from the user agent.
    pub field_manager: String,
    /// `fieldValidation`: Strict, Warn or Ignore.
    pub field_validation: String,
    /// Whether the change is an apply (managed fields were computed by ssa).
    pub is_apply: bool,
}

/// The current time as Kubernetes writes it (RFC 3339, seconds).
pub fn now() -> String {
    let ts = k8s_openapi::jiff::Timestamp::now();
    format!("{}", ts.strftime("%Y-%m-%dT%H:%M:%SZ"))
}

/// Five random characters for `generateName`, from the alphabet Kubernetes uses.
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Metadata of an object, created if missing.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just set to an object"),
    }
}

/// A string field of metadata.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// Checks `apiVersion`/`kind` of a request body against the URL, filling them in if absent.
pub fn check_type(rt: &ResourceType, obj: &mut Value) -> Result<()> {
    if !obj.is_object() {
        return Err(StatusError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    match obj.get("kind").and_then(Value::as_str) {
        // Like the real decoder, a body without a kind takes the one of the endpoint.
        None | Some("") => obj["kind"] = Value::String(rt.kind.clone()),
        Some(k) if k != rt.kind => {
            return Err(StatusError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            )));
        }
        _ => {}
    }
    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v == rt.api_version() => Ok(()),
        Some(v) => Err(StatusError::bad_request(format!(
            "the API version in the data ({v}) does not match the expected API version ({})",
            rt.api_version()
        ))),
        None => {
            obj["apiVersion"] = Value::String(rt.api_version());
            Ok(())
        }
    }
}

/// Validates an object name as a DNS-1123 subdomain.
pub fn validate_name(rt: &ResourceType, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        return Ok(());
    }
    Err(StatusError::invalid(
        rt,
        name,
        &[Cause::invalid(
            "metadata.name",
            &Value::String(name.into()),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
             and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation \
             is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )],
    ))
}

/// Everything but metadata and status: what a generation bump looks at.
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

/// Turns a proposed object into what is stored. `old` is the stored object for updates.
#[allow(clippy::too_many_arguments)] // the object's identity, both versions, and the request context
pub fn prepare(
    rt: &ResourceType,
    ns: &str,
    name: &str,
    old: Option<&Arc<Value>>,
    mut new: Value,
    endpoint: Endpoint,
    opts: &WriteOptions,
    warnings: &mut Vec<String>,
) -> Result<Write> {
    // Status endpoint: only status changes.
    if endpoint == Endpoint::Status {
        let Some(old) = old else {
            return Err(StatusError::not_found(rt, name));
        };
        let mut merged = (**old).clone();
        match new.get("status") {
            Some(s) => merged["status"] = s.clone(),
            None => {
                if let Some(m) = merged.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        // Status writes may carry managedFields computed by apply; keep the new ones.
        if let Some(mf) = new.pointer("/metadata/managedFields") {
            meta_mut(&mut merged).insert("managedFields".into(), mf.clone());
        }
        if let Some(rv) = new.pointer("/metadata/resourceVersion") {
            meta_mut(&mut merged).insert("resourceVersion".into(), rv.clone());
        }
        new = merged;
    }
    {
        let m = meta_mut(&mut new);
        m.insert("name".into(), Value::String(name.into()));
        if rt.namespaced {
            m.insert("namespace".into(), Value::String(ns.into()));
        } else {
            m.remove("namespace");
        }
        m.remove("selfLink");
    }
    new["apiVersion"] = Value::String(rt.api_version());
    new["kind"] = Value::String(rt.kind.clone());

    match old {
        None => {
            let m = meta_mut(&mut new);
            m.insert("uid".into(), Value::String(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), Value::String(now()));
            m.insert("generation".into(), json!(1));
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
            m.remove("resourceVersion");
            if rt.crd.is_some()
                && rt.status_subresource
                && let Some(o) = new.as_object_mut()
            {
                o.remove("status");
            }
            if rt.plural == "namespaces" && rt.group.is_empty() {
                new["status"] = json!({"phase": "Active"});
                if new
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .is_none_or(|f| f.is_empty())
                {
                    new["spec"] = json!({"finalizers": ["kubernetes"]});
                }
            }
        }
        Some(old) => {
            let old_meta = old.get("metadata").cloned().unwrap_or_default();
            let m = meta_mut(&mut new);
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                match old_meta.get(f) {
                    Some(v) => m.insert(f.into(), v.clone()),
                    None => m.remove(f),
                };
            }
            if endpoint == Endpoint::Main && rt.status_subresource {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(o) = new.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            let generation = old_meta.get("generation").and_then(Value::as_i64).unwrap_or(1);
            let bump = endpoint == Endpoint::Main && spec_part(old) != spec_part(&new);
            meta_mut(&mut new).insert(
                "generation".into(),
                json!(if bump { generation + 1 } else { generation }),
            );
        }
    }

    if rt.group.is_empty() && rt.plural == "secrets" {
        fold_string_data(&mut new);
    }

    if let Some(crd) = &rt.crd {
        if let Some(schema) = &crd.schema {
            let unknown = schema::default_and_prune(schema, &mut new);
            if !unknown.is_empty() {
                match opts.field_validation.as_str() {
                    "Strict" => {
                        let list = unknown
                            .iter()
                            .map(|f| format!("unknown field \"{f}\""))
                            .collect::<Vec<_>>();
                        let msg = if list.len() == 1 {
                            list[0].clone()
                        } else {
                            format!("[{}]", list.join(", "))
                        };
                        return Err(StatusError::bad_request(format!(
                            "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {msg}",
                            kind = rt.kind,
                            v = rt.version
                        )));
                    }
                    "Warn" => warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\""))),
                    _ => {}
                }
            }
            let old_obj = old.map(|o| &**o);
            let causes = schema::validate(schema, &new, old_obj);
            if !causes.is_empty() {
                return Err(StatusError::invalid(rt, name, &causes));
            }
        }
    } else if rt.plural == "customresourcedefinitions" {
        validate_crd(rt, name, &new)?;
    }

    if !opts.is_apply {
        ssa::record_update(
            old.map(|o| &**o),
            &mut new,
            &opts.field_manager,
            &rt.api_version(),
            endpoint,
        );
    }

    // A deleted object whose last finalizer is gone is removed for real.
    let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
    let finalizers_empty = new
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty());
    if deleting && finalizers_empty && !(rt.plural == "namespaces" && rt.group.is_empty()) {
        return Ok(Write::Delete);
    }
    if let Some(old) = old
        && **old == new
    {
        return Ok(Write::Unchanged(old.clone()));
    }
    Ok(Write::Put(new))
}

/// Secrets: `stringData` is write-only; the server folds it into base64 `data`.
fn fold_string_data(secret: &mut Value) {
    use base64::Engine as _;
    let Some(obj) = secret.as_object_mut() else { return };
    let Some(Value::Object(sd)) = obj.remove("stringData") else {
        return;
    };
    let data = obj.entry("data").or_insert_with(|| json!({}));
    if let Some(d) = data.as_object_mut() {
        for (k, v) in sd {
            let text = v.as_str().map(String::from).unwrap_or_else(|| v.to_string());
            d.insert(
                k,
                Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}

fn validate_crd(rt: &ResourceType, name: &str, crd: &Value) -> Result<()> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec
        .pointer("/names/plural")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut causes = Vec::new();
    if group.is_empty() {
        causes.push(Cause::required("spec.group"));
    }
    if plural.is_empty() {
        causes.push(Cause::required("spec.names.plural"));
    }
    if spec
        .pointer("/names/kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .is_empty()
    {
        causes.push(Cause::required("spec.names.kind"));
    }
    if causes.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::invalid(
            "metadata.name",
            &Value::String(name.into()),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if spec["versions"].as_array().is_none_or(|v| v.is_empty()) {
        causes.push(Cause::required("spec.versions"));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(StatusError::invalid(rt, name, &causes))
    }
}
