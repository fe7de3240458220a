//! The `Order` model of the validation benchmarks, as `compile_models` takes it: the same
//! schema `benches/proxy/server.rs` gives its validated route (nested objects, an array of
//! `$ref`'d items, patterns, bounds). The body of `order.rs` is valid against it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

pub fn models() -> BTreeMap<String, Value> {
    BTreeMap::from([
        (
            "Order".to_string(),
            json!({
                "type": "object",
                "required": ["id", "customer", "items", "total"],
                "properties": {
                    "id": {"type": "string", "pattern": "^[a-z0-9-]+$"},
                    "customer": {
                        "type": "object",
                        "required": ["name", "email"],
                        "properties": {
                            "name": {"type": "string", "maxLength": 100},
                            "email": {"type": "string", "pattern": "^[^@]+@[^@]+$"}
                        }
                    },
                    "items": {"type": "array", "minItems": 1, "maxItems": 50, "items": {"$ref": "#/models/Item"}},
                    "total": {"type": "number", "minimum": 0},
                    "note": {"type": "string"}
                }
            }),
        ),
        (
            "Item".to_string(),
            json!({
                "type": "object",
                "required": ["sku", "qty", "price"],
                "properties": {
                    "sku": {"type": "string"},
                    "qty": {"type": "integer", "minimum": 1},
                    "price": {"type": "number", "minimum": 0}
                }
            }),
        ),
    ])
}
