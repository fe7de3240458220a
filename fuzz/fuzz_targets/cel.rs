//! The CEL subset of the embedded API server. Input: the rule, then optionally `\n` and a JSON
//! document `{"self": ..., "oldSelf": ...}` for the variables (`self` is `{}` without one).
#![no_main]

use serde_json::Value;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (rule, vars) = text.split_once('\n').unwrap_or((text, ""));
    let vars: Value = serde_json::from_str(vars).unwrap_or(Value::Null);
    let empty = Value::Object(Default::default());
    let this = vars.get("self").unwrap_or(&empty);
    let old = vars.get("oldSelf");
    let _ = turnpike_apiserver::fuzzing::cel(rule, this, old);
});
