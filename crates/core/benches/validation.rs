//! Request body validation, the parts: parsing a 1 KiB JSON body, and validating the parsed
//! body against the model of `benches/proxy/validation.sh` (nested objects, an array of
//! `$ref`'d items, patterns, bounds).
//!
//! Run: `cargo bench -p turnpike-core --bench validation`.

#[path = "../../../benches/support/order.rs"]
mod order;

use std::collections::BTreeMap;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use turnpike_core::model::compile_models;

fn models() -> BTreeMap<String, Value> {
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

fn validation(c: &mut Criterion) {
    let compiled = compile_models(&models());
    let Some(Ok(order)) = compiled.get("Order") else {
        panic!("the Order model compiles");
    };
    let body = order::validated_body().into_bytes();
    assert_eq!(body.len(), 1024);
    c.bench_function("parse 1 KiB JSON into a Value", |b| {
        b.iter(|| serde_json::from_slice::<Value>(std::hint::black_box(&body)))
    });
    c.bench_function("validate 1 KiB JSON (parse + schema)", |b| {
        b.iter(|| order.validate(std::hint::black_box(&body)))
    });
}

criterion_group!(benches, validation);
criterion_main!(benches);
