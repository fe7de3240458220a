//! Body types: what the proxy answers with, and the size-limited request body it forwards.
//!
//! Bodies are never buffered: a backend's [`Incoming`] body is handed to the client frame by
//! frame, and the client's body is handed to the backend the same way through [`Limited`].

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// The error type of proxied bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body: nothing, one buffer, or a backend's body streamed through.
#[derive(Debug, Default)]
pub struct ProxyBody {
    kind: Kind,
}

#[derive(Debug, Default)]
enum Kind {
    #[default]
    Empty,
    Full(Option<Bytes>),
    Stream(Incoming),
}

// === impl ProxyBody ===

impl ProxyBody {
    pub fn empty() -> Self {
        ProxyBody { kind: Kind::Empty }
    }

    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return ProxyBody::empty();
        }
        ProxyBody {
            kind: Kind::Full(Some(bytes)),
        }
    }

    pub fn stream(body: Incoming) -> Self {
        ProxyBody {
            kind: Kind::Stream(body),
        }
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
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_none(),
            Kind::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(s) => s.size_hint(),
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
    inner: Option<Incoming>,
    remaining: u64,
    limit: u64,
}

// === impl Limited ===

impl Limited {
    pub fn new(body: Incoming, limit: u64) -> Self {
        Limited {
            inner: Some(body),
            remaining: limit,
            limit,
        }
    }

    /// A body with nothing in it (e.g. for a retry of a body-less request).
    pub fn empty() -> Self {
        Limited {
            inner: None,
            remaining: 0,
            limit: 0,
        }
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
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > this.remaining {
                        this.inner = None;
                        return Poll::Ready(Some(Err(Box::new(LimitExceeded { limit: this.limit }))));
                    }
                    this.remaining -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
