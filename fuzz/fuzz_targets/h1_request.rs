//! A client's byte stream as the HTTP/1.1 server reads it: request heads (httparse, then the
//! framing rules), bodies by their framing, pipelined requests, and each target's path through
//! normalisation. See `turnpike_proxy::fuzzing::requests` for the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| turnpike_proxy::fuzzing::requests(data));
