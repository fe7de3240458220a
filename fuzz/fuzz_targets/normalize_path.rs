//! Path normalisation: a path that passes is absolute, has no empty segment, and passes again
//! unchanged.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(path) = std::str::from_utf8(data) {
        turnpike_proxy::fuzzing::path(path);
    }
});
