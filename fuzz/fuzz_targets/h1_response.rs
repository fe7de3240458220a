//! A backend's answer head as the HTTP/1.1 client reads it (1xx skipped, reserved names
//! remapped, framing decided). The first byte: bit 0 set when the request was a HEAD.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| turnpike_proxy::fuzzing::response(data));
