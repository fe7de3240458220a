//! The ApiKeys as the controller keeps them: converted once, when the watch delivers them.
//!
//! A cluster may hold 10,000 keys, and the controller reads three things of each: the
//! conversion compile takes ([`Obj<ApiKeyDef>`]), what the status writer reads of the status
//! (its digest, and each condition's type, status and transition time: [`Current`]), and the
//! identity a generated Secret's owner reference names. A reflector would keep the whole
//! typed object besides the conversion; [`KeyStore`] keeps one [`WatchedKey`] per key instead,
//! made when the watch delivers the key. A delivery that leaves the conversion as it was (a
//! status write: the same `metadata.generation` and labels) keeps the same `Arc`, so compile
//! reuses the key's outcome, and pokes no rebuild.
//!
//! The watch reads each key as a [`KeyObject`]: without its managed fields, annotations and
//! usage summaries, which nothing here reads, and in lists of [`slim::LIST_PAGE`] keys, so
//! what a list holds at once stays small.

use std::{
    borrow::Borrow,
    collections::HashSet,
    hash::{Hash, Hasher},
    sync::{Arc, RwLock},
};

use futures::StreamExt as _;
use kube::{
    Api, Client, ResourceExt as _,
    runtime::{WatchStreamExt as _, watcher},
};
use serde_json::Value;
use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
};
use tracing::warn;

use crate::{
    ingest,
    pool::Pool,
    slim::{self, KeyObject},
    status::{Changed, Current, KeptConditions, StatusDigest, read_status},
};
use turnpike_api::{ApiKey, v1alpha1::api_key::ApiKeyStatus};
use turnpike_core::compile::Obj;
use turnpike_core::model::{ApiKeyDef, ObjectKey};

/// What the controller keeps of one ApiKey.
#[derive(Debug)]
pub struct WatchedKey {
    /// The conversion compile reads (its `meta` names the key: namespace, name, uid).
    pub obj: Arc<Obj<ApiKeyDef>>,
    /// What the status writer reads of the status.
    status: KeptStatus,
}

/// What the status writer reads of a key's status ([`Current`]), as compact as it goes: its
/// digest, and its conditions with only `type`, `status` and `lastTransitionTime`.
#[derive(Debug)]
struct KeptStatus {
    digest: StatusDigest,
    conditions: KeptConditions,
}

impl KeptStatus {
    fn of(status: Option<&ApiKeyStatus>) -> KeptStatus {
        let status = status
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(Value::Null);
        let (conditions, digest) = read_status(status);
        KeptStatus {
            digest,
            conditions: KeptConditions::of(&conditions),
        }
    }
}

/// What many keys repeat, kept once per watch: their lists of usage plans. (Their
/// namespace's name is shared already: `ObjectKey::new` interns it.)
#[derive(Debug, Default)]
pub struct Repeated {
    plans: Pool<[Box<str>]>,
}

impl Repeated {
    /// `k` converted, with what it repeats shared.
    fn convert(&mut self, k: &ApiKey) -> Obj<ApiKeyDef> {
        let mut obj = ingest::api_key_obj(k);
        if let Ok(def) = &mut obj.def {
            def.usage_plans = self.plans.share(std::mem::take(&mut def.usage_plans));
        }
        obj
    }
}

impl WatchedKey {
    /// `k` as kept, with the conversion of `previous` when `k` converts alike (see
    /// [`converts_alike`]).
    pub fn of(k: &ApiKey, previous: Option<&WatchedKey>, repeated: &mut Repeated) -> WatchedKey {
        let obj = match previous {
            Some(p) if converts_alike(&p.obj, k) => p.obj.clone(),
            _ => Arc::new(repeated.convert(k)),
        };
        let status = KeptStatus::of(k.status.as_ref());
        WatchedKey { obj, status }
    }

    /// The status, as the status writer reads it.
    pub fn current(&self) -> Current {
        Current {
            uid: self.obj.meta.uid.to_string(),
            conditions: self.status.conditions.value(),
            digest: self.status.digest,
        }
    }

    /// The key's namespace and name.
    pub fn key(&self) -> &ObjectKey {
        &self.obj.meta.key
    }
}

/// Whether `k` converts to `obj`, a conversion of an earlier version of the same object: the
/// conversion reads the spec, which moves `metadata.generation`, and the labels, which do not.
/// Without a generation (an API server that keeps none), never.
fn converts_alike(obj: &Obj<ApiKeyDef>, k: &ApiKey) -> bool {
    let Some(generation) = k.metadata.generation else {
        return false;
    };
    k.metadata.uid.as_deref().is_some_and(|uid| obj.meta.uid == *uid)
        && obj.meta.generation == generation
        && match &obj.def {
            Ok(def) => *def.labels == *k.labels(),
            Err(_) => true,
        }
}

/// A kept key, hashed and compared by its namespace and name: a set of these is a map by
/// name whose slots hold one pointer, the names being the conversion's.
#[derive(Debug, Clone)]
struct Kept(Arc<WatchedKey>);

/// What a delivery of a key changed of what is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivered {
    /// Nothing the controller reads (a usage summary, a new `resourceVersion` alone).
    Nothing,
    /// The status (most often our own write): the status writer reads it, compile does not.
    Status,
    /// The conversion: a new key, or a new spec or labels.
    Conversion,
}

impl Kept {
    /// The kept key after a delivery of `k`, the same object (namespace and name). A new
    /// status is written where the kept key is when nothing else holds it (a rebuild or the
    /// status writer may, for a moment): a status write, which every key gets, allocates
    /// nothing that outlives it.
    fn deliver(mut self, k: &ApiKey, repeated: &mut Repeated) -> (Kept, Delivered) {
        if !converts_alike(&self.0.obj, k) {
            let converted = WatchedKey::of(k, None, repeated);
            return (Kept(Arc::new(converted)), Delivered::Conversion);
        }
        let status = KeptStatus::of(k.status.as_ref());
        if status.digest == self.0.status.digest {
            return (self, Delivered::Nothing);
        }
        match Arc::get_mut(&mut self.0) {
            Some(kept) => kept.status = status,
            None => {
                let obj = self.0.obj.clone();
                self.0 = Arc::new(WatchedKey { obj, status });
            }
        }
        (self, Delivered::Status)
    }
}

impl PartialEq for Kept {
    fn eq(&self, other: &Self) -> bool {
        self.0.key() == other.0.key()
    }
}

impl Eq for Kept {}

impl Hash for Kept {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.key().hash(state);
    }
}

impl Borrow<ObjectKey> for Kept {
    fn borrow(&self) -> &ObjectKey {
        self.0.key()
    }
}

type Keys = HashSet<Kept>;

/// One watched scope's keys, and whether its watch has listed once.
#[derive(Clone)]
struct Scope {
    keys: Arc<RwLock<Keys>>,
    ready: watch::Receiver<bool>,
}

/// The ApiKeys of every watched scope.
#[derive(Clone)]
pub struct KeyStore {
    scopes: Vec<Scope>,
}

impl KeyStore {
    /// Starts one watch of ApiKeys per scope (`namespaces` empty: one for every namespace).
    /// Every change pokes `changes`, but for a delivery that leaves the conversion as it was;
    /// every delivery marks its key in `changed` for the status writer (a relist, every key).
    pub fn start(
        client: &Client,
        namespaces: &[String],
        changes: &Arc<Notify>,
        changed: &Arc<Changed>,
        tasks: &mut Vec<JoinHandle<()>>,
    ) -> KeyStore {
        let mut scopes = Vec::new();
        for namespace in crate::scopes(namespaces) {
            let api: Api<KeyObject> = match &namespace {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            };
            let keys = Arc::new(RwLock::new(Keys::new()));
            let (watch, ready) = Watch::new(&keys, changes, changed);
            tasks.push(tokio::spawn(watch.run(api)));
            scopes.push(Scope { keys, ready });
        }
        KeyStore { scopes }
    }

    /// Every key of every scope.
    pub fn state(&self) -> Vec<Arc<WatchedKey>> {
        self.scopes
            .iter()
            .flat_map(|s| read(&s.keys).iter().map(|k| k.0.clone()).collect::<Vec<_>>())
            .collect()
    }

    /// Every key's conversion.
    pub fn converted(&self) -> Vec<Arc<Obj<ApiKeyDef>>> {
        self.state().iter().map(|k| k.obj.clone()).collect()
    }

    /// One key.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<WatchedKey>> {
        self.scopes
            .iter()
            .find_map(|s| read(&s.keys).get(key).map(|k| k.0.clone()))
    }

    /// Waits until every scope has listed once.
    pub async fn wait_until_ready(&self) {
        for s in &self.scopes {
            let mut ready = s.ready.clone();
            // An error: the watch task ended, and nothing will list any more.
            let _ = ready.wait_for(|r| *r).await;
        }
    }

    /// A store with no watch and one scope, listed: for tests and benchmarks that hold typed
    /// ApiKeys ([`KeyStore::relist`]).
    pub fn offline() -> KeyStore {
        let (_, ready) = watch::channel(true);
        KeyStore {
            scopes: vec![Scope {
                keys: Arc::default(),
                ready,
            }],
        }
    }

    /// Lists `keys` into the first scope as a watch's relist does: each key keeps its
    /// conversion when it converts alike; keys not listed are gone.
    pub fn relist(&self, keys: &[Arc<ApiKey>]) {
        let Some(scope) = self.scopes.first() else {
            return;
        };
        let listed = {
            let kept = read(&scope.keys);
            let mut repeated = Repeated::default();
            keys.iter().map(|k| keep(&kept, k, &mut repeated)).collect()
        };
        *write(&scope.keys) = listed;
    }
}

/// `k` as kept, with its conversion in `keys` when it converts alike; the kept key itself
/// when nothing kept changed (a usage summary, which the status digest leaves out, or a new
/// `resourceVersion` alone). A summaries round delivers every key; each then costs no
/// allocation that outlives the delivery. (The scale bench shows no memory gain from it: what
/// a round leaves behind is not these.)
fn keep(keys: &Keys, k: &ApiKey, repeated: &mut Repeated) -> Kept {
    let key = ObjectKey::new(k.namespace().unwrap_or_default(), k.name_any());
    let previous = keys.get(&key);
    let watched = WatchedKey::of(k, previous.map(|p| &*p.0), repeated);
    match previous {
        Some(p) if Arc::ptr_eq(&p.0.obj, &watched.obj) && p.0.status.digest == watched.status.digest => {
            p.clone()
        }
        _ => Kept(Arc::new(watched)),
    }
}

fn read(keys: &RwLock<Keys>) -> std::sync::RwLockReadGuard<'_, Keys> {
    keys.read().unwrap_or_else(|e| e.into_inner())
}

fn write(keys: &RwLock<Keys>) -> std::sync::RwLockWriteGuard<'_, Keys> {
    keys.write().unwrap_or_else(|e| e.into_inner())
}

/// One scope's watch task.
struct Watch {
    keys: Arc<RwLock<Keys>>,
    changes: Arc<Notify>,
    changed: Arc<Changed>,
    ready: watch::Sender<bool>,
    /// During a (re)list, the keys listed so far: they replace the scope's keys when the list
    /// is done, as a reflector's store does.
    relist: Option<Keys>,
    repeated: Repeated,
}

impl Watch {
    /// A watch task's state, and whether it has listed once.
    fn new(
        keys: &Arc<RwLock<Keys>>,
        changes: &Arc<Notify>,
        changed: &Arc<Changed>,
    ) -> (Watch, watch::Receiver<bool>) {
        let (ready_tx, ready) = watch::channel(false);
        let w = Watch {
            keys: keys.clone(),
            changes: changes.clone(),
            changed: changed.clone(),
            ready: ready_tx,
            relist: None,
            repeated: Repeated::default(),
        };
        (w, ready)
    }

    async fn run(mut self, api: Api<KeyObject>) {
        let config = watcher::Config::default().page_size(slim::LIST_PAGE);
        let mut stream = watcher(api, config).default_backoff().boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => self.apply(slim::event(event)),
                Err(e) => warn!(kind = "ApiKey", error = %e, "watch failed; retrying with backoff"),
            }
        }
    }

    fn apply(&mut self, event: watcher::Event<ApiKey>) {
        match event {
            watcher::Event::Init => self.relist = Some(Keys::new()),
            watcher::Event::InitApply(k) => {
                let kept = keep(&read(&self.keys), &k, &mut self.repeated);
                self.relist.get_or_insert_default().replace(kept);
            }
            watcher::Event::InitDone => {
                let listed = self.relist.take().unwrap_or_default();
                *write(&self.keys) = listed;
                self.changed.mark_everything();
                self.ready.send_replace(true);
                self.changes.notify_one();
            }
            watcher::Event::Apply(k) => {
                let key = ObjectKey::new(k.namespace().unwrap_or_default(), k.name_any());
                let mut keys = write(&self.keys);
                let (kept, delivered) = match keys.take(&key) {
                    Some(previous) => previous.deliver(&k, &mut self.repeated),
                    None => {
                        let converted = WatchedKey::of(&k, None, &mut self.repeated);
                        (Kept(Arc::new(converted)), Delivered::Conversion)
                    }
                };
                let key = kept.0.key().clone();
                keys.insert(kept);
                drop(keys);
                // The status writer reads the conversion's uid and the kept status: a delivery
                // that changes neither (a usage summary) is no news to it. Not marking it
                // keeps the set of marks from growing to every key each summaries round.
                if delivered == Delivered::Nothing {
                    return;
                }
                self.changed.mark(key);
                // Compile reads the conversion only: a status write (most often ours) leaves
                // it, and costs no rebuild.
                if delivered == Delivered::Conversion {
                    self.changes.notify_one();
                }
            }
            watcher::Event::Delete(k) => {
                let key = ObjectKey::new(k.namespace().unwrap_or_default(), k.name_any());
                self.changed.mark(key.clone());
                write(&self.keys).remove(&key);
                self.changes.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ingest::Objects;
    use serde_json::json;

    fn api_key(name: &str, labels: &[(&str, &str)]) -> ApiKey {
        let y = format!(
            "apiVersion: turnpike.dev/v1alpha1\nkind: ApiKey\nmetadata: {{name: {name}, namespace: default}}\n\
             spec: {{valueFrom: {{secretKeyRef: {{name: {name}, key: v}}}}}}\n"
        );
        let mut k = Objects::from_yaml(&y).unwrap().api_keys.remove(0);
        let meta = &mut Arc::make_mut(&mut k).metadata;
        meta.uid = Some(format!("uid-{name}"));
        meta.generation = Some(1);
        meta.resource_version = Some("1".into());
        meta.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        Arc::unwrap_or_clone(k)
    }

    /// A delivery with the same generation and labels (a status write) keeps the conversion;
    /// new labels, a new generation, no generation at all or a new object of the same name
    /// convert again.
    #[test]
    fn a_status_write_keeps_the_conversion() {
        let repeated = &mut Repeated::default();
        let first = WatchedKey::of(&api_key("a", &[]), None, repeated);
        let again = |edit: fn(&mut ApiKey), previous: &WatchedKey| {
            let mut k = api_key("a", &[]);
            edit(&mut k);
            WatchedKey::of(&k, Some(previous), &mut Repeated::default())
        };
        let status = again(
            |k| {
                k.metadata.resource_version = Some("2".into());
                k.status = Some(ApiKeyStatus {
                    key_id: Some("abc".into()),
                    ..Default::default()
                });
            },
            &first,
        );
        assert!(Arc::ptr_eq(&first.obj, &status.obj), "a status write");
        assert_ne!(
            status.current().digest,
            first.current().digest,
            "the status is new"
        );
        let labelled = again(
            |k| k.metadata.labels = Some([("tier".into(), "gold".into())].into()),
            &status,
        );
        assert!(!Arc::ptr_eq(&status.obj, &labelled.obj), "new labels");
        assert_eq!(labelled.obj.def.as_ref().unwrap().labels.len(), 1);
        let disabled = again(
            |k| {
                k.spec.enabled = false;
                k.metadata.generation = Some(2);
            },
            &first,
        );
        assert!(!Arc::ptr_eq(&first.obj, &disabled.obj), "a new generation");
        assert!(!disabled.obj.def.as_ref().unwrap().enabled);
        let unversioned = again(|k| k.metadata.generation = None, &first);
        assert!(!Arc::ptr_eq(&first.obj, &unversioned.obj), "no generation");
        let recreated = again(|k| k.metadata.uid = Some("uid-new".into()), &first);
        assert!(!Arc::ptr_eq(&first.obj, &recreated.obj), "a new object");
        assert_eq!(recreated.obj.meta.uid, "uid-new");
    }

    /// A key whose Secret has its name holds the name once; another Secret's name is its own.
    #[test]
    fn a_secret_of_the_keys_name_shares_it() {
        let secret_name = |k: &WatchedKey| match &k.obj.def.as_ref().unwrap().value {
            turnpike_core::model::KeyValueSource::Secret { name, .. } => name.clone(),
            other => panic!("{other:?}"),
        };
        let repeated = &mut Repeated::default();
        let same = WatchedKey::of(&api_key("a", &[]), None, repeated);
        assert!(Arc::ptr_eq(&secret_name(&same), &same.key().name));
        let mut k = api_key("a", &[]);
        k.spec.value_from.as_mut().unwrap().secret_key_ref.name = "other".into();
        let other = WatchedKey::of(&k, None, repeated);
        assert_eq!(&*secret_name(&other), "other");
        assert_eq!(&*other.key().name, "a");
    }

    /// Keys of one namespace share its name, and keys with the same usage plans one list of
    /// them; a key with other plans has its own.
    #[test]
    fn keys_share_what_they_repeat() {
        let repeated = &mut Repeated::default();
        let mut with_plans = |name: &str, plans: &[&str]| {
            let mut k = api_key(name, &[]);
            k.spec.usage_plan_refs = plans
                .iter()
                .map(|p| serde_json::from_value(json!({"name": p})).unwrap())
                .collect();
            let kept = WatchedKey::of(&k, None, repeated);
            let plans = kept.obj.def.as_ref().unwrap().usage_plans.clone();
            (kept.key().namespace.clone(), plans)
        };
        let (ns_a, gold_a) = with_plans("a", &["gold"]);
        let (ns_b, gold_b) = with_plans("b", &["gold"]);
        let (ns_c, silver) = with_plans("c", &["silver", "gold"]);
        assert!(Arc::ptr_eq(&ns_a, &ns_b) && Arc::ptr_eq(&ns_a, &ns_c));
        assert!(Arc::ptr_eq(&gold_a, &gold_b));
        assert_eq!(&*silver, [Box::from("silver"), Box::from("gold")]);
    }

    /// Whether `changes` was poked since the last call.
    async fn poked(changes: &Notify) -> bool {
        tokio::time::timeout(Duration::from_millis(10), changes.notified())
            .await
            .is_ok()
    }

    /// The watch's events as a reflector applies them: a list replaces the keys when done
    /// (and makes the store ready), an update or a delete changes one; every change pokes a
    /// rebuild but a status write, and marks the key for the status writer.
    #[tokio::test]
    async fn events_keep_the_keys_and_poke_only_for_what_compile_reads() {
        let keys = Arc::new(RwLock::new(Keys::new()));
        let (changes, changed) = (Arc::new(Notify::new()), Arc::new(Changed::default()));
        let (mut w, ready) = Watch::new(&keys, &changes, &changed);
        let key = |n: &str| ObjectKey::new("default", n);
        w.apply(watcher::Event::Init);
        w.apply(watcher::Event::InitApply(api_key("a", &[])));
        w.apply(watcher::Event::InitApply(api_key("b", &[])));
        assert!(read(&keys).is_empty(), "a list shows when it is done");
        assert!(!*ready.borrow());
        w.apply(watcher::Event::InitDone);
        assert_eq!(read(&keys).len(), 2);
        assert!(*ready.borrow());
        assert!(poked(&changes).await);
        assert!(changed.take().contains(&key("zzz")), "a list marks every object");
        let a = read(&keys).get(&key("a")).unwrap().0.obj.clone();
        let kept_at = |name: &str| Arc::as_ptr(&read(&keys).get(&key(name)).unwrap().0);
        let (a_at, b_at) = (kept_at("a"), kept_at("b"));

        let mut status_write = api_key("a", &[]);
        status_write.metadata.resource_version = Some("2".into());
        status_write.status = Some(ApiKeyStatus {
            key_id: Some("abc".into()),
            ..Default::default()
        });
        w.apply(watcher::Event::Apply(status_write.clone()));
        assert!(!poked(&changes).await, "a status write costs no rebuild");
        assert!(Arc::ptr_eq(&a, &read(&keys).get(&key("a")).unwrap().0.obj));
        assert_eq!(kept_at("a"), a_at, "written where the kept key is");
        let since = changed.take();
        assert!(since.contains(&key("a")) && !since.contains(&key("b")));

        // A kept key something else holds (a rebuild, the status writer) is not written
        // under it: the holder keeps reading the status it took.
        let held = read(&keys).get(&key("b")).unwrap().0.clone();
        let mut b_written = api_key("b", &[]);
        b_written.status = status_write.status.clone();
        w.apply(watcher::Event::Apply(b_written));
        assert!(!poked(&changes).await);
        assert_ne!(kept_at("b"), b_at, "a new kept key");
        assert_ne!(
            held.current().digest,
            read(&keys).get(&key("b")).unwrap().0.current().digest
        );
        assert!(Arc::ptr_eq(&held.obj, &read(&keys).get(&key("b")).unwrap().0.obj));
        assert!(changed.take().contains(&key("b")));

        // A usage summary, which the status writer does not read, is no news to it.
        status_write.metadata.resource_version = Some("3".into());
        let summary = serde_json::from_value(json!([{"usagePlan": "p", "period": "DAY",
            "periodStart": "2026-12-05", "used": 1, "remaining": 9, "updated": "2026-12-05T00:00:00Z"}]));
        status_write.status.as_mut().unwrap().usage = summary.unwrap();
        let before = read(&keys).get(&key("a")).unwrap().0.clone();
        w.apply(watcher::Event::Apply(status_write));
        assert!(!poked(&changes).await);
        assert!(
            !changed.take().contains(&key("a")),
            "a usage summary marks nothing"
        );
        let after = read(&keys).get(&key("a")).unwrap().0.clone();
        assert!(Arc::ptr_eq(&before, &after), "and the kept key stays as it was");

        w.apply(watcher::Event::Apply(api_key("a", &[("tier", "gold")])));
        assert!(poked(&changes).await, "new labels: a rebuild");
        assert!(!Arc::ptr_eq(&a, &read(&keys).get(&key("a")).unwrap().0.obj));

        w.apply(watcher::Event::Delete(api_key("b", &[])));
        assert!(poked(&changes).await);
        assert!(changed.take().contains(&key("b")));
        assert!(!read(&keys).contains(&key("b")));

        // A relist keeps the conversion of a key that converts alike, and drops what it
        // does not list.
        let a = read(&keys).get(&key("a")).unwrap().0.obj.clone();
        w.apply(watcher::Event::Init);
        w.apply(watcher::Event::InitApply(api_key("a", &[("tier", "gold")])));
        w.apply(watcher::Event::InitApply(api_key("c", &[])));
        w.apply(watcher::Event::InitDone);
        let listed = read(&keys);
        assert_eq!(listed.len(), 2);
        assert!(Arc::ptr_eq(&a, &listed.get(&key("a")).unwrap().0.obj));
        assert!(listed.contains(&key("c")));
    }

    /// A status the writer wrote, read back through the typed ApiKey, has the digest of what
    /// the writer wrote: the writer sees it settled, and writes it no second time. Its
    /// conditions keep what the writer reads of them.
    #[test]
    fn a_written_status_reads_back_as_settled() {
        use turnpike_core::compile::{Cond, Kind, StatusFields, StatusUpdate};
        use turnpike_core::model::KeyId;
        let update = StatusUpdate {
            kind: Kind::ApiKey,
            object: ObjectKey::new("default", "a"),
            observed_generation: 1,
            conditions: Arc::new([
                Cond::ok("Accepted", "Accepted", "the spec is valid"),
                Cond::fail(
                    "Ready",
                    "SecretNotFound",
                    "spec.valueFrom.secretKeyRef.name: gone",
                ),
            ]),
            fields: StatusFields {
                key_id: KeyId::parse("abcdefghij"),
                ..Default::default()
            },
        };
        let desired = crate::status::desired_status(&update, &Value::Null, "2026-12-04T10:00:00Z", None);
        let mut k = api_key("a", &[]);
        k.status = Some(serde_json::from_value(desired.clone()).unwrap());
        let kept = WatchedKey::of(&k, None, &mut Repeated::default());
        let current = kept.current();
        assert_eq!(current.digest, StatusDigest::of(&desired));
        assert_eq!(current.uid, "uid-a");
        assert_eq!(
            current.conditions,
            json!([
                {"type": "Accepted", "status": "True", "lastTransitionTime": "2026-12-04T10:00:00Z"},
                {"type": "Ready", "status": "False", "lastTransitionTime": "2026-12-04T10:00:00Z"},
            ])
        );
        let none = WatchedKey::of(&api_key("a", &[]), None, &mut Repeated::default()).current();
        assert_eq!(
            (none.conditions, none.digest),
            (Value::Null, StatusDigest::of(&Value::Null))
        );
    }

    /// The offline store lists typed ApiKeys as the watch does.
    #[test]
    fn an_offline_store_relists_as_the_watch() {
        let store = KeyStore::offline();
        store.relist(&[Arc::new(api_key("a", &[])), Arc::new(api_key("b", &[]))]);
        let a = store.get(&ObjectKey::new("default", "a")).unwrap().obj.clone();
        store.relist(&[Arc::new(api_key("a", &[]))]);
        assert_eq!(store.converted().len(), 1);
        assert!(Arc::ptr_eq(&a, &store.converted()[0]));
    }
}
