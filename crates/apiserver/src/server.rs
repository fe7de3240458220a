//! The HTTPS front: TLS accept, bearer-token authentication, content negotiation and the
//! path router that hands each request to discovery, OpenAPI or a resource verb.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, RwLock},
};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::BoxBody};
use hyper::{body::Frame, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;
use tokio::{net::TcpListener, sync::mpsc};
use tokio_rustls::TlsAcceptor;

use super::{
    discovery,
    errors::{Result, StatusError},
    handlers, openapi, rbac,
    registry::{Registry, ResourceType},
    store::Store,
};

/// The response body type.
pub type Body = BoxBody<Bytes, Infallible>;

/// The largest request body accepted (the real server's default is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// Shared server state.
pub struct State {
    /// The object store.
    pub store: Store,
    registry: RwLock<Arc<Registry>>,
    token: String,
    /// Wakes the garbage collector.
    pub gc: tokio::sync::Notify,
}

/// A parsed request, as handlers see it.
#[derive(Debug)]
pub struct Req {
    /// The HTTP method.
    pub method: Method,
    /// Query parameters (last value wins).
    pub query: HashMap<String, String>,
    /// The Accept header.
    pub accept: String,
    /// The Content-Type header.
    pub content_type: String,
    /// The User-Agent header.
    pub user_agent: String,
    /// The request body.
    pub body: Bytes,
    /// Who the caller acts as (`Impersonate-User`, `Impersonate-Group`): the admin without
    /// them. Only the access reviews read it; every request is still authorized as admin.
    pub subject: rbac::Subject,
}

// === impl State ===

impl State {
    /// State over an opened store; the registry is built from the stored CRDs.
    pub fn new(store: Store, token: String) -> Self {
        let st = Self {
            store,
            registry: RwLock::new(Arc::new(Registry::with_builtins())),
            token,
            gc: Default::default(),
        };
        st.refresh_registry();
        st
    }

    /// The current registry.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Rebuilds the registry from the stored CRDs.
    pub fn refresh_registry(&self) {
        let gr = super::registry::GroupResource {
            group: "apiextensions.k8s.io".into(),
            resource: "customresourcedefinitions".into(),
        };
        let (crds, _) = self.store.list(&gr, None);
        let reg = Registry::rebuild(crds.iter().map(|c| &**c));
        *self.registry.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(reg);
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some(tok) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) else {
            return false;
        };
        bool::from(tok.trim().as_bytes().ct_eq(self.token.as_bytes()))
    }
}

// === impl Req ===

impl Req {
    /// A query parameter.
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A boolean query parameter.
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.q(k), Some("true" | "1"))
    }

    /// `Some(includeObject)` if the client asked for a Table.
    pub fn table(&self) -> Option<String> {
        self.accept
            .split(',')
            .any(|p| p.replace(' ', "").contains("as=Table"))
            .then(|| self.q("includeObject").unwrap_or("Metadata").to_string())
    }

    /// Parses the body as JSON or YAML (by Content-Type).
    pub fn body_value(&self) -> Result<Value> {
        let ct = self.content_type.split(';').next().unwrap_or_default().trim();
        if ct == "application/vnd.kubernetes.protobuf" {
            return super::proto::decode(&self.body).map_err(|_| StatusError::unsupported_media_type(ct));
        }
        if ct.contains("protobuf") || ct.contains("cbor") {
            return Err(StatusError::unsupported_media_type(ct));
        }
        if self.body.is_empty() {
            return Err(StatusError::bad_request("the request body is empty"));
        }
        let parsed = if ct.ends_with("yaml") {
            serde_yaml::from_slice::<Value>(&self.body).map_err(|e| e.to_string())
        } else {
            serde_json::from_slice::<Value>(&self.body).map_err(|e| e.to_string())
        };
        match parsed {
            Ok(v) if v.is_object() => Ok(v),
            Ok(_) => Err(StatusError::bad_request(
                "the body of the request must be an object",
            )),
            Err(e) => Err(StatusError::bad_request(format!(
                "the object provided is unrecognized or malformed: couldn't decode the body: {e}"
            ))),
        }
    }
}

/// A JSON response.
pub fn json_response(code: u16, v: &Value) -> Response<Body> {
    json_response_typed(code, v, "application/json")
}

/// A JSON response with an explicit Content-Type.
pub fn json_response_typed(code: u16, v: &Value, content_type: &str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())).boxed());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(ct) = content_type.parse() {
        r.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    r
}

/// The response of a failed request.
pub fn error_response(e: &StatusError) -> Response<Body> {
    json_response(e.code, &e.to_status())
}

/// A streaming response fed by a channel.
pub fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut r = Response::new(StreamBody::new(stream).boxed());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn text(code: u16, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Accepts connections until the task is aborted.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, st: Arc<State>) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let st = st.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "tls handshake failed");
                    return;
                }
            };
            let svc = service_fn(move |req| {
                let st = st.clone();
                async move { Ok::<_, Infallible>(handle(st, req).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let public = ["/healthz", "/livez", "/readyz", "/version"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")));
    if !public && !st.authorized(&parts.headers) {
        return error_response(&StatusError::unauthorized());
    }
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error_response(&StatusError {
                code: 413,
                reason: "RequestEntityTooLarge",
                message: "the request body is too large".into(),
                details: None,
            });
        }
    };
    let header = |h: header::HeaderName| {
        parts
            .headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let query = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let req = Req {
        method: parts.method.clone(),
        query,
        accept: header(header::ACCEPT),
        content_type: header(header::CONTENT_TYPE),
        user_agent: header(header::USER_AGENT),
        body,
        subject: impersonated(&parts.headers),
    };
    let method = req.method.clone();
    let ct = req.content_type.clone();
    let resp = match route(&st, &path, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    tracing::debug!(%method, %path, content_type = %ct, code = resp.status().as_u16(), "request");
    resp
}

/// The subject of `Impersonate-User` and every `Impersonate-Group` (as `kubectl --as`,
/// `--as-group` send them), or the admin.
fn impersonated(headers: &HeaderMap) -> rbac::Subject {
    let Some(user) = headers.get("impersonate-user").and_then(|v| v.to_str().ok()) else {
        return rbac::Subject::admin();
    };
    let groups = headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string);
    rbac::Subject::new(user, groups)
}

/// `POST` of a SelfSubjectAccessReview (the caller) or a SubjectAccessReview (`spec.user`,
/// `spec.groups`), answered from the stored RBAC objects; see [`rbac`].
fn access_review(st: &State, kind: &str, req: &Req) -> Result<Response<Body>> {
    if req.method != Method::POST {
        return Err(StatusError::method_not_allowed());
    }
    let body = req.body_value()?;
    let subject = if kind == "subjectaccessreviews" {
        let spec = body.get("spec").cloned().unwrap_or(Value::Null);
        let user = spec.get("user").and_then(Value::as_str).unwrap_or_default();
        let groups = spec.get("groups").and_then(Value::as_array).into_iter().flatten();
        rbac::Subject::new(user, groups.filter_map(Value::as_str).map(str::to_string))
    } else {
        req.subject.clone()
    };
    let policy = rbac::Policy::load(&st.store);
    Ok(json_response(201, &rbac::review(body, &subject, &policy)))
}

/// Refuses requests that accept only formats we do not produce (protobuf, CBOR).
fn negotiate(accept: &str) -> Result<()> {
    if accept.trim().is_empty() {
        return Ok(());
    }
    let ok = accept.split(',').any(|p| {
        let p = p.trim();
        p.starts_with("application/json")
            || p.starts_with("*/*")
            || p.starts_with("application/*")
            || p.contains("yaml")
    });
    if ok {
        Ok(())
    } else {
        Err(StatusError::not_acceptable())
    }
}

async fn route(st: &Arc<State>, path: &str, req: Req) -> Result<Response<Body>> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["healthz" | "livez" | "readyz", ..] => return Ok(text(200, "ok")),
        ["version"] => return Ok(json_response(200, &version())),
        [] => {
            return Ok(json_response(
                200,
                &json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v2", "/openapi/v3", "/readyz", "/version"]}),
            ));
        }
        _ => {}
    }
    if let [
        "apis",
        "authorization.k8s.io",
        "v1",
        kind @ ("selfsubjectaccessreviews" | "subjectaccessreviews"),
    ] = segs.as_slice()
    {
        return access_review(st, kind, &req);
    }
    let reg = st.registry();
    if req.method == Method::GET {
        let discovery = match segs.as_slice() {
            ["api"] => Some(aggregated_or(&req, &reg, true, discovery::api_versions)),
            ["apis"] => Some(aggregated_or(&req, &reg, false, || discovery::api_groups(&reg))),
            ["api", "v1"] => discovery::resource_list(&reg, "", "v1").map(|d| json_response(200, &d)),
            ["apis", g] => discovery::api_group(&reg, g).map(|d| json_response(200, &d)),
            ["apis", g, v] => discovery::resource_list(&reg, g, v).map(|d| json_response(200, &d)),
            ["openapi", "v2"] => {
                if req.accept.contains("protobuf") && !req.accept.contains("json") {
                    return Err(StatusError::not_acceptable());
                }
                Some(json_response(200, &openapi::v2(&reg)))
            }
            ["openapi", "v3"] => Some(json_response(200, &openapi::v3_index(&reg))),
            ["openapi", "v3", "api", v] => {
                openapi::v3_group_version(&reg, "", v).map(|d| json_response(200, &d))
            }
            ["openapi", "v3", "apis", g, v] => {
                openapi::v3_group_version(&reg, g, v).map(|d| json_response(200, &d))
            }
            _ => None,
        };
        if let Some(d) = discovery {
            return Ok(d);
        }
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => ("", "v1", rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return Err(StatusError::path_not_found()),
    };
    let ns_form = rest.len() >= 3
        && rest[0] == "namespaces"
        && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"));
    let (ns, rest) = if ns_form {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    let rt = reg
        .get(group, version, rest[0])
        .ok_or_else(StatusError::path_not_found)?;
    if ns.is_some() && !rt.namespaced {
        return Err(StatusError::path_not_found());
    }
    negotiate(&req.accept)?;
    let name = rest.get(1).map(|s| s.to_string());
    let sub = rest.get(2).copied();
    if rest.len() > 3 {
        return Err(StatusError::path_not_found());
    }
    if name.is_some() && rt.namespaced && ns.is_none() {
        return Err(StatusError::path_not_found());
    }
    let endpoint = match sub {
        None => super::objects::Endpoint::Main,
        Some("status") if rt.status_subresource => super::objects::Endpoint::Status,
        Some("finalize") if rt.plural == "namespaces" && rt.group.is_empty() => {
            super::objects::Endpoint::Main
        }
        Some(_) => return Err(StatusError::path_not_found()),
    };
    dispatch(st, rt, ns, name, endpoint, req).await
}

async fn dispatch(
    st: &Arc<State>,
    rt: Arc<ResourceType>,
    ns: Option<String>,
    name: Option<String>,
    endpoint: super::objects::Endpoint,
    req: Req,
) -> Result<Response<Body>> {
    use super::objects::Endpoint;
    let ns_str = ns.clone().unwrap_or_default();
    match (&req.method, &name) {
        (&Method::GET, None) if req.flag("watch") => return handlers::watch(st, rt, ns, &req),
        (&Method::GET, None) => return handlers::list(st, &rt, ns.as_deref(), &req),
        (&Method::GET, Some(n)) => return handlers::get(st, &rt, &ns_str, n, &req),
        (&Method::POST | &Method::PUT | &Method::PATCH | &Method::DELETE, _) => {}
        _ => return Err(StatusError::method_not_allowed()),
    }
    // Writes wait for an fsync: run them on the blocking pool so reads and watch streams keep
    // their worker threads.
    let st = st.clone();
    tokio::task::spawn_blocking(move || match (&req.method, name) {
        (&Method::POST, None) => handlers::create(&st, &rt, ns.as_deref(), &req),
        (&Method::DELETE, None) => handlers::delete_collection(&st, &rt, ns.as_deref(), &req),
        (&Method::PUT, Some(n)) => handlers::update(&st, &rt, &ns_str, &n, endpoint, &req),
        (&Method::PATCH, Some(n)) => handlers::patch(&st, &rt, &ns_str, &n, endpoint, &req),
        (&Method::DELETE, Some(n)) if endpoint == Endpoint::Main => {
            handlers::delete(&st, &rt, &ns_str, &n, &req)
        }
        _ => Err(StatusError::method_not_allowed()),
    })
    .await
    .map_err(|e| StatusError::internal(format!("request handler failed: {e}")))?
}

fn aggregated_or(req: &Req, reg: &Registry, core: bool, legacy: impl FnOnce() -> Value) -> Response<Body> {
    match discovery::wants_aggregated(&req.accept) {
        Some(v) => {
            let ct = if v == "v2" {
                discovery::AGGREGATED_V2
            } else {
                discovery::AGGREGATED_V2BETA1
            };
            let mut r = json_response_typed(200, &discovery::aggregated(reg, core, v), ct);
            r.headers_mut()
                .insert(header::VARY, http::HeaderValue::from_static("Accept"));
            r
        }
        None => {
            let mut r = json_response(200, &legacy());
            r.headers_mut()
                .insert(header::VARY, http::HeaderValue::from_static("Accept"));
            r
        }
    }
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": super::GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}
