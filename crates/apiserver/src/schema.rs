//! Structural-schema handling for custom resources, as the real server does it: defaulting,
//! pruning of unknown fields, and validation (types, enums, patterns, bounds, required,
//! `x-kubernetes-validations`), with errors worded like kube-openapi's.

use serde_json::{Map, Value};

use super::{
    cel,
    errors::{Cause, render_value},
};

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

/// Applies `default`s and removes fields the schema does not declare. Returns the paths of
/// the removed fields (for `fieldValidation=Strict/Warn`). `apiVersion`, `kind` and
/// `metadata` at the root are always kept.
pub fn default_and_prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    if let Some(m) = obj.as_object_mut() {
        let props = schema.get("properties").and_then(Value::as_object);
        let keys: Vec<String> = m.keys().cloned().collect();
        for k in keys {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match props.and_then(|p| p.get(&k)) {
                Some(s) => {
                    if let Some(v) = m.get_mut(&k) {
                        walk(s, v, &k, &mut unknown);
                    }
                }
                None if preserves_unknown(schema) => {}
                None => {
                    m.remove(&k);
                    unknown.push(k);
                }
            }
        }
        apply_defaults(schema, m, "", &mut unknown);
    }
    unknown
}

fn apply_defaults(schema: &Value, m: &mut Map<String, Value>, path: &str, unknown: &mut Vec<String>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (k, s) in props {
        if m.contains_key(k) {
            continue;
        }
        if let Some(d) = s.get("default") {
            let mut v = d.clone();
            walk(s, &mut v, &child_path(path, k), unknown);
            m.insert(k.clone(), v);
        }
    }
}

fn walk(schema: &Value, v: &mut Value, path: &str, unknown: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let sub = props.and_then(|p| p.get(&k)).or(match additional {
                    Some(Value::Object(_)) => additional,
                    _ => None,
                });
                match sub {
                    Some(s) => {
                        if let Some(cv) = m.get_mut(&k) {
                            walk(s, cv, &child_path(path, &k), unknown);
                        }
                    }
                    None if preserves_unknown(schema) || additional == Some(&Value::Bool(true)) => {}
                    None if props.is_none()
                        && schema.get("type").and_then(Value::as_str) != Some("object") => {}
                    None => {
                        m.remove(&k);
                        unknown.push(child_path(path, &k));
                    }
                }
            }
            apply_defaults(schema, m, path, unknown);
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(s, item, &format!("{path}[{i}]"), unknown);
                }
            }
        }
        _ => {}
    }
}

/// Validates `obj` against `schema`; `old` enables transition rules. The root's
/// `apiVersion`/`kind`/`metadata` are not validated here.
pub fn validate(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut root_schema = schema.clone();
    if let Some(p) = root_schema.get_mut("properties").and_then(Value::as_object_mut) {
        p.remove("metadata");
        p.remove("apiVersion");
        p.remove("kind");
    }
    let mut root = obj.clone();
    if let Some(m) = root.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
    }
    let old_root = old.map(|o| {
        let mut o = o.clone();
        if let Some(m) = o.as_object_mut() {
            m.remove("metadata");
        }
        o
    });
    check(&root_schema, &root, old_root.as_ref(), "", &mut causes);
    causes
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => true,
    }
}

fn fmt_num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "<root>".into()
    } else {
        path.to_string()
    }
}

fn check(schema: &Value, v: &Value, old: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let p = display_path(path);
    if v.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true)
            && let Some(ty) = schema.get("type").and_then(Value::as_str)
        {
            causes.push(Cause {
                reason: "FieldValueTypeInvalid",
                field: p.clone(),
                message: format!("Invalid value: \"null\": {p} in body must be of type {ty}: \"null\""),
            });
        }
        return;
    }
    let int_or_string = schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        let ok = if int_or_string {
            v.is_string() || type_ok("integer", v)
        } else {
            type_ok(ty, v)
        };
        if !ok {
            let actual = type_name(v);
            causes.push(Cause {
                reason: "FieldValueTypeInvalid",
                field: p.clone(),
                message: format!(
                    "Invalid value: \"{actual}\": {p} in body must be of type {ty}: \"{actual}\""
                ),
            });
            return;
        }
    }
    if let Some(en) = schema.get("enum").and_then(Value::as_array)
        && !en.contains(v)
    {
        let list = en.iter().map(render_value).collect::<Vec<_>>().join(", ");
        causes.push(Cause {
            reason: "FieldValueNotSupported",
            field: p.clone(),
            message: format!("Unsupported value: {}: supported values: {list}", render_value(v)),
        });
    }
    if let Some(f) = v.as_f64() {
        let excl_max = schema.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
        let excl_min = schema.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && (f > max || (excl_max && f == max))
        {
            let rel = if excl_max {
                "less than"
            } else {
                "less than or equal to"
            };
            causes.push(Cause::invalid(
                &p,
                v,
                &format!("{p} in body should be {rel} {}", fmt_num(max)),
            ));
        }
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && (f < min || (excl_min && f == min))
        {
            let rel = if excl_min {
                "greater than"
            } else {
                "greater than or equal to"
            };
            causes.push(Cause::invalid(
                &p,
                v,
                &format!("{p} in body should be {rel} {}", fmt_num(min)),
            ));
        }
    }
    if let Some(s) = v.as_str() {
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && s.chars().count() as u64 > max
        {
            causes.push(Cause {
                reason: "FieldValueTooLong",
                field: p.clone(),
                message: format!("Too long: may not be more than {max} bytes"),
            });
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && (s.chars().count() as u64) < min
        {
            causes.push(Cause::invalid(
                &p,
                v,
                &format!("{p} in body should be at least {min} chars long"),
            ));
        }
        if let Some(pat) = schema.get("pattern").and_then(Value::as_str)
            && let Ok(re) = regex::Regex::new(pat)
            && !re.is_match(s)
        {
            causes.push(Cause::invalid(
                &p,
                v,
                &format!("{p} in body should match '{pat}'"),
            ));
        }
    }
    if let Some(items) = v.as_array() {
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && items.len() as u64 > max
        {
            causes.push(Cause {
                reason: "FieldValueTooMany",
                field: p.clone(),
                message: format!("Too many: {}: must have at most {max} items", items.len()),
            });
        }
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            causes.push(Cause::invalid(
                &p,
                &serde_json::json!(items.len()),
                &format!("{p} in body should have at least {min} items"),
            ));
        }
        if let Some(s) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(s, item, None, &format!("{path}[{i}]"), causes);
            }
        }
    }
    if let Some(m) = v.as_object() {
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(r) = r.as_str()
                && !m.contains_key(r)
            {
                causes.push(Cause::required(&child_path(path, r)));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, cv) in m {
            let old_child = old.and_then(|o| o.get(k));
            if let Some(s) = props.and_then(|p| p.get(k)) {
                check(s, cv, old_child, &child_path(path, k), causes);
            } else if let Some(s @ Value::Object(_)) = schema.get("additionalProperties") {
                check(s, cv, old_child, &format!("{}[{k}]", display_path(path)), causes);
            }
        }
    }
    for rule in schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(expr) = rule.get("rule").and_then(Value::as_str) else {
            continue;
        };
        if cel::is_transition_rule(expr) && old.is_none() {
            continue;
        }
        let scope = cel::Scope { this: v, old };
        let msg = match cel::eval_rule(expr, &scope) {
            Ok(true) => continue,
            Ok(false) => rule
                .get("message")
                .and_then(Value::as_str)
                .map(String::from)
                .unwrap_or_else(|| format!("failed rule: {expr}")),
            Err(e) => format!("failed rule: {expr}: {e}"),
        };
        let field = rule
            .get("fieldPath")
            .and_then(Value::as_str)
            .map(|f| format!("{p}{f}"))
            .unwrap_or(p.clone());
        causes.push(Cause::invalid(&field, v, &msg));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_prunes_and_bounds() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "percentTraffic": {"type": "number", "maximum": 100.0, "minimum": 0.0, "default": 0.0},
            "kind": {"type": "string", "enum": ["A", "B"]}}}}});
        let mut obj =
            json!({"apiVersion": "x/v1", "kind": "K", "metadata": {}, "spec": {"junk": 1}, "extra": 2});
        let unknown = default_and_prune(&schema, &mut obj);
        assert_eq!(unknown, vec!["extra".to_string(), "spec.junk".to_string()]);
        assert_eq!(obj["spec"]["percentTraffic"], json!(0.0));
        obj["spec"]["percentTraffic"] = json!(150);
        obj["spec"]["kind"] = json!("C");
        let causes = validate(&schema, &obj, None);
        assert_eq!(causes[1].field, "spec.percentTraffic");
        assert_eq!(
            causes[0].message,
            "Unsupported value: \"C\": supported values: \"A\", \"B\"".to_string()
        );
        assert_eq!(
            causes[1].message,
            "Invalid value: 150: spec.percentTraffic in body should be less than or equal to 100"
        );
    }
}
