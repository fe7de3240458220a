//! Prometheus metrics named after API Gateway's CloudWatch metrics.
//!
//! | metric | AWS | type |
//! |---|---|---|
//! | `turnpike_count` | Count | counter |
//! | `turnpike_latency` | Latency | histogram, milliseconds |
//! | `turnpike_integration_latency` | IntegrationLatency | histogram, milliseconds |
//! | `turnpike_4xx_error` | 4XXError | counter |
//! | `turnpike_5xx_error` | 5XXError | counter |
//!
//! Every metric carries the labels `api` (the api id), `stage`, `resource` (the resource path
//! *template*, never the raw path) and `method` (the resource method: `GET`…, `ANY`, or
//! `OTHER`), and `canary` (`true` when the stage's canary served it). A request that matched nothing has empty labels for what it did not match, so the
//! label set is bounded by the routing table.

use std::{borrow::Cow, time::Duration};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
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

/// The request metrics of the proxy. Cheap to share (`Arc<Metrics>`); registered once.
#[derive(Debug)]
pub struct Metrics {
    count: Family<RouteLabels, Counter>,
    latency: HistogramFamily,
    integration_latency: HistogramFamily,
    error_4xx: Family<RouteLabels, Counter>,
    error_5xx: Family<RouteLabels, Counter>,
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
        let m = Metrics {
            count: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            integration_latency: Family::new_with_constructor(latency_histogram),
            error_4xx: Family::default(),
            error_5xx: Family::default(),
        };
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

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
