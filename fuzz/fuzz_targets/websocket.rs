//! WebSocket APIs: the route selection of a client's message and the connection id of a
//! management request's path never panic, and what they accept is well-formed.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    turnpike_proxy::fuzzing::websocket(data);
});
