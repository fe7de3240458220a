//! HTTP/1.1 on the hot path, both sides: [`server`] reads clients' requests and writes the
//! answers, [`client`] talks to plain-HTTP backends over a per-thread keep-alive pool.
//!
//! Why not hyper here: a proxied request through hyper's server and client crosses tasks four
//! times (connection task → service → client dispatch → backend connection task and back)
//! and builds every head twice. Here one task reads the request, writes it to the backend,
//! reads the answer and writes it to the client, and a small answer leaves in one `write`.
//! hyper still serves HTTP/2 (and TLS backends, through hyper-util).
//!
//! What both sides share lives in this file: body framing, the chunked decoder, the `Date`
//! cache and how header names are written.

pub mod client;
pub mod server;

use std::{
    cell::RefCell,
    time::{Duration, SystemTime},
};

use bytes::{Buf as _, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, header};

/// How a message body is delimited (RFC 9112 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    Empty,
    /// `Content-Length`: this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (responses only).
    Close,
}

/// Why a message's framing is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub enum FramingError {
    Both,
    InvalidLength,
    ConflictingLengths,
    UnsupportedCoding,
    CodingInHttp10,
    BadChunk,
}

impl FramingError {
    /// The reason, as logged and as [`crate::error::Reject::BadRequest`] carries it.
    pub fn message(self) -> &'static str {
        match self {
            FramingError::Both => "both Content-Length and Transfer-Encoding",
            FramingError::InvalidLength => "invalid Content-Length",
            FramingError::ConflictingLengths => "conflicting Content-Length headers",
            FramingError::UnsupportedCoding => "unsupported Transfer-Encoding",
            FramingError::CodingInHttp10 => "Transfer-Encoding in an HTTP/1.0 message",
            FramingError::BadChunk => "malformed chunked body",
        }
    }
}

/// The declared framing of a message: Transfer-Encoding (only `chunked`) or Content-Length
/// (all values equal), never both. `None` when neither is present.
pub fn declared_framing(headers: &HeaderMap, http10: bool) -> Result<Option<Framing>, FramingError> {
    let mut scan = HeadScan::default();
    for v in headers.get_all(header::TRANSFER_ENCODING) {
        scan.header(&header::TRANSFER_ENCODING, v.as_bytes());
    }
    for v in headers.get_all(header::CONTENT_LENGTH) {
        scan.header(&header::CONTENT_LENGTH, v.as_bytes());
    }
    scan.framing(http10)
}

/// What a message head says about its body and its connection, gathered while its header
/// lines are read: no map lookups afterwards.
#[derive(Debug, Default)]
pub struct HeadScan {
    /// A Transfer-Encoding was present; `chunked` tokens seen and whether any other was.
    coding: bool,
    chunked: u32,
    bad_coding: bool,
    /// The Content-Length, when all values agree, else why not.
    length: Option<Result<u64, FramingError>>,
    /// `Connection` lists `close` / `keep-alive`.
    pub close: bool,
    pub keep_alive: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
}

impl HeadScan {
    /// Takes note of one header line.
    pub fn header(&mut self, name: &HeaderName, value: &[u8]) {
        if *name == header::CONTENT_LENGTH {
            for part in value.split(|b| *b == b',') {
                let n = parse_length(part.trim_ascii()).ok_or(FramingError::InvalidLength);
                self.length = Some(match (self.length, n) {
                    (Some(Err(e)), _) | (_, Err(e)) => Err(e),
                    (Some(Ok(f)), Ok(n)) if f != n => Err(FramingError::ConflictingLengths),
                    (_, Ok(n)) => Ok(n),
                });
            }
        } else if *name == header::TRANSFER_ENCODING {
            // Only `chunked`, alone: any other coding would have to be undone before the
            // message could be forwarded with different framing.
            self.coding = true;
            match std::str::from_utf8(value) {
                Ok(v) => {
                    for token in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                        if token.eq_ignore_ascii_case("chunked") {
                            self.chunked += 1;
                        } else {
                            self.bad_coding = true;
                        }
                    }
                }
                Err(_) => self.bad_coding = true,
            }
        } else if *name == header::CONNECTION {
            for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if *name == header::EXPECT {
            self.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        }
    }

    /// The declared framing (RFC 9112 §6): Transfer-Encoding (only `chunked`) or
    /// Content-Length (all values equal), never both. `None` when neither is present.
    pub fn framing(&self, http10: bool) -> Result<Option<Framing>, FramingError> {
        if self.coding {
            return if self.length.is_some() {
                Err(FramingError::Both)
            } else if http10 {
                Err(FramingError::CodingInHttp10)
            } else if self.bad_coding || self.chunked != 1 {
                Err(FramingError::UnsupportedCoding)
            } else {
                Ok(Some(Framing::Chunked))
            };
        }
        self.length.transpose().map(|n| n.map(Framing::Length))
    }
}

/// Digits only (no sign, no spaces), at most 19 of them.
fn parse_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter()
        .try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// What [`ChunkedDecoder::decode`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Data(Bytes),
    /// The buffer holds no complete piece: read more.
    NeedMore,
    /// The last chunk and the trailers were read.
    End,
}

/// The longest chunk-size line (with extensions) and trailer section accepted.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

/// An incremental decoder of `Transfer-Encoding: chunked` (RFC 9112 §7.1). Strict: lines end
/// in CRLF, sizes are hex digits only, extensions follow the grammar with no whitespace or
/// control characters (`valid_extensions`), trailers are field lines (`valid_field_line`).
/// Extensions are skipped and trailers dropped once checked.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    trailer_bytes: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Takes the next piece of body out of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, FramingError> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(line) = take_line(buf, MAX_CHUNK_LINE)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    let end = line
                        .iter()
                        .position(|b| !b.is_ascii_hexdigit())
                        .unwrap_or(line.len());
                    let (digits, extensions) = line.split_at(end);
                    if digits.is_empty() || digits.len() > 15 || !valid_extensions(extensions) {
                        return Err(FramingError::BadChunk);
                    }
                    let size = digits.iter().fold(0u64, |n, d| {
                        n * 16 + u64::from(char::from(*d).to_digit(16).unwrap_or_default())
                    });
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(FramingError::BadChunk);
                    }
                    buf.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(line) = take_line(buf, MAX_CHUNK_LINE)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    self.trailer_bytes += line.len() + 2;
                    if self.trailer_bytes > MAX_TRAILERS {
                        return Err(FramingError::BadChunk);
                    }
                    if line.is_empty() {
                        self.state = ChunkState::Done;
                    } else if !valid_field_line(&line) {
                        return Err(FramingError::BadChunk);
                    }
                }
                ChunkState::Done => return Ok(Decoded::End),
            }
        }
    }
}

/// RFC 9110 `tchar`: what a token (a field name, a chunk extension name) is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Chunk extensions after the size, strictly: `*( ";" token [ "=" ( token / quoted-string ) ] )`
/// with no whitespace anywhere (RFC 9112 §7.1.1 allows some around `;` and `=`; no client
/// needs it and a proxy in front may read it otherwise), and no control characters or bytes
/// beyond ASCII, in quoted strings either.
fn valid_extensions(mut ext: &[u8]) -> bool {
    while let [b';', rest @ ..] = ext {
        let name = rest.iter().position(|b| !is_tchar(*b)).unwrap_or(rest.len());
        if name == 0 {
            return false;
        }
        ext = &rest[name..];
        if let [b'=', value @ ..] = ext {
            ext = match value {
                [b'"', quoted @ ..] => {
                    let mut i = 0;
                    loop {
                        match quoted.get(i) {
                            Some(b'"') => break &quoted[i + 1..],
                            Some(b'\\') if quoted.get(i + 1).is_some_and(|b| b.is_ascii_graphic()) => i += 2,
                            Some(b) if b.is_ascii_graphic() && *b != b'\\' => i += 1,
                            _ => return false,
                        }
                    }
                }
                _ => {
                    let n = value.iter().position(|b| !is_tchar(*b)).unwrap_or(value.len());
                    if n == 0 {
                        return false;
                    }
                    &value[n..]
                }
            };
        }
    }
    ext.is_empty()
}

/// A trailer line as a field line (RFC 9112 §5): `token ":" OWS field-value OWS`, the value
/// visible characters, spaces and tabs only. A line that starts with whitespace (obs-fold) or
/// is no field at all (`GET /x HTTP/1.1`) is refused.
fn valid_field_line(line: &[u8]) -> bool {
    let name = line.iter().position(|b| !is_tchar(*b)).unwrap_or(line.len());
    name > 0
        && line.get(name) == Some(&b':')
        && line[name + 1..]
            .iter()
            .all(|b| *b == b' ' || *b == b'\t' || (*b >= 0x21 && *b != 0x7f))
}

/// Takes one CRLF-terminated line off `buf` (without the CRLF). A line over `max` bytes is an
/// error whether its end has arrived or not, so the limit does not depend on how the bytes
/// were segmented.
fn take_line(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, FramingError> {
    match memchr::memchr(b'\n', buf) {
        Some(i) => {
            if i == 0 || buf[i - 1] != b'\r' || i > max {
                return Err(FramingError::BadChunk);
            }
            let line = buf.split_to(i + 1).freeze();
            Ok(Some(line.slice(..i - 1)))
        }
        None if buf.len() > max => Err(FramingError::BadChunk),
        None => Ok(None),
    }
}

/// Appends `n` as lowercase hex (a chunk size line without the CRLF).
fn push_hex(out: &mut BytesMut, n: usize) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[v & 15];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends a decimal number.
fn push_decimal(out: &mut BytesMut, n: u64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(n).as_bytes());
}

/// The kernel's coarse clocks: the time of its last tick, read without the time counter. A
/// read costs a few nanoseconds, a precise one several times more; the resolution is one tick
/// (1 to 10 ms). For what needs only seconds on every request: `Date` and the idle timeout.
pub(crate) fn coarse_monotonic() -> Duration {
    timespec(rustix::time::clock_gettime(
        rustix::time::ClockId::MonotonicCoarse,
    ))
}

fn coarse_unix_secs() -> u64 {
    timespec(rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse)).as_secs()
}

fn timespec(t: rustix::time::Timespec) -> Duration {
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

thread_local! {
    /// The current `Date` value, rendered once per second per thread.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((0, [0; 29])) };
}

/// Appends `Date: {IMF-fixdate}\r\n`.
fn push_date(out: &mut BytesMut) {
    let secs = coarse_unix_secs();
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            let s = httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
            if s.len() == text.len() {
                text.copy_from_slice(s.as_bytes());
                *at = secs;
            }
        }
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(&text[..]);
        out.extend_from_slice(b"\r\n");
    });
}

/// A response extension: write header names capitalised (`My-Header`), as AWS's EDGE
/// endpoints (CloudFront) do. Names with a known spelling keep it.
#[derive(Clone, Copy, Debug)]
pub struct TitleCase;

/// The backend's response head as it was received, carried by the answer's body when some
/// header name in it is spelled otherwise than [`push_name`] would write it. REGIONAL and
/// PRIVATE answers pass backend header names as they are (`X-MiXeD`, `etag`), so a header
/// whose value is still the backend's is written with the name from its own line.
///
/// A map does not keep the spelling of names; the head does, and the values are slices of
/// it, so no name is copied while the head is read.
#[derive(Clone, Debug)]
pub struct ReceivedHead(pub Bytes);

impl ReceivedHead {
    /// The name as the backend spelled it on the line `value` came from, if `value` is a
    /// slice of this head and that line's name is `name`.
    pub fn spelling(&self, name: &HeaderName, value: &[u8]) -> Option<&[u8]> {
        let head = &self.0[..];
        let at = (value.as_ptr() as usize).checked_sub(head.as_ptr() as usize)?;
        // `name:` then optional whitespace, then the value.
        let line = head.get(..at)?.trim_ascii_end().strip_suffix(b":")?;
        let start = line.len().checked_sub(name.as_str().len())?;
        let spelled = &line[start..];
        // The whole name of its line (the status line ends before it), not the end of a longer one.
        if start == 0 || line[start - 1] != b'\n' {
            return None;
        }
        // Names are stored lowercase: a lowercase spelling compares whole, at once.
        let lower = name.as_str().as_bytes();
        (spelled == lower || spelled.eq_ignore_ascii_case(lower)).then_some(spelled)
    }
}

/// Whether a received name is spelled as [`push_name`] writes it when not capitalising.
pub fn spelled_as_written(received: &[u8], name: &HeaderName) -> bool {
    received == wire_name(name).as_bytes()
}

/// Appends a header name as written on the wire (see [`wire_name`]); with `title`, other names
/// are capitalised at the start and after each `-`.
fn push_name(out: &mut BytesMut, name: &HeaderName, title: bool) {
    let wire = wire_name(name);
    if !title || wire != name.as_str() {
        out.extend_from_slice(wire.as_bytes());
        return;
    }
    let mut upper = true;
    for b in wire.bytes() {
        out.extend_from_slice(&[if upper { b.to_ascii_uppercase() } else { b }]);
        upper = b == b'-';
    }
}

/// The name as written on the wire: AWS's spelling for the headers API Gateway itself sends,
/// the conventional one for common headers, else as stored (lowercase).
fn wire_name(name: &HeaderName) -> &str {
    match name.as_str() {
        "content-type" => "Content-Type",
        "content-length" => "Content-Length",
        "date" => "Date",
        "connection" => "Connection",
        "x-amzn-requestid" => "x-amzn-RequestId",
        "x-amzn-errortype" => "x-amzn-ErrorType",
        "x-amz-apigw-id" => "x-amz-apigw-id",
        "x-amzn-trace-id" => "X-Amzn-Trace-Id",
        "via" => "Via",
        "x-cache" => "X-Cache",
        "x-amz-cf-pop" => "X-Amz-Cf-Pop",
        "x-amz-cf-id" => "X-Amz-Cf-Id",
        "x-amzn-remapped-date" => "x-amzn-Remapped-Date",
        "x-amzn-remapped-server" => "x-amzn-Remapped-Server",
        "x-amzn-remapped-content-length" => "x-amzn-Remapped-Content-Length",
        "x-amzn-remapped-connection" => "x-amzn-Remapped-Connection",
        "x-amzn-remapped-www-authenticate" => "x-amzn-Remapped-WWW-Authenticate",
        "x-amzn-remapped-authorization" => "x-amzn-Remapped-Authorization",
        "cache-control" => "Cache-Control",
        "content-encoding" => "Content-Encoding",
        "etag" => "ETag",
        "last-modified" => "Last-Modified",
        "location" => "Location",
        "server" => "Server",
        "set-cookie" => "Set-Cookie",
        "vary" => "Vary",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn received_spelling_comes_from_the_values_own_line() {
        let head =
            Bytes::from_static(b"HTTP/1.1 200 OK\r\nX-Foo:  v1\r\nMy-X-Foo: v2\r\nE:\r\nbar: v3\n\r\n");
        let text = std::str::from_utf8(&head).expect("ascii");
        let received = ReceivedHead(head.clone());
        let value_at = |v: &str| &head[text.find(v).expect("value")..][..v.len()];
        let name = |n: &'static str| HeaderName::from_static(n);
        assert_eq!(
            received.spelling(&name("x-foo"), value_at("v1")),
            Some(&b"X-Foo"[..])
        );
        assert_eq!(received.spelling(&name("bar"), value_at("v3")), Some(&b"bar"[..]));
        // An empty value.
        let empty = &head[text.find("E:").expect("E") + 2..][..0];
        assert_eq!(received.spelling(&name("e"), empty), Some(&b"E"[..]));
        // The value of another name, or only the end of a longer name.
        assert_eq!(received.spelling(&name("bar"), value_at("v1")), None);
        assert_eq!(received.spelling(&name("x-foo"), value_at("v2")), None);
        // A value that is not from this head.
        assert_eq!(received.spelling(&name("x-foo"), b"v1"), None);
        assert!(spelled_as_written(b"Content-Length", &header::CONTENT_LENGTH));
        assert!(!spelled_as_written(b"content-length", &header::CONTENT_LENGTH));
        assert!(spelled_as_written(b"x-other", &name("x-other")));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn framing_follows_rfc_9112() {
        assert_eq!(declared_framing(&headers(&[]), false), Ok(None));
        assert_eq!(
            declared_framing(&headers(&[("content-length", "12")]), false),
            Ok(Some(Framing::Length(12)))
        );
        assert_eq!(
            declared_framing(
                &headers(&[("content-length", "5, 5"), ("content-length", "5")]),
                false
            ),
            Ok(Some(Framing::Length(5)))
        );
        assert_eq!(
            declared_framing(&headers(&[("transfer-encoding", "Chunked")]), false),
            Ok(Some(Framing::Chunked))
        );
        let bad: [(&[(&'static str, &'static str)], FramingError); 7] = [
            (
                &[("content-length", "5"), ("transfer-encoding", "chunked")],
                FramingError::Both,
            ),
            (
                &[("content-length", "5"), ("content-length", "6")],
                FramingError::ConflictingLengths,
            ),
            (&[("content-length", "+5")], FramingError::InvalidLength),
            (&[("content-length", "")], FramingError::InvalidLength),
            (
                &[("transfer-encoding", "gzip, chunked")],
                FramingError::UnsupportedCoding,
            ),
            (
                &[("transfer-encoding", "chunked, chunked")],
                FramingError::UnsupportedCoding,
            ),
            (
                &[("transfer-encoding", "identity")],
                FramingError::UnsupportedCoding,
            ),
        ];
        for (h, want) in bad {
            assert_eq!(declared_framing(&headers(h), false), Err(want), "{h:?}");
        }
        assert_eq!(
            declared_framing(&headers(&[("transfer-encoding", "chunked")]), true),
            Err(FramingError::CodingInHttp10)
        );
    }

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, bool), FramingError> {
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        let mut buf = BytesMut::new();
        // One byte at a time: every state must cope with a partial buffer.
        for b in input {
            buf.extend_from_slice(&[*b]);
            loop {
                match d.decode(&mut buf)? {
                    Decoded::Data(x) => out.extend_from_slice(&x),
                    Decoded::NeedMore => break,
                    Decoded::End => return Ok((out, true)),
                }
            }
        }
        Ok((out, false))
    }

    #[test]
    fn chunked_bodies_decode_byte_by_byte() {
        assert_eq!(
            decode_all(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-t: 1\r\n\r\n"),
            Ok((b"hello world".to_vec(), true))
        );
        assert_eq!(
            decode_all(b"A\r\n0123456789\r\n0\r\n\r\n"),
            Ok((b"0123456789".to_vec(), true))
        );
        assert_eq!(decode_all(b"5\r\nhel"), Ok((b"hel".to_vec(), false)));
        assert_eq!(
            decode_all(b"005;a;b=c;d=\"e\\\"f\"\r\nhello\r\n0\r\nx-t:\r\ny: a b\t\r\n\r\n"),
            Ok((b"hello".to_vec(), true))
        );
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"-5\r\nhello\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"ffffffffffffffff\r\n",
            b"\r\n",
            b"0x5\r\nhello\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5\t\r\nhello\r\n0\r\n\r\n",
            b"5 ;a=b\r\nhello\r\n0\r\n\r\n",
            b"5; a=b\r\nhello\r\n0\r\n\r\n",
            b"5;a =b\r\nhello\r\n0\r\n\r\n",
            b"5;\r\nhello\r\n0\r\n\r\n",
            b"5;a=\r\nhello\r\n0\r\n\r\n",
            b"5;a\rb\r\nhello\r\n0\r\n\r\n",
            b"5;a\0\r\nhello\r\n0\r\n\r\n",
            b"5\0\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"b c\"\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"b\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"\xe9\"\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\nGET /x HTTP/1.1\r\n\r\n",
            b"5\r\nhello\r\n0\r\nx-t: 1\r\n folded\r\n\r\n",
            b"5\r\nhello\r\n0\r\n x-t: 1\r\n\r\n",
            b"5\r\nhello\r\n0\r\nx-t : 1\r\n\r\n",
            b"5\r\nhello\r\n0\r\n: 1\r\n\r\n",
            b"5\r\nhello\r\n0\r\nx-t: a\rb\r\n\r\n",
            b"5\r\nhello\r\n0\r\nx-t: a\0b\r\n\r\n",
            b"5\r\nhello\r\n0\r\nx-t\r\n\r\n",
        ] {
            assert!(decode_all(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn long_lines_are_refused_however_they_arrive() {
        // A chunk extension and a trailer line over the limit: refused when they arrive byte
        // by byte (the line's end not yet seen) and when they arrive whole (found by the fuzz
        // target `chunked`, which compares the two).
        let long = "e".repeat(MAX_CHUNK_LINE);
        for body in [
            format!("1;{long}\r\nx\r\n0\r\n\r\n"),
            format!("0\r\nx-t: {long}\r\n\r\n"),
        ] {
            assert!(decode_all(body.as_bytes()).is_err());
            let mut whole = BytesMut::from(body.as_bytes());
            let mut d = ChunkedDecoder::default();
            let verdict = loop {
                match d.decode(&mut whole) {
                    Ok(Decoded::Data(_)) => {}
                    other => break other,
                }
            };
            assert_eq!(verdict, Err(FramingError::BadChunk));
        }
    }

    #[test]
    fn names_are_spelled_for_the_wire() {
        let mut out = BytesMut::new();
        for (name, title) in [
            ("x-amzn-requestid", false),
            ("x-backend-thing", false),
            ("x-backend-thing", true),
            ("x-amz-cf-id", true),
            ("etag", true),
        ] {
            push_name(&mut out, &HeaderName::from_static(name), title);
            out.extend_from_slice(b" ");
        }
        assert_eq!(
            &out[..],
            b"x-amzn-RequestId x-backend-thing X-Backend-Thing X-Amz-Cf-Id ETag "
        );
    }

    #[test]
    fn numbers_and_dates_render() {
        let mut out = BytesMut::new();
        push_hex(&mut out, 0);
        out.extend_from_slice(b" ");
        push_hex(&mut out, 0x1f2e);
        out.extend_from_slice(b" ");
        push_decimal(&mut out, 1234567);
        assert_eq!(&out[..], b"0 1f2e 1234567");
        let mut out = BytesMut::new();
        push_date(&mut out);
        let s = std::str::from_utf8(&out).expect("ascii");
        assert!(s.starts_with("Date: ") && s.ends_with(" GMT\r\n"), "{s}");
        assert_eq!(s.len(), 6 + 29 + 2);
    }
}
