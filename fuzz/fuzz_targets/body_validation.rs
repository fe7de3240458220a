//! Request body validation: the one-pass fast path never accepts a body the full validation
//! (serde_json, then the model's validator) refuses, and `validate` always answers as the full
//! validation does, error text included.
#![no_main]

use std::{collections::BTreeMap, sync::LazyLock};

use serde_json::json;
use turnpike_core::model::{Model, compile_models};

static MODELS: LazyLock<Vec<Model>> = LazyLock::new(|| {
    let schemas = BTreeMap::from([
        (
            "Order".to_string(),
            json!({
                "type": "object",
                "required": ["id", "items"],
                "properties": {
                    "id": {"type": "string", "pattern": "^[a-z0-9-]+$", "maxLength": 20},
                    "customer": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
                    "items": {"type": "array", "minItems": 1, "maxItems": 5, "items": {"$ref": "#/models/Item"}},
                    "total": {"type": "number", "minimum": 0},
                    "tags": {"type": ["array", "null"]},
                    "any": {}
                }
            }),
        ),
        (
            "Item".to_string(),
            json!({
                "type": "object",
                "required": ["qty"],
                "properties": {
                    "qty": {"type": "integer", "minimum": 1},
                    "price": {"type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 1e6},
                    "code": {"type": "string", "minLength": 2, "maxLength": 3, "pattern": "^[a-z\u{e9}]+$"},
                    "later": {"$ref": "#/models/Later"},
                    "sku": {"enum": ["a", "b", "\u{e9}"]},
                    "self": {"$ref": "#/models/Item"}
                }
            }),
        ),
        (
            "Later".to_string(),
            json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "number", "minimum": -2.5, "exclusiveMaximum": 1.5}),
        ),
        (
            "Draft4".to_string(),
            json!({
                "definitions": {"n": {"type": "integer"}},
                "type": "object",
                "properties": {"n": {"$ref": "#/definitions/n"}, "o": {"type": "object", "additionalProperties": false}}
            }),
        ),
    ]);
    compile_models(&schemas)
        .into_values()
        .filter_map(|m| m.ok().map(|m| (*m).clone()))
        .collect()
});

libfuzzer_sys::fuzz_target!(|body: &[u8]| {
    for model in MODELS.iter() {
        let slow = model.validate_slowly(body);
        if model.fast_path_accepts(body) {
            assert_eq!(slow, Ok(()), "the fast path accepted a body the model refuses");
        }
        assert_eq!(model.validate(body), slow);
    }
});
