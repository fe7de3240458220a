//! Server-side apply and managed fields.
//!
//! Field sets are kept in the `FieldsV1` form the real server writes (`f:spec`, `f:replicas`,
//! `k:{"name":"app"}`, `.`). Associative lists are keyed by a per-field table of list-map keys
//! (containers, env and volumes by name, container ports by containerPort, service ports by
//! port, conditions by type, ...); other lists are atomic. An apply takes ownership of the
//! fields it sends, reports conflicts with other managers whose fields it would change (unless
//! forced), merges, and removes the fields it owned before but no longer sends, unless another
//! manager owns them too. Non-apply writes take ownership of the fields they change.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::objects::{Endpoint, meta_mut, now};

/// One path in a field set: `["f:spec", "f:containers", "k:{\"name\":\"a\"}", "f:image"]`.
pub type FieldPath = Vec<String>;
type FieldSet = BTreeSet<FieldPath>;

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    subresource: Option<String>,
    fields: FieldSet,
}

/// The list-map keys of an associative list, by field name and item shape.
pub fn list_keys(field: &str, items: &[Value]) -> Option<Vec<&'static str>> {
    let has = |k: &str| !items.is_empty() && items.iter().all(|i| i.get(k).is_some());
    let keys: Vec<&'static str> = match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "hostAliases_" => vec!["name"],
        "volumeMounts" | "volumeDevices" => vec!["mountPath"],
        "conditions" => vec!["type"],
        "ownerReferences" => vec!["uid"],
        "ports" if has("containerPort") => vec!["containerPort", "protocol"],
        "ports" if has("port") => vec!["port", "protocol"],
        _ => return None,
    };
    if !items.iter().all(|i| i.is_object()) || !has(keys[0]) {
        return None;
    }
    Some(keys)
}

fn item_key(keys: &[&str], item: &Value) -> String {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(*k) {
            m.insert((*k).to_string(), v.clone());
        }
    }
    format!("k:{}", Value::Object(m))
}

fn collect(v: &Value, field: &str, path: &mut FieldPath, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, cv) in m {
                path.push(format!("f:{k}"));
                collect(cv, k, path, out);
                path.pop();
            }
        }
        Value::Array(items) => match list_keys(field, items) {
            Some(keys) => {
                for item in items {
                    path.push(item_key(&keys, item));
                    let mut dot = path.clone();
                    dot.push(".".into());
                    out.insert(dot);
                    collect(item, "", path, out);
                    path.pop();
                }
            }
            None => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The fields an object (or applied configuration) sets, excluding identity and system fields.
fn fields_of(obj: &Value, endpoint: Endpoint) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(m) = obj.as_object() else { return out };
    for (k, v) in m {
        if (endpoint == Endpoint::Status) != (k == "status") {
            continue;
        }
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                for mk in ["labels", "annotations", "finalizers", "ownerReferences"] {
                    if let Some(mv) = v.get(mk) {
                        let mut p = vec!["f:metadata".to_string(), format!("f:{mk}")];
                        collect(mv, mk, &mut p, &mut out);
                    }
                }
            }
            _ => {
                let mut p = vec![format!("f:{k}")];
                collect(v, k, &mut p, &mut out);
            }
        }
    }
    out
}

/// The value at a field path, if present.
fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for el in path {
        if el == "." {
            continue;
        }
        if let Some(f) = el.strip_prefix("f:") {
            cur = cur.get(f)?;
        } else if let Some(k) = el.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).ok()?;
            cur = cur
                .as_array()?
                .iter()
                .find(|i| key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)))?;
        } else {
            return None;
        }
    }
    Some(cur)
}

fn remove_at(obj: &mut Value, path: &[String]) {
    let (path, _) = match path.last().map(String::as_str) {
        Some(".") => (&path[..path.len() - 1], true),
        _ => (path, false),
    };
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for el in parent {
        let next = if let Some(f) = el.strip_prefix("f:") {
            cur.get_mut(f)
        } else if let Some(k) = el.strip_prefix("k:") {
            let Ok(key) = serde_json::from_str::<Map<String, Value>>(k) else {
                return;
            };
            cur.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|i| key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)))
            })
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:")
        && let (Ok(key), Some(a)) = (serde_json::from_str::<Map<String, Value>>(k), cur.as_array_mut())
    {
        a.retain(|i| !key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)));
    }
}

/// Renders a field path the way conflict messages do: `.spec.containers[name="a"].image`.
pub fn render_path(path: &[String]) -> String {
    let mut s = String::new();
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let inner = key
                .iter()
                .map(|(a, b)| format!("{a}={b}"))
                .collect::<Vec<_>>()
                .join(",");
            s.push_str(&format!("[{inner}]"));
        }
    }
    s
}

fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = json!({});
    for path in set {
        let mut cur = &mut root;
        for el in path {
            if cur.get(el).is_none() {
                cur[el.as_str()] = json!({});
            }
            cur = &mut cur[el.as_str()];
        }
    }
    root
}

fn from_fields_v1(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
    match v.as_object() {
        Some(m) if !m.is_empty() => {
            for (k, cv) in m {
                path.push(k.clone());
                from_fields_v1(cv, path, out);
                path.pop();
            }
        }
        _ => {
            if !path.is_empty() {
                out.insert(path.clone());
            }
        }
    }
}

fn read_entries(obj: Option<&Value>) -> Vec<Entry> {
    let Some(list) = obj
        .and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let mut fields = FieldSet::new();
            if let Some(f) = e.get("fieldsV1") {
                from_fields_v1(f, &mut Vec::new(), &mut fields);
            }
            Entry {
                manager: e["manager"].as_str().unwrap_or_default().to_string(),
                operation: e["operation"].as_str().unwrap_or("Update").to_string(),
                api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
                subresource: e.get("subresource").and_then(Value::as_str).map(String::from),
                fields,
            }
        })
        .collect()
}

fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let time = now();
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = Value::String(s.clone());
            }
            v
        })
        .collect();
    let m = meta_mut(obj);
    if list.is_empty() {
        m.remove("managedFields");
    } else {
        m.insert("managedFields".into(), Value::Array(list));
    }
}

fn subresource(endpoint: Endpoint) -> Option<String> {
    (endpoint == Endpoint::Status).then(|| "status".to_string())
}

/// Records a non-apply write by `manager`: it now owns every field it changed.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    endpoint: Endpoint,
) {
    let mut entries = read_entries(old);
    let new_fields = fields_of(new, endpoint);
    let changed: FieldSet = new_fields
        .iter()
        .filter(|p| old.is_none_or(|o| value_at(o, p) != value_at(new, p)))
        .cloned()
        .collect();
    let sub = subresource(endpoint);
    for e in entries.iter_mut() {
        // Fields that no longer exist are owned by nobody.
        e.fields.retain(|p| value_at(new, p).is_some());
        if !(e.manager == manager && e.operation == "Update" && e.subresource == sub) {
            e.fields.retain(|p| !changed.contains(p));
        }
    }
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.manager == manager && e.operation == "Update" && e.subresource == sub)
        {
            Some(e) => e.fields.extend(changed),
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.to_string(),
                subresource: sub,
                fields: changed,
            }),
        }
    }
    write_entries(new, &entries);
}

/// Merges an applied configuration into an object: maps recursively, associative lists by key,
/// everything else replaced. `null` removes a field.
pub fn merge(dst: &mut Value, src: &Value, field: &str) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            for (k, v) in s {
                if v.is_null() {
                    d.remove(k);
                } else if let Some(dv) = d.get_mut(k) {
                    merge(dv, v, k);
                } else {
                    d.insert(k.clone(), v.clone());
                }
            }
        }
        (Value::Array(d), Value::Array(s)) if list_keys(field, s).is_some() => {
            let keys = list_keys(field, s).unwrap_or_default();
            let mut out = Vec::new();
            // The applied order wins for applied items; items only in the object keep their place after.
            for item in s {
                let k = item_key(&keys, item);
                match d.iter().position(|x| item_key(&keys, x) == k) {
                    Some(i) => {
                        let mut x = d.remove(i);
                        merge(&mut x, item, "");
                        out.push(x);
                    }
                    None => out.push(item.clone()),
                }
            }
            out.append(d);
            *d = out;
        }
        (d, s) => *d = s.clone(),
    }
}

/// Applies `applied` for `manager`. Returns the new object with managed fields, or the
/// conflicts as `(manager, path)` pairs.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    endpoint: Endpoint,
) -> Result<Value, Vec<(String, String)>> {
    let mut entries = read_entries(live);
    let applied_fields = fields_of(applied, endpoint);
    let sub = subresource(endpoint);
    let mut conflicts = Vec::new();
    let empty = json!({});
    let live_v = live.unwrap_or(&empty);
    for e in entries.iter_mut() {
        if e.manager == manager && e.operation == "Apply" && e.subresource == sub {
            continue;
        }
        let overlapping: Vec<FieldPath> = e
            .fields
            .intersection(&applied_fields)
            .filter(|p| p.last().map(String::as_str) != Some("."))
            .filter(|p| value_at(live_v, p) != value_at(applied, p))
            .cloned()
            .collect();
        for p in overlapping {
            if force || e.manager == manager {
                e.fields.remove(&p);
            } else {
                conflicts.push((e.manager.clone(), render_path(&p)));
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let mut new = live.cloned().unwrap_or_else(|| json!({}));
    let mut src = applied.clone();
    if endpoint == Endpoint::Status {
        src = json!({"status": applied.get("status").cloned().unwrap_or(json!({}))});
    } else if let Some(m) = src.as_object_mut() {
        m.remove("status");
    }
    merge(&mut new, &src, "");
    let prev: FieldSet = entries
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply" && e.subresource == sub)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for p in prev.difference(&applied_fields) {
        let owned_elsewhere = entries.iter().any(|e| {
            !(e.manager == manager && e.operation == "Apply" && e.subresource == sub) && e.fields.contains(p)
        });
        if !owned_elsewhere {
            remove_at(&mut new, p);
        }
    }
    entries.retain(|e| !(e.manager == manager && e.operation == "Apply" && e.subresource == sub));
    entries.push(Entry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: api_version.to_string(),
        subresource: sub,
        fields: applied_fields,
    });
    write_entries(&mut new, &entries);
    Ok(new)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn apply_conflict_force_and_removal() {
        let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1", "b": "2"}});
        let live = apply(None, &a, "alice", false, "v1", Endpoint::Main).expect("first apply");
        assert_eq!(live["data"], json!({"a": "1", "b": "2"}));
        let b =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "9"}});
        let err = apply(Some(&live), &b, "bob", false, "v1", Endpoint::Main).expect_err("conflict");
        assert_eq!(err, vec![("alice".to_string(), ".data.a".to_string())]);
        let live = apply(Some(&live), &b, "bob", true, "v1", Endpoint::Main).expect("forced");
        assert_eq!(live["data"]["a"], "9");
        // alice stops sending b: it is removed; a now belongs to bob and stays.
        let a2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}});
        let live = apply(Some(&live), &a2, "alice", false, "v1", Endpoint::Main).expect("apply");
        assert_eq!(live["data"], json!({"a": "9"}));
    }
}
