//! The text the gateway parses around a request's body and answer: gateway response templates
//! (mapping templates: any text parses or is refused with its line and column; what parses
//! renders against a gateway answer's `$context`, within the limits), request models (any
//! JSON object of schemas compiles or is refused, and a compiled model validates any body),
//! `Accept-Encoding` negotiation, binary media ranges and CORS origin patterns. None may panic.
//!
//! Input: a selector byte, then the text.
#![no_main]

use std::collections::BTreeMap;

use turnpike_core::model::{BinaryMediaTypes, OriginPattern, compile_models, is_media_range};
use turnpike_core::template::{Limits, Map, Request, Template, Value};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match selector % 4 {
        0 => template(text),
        1 => models(text),
        2 => {
            let _ = turnpike_proxy::compress::negotiate(text);
            let (range, media_type) = text.split_once('\n').unwrap_or((text, text));
            let types = BinaryMediaTypes(vec![range.to_ascii_lowercase()]);
            if is_media_range(&types.0[0]) {
                let _ = types.matches(media_type);
            }
        }
        _ => {
            let (pattern, origin) = text.split_once('\n').unwrap_or((text, text));
            if let Ok(p) = OriginPattern::parse(pattern) {
                let _ = p.matches(origin);
            }
        }
    }
});

/// A template that parses renders, as a gateway response's does: over an empty payload, with
/// `$context.error.*`.
fn template(text: &str) {
    let Ok(t) = Template::parse(text) else {
        return;
    };
    let mut context = Map::default();
    let error = context.child_map("error");
    error.insert("message".into(), Value::str("Forbidden"));
    error.insert("messageString".into(), Value::str("\"Forbidden\""));
    error.insert("responseType".into(), Value::str("INVALID_API_KEY"));
    let limits = Limits {
        max_steps: 100_000,
        max_output: 1 << 20,
        ..Limits::default()
    };
    let _ = t.render(
        Request {
            body: "",
            params: &Request::params_of([("id", "1")], [("q", "x")], [("accept", "*/*")]),
            context: &Value::Map(context),
            stage_variables: &Map::of_strings([("team", "blue")]),
        },
        &limits,
    );
}

/// The first line is a JSON object of schemas by model name; the rest is a body to validate
/// against each model that compiled.
fn models(text: &str) {
    let (schemas, body) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(schemas) else {
        return;
    };
    let schemas: BTreeMap<String, serde_json::Value> = map.into_iter().collect();
    for model in compile_models(&schemas).into_values().flatten() {
        let _ = model.validate(body.as_bytes());
    }
}
