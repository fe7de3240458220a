//! What the stage cache reads of a client's request: `Cache-Control` values (does it ask to
//! invalidate?) and the query string values that go into the cache key. Never a panic; two
//! different value lists never make the same key (see `turnpike_proxy::fuzzing`).
//!
//! Input: the query string on the first line, `Cache-Control` values on the others.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| turnpike_proxy::fuzzing::cache_request(data));
