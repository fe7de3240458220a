//! The JSON tape templates read payloads through (`$input.path`, `$util.parseJson`): it
//! accepts exactly what `serde_json` accepts, builds the same values, and writes a value's
//! text straight from the payload exactly as it writes the built value. Nothing panics.
#![no_main]

use turnpike_core::template::{Value, tape};

/// Equal, but for the last bits of a float: `serde_json`'s default float parsing is not
/// always correctly rounded, the tape's is.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x == y || ((x - y).abs() <= x.abs().max(y.abs()) * 1e-15),
        (Value::List(x), Value::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Map(x), Value::Map(y)) => {
            x.0.len() == y.0.len() && x.0.iter().zip(&y.0).all(|((ka, a), (kb, b))| ka == kb && same(a, b))
        }
        (a, b) => a == b,
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lazy = tape::parse(text);
    if !text.trim_ascii().is_empty() {
        // The tape alone accepts what `serde_json` accepts (`parse` falls back on refusal).
        assert_eq!(tape::read(text).is_some(), lazy.is_ok(), "{text:?}");
    }
    let eager = if text.trim_ascii().is_empty() {
        Ok(Value::Map(Default::default()))
    } else {
        Value::parse_json(text).map_err(|e| e.to_string())
    };
    match (&lazy, &eager) {
        (Ok(l), Ok(e)) => {
            let built = l.clone().into_plain();
            assert!(same(&built, e), "{text:?}: tape {built:?}, serde_json {e:?}");
            // Written from the payload's text, or from the built value: the same text.
            assert_eq!(l.to_text(), built.to_text(), "{text:?}");
        }
        (Err(l), Err(e)) => assert_eq!(l, e),
        _ => panic!("{text:?}: tape {lazy:?}, serde_json {eager:?}"),
    }
});
