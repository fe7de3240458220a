//! Reflectors → world → compile → publish: the rebuild loop.
//!
//! One reflector per kind and watched scope (every namespace, or each namespace of
//! [`Config::namespaces`]) keeps a read cache ([`Stores`]); every watch event pokes one
//! `Notify`. The loop waits for every reflector (and the pod index) to list once, then
//! rebuilds after each burst of changes has settled ([`debounce::settle`]): it clones the
//! stores into [`Objects`], lets the leader record missing snapshots, builds the world with
//! [`ingest::world`], compiles it whole and publishes the table with one
//! [`TableStore::publish`]. The statuses go to the [`status::Writer`] as an [`Outcome`].
//! A change of leadership rebuilds at once, so a new leader records snapshots without
//! waiting for the next change.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt::Debug,
    hash::{Hash as _, Hasher as _},
    sync::Arc,
    time::Duration,
};

use futures::StreamExt as _;
use k8s_openapi::{
    NamespaceResourceScope,
    api::{
        core::v1::{ConfigMap, Service},
        discovery::v1::EndpointSlice,
    },
};
use kube::{
    Api, Client, Resource, ResourceExt as _,
    runtime::{
        WatchStreamExt as _,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
    time::Instant,
};
use tracing::{debug, info, instrument, warn};

use crate::ingest::{DEPLOYMENT_LABEL, Objects};
use crate::openapi::{ImportCache, OPENAPI_CONFIG_MAP_LABEL};
use crate::{
    Config,
    cache::ConversionCache,
    debounce,
    keys::KeyStore,
    metrics::ControllerMetrics,
    pods::PodIndex,
    secrets::SecretCache,
    snapshots,
    status::{Changed, ChangedSince, Current, CurrentStatus, GeneratedSecret, Outcome},
};
use turnpike_api::{Deployment, RestApi, Stage, UsagePlan};
use turnpike_core::compile::{CompileCache, Kind, Obj, compile_with};
use turnpike_core::model::{ApiKeyDef, KeyValueSource, ObjectKey};
use turnpike_proxy::store::TableStore;

/// One kind's reflector stores, one per watched scope.
pub struct Scoped<K: Resource<DynamicType = ()> + 'static> {
    stores: Vec<Store<K>>,
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for Scoped<K> {
    fn clone(&self) -> Self {
        Scoped {
            stores: self.stores.clone(),
        }
    }
}

// === impl Scoped ===

impl<K: Resource<DynamicType = ()> + Clone + 'static> Scoped<K> {
    /// Every object of every scope.
    pub fn state(&self) -> Vec<Arc<K>> {
        self.stores.iter().flat_map(|s| s.state()).collect()
    }

    /// One object.
    pub fn get(&self, key: &ObjectRef<K>) -> Option<Arc<K>> {
        self.stores.iter().find_map(|s| s.get(key))
    }

    /// Waits until every scope has listed once.
    pub async fn wait_until_ready(&self) {
        futures::future::join_all(self.stores.iter().map(|s| s.wait_until_ready())).await;
    }
}

/// How long the first publication waits for the Secrets ApiKeys refer to.
const FIRST_SECRET_SYNC: Duration = Duration::from_secs(30);
/// How long later rebuilds wait for a newly referenced Secret's first list.
const SECRET_SYNC: Duration = Duration::from_secs(2);

/// The reflector stores: the controller's read cache of the cluster.
#[derive(Clone)]
pub struct Stores {
    pub rest_apis: Scoped<RestApi>,
    pub deployments: Scoped<Deployment>,
    pub stages: Scoped<Stage>,
    pub usage_plans: Scoped<UsagePlan>,
    /// Not a reflector: each key converted as it arrives ([`KeyStore`]).
    pub api_keys: KeyStore,
    /// Only snapshot ConfigMaps (label `turnpike.dev/deployment`).
    pub config_maps: Scoped<ConfigMap>,
    /// Only ConfigMaps holding OpenAPI documents (label `turnpike.dev/openapi`).
    pub openapi_config_maps: Scoped<ConfigMap>,
    pub services: Scoped<Service>,
    pub endpoint_slices: Scoped<EndpointSlice>,
    /// The objects of the kinds with a status that changed since the status writer looked.
    changed: Arc<Changed>,
}

impl Stores {
    /// Waits until every store has listed once.
    pub async fn wait_until_ready(&self) {
        let _ = futures::join!(
            self.rest_apis.wait_until_ready(),
            self.deployments.wait_until_ready(),
            self.stages.wait_until_ready(),
            self.usage_plans.wait_until_ready(),
            self.api_keys.wait_until_ready(),
            self.config_maps.wait_until_ready(),
            self.openapi_config_maps.wait_until_ready(),
            self.services.wait_until_ready(),
            self.endpoint_slices.wait_until_ready(),
        );
    }
}

fn clone_all<K: Clone + Resource<DynamicType = ()> + 'static>(store: &Scoped<K>) -> Vec<K> {
    store.state().iter().map(|o| (**o).clone()).collect()
}

fn current_of<K>(store: &Scoped<K>, key: &ObjectKey, status: impl Fn(&K) -> Value) -> Option<Current>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let obj = store.get(&ObjectRef::new(&key.name).within(&key.namespace))?;
    Some(Current::of(
        obj.meta().uid.clone().unwrap_or_default(),
        status(&obj),
    ))
}

fn to_value<T: Serialize>(status: Option<&T>) -> Value {
    status
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

impl CurrentStatus for Stores {
    fn current(&self, kind: Kind, key: &ObjectKey) -> Option<Current> {
        match kind {
            Kind::RestApi => current_of(&self.rest_apis, key, |o| to_value(o.status.as_ref())),
            Kind::Deployment => current_of(&self.deployments, key, |o| to_value(o.status.as_ref())),
            Kind::Stage => current_of(&self.stages, key, |o| to_value(o.status.as_ref())),
            Kind::UsagePlan => current_of(&self.usage_plans, key, |o| to_value(o.status.as_ref())),
            Kind::ApiKey => self.api_keys.get(key).map(|k| k.current()),
        }
    }

    fn take_changed(&self) -> ChangedSince {
        self.changed.take()
    }
}

/// Starts a reflector for `K` per scope (`namespaces` empty: one for every namespace); every
/// event pokes `changes`.
///
/// `spec_only` is given for the kinds compile writes a status for: each event marks its
/// object there (a relist, every object) for the status writer, and an update that leaves `metadata.generation` as it was (a status write,
/// most often our own) updates the store but does not poke: compile reads no status, so the
/// echo of every status write would only cost a rebuild. What compile reads beside the spec
/// moves no generation, so it pokes when it changes: the labels (an ApiKey's, which
/// `apiKeySelector`s match) and a Stage's `turnpike.dev/flush-cache` annotation.
fn reflect<K>(
    client: &Client,
    namespaces: &[String],
    config: watcher::Config,
    changes: &Arc<Notify>,
    spec_only: Option<&Arc<Changed>>,
    trim: fn(&mut K),
    tasks: &mut Vec<JoinHandle<()>>,
) -> Scoped<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let mut stores = Vec::new();
    for namespace in crate::scopes(namespaces) {
        let api: Api<K> = match &namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let (store, writer) = reflector::store();
        let stream = watcher(api, config.clone())
            .default_backoff()
            .modify(trim)
            .reflect(writer);
        let changes = changes.clone();
        let status = spec_only.cloned();
        let spec_only = status.is_some();
        let kind = K::kind(&()).to_string();
        let task = tokio::spawn(async move {
            let mut stream = stream.boxed();
            let mut generations: HashMap<String, (i64, u64)> = HashMap::new();
            let seen = |obj: &K| {
                let meta = obj.meta();
                let flush = meta
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(crate::ingest::FLUSH_CACHE_ANNOTATION));
                let mut h = std::hash::DefaultHasher::new();
                (flush, &meta.labels).hash(&mut h);
                (meta.generation.unwrap_or(0), h.finish())
            };
            while let Some(event) = stream.next().await {
                if let (Some(status), Ok(event)) = (&status, &event) {
                    match event {
                        watcher::Event::Apply(obj) | watcher::Event::Delete(obj) => {
                            let key = ObjectKey::new(obj.namespace().unwrap_or_default(), obj.name_any());
                            status.mark(key);
                        }
                        watcher::Event::Init | watcher::Event::InitApply(_) => {}
                        watcher::Event::InitDone => status.mark_everything(),
                    }
                }
                match event {
                    Err(e) => {
                        warn!(%kind, error = %e, "watch failed; retrying with backoff");
                        continue;
                    }
                    Ok(watcher::Event::Apply(obj)) if spec_only => {
                        let uid = obj.meta().uid.clone().unwrap_or_default();
                        let now = seen(&obj);
                        if generations.get(&uid) == Some(&now) {
                            continue;
                        }
                        generations.insert(uid, now);
                    }
                    Ok(watcher::Event::InitApply(obj)) if spec_only => {
                        let uid = obj.meta().uid.clone().unwrap_or_default();
                        generations.insert(uid, seen(&obj));
                    }
                    Ok(watcher::Event::Delete(obj)) if spec_only => {
                        generations.remove(obj.meta().uid.as_deref().unwrap_or_default());
                    }
                    Ok(_) => {}
                }
                changes.notify_one();
            }
        });
        tasks.push(task);
        stores.push(store);
    }
    Scoped { stores }
}

/// What the read cache keeps of an object: its metadata without what the controller never
/// reads ([`crate::trim_metadata`]).
fn trimmed<K: Resource>(o: &mut K) {
    crate::trim_metadata(o.meta_mut());
}

/// The watches and the rebuild loop.
pub struct Index {
    stores: Stores,
    secrets: SecretCache,
    changes: Arc<Notify>,
    /// Snapshots this leader recorded that the ConfigMap watch has not delivered yet.
    pending_snapshots: BTreeMap<ObjectKey, ConfigMap>,
    conversions: ConversionCache,
    /// The API keys' outcomes of the last compile, for the next.
    compiled: CompileCache,
    imports: ImportCache,
}

impl Index {
    /// Starts every reflector. The returned tasks run until aborted.
    pub fn start(client: Client, config: &Config) -> (Index, Vec<JoinHandle<()>>) {
        let changes = Arc::new(Notify::new());
        let changed = Arc::new(Changed::default());
        let status = Some(&changed);
        let ns = &config.namespaces;
        let all = watcher::Config::default;
        let mut tasks = Vec::new();
        let t = &mut tasks;
        let rest_apis = reflect(&client, ns, all(), &changes, status, trimmed, t);
        let deployments = reflect(&client, ns, all(), &changes, status, trimmed, t);
        let stages = reflect(&client, ns, all(), &changes, status, trimmed, t);
        let usage_plans = reflect(&client, ns, all(), &changes, status, trimmed, t);
        let api_keys = KeyStore::start(&client, ns, &changes, &changed, t);
        let snapshots = all().labels(DEPLOYMENT_LABEL);
        let config_maps = reflect(&client, ns, snapshots, &changes, None, trimmed, t);
        let openapi = all().labels(OPENAPI_CONFIG_MAP_LABEL);
        let openapi_config_maps = reflect(&client, ns, openapi, &changes, None, trimmed, t);
        let services = reflect(&client, ns, all(), &changes, None, trimmed, t);
        let endpoint_slices = reflect(&client, ns, all(), &changes, None, trimmed, t);
        let stores = Stores {
            rest_apis,
            deployments,
            stages,
            usage_plans,
            api_keys,
            config_maps,
            openapi_config_maps,
            services,
            endpoint_slices,
            changed,
        };
        let index = Index {
            stores,
            secrets: SecretCache::new(client, &config.namespaces, changes.clone()),
            changes,
            pending_snapshots: BTreeMap::new(),
            conversions: ConversionCache::default(),
            compiled: CompileCache::default(),
            imports: ImportCache::default(),
        };
        (index, tasks)
    }

    /// The stores, for the status writer.
    pub fn stores(&self) -> Stores {
        self.stores.clone()
    }

    /// Rebuilds and publishes until the channels close.
    pub async fn run(
        mut self,
        table: TableStore,
        config: Config,
        pods: Arc<PodIndex>,
        mut leader: watch::Receiver<bool>,
        outcomes: watch::Sender<Arc<Outcome>>,
        metrics: Arc<ControllerMetrics>,
    ) {
        let started = Instant::now();
        self.stores.wait_until_ready().await;
        pods.synced().await;
        info!(took = ?started.elapsed(), "every watch has synced");
        let mut version = 0u64;
        let mut first = true;
        let mut last_rebuild: Option<Instant> = None;
        // Without an elector (it ended), leadership cannot change: keep rebuilding anyway.
        let mut elector_alive = true;
        loop {
            if !first {
                tokio::select! {
                    _ = debounce::settle(&self.changes, config.holdoff, config.holdoff_max, last_rebuild) => {}
                    r = leader.changed(), if elector_alive => if r.is_err() {
                        elector_alive = false;
                        continue;
                    },
                }
            }
            version += 1;
            let leading = *leader.borrow_and_update();
            let t = Instant::now();
            last_rebuild = Some(t);
            let outcome = self
                .rebuild(&table, &config, version, leading, first, &metrics)
                .await;
            metrics.rebuilt(t.elapsed());
            if first {
                info!(version, took = ?started.elapsed(), "first routing table published");
            }
            first = false;
            outcomes.send_replace(Arc::new(outcome));
        }
    }

    /// One rebuild: objects → world → compile → publish.
    #[instrument(skip(self, table, config, metrics))]
    async fn rebuild(
        &mut self,
        table: &TableStore,
        config: &Config,
        version: u64,
        leading: bool,
        first: bool,
        metrics: &ControllerMetrics,
    ) -> Outcome {
        let api_keys = self.stores.api_keys.state();
        let converted: Vec<_> = api_keys.iter().map(|k| k.obj.clone()).collect();
        let (wanted, generated_names) = referenced_secrets(&converted);
        let limit = if first { FIRST_SECRET_SYNC } else { SECRET_SYNC };
        self.secrets.sync(wanted, limit).await;
        metrics.set_cached_secrets(self.secrets.cached_len());
        let t = Instant::now();
        let mut objects = Objects {
            rest_apis: clone_all(&self.stores.rest_apis),
            deployments: clone_all(&self.stores.deployments),
            stages: clone_all(&self.stores.stages),
            usage_plans: clone_all(&self.stores.usage_plans),
            // Converted already: `converted`.
            api_keys: Vec::new(),
            config_maps: clone_all(&self.stores.config_maps),
            services: clone_all(&self.stores.services),
            endpoint_slices: clone_all(&self.stores.endpoint_slices),
            secrets: self.secrets.secrets(),
            unlabelled_secrets: self.secrets.unlabelled(),
            openapi_config_maps: clone_all(&self.stores.openapi_config_maps),
            open_api: BTreeMap::new(),
        };
        objects.expand_open_api(&mut self.imports);
        let recorded = if leading {
            snapshots::record(&mut objects, &mut self.pending_snapshots)
        } else {
            self.pending_snapshots.clear();
            snapshots::Recorded::default()
        };
        let mut snapshot_names = snapshots::names(&objects);
        // A lost snapshot stays named in status, so it is never mistaken for a first record.
        snapshot_names.extend(recorded.lost.iter().cloned());
        let mut world = self.conversions.world_with_keys(&mut objects, converted);
        snapshots::mark_lost(&mut world, &recorded.lost);
        let compiled = compile_with(&world, &config.compile, version, &mut self.compiled);
        table.publish(compiled.table);
        debug!(version, took = ?t.elapsed(), statuses = compiled.statuses.len(), "routing table published");
        let generated = if leading {
            api_keys
                .iter()
                .filter_map(|k| {
                    let key = k.key();
                    let secret = generated_names.get(key)?.clone();
                    self.secrets
                        .known_missing(&key.sibling(&secret))
                        .then(|| GeneratedSecret {
                            api_key: key.clone(),
                            uid: k.obj.meta.uid.to_string(),
                            secret,
                        })
                })
                .collect()
        } else {
            Vec::new()
        };
        Outcome {
            leader: leading,
            version,
            statuses: compiled.statuses,
            snapshots: recorded.new,
            snapshot_names,
            generated,
        }
    }
}

/// The Secrets ApiKeys (converted) refer to, and ApiKey → Secret name for the generated ones.
fn referenced_secrets(
    api_keys: &[Arc<Obj<ApiKeyDef>>],
) -> (BTreeSet<ObjectKey>, BTreeMap<ObjectKey, String>) {
    let mut wanted = BTreeSet::new();
    let mut generated = BTreeMap::new();
    for k in api_keys {
        let key = &k.meta.key;
        let Ok(def) = &k.def else {
            continue;
        };
        let (secret, _) = def.secret(key);
        if let KeyValueSource::Generated { secret } = &def.value {
            generated.insert(key.clone(), secret.to_string());
        }
        wanted.insert(secret);
    }
    (wanted, generated)
}
