//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer): the HTTP/1.1 head
//! parsers and framing, the chunked decoder and path normalisation, driven the way the proxy
//! drives them. Not an API (hidden from the docs); nothing in the proxy calls it.
//!
//! Contract: every function takes arbitrary bytes and returns normally. Beyond "never panic,
//! never loop", each one asserts the invariants its callers in the proxy rely on, so a broken
//! invariant is a crash the fuzzer reports:
//!
//! - [`requests`]: a pipeline of requests is read head by head, each body by its framing, and
//!   every parsed head consumes input (no request is read twice); a request's framing is never
//!   `Close`; a path that normalises is absolute, has no empty segment and normalises to itself;
//!   an authority the gateway accepts (see [`authority`]) is a plain `host[:port]` and is
//!   accepted again, unchanged, as the only Host of an origin-form request.
//! - [`chunked`]: the decoder gives the same body and the same verdict whether the bytes arrive
//!   at once or in pieces (so no limit or rule depends on how TCP segments the stream).
//! - [`response`]: a backend's answer head is parsed as [`crate::h1::client`] parses it.
//! - [`cache_request`]: the stage cache reads a client's `Cache-Control` values and query
//!   string; the key part of a parameter tells apart any two different lists of its values
//!   (so no client can read another's entry by shaping a value).
//! - [`cache_entry`]: an entry read from the shared tier (Redis) decodes strictly or not at
//!   all, within 1 MiB of body, and what decodes encodes back to the same bytes.
//! - [`websocket`]: a WebSocket message's route selection, and the connection id of an
//!   `@connections` path.

use bytes::{Buf as _, BytesMut};

use crate::{
    h1::{ChunkedDecoder, Decoded, Framing, client, server},
    phase::{self, normalize},
};

/// The most requests read from one input (a pipeline).
const MAX_PIPELINE: usize = 64;

/// Reads `bytes` as a client's byte stream: heads, bodies, and the next request after each.
pub fn requests(bytes: &[u8]) {
    let mut buf = BytesMut::from(bytes);
    for _ in 0..MAX_PIPELINE {
        let before = buf.len();
        let Ok(Some((parts, framing))) = server::parse_head_parts(&mut buf) else {
            return;
        };
        assert!(buf.len() < before, "a parsed head consumed no input");
        assert_ne!(framing, Framing::Close, "a request delimited by the close");
        path(parts.uri.path());
        authority(&parts);
        match framing {
            Framing::Empty => {}
            Framing::Length(n) => match usize::try_from(n) {
                Ok(n) if n <= buf.len() => buf.advance(n),
                _ => return,
            },
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::default();
                loop {
                    match decoder.decode(&mut buf) {
                        Ok(Decoded::Data(_)) => {}
                        Ok(Decoded::End) => break,
                        Ok(Decoded::NeedMore) | Err(_) => return,
                    }
                }
            }
            Framing::Close => return,
        }
    }
}

/// Decides a parsed request's authority as the service does, and checks what it accepts.
pub fn authority(parts: &http::request::Parts) {
    let Ok(Some(decided)) = phase::authority::decide(parts) else {
        return;
    };
    let bytes = decided.as_bytes();
    assert!(
        !bytes
            .iter()
            .any(|b| matches!(b, b'@' | b',' | b'%' | b'/' | b' ' | b'\t') || b.is_ascii_control()),
        "{decided:?}: an accepted authority holds a list, user info, an escape or a control byte"
    );
    let mut again = http::Request::get("/")
        .body(())
        .expect("a request")
        .into_parts()
        .0;
    again.headers.insert(http::header::HOST, decided.clone());
    assert_eq!(
        phase::authority::decide(&again).ok().flatten().as_ref(),
        Some(&decided),
        "an accepted authority is not accepted again as the only Host"
    );
}

/// Normalises a path, strictly and with raw segments allowed, and checks each result (see the
/// module docs).
pub fn path(raw: &str) {
    for allow_raw in [false, true] {
        let Ok(once) = normalize::path(raw, allow_raw) else {
            continue;
        };
        assert!(once.starts_with('/'), "{raw:?} → {once:?}: not absolute");
        assert!(!once.contains("//"), "{raw:?} → {once:?}: an empty segment");
        match normalize::path(&once, allow_raw) {
            Ok(twice) => assert_eq!(once, twice, "{raw:?}: normalising is not idempotent"),
            Err(e) => panic!("{raw:?} → {once:?}, which is then refused: {e}"),
        }
    }
}

/// What decoding a chunked body came to.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// The last chunk and the trailers were read; this many bytes were left after them.
    End(usize),
    /// The input ended before the body did.
    Short,
    Error,
}

/// Decodes `bytes` as a chunked body, at once and in pieces of `step` bytes (1 to 256, from
/// the first input byte); both must agree.
pub fn chunked(bytes: &[u8]) {
    let Some((&step, body)) = bytes.split_first() else {
        return;
    };
    let whole = decode_chunked(body, body.len().max(1));
    let pieces = decode_chunked(body, usize::from(step) + 1);
    assert_eq!(
        whole,
        pieces,
        "the verdict depends on how the bytes arrive (step {})",
        step + 1
    );
}

fn decode_chunked(input: &[u8], step: usize) -> (Vec<u8>, Verdict) {
    let mut decoder = ChunkedDecoder::default();
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    for piece in input.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Decoded::Data(d)) => {
                    assert!(!d.is_empty(), "an empty data piece");
                    out.extend_from_slice(&d);
                }
                Ok(Decoded::NeedMore) => break,
                Ok(Decoded::End) => {
                    assert!(decoder.is_done());
                    // What follows the body is the next request's: the decoder leaves it.
                    let rest = buf.len() + input.len().saturating_sub(consumed(input, piece));
                    return (out, Verdict::End(rest));
                }
                Err(_) => return (out, Verdict::Error),
            }
        }
    }
    (out, Verdict::Short)
}

/// How many input bytes were handed to the decoder once `piece` (a slice of `input`) was.
fn consumed(input: &[u8], piece: &[u8]) -> usize {
    piece.as_ptr() as usize - input.as_ptr() as usize + piece.len()
}

/// Parses `bytes` as a backend's answer head (the first input byte: whether the request was
/// a HEAD). A final answer consumes its head; 1xx answers before it are skipped.
pub fn response(bytes: &[u8]) {
    let Some((&flags, head)) = bytes.split_first() else {
        return;
    };
    let head_request = flags & 1 == 1;
    let mut buf = BytesMut::from(head);
    if let Ok(Some((status, _, framing))) = client::parse_response_parts(&mut buf, head_request) {
        assert!(!status.is_informational(), "a 1xx answer taken as final");
        assert!(buf.len() < head.len(), "a parsed head consumed no input");
        if head_request {
            assert_eq!(framing, Framing::Empty, "a body after a HEAD");
        }
    }
}

/// Reads `bytes` as a query string (the first line) and `Cache-Control` values (the others),
/// as the stage cache reads them.
pub fn cache_request(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    let query = lines.next().unwrap_or_default();
    let mut headers = http::HeaderMap::new();
    for line in lines {
        if let Ok(v) = http::HeaderValue::from_str(line) {
            headers.append(http::header::CACHE_CONTROL, v);
        }
    }
    let _ = phase::cache::asks_invalidation(&headers);
    let names: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, _)| k.into_owned())
        .take(8)
        .collect();
    let part = |name: &str, values: &[String]| {
        let mut key = String::new();
        phase::cache::push_param(&mut key, "q", name, values.iter().map(String::as_str));
        key
    };
    for name in &names {
        let values = phase::cache::query_values(Some(query), name);
        let whole = part(name, &values);
        for cut in 0..values.len() {
            let mut fewer = values.clone();
            fewer.remove(cut);
            assert_ne!(whole, part(name, &fewer), "dropping a value gives the same key");
            let mut joined = fewer.clone();
            if let Some(last) = joined.last_mut() {
                last.push_str(&values[cut]);
                if joined != values {
                    assert_ne!(whole, part(name, &joined), "joined values give the same key");
                }
            }
        }
    }
}

/// Decodes `bytes` as an entry of the stage cache's shared tier (a Redis value); what decodes
/// encodes back to the same bytes.
pub fn cache_entry(bytes: &[u8]) {
    if let Some(entry) = crate::cache::shared::decode(bytes) {
        assert!(
            entry.body.len() <= crate::cache::MAX_ENTRY_BYTES,
            "an oversized body"
        );
        let again = crate::cache::shared::encode(&entry);
        let back = crate::cache::shared::decode(&again).expect("an encoded entry decodes");
        assert_eq!(back.headers, entry.headers, "headers changed");
        assert_eq!(back.body, entry.body, "body changed");
        assert_eq!(
            (back.status, back.stored_at, back.ttl),
            (entry.status, entry.stored_at, entry.ttl)
        );
    }
}

/// Reads `bytes` as an authorizer function's answer (then evaluates its policy against a
/// fixed method ARN and against the input's first line), and the first line as a JWT (its
/// header), an identity source, an AWS function URI and a JWKS response's `Cache-Control`, as
/// the authorizers read them; the whole input also as a JWKS document.
/// Never a panic; a wildcard-free pattern matches only itself.
pub fn authorizer(bytes: &[u8]) {
    use crate::authorizer::{answer, jwt};
    const ARN: &str = "arn:aws:execute-api:local:000000000000:abcdefghij/prod/GET/pets/1";
    let text = String::from_utf8_lossy(bytes);
    let first = text.lines().next().unwrap_or_default();
    if let Ok(a) = answer::Answer::parse(bytes) {
        let _ = a.evaluate(ARN);
        let _ = a.evaluate(first);
        for (_, v) in &a.context {
            let _ = v.to_text();
        }
    }
    let _ = answer::wildcard_match(first, ARN);
    if !first.contains(['*', '?']) {
        assert!(answer::wildcard_match(first, first), "a literal matches itself");
        assert_eq!(answer::wildcard_match(first, ARN), first == ARN);
    }
    let _ = jwt::kid(first);
    let _ = jwt::KeySet::parse(bytes, std::time::Instant::now());
    if let Some(age) = jwt::max_age(first) {
        // A lifetime is a directive's number (or zero for no-cache / no-store), never made up.
        assert!(
            age == 0 || first.contains(&age.to_string()),
            "{first:?} gave {age}"
        );
    }
    let _ = turnpike_core::model::IdentitySource::parse(first);
    if let Ok(name) = turnpike_core::model::function_name(first) {
        let target = turnpike_core::model::FunctionTarget {
            host: turnpike_core::model::FunctionHost::Url("http://127.0.0.1:1".into()),
            name,
        };
        assert!(http::Uri::try_from(target.invocation_path()).is_ok());
    }
}

/// WebSocket APIs: what the gateway reads of a client's message (the route selection) and of a
/// management request's path (the connection id). A selected key comes from a JSON object
/// message; a connection id read from a path is well-formed and read back the same.
pub fn websocket(bytes: &[u8]) {
    use turnpike_core::model::RouteSelection;
    for expression in ["$request.body.action", "$request.body.meta.type"] {
        let Ok(selection) = RouteSelection::parse(expression) else {
            panic!("{expression} is a valid expression");
        };
        if selection.select(bytes).is_some() {
            let parsed: Result<serde_json::Value, _> = serde_json::from_slice(bytes);
            assert!(
                parsed.is_ok_and(|v| v.is_object()),
                "a key selected from what is not a JSON object"
            );
        }
    }
    if let Ok(path) = std::str::from_utf8(bytes)
        && let Some(id) = crate::websocket::connections::target(path)
    {
        assert!(crate::websocket::connections::is_connection_id(&id));
        let again = crate::websocket::connections::target(&format!("/prod/@connections/{id}"));
        assert_eq!(again.as_deref(), Some(id.as_str()));
    }
}

/// The `@connections` relay between replicas: an envelope read from Redis never panics, and
/// what is read encodes back to the same bytes.
pub fn relay_envelope(bytes: &[u8]) {
    use crate::websocket::relay::Envelope;
    if let Some(envelope) = Envelope::decode(bytes) {
        assert_eq!(envelope.encode(), bytes, "a read envelope encodes back the same");
        assert_eq!(Envelope::decode(&envelope.encode()), Some(envelope));
    }
}
