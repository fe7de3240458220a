//! The controller's own metrics, registered next to the proxy's under the `turnpike` prefix:
//!
//! | metric | type |
//! |---|---|
//! | `turnpike_controller_rebuilds_total` | counter: tables published |
//! | `turnpike_controller_rebuild_seconds` | histogram: world + compile + publish |
//! | `turnpike_controller_status_writes_total` | counter: status patches sent (leader) |
//! | `turnpike_controller_failures_total{error}` | counter, by [`Error::metric_label`] |
//! | `turnpike_controller_leader` | gauge: 1 while this replica holds the Lease |
//! | `turnpike_controller_cached_secrets` | gauge: Secrets whose data the controller holds |

use std::time::Duration;

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

use crate::Error;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: &'static str,
}

/// Controller metrics; cheap to clone (the counters are shared).
#[derive(Clone, Debug, Default)]
pub struct ControllerMetrics {
    rebuilds: Counter,
    rebuild_seconds: Option<Histogram>,
    status_writes: Counter,
    failures: Family<ErrorLabels, Counter>,
    leader: Gauge,
    cached_secrets: Gauge,
}

impl ControllerMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = ControllerMetrics {
            // 1 ms .. ~4 s.
            rebuild_seconds: Some(Histogram::new(exponential_buckets(0.001, 2.0, 13))),
            ..Default::default()
        };
        let r = registry.sub_registry_with_prefix("controller");
        r.register("rebuilds", "Routing tables published", m.rebuilds.clone());
        if let Some(h) = &m.rebuild_seconds {
            r.register(
                "rebuild_seconds",
                "Seconds to build the world, compile and publish",
                h.clone(),
            );
        }
        r.register(
            "status_writes",
            "Status patches sent (leader only)",
            m.status_writes.clone(),
        );
        r.register("failures", "Controller failures by kind", m.failures.clone());
        r.register("leader", "1 while this replica holds the Lease", m.leader.clone());
        r.register(
            "cached_secrets",
            "Secrets whose data the controller holds (only those ApiKeys refer to)",
            m.cached_secrets.clone(),
        );
        m
    }

    pub(crate) fn rebuilt(&self, took: Duration) {
        self.rebuilds.inc();
        if let Some(h) = &self.rebuild_seconds {
            h.observe(took.as_secs_f64());
        }
    }

    pub(crate) fn status_written(&self) {
        self.status_writes.inc();
    }

    pub(crate) fn failure(&self, e: &Error) {
        self.failures
            .get_or_create(&ErrorLabels {
                error: e.metric_label(),
            })
            .inc();
    }

    pub(crate) fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    pub(crate) fn set_cached_secrets(&self, n: usize) {
        self.cached_secrets.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}
