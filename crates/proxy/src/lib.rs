//! The data plane: an HTTPS proxy that serves REST APIs from the published routing table.
//!
//! ```text
//! listener (TCP, TLS+ALPN, SNI certs) → h1::server (HTTP/1.1) or hyper (HTTP/2) → service::serve
//!   limits → method → authority → normalize → route::locate → policy → canary → route::resolve
//!   → keys → params → throttle (buckets and quotas, [`usage`]) → validate → integrate
//!   → compress → gateway headers, metrics and access log when the response body ends
//! ```
//!
//! Wiring (from `main`):
//!
//! ```no_run
//! # async fn wire() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use turnpike_proxy::{Proxy, ProxyConfig, store::TableStore};
//! use turnpike_telemetry::metrics::Metrics;
//! let store = TableStore::new();
//! let (registry, metrics) = Metrics::registry();
//! let proxy = Proxy::bind(ProxyConfig::default(), store.clone(), Arc::new(metrics)).await?;
//! let certs = proxy.cert_store(); // feed Secrets with certs.set(hosts, chain_pem, key_pem)
//! proxy.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # let _ = (registry, certs); Ok(()) }
//! ```
//!
//! May depend on: `turnpike-core` (the routing table it reads), `turnpike-telemetry`, hyper,
//! rustls and tokio. It never depends on `kube` or `k8s-openapi` (`tests/architecture.rs`);
//! what it needs from the cluster (Service endpoints, certificates, pod namespaces) reaches it
//! through the routing table, [`tls::CertStore`] and [`NamespaceLookup`]. The table is
//! published through [`store::TableStore`]; [`admin`] serves `/metrics`, `/healthz` and
//! `/readyz`. Start reading at [`service`], the one place the phase order lives.

pub mod admin;
pub mod authorizer;
pub mod body;
pub mod cache;
pub mod compress;
pub mod ctx;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod h1;
pub mod headers;
pub mod ids;
mod listener;
pub mod phase;
pub mod service;
pub mod store;
pub mod test_invoke;
pub mod tls;
pub mod trace;
pub mod upstream;
pub mod usage;
pub mod websocket;

use std::{
    fmt,
    future::Future,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use http::{HeaderName, HeaderValue};
use tokio::net::TcpListener;

use crate::store::TableStore;
pub use crate::{
    tls::{CertError, CertStore},
    upstream::{UpstreamConfig, Upstreams},
};
use turnpike_core::model::{AccessLogFormat, ServiceRef};
use turnpike_core::routing::{Listener, RoutingTable};
use turnpike_telemetry::metrics::Metrics;

/// The ready endpoints of a Service in a table (empty when unknown).
pub(crate) fn service_endpoints<'t>(table: &'t RoutingTable, service: &ServiceRef) -> &'t [SocketAddr] {
    table.service_endpoints(service).map_or(&[], |e| &e[..])
}

/// Finds the namespace of the pod that owns an address (the controller supplies one backed
/// by its pod/EndpointSlice index). Used by resource policies with `sourceNamespaces`.
pub trait NamespaceLookup: Send + Sync {
    fn namespace_of(&self, ip: IpAddr) -> Option<String>;
}

impl<F> NamespaceLookup for F
where
    F: Fn(IpAddr) -> Option<String> + Send + Sync,
{
    fn namespace_of(&self, ip: IpAddr) -> Option<String> {
        self(ip)
    }
}

/// One listening socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    pub addr: SocketAddr,
    /// Which APIs it serves: REGIONAL and EDGE on public, PRIVATE on private.
    pub listener: Listener,
    /// TLS (with ALPN h2/http/1.1); `false` is plain HTTP (h1 and h2 prior knowledge), only
    /// when explicitly configured.
    pub tls: bool,
}

/// Request size limits (AWS REST API limits by default).
#[derive(Clone, Debug)]
pub struct Limits {
    /// 10 MB: larger declared bodies answer 413 up front, streamed ones are cut.
    pub max_body_bytes: u64,
    /// Path and query, bytes (414 beyond).
    pub max_uri_bytes: usize,
    /// One header value (431 beyond).
    pub max_header_value_bytes: usize,
    /// All headers together (431 beyond).
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 10 * 1024 * 1024,
            max_uri_bytes: 10_240,
            max_header_value_bytes: 10_240,
            max_header_bytes: 64 * 1024,
        }
    }
}

/// The proxy's configuration.
#[derive(Clone)]
pub struct ProxyConfig {
    /// Default: public TLS on 0.0.0.0:8443, private TLS on 0.0.0.0:9443.
    pub listeners: Vec<ListenerConfig>,
    /// The default certificate chain and key (PEM files). Without them a self-signed
    /// certificate for `self_signed_names` is generated.
    pub cert_files: Option<(PathBuf, PathBuf)>,
    /// How often `cert_files` are read again to pick up a rotated certificate.
    pub cert_reload_interval: Duration,
    pub self_signed_names: Vec<String>,
    /// The header that forces (`always`) or excludes (`never`) the canary.
    pub canary_header: HeaderName,
    pub limits: Limits,
    pub upstream: UpstreamConfig,
    /// How long in-flight requests may take to finish at shutdown.
    pub drain_timeout: Duration,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// How long an HTTP/1.1 connection may wait for its next request (to the second: it is
    /// kept with a coarse clock).
    pub idle_timeout: Duration,
    /// The access log format for stages without one (and for requests that match no stage);
    /// `None` logs only stages that ask for it.
    pub default_access_log: Option<AccessLogFormat>,
    pub namespace_lookup: Option<Arc<dyn NamespaceLookup>>,
    /// Forward request header names that contain `_` (nginx's `underscores_in_headers on`).
    /// Off by default: such headers are dropped when the head is read, so a CGI/WSGI backend,
    /// which maps `-` and `_` to the same variable name, cannot read `Content_Length` or
    /// `Transfer_Encoding` as the framing the gateway checked.
    pub allow_underscores_in_headers: bool,
    /// Forward path segments the default path rule refuses beyond AWS's own (see
    /// [`phase::normalize`]): `.`/`..` hidden behind `;parameters`, percent-encoded bytes that
    /// are not UTF-8 (overlong forms included) and full-width dot and slash look-alikes. Off
    /// by default. Dot segments and encoded separators stay refused whatever this says: they
    /// could escape the stage.
    pub allow_raw_path_segments: bool,
    /// The least time between two fetches of one issuer's JWKS (a token with an unknown `kid`
    /// triggers one). Default 60 s.
    pub jwks_min_refresh: Duration,
    /// When issuers' keys are refreshed in the background: their `Cache-Control` max-age held
    /// within 5 minutes and 24 hours (an hour without one).
    pub jwks_refresh: authorizer::KeysRefresh,
    /// Throttles and quotas: the gateway default, the replica share, the clock.
    pub usage: usage::UsageConfig,
    /// Where the stage caches are kept (`--cache-backend`).
    pub cache: cache::CacheConfig,
    /// WebSocket connection limits (idle timeout, lifetime, frame and message sizes).
    pub websocket: websocket::WebSocketLimits,
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("listeners", &self.listeners)
            .field("cert_files", &self.cert_files)
            .field("canary_header", &self.canary_header)
            .field("limits", &self.limits)
            .field("upstream", &self.upstream)
            .field("drain_timeout", &self.drain_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("default_access_log", &self.default_access_log)
            .field("namespace_lookup", &self.namespace_lookup.is_some())
            .field("allow_underscores_in_headers", &self.allow_underscores_in_headers)
            .field("allow_raw_path_segments", &self.allow_raw_path_segments)
            .field("usage", &self.usage)
            .field("websocket", &self.websocket)
            .finish()
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listeners: vec![
                ListenerConfig {
                    addr: SocketAddr::from(([0, 0, 0, 0], 8443)),
                    listener: Listener::Public,
                    tls: true,
                },
                ListenerConfig {
                    addr: SocketAddr::from(([0, 0, 0, 0], 9443)),
                    listener: Listener::Private,
                    tls: true,
                },
            ],
            cert_files: None,
            cert_reload_interval: Duration::from_secs(10),
            self_signed_names: vec!["localhost".into(), "*.execute-api.local.turnpike.dev".into()],
            canary_header: HeaderName::from_static("x-turnpike-canary"),
            limits: Limits::default(),
            upstream: UpstreamConfig::default(),
            drain_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            default_access_log: Some(AccessLogFormat::Json),
            namespace_lookup: None,
            allow_underscores_in_headers: false,
            allow_raw_path_segments: false,
            jwks_min_refresh: authorizer::DEFAULT_MIN_REFRESH,
            jwks_refresh: authorizer::KeysRefresh::default(),
            usage: usage::UsageConfig::default(),
            cache: cache::CacheConfig::default(),
            websocket: websocket::WebSocketLimits::default(),
        }
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate: {0}")]
    Cert(#[from] CertError),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("upstream clients: {0}")]
    Upstream(#[from] upstream::UpstreamError),
}

/// What every request shares: the table store, config, metrics and upstream clients.
pub struct Shared {
    pub store: TableStore,
    pub config: ProxyConfig,
    pub metrics: Arc<Metrics>,
    pub upstreams: Upstreams,
    /// `Via: 1.1 {id}.turnpike (Turnpike)` of EDGE APIs.
    pub via: HeaderValue,
    /// `X-Amz-Cf-Pop` of EDGE APIs: this gateway instance, where CloudFront names its edge
    /// location.
    pub pop: HeaderValue,
    /// Token buckets and quota counters (kept across table swaps).
    pub usage: Arc<usage::Usage>,
    /// The stage caches (kept across table swaps; stages that leave the table are dropped).
    pub cache: Arc<cache::StageCaches>,
    /// Issuer key sets and cached authorizer answers (kept across table swaps).
    pub authorizers: Arc<authorizer::Authorizers>,
    /// Set when the proxy stops: connections close after their current answer.
    pub draining: std::sync::atomic::AtomicBool,
    /// The WebSocket connections this replica holds.
    pub connections: websocket::connections::Connections,
    /// With Redis: `@connections` calls for connections other replicas hold.
    pub relay: Option<Arc<websocket::relay::Relay>>,
}

/// A bound proxy, ready to [`run`](Proxy::run).
pub struct Proxy {
    shared: Arc<Shared>,
    certs: Arc<CertStore>,
    tls: Arc<rustls::ServerConfig>,
    sockets: Vec<(TcpListener, ListenerConfig)>,
}

// === impl Proxy ===

impl Proxy {
    /// Binds every listener and builds the TLS and upstream configuration. Nothing is served
    /// until [`Proxy::run`].
    pub async fn bind(
        config: ProxyConfig,
        store: TableStore,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ProxyError> {
        let certs = Arc::new(CertStore::new());
        match &config.cert_files {
            Some((chain, key)) => certs.load_default_files(chain, key)?,
            None => {
                certs.generate_default(config.self_signed_names.clone())?;
            }
        }
        let tls = Arc::new(tls::server_config(certs.clone())?);
        let mut sockets = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            let socket = TcpListener::bind(l.addr)
                .await
                .map_err(|source| ProxyError::Bind { addr: l.addr, source })?;
            let addr = socket
                .local_addr()
                .map_err(|source| ProxyError::Bind { addr: l.addr, source })?;
            sockets.push((socket, ListenerConfig { addr, ..l.clone() }));
        }
        let instance: u64 = rand::random();
        let via = HeaderValue::from_str(&format!("1.1 {instance:016x}.turnpike (Turnpike)"))
            .unwrap_or_else(|_| HeaderValue::from_static("1.1 turnpike (Turnpike)"));
        let pop = HeaderValue::from_str(&format!("TPK-{:08X}", instance >> 32))
            .unwrap_or_else(|_| HeaderValue::from_static("TPK"));
        let upstreams = Upstreams::new(&config.upstream)?;
        let usage = Arc::new(usage::Usage::new(
            config.usage.clone(),
            metrics.limits_mode.clone(),
        ));
        usage.start_history();
        let cache = Arc::new(cache::StageCaches::with_config(
            config.usage.clock.clone(),
            config.cache,
            usage.redis(),
        ));
        let relay = usage
            .redis()
            .zip(config.usage.redis.clone())
            .map(|(redis, redis_config)| {
                Arc::new(websocket::relay::Relay::new(
                    redis,
                    redis_config,
                    config.websocket.owner_ttl,
                ))
            });
        let authorizers =
            authorizer::Authorizers::new(upstreams.fetcher(), config.jwks_min_refresh, config.jwks_refresh);
        Ok(Proxy {
            shared: Arc::new(Shared {
                store,
                config,
                metrics,
                upstreams,
                via,
                pop,
                usage,
                cache,
                authorizers,
                draining: std::sync::atomic::AtomicBool::new(false),
                connections: websocket::connections::Connections::default(),
                relay,
            }),
            certs,
            tls,
            sockets,
        })
    }

    /// The bound listeners, with their actual addresses (port 0 resolved).
    pub fn listeners(&self) -> Vec<ListenerConfig> {
        self.sockets.iter().map(|(_, l)| l.clone()).collect()
    }

    /// The address of the first listener of a kind (`tls` or plain).
    pub fn local_addr(&self, listener: Listener, tls: bool) -> Option<SocketAddr> {
        self.sockets
            .iter()
            .find(|(_, l)| l.listener == listener && l.tls == tls)
            .map(|(_, l)| l.addr)
    }

    /// The certificate store behind SNI resolution; certificates set on it are served from
    /// the next handshake on.
    pub fn cert_store(&self) -> Arc<CertStore> {
        self.certs.clone()
    }

    /// The shared request state (for tests and debugging: the balancer, the config).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight requests
    /// finish, up to the drain timeout.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ProxyError> {
        let stop = tokio_util::sync::CancellationToken::new();
        let connections = tokio_util::task::TaskTracker::new();
        let mut listeners = tokio::task::JoinSet::new();
        for (socket, cfg) in self.sockets {
            let tls = cfg.tls.then(|| tokio_rustls::TlsAcceptor::from(self.tls.clone()));
            listeners.spawn(listener::serve(
                socket,
                cfg,
                self.shared.clone(),
                tls,
                stop.clone(),
                connections.clone(),
            ));
        }
        tokio::spawn(drop_gone_caches(self.shared.clone(), stop.clone()));
        if let Some(relay) = self.shared.relay.clone() {
            tokio::spawn(relay.run(self.shared.clone(), stop.clone()));
        }
        if let Some((chain, key)) = self.shared.config.cert_files.clone() {
            tokio::spawn(self.certs.clone().watch_default_files(
                chain,
                key,
                self.shared.config.cert_reload_interval,
                stop.clone(),
            ));
        }
        shutdown.await;
        tracing::info!("proxy shutting down: draining in-flight requests");
        self.shared
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        stop.cancel();
        while listeners.join_next().await.is_some() {}
        connections.close();
        let drain = self.shared.config.drain_timeout;
        if tokio::time::timeout(drain, connections.wait()).await.is_err() {
            tracing::warn!(?drain, "drain timeout: closing the remaining connections");
        }
        // What this replica leased of shared quotas and did not use goes back to Redis.
        self.shared.usage.release().await;
        Ok(())
    }
}

/// Drops the caches of stages that leave the table (or stop caching), at each publication;
/// with the shared tier, follows the stages' generations in Redis every 500 ms.
async fn drop_gone_caches(shared: Arc<Shared>, stop: tokio_util::sync::CancellationToken) {
    let mut published = shared.store.subscribe();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            changed = published.changed() => {
                if changed.is_err() {
                    return;
                }
                shared.cache.retain(&shared.store.load());
            }
            () = tokio::time::sleep(Duration::from_millis(500)), if shared.cache.is_shared() => {
                shared.cache.sync_generations().await;
            }
        }
    }
}
