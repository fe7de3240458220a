//! Watches for exactly the Secrets that ApiKeys refer to: one watch per Secret
//! (`fieldSelector=metadata.name={name}` in the ApiKey's namespace), each feeding its own
//! reflector store. The set follows the ApiKeys: [`SecretWatches::reconcile`] opens watches
//! for new references and closes those no longer referred to. A Secret that does not exist is
//! simply an empty store (compile then says `SecretNotFound`), and its watch delivers it the
//! moment it is created.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    runtime::{
        WatchStreamExt as _,
        reflector::{self, Store},
        watcher,
    },
};
use tokio::{sync::Notify, task::JoinHandle};
use tracing::debug;

use turnpike_core::model::ObjectKey;

struct Watch {
    store: Store<Secret>,
    task: JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The per-name Secret watches.
pub struct SecretWatches {
    client: Client,
    changes: Arc<Notify>,
    watches: BTreeMap<ObjectKey, Watch>,
}

impl SecretWatches {
    /// No watches yet; every event of the future ones pokes `changes`.
    pub fn new(client: Client, changes: Arc<Notify>) -> Self {
        SecretWatches {
            client,
            changes,
            watches: BTreeMap::new(),
        }
    }

    /// Opens and closes watches so that exactly `wanted` are watched. Returns the keys of the
    /// watches it opened.
    pub fn reconcile(&mut self, wanted: &BTreeSet<ObjectKey>) -> Vec<ObjectKey> {
        self.watches.retain(|k, _| wanted.contains(k));
        let mut opened = Vec::new();
        for key in wanted {
            if self.watches.contains_key(key) {
                continue;
            }
            let (store, writer) = reflector::store();
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &key.namespace);
            let config = watcher::Config::default().fields(&format!("metadata.name={}", key.name));
            let changes = self.changes.clone();
            let stream = watcher(api, config)
                .default_backoff()
                .modify(|s: &mut Secret| s.metadata.managed_fields = None)
                .reflect(writer);
            let name = key.clone();
            let task = tokio::spawn(async move {
                let mut stream = stream.boxed();
                while let Some(event) = stream.next().await {
                    if let Err(e) = event {
                        debug!(secret = %name.name, error = %e, "secret watch");
                    }
                    changes.notify_one();
                }
            });
            debug!(namespace = %key.namespace, secret = %key.name, "watching secret");
            self.watches.insert(key.clone(), Watch { store, task });
            opened.push(key.clone());
        }
        opened
    }

    /// Waits, at most `limit`, until the watches in `keys` have listed once.
    pub async fn wait_ready(&self, keys: &[ObjectKey], limit: Duration) {
        let waits = keys
            .iter()
            .filter_map(|k| self.watches.get(k))
            .map(|w| w.store.wait_until_ready());
        let _ = tokio::time::timeout(limit, futures::future::join_all(waits)).await;
    }

    /// The watched Secrets that exist.
    pub fn secrets(&self) -> Vec<Secret> {
        self.watches
            .values()
            .flat_map(|w| w.store.state())
            .map(|s| (*s).clone())
            .collect()
    }

    /// Whether a watched Secret has listed and does not exist (a generated one to create).
    pub fn known_missing(&self, key: &ObjectKey) -> bool {
        self.watches.get(key).is_some_and(|w| {
            w.store.is_empty() && futures::FutureExt::now_or_never(w.store.wait_until_ready()).is_some()
        })
    }
}
