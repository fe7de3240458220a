//! Mapping templates: any text parses or is refused with a line and column; what parses
//! renders against a payload (the rest of the input) within the limits, or fails with an
//! error. Neither may panic, hang or grow without bound.
//!
//! Input: the template, a NUL byte, then the payload.
#![no_main]

use turnpike_core::template::{Limits, Map, Request, Template, Value};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (template, payload) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let (Ok(template), payload) = (std::str::from_utf8(template), String::from_utf8_lossy(payload)) else {
        return;
    };
    let Ok(template) = Template::parse(template) else {
        return;
    };
    let params = Request::params_of([("id", "1")], [("q", "a b")], [("Accept", "application/json")]);
    let context = Map(vec![("requestId".into(), Value::str("r"))]);
    let stage_variables = Map::of_strings([("v", "x")]);
    let request = Request {
        body: &payload,
        params: &params,
        context: &context,
        stage_variables: &stage_variables,
    };
    // Small bounds, so the fuzzer explores more inputs per second.
    let limits = Limits {
        max_iterations: 100,
        max_output: 64 * 1024,
        max_steps: 20_000,
    };
    if let Ok(out) = template.render(request, &limits) {
        assert!(out.body.len() <= limits.max_output);
    }
});
