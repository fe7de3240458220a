//! The 1 KiB JSON order the validation benchmarks send (`benches/proxy/validation.sh`, and
//! `crates/core/benches/validation.rs` for the parts): valid against their `Order` model.

/// A 1024-byte order the `Order` model accepts: twelve items, padded with `note`.
pub fn validated_body() -> String {
    let items: Vec<String> = (0..12)
        .map(|i| format!(r#"{{"sku":"sku-{i:04}","qty":{},"price":{}.5}}"#, i + 1, i * 3))
        .collect();
    let head = format!(
        r#"{{"id":"order-20261202-0001","customer":{{"name":"Ann Example","email":"ann@example.com"}},"items":[{}],"total":1234.5,"note":""#,
        items.join(",")
    );
    let pad = 1024usize.saturating_sub(head.len() + 2);
    format!("{head}{}\"}}", "x".repeat(pad))
}
