//! Upstream connections: pooled HTTP/1.1 and h2 clients (TLS with the system roots, or
//! without verification for `insecure_skip_verify`), and the endpoint balancer of private
//! integrations.
//!
//! Backend health and outstanding-request counts live here, keyed by endpoint address, outside
//! the routing snapshot: they survive table swaps.

use std::{
    borrow::Cow,
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::future::Either;
use http::{HeaderMap, Method, Request, Response, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use rand::Rng as _;
use rustls::{
    ClientConfig, DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime},
};

use crate::{
    body::{ClientBodyError, LimitExceeded, Limited, ProxyBody},
    error::Reject,
    h1,
    headers::{self, Forwarded, Reserved},
};

/// A request for a backend: the method, the absolute `http://` or `https://` URL as
/// rendered, the headers and the body.
#[derive(Debug)]
pub struct Outgoing {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Limited,
    /// Set for a proxied request: its X-Forwarded-* and Host are the gateway's.
    pub forwarded: Option<Forwarded>,
}

impl Outgoing {
    /// The same request to send again elsewhere: no URL yet, and no body (only a request
    /// whose body has ended is ever sent twice).
    pub fn replay(&self) -> Outgoing {
        Outgoing {
            method: self.method.clone(),
            url: String::new(),
            headers: self.headers.clone(),
            body: Limited::empty(),
            forwarded: self.forwarded.clone(),
        }
    }
}

/// A backend URL split into what a request needs, without building an `http::Uri`.
#[derive(Debug, PartialEq, Eq)]
pub struct UrlParts<'a> {
    pub tls: bool,
    /// `host`, `host:port` or `[v6]:port`; empty for a path alone (a Service backend's).
    pub authority: &'a str,
    /// Never empty; the fragment is dropped.
    pub path_and_query: Cow<'a, str>,
}

/// The bytes a backend authority may hold: a host name, an IP literal, a port.
static HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'~' | b'%' | b':' | b'[' | b']');
        b += 1;
    }
    table
};

/// Splits `http://authority/path?query`, `https://…` or `/path?query`. Refuses what could
/// not go on a request line or in a Host header: user info, control characters, spaces.
pub fn split_url(url: &str) -> Result<UrlParts<'_>, String> {
    let (tls, rest, has_authority) = if starts_with_ignore_case(url, "http://") {
        (false, &url[7..], true)
    } else if starts_with_ignore_case(url, "https://") {
        (true, &url[8..], true)
    } else if url.starts_with('/') {
        (false, url, false)
    } else {
        return Err(format!("{url:?} is neither an http(s) URL nor a path"));
    };
    // One pass over the bytes: the authority ends at the first `/`, `?` or `#`, the rest at
    // `#` (a fragment is never sent).
    let bytes = rest.as_bytes();
    let mut end = 0;
    if has_authority {
        while let Some(&b) = bytes.get(end) {
            if matches!(b, b'/' | b'?' | b'#') {
                break;
            }
            if !HOST_BYTES[usize::from(b)] {
                return Err(format!("invalid host in {url:?}"));
            }
            end += 1;
        }
    }
    let (authority, tail) = rest.split_at(end);
    let mut cut = 0;
    while let Some(&b) = tail.as_bytes().get(cut) {
        if b == b'#' {
            break;
        }
        if b <= b' ' || b == 0x7f {
            return Err("a control character or space in the path".into());
        }
        cut += 1;
    }
    let rest = &tail[..cut];
    let path_and_query = if rest.starts_with('/') {
        Cow::Borrowed(rest)
    } else {
        Cow::Owned(format!("/{rest}"))
    };
    Ok(UrlParts {
        tls,
        authority,
        path_and_query,
    })
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// Settings of the upstream clients.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// TCP connect timeout (connect errors answer 502).
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per backend (scheme, host, port).
    pub pool_max_idle_per_host: usize,
    /// How long an endpoint that refused a connection is skipped at first; doubled on each
    /// further failure, up to 32 times as long.
    pub ejection: Duration,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            connect_timeout: Duration::from_secs(5),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 1024,
            ejection: Duration::from_secs(10),
        }
    }
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Limited>;

/// The upstream clients and the endpoint balancer.
#[derive(Debug)]
pub struct Upstreams {
    config: UpstreamConfig,
    verified: HttpsClient,
    insecure: HttpsClient,
    pub(crate) balancer: Balancer,
}

/// Why the upstream clients could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("TLS client configuration: {0}")]
    Tls(#[from] rustls::Error),
}

// === impl Upstreams ===

impl Upstreams {
    /// Builds both clients. The system roots are loaded once; unreadable roots are skipped.
    pub fn new(config: &UpstreamConfig) -> Result<Self, UpstreamError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        if !native.errors.is_empty() {
            tracing::debug!(
                errors = native.errors.len(),
                "some system root certificates were unreadable"
            );
        }
        let verified = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let insecure = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth();
        Ok(Upstreams {
            config: config.clone(),
            verified: client(config, verified),
            insecure: client(config, insecure),
            balancer: Balancer::new(config.ejection),
        })
    }

    /// The endpoint balancer of private integrations.
    pub fn balancer(&self) -> &Balancer {
        &self.balancer
    }

    /// Sends a request and waits for the response head, at most `timeout` after `started`;
    /// `reserved` says whether the answer's reserved header names are renamed. Plain `http://`
    /// backends go through the HTTP/1.1 client and its per-thread pool
    /// ([`crate::h1::client`]); `https://` backends (h2 or HTTP/1.1 by ALPN) go
    /// through the hyper-util client.
    ///
    /// Not an `async fn`: it hands back the chosen client's future itself, so a request's
    /// future has one level (and one copy) fewer. Inlined, so the chosen future is built in
    /// the caller's place rather than built here and moved.
    #[inline]
    pub fn send(
        &self,
        out: Outgoing,
        insecure: bool,
        started: Instant,
        timeout: Duration,
        reserved: Reserved,
    ) -> impl Future<Output = Result<Response<ProxyBody>, SendError>> + '_ {
        if starts_with_ignore_case(&out.url, "http://") {
            Either::Left(h1::client::send(out, &self.config, started, timeout, reserved))
        } else {
            let client = if insecure { &self.insecure } else { &self.verified };
            let deadline = tokio::time::Instant::from_std(started) + timeout;
            Either::Right(send_hyper(client, out, deadline, reserved))
        }
    }
}

/// A client for the gateway's own calls (JWKS documents, authorizer functions), sharing the
/// verified TLS client's pool. Cheap to clone; usable from background tasks.
#[derive(Clone, Debug)]
pub struct Fetcher(HttpsClient);

impl Upstreams {
    pub fn fetcher(&self) -> Fetcher {
        Fetcher(self.verified.clone())
    }
}

impl Fetcher {
    /// Sends a request with a whole body and reads the whole answer, at most `limit` bytes,
    /// all within `timeout`. The error is a message for logs (never holding the body).
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
        limit: usize,
    ) -> Result<(http::StatusCode, HeaderMap, Bytes), FetchError> {
        use http_body_util::BodyExt as _;
        let uri = Uri::try_from(url).map_err(|e| FetchError::Failed(format!("invalid URL: {e}")))?;
        let mut req = Request::new(Limited::new(crate::body::RequestBody::full(body), limit as u64));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        let exchange = async {
            let resp = self
                .0
                .request(req)
                .await
                .map_err(|e| FetchError::Failed(format!("{e}")))?;
            let (head, body) = resp.into_parts();
            let bytes = http_body_util::Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| FetchError::Failed(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok((head.status, head.headers, bytes))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(FetchError::Timeout))
    }
}

/// Why a [`Fetcher`] call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Failed(String),
}

/// Sends through the hyper-util client (`https://` backends).
async fn send_hyper(
    client: &HttpsClient,
    out: Outgoing,
    deadline: tokio::time::Instant,
    reserved: Reserved,
) -> Result<Response<ProxyBody>, SendError> {
    let uri =
        Uri::from_maybe_shared(Bytes::from(out.url)).map_err(|e| SendError::InvalidUrl(e.to_string()))?;
    let mut req = Request::new(out.body);
    *req.method_mut() = out.method;
    *req.uri_mut() = uri;
    *req.headers_mut() = out.headers;
    if let Some(f) = &out.forwarded {
        f.apply(req.headers_mut());
    }
    match tokio::time::timeout_at(deadline, client.request(req)).await {
        Err(_) => Err(SendError::Timeout),
        Ok(Ok(mut resp)) => {
            if reserved == Reserved::Remap {
                headers::remap_reserved(resp.headers_mut());
            }
            Ok(resp.map(ProxyBody::stream))
        }
        Ok(Err(e)) => {
            if caused_by::<LimitExceeded>(&e) {
                Err(SendError::BodyTooLarge)
            } else if caused_by::<ClientBodyError>(&e) {
                Err(SendError::ClientBody(error_chain(&e)))
            } else if e.is_connect() {
                Err(SendError::Connect(e.to_string()))
            } else {
                Err(SendError::Failed(error_chain(&e)))
            }
        }
    }
}

fn client(config: &UpstreamConfig, tls: ClientConfig) -> HttpsClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https)
}

/// Why a request to a backend failed.
#[derive(Debug)]
pub enum SendError {
    /// The backend URL cannot be used (a configuration error: 500).
    InvalidUrl(String),
    /// No response head within the integration timeout.
    Timeout,
    /// The connection could not be made (refused, unreachable, TLS failure).
    Connect(String),
    /// The client's body went over the payload limit.
    BodyTooLarge,
    /// The client's body failed (malformed, cut short, longer or shorter than declared): the
    /// backend was left with an incomplete request and a closed connection (or a reset
    /// stream), and the client is answered 400.
    ClientBody(String),
    /// The connection failed after it was made (reset, malformed response).
    Failed(String),
    /// A private integration's Service has no ready endpoint (503).
    NoEndpoint,
}

impl From<SendError> for Reject {
    fn from(e: SendError) -> Self {
        match e {
            SendError::InvalidUrl(m) => Reject::ApiConfiguration(format!("backend URL: {m}").into()),
            SendError::Timeout => Reject::Timeout,
            SendError::BodyTooLarge => Reject::BodyTooLarge,
            SendError::ClientBody(_) => Reject::BadRequest("malformed request body"),
            SendError::Connect(m) | SendError::Failed(m) => Reject::Upstream(m),
            SendError::NoEndpoint => Reject::NoEndpoint,
        }
    }
}

/// Whether `e` or any of its sources is an `E`.
pub(crate) fn caused_by<E: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<E>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// `e` and its sources, joined by `: `.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        out.push_str(": ");
        out.push_str(&err.to_string());
        cur = err.source();
    }
    out
}

/// Accepts any server certificate (`insecure_skip_verify`); signatures are still checked so
/// the handshake itself is sound.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

// === Balancer ===

/// Power-of-two-choices least-outstanding-requests over a Service's ready endpoints, with
/// passive ejection of endpoints that refuse connections. State is keyed by address and kept
/// across routing table swaps.
#[derive(Debug)]
pub struct Balancer {
    states: RwLock<HashMap<SocketAddr, Arc<EndpointState>>>,
    ejection: Duration,
    epoch: Instant,
}

/// Beyond this many endpoint states, idle healthy ones are forgotten.
const MAX_TRACKED_ENDPOINTS: usize = 10_000;

#[derive(Debug, Default)]
struct EndpointState {
    outstanding: AtomicU32,
    /// Milliseconds since the balancer's epoch until which the endpoint is skipped.
    ejected_until: AtomicU64,
    /// Consecutive connect failures.
    failures: AtomicU32,
}

/// One outstanding request on an endpoint; dropping it ends the request.
#[derive(Debug)]
pub struct EndpointGuard {
    pub addr: SocketAddr,
    state: Arc<EndpointState>,
}

impl Drop for EndpointGuard {
    fn drop(&mut self) {
        self.state.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

// === impl Balancer ===

impl Balancer {
    pub fn new(ejection: Duration) -> Self {
        Balancer {
            states: RwLock::new(HashMap::new()),
            ejection,
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn state(&self, addr: SocketAddr) -> Arc<EndpointState> {
        if let Some(s) = self.states.read().ok().and_then(|m| m.get(&addr).cloned()) {
            return s;
        }
        match self.states.write() {
            Ok(mut m) => {
                if m.len() >= MAX_TRACKED_ENDPOINTS {
                    // Endpoints churn (pods come and go): forget the idle, healthy ones.
                    let now = self.now_ms();
                    m.retain(|_, s| {
                        s.outstanding.load(Ordering::Relaxed) > 0
                            || s.ejected_until.load(Ordering::Relaxed) > now
                    });
                }
                m.entry(addr).or_default().clone()
            }
            Err(_) => Arc::default(),
        }
    }

    /// Picks an endpoint other than `exclude`: two at random, the one with fewer outstanding
    /// requests wins; ejected endpoints are skipped while any other is healthy. `None` when
    /// there is no candidate at all.
    pub fn pick(&self, endpoints: &[SocketAddr], exclude: Option<SocketAddr>) -> Option<EndpointGuard> {
        let candidates: usize = endpoints.iter().filter(|a| Some(**a) != exclude).count();
        if candidates == 0 {
            return None;
        }
        let now = self.now_ms();
        let nth = |i: usize| endpoints.iter().filter(|a| Some(**a) != exclude).nth(i).copied();
        let mut rng = rand::rng();
        // Two distinct samples.
        let i = rng.random_range(0..candidates);
        let a = nth(i)?;
        let b = if candidates > 1 {
            nth((i + 1 + rng.random_range(0..candidates - 1)) % candidates)?
        } else {
            a
        };
        let (sa, sb) = (self.state(a), self.state(b));
        let healthy = |s: &EndpointState| s.ejected_until.load(Ordering::Relaxed) <= now;
        let chosen = match (healthy(&sa), healthy(&sb)) {
            (true, true) => {
                if sb.outstanding.load(Ordering::Relaxed) < sa.outstanding.load(Ordering::Relaxed) {
                    (b, sb)
                } else {
                    (a, sa)
                }
            }
            (true, false) => (a, sa),
            (false, true) => (b, sb),
            (false, false) => {
                // Both samples are ejected: look for any healthy endpoint, else take the one
                // whose ejection ends first.
                let mut best: Option<(SocketAddr, Arc<EndpointState>)> = None;
                for addr in endpoints.iter().filter(|x| Some(**x) != exclude) {
                    let s = self.state(*addr);
                    if healthy(&s) {
                        best = Some((*addr, s));
                        break;
                    }
                    let better = best.as_ref().is_none_or(|(_, bs)| {
                        s.ejected_until.load(Ordering::Relaxed) < bs.ejected_until.load(Ordering::Relaxed)
                    });
                    if better {
                        best = Some((*addr, s));
                    }
                }
                best?
            }
        };
        chosen.1.outstanding.fetch_add(1, Ordering::Relaxed);
        Some(EndpointGuard {
            addr: chosen.0,
            state: chosen.1,
        })
    }

    /// Records a connect failure: the endpoint is skipped for the ejection time, doubled for
    /// each consecutive failure.
    pub fn eject(&self, guard: &EndpointGuard) {
        let failures = guard.state.failures.fetch_add(1, Ordering::Relaxed).min(5);
        let ms = u64::try_from(self.ejection.as_millis()).unwrap_or(u64::MAX) << failures;
        guard
            .state
            .ejected_until
            .store(self.now_ms().saturating_add(ms), Ordering::Relaxed);
        tracing::debug!(endpoint = %guard.addr, ejected_ms = ms, "endpoint ejected after a connect failure");
    }

    /// Records a success: the failure streak ends.
    pub fn succeeded(&self, guard: &EndpointGuard) {
        if guard.state.failures.load(Ordering::Relaxed) != 0 {
            guard.state.failures.store(0, Ordering::Relaxed);
        }
    }

    /// Whether an endpoint is ejected now (for tests and debugging).
    pub fn is_ejected(&self, addr: SocketAddr) -> bool {
        self.state(addr).ejected_until.load(Ordering::Relaxed) > self.now_ms()
    }

    /// Outstanding requests on an endpoint.
    pub fn outstanding(&self, addr: SocketAddr) -> u32 {
        self.state(addr).outstanding.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u16) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 1000 + i)))
            .collect()
    }

    #[test]
    fn picks_the_less_loaded_and_skips_ejected() {
        let b = Balancer::new(Duration::from_secs(10));
        let eps = addrs(2);
        let busy = b.pick(&eps[..1], None).expect("pick");
        assert_eq!(busy.addr, eps[0]);
        for _ in 0..50 {
            let g = b.pick(&eps, None).expect("pick");
            assert_eq!(g.addr, eps[1], "the idle endpoint wins");
        }
        drop(busy);
        let g = b.pick(&eps[1..], None).expect("pick");
        b.eject(&g);
        drop(g);
        assert!(b.is_ejected(eps[1]));
        for _ in 0..50 {
            assert_eq!(b.pick(&eps, None).expect("pick").addr, eps[0]);
        }
        assert_eq!(
            b.pick(&eps, Some(eps[0])).expect("pick").addr,
            eps[1],
            "ejected beats nothing"
        );
        assert!(b.pick(&eps[..1], Some(eps[0])).is_none());
        assert_eq!(b.outstanding(eps[0]), 0);
    }
}
