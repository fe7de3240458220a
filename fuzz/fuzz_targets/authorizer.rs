//! What the authorizers read: a function's answer (principalId, policyDocument, context,
//! usageIdentifierKey) and its policy evaluated with IAM wildcards, a JWT's header, identity
//! sources and AWS function URIs. Never a panic (see `turnpike_proxy::fuzzing`).
//!
//! Input: the answer's bytes (and a JWKS document); its first line also serves as a pattern,
//! a token, a URI and a Cache-Control value.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| turnpike_proxy::fuzzing::authorizer(data));
