//! The HTTP/1.1 client for plain-HTTP backends (the in-cluster case) and its keep-alive pool.
//!
//! The pool is per thread (no lock at all): idle connections wait in a thread-local map keyed
//! by authority. A checkout tries one non-blocking read to drop connections the backend
//! closed meanwhile. The request is written and the answer read by the caller's own task; the
//! connection goes back to the pool when the response body has been read to its end, which
//! for a small answer is before the head is even returned.
//!
//! A request whose body is still streaming while the backend answers (an echo, an early
//! error) keeps being written by a helper task, so neither side can block the other.
//!
//! Retries: a request on a pooled connection that failed before any byte of an answer came
//! back is sent again once on a new connection, when its body can be sent again (none, or one
//! buffer) and either nothing could be written or the method is idempotent.

use std::{
    cell::RefCell,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use bytes::{Buf as _, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version, header};
use http_body::{Body, Frame, SizeHint};
use tokio::{
    io::{AsyncRead, AsyncWriteExt as _},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    task::JoinHandle,
};

use crate::{
    body::{BoxError, ClientBodyError, LimitExceeded, Limited, ProxyBody},
    h1::{
        ChunkedDecoder, Decoded, Framing, HeadScan, ReceivedHead, declared_framing, push_decimal, push_hex,
        spelled_as_written,
    },
    headers::{self, Forwarded, Reserved},
    upstream::{Outgoing, SendError, UpstreamConfig, caused_by, split_url},
};
use turnpike_core::routing::FastMap;

/// The largest response head read from a backend.
const MAX_RESPONSE_HEAD: usize = 96 * 1024;
/// Response headers parsed at most.
const MAX_HEADERS: usize = 128;
/// A request body up to this size is written together with the head.
const COALESCE: usize = 16 * 1024;

/// One connection to a backend and the bytes read from it but not yet consumed.
#[derive(Debug)]
struct Conn {
    io: TcpStream,
    buf: BytesMut,
    reused: bool,
}

/// The integration timer of a connection: armed once, then moved later for each request
/// (a cheap update in tokio's timer wheel, where a new timer per request costs two locked
/// wheel operations).
type Timer = Pin<Box<tokio::time::Sleep>>;

struct Idle {
    conn: Conn,
    timer: Timer,
    since: Instant,
}

/// The idle connections to one authority, and the name requests share to give theirs back.
struct Pool {
    key: Arc<str>,
    idle: Vec<Idle>,
}

thread_local! {
    static IDLE: RefCell<FastMap<Box<str>, Pool>> = RefCell::new(FastMap::default());
    /// Where request heads are written.
    static SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Where a connection goes back to when its response ends.
#[derive(Clone, Debug)]
struct PoolKey {
    key: Arc<str>,
    max_idle: usize,
}

/// What goes back to the pool with a connection.
struct Lease {
    pool: PoolKey,
    timer: Option<Timer>,
    started: Instant,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("pool", &self.pool).finish()
    }
}

impl Lease {
    fn give_back(&mut self, conn: Conn, since: Instant) {
        if let Some(timer) = self.timer.take() {
            checkin(&self.pool, conn, timer, since);
        }
    }
}

/// Takes a live idle connection to `key`, dropping closed and expired ones; with the pool's
/// shared name for `key`.
fn checkout(key: &str, config: &UpstreamConfig, now: Instant) -> (Arc<str>, Option<(Conn, Timer)>) {
    let found = IDLE.try_with(|idle| {
        let mut idle = idle.try_borrow_mut().ok()?;
        if let Some(pool) = idle.get_mut(key) {
            return Some((pool.key.clone(), take_live(&mut pool.idle, config, now)));
        }
        let pool = Pool {
            key: key.into(),
            idle: Vec::new(),
        };
        let name = pool.key.clone();
        idle.insert(key.into(), pool);
        Some((name, None))
    });
    found.ok().flatten().unwrap_or_else(|| (key.into(), None))
}

fn take_live(list: &mut Vec<Idle>, config: &UpstreamConfig, now: Instant) -> Option<(Conn, Timer)> {
    while let Some(c) = list.pop() {
        if now.saturating_duration_since(c.since) > config.pool_idle_timeout {
            continue;
        }
        // Anything readable on an idle connection is a close (or garbage): drop it.
        let mut probe = [0u8; 1];
        match c.conn.io.try_read(&mut probe) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut conn = c.conn;
                conn.reused = true;
                return Some((conn, c.timer));
            }
            _ => continue,
        }
    }
    None
}

fn checkin(pool: &PoolKey, conn: Conn, timer: Timer, since: Instant) {
    if !conn.buf.is_empty() {
        return;
    }
    let _ = IDLE.try_with(|idle| {
        if let Ok(mut idle) = idle.try_borrow_mut()
            && let Some(p) = idle.get_mut(&*pool.key)
            && p.idle.len() < pool.max_idle
        {
            p.idle.push(Idle { conn, timer, since });
        }
    });
}

async fn connect(addr: &str, config: &UpstreamConfig) -> Result<Conn, SendError> {
    let io = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| SendError::Connect(format!("connect to {addr} timed out")))?
        .map_err(|e| SendError::Connect(format!("connect to {addr}: {e}")))?;
    let _ = io.set_nodelay(true);
    Ok(Conn {
        io,
        buf: BytesMut::with_capacity(8 * 1024),
        reused: false,
    })
}

/// The request body as sent: nothing, one buffer (can be sent again), or a stream.
enum Payload {
    Fixed(Option<Bytes>),
    Stream(Limited),
}

/// Sends a request to an `http://` URL and returns the response head, within `timeout` of
/// `started`, with the reserved header names renamed or not as `reserved` says; its body is
/// read off the connection as it is polled. Host is set from the URL's authority when
/// absent. The URL is split, not parsed into an `http::Uri`: the request line needs its
/// path, the pool its authority.
pub async fn send(
    out: Outgoing,
    config: &UpstreamConfig,
    started: Instant,
    timeout: Duration,
    reserved: Reserved,
) -> Result<Response<ProxyBody>, SendError> {
    let deadline = tokio::time::Instant::from_std(started) + timeout;
    let Outgoing {
        method,
        url,
        headers,
        body,
        forwarded,
    } = out;
    let target = split_url(&url).map_err(SendError::InvalidUrl)?;
    let key = target.authority;
    if key.is_empty() {
        return Err(SendError::InvalidUrl("backend URL without a host".into()));
    }
    let with_port;
    let addr: &str = if has_port(key) {
        key
    } else {
        with_port = format!("{key}:80");
        &with_port
    };
    let (name, mut pooled) = checkout(key, config, started);
    let pool = PoolKey {
        key: name,
        max_idle: config.pool_max_idle_per_host,
    };

    // Framing: a body in hand is sent with its length; a stream with its declared
    // Content-Length, else its exact size, else chunked.
    let payload = match body.as_full() {
        Some(b) => Payload::Fixed(Some(b.clone())),
        None if body.is_end_stream() => Payload::Fixed(None),
        None => Payload::Stream(body),
    };
    let framing = match &payload {
        Payload::Fixed(b) => Framing::Length(b.as_ref().map_or(0, |b| b.len() as u64)),
        Payload::Stream(s) => match declared_framing(&headers, false)
            .map_err(|e| SendError::Failed(format!("request framing: {e}")))?
        {
            Some(Framing::Length(n)) => Framing::Length(n),
            _ => s.size_hint().exact().map_or(Framing::Chunked, Framing::Length),
        },
    };
    // The head, and a small body after it, go out in one write, from a per-thread buffer
    // that stays warm in the cache.
    let (head, coalesced) = SCRATCH.with_borrow_mut(|scratch| {
        if scratch.capacity() < 4096 {
            scratch.reserve(64 * 1024);
        }
        encode_head(
            scratch,
            &method,
            &target.path_and_query,
            key,
            &headers,
            framing,
            forwarded.as_ref(),
        );
        let coalesced = match &payload {
            Payload::Fixed(Some(b)) if b.len() <= COALESCE => {
                scratch.extend_from_slice(b);
                true
            }
            _ => false,
        };
        (scratch.split().freeze(), coalesced)
    });
    let idempotent = matches!(
        method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    );
    let reading = Reading {
        head_request: method == Method::HEAD,
        reserved,
    };

    let mut payload = Some(payload);
    let mut timer: Option<Timer> = None;
    for fresh in [false, true] {
        let conn = match (fresh, pooled.take()) {
            (false, Some((c, t))) => {
                timer = Some(t);
                c
            }
            (false, None) => continue,
            // Boxed: most requests take a pooled connection, and the connect future would
            // otherwise add its room to every request's future.
            (true, _) => match Box::pin(tokio::time::timeout_at(deadline, connect(addr, config))).await {
                Ok(c) => c?,
                Err(_) => return Err(SendError::Timeout),
            },
        };
        let mut t = match timer.take() {
            Some(mut t) => {
                t.as_mut().reset(deadline);
                t
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        let Some(p) = payload.take() else { break };
        let exchanged = tokio::select! {
            biased;
            r = exchange(conn, &head, coalesced, p, framing, reading) => r,
            () = t.as_mut() => return Err(SendError::Timeout),
        };
        timer = Some(t);
        match exchanged {
            Ok((resp_head, link)) => {
                let lease = Lease {
                    pool,
                    timer: timer.take(),
                    started,
                };
                return Ok(respond(resp_head, link, lease));
            }
            Err(Failure {
                error,
                reused,
                written,
                answered,
                payload: back,
            }) => {
                let retry = reused && !answered && back.is_some() && (!written || idempotent);
                if retry && !fresh {
                    payload = back;
                    continue;
                }
                return Err(error);
            }
        }
    }
    Err(SendError::Failed("no usable connection".into()))
}

/// Whether an authority (`host:port`, `[v6]:port`, or a bare host) names a port: digits after
/// its last `:`. (A byte loop: `Authority::port` searches with the generic pattern machinery.)
fn has_port(authority: &str) -> bool {
    let b = authority.as_bytes();
    match b.iter().rposition(|c| *c == b':') {
        Some(i) => i + 1 < b.len() && b[i + 1..].iter().all(u8::is_ascii_digit),
        None => false,
    }
}

/// The request head on the wire. With `forwarded` (a proxied request), Host is the
/// backend's and the X-Forwarded-* lines are the gateway's, written here rather than set in
/// the map first.
fn encode_head(
    out: &mut BytesMut,
    method: &Method,
    path_and_query: &str,
    authority: &str,
    headers: &HeaderMap,
    framing: Framing,
    forwarded: Option<&Forwarded>,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if forwarded.is_some() || !headers.contains_key(header::HOST) {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(authority.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let mut appended = false;
    for (name, value) in headers {
        // Framing is ours to write; an expectation is the client's business with us.
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::CONNECTION
            || name == header::EXPECT
        {
            continue;
        }
        if let Some(f) = forwarded
            && Forwarded::replaces(name)
        {
            // The client's first X-Forwarded-For, with the peer appended; the rest go.
            if Forwarded::is_for(name) && !appended {
                appended = true;
                push_line(out, b"x-forwarded-for", value.as_bytes(), Some(f.peer.as_bytes()));
            }
            continue;
        }
        push_line(out, name.as_str().as_bytes(), value.as_bytes(), None);
    }
    if let Some(f) = forwarded {
        if !appended {
            push_line(out, b"x-forwarded-for", f.peer.as_bytes(), None);
        }
        push_line(out, b"x-forwarded-proto", f.proto.as_bytes(), None);
        if let Some(h) = &f.host {
            push_line(out, b"x-forwarded-host", h.as_bytes(), None);
        }
    }
    match framing {
        Framing::Length(0) if !matches!(*method, Method::POST | Method::PUT | Method::PATCH) => {}
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty | Framing::Close => {}
    }
    out.extend_from_slice(b"\r\n");
}

/// How an answer's head is read: whether it answers a HEAD request (no body, whatever it
/// declares) and what becomes of the reserved header names.
#[derive(Clone, Copy, Debug)]
struct Reading {
    head_request: bool,
    reserved: Reserved,
}

/// `name: value\r\n`, or `name: value, more\r\n`.
fn push_line(out: &mut BytesMut, name: &[u8], value: &[u8], more: Option<&[u8]>) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    if let Some(more) = more {
        out.extend_from_slice(b", ");
        out.extend_from_slice(more);
    }
    out.extend_from_slice(b"\r\n");
}

/// A response head and how its body is framed.
struct ResponseHead {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    framing: Framing,
    /// Whether the connection can carry another request after this response.
    keep_alive: bool,
    /// The head as received, when a name in it is spelled otherwise than it would be written.
    received: Option<ReceivedHead>,
}

/// Why an exchange failed, and whether it may be tried again.
struct Failure {
    error: SendError,
    reused: bool,
    /// Some of the request reached the socket.
    written: bool,
    /// Some of an answer came back.
    answered: bool,
    /// The payload, when it can be sent again.
    payload: Option<Payload>,
}

/// The request body pump of a streamed request: it owns the write half until the body ends.
type Pump = JoinHandle<Result<OwnedWriteHalf, SendError>>;

/// The connection after the head was read: whole, or split while the pump still writes.
enum Link {
    Whole(Conn),
    Split {
        rd: OwnedReadHalf,
        buf: BytesMut,
        pump: Pump,
    },
}

async fn exchange(
    mut conn: Conn,
    head: &Bytes,
    coalesced: bool,
    payload: Payload,
    framing: Framing,
    reading: Reading,
) -> Result<(ResponseHead, Link), Failure> {
    let reused = conn.reused;
    match payload {
        Payload::Fixed(body) => {
            let mut written = false;
            let result = async {
                match &body {
                    Some(_) if coalesced => conn.io.write_all(head).await?,
                    Some(b) => {
                        conn.io.write_all(head).await?;
                        written = true;
                        conn.io.write_all(b).await?;
                    }
                    None => conn.io.write_all(head).await?,
                }
                Ok::<_, io::Error>(())
            }
            .await;
            if let Err(e) = result {
                return Err(Failure {
                    error: SendError::Failed(format!("writing the request: {e}")),
                    reused,
                    written,
                    answered: false,
                    payload: Some(Payload::Fixed(body)),
                });
            }
            match read_head(&mut conn.io, &mut conn.buf, reading).await {
                Ok(h) => Ok((h, Link::Whole(conn))),
                Err((error, answered)) => Err(Failure {
                    error,
                    reused,
                    written: true,
                    answered,
                    payload: Some(Payload::Fixed(body)),
                }),
            }
        }
        Payload::Stream(body) => {
            if let Err(e) = conn.io.write_all(head).await {
                return Err(Failure {
                    error: SendError::Failed(format!("writing the request: {e}")),
                    reused,
                    written: false,
                    answered: false,
                    payload: Some(Payload::Stream(body)),
                });
            }
            let Conn { io, mut buf, .. } = conn;
            let (mut rd, wr) = io.into_split();
            // The body is written while the answer is awaited: a backend may answer (or
            // echo) before it has read everything.
            let mut pump = tokio::spawn(pump(wr, body, framing));
            let mut pump_done: Option<OwnedWriteHalf> = None;
            let failure = |error, answered| Failure {
                error,
                reused,
                written: true,
                answered,
                payload: None,
            };
            let head = loop {
                tokio::select! {
                    h = read_head(&mut rd, &mut buf, reading) => match h {
                        Ok(h) => break h,
                        Err((e, answered)) => {
                            pump.abort();
                            return Err(failure(e, answered));
                        }
                    },
                    r = &mut pump, if pump_done.is_none() => match r {
                        Ok(Ok(wr)) => pump_done = Some(wr),
                        Ok(Err(e)) => return Err(failure(e, false)),
                        Err(e) => return Err(failure(SendError::Failed(format!("request body: {e}")), false)),
                    },
                }
            };
            let link = match pump_done {
                Some(wr) => match rd.reunite(wr) {
                    Ok(io) => Link::Whole(Conn { io, buf, reused }),
                    Err(e) => return Err(failure(SendError::Failed(format!("reunite: {e}")), true)),
                },
                None => Link::Split { rd, buf, pump },
            };
            Ok((head, link))
        }
    }
}

/// Writes a streamed request body with its framing; gives the write half back at the end.
async fn pump(
    mut wr: OwnedWriteHalf,
    mut body: Limited,
    framing: Framing,
) -> Result<OwnedWriteHalf, SendError> {
    use http_body_util::BodyExt as _;
    let mut sent = 0u64;
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if caused_by::<LimitExceeded>(&*e) {
                SendError::BodyTooLarge
            } else if caused_by::<ClientBodyError>(&*e) {
                SendError::ClientBody(e.to_string())
            } else {
                SendError::Failed(format!("reading the request body: {e}"))
            }
        })?;
        let Ok(data) = frame.into_data() else { continue };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        let result = match framing {
            Framing::Chunked => {
                out.clear();
                push_hex(&mut out, data.len());
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\r\n");
                wr.write_all(&out).await
            }
            Framing::Length(n) if sent > n => {
                return Err(SendError::Failed(
                    "request body longer than its Content-Length".into(),
                ));
            }
            _ => wr.write_all(&data).await,
        };
        result.map_err(|e| SendError::Failed(format!("writing the request body: {e}")))?;
    }
    match framing {
        Framing::Chunked => wr
            .write_all(b"0\r\n\r\n")
            .await
            .map_err(|e| SendError::Failed(format!("writing the request body: {e}")))?,
        Framing::Length(n) if sent != n => {
            return Err(SendError::Failed(
                "request body shorter than its Content-Length".into(),
            ));
        }
        _ => {}
    }
    Ok(wr)
}

/// Reads a response head (skipping interim 1xx answers). The error says whether any byte of
/// an answer had arrived.
async fn read_head<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    reading: Reading,
) -> Result<ResponseHead, (SendError, bool)> {
    use tokio::io::AsyncReadExt as _;
    let mut answered = !buf.is_empty();
    loop {
        if !buf.is_empty() {
            answered = true;
            match parse_head(buf, reading).map_err(|e| (e, true))? {
                Some(Parsed::Final(h)) => return Ok(h),
                Some(Parsed::Interim) => continue,
                None => {}
            }
            if buf.len() > MAX_RESPONSE_HEAD {
                return Err((SendError::Failed("response head too large".into()), true));
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(8 * 1024);
        }
        match io.read_buf(buf).await {
            Ok(0) if answered => {
                return Err((
                    SendError::Failed("connection closed in the response head".into()),
                    true,
                ));
            }
            Ok(0) => {
                return Err((
                    SendError::Failed("connection closed before a response".into()),
                    false,
                ));
            }
            Ok(_) => {}
            Err(e) => return Err((SendError::Failed(format!("reading the response: {e}")), answered)),
        }
    }
}

enum Parsed {
    Final(ResponseHead),
    /// A 1xx answer, consumed.
    Interim,
}

fn parse_head(buf: &mut BytesMut, reading: Reading) -> Result<Option<Parsed>, SendError> {
    // Left uninitialised: zeroing 128 slots per answer cost more than parsing a short head.
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let n = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(SendError::Failed(format!("malformed response head: {e}"))),
    };
    let code = resp.code.unwrap_or(0);
    let status = StatusCode::from_u16(code)
        .map_err(|_| SendError::Failed(format!("invalid response status {code}")))?;
    if status.is_informational() {
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(SendError::Failed("unexpected protocol switch".into()));
        }
        buf.advance(n);
        return Ok(Some(Parsed::Interim));
    }
    let http10 = resp.version == Some(0);
    // Header values are copied out of the read buffer in one piece and shared from there.
    let base = buf.as_ptr() as usize;
    let mut spans: smallvec::SmallVec<[(HeaderName, usize, usize); 24]> = smallvec::SmallVec::new();
    let mut scan = HeadScan::default();
    let mut own_spelling = false;
    for h in resp.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| SendError::Failed(format!("invalid response header name {:?}", h.name)))?;
        scan.header(&name, h.value);
        let remapped = match reading.reserved {
            Reserved::Remap => headers::remapped(&name),
            Reserved::Keep => None,
        };
        // A remapped name is written in the gateway's spelling; any other may be the backend's.
        own_spelling |= remapped.is_none() && !spelled_as_written(h.name.as_bytes(), &name);
        let name = remapped.unwrap_or(name);
        let start = h.value.as_ptr() as usize - base;
        spans.push((name, start, start + h.value.len()));
    }
    let framing =
        if reading.head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Empty
        } else {
            match scan.framing(false) {
                Ok(Some(f)) => f,
                Ok(None) => Framing::Close,
                // A coding other than chunked: the body runs to the close (RFC 9112 §6.3).
                Err(crate::h1::FramingError::UnsupportedCoding) => Framing::Close,
                Err(e) => return Err(SendError::Failed(format!("response framing: {e}"))),
            }
        };
    let keep_alive = framing != Framing::Close && !scan.close && (!http10 || scan.keep_alive);
    let raw = buf.split_to(n).freeze();
    // Room for what the gateway adds without growing.
    let mut headers = HeaderMap::with_capacity(spans.len() + 4);
    for (name, start, end) in spans.drain(..) {
        let value = HeaderValue::from_maybe_shared(raw.slice(start..end))
            .map_err(|_| SendError::Failed(format!("invalid value of response header {name}")))?;
        headers.append(name, value);
    }
    Ok(Some(Parsed::Final(ResponseHead {
        received: own_spelling.then(|| ReceivedHead(raw)),
        status,
        version: if http10 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        },
        headers,
        framing,
        keep_alive,
    })))
}

/// The response for the caller. A body already read whole gives the connection back at once.
fn respond(head: ResponseHead, link: Link, mut lease: Lease) -> Response<ProxyBody> {
    let ResponseHead {
        status,
        version,
        headers,
        framing,
        keep_alive,
        received,
    } = head;
    let mut resp = Response::new(ProxyBody::empty());
    *resp.status_mut() = status;
    *resp.version_mut() = version;
    *resp.headers_mut() = headers;
    let body = match (framing, link) {
        (Framing::Empty, Link::Whole(conn)) => {
            if keep_alive {
                lease.give_back(conn, lease.started);
            }
            ProxyBody::empty()
        }
        (Framing::Length(n), Link::Whole(mut conn)) if conn.buf.len() as u64 >= n => {
            let data = conn.buf.split_to(n as usize).freeze();
            if keep_alive {
                lease.give_back(conn, lease.started);
            }
            ProxyBody::full(data)
        }
        (framing, link) => {
            let (reader, buf, pump) = match link {
                Link::Whole(conn) => (Reader::Whole(conn.io), conn.buf, None),
                Link::Split { rd, buf, pump } => (Reader::Half(rd), buf, Some(pump)),
            };
            ProxyBody::upstream(UpstreamBody {
                io: Some(reader),
                buf,
                state: match framing {
                    Framing::Length(n) => BodyState::Length(n),
                    Framing::Chunked => BodyState::Chunked(ChunkedDecoder::default()),
                    _ => BodyState::Close,
                },
                keep_alive,
                pump,
                lease,
            })
        }
    };
    *resp.body_mut() = body.with_received(received);
    resp
}

/// The read side of a backend connection.
#[derive(Debug)]
enum Reader {
    Whole(TcpStream),
    Half(OwnedReadHalf),
}

impl Reader {
    fn poll_read_buf(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        match self {
            Reader::Whole(s) => tokio_util::io::poll_read_buf(Pin::new(s), cx, buf),
            Reader::Half(s) => tokio_util::io::poll_read_buf(Pin::new(s), cx, buf),
        }
    }
}

#[derive(Debug)]
enum BodyState {
    Length(u64),
    Chunked(ChunkedDecoder),
    Close,
    Done,
}

/// A backend's response body, read off its connection as the client side polls it.
#[derive(Debug)]
pub struct UpstreamBody {
    io: Option<Reader>,
    buf: BytesMut,
    state: BodyState,
    keep_alive: bool,
    pump: Option<Pump>,
    lease: Lease,
}

impl UpstreamBody {
    /// The body ended: the connection goes back to the pool when it can carry another request.
    fn finish(&mut self) {
        self.state = BodyState::Done;
        let Some(reader) = self.io.take() else { return };
        if !self.keep_alive || !self.buf.is_empty() {
            return;
        }
        let io = match reader {
            Reader::Whole(io) => io,
            Reader::Half(rd) => {
                // Only a pump that finished leaves a connection worth keeping.
                let Some(pump) = self.pump.take() else { return };
                if !pump.is_finished() {
                    pump.abort();
                    return;
                }
                let Some(Ok(Ok(wr))) = futures::FutureExt::now_or_never(pump) else {
                    return;
                };
                match rd.reunite(wr) {
                    Ok(io) => io,
                    Err(_) => return,
                }
            }
        };
        let conn = Conn {
            io,
            buf: std::mem::take(&mut self.buf),
            reused: true,
        };
        self.lease.give_back(conn, Instant::now());
    }

    fn fail(&mut self, e: impl Into<BoxError>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state = BodyState::Done;
        self.io = None;
        Poll::Ready(Some(Err(e.into())))
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if let Some(pump) = self.pump.take() {
            pump.abort();
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            // Take what the buffer holds.
            match &mut this.state {
                BodyState::Done => return Poll::Ready(None),
                BodyState::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                BodyState::Length(left) => {
                    if !this.buf.is_empty() {
                        let n = usize::try_from(*left).unwrap_or(usize::MAX).min(this.buf.len());
                        let data = this.buf.split_to(n).freeze();
                        *left -= n as u64;
                        if *left == 0 {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                BodyState::Chunked(d) => match d.decode(&mut this.buf) {
                    Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Decoded::End) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Decoded::NeedMore) => {}
                    Err(e) => return this.fail(e),
                },
                BodyState::Close => {
                    if !this.buf.is_empty() {
                        let data = this.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
            // Read more.
            let Some(io) = this.io.as_mut() else {
                return Poll::Ready(None);
            };
            if this.buf.capacity() - this.buf.len() < 8 * 1024 {
                this.buf.reserve(64 * 1024);
            }
            match ready!(io.poll_read_buf(cx, &mut this.buf)) {
                Ok(0) => {
                    if matches!(this.state, BodyState::Close) {
                        this.state = BodyState::Done;
                        this.io = None;
                        return Poll::Ready(None);
                    }
                    return this.fail("backend closed the connection before the body ended");
                }
                Ok(_) => {}
                Err(e) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, BodyState::Done | BodyState::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            BodyState::Length(n) => SizeHint::with_exact(n),
            BodyState::Done => SizeHint::with_exact(0),
            _ => SizeHint::new(),
        }
    }
}

/// The response head parser as [`send`] runs it (reserved names remapped), for
/// [`crate::fuzzing`]: the final answer's status, headers and framing, after any 1xx.
pub(crate) fn parse_response_parts(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<(StatusCode, HeaderMap, Framing)>, SendError> {
    let reading = Reading {
        head_request,
        reserved: Reserved::Remap,
    };
    loop {
        match parse_head(buf, reading)? {
            Some(Parsed::Final(h)) => return Ok(Some((h.status, h.headers, h.framing))),
            Some(Parsed::Interim) => continue,
            None => return Ok(None),
        }
    }
}

/// Reads into a buffer (for tests of the head parser).
#[cfg(test)]
fn parse_for_test(bytes: &[u8], head_request: bool) -> Result<Option<ResponseHead>, SendError> {
    let mut buf = BytesMut::from(bytes);
    let reading = Reading {
        head_request,
        reserved: Reserved::Keep,
    };
    loop {
        match parse_head(&mut buf, reading)? {
            Some(Parsed::Final(h)) => return Ok(Some(h)),
            Some(Parsed::Interim) => continue,
            None => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_heads_parse_with_their_framing() {
        let h = parse_for_test(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
            false,
        )
        .expect("ok")
        .expect("complete");
        assert_eq!(h.status, 200);
        assert_eq!(h.framing, Framing::Length(3));
        assert!(h.keep_alive);
        let h = parse_for_test(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false)
            .expect("ok")
            .expect("complete");
        assert_eq!(h.framing, Framing::Chunked);
        let h = parse_for_test(b"HTTP/1.0 200 OK\r\n\r\n", false)
            .expect("ok")
            .expect("complete");
        assert_eq!(h.framing, Framing::Close);
        assert!(!h.keep_alive);
        let h = parse_for_test(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true)
            .expect("ok")
            .expect("complete");
        assert_eq!(h.framing, Framing::Empty, "HEAD answers have no body");
        let h = parse_for_test(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", false)
            .expect("ok")
            .expect("complete");
        assert_eq!(h.framing, Framing::Empty);
        assert!(!h.keep_alive);
        assert!(
            parse_for_test(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                false
            )
            .is_err()
        );
        assert!(
            parse_for_test(b"HTTP/1.1 200 OK\r\nContent-", false)
                .expect("ok")
                .is_none()
        );
    }

    #[test]
    fn backend_urls_split_without_a_uri() {
        let t = split_url("http://b:8080/p/q?x=1#frag").expect("ok");
        assert_eq!(
            (t.tls, t.authority, &*t.path_and_query),
            (false, "b:8080", "/p/q?x=1")
        );
        let t = split_url("HTTPS://[::1]:8443").expect("ok");
        assert_eq!(
            (t.tls, t.authority, &*t.path_and_query),
            (true, "[::1]:8443", "/")
        );
        let t = split_url("http://b?x=1").expect("ok");
        assert_eq!(&*t.path_and_query, "/?x=1");
        let t = split_url("/pets/1").expect("ok");
        assert_eq!((t.authority, &*t.path_and_query), ("", "/pets/1"));
        for bad in [
            "ftp://b/",
            "b/path",
            "http://user@b/",
            "http://b/a b",
            "http://b/a\r\nx: y",
        ] {
            assert!(split_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ports_are_found_after_the_last_colon() {
        assert!(has_port("b:8080"));
        assert!(has_port("[::1]:80"));
        assert!(!has_port("b"));
        assert!(!has_port("[::1]"));
        assert!(!has_port("b:"));
    }

    #[test]
    fn proxied_heads_carry_the_gateways_host_and_forwarding() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("api.example"));
        headers.append("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        headers.append("x-forwarded-for", HeaderValue::from_static("198.51.100.1"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("gopher"));
        headers.insert("x-a", HeaderValue::from_static("1"));
        let forwarded = Forwarded {
            peer: HeaderValue::from_static("127.0.0.1"),
            proto: "https",
            host: Some(HeaderValue::from_static("api.example")),
        };
        let mut head = BytesMut::new();
        encode_head(
            &mut head,
            &Method::GET,
            "/p",
            "b:8080",
            &headers,
            Framing::Length(0),
            Some(&forwarded),
        );
        assert_eq!(
            &head[..],
            &b"GET /p HTTP/1.1\r\nhost: b:8080\r\nx-forwarded-for: 203.0.113.9, 127.0.0.1\r\nx-a: 1\r\n\
               x-forwarded-proto: https\r\nx-forwarded-host: api.example\r\n\r\n"[..]
        );
        // The same through a map (the HTTPS client's way).
        forwarded.apply(&mut headers);
        assert!(headers.get(header::HOST).is_none());
        assert_eq!(headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "api.example");
    }

    #[test]
    fn request_heads_carry_our_framing() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("1"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("9"));
        headers.insert(header::EXPECT, HeaderValue::from_static("100-continue"));
        let mut head = BytesMut::new();
        encode_head(
            &mut head,
            &Method::POST,
            "/p?q=1",
            "b:8080",
            &headers,
            Framing::Chunked,
            None,
        );
        assert_eq!(
            &head[..],
            b"POST /p?q=1 HTTP/1.1\r\nhost: b:8080\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        let mut head = BytesMut::new();
        encode_head(
            &mut head,
            &Method::GET,
            "/p?q=1",
            "b:8080",
            &HeaderMap::new(),
            Framing::Length(0),
            None,
        );
        assert_eq!(&head[..], b"GET /p?q=1 HTTP/1.1\r\nhost: b:8080\r\n\r\n");
    }
}
