//! The admin listener: `/metrics` (Prometheus text), `/healthz` (the process is up),
//! `/readyz` (a routing table has been published, so requests are answered from real
//! configuration rather than an empty table), `/usage` (usage reports) and
//! `POST /cache/flush?api=ID&stage=NAME` (empties one stage's cache on this replica, and on
//! every replica with the shared tier: AWS FlushStageCache; the `turnpike.dev/flush-cache`
//! Stage annotation flushes every replica) and
//! `GET /restapis/{apiId}/stages/{stage}/exports/{oas30|swagger}?extensions=...` (AWS
//! GetExport; `Accept: application/yaml` for YAML), answered by the [`Exports`] it is given,
//! and `POST /restapis/{apiId}/stages/{stage}/test-invoke` (AWS TestInvokeMethod: one request
//! through the stage's routing table with its execution log, see [`crate::test_invoke`]).
//!
//! The flush and the test invoke act on the APIs, so they are not open to whoever reaches the admin port
//! (it listens on every interface in a cluster, for Prometheus): with a token file
//! (`--admin-token-file`), it takes `Authorization: Bearer <token>`, compared in constant
//! time, from any peer; without one, only loopback peers (`kubectl port-forward`, `kubectl
//! exec`, a sidecar) may flush. Others get 401 / 403. The flush is served on the admin
//! listener only: the public and private listeners route every path to APIs.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::store::TableStore;

/// An export request: `GET /restapis/{api_id}/stages/{stage}/exports/{kind}`.
#[derive(Debug)]
pub struct ExportRequest<'a> {
    pub api_id: &'a str,
    pub stage: &'a str,
    /// `oas30` or `swagger`, as requested (not checked yet).
    pub kind: &'a str,
    /// The `extensions` query parameter (`integrations,authorizers,apigateway`).
    pub extensions: Option<&'a str>,
    /// The client asked for `application/yaml`.
    pub yaml: bool,
}

/// An exported document.
#[derive(Debug)]
pub struct Exported {
    pub content_type: &'static str,
    pub body: String,
}

/// What answers export requests: the proxy knows compiled routes, not RestApi definitions, so
/// the controller (which reads them) provides this.
pub trait Exports: Send + Sync + 'static {
    /// The document, or a status and message (404 for an unknown API or stage).
    fn export(&self, request: &ExportRequest<'_>) -> Result<Exported, (StatusCode, String)>;
}

/// An admin listener, bound.
pub struct Admin {
    socket: TcpListener,
    usage: Option<Arc<crate::usage::Usage>>,
    cache: Option<Arc<crate::cache::StageCaches>>,
    /// The bearer token the flush takes, read from this file at each flush.
    token_file: Option<Arc<PathBuf>>,
    exports: Option<Arc<dyn Exports>>,
    /// What test invokes run on (the proxy's state); without it they answer 404.
    test_invoke: Option<Arc<crate::Shared>>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// Binds the admin listener (default `0.0.0.0:9090`).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        Ok(Admin {
            socket: TcpListener::bind(addr).await?,
            usage: None,
            cache: None,
            token_file: None,
            exports: None,
            test_invoke: None,
        })
    }

    /// Reports the limits in force on `/readyz` (`limits: shared|local|closed`, and
    /// `replicas: N`, how many replicas share local limits) and serves usage reports
    /// (`/usage`).
    pub fn with_usage(mut self, usage: Arc<crate::usage::Usage>) -> Self {
        self.usage = Some(usage);
        self
    }

    /// Serves `POST /cache/flush?api=ID&stage=NAME` over these stage caches.
    pub fn with_cache(mut self, cache: Arc<crate::cache::StageCaches>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Requires `Authorization: Bearer <the file's content, trimmed>` on `POST /cache/flush`
    /// (else only loopback peers may flush). The file is read at each flush, so a rotated
    /// Secret applies at once.
    pub fn with_token_file(mut self, path: Option<PathBuf>) -> Self {
        self.token_file = path.map(Arc::new);
        self
    }

    /// Serves `GET /restapis/{apiId}/stages/{stage}/exports/{type}` from `exports`.
    pub fn with_exports(mut self, exports: Arc<dyn Exports>) -> Self {
        self.exports = Some(exports);
        self
    }

    /// Serves `POST /restapis/{apiId}/stages/{stage}/test-invoke` over the proxy's state (the
    /// same access rule as the cache flush).
    pub fn with_test_invoke(mut self, shared: Arc<crate::Shared>) -> Self {
        self.test_invoke = Some(shared);
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, store: TableStore, registry: Arc<Registry>, shutdown: impl Future<Output = ()>) {
        let builder = auto::Builder::new(TokioExecutor::new());
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.socket.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin accept failed");
                        continue;
                    }
                },
            };
            let store = store.clone();
            let registry = registry.clone();
            let usage = self.usage.clone();
            let cache = self.cache.clone();
            let token_file = self.token_file.clone();
            let exports = self.exports.clone();
            let test_invoke = self.test_invoke.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let (store, registry, usage) = (store.clone(), registry.clone(), usage.clone());
                let (cache, token_file) = (cache.clone(), token_file.clone());
                if req.method() == Method::GET && req.uri().path().starts_with("/restapis/") {
                    let answer = export(&req, exports.as_deref());
                    return futures::future::Either::Left(futures::future::Either::Left(std::future::ready(
                        Ok::<_, Infallible>(answer),
                    )));
                }
                if req.method() == Method::POST && req.uri().path().starts_with("/restapis/") {
                    let (test_invoke, token_file) = (test_invoke.clone(), token_file.clone());
                    let answer: std::pin::Pin<Box<dyn Future<Output = Result<_, Infallible>> + Send>> =
                        Box::pin(async move {
                            if let Some(refused) = may_operate(
                                peer,
                                req.headers().get(header::AUTHORIZATION),
                                token_file.as_deref().map(PathBuf::as_path),
                            ) {
                                return Ok(refused);
                            }
                            Ok(run_test_invoke(req, test_invoke.as_deref()).await)
                        });
                    return futures::future::Either::Left(futures::future::Either::Right(answer));
                }
                // Only the method, target and credentials are read: the request (and its body)
                // is not held across the usage report's awaits.
                let (method, uri) = (req.method().clone(), req.uri().clone());
                let authorization = req.headers().get(header::AUTHORIZATION).cloned();
                futures::future::Either::Right(async move {
                    if method == Method::POST && uri.path() == "/cache/flush" {
                        if let Some(refused) = may_operate(
                            peer,
                            authorization.as_ref(),
                            token_file.as_deref().map(PathBuf::as_path),
                        ) {
                            return Ok::<_, Infallible>(refused);
                        }
                        return Ok::<_, Infallible>(flush(&uri, cache.as_deref()).await);
                    }
                    Ok::<_, Infallible>(handle(&method, &uri, &store, &registry, usage.as_deref()).await)
                })
            });
            let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), graceful.shutdown()).await;
    }
}

/// Binds and serves the admin listener until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    store: TableStore,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    Admin::bind(addr).await?.run(store, registry, shutdown).await;
    Ok(())
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

/// Why a peer may not flush or test-invoke (`None`: it may). With a token file it must present
/// the token (401 without it or with another; 503 when the file cannot be read: refused, never
/// open); without one it must be on loopback (403 otherwise).
fn may_operate(
    peer: SocketAddr,
    authorization: Option<&http::HeaderValue>,
    token_file: Option<&Path>,
) -> Option<Response<Full<Bytes>>> {
    let Some(path) = token_file else {
        if peer.ip().is_loopback() || peer.ip().to_canonical().is_loopback() {
            return None;
        }
        return Some(text(
            StatusCode::FORBIDDEN,
            "the cache flush and test invokes are open to loopback peers only without --admin-token-file\n"
                .into(),
        ));
    };
    let token = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "admin token file unreadable: admin operation refused");
            return Some(text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the admin token file cannot be read\n".into(),
            ));
        }
    };
    let token = token.trim_ascii();
    let presented = authorization
        .map(|v| v.as_bytes())
        .and_then(|v| v.strip_prefix(b"Bearer "))
        .map(<[u8]>::trim_ascii);
    match presented {
        Some(p) if !token.is_empty() && bool::from(subtle::ConstantTimeEq::ct_eq(p, token)) => None,
        _ => {
            let mut r = text(
                StatusCode::UNAUTHORIZED,
                "POST /cache/flush and test-invoke take Authorization: Bearer <admin token>\n".into(),
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
            Some(r)
        }
    }
}

/// `GET /restapis/{apiId}/stages/{stage}/exports/{type}`: the document, or AWS's JSON error
/// (`{"message": ...}`) with the status the exporter gives.
fn export<B>(req: &Request<B>, exports: Option<&dyn Exports>) -> Response<Full<Bytes>> {
    let json_error = |status: StatusCode, message: &str| {
        let body = serde_json::json!({ "message": message }).to_string();
        let mut r = text(status, body);
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        r
    };
    let segments: Vec<&str> = req.uri().path().trim_start_matches('/').split('/').collect();
    let ["restapis", api_id, "stages", stage, "exports", kind] = segments[..] else {
        return json_error(StatusCode::NOT_FOUND, "not found");
    };
    let Some(exports) = exports else {
        return json_error(StatusCode::NOT_FOUND, "exports are not served here");
    };
    let extensions = form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "extensions")
        .map(|(_, v)| v.into_owned());
    let yaml = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("application/yaml"));
    let request = ExportRequest {
        api_id,
        stage,
        kind,
        extensions: extensions.as_deref(),
        yaml,
    };
    match exports.export(&request) {
        Ok(doc) => {
            let mut r = text(StatusCode::OK, doc.body);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static(doc.content_type),
            );
            r
        }
        Err((status, message)) => json_error(status, &message),
    }
}

/// `POST /restapis/{apiId}/stages/{stage}/test-invoke[?namespace=NS]`: AWS's
/// `{status, body, headers, multiValueHeaders, log, latency}`, or `{"message": ...}` with 400
/// (a malformed request document) or 404 (an unknown API or stage).
async fn run_test_invoke(req: Request<Incoming>, shared: Option<&crate::Shared>) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt as _;
    let json = |status: StatusCode, body: String| {
        let mut r = text(status, body);
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        r
    };
    let error = |status: StatusCode, message: &str| {
        json(status, serde_json::json!({ "message": message }).to_string())
    };
    let uri = req.uri().clone();
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let ["restapis", api, "stages", stage, "test-invoke"] = segments[..] else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    let Some(shared) = shared else {
        return error(StatusCode::NOT_FOUND, "test invokes are not served here");
    };
    let namespace = form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "namespace")
        .map(|(_, v)| v.into_owned());
    let body = match http_body_util::Limited::new(req.into_body(), crate::test_invoke::MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("reading the request: {e}")),
    };
    let request = match crate::test_invoke::TestInvokeRequest::from_json(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("the request is not a test-invoke document: {e}"),
            );
        }
    };
    match crate::test_invoke::run(shared, api, namespace.as_deref(), stage, request).await {
        Ok(answer) => json(StatusCode::OK, answer.to_json()),
        Err((status, message)) => error(status, &message),
    }
}

/// `POST /cache/flush?api=ID&stage=NAME`: 200 when the stage's cache was emptied, 404 when the
/// stage has no cache on this replica, 400 without both parameters.
async fn flush(uri: &http::Uri, cache: Option<&crate::cache::StageCaches>) -> Response<Full<Bytes>> {
    let (mut api, mut stage) = (None, None);
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        match &*k {
            "api" => api = Some(v.into_owned()),
            "stage" => stage = Some(v.into_owned()),
            _ => {}
        }
    }
    let (Some(api), Some(stage)) = (api, stage) else {
        return text(
            StatusCode::BAD_REQUEST,
            "POST /cache/flush?api=ID&stage=NAME\n".into(),
        );
    };
    let Some(cache) = cache else {
        return text(StatusCode::NOT_FOUND, format!("no cache for {api}/{stage}\n"));
    };
    match cache.flush(&api, &stage).await {
        Some(true) => text(
            StatusCode::OK,
            format!("flushed {api}/{stage} (every replica: shared tier)\n"),
        ),
        Some(false) if cache.is_shared() => text(
            StatusCode::OK,
            format!("flushed {api}/{stage} (this replica only: Redis unreachable)\n"),
        ),
        Some(false) => text(StatusCode::OK, format!("flushed {api}/{stage}\n")),
        None => text(StatusCode::NOT_FOUND, format!("no cache for {api}/{stage}\n")),
    }
}

async fn handle(
    method: &Method,
    uri: &http::Uri,
    store: &TableStore,
    registry: &Registry,
    usage: Option<&crate::usage::Usage>,
) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *r.status_mut() = status;
        r
    };
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match uri.path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        // Ready even while Redis is down: the failure mode decides what requests get, and
        // the body says which limits are in force.
        "/readyz" if store.is_published() => {
            let mode = usage.and_then(|u| u.mode()).map_or("local", |m| m.as_str());
            // How many replicas share local limits (each enforcing 1/N of every limit).
            let replicas = usage.map_or(1, |u| u.replicas());
            let body = format!("ready\nlimits: {mode}\nreplicas: {replicas}\n");
            let mut r = Response::new(Full::new(Bytes::from(body)));
            *r.status_mut() = StatusCode::OK;
            r
        }
        "/usage" => match usage {
            Some(u) => crate::usage::report::answer(u, store, uri.query().unwrap_or_default()).await,
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no routing table published yet\n",
        ),
        "/metrics" => {
            let mut out = String::with_capacity(16 * 1024);
            if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
                return text(StatusCode::INTERNAL_SERVER_ERROR, "encoding metrics failed\n");
            }
            let mut r = Response::new(Full::new(Bytes::from(out)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            r
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().expect("ip"), 40_000)
    }

    #[test]
    fn without_a_token_only_loopback_peers_may_operate() {
        assert!(may_operate(peer("127.0.0.1"), None, None).is_none());
        assert!(may_operate(peer("::1"), None, None).is_none());
        assert!(may_operate(peer("::ffff:127.0.0.1"), None, None).is_none());
        for other in ["10.1.2.3", "192.168.0.9", "::ffff:10.0.0.1", "fd00::1"] {
            let refused = may_operate(peer(other), None, None).expect(other);
            assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{other}");
        }
    }

    #[test]
    fn with_a_token_every_peer_must_present_it() {
        let dir = std::env::temp_dir().join(format!("turnpike-admin-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("token");
        std::fs::write(&file, "s3cret-token\n").expect("write");
        let auth = |v: &str| http::HeaderValue::from_str(v).expect("value");
        let check = |ip: &str, a: Option<&str>| {
            may_operate(peer(ip), a.map(auth).as_ref(), Some(&file)).map(|r| r.status())
        };
        assert_eq!(check("10.0.0.5", Some("Bearer s3cret-token")), None);
        assert_eq!(
            check("127.0.0.1", None),
            Some(StatusCode::UNAUTHORIZED),
            "loopback too"
        );
        assert_eq!(check("10.0.0.5", None), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(
            check("10.0.0.5", Some("Bearer s3cret")),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            check("10.0.0.5", Some("Basic s3cret-token")),
            Some(StatusCode::UNAUTHORIZED)
        );
        std::fs::write(&file, "\n").expect("write");
        assert_eq!(
            check("10.0.0.5", Some("Bearer ")),
            Some(StatusCode::UNAUTHORIZED),
            "an empty token opens nothing"
        );
        let gone = dir.join("missing");
        assert_eq!(
            may_operate(peer("127.0.0.1"), None, Some(&gone)).map(|r| r.status()),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
