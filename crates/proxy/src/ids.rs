//! Request ids: `x-amzn-RequestId` (a UUID; a client's UUID is honoured) and `x-amz-apigw-id`
//! (the extended request id: 15 characters and `=`, never client-settable).
//!
//! Both are made from one random draw and kept inline ([`RequestIds`]): the HTTP/1.1 writer
//! copies their bytes into the head, and only an HTTP/2 answer or a log line turns them into
//! header values or strings.

use std::{cell::RefCell, fmt};

use base64::Engine as _;
use http::HeaderValue;
use rand::{RngCore as _, SeedableRng as _, rngs::SmallRng};

thread_local! {
    /// Ids need to be unique, not secret: a fast generator per thread, seeded from the OS.
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_os_rng());
}

/// `N` random bytes, eight from each draw (`fill_bytes` cost a third more per id).
fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    RNG.with_borrow_mut(|r| {
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&r.next_u64().to_le_bytes()[..chunk.len()]);
        }
    });
    bytes
}

/// A WebSocket connection id (or message id), shaped like AWS's: 15 URL-safe base64
/// characters and `=`, e.g. `L0SM9cOFvHcCIhw=`.
pub fn connection_id() -> String {
    let bytes: [u8; 11] = random();
    String::from_utf8_lossy(&encode_extended(bytes)).into_owned()
}

const UUID_LEN: usize = 36;
const EXTENDED_LEN: usize = 16;

/// The ids of one request.
#[derive(Clone)]
pub struct RequestIds {
    request: RequestId,
    extended: [u8; EXTENDED_LEN],
}

#[derive(Clone)]
enum RequestId {
    Generated([u8; UUID_LEN]),
    /// The client's own UUID, as it sent it.
    Client(HeaderValue),
}

// === impl RequestIds ===

impl RequestIds {
    /// New ids; `x-amzn-RequestId` is the client's `client` when that is a UUID.
    pub fn new(client: Option<&HeaderValue>) -> Self {
        // One draw: 16 bytes for the UUID, 11 for the extended id.
        let bytes: [u8; 27] = random();
        let request = match client {
            Some(v) if uuid::Uuid::try_parse_ascii(v.as_bytes()).is_ok() => RequestId::Client(v.clone()),
            _ => RequestId::Generated(format_uuid_v4(std::array::from_fn(|i| bytes[i]))),
        };
        RequestIds {
            request,
            extended: encode_extended(std::array::from_fn(|i| bytes[16 + i])),
        }
    }

    /// `x-amzn-RequestId`, as written on the wire.
    pub fn request_id(&self) -> &[u8] {
        match &self.request {
            RequestId::Generated(b) => b,
            RequestId::Client(v) => v.as_bytes(),
        }
    }

    /// `x-amz-apigw-id`, as written on the wire.
    pub fn extended(&self) -> &[u8] {
        &self.extended
    }

    /// `x-amzn-RequestId` as text, borrowed.
    pub fn request_id_text(&self) -> &str {
        ascii(self.request_id())
    }

    /// `x-amz-apigw-id` as text, borrowed.
    pub fn extended_text(&self) -> &str {
        ascii(&self.extended)
    }

    pub fn request_id_str(&self) -> String {
        self.request_id_text().to_owned()
    }

    pub fn extended_str(&self) -> String {
        self.extended_text().to_owned()
    }

    /// `x-amzn-RequestId` as a header value (for writers that take a map).
    pub fn request_id_header(&self) -> HeaderValue {
        match &self.request {
            RequestId::Generated(b) => header_value(b),
            RequestId::Client(v) => v.clone(),
        }
    }

    /// `x-amz-apigw-id` as a header value.
    pub fn extended_header(&self) -> HeaderValue {
        header_value(&self.extended)
    }
}

impl fmt::Debug for RequestIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.request_id_text())
    }
}

/// An id's text. Ids are ASCII (hex, base64, or a client's id checked to be a UUID), which
/// `from_utf8` confirms word by word; were one not, it would read as empty rather than be
/// repaired.
fn ascii(id: &[u8]) -> &str {
    std::str::from_utf8(id).unwrap_or_default()
}

/// Ids are base64 and hex: always valid header values.
fn header_value(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(bytes).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// A random (version 4, RFC 9562) UUID from 16 random bytes, lowercase and hyphenated.
fn format_uuid_v4(mut b: [u8; 16]) -> [u8; UUID_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    /// Where each byte's two digits go: `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = [b'-'; UUID_LEN];
    for (byte, at) in b.into_iter().zip(AT) {
        out[at] = HEX[usize::from(byte >> 4)];
        out[at + 1] = HEX[usize::from(byte & 0x0f)];
    }
    out
}

/// The extended id: 11 random bytes in URL-safe base64, padded (`f-ZvmEb3PHcEeNg=`). Written
/// out for this one fixed size: the general engine's setup cost more than the encoding.
fn encode_extended(b: [u8; 11]) -> [u8; EXTENDED_LEN] {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let sextet = |v: u32, shift: u32| ALPHABET[((v >> shift) & 0x3f) as usize];
    let mut out = [b'='; EXTENDED_LEN];
    for (group, chunk) in b.chunks(3).enumerate() {
        let v = chunk
            .iter()
            .enumerate()
            .fold(0u32, |v, (i, &x)| v | u32::from(x) << (16 - 8 * i));
        let o = &mut out[group * 4..];
        o[0] = sextet(v, 18);
        o[1] = sextet(v, 12);
        o[2] = sextet(v, 6);
        if chunk.len() == 3 {
            o[3] = sextet(v, 0);
        }
    }
    out
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
        let ids = RequestIds::new(None);
        let uuid = uuid::Uuid::try_parse_ascii(ids.request_id()).expect("a UUID");
        assert_eq!(uuid.get_version_num(), 4);
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(uuid.hyphenated().to_string().as_bytes(), ids.request_id());
        assert_eq!(ids.request_id_header().as_bytes(), ids.request_id());
        assert_eq!(ids.extended().len(), 16);
        assert!(ids.extended().ends_with(b"="));
        assert!(
            ids.extended()[..15]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        );
        assert_eq!(ids.extended_header().as_bytes(), ids.extended());
        let other = RequestIds::new(None);
        assert_ne!(ids.request_id(), other.request_id());
        assert_ne!(ids.extended(), other.extended());

        let mine = HeaderValue::from_static("c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
        let ids = RequestIds::new(Some(&mine));
        assert_eq!(ids.request_id(), mine.as_bytes());
        assert_eq!(ids.request_id_header(), mine);
        let ids = RequestIds::new(Some(&HeaderValue::from_static("nope")));
        assert!(uuid::Uuid::try_parse_ascii(ids.request_id()).is_ok());

        let cf = edge_request_id();
        assert_eq!(cf.len(), 56);
        assert!(cf.as_bytes().ends_with(b"=="));
    }

    #[test]
    fn extended_ids_match_the_base64_crate() {
        for seed in 0..64u8 {
            let bytes: [u8; 11] =
                std::array::from_fn(|i| seed.wrapping_mul(53).wrapping_add((i as u8).wrapping_mul(29)));
            let theirs = base64::engine::general_purpose::URL_SAFE.encode(bytes);
            assert_eq!(&encode_extended(bytes)[..], theirs.as_bytes());
        }
    }

    #[test]
    fn uuid_formatting_matches_the_uuid_crate() {
        for seed in 0..64u8 {
            let bytes: [u8; 16] = std::array::from_fn(|i| seed.wrapping_mul(37).wrapping_add(i as u8 * 11));
            let ours = format_uuid_v4(bytes);
            let theirs = uuid::Builder::from_random_bytes(bytes)
                .into_uuid()
                .hyphenated()
                .to_string();
            assert_eq!(&ours[..], theirs.as_bytes());
        }
    }
}
