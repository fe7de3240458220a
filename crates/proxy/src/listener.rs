//! Accepting connections: TCP, the TLS handshake (ALPN picks h2 or http/1.1), the HTTP
//! server of each protocol ([`h1::server`] for HTTP/1.1, hyper for HTTP/2), and the graceful
//! drain at shutdown.

use std::{
    convert::Infallible,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Buf as _, Bytes};
use futures::future::Either;
use hyper::{body::Incoming, server::conn::http2, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument as _;

use crate::{
    ListenerConfig, Shared,
    body::RequestBody,
    ctx::ConnInfo,
    error::Reject,
    h1::server::{self as h1, Outcome},
    service,
};

/// The HTTP/2 server settings: bounded header lists and streams.
fn h2_builder(shared: &Shared) -> http2::Builder<TokioExecutor> {
    let mut b = http2::Builder::new(TokioExecutor::new());
    let header_budget = shared.config.limits.max_header_bytes + shared.config.limits.max_uri_bytes;
    b.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(header_budget).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    b
}

/// Accepts on `socket` until `stop` fires; the caller waits on `tracker` for the drain.
pub(crate) async fn serve(
    socket: TcpListener,
    cfg: ListenerConfig,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    let h2 = Arc::new(h2_builder(&shared));
    tracing::info!(addr = %cfg.addr, listener = ?cfg.listener, tls = cfg.tls, "listening");
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = socket.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = ConnInfo::new(peer, cfg.listener, tls.is_some());
        let shared = shared.clone();
        let h2 = h2.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        let span = tracing::debug_span!("conn", %peer, listener = ?cfg.listener);
        let tasks = tracker.clone();
        let connection = async move {
            match tls {
                None => match h1::serve(stream, shared.clone(), conn.clone(), stop.clone(), true).await {
                    Outcome::Http2(io, read) => {
                        serve_h2(&h2, Rewind::new(io, read), shared, conn, stop).await;
                    }
                    Outcome::WebSocket(upgraded) => websocket(&tasks, *upgraded, shared, conn, stop),
                    Outcome::Closed => {}
                },
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(shared.config.handshake_timeout, acceptor.accept(stream)).await;
                    let stream = match handshake {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    };
                    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        serve_h2(&h2, stream, shared, conn, stop).await;
                    } else if let Outcome::WebSocket(upgraded) =
                        h1::serve(stream, shared.clone(), conn.clone(), stop.clone(), false).await
                    {
                        websocket(&tasks, *upgraded, shared, conn, stop);
                    }
                }
            }
        };
        // Only pay for the span wrapper when someone listens at DEBUG.
        if span.is_disabled() {
            tracker.spawn(connection);
        } else {
            tracker.spawn(connection.instrument(span));
        }
    }
}

/// Runs an upgraded WebSocket connection in a task of its own (tracked, so the drain waits
/// for its close), and lets the connection's task end: an open WebSocket holds only its own
/// state, not the room the HTTP server and the TLS handshake needed.
fn websocket<IO>(
    tasks: &TaskTracker,
    upgraded: crate::websocket::Upgraded<IO>,
    shared: Arc<Shared>,
    conn: ConnInfo,
    stop: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let run = crate::websocket::run(upgraded, shared, conn, stop);
    // The connection's span, if someone listens at DEBUG.
    let span = tracing::Span::current();
    if span.is_disabled() {
        tasks.spawn(run);
    } else {
        tasks.spawn(run.instrument(span));
    }
}

/// Serves an HTTP/2 connection with hyper; a stop sends GOAWAY and lets open streams finish.
async fn serve_h2<IO>(
    builder: &http2::Builder<TokioExecutor>,
    io: IO,
    shared: Arc<Shared>,
    conn: ConnInfo,
    stop: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let svc = service_fn(move |req: http::Request<Incoming>| {
        let shared = shared.clone();
        let conn = conn.clone();
        // Fields are only evaluated when DEBUG is enabled for this target.
        let span = tracing::debug_span!("request", method = %req.method(), path = req.uri().path());
        let serve = async move {
            let (mut parts, body) = req.into_parts();
            if !shared.config.allow_underscores_in_headers {
                drop_underscored(&mut parts.headers);
            }
            // The URI type takes raw bytes beyond ASCII in `:path` (the HTTP/1.1 server refuses
            // them while it reads the head).
            let mut resp = if parts
                .uri
                .path_and_query()
                .is_some_and(|pq| !pq.as_str().is_ascii())
            {
                service::reject(&shared, &conn, Reject::BadRequest("invalid request target"))
            } else {
                service::serve(&shared, &conn, parts, RequestBody::from(body)).await
            };
            service::ids_into_headers(&mut resp);
            Ok::<_, Infallible>(resp)
        };
        // Only pay for the span wrapper when someone listens at DEBUG.
        if span.is_disabled() {
            Either::Right(serve)
        } else {
            Either::Left(serve.instrument(span))
        }
    });
    let mut connection = std::pin::pin!(builder.serve_connection(TokioIo::new(io), svc));
    let result = tokio::select! {
        r = connection.as_mut() => r,
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "HTTP/2 connection ended with an error");
    }
}

/// Removes header names with `_` (see `ProxyConfig::allow_underscores_in_headers`; the
/// HTTP/1.1 server leaves them out as it reads the head). One pass over the names first: most
/// requests have none.
fn drop_underscored(headers: &mut http::HeaderMap) {
    if !headers.keys().any(|n| n.as_str().contains('_')) {
        return;
    }
    let names: Vec<http::HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().contains('_'))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// An IO whose first reads return bytes already read off it.
struct Rewind<IO> {
    read: Bytes,
    inner: IO,
}

impl<IO> Rewind<IO> {
    fn new(inner: IO, read: Bytes) -> Self {
        Rewind { read, inner }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read[..n]);
            self.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
