//! Helpers for the proxy's end-to-end tests: routing tables from YAML, a gateway on
//! 127.0.0.1:0, upstream servers, HTTP clients (hyper over TLS h1/h2 and plain, curl, raw TCP).
//!
//! Include with `#[path = "support/proxy.rs"] mod support;`.

#![allow(dead_code)]

#[path = "insecure_tls.rs"]
pub mod insecure_tls;
#[path = "manifests.rs"]
mod manifests;

// Not every test binary that includes this module builds manifests.
#[allow(unused_imports)]
pub use manifests::*;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use prometheus_client::registry::Registry;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{Notify, oneshot},
};
use turnpike_controller::ingest::world_from_yaml;
use turnpike_core::compile::{CompileConfig, compile};
use turnpike_core::model::{AccessLogFormat, ApiId};
use turnpike_core::routing::Listener;
use turnpike_core::routing::RoutingTable;
use turnpike_proxy::store::TableStore;
use turnpike_proxy::{CertStore, ListenerConfig, NamespaceLookup, Proxy, ProxyConfig, Shared};
use turnpike_telemetry::metrics::Metrics;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type TestBody = BoxBody<Bytes, BoxError>;
pub type TestClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, TestBody>;

/// The api id `ingest` gives a RestApi without a uid.
pub fn api_id(namespace: &str, name: &str) -> String {
    ApiId::from_uid(&format!("uid-RestApi-{namespace}-{name}")).to_string()
}

/// Compiles YAML objects into a table; panics (with the statuses) when an object is not ready.
pub fn table(yaml: &str, version: u64) -> RoutingTable {
    let world = world_from_yaml(yaml).expect("yaml");
    let compiled = compile(&world, &CompileConfig::default(), version);
    for s in &compiled.statuses {
        assert!(s.is_ready(), "not ready: {s:#?}");
    }
    compiled.table
}

/// The namespace of the e2e APIs.
pub const NS: &str = "shop";

/// A RestApi of one endpoint type in [`NS`], with a Deployment and a `prod` Stage; `spec` is
/// indented YAML under `spec` (a policy, the resources).
pub fn rest_api(name: &str, endpoint: &str, spec: &str) -> String {
    ApiSet::new(NS, name)
        .endpoint(endpoint)
        .spec(spec)
        .stage("prod")
        .yaml()
}

// === Gateway ===

/// A proxy on 127.0.0.1:0: public and private listeners, each over TLS and plain HTTP.
pub struct Gateway {
    pub store: TableStore,
    pub public_tls: SocketAddr,
    pub public_plain: SocketAddr,
    pub private_tls: SocketAddr,
    pub private_plain: SocketAddr,
    pub registry: Arc<Registry>,
    pub shared: Arc<Shared>,
    pub certs: Arc<CertStore>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    pub async fn start(table: RoutingTable) -> Gateway {
        Gateway::start_with(table, |_| {}).await
    }

    pub async fn start_with(table: RoutingTable, tweak: impl FnOnce(&mut ProxyConfig)) -> Gateway {
        let store = TableStore::new();
        store.publish(table);
        Gateway::start_on(store, tweak).await
    }

    pub async fn start_on(store: TableStore, tweak: impl FnOnce(&mut ProxyConfig)) -> Gateway {
        let local = |listener, tls| ListenerConfig {
            addr: "127.0.0.1:0".parse().expect("addr"),
            listener,
            tls,
        };
        let mut config = ProxyConfig {
            listeners: vec![
                local(Listener::Public, true),
                local(Listener::Public, false),
                local(Listener::Private, true),
                local(Listener::Private, false),
            ],
            default_access_log: Some(AccessLogFormat::Json),
            drain_timeout: Duration::from_secs(10),
            ..ProxyConfig::default()
        };
        tweak(&mut config);
        let (registry, metrics) = Metrics::registry();
        let proxy = Proxy::bind(config, store.clone(), Arc::new(metrics))
            .await
            .expect("bind");
        let addr = |l, tls| proxy.local_addr(l, tls).expect("listener");
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let public_tls = addr(Listener::Public, true);
        let public_plain = addr(Listener::Public, false);
        let private_tls = addr(Listener::Private, true);
        let private_plain = addr(Listener::Private, false);
        let shared = proxy.shared();
        let certs = proxy.cert_store();
        let task = tokio::spawn(async move {
            proxy
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
                .expect("run");
        });
        Gateway {
            store,
            public_tls,
            public_plain,
            private_tls,
            private_plain,
            registry: Arc::new(registry),
            shared,
            certs,
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    /// Stops accepting and waits for the drain.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("proxy task");
        }
    }

    /// `https://127.0.0.1:{port}/restapis/{api}/{stage}/_user_request_{path}` on the public
    /// TLS listener.
    pub fn url(&self, api: &str, stage: &str, path: &str) -> String {
        format!(
            "https://{}/restapis/{api}/{stage}/_user_request_{path}",
            self.public_tls
        )
    }

    /// The same on the public plain-HTTP listener.
    pub fn plain_url(&self, api: &str, stage: &str, path: &str) -> String {
        format!(
            "http://{}/restapis/{api}/{stage}/_user_request_{path}",
            self.public_plain
        )
    }

    /// Serves an admin listener (`/readyz`, `/metrics`, `/usage`, test invokes) of this gateway on
    /// 127.0.0.1:0, for the rest of the test; returns `http://{addr}`.
    pub async fn serve_admin(&self) -> String {
        let admin = turnpike_proxy::admin::Admin::bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("admin")
            .with_usage(self.shared.usage.clone())
            .with_cache(self.shared.cache.clone())
            .with_test_invoke(self.shared.clone());
        let base = format!("http://{}", admin.local_addr().expect("addr"));
        tokio::spawn(admin.run(self.store.clone(), self.registry.clone(), std::future::pending()));
        base
    }

    /// The Prometheus text of the gateway's registry.
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("encode");
        out
    }
}

/// A namespace lookup that says every caller is in `ns`.
pub fn namespace_is(ns: &'static str) -> Arc<dyn NamespaceLookup> {
    Arc::new(move |_ip: std::net::IpAddr| Some(ns.to_string()))
}

// === Upstream ===

/// A test backend on 127.0.0.1:0. Paths:
/// - `/echo/...` (and anything else): 200 with a JSON echo of method, path, query, headers and
///   body length; sets `Server`, `WWW-Authenticate`, `Connection: x-hop` and `X-Hop`, so
///   header handling shows.
/// - `/status/{code}`: that status, body `status {code}`.
/// - `/sleep/{ms}`: 200 after sleeping.
/// - `/bytes/{n}`: n bytes, streamed in 64 KiB chunks.
/// - `/gate`: one chunk `first`, then waits for [`Upstream::open_gate`], then `rest`.
/// - `/read-gated`: reads the request body, signals [`Upstream::first_chunk`] at the first
///   chunk, and answers the total length.
/// - `/mirror`: answers the request body as it arrived, with the request's Content-Type (or
///   the one in `x-reply-content-type`).
/// - `/text/{n}`: n bytes of text with a Content-Length; `/encoded`: a body the backend
///   already gzipped (`Content-Encoding: gzip`).
/// - `/cookie`: 200 with a `Set-Cookie`; `/private`: 200 with `Cache-Control: private`.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub gate: Arc<Notify>,
    pub first_chunk: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub async fn start() -> Upstream {
        Upstream::start_inner(None).await
    }

    /// The same backend over TLS (a self-signed certificate for `localhost`, ALPN h2 and
    /// http/1.1).
    pub async fn start_tls() -> Upstream {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let cert = rustls::pki_types::CertificateDer::from(generated.cert.der().to_vec());
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(generated.signing_key.serialize_der()).expect("key");
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .expect("server config");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Upstream::start_inner(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start_inner(tls: Option<tokio_rustls::TlsAcceptor>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Notify::new());
        let first_chunk = Arc::new(Notify::new());
        let (h, g, f) = (hits.clone(), gate.clone(), first_chunk.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (h, g, f) = (h.clone(), g.clone(), f.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        h.fetch_add(1, Ordering::SeqCst);
                        upstream_handle(req, addr, g.clone(), f.clone())
                    });
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                            }
                        }
                    }
                });
            }
        });
        Upstream {
            addr,
            hits,
            gate,
            first_chunk,
            task,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn open_gate(&self) {
        self.gate.notify_one();
    }
}

fn full_response(status: u16, body: String) -> Response<TestBody> {
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(status).expect("status");
    r
}

async fn upstream_handle(
    req: Request<Incoming>,
    me: SocketAddr,
    gate: Arc<Notify>,
    first_chunk: Arc<Notify>,
) -> Result<Response<TestBody>, Infallible> {
    let path = req.uri().path().to_string();
    if let Some(code) = path.strip_prefix("/status/") {
        let code: u16 = code.parse().unwrap_or(500);
        let mut r = full_response(code, format!("status {code}"));
        r.headers_mut().insert("x-backend-status", code.into());
        r.headers_mut()
            .insert("content-type", "text/plain".parse().expect("ct"));
        return Ok(r);
    }
    if let Some(ms) = path.strip_prefix("/sleep/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        return Ok(full_response(200, "slept".into()));
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        let n: usize = n.parse().unwrap_or(0);
        let chunks = futures::stream::unfold(n, |left| async move {
            if left == 0 {
                return None;
            }
            let k = left.min(64 * 1024);
            Some((
                Ok::<_, BoxError>(Frame::data(Bytes::from(vec![b'x'; k]))),
                left - k,
            ))
        });
        return Ok(Response::new(BodyExt::boxed(StreamBody::new(chunks))));
    }
    if path == "/gate" {
        let chunks = futures::stream::unfold(0u8, move |state| {
            let gate = gate.clone();
            async move {
                match state {
                    0 => Some((Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"first"))), 1)),
                    1 => {
                        gate.notified().await;
                        Some((Ok(Frame::data(Bytes::from_static(b"rest"))), 2))
                    }
                    _ => None,
                }
            }
        });
        return Ok(Response::new(BodyExt::boxed(StreamBody::new(chunks))));
    }
    if path == "/mirror" {
        let reply_type = req
            .headers()
            .get("x-reply-content-type")
            .or_else(|| req.headers().get("content-type"))
            .cloned();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let mut r = Response::new(full(body));
        if let Some(ct) = reply_type {
            r.headers_mut().insert("content-type", ct);
        }
        return Ok(r);
    }
    if let Some(n) = path.strip_prefix("/text/") {
        let n: usize = n.parse().unwrap_or(0);
        let mut r = full_response(200, "abcdefghij".repeat(n / 10 + 1)[..n].to_string());
        r.headers_mut()
            .insert("content-type", "text/plain".parse().expect("ct"));
        return Ok(r);
    }
    if path == "/cookie" || path == "/private" {
        let mut r = full_response(200, "for one client".into());
        let (name, value) = if path == "/cookie" {
            ("set-cookie", "session=s3cr3t; HttpOnly")
        } else {
            ("cache-control", "private, max-age=60")
        };
        r.headers_mut().insert(name, value.parse().expect("header"));
        return Ok(r);
    }
    if path == "/encoded" {
        let mut r = Response::new(full(Bytes::from_static(b"\x1f\x8b already gzipped")));
        r.headers_mut()
            .insert("content-encoding", "gzip".parse().expect("ce"));
        return Ok(r);
    }
    if path == "/read-gated" {
        let mut body = req.into_body();
        let mut total = 0usize;
        let mut signalled = false;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Some(d) = frame.data_ref() {
                total += d.len();
                if !signalled {
                    signalled = true;
                    first_chunk.notify_one();
                }
            }
        }
        return Ok(full_response(200, format!("{total}")));
    }
    // Echo.
    let method = req.method().to_string();
    let version = format!("{:?}", req.version());
    let query = req.uri().query().unwrap_or_default().to_string();
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                serde_json::Value::from(v.to_str().unwrap_or_default()),
            )
        })
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json = serde_json::json!({
        "backend": me.to_string(),
        "method": method,
        "version": version,
        "path": path,
        "query": query,
        "headers": headers,
        "body_len": body.len(),
    });
    let mut r = full_response(200, json.to_string());
    let h = r.headers_mut();
    h.insert("content-type", "application/json".parse().expect("ct"));
    h.insert("server", "upstream/1.0".parse().expect("server"));
    h.insert("www-authenticate", "Basic".parse().expect("wa"));
    h.insert("x-hop", "secret".parse().expect("hop"));
    // The gateway's own id replaces a backend's.
    h.insert("x-amzn-requestid", "from-the-backend".parse().expect("id"));
    h.insert("connection", "x-hop".parse().expect("conn"));
    Ok(r)
}

/// A port with nothing listening (connection refused). The port stays bound, without a
/// listen, for the rest of the test process: a port merely freed could be handed to another
/// test's server running at the same time, and then something would answer there.
pub async fn closed_port() -> SocketAddr {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = socket.local_addr().expect("addr");
    std::mem::forget(socket);
    addr
}

/// A backend that accepts, reads the request and resets the connection.
pub async fn resetting_backend() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            #[allow(deprecated)]
            let _ = s.set_linger(Some(Duration::ZERO));
            drop(s);
        }
    });
    (addr, task)
}

/// A backend that answers every request head with the same bytes, written as they are (to see
/// what the gateway does with a backend's exact spelling). Requests must carry no body.
pub async fn fixed_backend(answer: &'static [u8]) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, task)
}

/// What one connection to a [`Recorder`] carried, as bytes, and whether they made a whole
/// request (then the recorder answered it).
#[derive(Debug)]
pub struct Received {
    pub bytes: Vec<u8>,
    pub complete: bool,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// A raw backend that records what each connection sends. Once a whole request has arrived
/// (by its Content-Length, or the last chunk of a chunked body) it answers `200` with `{}` and
/// closes; a connection that closes first is recorded as incomplete. Each record is handed
/// over when its connection ends, so a test sees exactly what a backend would have read.
pub struct Recorder {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    rx: tokio::sync::mpsc::UnboundedReceiver<Received>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    pub async fn start() -> Recorder {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(record(s, tx.clone()));
            }
        });
        Recorder {
            addr,
            accepted,
            rx,
            task,
        }
    }

    /// How many connections were made to it so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The record of the next connection to end (at most 20 s away).
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(20), self.rx.recv())
            .await
            .expect("a backend connection ended")
            .expect("recorder running")
    }
}

async fn record(mut s: TcpStream, tx: tokio::sync::mpsc::UnboundedSender<Received>) {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    let complete = loop {
        if whole_request(&bytes) {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                .await;
            let _ = s.shutdown().await;
            break true;
        }
        match tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break false,
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
        }
    };
    let _ = tx.send(Received { bytes, complete });
}

/// Whether `bytes` hold a whole request as the gateway writes them (lowercase framing names).
fn whole_request(bytes: &[u8]) -> bool {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let body = &bytes[end + 4..];
    if head.contains("\r\ntransfer-encoding: chunked") {
        return body == b"0\r\n\r\n" || body.ends_with(b"\r\n0\r\n\r\n");
    }
    let length = head
        .split("\r\n")
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse::<usize>().ok());
    body.len() >= length.unwrap_or(0)
}

// === Clients ===

/// A client over TLS (any certificate) or plain HTTP; `h2` forces HTTP/2 (ALPN h2 over TLS,
/// prior knowledge over plain).
pub fn client(h2: bool) -> TestClient {
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(insecure_tls::client_config())
        .https_or_http();
    let connector = if h2 {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    let mut b = Client::builder(TokioExecutor::new());
    if h2 {
        b.http2_only(true);
    }
    b.build(connector)
}

pub fn empty() -> TestBody {
    Full::new(Bytes::new()).map_err(|e| match e {}).boxed()
}

pub fn full(b: impl Into<Bytes>) -> TestBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

/// The answer of a request, body collected.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
    pub version: http::Version,
    /// The body as received (binary answers).
    pub bytes: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and the exact body, showing the whole answer when either differs.
    #[track_caller]
    pub fn assert(&self, status: u16, body: &str) {
        assert_eq!((self.status, self.body.as_str()), (status, body), "{self:?}");
    }
}

/// Sends a request and collects the answer.
pub async fn send(client: &TestClient, req: Request<TestBody>) -> Answer {
    let resp = client.request(req).await.expect("request");
    let status = resp.status().as_u16();
    let version = resp.version();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Answer {
        status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        version,
        bytes: body,
    }
}

/// GET with a fresh h1 client (TLS or plain by the URL scheme).
/// A GET with an `x-api-key` header when `key` is given.
pub async fn get_with_key(client: &TestClient, url: &str, key: Option<&str>) -> Answer {
    let mut req = Request::get(url);
    if let Some(key) = key {
        req = req.header("x-api-key", key);
    }
    send(client, req.body(empty()).expect("request")).await
}

pub async fn get(url: &str) -> Answer {
    send(&client(false), Request::get(url).body(empty()).expect("req")).await
}

/// Writes raw bytes to a plain listener and reads until the server closes the connection
/// (send `Connection: close`), at most 5 s of silence or 256 KiB.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    raw_on(addr, false, request).await
}

/// [`raw`] over TLS (ALPN `http/1.1`, any certificate) when `tls`, else over plain TCP.
pub async fn raw_on(addr: SocketAddr, tls: bool, request: &[u8]) -> String {
    let s = TcpStream::connect(addr).await.expect("connect");
    if !tls {
        return exchange_raw(s, request).await;
    }
    let mut config = insecure_tls::client_config();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let s = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, s)
        .await
        .expect("TLS handshake");
    exchange_raw(s, request).await
}

async fn exchange_raw<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, request: &[u8]) -> String {
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > 256 * 1024 {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP/1.1 answer.
pub fn raw_status(answer: &str) -> u16 {
    answer.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Runs curl with `-sS -k -i`; returns (status, what curl printed: headers and body).
pub async fn curl(args: &[&str]) -> (u16, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-k", "-i", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .await
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The access-log lines the global subscriber wrote (see [`capture_access_log`]).
#[derive(Clone, Default)]
pub struct Lines(Arc<std::sync::RwLock<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.read().expect("lock")).into_owned()
    }

    /// Everything written, once a line with `id` is (a line is written when the response body
    /// ends: the server may not have finished; bounded at about two seconds).
    pub async fn until(&self, id: &str) -> String {
        for _ in 0..200 {
            if self.text().contains(id) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.text()
    }
}

/// The line of request `id` in `text`.
pub fn line_of(text: &str, id: &str) -> String {
    text.lines()
        .find(|l| l.contains(id))
        .unwrap_or_else(|| panic!("no line for {id} in {text}"))
        .to_string()
}

/// Installs the global subscriber of a test binary: the access log (`turnpike::access_log`)
/// only, into the returned buffer. Once per binary.
pub fn capture_access_log() -> Lines {
    let lines = Lines::default();
    let writer = lines.clone();
    tracing_subscriber::fmt()
        .with_env_filter("turnpike::access_log=info")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    lines
}
