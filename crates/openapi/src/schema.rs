//! Model schemas: the one place their `$ref`s are rewritten, between the document's form
//! (`#/definitions/NAME`, `#/components/schemas/NAME`) and the spec's (`#/models/NAME`).

use serde_json::Value;

/// Rewrites every `$ref` string of `schema` that `rewrite` maps; leaves the others.
pub(crate) fn rewrite_refs(mut schema: Value, rewrite: &impl Fn(&str) -> Option<String>) -> Value {
    fn walk(v: &mut Value, rewrite: &impl Fn(&str) -> Option<String>) {
        match v {
            Value::Object(o) => {
                for (k, child) in o.iter_mut() {
                    if k == "$ref"
                        && let Value::String(r) = child
                    {
                        if let Some(new) = rewrite(r) {
                            *r = new;
                        }
                    } else {
                        walk(child, rewrite);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, rewrite)),
            _ => {}
        }
    }
    walk(&mut schema, rewrite);
    schema
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rewrites_nested_refs_only() {
        let schema = json!({"properties": {"a": {"$ref": "#/x/A"}, "b": {"items": [{"$ref": "#/y/B"}]}}});
        let out = rewrite_refs(schema, &|r: &str| {
            r.strip_prefix("#/x/").map(|n| format!("#/models/{n}"))
        });
        assert_eq!(
            out,
            json!({"properties": {"a": {"$ref": "#/models/A"}, "b": {"items": [{"$ref": "#/y/B"}]}}})
        );
    }
}
