//! The controller: Kubernetes objects in, the live routing table and explaining status out.
//!
//! ```text
//!  reflectors (RestApi, Deployment, Stage, UsagePlan, ApiKey, snapshot and OpenAPI
//!  ConfigMaps, Services, EndpointSlices) + one labelled-Secret watch + a light Pod watch, per scope
//!        │ every event pokes one Notify
//!        ▼
//!  index::run: hold-off (100 ms after the last change, at most 1 s after the first)
//!        │ clone every store → openapi import → ingest::world → compile (pure) → publish
//!        ▼
//!  status::Writer (leader only): snapshot ConfigMaps, generated Secrets, status by SSA, Events
//!        ▲
//!  leader::Elector: a coordination.k8s.io/v1 Lease, resourceVersion-guarded
//! ```
//!
//! Every replica watches and publishes; only the Lease holder writes to the API server, like
//! linkerd's policy controller. Rebuilds are full and debounced, like Contour: compile is
//! cheap enough (≤ 50 ms at 10k routes) that incremental bookkeeping is not worth its bugs,
//! with one exception for what scales with the number of API keys: a key converted
//! ([`keys::KeyStore`], as the watch delivers it) and compiled
//! ([`CompileCache`](turnpike_core::compile::CompileCache)) once is reused while its spec,
//! labels, Secret and plans stay as they were.
//! Nothing is published before every watch has listed once, so `/readyz` (which reads
//! [`TableStore::is_published`](turnpike_proxy::store::TableStore::is_published)) stays false
//! until the table reflects the whole cluster.
//!
//! Every watch is scoped: to every namespace, or to each namespace of
//! [`Config::namespaces`] (`--watch-namespaces`), so RBAC can be Roles in those namespaces
//! only. Secrets are watched by label only (`turnpike.dev/api-key`, one watch per scope
//! whatever the number of keys), and of those the controller keeps only the ones ApiKeys refer
//! to ([`secrets`]). Services and EndpointSlices are watched whole
//! (with managed fields stripped): integrations may name any of them. Pods are watched with
//! everything but namespace and pod IPs stripped, to map caller IPs to namespaces for the
//! resource policies of PRIVATE APIs.
//!
//! May depend on: `turnpike-core`, `turnpike-api`, `turnpike-proxy` (the table store and the
//! namespace lookup it feeds), `turnpike-telemetry`, `kube` and `kube-runtime`; never on the
//! embedded API server, which it reaches only through a kubeconfig. Start reading at
//! [`index::run`], then [`ingest`] (objects → World) and [`status`].

pub mod apply;
pub mod cache;
pub mod cache_status;
pub mod debounce;
pub mod events;
pub mod exports;
pub mod index;
pub mod ingest;
pub mod keys;
pub mod leader;
pub mod metrics;
pub mod node;
pub mod openapi;
pub mod pods;
pub mod pool;
pub mod rbac;
pub mod replicas;
pub mod secrets;
pub mod slim;
pub mod snapshots;
pub mod status;
pub mod summaries;
pub mod usage;

use std::{sync::Arc, time::Duration};

use kube::Client;
use tokio::{sync::watch, task::JoinHandle};

pub use self::{leader::LeaseConfig, metrics::ControllerMetrics, pods::PodIndex};
use turnpike_core::compile::CompileConfig;
use turnpike_proxy::store::TableStore;

/// The field manager of every write the controller makes.
pub const FIELD_MANAGER: &str = "turnpike";

/// What can go wrong in the controller. Nothing here stops the process: each failure is
/// logged, counted in `turnpike_controller_failures_total{error=metric_label()}` and retried.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("status of {kind} {namespace}/{name}: {source}")]
    Status {
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("snapshot {namespace}/{name}: {source}")]
    Snapshot {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("event: {0}")]
    Event(#[source] kube::Error),
    #[error("lease {name}: {source}")]
    Lease {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("serializing: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("CRD {name}: {source}")]
    Crd {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("CRD {name} is not Established after 30 s")]
    CrdNotEstablished { name: String },
}

impl Error {
    /// A short, bounded label for the failures metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Status { .. } => "status",
            Error::Snapshot { .. } => "snapshot",
            Error::Event(_) => "event",
            Error::Lease { .. } => "lease",
            Error::Serialize(_) => "serialize",
            Error::Crd { .. } | Error::CrdNotEstablished { .. } => "crd",
        }
    }
}

/// The controller's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Shapes the routing table and the URLs in status (`invoke_base` in local mode).
    pub compile: CompileConfig,
    /// Quiet time after the last change before a rebuild (Contour's `HoldoffDelay`).
    pub holdoff: Duration,
    /// Longest a rebuild waits after the first change of a burst (`HoldoffMaxDelay`).
    pub holdoff_max: Duration,
    /// Leader election.
    pub lease: LeaseConfig,
    /// The namespaces to watch (every reflector, the Secret and Pod watches); empty watches
    /// every namespace. With a list, the controller needs RBAC only in those namespaces
    /// (plus its Lease's).
    pub namespaces: Vec<String>,
}

impl Config {
    /// The defaults: 100 ms hold-off, 1 s at most, every namespace, the default Lease.
    pub fn new(lease: LeaseConfig) -> Self {
        Config {
            compile: CompileConfig::default(),
            holdoff: Duration::from_millis(100),
            holdoff_max: Duration::from_secs(1),
            lease,
            namespaces: Vec::new(),
        }
    }
}

/// The annotation `kubectl apply` keeps on every object it applies: a second copy of the whole
/// object (for a Secret, of its data), which the controller never reads.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops from a watched object's metadata what the controller never reads and what can be as
/// large as the object itself: managed fields and `kubectl apply`'s copy of the object. Every
/// reflector passes its objects through it, so each object is held once. (ApiKeys and their
/// Secrets, by the thousand, are read without them in the first place: [`slim`].)
pub(crate) fn trim_metadata(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// The watch scopes of `namespaces`: `[None]` (every namespace) when empty, else one per
/// namespace.
pub(crate) fn scopes(namespaces: &[String]) -> Vec<Option<String>> {
    if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().cloned().map(Some).collect()
    }
}

/// A running controller.
///
/// [`ControllerHandle::shutdown`] stops watching and releases the Lease so another replica
/// takes over at once; dropping the handle (or [`ControllerHandle::abort`]) stops every task
/// without releasing it, as a crash would.
pub struct ControllerHandle {
    /// Caller IP → namespace, for the proxy's [`NamespaceLookup`](turnpike_proxy::NamespaceLookup).
    pub pods: Arc<PodIndex>,
    /// The read cache of the cluster (filled once the watches have listed).
    pub stores: index::Stores,
    leader: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    elector: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl ControllerHandle {
    /// Whether this replica holds the Lease now.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Leadership changes.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    /// Stops every task and releases the Lease (a graceful hand-over).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(elector) = self.elector.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), elector).await;
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }

    /// Stops every task at once, keeping the Lease (as a crash would).
    pub fn abort(mut self) {
        self.abort_all();
    }

    fn abort_all(&mut self) {
        if let Some(e) = self.elector.take() {
            e.abort();
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for ControllerHandle {
    fn drop(&mut self) {
        self.abort_all();
    }
}

/// Starts the controller: watches, the rebuild loop publishing into `table`, the leader
/// elector and the status writer. Returns once the tasks are spawned; the first table is
/// published after every watch has synced.
pub fn start(
    client: Client,
    table: TableStore,
    config: Config,
    metrics: ControllerMetrics,
) -> ControllerHandle {
    start_with_pods(client, table, config, metrics, Arc::new(PodIndex::default()))
}

/// [`start`], filling a pod index the caller already handed to the proxy.
pub fn start_with_pods(
    client: Client,
    table: TableStore,
    config: Config,
    metrics: ControllerMetrics,
    pods: Arc<PodIndex>,
) -> ControllerHandle {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (leader_tx, leader_rx) = watch::channel(false);
    let metrics = Arc::new(metrics);

    let elector = leader::Elector::new(client.clone(), config.lease.clone(), metrics.clone());
    let elector_task = tokio::spawn(elector.run(leader_tx, stop_rx.clone()));

    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(pods::run(
        client.clone(),
        config.namespaces.clone(),
        pods.clone(),
    )));
    let (index, index_tasks) = index::Index::start(client.clone(), &config);
    tasks.extend(index_tasks);
    let stores = index.stores();
    let (outcome_tx, outcome_rx) = watch::channel(Arc::new(status::Outcome::default()));
    let writer = status::Writer::new(
        client.clone(),
        index.stores(),
        metrics.clone(),
        &config.lease.identity,
    );
    tasks.push(tokio::spawn(writer.run(outcome_rx, leader_rx.clone())));
    tasks.push(tokio::spawn(index.run(
        table,
        config,
        pods.clone(),
        leader_rx.clone(),
        outcome_tx,
        metrics,
    )));
    ControllerHandle {
        pods,
        stores,
        leader: leader_rx,
        stop: stop_tx,
        elector: Some(elector_task),
        tasks,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

    use super::*;

    #[test]
    fn trimmed_metadata_keeps_the_annotations_compile_reads() {
        let mut meta = ObjectMeta {
            managed_fields: Some(vec![ManagedFieldsEntry::default()]),
            annotations: Some(BTreeMap::from([
                (
                    LAST_APPLIED.to_string(),
                    "{\"data\":{\"key\":\"c2VjcmV0\"}}".to_string(),
                ),
                (crate::ingest::FLUSH_CACHE_ANNOTATION.to_string(), "1".to_string()),
            ])),
            ..Default::default()
        };
        trim_metadata(&mut meta);
        assert_eq!(meta.managed_fields, None);
        assert_eq!(
            meta.annotations,
            Some(BTreeMap::from([(
                crate::ingest::FLUSH_CACHE_ANNOTATION.to_string(),
                "1".to_string()
            )]))
        );

        let mut only_applied = ObjectMeta {
            annotations: Some(BTreeMap::from([(LAST_APPLIED.to_string(), "{}".to_string())])),
            ..Default::default()
        };
        trim_metadata(&mut only_applied);
        assert_eq!(only_applied.annotations, None);
    }
}
