//! Request body validation, the parts: parsing a 1 KiB JSON body, validating it the slow way
//! (parsed into a `Value`, then the model's validator) and the way the proxy does (the model's
//! one-pass fast path), against the model of `benches/proxy/validation.sh` (nested objects, an
//! array of `$ref`'d items, patterns, bounds).
//!
//! Run: `cargo bench -p turnpike-core --bench validation`.

#[path = "../../../benches/support/order.rs"]
mod order;
#[path = "../../../benches/support/order_model.rs"]
mod order_model;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;
use turnpike_core::model::compile_models;

fn validation(c: &mut Criterion) {
    let compiled = compile_models(&order_model::models());
    let Some(Ok(order)) = compiled.get("Order") else {
        panic!("the Order model compiles");
    };
    let body = order::validated_body().into_bytes();
    assert_eq!(body.len(), 1024);
    c.bench_function("parse 1 KiB JSON into a Value", |b| {
        b.iter(|| serde_json::from_slice::<Value>(std::hint::black_box(&body)))
    });
    assert!(order.fast_path_accepts(&body), "the body takes the fast path");
    c.bench_function("validate 1 KiB JSON (parse + schema)", |b| {
        b.iter(|| order.validate_slowly(std::hint::black_box(&body)))
    });
    c.bench_function("validate 1 KiB JSON (fast path)", |b| {
        b.iter(|| order.validate(std::hint::black_box(&body)))
    });
}

criterion_group!(benches, validation);
criterion_main!(benches);
