//! Mapping templates: any text parses or is refused with a line and column; what parses
//! renders against a payload (the rest of the input) within the limits, or fails with an
//! error. Neither may panic, hang or grow without bound. A template renders the same whether
//! `$foreach` comes from the loop's state or from its map, and whether `$context` is read in
//! place or from a copy; and whether a template of the common shape runs its program or the
//! evaluator walks it.
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
    let source = template;
    let Ok(template) = Template::parse(source) else {
        return;
    };
    let params = Request::params_of([("id", "1")], [("q", "a b")], [("Accept", "application/json")]);
    let context = Value::Map(Map(vec![("requestId".into(), Value::str("r"))]));
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
    let rendered = template.render(request, &limits);
    if let Ok(out) = &rendered {
        assert!(out.body.len() <= limits.max_output);
    }
    // A program renders what the evaluator renders, or gives up and lets it.
    if template.has_plan() {
        assert_eq!(rendered, template.render_evaluated(request, &limits), "{source:?}");
    }
    // `$foreach` read only entry by entry comes from the running loop's state; read whole, it
    // is a map. The same template made to read it whole (a line of its own in front, with
    // only a `#set`, which writes nothing) renders the same, when both stay within the limits.
    if !source.contains("fuzzForeachMap")
        && let Ok(mapped) = Template::parse(&format!("#set($fuzzForeachMap = $foreach)\n{source}"))
        && let (Ok(a), Ok(b)) = (&rendered, mapped.render(request, &limits))
    {
        assert_eq!(a.body, b.body, "{source:?}");
    }
    // A template that only reads `$context` reads the request's in place; one that may change
    // it reads a copy. The same template made to copy it (a line of its own in front: a `#set`
    // of it to a variable never set, which leaves it as it was and writes nothing) renders the
    // same.
    if !source.contains("fuzzContextCopy")
        && let Ok(copied) = Template::parse(&format!("#set($context = $fuzzContextCopy)\n{source}"))
        && let (Ok(a), Ok(b)) = (&rendered, copied.render(request, &limits))
    {
        assert_eq!(a.body, b.body, "{source:?}");
    }
});
