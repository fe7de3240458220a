//! Accepting connections: TCP, the TLS handshake (ALPN picks h2 or http/1.1), hyper, and the
//! graceful drain at shutdown.

use std::{sync::Arc, time::Duration};

use futures::future::Either;
use hyper::service::service_fn;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::{net::TcpListener, sync::watch};
use tokio_rustls::TlsAcceptor;
use tracing::Instrument as _;

use crate::proxy::{ListenerConfig, Shared, ctx::ConnInfo, service};

/// The HTTP server settings: h1 keep-alive with a header read timeout, h2 with bounded
/// header lists; the read buffer bounds the request head (431 beyond).
fn builder(shared: &Shared) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    let header_budget = shared.config.limits.max_header_bytes + shared.config.limits.max_uri_bytes;
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true)
        .max_buf_size(header_budget.max(8192) + 8192);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(header_budget).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    b
}

/// Accepts on `socket` until `stop` turns true, then drains.
pub(crate) async fn serve(
    socket: TcpListener,
    cfg: ListenerConfig,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let builders = Arc::new(Builders {
        auto: builder(&shared),
        h1: builder(&shared).http1_only(),
        h2: builder(&shared).http2_only(),
    });
    let graceful = GracefulShutdown::new();
    tracing::info!(addr = %cfg.addr, listener = ?cfg.listener, tls = cfg.tls, "listening");
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
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
        let builders = builders.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let span = tracing::debug_span!("conn", %peer, listener = ?cfg.listener);
        tokio::spawn(
            async move {
                let svc = {
                    let shared = shared.clone();
                    service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        // Fields are only evaluated when DEBUG is enabled for this target.
                        let span =
                            tracing::debug_span!("request", method = %req.method(), path = req.uri().path());
                        let serve = service::serve(shared.clone(), conn.clone(), req);
                        // Only pay for the span wrapper when someone listens at DEBUG.
                        if span.is_disabled() {
                            Either::Right(serve)
                        } else {
                            Either::Left(serve.instrument(span))
                        }
                    })
                };
                let result = match tls {
                    None => {
                        let io = TokioIo::new(stream);
                        watcher.watch(builders.auto.serve_connection(io, svc)).await
                    }
                    Some(acceptor) => {
                        let handshake =
                            tokio::time::timeout(shared.config.handshake_timeout, acceptor.accept(stream))
                                .await;
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
                        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                        let io = TokioIo::new(stream);
                        let b = if h2 { &builders.h2 } else { &builders.h1 };
                        watcher.watch(b.serve_connection(io, svc)).await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
            .instrument(span),
        );
    }
    drop(socket);
    let drain = shared.config.drain_timeout;
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(addr = %cfg.addr, ?drain, "drain timeout: closing the remaining connections");
    }
}

struct Builders {
    auto: auto::Builder<TokioExecutor>,
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
}
