//! An entry of the stage cache's shared tier, as read back from Redis: decoded strictly (a
//! Redis value is not trusted more than a request), never a panic, and what decodes encodes
//! back to the same entry (see `turnpike_proxy::fuzzing`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| turnpike_proxy::fuzzing::cache_entry(data));
