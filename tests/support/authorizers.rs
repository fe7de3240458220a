//! A real OIDC issuer (discovery and JWKS, keys generated here) and a function host speaking
//! the Lambda Invoke API, for the authorizer tests.
//!
//! Include with `#[path = "support/authorizers.rs"] mod authorizers;` beside `support`.

#![allow(dead_code)]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const AUDIENCE: &str = "shop-client";

// === a real OIDC issuer ===

/// One signing key: its kid, its PEM (for signing) and its public JWK.
pub struct Key {
    pub kid: String,
    pub pem: String,
    pub jwk: Value,
}

pub fn key(kid: &str) -> Key {
    use base64::Engine as _;
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let raw = pair.public_key_raw();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    Key {
        kid: kid.into(),
        pem: pair.serialize_pem(),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": b64.encode(&raw[1..33]), "y": b64.encode(&raw[33..65]),
        }),
    }
}

/// Serves `/.well-known/openid-configuration` and `/jwks` (the current keys, with
/// [`JWKS_CACHE_CONTROL`], or 500 while `failing`); counts JWKS fetches.
pub struct Issuer {
    pub url: String,
    pub jwks: Arc<ArcSwap<Value>>,
    pub fetches: Arc<AtomicUsize>,
    pub failing: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// The lifetime the issuer gives its JWKS document.
pub const JWKS_CACHE_CONTROL: &str = "public, max-age=2";

impl Drop for Issuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Issuer {
    pub async fn start(keys: &[&Key]) -> Issuer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let jwks = Arc::new(ArcSwap::from_pointee(jwks_of(keys)));
        let fetches = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicBool::new(false));
        let (j, f, u, fail) = (jwks.clone(), fetches.clone(), url.clone(), failing.clone());
        let task = tokio::spawn(serve(listener, move |path, _body| match path.as_str() {
            "/.well-known/openid-configuration" => (
                200,
                json!({"issuer": u, "jwks_uri": format!("{u}/jwks")}).to_string(),
                false,
            ),
            "/jwks" => {
                f.fetch_add(1, Ordering::SeqCst);
                if fail.load(Ordering::SeqCst) {
                    return (500, "down".into(), false);
                }
                (200, j.load().to_string(), false)
            }
            _ => (404, String::new(), false),
        }));
        Issuer {
            url,
            jwks,
            fetches,
            failing,
            task,
        }
    }

    pub fn rotate(&self, keys: &[&Key]) {
        self.jwks.store(Arc::new(jwks_of(keys)));
    }

    pub fn token(&self, key: &Key, claims: Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_ec_pem(key.pem.as_bytes()).expect("pem"),
        )
        .expect("sign")
    }

    pub fn claims(&self, extra: Value) -> Value {
        let mut c =
            json!({"iss": self.url, "aud": AUDIENCE, "sub": "user-1", "exp": now() + 600, "email": "a@b.c"});
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                c.insert(k.clone(), v.clone());
            }
        }
        c
    }
}

pub fn jwks_of(keys: &[&Key]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Serves HTTP/1.1 and HTTP/2 connections from `listener`, each request answered by `handle`.
pub async fn serve_requests<H, Fut>(listener: TcpListener, handle: H)
where
    H: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = hyper::Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let answer = handle(req);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// A request's method, path and whole body.
async fn read(req: Request<hyper::body::Incoming>) -> (http::Method, String, Bytes) {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (method, path, body)
}

/// A small HTTP server: `answer(path, body) -> (status, body, function_error)`.
pub async fn serve<F>(listener: TcpListener, answer: F)
where
    F: Fn(String, Bytes) -> (u16, String, bool) + Send + Sync + 'static,
{
    let answer = Arc::new(answer);
    serve_requests(listener, move |req| {
        let answer = answer.clone();
        async move {
            let (_, path, body) = read(req).await;
            let jwks = path == "/jwks";
            let (status, text, function_error) = answer(path, body);
            let mut resp = reply(status, Bytes::from(text));
            if jwks {
                resp.headers_mut().insert(
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_static(JWKS_CACHE_CONTROL),
                );
            }
            if function_error {
                resp.headers_mut().insert(
                    "x-amz-function-error",
                    http::HeaderValue::from_static("Unhandled"),
                );
            }
            resp
        }
    })
    .await;
}

// === a function host (Lambda Invoke API) ===

/// Answers TOKEN and REQUEST authorizer events by the identity they carry; records every
/// event and counts invocations.
pub struct Functions {
    pub addr: SocketAddr,
    pub invocations: Arc<AtomicUsize>,
    pub events: Arc<ArcSwap<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Functions {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn policy(effect: &str, resource: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]})
}

impl Functions {
    pub async fn start() -> Functions {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let invocations = Arc::new(AtomicUsize::new(0));
        let events = Arc::new(ArcSwap::from_pointee(Vec::new()));
        let (n, e) = (invocations.clone(), events.clone());
        let task = tokio::spawn(serve(listener, move |path, body| {
            if !path.starts_with("/2015-03-31/functions/") || !path.ends_with("/invocations") {
                return (404, String::new(), false);
            }
            n.fetch_add(1, Ordering::SeqCst);
            let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            e.rcu(|list| {
                let mut list = Vec::clone(list);
                list.push(event.clone());
                list
            });
            let identity = event["authorizationToken"]
                .as_str()
                .or_else(|| event["headers"]["x-tenant"].as_str())
                .or_else(|| event["queryStringParameters"]["tenant"].as_str())
                .unwrap_or_default()
                .trim_start_matches("Bearer ")
                .to_string();
            let arn = event["methodArn"].as_str().unwrap_or_default().to_string();
            let allow = |resource: &str| {
                json!({
                    "principalId": format!("p-{identity}"),
                    "policyDocument": policy("Allow", resource),
                    "context": {"tenant": identity, "level": 3, "admin": true},
                    "usageIdentifierKey": "AuthorizerKey0123456789abc",
                })
                .to_string()
            };
            match identity.as_str() {
                "allow" | "acme" | "cached" => (200, allow(&arn), false),
                // Allows every GET of every stage of every API, and nothing else.
                "wild" => (200, allow("arn:aws:execute-api:*:*:*/*/GET/*"), false),
                "deny" => (
                    200,
                    json!({"principalId": "p", "policyDocument": {"Statement": [
                        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"},
                        {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": arn},
                    ]}})
                    .to_string(),
                    false,
                ),
                "unauthorized" => (200, json!({"errorMessage": "Unauthorized", "errorType": "Error"}).to_string(), true),
                "error" => (200, json!({"errorMessage": "boom", "errorType": "Error"}).to_string(), true),
                "garbage" => (200, "this is not json".into(), false),
                _ => (200, json!({"principalId": "p", "policyDocument": policy("Allow", "arn:aws:execute-api:*:*:other/*")}).to_string(), false),
            }
        }));
        Functions {
            addr,
            invocations,
            events,
            task,
        }
    }

    pub fn calls(&self) -> usize {
        self.invocations.load(Ordering::SeqCst)
    }
}

// === the Lambda Runtime API in front of the Invoke API ===

/// A function host as AWS Lambda is one: Turnpike calls its Invoke API
/// (`POST /2015-03-31/functions/NAME/invocations`); a runtime process (the real Lambda Runtime
/// Interface Client) takes each event from its Runtime API
/// (`GET /2018-06-01/runtime/invocation/next`) and posts the handler's result to
/// `.../invocation/ID/response` or its failure to `.../invocation/ID/error`, which answers
/// the invocation (a failure with `X-Amz-Function-Error: Unhandled`).
pub struct RuntimeApi {
    pub addr: SocketAddr,
    /// Runtime initialisation errors (`/2018-06-01/runtime/init/error`), for failure messages.
    pub init_errors: Arc<ArcSwap<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A handler's outcome: its payload and whether it failed.
type Outcome = (bool, Bytes);

struct Bridge {
    queue: tokio::sync::mpsc::Sender<(String, Bytes)>,
    next: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<(String, Bytes)>>,
    waiting: tokio::sync::Mutex<std::collections::HashMap<String, tokio::sync::oneshot::Sender<Outcome>>>,
    ids: AtomicUsize,
    init_errors: Arc<ArcSwap<Vec<String>>>,
}

/// How long an invocation waits for the runtime.
const INVOKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (queue, next) = tokio::sync::mpsc::channel(64);
        let init_errors = Arc::new(ArcSwap::from_pointee(Vec::new()));
        let bridge = Arc::new(Bridge {
            queue,
            next: tokio::sync::Mutex::new(next),
            waiting: tokio::sync::Mutex::new(std::collections::HashMap::new()),
            ids: AtomicUsize::new(0),
            init_errors: init_errors.clone(),
        });
        let task = tokio::spawn(serve_requests(listener, move |req| {
            let bridge = bridge.clone();
            async move { bridge.answer(req).await }
        }));
        RuntimeApi {
            addr,
            init_errors,
            task,
        }
    }
}

fn reply(status: u16, body: Bytes) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(body));
    *resp.status_mut() = http::StatusCode::from_u16(status).expect("status");
    resp
}

impl Bridge {
    async fn answer(&self, req: Request<hyper::body::Incoming>) -> hyper::Response<Full<Bytes>> {
        let (method, path, body) = read(req).await;
        if method == http::Method::POST
            && path.starts_with("/2015-03-31/functions/")
            && path.ends_with("/invocations")
        {
            return self.invoke(body).await;
        }
        let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
            return reply(404, Bytes::new());
        };
        if rest == "invocation/next" && method == http::Method::GET {
            let Some((id, event)) = self.next.lock().await.recv().await else {
                return reply(500, Bytes::new());
            };
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis()
                + INVOKE_TIMEOUT.as_millis();
            let mut resp = reply(200, event);
            let h = resp.headers_mut();
            let mut set = |k: &'static str, v: String| {
                h.insert(k, http::HeaderValue::from_str(&v).expect("header"));
            };
            set("content-type", "application/json".into());
            set("lambda-runtime-aws-request-id", id);
            set("lambda-runtime-deadline-ms", deadline.to_string());
            set(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:ric".into(),
            );
            set(
                "lambda-runtime-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0".into(),
            );
            return resp;
        }
        if rest == "init/error" {
            let text = String::from_utf8_lossy(&body).into_owned();
            self.init_errors.rcu(|list| {
                let mut list = Vec::clone(list);
                list.push(text.clone());
                list
            });
            return reply(202, Bytes::new());
        }
        let outcome = rest
            .strip_prefix("invocation/")
            .and_then(|r| r.rsplit_once('/'))
            .and_then(|(id, what)| match what {
                "response" => Some((id.to_string(), false)),
                "error" => Some((id.to_string(), true)),
                _ => None,
            });
        match outcome {
            Some((id, failed)) => match self.waiting.lock().await.remove(&id) {
                Some(tx) => {
                    let _ = tx.send((failed, body));
                    reply(202, Bytes::new())
                }
                None => reply(400, Bytes::from_static(b"unknown invocation")),
            },
            None => reply(404, Bytes::new()),
        }
    }

    /// One invocation: queued for the runtime, answered by its result.
    async fn invoke(&self, event: Bytes) -> hyper::Response<Full<Bytes>> {
        let id = format!("inv-{}", self.ids.fetch_add(1, Ordering::SeqCst));
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiting.lock().await.insert(id.clone(), tx);
        if self.queue.send((id, event)).await.is_err() {
            return reply(500, Bytes::new());
        }
        match tokio::time::timeout(INVOKE_TIMEOUT, rx).await {
            Ok(Ok((failed, payload))) => {
                let mut resp = reply(200, payload);
                if failed {
                    resp.headers_mut().insert(
                        "x-amz-function-error",
                        http::HeaderValue::from_static("Unhandled"),
                    );
                }
                resp
            }
            _ => reply(504, Bytes::new()),
        }
    }
}
