//! Body types: the client's request body as the phases see it, what the proxy answers with,
//! and the size-limited request body it forwards.
//!
//! Bodies are never buffered: a backend's body is handed to the client frame by frame, and
//! the client's body is handed to the backend the same way through [`Limited`]. A body that
//! had already arrived whole with its head travels as one buffer.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::mpsc;

use crate::h1::{self, ReceivedHead};

/// The error type of proxied bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A client's request body: none, one buffer that arrived with the head, streamed from an
/// HTTP/1.1 connection (see [`h1::server`]), or an HTTP/2 stream's (hyper's).
#[derive(Debug, Default)]
pub enum RequestBody {
    #[default]
    Empty,
    Full(Option<Bytes>),
    /// Frames read by the connection's body reader; `length` is the declared size.
    Streamed {
        rx: mpsc::Receiver<Result<Bytes, BoxError>>,
        length: Option<u64>,
        done: bool,
    },
    Hyper(H2Body),
}

/// An HTTP/2 stream's body (hyper's), which never hands over the bytes that complete its
/// declared `content-length` before the stream has ended: they are held until the end comes,
/// and dropped if more data or an error does. A backend reading the same length therefore
/// never gets a complete request from a stream that turns out longer (or is reset); one
/// that turns out shorter is reset by the HTTP/2 layer, and the backend sees it cut.
#[derive(Debug)]
pub struct H2Body {
    inner: Incoming,
    /// What the declared length still expects, when one was declared.
    remaining: Option<u64>,
    held: Option<Bytes>,
}

/// The client's request body failed: malformed framing, cut short, longer or shorter than
/// declared. Upstream sends see it in their error's sources and answer 400, not 502.
#[derive(Debug, thiserror::Error)]
#[error("request body: {0}")]
pub struct ClientBodyError(#[source] pub BoxError);

impl RequestBody {
    pub fn full(bytes: Bytes) -> Self {
        if bytes.is_empty() {
            RequestBody::Empty
        } else {
            RequestBody::Full(Some(bytes))
        }
    }

    /// The whole body, when it is already here (nothing to wait for).
    pub fn as_full(&self) -> Option<&Bytes> {
        match self {
            RequestBody::Full(b) => b.as_ref(),
            _ => None,
        }
    }
}

impl From<Incoming> for RequestBody {
    fn from(b: Incoming) -> Self {
        let remaining = b.size_hint().exact();
        RequestBody::Hyper(H2Body {
            inner: b,
            remaining,
            held: None,
        })
    }
}

// === impl H2Body ===

impl H2Body {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let polled = match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(p) => p,
            };
            let frame = match polled {
                None => return Poll::Ready(self.held.take().map(|b| Ok(Frame::data(b)))),
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                Some(Ok(frame)) => frame,
            };
            let Some(data) = frame.data_ref() else {
                // Trailers end the stream: what was held goes first, and they are dropped.
                return Poll::Ready(self.held.take().map(|b| Ok(Frame::data(b))));
            };
            if data.is_empty() {
                continue;
            }
            let Some(remaining) = self.remaining else {
                return Poll::Ready(Some(Ok(frame)));
            };
            let n = data.len() as u64;
            if self.held.is_some() || n > remaining {
                self.held = None;
                return Poll::Ready(Some(Err("request body longer than its content-length".into())));
            }
            self.remaining = Some(remaining - n);
            if n < remaining || self.inner.is_end_stream() {
                return Poll::Ready(Some(Ok(frame)));
            }
            // The declared length is complete but the stream is not: wait for its end.
            self.held = frame.into_data().ok();
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            RequestBody::Streamed { rx, done, .. } => match rx.poll_recv(cx) {
                Poll::Ready(Some(r)) => Poll::Ready(Some(
                    r.map(Frame::data)
                        .map_err(|e| Box::new(ClientBodyError(e)) as BoxError),
                )),
                Poll::Ready(None) => {
                    *done = true;
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            },
            RequestBody::Hyper(b) => b
                .poll_frame(cx)
                .map_err(|e| Box::new(ClientBodyError(e)) as BoxError),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Full(b) => b.is_none(),
            RequestBody::Streamed { done, .. } => *done,
            RequestBody::Hyper(b) => b.held.is_none() && b.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            RequestBody::Streamed { length, .. } => length.map_or_else(SizeHint::new, SizeHint::with_exact),
            RequestBody::Hyper(b) => b.inner.size_hint(),
        }
    }
}

/// A response body: nothing, one buffer, or a backend's body streamed through.
#[derive(Debug, Default)]
pub struct ProxyBody {
    kind: Kind,
    /// The backend's head, when its header names are to be written as it spelled them. Kept
    /// here rather than as a response extension: an extension map costs three allocations
    /// per answer, and the body travels with the head to the writer as the ids do. Boxed: the
    /// body is moved whole several times per request, and most answers have none.
    received: Option<Box<ReceivedHead>>,
}

#[derive(Debug, Default)]
enum Kind {
    #[default]
    Empty,
    Full(Option<Bytes>),
    /// From a TLS backend, through hyper-util.
    Stream(Incoming),
    /// From a plain-HTTP backend, read off the pooled connection as it is polled.
    Upstream(Box<h1::client::UpstreamBody>),
    /// Another body, compressed as it streams.
    Compressed(Box<crate::compress::Compressor>),
    /// Bytes already read off a body (to see whether it fits the cache), then the rest of it.
    Chain(Option<Bytes>, Box<ProxyBody>),
    /// A body that failed after what came before it was read: the error, once.
    Failed(Option<BoxError>),
}

// === impl ProxyBody ===

impl ProxyBody {
    pub fn empty() -> Self {
        ProxyBody {
            kind: Kind::Empty,
            received: None,
        }
    }

    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return ProxyBody::empty();
        }
        ProxyBody {
            kind: Kind::Full(Some(bytes)),
            received: None,
        }
    }

    pub fn stream(body: Incoming) -> Self {
        ProxyBody {
            kind: Kind::Stream(body),
            received: None,
        }
    }

    pub(crate) fn upstream(body: h1::client::UpstreamBody) -> Self {
        ProxyBody {
            kind: Kind::Upstream(Box::new(body)),
            received: None,
        }
    }

    /// A body compressed as it streams; the backend's spelling of the head stays with it.
    pub(crate) fn compressed(
        compressor: crate::compress::Compressor,
        received: Option<Box<ReceivedHead>>,
    ) -> Self {
        ProxyBody {
            kind: Kind::Compressed(Box::new(compressor)),
            received,
        }
    }

    /// `prefix`, already read off `rest`, then the rest.
    pub(crate) fn chain(prefix: Bytes, mut rest: ProxyBody) -> Self {
        let received = rest.take_received();
        ProxyBody {
            kind: Kind::Chain(Some(prefix), Box::new(rest)),
            received,
        }
    }

    /// `prefix`, then `error` (a body that failed while it was being read ahead).
    pub(crate) fn failed(prefix: Bytes, error: BoxError, received: Option<Box<ReceivedHead>>) -> Self {
        ProxyBody {
            kind: Kind::Chain(
                Some(prefix),
                Box::new(ProxyBody {
                    kind: Kind::Failed(Some(error)),
                    received: None,
                }),
            ),
            received,
        }
    }

    /// Takes the backend's head (for a body that wraps this one).
    pub(crate) fn take_received(&mut self) -> Option<Box<ReceivedHead>> {
        self.received.take()
    }

    /// This body comes with `head`, whose header names are written as they were received.
    pub(crate) fn with_received(mut self, head: Option<ReceivedHead>) -> Self {
        self.received = head.map(Box::new);
        self
    }

    /// The backend's head, for writing its header names as it spelled them.
    pub fn received(&self) -> Option<&ReceivedHead> {
        self.received.as_deref()
    }

    /// Forgets the backend's spelling: the answer's names are the gateway's own.
    pub fn forget_received(&mut self) {
        self.received = None;
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(s) => Pin::new(s).poll_frame(cx).map_err(Into::into),
            Kind::Upstream(s) => Pin::new(&mut **s).poll_frame(cx),
            Kind::Compressed(c) => Pin::new(&mut **c).poll_frame(cx),
            Kind::Chain(prefix, rest) => match prefix.take() {
                Some(b) if !b.is_empty() => Poll::Ready(Some(Ok(Frame::data(b)))),
                _ => Pin::new(&mut **rest).poll_frame(cx),
            },
            Kind::Failed(e) => Poll::Ready(e.take().map(Err)),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_none(),
            Kind::Stream(s) => s.is_end_stream(),
            Kind::Upstream(s) => s.is_end_stream(),
            Kind::Compressed(c) => c.is_end_stream(),
            Kind::Chain(prefix, rest) => prefix.as_ref().is_none_or(Bytes::is_empty) && rest.is_end_stream(),
            Kind::Failed(e) => e.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(s) => s.size_hint(),
            Kind::Upstream(s) => s.size_hint(),
            Kind::Compressed(c) => c.size_hint(),
            Kind::Chain(prefix, rest) => {
                let n = prefix.as_ref().map_or(0, |b| b.len() as u64);
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + n);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + n);
                }
                hint
            }
            Kind::Failed(_) => SizeHint::new(),
        }
    }
}

/// The request body was cut at the payload limit.
#[derive(Debug, thiserror::Error)]
#[error("request body over {limit} bytes")]
pub struct LimitExceeded {
    pub limit: u64,
}

/// A client's body forwarded to a backend, failing with [`LimitExceeded`] once more than
/// `limit` bytes went through (the declared Content-Length is checked before, up front).
#[derive(Debug)]
pub struct Limited {
    inner: RequestBody,
    remaining: u64,
    limit: u64,
}

// === impl Limited ===

impl Limited {
    pub fn new(body: RequestBody, limit: u64) -> Self {
        Limited {
            inner: body,
            remaining: limit,
            limit,
        }
    }

    /// A body with nothing in it (e.g. for a retry of a body-less request).
    pub fn empty() -> Self {
        Limited {
            inner: RequestBody::Empty,
            remaining: 0,
            limit: 0,
        }
    }

    /// The whole body when it is one buffer already here (it can be sent again).
    pub fn as_full(&self) -> Option<&Bytes> {
        self.inner.as_full().filter(|b| b.len() as u64 <= self.remaining)
    }
}

impl Body for Limited {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > this.remaining {
                        this.inner = RequestBody::Empty;
                        return Poll::Ready(Some(Err(Box::new(LimitExceeded { limit: this.limit }))));
                    }
                    this.remaining -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
