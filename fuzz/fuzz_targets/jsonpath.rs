//! JSONPath (`$input.path`, `$input.json`): any path parses or is refused; a parsed path
//! selects from any JSON document without panicking.
//!
//! Input: the path, a newline, then the document.
#![no_main]

use turnpike_core::template::jsonpath::JsonPath;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, doc) = text.split_once('\n').unwrap_or((text, "{}"));
    let Ok(path) = JsonPath::parse(path) else {
        return;
    };
    if let Ok(doc) = serde_json::from_str::<serde_json::Value>(doc) {
        let found = path.select(&doc);
        if path.is_definite() {
            assert!(found.len() <= 1);
        }
    }
});
