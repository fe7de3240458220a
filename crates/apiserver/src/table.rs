//! `meta.k8s.io/v1` Table responses (what `kubectl get` prints), with printer columns
//! evaluated by a small JSONPath evaluator covering the forms CRDs use: `.a.b`, `.a[0]`,
//! `.a[*].b` and filters like `.status.conditions[?(@.type=="Ready")].status`.

use serde_json::{Value, json};

use super::registry::ResourceType;

/// The columns of a type: Name plus the CRD's printer columns (or Age).
pub fn columns(rt: &ResourceType) -> Vec<Value> {
    let mut cols = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    let printer = rt
        .crd
        .as_ref()
        .map(|c| c.printer_columns.clone())
        .unwrap_or_default();
    if printer.is_empty() {
        cols.push(json!({"name": "Age", "type": "date", "format": "", "description": "CreationTimestamp", "priority": 0}));
    }
    for c in printer {
        cols.push(json!({
            "name": c["name"],
            "type": c.get("type").cloned().unwrap_or(json!("string")),
            "format": c.get("format").cloned().unwrap_or(json!("")),
            "description": c.get("description").cloned().unwrap_or(json!("")),
            "priority": c.get("priority").cloned().unwrap_or(json!(0)),
        }));
    }
    cols
}

/// Formats the time since an RFC 3339 timestamp the way kubectl's AGE column does.
pub fn age(ts: &str) -> String {
    let Ok(t) = ts.parse::<k8s_openapi::jiff::Timestamp>() else {
        return "<invalid>".into();
    };
    let secs = (k8s_openapi::jiff::Timestamp::now().as_second() - t.as_second()).max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 && s % 60 != 0 => format!("{m}m{}s", s % 60),
        s if s < 3 * 3600 => format!("{m}m"),
        s if s < 8 * 3600 && m % 60 != 0 => format!("{h}h{}m", m % 60),
        s if s < 48 * 3600 => format!("{h}h"),
        s if s < 8 * 86400 && h % 24 != 0 => format!("{d}d{}h", h % 24),
        s if s < 730 * 86400 => format!("{d}d"),
        _ => format!("{}y", d / 365),
    }
}

fn column_types(rt: &ResourceType) -> Vec<String> {
    columns(rt)
        .iter()
        .skip(1)
        .map(|c| c["type"].as_str().unwrap_or("string").to_string())
        .collect()
}

fn json_paths(rt: &ResourceType) -> Vec<Option<String>> {
    let printer = rt
        .crd
        .as_ref()
        .map(|c| c.printer_columns.clone())
        .unwrap_or_default();
    if printer.is_empty() {
        return vec![Some(".metadata.creationTimestamp".into())];
    }
    printer
        .iter()
        .map(|c| c["jsonPath"].as_str().map(String::from))
        .collect()
}

/// One row for an object. `include` is `None`, `Metadata` (default) or `Object`.
pub fn row(rt: &ResourceType, obj: &Value, include: &str) -> Value {
    let mut cells = vec![obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
    for (path, ty) in json_paths(rt).into_iter().zip(column_types(rt)) {
        let vals = path.map(|p| eval(obj, &p)).unwrap_or_default();
        let cell = match vals.len() {
            0 => Value::Null,
            1 if ty == "date" => vals[0]
                .as_str()
                .map(|t| Value::String(age(t)))
                .unwrap_or(Value::Null),
            1 => vals[0].clone(),
            _ => Value::String(vals.iter().map(plain).collect::<Vec<_>>().join(",")),
        };
        cells.push(cell);
    }
    let object = match include {
        "None" => Value::Null,
        "Object" => obj.clone(),
        _ => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
        }),
    };
    json!({"cells": cells, "object": object})
}

/// A Table of objects.
pub fn table(
    rt: &ResourceType,
    objs: &[&Value],
    rv: u64,
    cont: Option<String>,
    include: &str,
    with_columns: bool,
) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = Value::String(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": if with_columns { Value::Array(columns(rt)) } else { Value::Null },
        "rows": objs.iter().map(|o| row(rt, o, include)).collect::<Vec<_>>(),
    })
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[derive(Debug)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter(String, String),
}

fn parse(path: &str) -> Vec<Step> {
    let p = path.trim().trim_start_matches('{').trim_end_matches('}');
    let b = p.as_bytes();
    let mut i = 0;
    let mut steps = Vec::new();
    while i < b.len() {
        match b[i] {
            b'.' => {
                i += 1;
                let st = i;
                while i < b.len() && b[i] != b'.' && b[i] != b'[' {
                    i += 1;
                }
                if i > st {
                    steps.push(Step::Field(p[st..i].to_string()));
                }
            }
            b'[' => {
                let end = p[i..].find(']').map(|e| e + i).unwrap_or(b.len());
                // A filter may contain ']' only inside quotes, which our CRDs never need.
                let inner = &p[i + 1..end];
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Some(f) = inner.strip_prefix("?(").and_then(|x| x.strip_suffix(')')) {
                    if let Some((lhs, rhs)) = f.split_once("==") {
                        let field = lhs.trim().trim_start_matches("@.").to_string();
                        let val = rhs.trim().trim_matches('"').trim_matches('\'').to_string();
                        steps.push(Step::Filter(field, val));
                    }
                } else if let Ok(n) = inner.parse() {
                    steps.push(Step::Index(n));
                }
                i = end + 1;
            }
            _ => {
                let st = i;
                while i < b.len() && b[i] != b'.' && b[i] != b'[' {
                    i += 1;
                }
                steps.push(Step::Field(p[st..i].to_string()));
            }
        }
    }
    steps
}

/// Evaluates a simple JSONPath; returns every match.
pub fn eval(obj: &Value, path: &str) -> Vec<Value> {
    let mut cur = vec![obj.clone()];
    for step in parse(path) {
        let mut next = Vec::new();
        for v in cur {
            match &step {
                Step::Field(f) => next.extend(v.get(f).cloned()),
                Step::Index(n) => next.extend(v.get(*n).cloned()),
                Step::All => next.extend(v.as_array().cloned().unwrap_or_default()),
                Step::Filter(field, want) => next.extend(
                    v.as_array()
                        .into_iter()
                        .flatten()
                        .filter(|item| {
                            let ptr = format!("/{}", field.replace('.', "/"));
                            item.pointer(&ptr).map(plain).as_deref() == Some(want.as_str())
                        })
                        .cloned(),
                ),
            }
        }
        cur = next;
    }
    cur
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn jsonpath_forms() {
        let o = json!({"spec": {"types": ["EDGE"]}, "status": {"conditions": [
            {"type": "Accepted", "status": "True"}, {"type": "Ready", "status": "False"}]}});
        assert_eq!(
            eval(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![json!("False")]
        );
        assert_eq!(eval(&o, ".spec.types[0]"), vec![json!("EDGE")]);
        assert_eq!(eval(&o, ".status.conditions[*].type").len(), 2);
        assert!(eval(&o, ".status.apiId").is_empty());
    }
}
