//! Caller IP → namespace, for the resource policies of PRIVATE APIs (`sourceNamespaces`).
//!
//! A light Pod watch: the watcher's `modify` hook strips every pod down to its name,
//! namespace and pod IPs before anything else sees it, so memory stays proportional to the
//! number of pods, not to their specs. The index is updated in place per event; an IP reused
//! by a new pod while the old one is still terminating belongs to whichever pod claimed it last,
//! and is only forgotten when *that* pod goes.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, RwLock},
};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::{
    Api, Client, ResourceExt as _,
    runtime::{WatchStreamExt as _, watcher},
};
use tokio::sync::watch;
use tracing::warn;

use turnpike_proxy::NamespaceLookup;

type PodKey = (String, String);

#[derive(Debug, Default)]
struct Inner {
    by_ip: HashMap<IpAddr, (PodKey, String)>,
    by_pod: HashMap<PodKey, Vec<IpAddr>>,
}

/// The index. Cheap to read from the proxy's request path (a read lock and a hash lookup).
#[derive(Debug)]
pub struct PodIndex {
    inner: RwLock<Inner>,
    synced: watch::Sender<bool>,
}

impl Default for PodIndex {
    fn default() -> Self {
        PodIndex {
            inner: RwLock::default(),
            synced: watch::Sender::new(false),
        }
    }
}

impl PodIndex {
    /// Records a pod's IPs (replacing what it had).
    pub fn apply(&self, namespace: &str, name: &str, ips: &[IpAddr]) {
        let key = (namespace.to_string(), name.to_string());
        let Ok(mut inner) = self.inner.write() else { return };
        Self::forget_locked(&mut inner, &key);
        for ip in ips {
            inner.by_ip.insert(*ip, (key.clone(), namespace.to_string()));
        }
        if !ips.is_empty() {
            inner.by_pod.insert(key, ips.to_vec());
        }
    }

    /// Forgets a pod.
    pub fn delete(&self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        if let Ok(mut inner) = self.inner.write() {
            Self::forget_locked(&mut inner, &key);
        }
    }

    fn forget_locked(inner: &mut Inner, key: &PodKey) {
        for ip in inner.by_pod.remove(key).unwrap_or_default() {
            if inner.by_ip.get(&ip).is_some_and(|(owner, _)| owner == key) {
                inner.by_ip.remove(&ip);
            }
        }
    }

    /// Replaces everything in one watched scope (`None`: every namespace) after its relist.
    fn reset(&self, scope: Option<&str>, pods: Vec<(String, String, Vec<IpAddr>)>) {
        if let Ok(inner) = self.inner.read() {
            let gone: Vec<PodKey> = inner
                .by_pod
                .keys()
                .filter(|(ns, _)| scope.is_none_or(|s| s == ns))
                .cloned()
                .collect();
            drop(inner);
            for (ns, name) in gone {
                self.delete(&ns, &name);
            }
        }
        for (ns, name, ips) in pods {
            self.apply(&ns, &name, &ips);
        }
    }

    /// The number of IPs known.
    pub fn len(&self) -> usize {
        self.inner.read().map(|i| i.by_ip.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves once the first list of pods is in.
    pub async fn synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }
}

impl NamespaceLookup for PodIndex {
    fn namespace_of(&self, ip: IpAddr) -> Option<String> {
        self.inner.read().ok()?.by_ip.get(&ip).map(|(_, ns)| ns.clone())
    }
}

/// The pod's IPs (`status.podIPs`, else `status.podIP`).
fn pod_ips(status: Option<&PodStatus>) -> Vec<IpAddr> {
    let Some(status) = status else { return Vec::new() };
    let mut ips: Vec<IpAddr> = status
        .pod_ips
        .iter()
        .flatten()
        .filter_map(|p| p.ip.parse().ok())
        .collect();
    if ips.is_empty() {
        ips.extend(status.pod_ip.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok()));
    }
    ips
}

/// Keeps only what the index needs.
fn strip(pod: &mut Pod) {
    let status = pod.status.take();
    pod.spec = None;
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
    pod.metadata.labels = None;
    pod.metadata.owner_references = None;
    pod.status = status.map(|s| PodStatus {
        pod_ip: s.pod_ip,
        pod_ips: s.pod_ips,
        ..Default::default()
    });
}

/// Watches pods into `index` until the task is aborted: in every namespace when
/// `namespaces` is empty, else in each of them (one watch each, merged into one stream). The
/// index is synced once every watch has listed.
pub async fn run(client: Client, namespaces: Vec<String>, index: Arc<PodIndex>) {
    let scopes = crate::scopes(&namespaces);
    let streams = scopes.iter().enumerate().map(|(i, scope)| {
        let api: Api<Pod> = match scope {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(strip)
            .map(move |e| (i, e))
            .boxed()
    });
    let mut events = futures::stream::select_all(streams);
    let mut relists: Vec<Vec<(String, String, Vec<IpAddr>)>> = vec![Vec::new(); scopes.len()];
    let mut listed = vec![false; scopes.len()];
    while let Some((i, event)) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(p)) => {
                index.apply(
                    &p.namespace().unwrap_or_default(),
                    &p.name_any(),
                    &pod_ips(p.status.as_ref()),
                );
            }
            Ok(watcher::Event::Delete(p)) => index.delete(&p.namespace().unwrap_or_default(), &p.name_any()),
            Ok(watcher::Event::Init) => relists[i].clear(),
            Ok(watcher::Event::InitApply(p)) => {
                relists[i].push((
                    p.namespace().unwrap_or_default(),
                    p.name_any(),
                    pod_ips(p.status.as_ref()),
                ));
            }
            Ok(watcher::Event::InitDone) => {
                index.reset(scopes[i].as_deref(), std::mem::take(&mut relists[i]));
                listed[i] = true;
                if listed.iter().all(|l| *l) {
                    index.synced.send_replace(true);
                }
            }
            Err(e) => warn!(error = %e, "pod watch"),
        }
    }
}
