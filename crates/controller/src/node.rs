//! One Turnpike replica: the controller, the proxy (public and private listeners) and the
//! admin listener, sharing one [`TableStore`]. `turnpike run`, `turnpike local` and the
//! end-to-end tests all start it the same way.
//!
//! The control plane (the watches, compile, the status and usage writers, the replica Lease)
//! runs on a thread of its own ([`ControlRuntime`]); the proxy and the admin listener run on
//! the runtime that starts the node.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use kube::Client;
use prometheus_client::registry::Registry;
use tokio::{
    runtime::{EnterGuard, Runtime},
    sync::watch,
    task::JoinHandle,
};

use crate::{self as controller, Config, ControllerHandle, ControllerMetrics};
use turnpike_core::routing::Listener;
use turnpike_proxy::store::TableStore;
use turnpike_proxy::{Proxy, ProxyConfig, ProxyError};
use turnpike_telemetry::metrics::Metrics;

/// How to run a replica.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub controller: Config,
    /// Its `namespace_lookup` is replaced by the controller's pod index.
    pub proxy: ProxyConfig,
    pub admin_addr: SocketAddr,
    /// Set `controller.compile.invoke_base` to `https://{public listener}` and
    /// `private_invoke_base` to `https://{private listener}` (local mode: the DNS-free path
    /// form of invoke URLs).
    pub invoke_base_from_public: bool,
    /// Count the replicas sharing local limits from their Leases ([`controller::replicas`]);
    /// false when `--replicas` fixes the count.
    pub count_replicas: bool,
    /// How often the leader writes usage summaries into UsagePlan and ApiKey status (30 s).
    pub usage_status_every: Duration,
    /// The admin token (`POST /cache/flush` takes it as a bearer token); without it only
    /// loopback peers may flush.
    pub admin_token_file: Option<std::path::PathBuf>,
}

impl NodeConfig {
    /// A replica with the defaults: replicas counted from Leases, usage summaries every 30 s.
    pub fn new(controller: Config, proxy: ProxyConfig, admin_addr: SocketAddr) -> Self {
        NodeConfig {
            controller,
            proxy,
            admin_addr,
            invoke_base_from_public: false,
            count_replicas: true,
            usage_status_every: Duration::from_secs(30),
            admin_token_file: None,
        }
    }
}

/// The runtime of the control plane: one worker thread, `turnpike-control`.
///
/// Kept apart from the proxy's workers for two reasons. A compile of the whole table (16 ms
/// with 10,000 API keys) or a burst of watch events never holds a proxy worker. And what the
/// controller keeps for each object (conversions, cached Secrets, compile outcomes) is
/// allocated on one thread, so one allocator heap holds it rather than one per worker, each
/// with its own partly used pages: with 10,000 ApiKeys created while the gateway runs, the
/// process settles at about 1.05 KiB of anonymous memory per key against 1.10 with the
/// controller on the proxy's two workers, and a gateway started with them at 0.93 against
/// 1.02 (`benches/scale/api_keys.py`).
///
/// One thread, not two: a second one for the API server traffic (watch streams read and
/// decoded there, statuses and Events written there, so that decoding's short-lived blocks
/// would not share pages with what is kept) measured worse, 1.04 and 1.09 KiB per key
/// against 0.97 and 1.01 for one thread (two runs each, interleaved): the second heap's
/// partly used pages cost more than the separation saves.
///
/// Dropping it stops its tasks at once, without waiting (so it may be dropped inside another
/// runtime): [`Node::shutdown`] awaits the tasks that must finish first.
pub struct ControlRuntime(Option<Runtime>);

impl ControlRuntime {
    /// Starts the thread.
    pub fn new() -> std::io::Result<ControlRuntime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("turnpike-control")
            .enable_all()
            .build()
            .map(|rt| ControlRuntime(Some(rt)))
    }

    fn runtime(&self) -> &Runtime {
        match &self.0 {
            Some(rt) => rt,
            None => unreachable!("taken only when dropped"),
        }
    }

    /// Runs `task` on the control thread.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime().spawn(task)
    }

    /// Makes this the current runtime until the guard drops: what is spawned meanwhile runs
    /// on the control thread. Never hold it across an `.await`.
    fn enter(&self) -> EnterGuard<'_> {
        self.runtime().enter()
    }
}

impl Drop for ControlRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for ControlRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControlRuntime")
    }
}

/// A running replica.
pub struct Node {
    /// The public and private TLS listeners, as bound (port 0 resolved).
    pub public: Option<SocketAddr>,
    pub private: Option<SocketAddr>,
    pub admin: SocketAddr,
    /// Every proxy listener, as bound.
    pub listeners: Vec<turnpike_proxy::ListenerConfig>,
    pub table: TableStore,
    pub controller: ControllerHandle,
    stop: watch::Sender<bool>,
    proxy: JoinHandle<Result<(), ProxyError>>,
    admin_task: JoinHandle<()>,
    /// The usage summaries.
    usage_task: JoinHandle<()>,
    cache_task: JoinHandle<()>,
    /// The replica Lease (stops, deleting the Lease, when `stop` turns true).
    replica_task: Option<JoinHandle<()>>,
    /// Where the controller and the tasks above run; dropped last.
    control: ControlRuntime,
}

/// Why a replica could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("proxy: {0}")]
    Proxy(#[from] ProxyError),
    #[error("admin listener {addr}: {source}")]
    Admin {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the control plane's thread: {0}")]
    Control(#[source] std::io::Error),
}

impl Node {
    /// Binds the listeners and starts everything, the control plane on a new
    /// [`ControlRuntime`] (the client's connections stay on the runtime that made it).
    pub async fn start(client: Client, config: NodeConfig) -> Result<Node, NodeError> {
        let control = ControlRuntime::new().map_err(NodeError::Control)?;
        Node::start_on(control, client, config).await
    }

    /// [`Node::start`] with the control plane on `control`. Make `client` there too (in a
    /// task of [`ControlRuntime::spawn`]), so its connections run on the control thread.
    pub async fn start_on(
        control: ControlRuntime,
        client: Client,
        mut config: NodeConfig,
    ) -> Result<Node, NodeError> {
        let table = TableStore::new();
        let mut registry = Registry::with_prefix("turnpike");
        let metrics = Arc::new(Metrics::new(&mut registry));
        let controller_metrics = ControllerMetrics::new(&mut registry);
        // Clones share the registered metrics.
        let side_metrics = Arc::new(controller_metrics.clone());
        let registry = Arc::new(registry);

        // The pod index exists before the proxy binds; the controller fills it.
        let pods = Arc::new(controller::PodIndex::default());
        config.proxy.namespace_lookup = Some(pods.clone());
        let proxy = Proxy::bind(config.proxy, table.clone(), metrics).await?;
        let public = proxy.local_addr(Listener::Public, true);
        let private = proxy.local_addr(Listener::Private, true);
        let listeners = proxy.listeners();
        if config.invoke_base_from_public {
            // A wildcard bind is reached on loopback.
            let base = |addr: SocketAddr| {
                let ip = if addr.ip().is_unspecified() {
                    std::net::IpAddr::from([127, 0, 0, 1])
                } else {
                    addr.ip()
                };
                format!("https://{}", SocketAddr::new(ip, addr.port()))
            };
            config.controller.compile.invoke_base = public.map(base);
            config.controller.compile.private_invoke_base = private.map(base);
        }
        let usage = proxy.shared().usage.clone();
        let admin = turnpike_proxy::admin::Admin::bind(config.admin_addr)
            .await
            .map_err(|source| NodeError::Admin {
                addr: config.admin_addr,
                source,
            })?
            .with_usage(proxy.shared().usage.clone())
            .with_cache(proxy.shared().cache.clone())
            .with_test_invoke(proxy.shared())
            .with_token_file(config.admin_token_file.clone());
        let admin_addr = admin.local_addr().map_err(|source| NodeError::Admin {
            addr: config.admin_addr,
            source,
        })?;

        // Everything the controller spawns runs on the control thread. (Nothing below awaits
        // while the guard is held.)
        let entered = control.enter();
        let hosts = config.controller.compile.hosts.clone();
        let lease_namespace = config.controller.lease.namespace.clone();
        let identity = config.controller.lease.identity.clone();
        let controller = controller::start_with_pods(
            client.clone(),
            table.clone(),
            config.controller,
            controller_metrics,
            pods,
        );
        let admin = admin.with_exports(Arc::new(crate::exports::StageExports::new(
            controller.stores.clone(),
            hosts.region,
            hosts.base_domain,
        )));
        let (stop, stop_rx) = watch::channel(false);
        let cache_task = tokio::spawn(controller::cache_status::run(
            client.clone(),
            table.clone(),
            proxy.shared().cache.clone(),
            controller.leadership(),
            config.usage_status_every,
            side_metrics.clone(),
        ));
        let usage_task = tokio::spawn(controller::usage::run(
            client.clone(),
            table.clone(),
            usage.clone(),
            controller.leadership(),
            config.usage_status_every,
            side_metrics.clone(),
        ));
        let replica_task = config.count_replicas.then(|| {
            tokio::spawn(controller::replicas::run(
                client,
                controller::replicas::ReplicaLeases::new(lease_namespace, identity),
                usage,
                side_metrics,
                stop_rx.clone(),
            ))
        });
        drop(entered);
        let proxy_task = {
            let mut rx = stop_rx.clone();
            tokio::spawn(proxy.run(async move {
                let _ = rx.wait_for(|s| *s).await;
            }))
        };
        let admin_task = {
            let mut rx = stop_rx;
            let table = table.clone();
            tokio::spawn(admin.run(table, registry, async move {
                let _ = rx.wait_for(|s| *s).await;
            }))
        };
        Ok(Node {
            public,
            private,
            admin: admin_addr,
            listeners,
            table,
            controller,
            stop,
            proxy: proxy_task,
            admin_task,
            usage_task,
            cache_task,
            replica_task,
            control,
        })
    }

    /// Stops gracefully: releases the Lease, then drains the proxy.
    pub async fn shutdown(self) {
        self.controller.shutdown().await;
        self.usage_task.abort();
        self.cache_task.abort();
        let _ = self.stop.send(true);
        let _ = self.proxy.await;
        let _ = self.admin_task.await;
        if let Some(t) = self.replica_task {
            // It deletes the replica Lease (bounded: the API server may be gone).
            let abort = t.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), t).await.is_err() {
                abort.abort();
            }
        }
        // Whatever the controller still runs (its watches) stops with the thread.
        drop(self.control);
    }

    /// Stops at once, keeping the Lease, as a crash would.
    pub fn crash(self) {
        self.controller.abort();
        self.proxy.abort();
        self.admin_task.abort();
        self.usage_task.abort();
        self.cache_task.abort();
        if let Some(t) = &self.replica_task {
            t.abort();
        }
        drop(self.control);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_name() -> Option<String> {
        std::thread::current().name().map(str::to_string)
    }

    /// What the control runtime runs, and what that spawns, or what is spawned while it is
    /// entered, runs on its own thread; dropping it inside another runtime stops its tasks
    /// without blocking that runtime.
    #[tokio::test]
    async fn the_control_plane_runs_on_its_own_thread() {
        let control = ControlRuntime::new().unwrap();
        let (name, nested) = control
            .spawn(async { (thread_name(), tokio::spawn(async { thread_name() }).await) })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("turnpike-control"));
        assert_eq!(nested.unwrap().as_deref(), Some("turnpike-control"));
        let entered = {
            let _entered = control.enter();
            tokio::spawn(async { thread_name() })
        };
        assert_eq!(entered.await.unwrap().as_deref(), Some("turnpike-control"));
        assert_ne!(thread_name().as_deref(), Some("turnpike-control"));

        let forever = control.spawn(std::future::pending::<()>());
        drop(control);
        let stopped = tokio::time::timeout(Duration::from_secs(5), forever).await;
        assert!(stopped.expect("stopped at once").unwrap_err().is_cancelled());
    }
}
