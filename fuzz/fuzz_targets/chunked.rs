//! The chunked decoder, fed at once and in pieces (the first byte sets the piece size): the
//! body and the verdict must not depend on how the bytes arrive.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| turnpike_proxy::fuzzing::chunked(data));
