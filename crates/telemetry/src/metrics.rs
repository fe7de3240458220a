//! Prometheus metrics named after API Gateway's CloudWatch metrics.
//!
//! | metric | AWS | type |
//! |---|---|---|
//! | `turnpike_count` | Count | counter |
//! | `turnpike_latency` | Latency | histogram, milliseconds |
//! | `turnpike_integration_latency` | IntegrationLatency | histogram, milliseconds |
//! | `turnpike_4xx_error` | 4XXError | counter |
//! | `turnpike_5xx_error` | 5XXError | counter |
//! | `turnpike_cache_hit_count` | CacheHitCount | counter (only for methods with caching) |
//! | `turnpike_cache_miss_count` | CacheMissCount | counter (only for methods with caching) |
//!
//! WebSocket APIs have AWS's WebSocket metrics, labelled `api` and `stage` (AWS's `ApiId` and
//! `Stage` dimensions; bounded by the routing table): `turnpike_ws_connect_count`
//! (ConnectCount), `turnpike_ws_message_count` (MessageCount), `turnpike_ws_integration_error`
//! (IntegrationError), `turnpike_ws_client_error` (ClientError), `turnpike_ws_execution_error`
//! (ExecutionError), `turnpike_ws_integration_latency` (IntegrationLatency, milliseconds); and
//! the gauge `turnpike_ws_connections` (open connections of this replica, no labels).
//!
//! Every request metric carries the labels `api` (the api id), `stage`, `resource` (the resource path
//! *template*, never the raw path) and `method` (the resource method: `GET`…, `ANY`, or
//! `OTHER`), and `canary` (`true` when the stage's canary served it). A request that matched nothing has empty labels for what it did not match, so the
//! label set is bounded by the routing table.

use std::{
    borrow::Cow,
    cell::RefCell,
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// The labels of every request metric.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub api: Cow<'static, str>,
    pub stage: Cow<'static, str>,
    pub resource: Cow<'static, str>,
    pub method: Cow<'static, str>,
    /// `true` for requests the stage's canary served (AWS `isCanaryRequest`).
    pub canary: bool,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The labels of the WebSocket metrics: AWS's `ApiId` and `Stage` dimensions.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub api: String,
    pub stage: String,
}

/// The request metrics of the proxy. Cheap to share (`Arc<Metrics>`); registered once.
#[derive(Debug)]
pub struct Metrics {
    /// Tells the per-thread handle caches of two registries apart.
    id: u64,
    count: Family<RouteLabels, Counter>,
    latency: HistogramFamily,
    integration_latency: HistogramFamily,
    error_4xx: Family<RouteLabels, Counter>,
    error_5xx: Family<RouteLabels, Counter>,
    cache_hit: Family<RouteLabels, Counter>,
    cache_miss: Family<RouteLabels, Counter>,
    /// Which limits are in force: 1 shared through Redis, 0 local (no Redis, or Redis down in
    /// open mode), -1 Redis down in closed mode (503).
    pub limits_mode: Gauge,
    /// The WebSocket metrics.
    pub websocket: WebSocketMetrics,
}

/// AWS's WebSocket API metrics, per API and stage.
#[derive(Debug)]
pub struct WebSocketMetrics {
    /// Connections accepted (AWS ConnectCount).
    pub connect_count: Family<StageLabels, Counter>,
    /// Messages received from clients (AWS MessageCount).
    pub message_count: Family<StageLabels, Counter>,
    /// Integration calls that failed or answered non-2xx (AWS IntegrationError).
    pub integration_error: Family<StageLabels, Counter>,
    /// Messages refused for the client's fault: no route, throttled, too big (AWS ClientError).
    pub client_error: Family<StageLabels, Counter>,
    /// Answers the gateway could not deliver (AWS ExecutionError).
    pub execution_error: Family<StageLabels, Counter>,
    /// Milliseconds from integration request to response head (AWS IntegrationLatency).
    pub integration_latency: Family<StageLabels, Histogram, fn() -> Histogram>,
    /// Open connections on this replica.
    pub connections: Gauge,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~32 s.
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

impl Metrics {
    /// Creates the metrics and registers them under `registry` (names get the `turnpike_`
    /// prefix when the registry is created with [`Registry::with_prefix`]; see
    /// [`Metrics::registry`]).
    pub fn new(registry: &mut Registry) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let m = Metrics {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            count: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            integration_latency: Family::new_with_constructor(latency_histogram),
            error_4xx: Family::default(),
            error_5xx: Family::default(),
            cache_hit: Family::default(),
            cache_miss: Family::default(),
            limits_mode: Gauge::default(),
            websocket: WebSocketMetrics {
                connect_count: Family::default(),
                message_count: Family::default(),
                integration_error: Family::default(),
                client_error: Family::default(),
                execution_error: Family::default(),
                integration_latency: Family::new_with_constructor(latency_histogram),
                connections: Gauge::default(),
            },
        };
        let ws = &m.websocket;
        registry.register(
            "ws_connect_count",
            "WebSocket connections accepted (AWS ConnectCount)",
            ws.connect_count.clone(),
        );
        registry.register(
            "ws_message_count",
            "WebSocket messages received (AWS MessageCount)",
            ws.message_count.clone(),
        );
        registry.register(
            "ws_integration_error",
            "WebSocket integration calls that failed or answered non-2xx (AWS IntegrationError)",
            ws.integration_error.clone(),
        );
        registry.register(
            "ws_client_error",
            "WebSocket messages refused for the client's fault (AWS ClientError)",
            ws.client_error.clone(),
        );
        registry.register(
            "ws_execution_error",
            "WebSocket answers the gateway could not deliver (AWS ExecutionError)",
            ws.execution_error.clone(),
        );
        registry.register(
            "ws_integration_latency",
            "Milliseconds from WebSocket integration request to response head (AWS IntegrationLatency)",
            ws.integration_latency.clone(),
        );
        registry.register(
            "ws_connections",
            "Open WebSocket connections of this replica",
            ws.connections.clone(),
        );
        registry.register("count", "Requests served (AWS Count)", m.count.clone());
        registry.register(
            "latency",
            "Milliseconds from request received to response finished (AWS Latency)",
            m.latency.clone(),
        );
        registry.register(
            "integration_latency",
            "Milliseconds from integration request sent to response headers received (AWS IntegrationLatency)",
            m.integration_latency.clone(),
        );
        registry.register(
            "4xx_error",
            "Requests answered 4xx (AWS 4XXError)",
            m.error_4xx.clone(),
        );
        registry.register(
            "5xx_error",
            "Requests answered 5xx (AWS 5XXError)",
            m.error_5xx.clone(),
        );
        registry.register(
            "cache_hit_count",
            "Requests answered from the stage cache (AWS CacheHitCount)",
            m.cache_hit.clone(),
        );
        registry.register(
            "cache_miss_count",
            "Requests of cached methods answered by the backend (AWS CacheMissCount)",
            m.cache_miss.clone(),
        );
        registry.register(
            "limits_mode",
            "Which throttles and quotas are in force: 1 shared through Redis, 0 local (no Redis, or Redis down in open mode), -1 Redis down in closed mode",
            m.limits_mode.clone(),
        );
        m
    }

    /// A registry with the `turnpike` prefix and the metrics in it.
    pub fn registry() -> (Registry, Self) {
        let mut registry = Registry::with_prefix("turnpike");
        let metrics = Metrics::new(&mut registry);
        (registry, metrics)
    }

    /// Records one finished request.
    pub fn record(
        &self,
        labels: &RouteLabels,
        status: u16,
        latency: Duration,
        integration: Option<Duration>,
    ) {
        self.count.get_or_create(labels).inc();
        self.latency.get_or_create(labels).observe(millis(latency));
        if let Some(d) = integration {
            self.integration_latency.get_or_create(labels).observe(millis(d));
        }
        match status {
            400..=499 => {
                self.error_4xx.get_or_create(labels).inc();
            }
            500..=599 => {
                self.error_5xx.get_or_create(labels).inc();
            }
            _ => {}
        }
    }
}

/// The metric handles of one label set, resolved once and shared: recording through them
/// takes no lock on the families and no label allocation.
#[derive(Debug)]
pub struct RouteMetrics {
    count: Counter,
    latency: Histogram,
    integration_latency: Histogram,
    error_4xx: Counter,
    error_5xx: Counter,
    /// Hit and miss counters, created on the first cached request of the route (a route
    /// without caching shows no cache series).
    cache: std::sync::OnceLock<(Counter, Counter)>,
    cache_families: (Family<RouteLabels, Counter>, Family<RouteLabels, Counter>),
    labels: RouteLabels,
}

impl RouteMetrics {
    /// Records one finished request.
    pub fn record(&self, status: u16, latency: Duration, integration: Option<Duration>) {
        self.count.inc();
        self.latency.observe(millis(latency));
        if let Some(d) = integration {
            self.integration_latency.observe(millis(d));
        }
        match status {
            400..=499 => {
                self.error_4xx.inc();
            }
            500..=599 => {
                self.error_5xx.inc();
            }
            _ => {}
        }
    }

    /// Counts a request of a cached method: answered from the cache (`hit`) or not.
    pub fn record_cache(&self, hit: bool) {
        let (hits, misses) = self.cache.get_or_init(|| {
            (
                self.cache_families.0.get_or_create(&self.labels).clone(),
                self.cache_families.1.get_or_create(&self.labels).clone(),
            )
        });
        if hit {
            hits.inc()
        } else {
            misses.inc()
        };
    }
}

type HandleCache = HashMap<u64, Vec<(u64, RouteLabels, Arc<RouteMetrics>)>>;

thread_local! {
    /// Per thread: label set → handles, keyed by a hash of the borrowed labels so a hit
    /// allocates nothing. Bounded: cleared when it grows past `MAX_CACHED`.
    static HANDLES: RefCell<HandleCache> = RefCell::new(HashMap::new());
}

const MAX_CACHED: usize = 16_384;

impl Metrics {
    /// The handles for a label set (see [`RouteLabels`] for the meaning of each).
    pub fn route(
        &self,
        api: &str,
        stage: &str,
        resource: &str,
        method: &'static str,
        canary: bool,
    ) -> Arc<RouteMetrics> {
        let hash = {
            // Fixed keys: the same labels hash the same on every call.
            let mut h = std::hash::BuildHasher::build_hasher(&foldhash::fast::FixedState::with_seed(0));
            (self.id, api, stage, resource, method, canary).hash(&mut h);
            h.finish()
        };
        let found = HANDLES.with(|cache| {
            let cache = cache.borrow();
            cache.get(&hash).and_then(|entries| {
                entries
                    .iter()
                    .find(|(id, l, _)| {
                        *id == self.id
                            && l.api == api
                            && l.stage == stage
                            && l.resource == resource
                            && l.method == method
                            && l.canary == canary
                    })
                    .map(|(_, _, m)| m.clone())
            })
        });
        if let Some(m) = found {
            return m;
        }
        let labels = RouteLabels {
            api: Cow::Owned(api.to_string()),
            stage: Cow::Owned(stage.to_string()),
            resource: Cow::Owned(resource.to_string()),
            method: Cow::Borrowed(method),
            canary,
        };
        let handles = Arc::new(RouteMetrics {
            count: self.count.get_or_create(&labels).clone(),
            latency: self.latency.get_or_create(&labels).clone(),
            integration_latency: self.integration_latency.get_or_create(&labels).clone(),
            error_4xx: self.error_4xx.get_or_create(&labels).clone(),
            error_5xx: self.error_5xx.get_or_create(&labels).clone(),
            cache: std::sync::OnceLock::new(),
            cache_families: (self.cache_hit.clone(), self.cache_miss.clone()),
            labels: labels.clone(),
        });
        HANDLES.with(|cache| {
            let mut cache = cache.borrow_mut();
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache
                .entry(hash)
                .or_default()
                .push((self.id, labels, handles.clone()));
        });
        handles
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
