//! Request ids: `x-amzn-RequestId` (a UUID; a client's UUID is honoured) and `x-amz-apigw-id`
//! (the extended request id: 15 characters and `=`, never client-settable).

use std::cell::RefCell;

use base64::Engine as _;
use http::HeaderValue;
use rand::{Rng as _, SeedableRng as _, rngs::SmallRng};

thread_local! {
    /// Ids need to be unique, not secret: a fast generator per thread, seeded from the OS.
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_os_rng());
}

fn random<const N: usize>() -> [u8; N] {
    RNG.with_borrow_mut(|r| r.random())
}

/// The client's `x-amzn-requestid` when it is a UUID, else a new random UUID.
pub fn request_id(client: Option<&HeaderValue>) -> HeaderValue {
    if let Some(v) = client
        && uuid::Uuid::try_parse_ascii(v.as_bytes()).is_ok()
    {
        return v.clone();
    }
    let bytes: [u8; 16] = random();
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let s = id.hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(s)
        .unwrap_or_else(|_| HeaderValue::from_static("00000000-0000-4000-8000-000000000000"))
}

/// A new extended request id, e.g. `f-ZvmEb3PHcEeNg=`.
pub fn extended_request_id() -> HeaderValue {
    let bytes: [u8; 11] = random();
    let mut buf = [0u8; 16];
    match base64::engine::general_purpose::URL_SAFE.encode_slice(bytes, &mut buf) {
        Ok(n) => HeaderValue::from_bytes(&buf[..n])
            .unwrap_or_else(|_| HeaderValue::from_static("AAAAAAAAAAAAAAA=")),
        Err(_) => HeaderValue::from_static("AAAAAAAAAAAAAAA="),
    }
}

/// A new `X-Amz-Cf-Id` of an EDGE answer: 56 characters of URL-safe base64, like CloudFront's.
pub fn edge_request_id() -> HeaderValue {
    let bytes: [u8; 40] = random();
    let mut buf = [0u8; 56];
    match base64::engine::general_purpose::URL_SAFE.encode_slice(bytes, &mut buf) {
        Ok(n) => HeaderValue::from_bytes(&buf[..n]).unwrap_or_else(|_| HeaderValue::from_static("-")),
        Err(_) => HeaderValue::from_static("-"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_aws_shape() {
        let id = request_id(None);
        assert!(uuid::Uuid::try_parse_ascii(id.as_bytes()).is_ok());
        let mine = HeaderValue::from_static("c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
        assert_eq!(request_id(Some(&mine)), mine);
        assert_ne!(request_id(Some(&HeaderValue::from_static("nope"))), "nope");
        let ext = extended_request_id();
        assert_eq!(ext.len(), 16);
        assert!(ext.as_bytes().ends_with(b"="));
        let cf = edge_request_id();
        assert_eq!(cf.len(), 56);
        assert!(cf.as_bytes().ends_with(b"=="));
    }
}
