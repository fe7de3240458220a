//! The `@connections` relay between replicas: an envelope read from Redis never panics, and
//! what is read encodes back the same.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    turnpike_proxy::fuzzing::relay_envelope(data);
});
