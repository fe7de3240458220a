//! The HTTP/1.1 side facing clients: one task per connection reads a request head, runs the
//! request through [`service::serve`] and writes the answer, then waits for the next head.
//!
//! ```text
//! read head ─ parse (httparse) ─ framing ─ body: none │ already here │ streamed by a reader task
//!     └─ 400/414/431 (gateway answers) for what cannot be parsed or is too big
//! service::serve ─ write head (+ first body bytes in the same write) ─ body frames ─ next
//! ```
//!
//! Refused outright, with an AWS answer and a closed connection: malformed heads, lines not
//! ended by CRLF, request targets with a fragment or bytes beyond ASCII, both Content-Length
//! and Transfer-Encoding, Transfer-Encoding other than `chunked`, conflicting lengths, heads
//! over the limits. Header names with `_` are left out as the head is read (unless allowed).
//! A chunked body that turns out malformed ends the body with an error, so the backend never
//! gets its last chunk (see [`crate::body::ClientBodyError`]). A connection whose request body was not read to its end
//! is closed after the answer (lingering, so the answer is not lost to a reset).

use std::{
    future::Future as _,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::Poll,
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadHalf},
    sync::mpsc,
};
use tokio_util::sync::CancellationToken;

use crate::{
    Shared,
    body::{BoxError, RequestBody},
    ctx::ConnInfo,
    error::Reject,
    h1::{
        ChunkedDecoder, Decoded, Framing, HeadScan, TitleCase, coarse_monotonic, push_date, push_decimal,
        push_hex, push_name,
    },
    service::{self, ResponseBody},
};

/// Request headers parsed at most (431 beyond).
const MAX_HEADERS: usize = 128;
/// How long a started request head may take to arrive.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long, and how much, is read and thrown away before closing a connection whose
/// request body was not read.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 32 << 20;
/// Response bodies up to this size go out in the same write as the head.
const COALESCE: usize = 64 * 1024;
/// The HTTP/2 connection preface (prior knowledge on a plain listener).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How a connection ended.
pub enum Outcome<IO> {
    Closed,
    /// The client spoke HTTP/2 with prior knowledge: the connection and the bytes read so far.
    Http2(IO, Bytes),
    /// The connection was upgraded to WebSocket (101 written): the caller runs it in a task of
    /// its own, so an open WebSocket holds none of this server's state.
    WebSocket(Box<crate::websocket::Upgraded<IO>>),
}

/// A parsed request head.
struct Head {
    parts: http::request::Parts,
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
}

/// What the body reader task gives back: the read side, the bytes after the body, and
/// whether the body was read to its end.
type BodyEnd<IO> = (ReadHalf<IO>, BytesMut, bool);

/// Serves HTTP/1.1 requests on a connection until it closes, goes idle, or `stop` fires.
pub async fn serve<IO>(
    mut io: IO,
    shared: Arc<Shared>,
    conn: ConnInfo,
    stop: CancellationToken,
    detect_h2: bool,
) -> Outcome<IO>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut out = BytesMut::with_capacity(8 * 1024);
    let limits = &shared.config.limits;
    let max_head = limits.max_header_bytes + limits.max_uri_bytes + 8 * 1024;
    let mut first = detect_h2;
    // One idle timer per connection, which no request touches. Each wait for a request notes
    // when it began on the coarse clock; when the timer fires, the connection closes if the
    // wait has lasted the whole timeout, and otherwise the timer is moved to the rest of it.
    // A precise clock read and a timer move per request cost more than a request's own
    // clock reads, and the limit is seconds.
    let idle_timeout = shared.config.idle_timeout;
    let idle = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle);
    // The stop signal is registered once with this task's waker; after that a wake-up is
    // read from `Shared::draining` (set before the token fires), so no wait re-registers it.
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    let already = std::future::poll_fn(|cx| Poll::Ready(stopped.as_mut().poll(cx).is_ready())).await;
    if already {
        return Outcome::Closed;
    }
    loop {
        // 1. The head.
        let parsed = loop {
            if !buf.is_empty() {
                if first {
                    let n = buf.len().min(H2_PREFACE.len());
                    if buf[..n] == H2_PREFACE[..n] {
                        if n == H2_PREFACE.len() {
                            return Outcome::Http2(io, buf.freeze());
                        }
                    } else {
                        first = false;
                    }
                }
                if !first {
                    match parse_request(&mut buf, shared.config.allow_underscores_in_headers) {
                        Ok(Some(head)) => break Ok(head),
                        Ok(None) => {}
                        Err(reject) => break Err(reject),
                    }
                }
                if buf.len() > max_head {
                    break Err(if memchr::memchr(b'\n', &buf).is_none() {
                        Reject::UriTooLong
                    } else {
                        Reject::HeadersTooLarge
                    });
                }
            }
            if buf.capacity() - buf.len() < 2048 {
                buf.reserve(8 * 1024);
            }
            let read = if buf.is_empty() {
                // Idle between requests: a stop or the idle timeout ends the connection.
                let idle_since = coarse_monotonic();
                let read = std::future::poll_fn(|cx| {
                    if shared.draining.load(Ordering::Relaxed) {
                        return Poll::Ready(None);
                    }
                    if let Poll::Ready(r) = tokio_util::io::poll_read_buf(Pin::new(&mut io), cx, &mut buf) {
                        return Poll::Ready(Some(r));
                    }
                    // At most twice: a timer moved to a later deadline is pending until then.
                    while idle.as_mut().poll(cx).is_ready() {
                        let waited = coarse_monotonic().saturating_sub(idle_since);
                        if waited >= idle_timeout {
                            return Poll::Ready(None);
                        }
                        idle.as_mut()
                            .reset(tokio::time::Instant::now() + (idle_timeout - waited));
                    }
                    Poll::Pending
                })
                .await;
                match read {
                    Some(r) => r,
                    None => return Outcome::Closed,
                }
            } else {
                match tokio::time::timeout(HEAD_TIMEOUT, io.read_buf(&mut buf)).await {
                    Ok(r) => r,
                    Err(_) => return Outcome::Closed,
                }
            };
            match read {
                Ok(0) | Err(_) => return Outcome::Closed,
                Ok(_) => {}
            }
        };
        first = false;
        let head = match parsed {
            Ok(head) => head,
            Err(reject) => {
                let resp = service::reject(&shared, &conn, reject);
                let _ = write_response(&mut io, &mut out, resp, false, true).await;
                linger(io).await;
                return Outcome::Closed;
            }
        };

        // 2. The body: none, already here, or streamed by a reader task.
        let Head {
            parts,
            framing,
            keep_alive,
            expect_continue,
        } = head;
        // A WebSocket upgrade: the connection is the WebSocket API's from here on.
        if matches!(framing, Framing::Empty | Framing::Length(0)) && crate::websocket::is_upgrade(&parts) {
            // Boxed: the connection's task holds no room for the handshake once it is done.
            match Box::pin(crate::websocket::handshake(&shared, &conn, parts)).await {
                crate::websocket::Handshake::Refused(resp) => {
                    if write_response(&mut io, &mut out, *resp, false, true)
                        .await
                        .is_ok()
                    {
                        let _ = io.shutdown().await;
                    }
                }
                crate::websocket::Handshake::Accepted(accepted) => {
                    let mut head = Vec::with_capacity(160);
                    crate::websocket::switching_protocols(&accepted.accept_key, &mut head);
                    if io.write_all(&head).await.is_ok() {
                        // The head buffers are not needed any more: an idle connection holds
                        // only the WebSocket's own.
                        let read = buf.to_vec();
                        return Outcome::WebSocket(Box::new(crate::websocket::Upgraded {
                            io,
                            read,
                            accepted,
                        }));
                    }
                }
            }
            return Outcome::Closed;
        }
        let head_request = parts.method == Method::HEAD;
        let close =
            parts.version == Version::HTTP_10 || !keep_alive || shared.draining.load(Ordering::Relaxed);
        let body = match framing {
            Framing::Empty | Framing::Length(0) => RequestBody::Empty,
            Framing::Length(n) if buf.len() as u64 >= n => {
                RequestBody::full(buf.split_to(usize::try_from(n).unwrap_or(usize::MAX)).freeze())
            }
            framing => {
                // Streamed: the connection is split while a reader task hands the body over.
                // A body declared over the limit is answered 413 without inviting it first.
                let too_large = matches!(framing, Framing::Length(n) if n > limits.max_body_bytes);
                if expect_continue
                    && !too_large
                    && io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err()
                {
                    return Outcome::Closed;
                }
                let (rd, mut wr) = tokio::io::split(io);
                let (tx, rx) = mpsc::channel(2);
                let reader = tokio::spawn(read_body(rd, std::mem::take(&mut buf), framing, tx));
                let body = RequestBody::Streamed {
                    rx,
                    length: match framing {
                        Framing::Length(n) => Some(n),
                        _ => None,
                    },
                    done: false,
                };
                let resp = service::serve(&shared, &conn, parts, body).await;
                let close = close || refused_as_malformed(&resp);
                let written = write_response(&mut wr, &mut out, resp, head_request, close).await;
                let Ok(Ok((rd, rest, complete))) = tokio::time::timeout(LINGER, reader).await else {
                    return Outcome::Closed;
                };
                io = rd.unsplit(wr);
                buf = rest;
                match written {
                    Ok(true) if complete => continue,
                    Ok(_) if !complete => linger(io).await,
                    _ => {
                        let _ = io.shutdown().await;
                    }
                }
                return Outcome::Closed;
            }
        };

        // 3. The answer.
        let resp = service::serve(&shared, &conn, parts, body).await;
        let close = close || refused_as_malformed(&resp);
        match write_response(&mut io, &mut out, resp, head_request, close).await {
            Ok(true) => {}
            Ok(false) => {
                let _ = io.shutdown().await;
                return Outcome::Closed;
            }
            Err(_) => return Outcome::Closed,
        }
    }
}

/// Whether the gateway itself refused the request as malformed (a 400 gateway response, such as
/// a bad Host decided after parsing): like a refusal of the head, it ends the connection, so no
/// request pipelined behind a malformed one is read (as nginx does after its own 400s, and as
/// a strict parser in front of us would have stopped). Only gateway answers carry
/// `x-amzn-ErrorType` by design; a backend 400 that sends one too merely costs a reconnect.
fn refused_as_malformed(resp: &Response<ResponseBody>) -> bool {
    resp.status() == StatusCode::BAD_REQUEST && resp.headers().contains_key(crate::error::ERROR_TYPE)
}

/// Parses a request head off `buf`. `Ok(None)`: not complete yet. Header names with `_` are
/// left out unless `allow_underscores`.
fn parse_request(buf: &mut BytesMut, allow_underscores: bool) -> Result<Option<Head>, Reject> {
    // Left uninitialised: zeroing 128 slots per request cost more than parsing a short head.
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let n = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Reject::HeadersTooLarge),
        Err(httparse::Error::Version) => return Err(Reject::BadRequest("unsupported HTTP version")),
        Err(_) => return Err(Reject::BadRequest("malformed request head")),
    };
    // Every line ends in CRLF: httparse also takes a bare LF, which a proxy in front may not.
    // The head holds one LF per line, so this looks at a handful of bytes.
    if memchr::memchr_iter(b'\n', &buf[..n]).any(|i| i == 0 || buf[i - 1] != b'\r') {
        return Err(Reject::BadRequest("line not ended by CRLF"));
    }
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| Reject::BadRequest("invalid method"))?;
    let http10 = req.version == Some(0);
    // The target and header values stay in the head's buffer, shared.
    let base = buf.as_ptr() as usize;
    let path = req.path.unwrap_or_default();
    // A fragment is never sent (RFC 9110 §7.1) and the URI type would drop it silently; raw
    // bytes beyond ASCII are not a URI at all (httparse lets them through).
    if !path.is_ascii() || memchr::memchr(b'#', path.as_bytes()).is_some() {
        return Err(Reject::BadRequest("invalid request target"));
    }
    let path_span = (path.as_ptr() as usize - base, path.len());
    let mut spans: smallvec::SmallVec<[(HeaderName, usize, usize); 24]> = smallvec::SmallVec::new();
    let mut scan = HeadScan::default();
    for h in req.headers.iter() {
        // Dropped unless allowed (see `ProxyConfig::allow_underscores_in_headers`): read as
        // nothing, they frame nothing either.
        if !allow_underscores && memchr::memchr(b'_', h.name.as_bytes()).is_some() {
            continue;
        }
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| Reject::BadRequest("invalid header name"))?;
        scan.header(&name, h.value);
        spans.push((name, h.value.as_ptr() as usize - base, h.value.len()));
    }
    let framing = scan
        .framing(http10)
        .map_err(|e| Reject::BadRequest(e.message()))?
        .unwrap_or(Framing::Empty);
    let raw = buf.split_to(n).freeze();
    let uri = http::Uri::from_maybe_shared(raw.slice(path_span.0..path_span.0 + path_span.1))
        .map_err(|_| Reject::BadRequest("invalid request target"))?;
    // Room for the forwarding headers without growing.
    let mut headers = HeaderMap::with_capacity(spans.len() + 4);
    for (name, start, len) in spans.drain(..) {
        let value = HeaderValue::from_maybe_shared(raw.slice(start..start + len))
            .map_err(|_| Reject::BadRequest("invalid header value"))?;
        headers.append(name, value);
    }
    let keep_alive = if http10 { scan.keep_alive } else { !scan.close };
    let expect_continue = !http10 && scan.expect_continue;
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = if http10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    *request.headers_mut() = headers;
    let (parts, ()) = request.into_parts();
    Ok(Some(Head {
        parts,
        framing,
        keep_alive,
        expect_continue,
    }))
}

/// Reads a streamed request body and hands it over frame by frame. Ends when the body does,
/// when it is malformed or cut, or when nobody wants it any more.
async fn read_body<IO: AsyncRead>(
    mut rd: ReadHalf<IO>,
    mut buf: BytesMut,
    framing: Framing,
    tx: mpsc::Sender<Result<Bytes, BoxError>>,
) -> BodyEnd<IO> {
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    let mut chunked = (framing == Framing::Chunked).then(ChunkedDecoder::default);
    loop {
        // Hand over what the buffer holds.
        let piece = match chunked.as_mut() {
            Some(d) => match d.decode(&mut buf) {
                Ok(Decoded::Data(b)) => Some(b),
                Ok(Decoded::End) => return (rd, buf, true),
                Ok(Decoded::NeedMore) => None,
                Err(e) => {
                    let _ = tx.send(Err(Box::new(e))).await;
                    return (rd, buf, false);
                }
            },
            None if left == 0 => return (rd, buf, true),
            None if buf.is_empty() => None,
            None => {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                left -= n as u64;
                Some(buf.split_to(n).freeze())
            }
        };
        if let Some(data) = piece {
            if tx.send(Ok(data)).await.is_err() {
                return (rd, buf, false);
            }
            continue;
        }
        if buf.capacity() - buf.len() < 8 * 1024 {
            buf.reserve(64 * 1024);
        }
        let read = tokio::select! {
            r = rd.read_buf(&mut buf) => r,
            () = tx.closed() => return (rd, buf, false),
        };
        match read {
            Ok(0) => {
                let _ = tx
                    .send(Err(
                        "the client closed the connection before the body ended".into()
                    ))
                    .await;
                return (rd, buf, false);
            }
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(Err(Box::new(e))).await;
                return (rd, buf, false);
            }
        }
    }
}

/// `x-amzn-RequestId` and `x-amz-apigw-id` as [`push_name`] spells them (a unit test holds
/// them to it), written without the per-name lookup on every answer.
const ID_NAMES: [&[u8]; 2] = [b"x-amzn-RequestId: ", b"x-amz-apigw-id: "];
const ID_NAMES_TITLE: [&[u8]; 2] = [b"x-amzn-RequestId: ", b"X-Amz-Apigw-Id: "];

/// Writes a response. Small bodies go out in the same write as the head. Returns whether the
/// connection can carry another request (the body was whole and self-delimited).
async fn write_response<W: AsyncWrite + Unpin>(
    wr: &mut W,
    out: &mut BytesMut,
    resp: Response<ResponseBody>,
    head_request: bool,
    close: bool,
) -> std::io::Result<bool> {
    let (parts, mut body) = resp.into_parts();
    let ids = body.take_ids();
    let status = parts.status;
    let title = parts.extensions.get::<TitleCase>().is_some();
    // REGIONAL and PRIVATE: backend names as the backend spelled them.
    let received = if title { None } else { body.received() };
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    let no_body = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let mut declared: Option<u64> = None;
    let mut dated = false;
    for (name, value) in &parts.headers {
        if name == header::TRANSFER_ENCODING || name == header::CONNECTION {
            continue;
        }
        dated |= name == header::DATE;
        // The gateway's ids replace any the backend sent.
        if ids.is_some() && (name == service::REQUEST_ID || name == service::APIGW_ID) {
            continue;
        }
        if name == header::CONTENT_LENGTH {
            if status == StatusCode::NO_CONTENT || status.is_informational() {
                continue;
            }
            let n = std::str::from_utf8(value.as_bytes())
                .ok()
                .and_then(|s| s.trim().parse().ok());
            if declared.is_some() || n.is_none() {
                continue;
            }
            declared = n;
        }
        match received.and_then(|r| r.spelling(name, value.as_bytes())) {
            Some(spelled) => out.extend_from_slice(spelled),
            None => push_name(out, name, title),
        }
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(ids) = &ids {
        let names = if title { &ID_NAMES_TITLE } else { &ID_NAMES };
        for (name, value) in names.iter().zip([ids.request_id(), ids.extended()]) {
            out.extend_from_slice(name);
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
    }
    if !dated {
        push_date(out);
    }
    // The framing of the body.
    let mut close = close;
    let framing = if no_body {
        Framing::Empty
    } else if let Some(n) = declared {
        Framing::Length(n)
    } else if let Some(n) = body.size_hint().exact() {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, n);
        out.extend_from_slice(b"\r\n");
        Framing::Length(n)
    } else if !close {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        Framing::Chunked
    } else {
        Framing::Close
    };
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");

    if framing == Framing::Empty {
        wr.write_all(out).await?;
        // The body ends here (it records the request when it does).
        drop(body);
        return Ok(!close);
    }
    let mut sent = 0u64;
    loop {
        // A frame that is ready now joins the head (and what came before) in one write.
        let frame = match futures::FutureExt::now_or_never(body.frame()) {
            Some(f) => f,
            None => {
                if !out.is_empty() {
                    wr.write_all(out).await?;
                    out.clear();
                }
                body.frame().await
            }
        };
        let data = match frame {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) => d,
                Err(_) => continue, // trailers are dropped
            },
            Some(Err(e)) => {
                // Too late for an error answer: the client sees the message cut short.
                tracing::debug!(error = %e, "response body failed");
                if !out.is_empty() {
                    wr.write_all(out).await?;
                }
                return Ok(false);
            }
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        match framing {
            Framing::Length(n) if sent > n => {
                tracing::debug!(declared = n, "response body longer than its Content-Length");
                close = true;
                break;
            }
            Framing::Chunked => {
                push_hex(out, data.len());
                out.extend_from_slice(b"\r\n");
                push_body(wr, out, &data).await?;
                out.extend_from_slice(b"\r\n");
            }
            _ => push_body(wr, out, &data).await?,
        }
        if out.len() >= COALESCE {
            wr.write_all(out).await?;
            out.clear();
        }
    }
    match framing {
        Framing::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
        Framing::Length(n) if sent != n => close = true,
        _ => {}
    }
    if !out.is_empty() {
        wr.write_all(out).await?;
    }
    wr.flush().await?;
    Ok(!close && framing != Framing::Close)
}

/// Appends a body piece to the pending output, or writes both when the piece is large.
async fn push_body<W: AsyncWrite + Unpin>(
    wr: &mut W,
    out: &mut BytesMut,
    data: &Bytes,
) -> std::io::Result<()> {
    if out.len() + data.len() <= COALESCE {
        out.extend_from_slice(data);
        return Ok(());
    }
    if !out.is_empty() {
        wr.write_all(out).await?;
        out.clear();
    }
    wr.write_all(data).await
}

/// Closes a connection whose client may still be sending: the write side first, then what
/// arrives is read and dropped for a while, so the answer is not lost to a reset.
async fn linger<IO: AsyncRead + AsyncWrite + Unpin>(mut io: IO) {
    let _ = io.shutdown().await;
    let drain = async {
        let mut scratch = vec![0u8; 16 * 1024];
        let mut total = 0usize;
        while total < LINGER_BYTES {
            match io.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// The head parser as the connection loop runs it by default (underscored names dropped), for
/// [`crate::fuzzing`]: the request's parts and the framing of its body.
pub(crate) fn parse_head_parts(
    buf: &mut BytesMut,
) -> Result<Option<(http::request::Parts, Framing)>, Reject> {
    Ok(parse_request(buf, false)?.map(|h| (h.parts, h.framing)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Option<Head>, Reject> {
        parse_request(&mut BytesMut::from(raw.as_bytes()), false)
    }

    #[test]
    fn id_names_are_spelled_as_push_name_spells_them() {
        for (title, names) in [(false, ID_NAMES), (true, ID_NAMES_TITLE)] {
            for (name, written) in [service::REQUEST_ID, service::APIGW_ID].iter().zip(names) {
                let mut out = BytesMut::new();
                push_name(&mut out, name, title);
                out.extend_from_slice(b": ");
                assert_eq!(&out[..], written);
            }
        }
    }

    #[test]
    fn heads_parse_with_framing_and_persistence() {
        let h =
            parse("POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc")
                .expect("ok")
                .expect("complete");
        assert_eq!(h.parts.method, Method::POST);
        assert_eq!(h.parts.uri, "/a?b=1");
        assert_eq!(h.framing, Framing::Length(3));
        assert!(h.keep_alive && h.expect_continue);
        let h = parse("GET / HTTP/1.0\r\n\r\n").expect("ok").expect("complete");
        assert!(!h.keep_alive);
        assert_eq!(h.framing, Framing::Empty);
        let h = parse("GET / HTTP/1.1\r\nConnection: Keep-Alive, Close\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert!(!h.keep_alive);
        assert!(parse("GET / HTTP/1.1\r\nHost: x\r\n").expect("ok").is_none());
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for raw in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Header: v\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
        ] {
            assert!(
                matches!(parse(raw), Err(Reject::BadRequest(_))),
                "{raw:?} → {:?}",
                parse(raw).map(|h| h.map(|h| h.framing))
            );
        }
    }
}
