//! Patches: JSON merge patch (RFC 7386) and JSON patch (RFC 6902) through the `json-patch`
//! crate, and strategic merge patch for the built-in kinds with a table of merge keys.

use serde_json::{Map, Value};

use super::{
    errors::{Result, StatusError},
    ssa::list_keys,
};

/// The patch formats the server reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

// === impl PatchType ===

impl PatchType {
    /// The patch type of a Content-Type header.
    pub fn from_content_type(ct: &str) -> Result<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml"
            | "application/apply-patch+json"
            | "application/apply-patch+cbor" => Ok(Self::Apply),
            _ => Err(StatusError::unsupported_media_type(ct)),
        }
    }
}

/// Applies a JSON merge patch.
pub fn merge_patch(doc: &Value, patch: &Value) -> Value {
    let mut out = doc.clone();
    json_patch::merge(&mut out, patch);
    out
}

/// Applies a JSON patch; a failed `test` or a bad path is a 422 like the real server's.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value> {
    let p: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| {
        StatusError::bad_request(format!(
            "the server rejected our request due to an error in our request: {e}"
        ))
    })?;
    let mut out = doc.clone();
    json_patch::patch(&mut out, &p).map_err(|e| StatusError {
        code: 422,
        reason: "Invalid",
        message: format!("the server rejected our request due to an error in our request: {e}"),
        details: None,
    })?;
    Ok(out)
}

/// Applies a strategic merge patch (for built-in kinds).
pub fn strategic(doc: &Value, patch: &Value) -> Result<Value> {
    let mut out = doc.clone();
    smp(&mut out, patch, "")?;
    Ok(out)
}

fn smp(dst: &mut Value, patch: &Value, field: &str) -> Result<()> {
    let (Value::Object(d), Value::Object(p)) = (&mut *dst, patch) else {
        *dst = strip_directives(patch);
        return Ok(());
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut p = p.clone();
            p.remove("$patch");
            *dst = strip_directives(&Value::Object(p));
            return Ok(());
        }
        Some("delete") => {
            *dst = Value::Object(Map::new());
            return Ok(());
        }
        _ => {}
    }
    if let Some(retain) = p.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        d.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in p {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(target) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(del)) = (d.get_mut(target), v.as_array()) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if v.is_null() {
            d.remove(k);
            continue;
        }
        match (d.get_mut(k), v) {
            (Some(Value::Array(cur)), Value::Array(items)) => merge_list(cur, items, k)?,
            (Some(cur @ Value::Object(_)), Value::Object(_)) => smp(cur, v, k)?,
            _ => {
                let mut fresh = if v.is_object() {
                    Value::Object(Map::new())
                } else {
                    Value::Null
                };
                if v.is_object() {
                    smp(&mut fresh, v, k)?;
                } else if let Value::Array(items) = v {
                    let mut list = Vec::new();
                    merge_list(&mut list, items, k)?;
                    fresh = Value::Array(list);
                } else {
                    fresh = v.clone();
                }
                d.insert(k.clone(), fresh);
            }
        }
    }
    let _ = field;
    Ok(())
}

fn merge_list(cur: &mut Vec<Value>, items: &[Value], field: &str) -> Result<()> {
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *cur = items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .map(strip_directives)
            .collect();
        return Ok(());
    }
    let concrete: Vec<Value> = items
        .iter()
        .filter(|i| i.get("$patch").is_none())
        .cloned()
        .collect();
    let probe: Vec<Value> = if concrete.is_empty() {
        items.to_vec()
    } else {
        concrete
    };
    let key = list_keys(field, &probe)
        .or_else(|| list_keys(field, cur))
        .map(|k| k[0]);
    let Some(key) = key else {
        *cur = items.iter().map(strip_directives).collect();
        return Ok(());
    };
    for item in items {
        let kv = item.get(key).cloned();
        let pos = cur
            .iter()
            .position(|c| c.get(key).is_some() && c.get(key).cloned() == kv);
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(i) = pos {
                cur.remove(i);
            }
            continue;
        }
        match pos {
            Some(i) => smp(&mut cur[i], item, "")?,
            None => cur.push(strip_directives(item)),
        }
    }
    Ok(())
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn strategic_merges_containers_by_name() {
        let doc = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
                           {"name": "b", "$patch": "delete"}]}}}});
        let out = strategic(&doc, &patch).expect("patch");
        let cs = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs.as_array().map(Vec::len), Some(1));
        assert_eq!(cs[0]["image"], "a:2");
        assert_eq!(cs[0]["env"].as_array().map(Vec::len), Some(2));
    }
}
