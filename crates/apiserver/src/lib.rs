//! `turnpike local`: an embedded, single-machine Kubernetes-compatible API server.
//!
//! It serves the part of the Kubernetes API that kubectl, client libraries, Helm and
//! Turnpike's own controller use: discovery (legacy and aggregated), OpenAPI v2/v3, CRUD,
//! list and watch for a set of built-in kinds and for any CustomResourceDefinition, the
//! status subresource, Table output, JSON/merge/strategic-merge patches, server-side apply,
//! finalizers, garbage collection and namespace deletion, all persisted in SQLite. It is not a
//! cluster: there is no scheduler, no kubelet and no built-in controllers, so pods are stored
//! and never run, and Deployments never get replicas.
//!
//! ```text
//! request ─► server (TLS, bearer token, router) ─► discovery | openapi | handlers (one per verb)
//!        handlers ─► objects::prepare (metadata, status semantics, schema, managed fields)
//!                 ─► store (SQLite + in-memory index + event window) ─► watch fan-out, gc
//! ```
//!
//! What it is not: no scheduler, kubelet, or controllers (no Deployment → ReplicaSet → Pod,
//! no Service endpoints or cluster IPs, no `scale`, `exec`, `logs`, `port-forward` or
//! `proxy`); no authorization (the one bearer token is cluster-admin), but access reviews
//! (`kubectl auth can-i`, with `--as`) are answered from the stored RBAC objects ([`rbac`]); no validation or defaulting of
//! built-in kinds beyond metadata (custom resources get full structural-schema handling); no
//! version conversion between CRD versions; protobuf request bodies only for Secret,
//! ConfigMap, Namespace, ServiceAccount and DeleteOptions (what Helm's release storage and
//! `kubectl create namespace|secret|configmap|serviceaccount` send).
//!
//! This crate uses nothing from the rest of Turnpike (`tests/architecture.rs` holds it): the
//! controller reaches it through the kubeconfig it writes, exactly as it reaches a real
//! cluster. Any kube-rs project can use it in its tests as an envtest without etcd:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use turnpike_apiserver::{ApiServer, ApiServerConfig};
//! let dir = std::env::temp_dir().join("my-envtest");
//! let server = ApiServer::start(ApiServerConfig::new(&dir).with_addr("127.0.0.1:0".parse()?)).await?;
//! let client: kube::Client = server.client().await?; // then apply CRDs, run a controller…
//! # drop(client); Ok(()) }
//! ```
//!
//! May depend on: hyper, rustls, SQLite (`rusqlite`), `k8s-openapi` and `kube` (for the client it
//! hands out). Start reading at `server.rs`, then `handlers.rs` and `store.rs`.

mod cel;
mod crds;
mod discovery;
pub mod errors;
#[doc(hidden)]
pub mod fuzzing;
mod gc;
mod handlers;
mod kubeconfig;
pub mod manifests;
mod objects;
mod openapi;
mod patch;
mod proto;
pub mod rbac;
mod registry;
mod schema;
mod selectors;
mod server;
mod ssa;
// The store's lock is never held across an await (clippy.toml arrived from main later).
#[allow(clippy::disallowed_types)]
mod store;
mod table;
mod tls;
mod watch;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use rand::Rng as _;
use serde_json::json;
use tokio::task::JoinHandle;

pub use store::StoreError;
pub use tls::TlsError;

/// The Kubernetes version the server reports (`/version`, OpenAPI `info.version`).
pub const GIT_VERSION: &str = "v1.33.0";

/// Namespaces that exist from the first start.
const INITIAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    /// Where the database, certificates, token and kubeconfig live.
    pub data_dir: PathBuf,
    /// The listen address; port 0 picks a free port (the kubeconfig gets the real one).
    pub addr: SocketAddr,
}

/// Failure starting the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// File system.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Certificates.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Storage.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Building a client from the kubeconfig.
    #[error("kube client: {0}")]
    Kube(String),
}

/// The embedded API server.
pub struct ApiServer;

/// A running server. Dropping it stops accepting connections.
pub struct ApiServerHandle {
    /// The bound address.
    pub addr: SocketAddr,
    /// The kubeconfig written for this server.
    pub kubeconfig: PathBuf,
    /// The data directory.
    pub data_dir: PathBuf,
    tasks: Vec<JoinHandle<()>>,
}

// === impl ApiServerConfig ===

impl ApiServerConfig {
    /// A config with the defaults of `turnpike local` (127.0.0.1:6443).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 6443)),
        }
    }

    /// Sets the listen address.
    pub fn with_addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

fn load_or_create_token(dir: &Path) -> Result<String, Error> {
    let path = dir.join("token");
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&path)(e)),
    }
    let bytes: [u8; 32] = rand::rng().random();
    let token = hex::encode(bytes);
    tls::write_private(&path, &token)?;
    Ok(token)
}

fn bootstrap(st: &server::State) {
    let gr = registry::GroupResource {
        group: String::new(),
        resource: "namespaces".into(),
    };
    let reg = st.registry();
    let Some(rt) = reg.get("", "v1", "namespaces") else {
        return;
    };
    for ns in INITIAL_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        let opts = objects::WriteOptions {
            field_manager: "turnpike-apiserver".into(),
            ..Default::default()
        };
        let res = st.store.write(&gr, "", ns, false, |old| match old {
            Some(o) => Ok(store::Write::Unchanged(o.clone())),
            None => objects::prepare(
                &rt,
                "",
                ns,
                None,
                obj,
                objects::Endpoint::Main,
                &opts,
                &mut Vec::new(),
            ),
        });
        if let Err(e) = res {
            tracing::warn!(namespace = ns, error = %e, "could not create initial namespace");
        }
    }
}

// === impl ApiServer ===

impl ApiServer {
    /// Opens the data directory, binds, writes the kubeconfig and starts serving.
    pub async fn start(config: ApiServerConfig) -> Result<ApiServerHandle, Error> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let tls = tls::load_or_create(&dir, config.addr.ip())?;
        let token = load_or_create_token(&dir)?;
        let store = store::Store::open(&dir.join("state.db"))?;
        let st = Arc::new(server::State::new(store, token.clone()));
        bootstrap(&st);
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| Error::Io {
                path: config.addr.to_string(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Io {
            path: config.addr.to_string(),
            source,
        })?;
        let kubeconfig = dir.join("kubeconfig");
        kubeconfig::write(&kubeconfig, &kubeconfig::render(addr, &tls.ca_pem, &token))?;
        let serve = tokio::spawn(server::serve(listener, tls.config.clone(), st.clone()));
        let gc = tokio::spawn(gc::run(st.clone()));
        tracing::info!(%addr, kubeconfig = %kubeconfig.display(), "embedded API server listening");
        Ok(ApiServerHandle {
            addr,
            kubeconfig,
            data_dir: dir,
            tasks: vec![serve, gc],
        })
    }
}

// === impl ApiServerHandle ===

impl ApiServerHandle {
    /// A kube client configured from the written kubeconfig.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        kube::Client::try_from(self.config().await?).map_err(|e| Error::Kube(e.to_string()))
    }

    /// The client configuration of the kubeconfig it wrote.
    pub async fn config(&self) -> Result<kube::Config, Error> {
        let kc =
            kube::config::Kubeconfig::read_from(&self.kubeconfig).map_err(|e| Error::Kube(e.to_string()))?;
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| Error::Kube(e.to_string()))
    }

    /// Stops accepting connections and stops the garbage collector.
    pub fn shutdown(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }

    /// Waits until the server task ends (it does not, unless aborted).
    pub async fn wait(mut self) {
        if let Some(t) = self.tasks.first_mut() {
            let _ = t.await;
        }
    }
}

impl Drop for ApiServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
