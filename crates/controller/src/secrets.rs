//! The Secrets ApiKeys refer to, from ONE label-selected watch per watched scope.
//!
//! The controller never lists Secrets at large: it watches only those labelled
//! [`API_KEY_SECRET_LABEL`] (`labelSelector=turnpike.dev/api-key`), one watch for every
//! namespace or one per watched namespace, whatever the number of keys (10,000 keys are one
//! watch, not 10,000). Of what the watch delivers it keeps the data of the Secrets an ApiKey
//! refers to and only the names of the others; a Secret that stops being referred to is
//! dropped at the next rebuild. `turnpike_controller_cached_secrets` counts what is held. The
//! watch and the reads below take each Secret as a [`KeySecret`]: its identity, version and
//! labels, and the digests of its values, made as it is read.
//!
//! The watch starts at the first [`SecretCache::sync`], once the referenced set is known, so
//! its first list keeps every referenced Secret without a second read. A labelled Secret that
//! becomes referenced later is read once by name (a `list` with `fieldSelector`, the same verb
//! as the watch); when more than [`READS_PER_SYNC`] become referenced at once (keys created
//! after their Secrets, or a restart), they are read with one paginated list of the labelled
//! Secrets instead, keeping only the referenced ones, resumed where it stopped if a rebuild's
//! time runs out. A referenced Secret the watch does not deliver is looked up by name,
//! metadata only: if it exists without the label, compile says `SecretNotLabelled` on the
//! ApiKey instead of `SecretNotFound`; at most [`CHECKS_PER_SYNC`] such look-ups per rebuild,
//! each key at most every [`RECHECK`]. Reads and look-ups go in bounded batches
//! ([`READS_PER_SYNC`]); what a batch leaves pokes another rebuild.
//!
//! TLS certificates are not read from Secrets (the listeners take PEM files), so no other
//! Secret is ever read.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, RwLock},
    time::Duration,
};

use futures::{StreamExt as _, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt as _,
    api::ListParams,
    runtime::{WatchStreamExt as _, watcher},
};
use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
    time::Instant,
};
use tracing::{debug, warn};

use crate::slim::{self, KeySecret};
use turnpike_core::compile::SecretMap;
use turnpike_core::model::{API_KEY_SECRET_LABEL, ObjectKey, SecretData};

/// Most reads by name of newly referenced labelled Secrets one rebuild makes.
pub const READS_PER_SYNC: usize = 256;
/// Most look-ups of unlabelled or missing Secrets one rebuild makes.
pub const CHECKS_PER_SYNC: usize = 64;
/// How long a look-up result stands before the Secret is looked up again.
pub const RECHECK: Duration = Duration::from_secs(30);
/// Concurrent reads by name.
const CONCURRENT_READS: usize = 16;

/// What the watch task and the rebuild loop share.
#[derive(Default)]
struct Shared {
    /// The referenced Secrets whose data is not held in `cached` (not labelled, or labelled
    /// and not read yet): a Secret is referenced when it is in one or the other. Once every
    /// key's Secret is read this is empty, and 10,000 referenced Secrets are named once, in
    /// `cached`, not a second time in a set of their own.
    missing: BTreeSet<ObjectKey>,
    /// The labelled Secrets in scope whose data is not held in `cached`, by name only: a
    /// Secret is labelled when it is in one or the other (10,000 referenced Secrets are
    /// named once, in `cached`).
    bare: BTreeSet<ObjectKey>,
    /// The referenced labelled Secrets, as digests of their values ([`KeySecret`]).
    /// Shared with the rebuild that reads it ([`SecretCache::secrets`]): a change copies the
    /// map only while a rebuild holds it, and a rebuild copies nothing.
    cached: Arc<SecretMap>,
    /// Per scope: the keys seen by the relist in progress.
    relist: Vec<BTreeSet<ObjectKey>>,
}

/// The label-selected Secret watch and what it holds.
pub struct SecretCache {
    client: Client,
    /// `None`: every namespace; else one watch per namespace.
    scopes: Vec<Option<String>>,
    changes: Arc<Notify>,
    shared: Arc<RwLock<Shared>>,
    synced: watch::Receiver<bool>,
    synced_tx: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
    /// Referenced, not labelled, and found to exist (value) or not (absent), with when.
    unlabelled: BTreeMap<ObjectKey, (bool, Instant)>,
    /// Where an unfinished list of the labelled Secrets resumes: the scope and its continue
    /// token.
    resume: Option<(usize, String)>,
}

impl Drop for SecretCache {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

fn key_of(s: &KeySecret) -> ObjectKey {
    ObjectKey::new(s.namespace().unwrap_or_default(), s.name_any())
}

/// Runs `futures`, [`CONCURRENT_READS`] at a time, for at most `limit`: the outputs of those
/// done, and whether all are.
async fn within<T>(
    limit: Duration,
    futures: impl Iterator<Item = impl Future<Output = T>>,
) -> (Vec<T>, bool) {
    let mut outputs = Vec::new();
    let mut running = stream::iter(futures).buffer_unordered(CONCURRENT_READS);
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = running.next() => match next {
                Some(o) => outputs.push(o),
                None => return (outputs, true),
            },
            _ = &mut deadline => return (outputs, false),
        }
    }
}

// === impl Shared ===

impl Shared {
    /// Drops a Secret's data (it stays referenced, and missing), copying the map (when a
    /// rebuild holds it) only if it is there.
    fn forget(&mut self, key: &ObjectKey) {
        if self.cached.contains_key(key) {
            let dropped = Arc::make_mut(&mut self.cached).remove_entry(key);
            self.missing.extend(dropped.map(|(k, _)| k));
        }
    }

    /// Keeps the Secrets' data that `keep` says to, copying the map (when a rebuild holds it)
    /// only if some goes; the keys of the data dropped.
    fn retain(&mut self, keep: impl Fn(&ObjectKey) -> bool) -> Vec<ObjectKey> {
        let dropped: Vec<ObjectKey> = self.cached.keys().filter(|k| !keep(k)).cloned().collect();
        if !dropped.is_empty() {
            Arc::make_mut(&mut self.cached).retain(|k, _| keep(k));
        }
        dropped
    }

    /// Whether a Secret is labelled (as far as the watch has told).
    fn labelled(&self, key: &ObjectKey) -> bool {
        self.cached.contains_key(key) || self.bare.contains(key)
    }

    /// `s`'s key, with the names of the referenced key that equals it (shared with the
    /// ApiKey that refers to it) when there is one.
    fn referenced_key(&self, s: &KeySecret) -> (ObjectKey, bool) {
        let key = key_of(s);
        let held = self.cached.get_key_value(&key).map(|(k, _)| k);
        match held.or_else(|| self.missing.get(&key)) {
            Some(k) => (k.clone(), true),
            None => (key, false),
        }
    }

    /// Holds the data of a referenced labelled Secret.
    fn hold(&mut self, key: ObjectKey, data: SecretData) {
        self.bare.remove(&key);
        self.missing.remove(&key);
        Arc::make_mut(&mut self.cached).insert(key, data);
    }

    /// Keeps a labelled Secret: its data when it is referenced, else its name.
    fn put(&mut self, s: KeySecret) -> ObjectKey {
        let (key, referenced) = self.referenced_key(&s);
        if referenced {
            self.hold(key.clone(), s.data);
        } else {
            self.bare.insert(key.clone());
        }
        key
    }

    /// Makes `wanted` the referenced set; the data of a Secret no longer referred to is
    /// dropped, and its name kept with the other labelled ones.
    fn refer_to(&mut self, wanted: BTreeSet<ObjectKey>) {
        let dropped = self.retain(|k| wanted.contains(k));
        self.bare.extend(dropped);
        let held = &self.cached;
        self.missing = wanted.into_iter().filter(|k| !held.contains_key(k)).collect();
    }

    /// Applies one event of the watch of `scopes[i]`; returns true once every scope listed.
    fn apply(&mut self, scopes: &[Option<String>], i: usize, event: watcher::Event<KeySecret>) -> bool {
        match event {
            watcher::Event::Init => self.relist[i].clear(),
            watcher::Event::InitApply(s) => {
                let key = self.put(s);
                self.relist[i].insert(key);
            }
            watcher::Event::Apply(s) => {
                self.put(s);
            }
            watcher::Event::Delete(s) => {
                let key = key_of(&s);
                self.bare.remove(&key);
                self.forget(&key);
            }
            watcher::Event::InitDone => {
                let seen = std::mem::take(&mut self.relist[i]);
                let in_scope = |k: &ObjectKey| scopes[i].as_ref().is_none_or(|ns| **ns == *k.namespace);
                self.bare.retain(|k| !in_scope(k) || seen.contains(k));
                // Gone, and still referenced.
                let gone = self.retain(|k| !in_scope(k) || seen.contains(k));
                self.missing.extend(gone);
                return true;
            }
        }
        false
    }
}

// === impl SecretCache ===

impl SecretCache {
    /// No watch yet: it starts at the first [`SecretCache::sync`]. `namespaces` empty means
    /// every namespace. Every event pokes `changes`.
    pub fn new(client: Client, namespaces: &[String], changes: Arc<Notify>) -> Self {
        let scopes = crate::scopes(namespaces);
        let (tx, rx) = watch::channel(false);
        SecretCache {
            client,
            shared: Arc::new(RwLock::new(Shared {
                relist: vec![BTreeSet::new(); scopes.len()],
                ..Shared::default()
            })),
            scopes,
            changes,
            synced: rx,
            synced_tx: Some(tx),
            task: None,
            unlabelled: BTreeMap::new(),
            resume: None,
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Shared> {
        self.shared.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Shared> {
        self.shared.read().unwrap_or_else(|e| e.into_inner())
    }

    fn start(&mut self, synced: watch::Sender<bool>) {
        let streams = self.scopes.iter().enumerate().map(|(i, scope)| {
            let api: Api<KeySecret> = match scope {
                Some(ns) => Api::namespaced(self.client.clone(), ns),
                None => Api::all(self.client.clone()),
            };
            let config = watcher::Config::default()
                .labels(API_KEY_SECRET_LABEL)
                .page_size(slim::LIST_PAGE);
            watcher(api, config)
                .default_backoff()
                .map(move |e| (i, e))
                .boxed()
        });
        let mut events = stream::select_all(streams);
        let shared = self.shared.clone();
        let scopes = self.scopes.clone();
        let changes = self.changes.clone();
        self.task = Some(tokio::spawn(async move {
            let mut listed = vec![false; scopes.len()];
            while let Some((i, event)) = events.next().await {
                match event {
                    Ok(event) => {
                        let done = shared
                            .write()
                            .unwrap_or_else(|e| e.into_inner())
                            .apply(&scopes, i, event);
                        if done {
                            listed[i] = true;
                            if listed.iter().all(|l| *l) {
                                synced.send_replace(true);
                            }
                        }
                    }
                    Err(e) => warn!(error = %e, "secret watch failed; retrying with backoff"),
                }
                changes.notify_one();
            }
        }));
    }

    /// Makes `wanted` the referenced set: drops what is no longer referred to, starts the
    /// watch the first time (waiting at most `limit` for its first list), reads newly
    /// referenced labelled Secrets by name, and looks up referenced Secrets the watch does
    /// not deliver (to tell "not labelled" from "not found").
    pub async fn sync(&mut self, wanted: BTreeSet<ObjectKey>, limit: Duration) {
        self.write().refer_to(wanted);
        if let Some(tx) = self.synced_tx.take() {
            self.start(tx);
        }
        let mut synced = self.synced.clone();
        if tokio::time::timeout(limit, synced.wait_for(|s| *s))
            .await
            .is_err()
        {
            debug!("secret watch has not listed yet");
            return;
        }
        // Work left for the next rebuild (bounded batches, timeouts): poke one.
        let mut more = false;
        let (mut to_read, absent) = {
            let shared = self.read();
            // The referenced Secrets held are labelled and read: only the missing ones are
            // to read or to look up.
            let missing = &shared.missing;
            let to_read: Vec<ObjectKey> = missing
                .iter()
                .filter(|k| shared.bare.contains(*k))
                .cloned()
                .collect();
            let absent: BTreeSet<ObjectKey> =
                missing.iter().filter(|k| !shared.labelled(k)).cloned().collect();
            (to_read, absent)
        };
        self.unlabelled.retain(|k, _| absent.contains(k));
        let (found, complete) = if to_read.len() > READS_PER_SYNC {
            let wanted: BTreeSet<ObjectKey> = to_read.drain(..).collect();
            self.read_listed(&wanted, limit).await
        } else {
            self.read_by_name(to_read, limit).await
        };
        more |= !complete;
        {
            let mut shared = self.write();
            for s in found {
                let (key, referenced) = shared.referenced_key(&s);
                if referenced && !shared.cached.contains_key(&key) {
                    shared.hold(key, s.data);
                }
            }
        }
        let now = Instant::now();
        let mut due: Vec<(Option<Instant>, ObjectKey)> = absent
            .into_iter()
            .map(|k| (self.unlabelled.get(&k).map(|(_, at)| *at), k))
            .filter(|(at, _)| at.is_none_or(|at| now.duration_since(at) >= RECHECK))
            .collect();
        due.sort();
        more |= due.len() > CHECKS_PER_SYNC;
        due.truncate(CHECKS_PER_SYNC);
        let (results, complete) = self.exists_by_name(due.into_iter().map(|(_, k)| k), limit).await;
        more |= !complete;
        for (key, exists) in results {
            self.unlabelled.insert(key, (exists, now));
        }
        if more {
            self.changes.notify_one();
        }
    }

    /// Reads labelled Secrets by name; what is read within `limit`, and whether that is all.
    async fn read_by_name(&self, keys: Vec<ObjectKey>, limit: Duration) -> (Vec<KeySecret>, bool) {
        let reads = keys.into_iter().map(|key| {
            let api: Api<KeySecret> = Api::namespaced(self.client.clone(), &key.namespace);
            let lp = ListParams::default()
                .fields(&format!("metadata.name={}", key.name))
                .labels(API_KEY_SECRET_LABEL);
            async move {
                match api.list(&lp).await {
                    Ok(list) => list.items,
                    Err(e) => {
                        warn!(namespace = %key.namespace, secret = %key.name, error = %e, "reading secret");
                        Vec::new()
                    }
                }
            }
        });
        let (lists, complete) = within(limit, reads).await;
        (lists.into_iter().flatten().collect(), complete)
    }

    /// Reads the `wanted` Secrets with a paginated list of the labelled Secrets of every scope,
    /// keeping only those: what is read within `limit`, and whether the list is done. An
    /// unfinished list resumes at the next call.
    async fn read_listed(&mut self, wanted: &BTreeSet<ObjectKey>, limit: Duration) -> (Vec<KeySecret>, bool) {
        let deadline = Instant::now() + limit;
        let mut out = Vec::new();
        let (first, mut token) = self.resume.take().map_or((0, None), |(i, t)| (i, Some(t)));
        for (i, scope) in self.scopes.iter().enumerate().skip(first) {
            let api: Api<KeySecret> = match scope {
                Some(ns) => Api::namespaced(self.client.clone(), ns),
                None => Api::all(self.client.clone()),
            };
            loop {
                let mut lp = ListParams::default()
                    .labels(API_KEY_SECRET_LABEL)
                    .limit(slim::LIST_PAGE);
                if let Some(t) = token.take() {
                    lp = lp.continue_token(&t);
                }
                let page = match tokio::time::timeout_at(deadline, api.list(&lp)).await {
                    Ok(Ok(page)) => page,
                    Ok(Err(e)) => {
                        warn!(error = %e, "listing api key secrets");
                        return (out, false);
                    }
                    Err(_) => {
                        if let Some(t) = lp.continue_token {
                            self.resume = Some((i, t));
                        }
                        return (out, false);
                    }
                };
                out.extend(page.items.into_iter().filter(|s| wanted.contains(&key_of(s))));
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
        }
        (out, true)
    }

    /// Whether each Secret exists, from its metadata only: the answers within `limit`, and
    /// whether that is all.
    async fn exists_by_name(
        &self,
        keys: impl Iterator<Item = ObjectKey>,
        limit: Duration,
    ) -> (Vec<(ObjectKey, bool)>, bool) {
        let checks = keys.map(|key| {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &key.namespace);
            let lp = ListParams::default().fields(&format!("metadata.name={}", key.name));
            async move {
                let exists = match api.list_metadata(&lp).await {
                    Ok(list) => !list.items.is_empty(),
                    Err(e) => {
                        warn!(namespace = %key.namespace, secret = %key.name, error = %e, "looking up secret");
                        false
                    }
                };
                (key, exists)
            }
        });
        within(limit, checks).await
    }

    /// The referenced Secrets held (shared, not copied).
    pub fn secrets(&self) -> Arc<SecretMap> {
        self.read().cached.clone()
    }

    /// How many Secrets' data is held.
    pub fn cached_len(&self) -> usize {
        self.read().cached.len()
    }

    /// Referenced Secrets that exist without the label.
    pub fn unlabelled(&self) -> BTreeSet<ObjectKey> {
        self.unlabelled
            .iter()
            .filter(|(_, (exists, _))| *exists)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Whether a referenced Secret is known not to exist (a generated one to create): the
    /// watch has listed, it is not labelled, and no unlabelled Secret of that name was found.
    pub fn known_missing(&self, key: &ObjectKey) -> bool {
        let unlabelled = self.unlabelled.get(key).is_some_and(|(exists, _)| *exists);
        *self.synced.borrow() && !unlabelled && !self.read().labelled(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(ns: &str, name: &str) -> KeySecret {
        let mut s = Secret::default();
        s.metadata.name = Some(name.into());
        s.metadata.namespace = Some(ns.into());
        KeySecret::of(&s)
    }

    /// Every labelled Secret's name, held or not.
    fn labelled(shared: &Shared) -> BTreeSet<ObjectKey> {
        shared.cached.keys().chain(&shared.bare).cloned().collect()
    }

    #[test]
    fn only_referenced_secrets_are_held() {
        let scopes = vec![Some("a".to_string()), Some("b".to_string())];
        let k1 = ObjectKey::new("a", "k1");
        let mut shared = Shared {
            relist: vec![BTreeSet::new(); 2],
            missing: BTreeSet::from([k1.clone()]),
            ..Shared::default()
        };
        shared.apply(&scopes, 0, watcher::Event::Init);
        for name in ["k1", "k2", "k3"] {
            shared.apply(&scopes, 0, watcher::Event::InitApply(secret("a", name)));
        }
        assert!(shared.apply(&scopes, 0, watcher::Event::InitDone));
        shared.apply(&scopes, 1, watcher::Event::InitApply(secret("b", "k1")));
        shared.apply(&scopes, 1, watcher::Event::InitDone);
        assert_eq!(
            shared.cached.keys().collect::<Vec<_>>(),
            [&ObjectKey::new("a", "k1")]
        );
        assert_eq!(labelled(&shared).len(), 4);
        assert_eq!(shared.bare.len(), 3, "the held Secret is named once");
        let (held, _) = shared.cached.first_key_value().unwrap();
        assert!(Arc::ptr_eq(&held.name, &k1.name), "one copy of the name");
        assert!(shared.missing.is_empty(), "named once, held");

        // No longer referenced: the data goes, the name stays labelled; referenced again,
        // it is labelled and not held (to be read).
        shared.refer_to(BTreeSet::new());
        assert!(shared.cached.is_empty());
        assert_eq!(labelled(&shared).len(), 4);
        shared.refer_to(BTreeSet::from([ObjectKey::new("a", "k1")]));
        assert!(shared.bare.contains(&ObjectKey::new("a", "k1")));
        shared.apply(&scopes, 0, watcher::Event::Apply(secret("a", "k1")));
        assert!(shared.cached.contains_key(&ObjectKey::new("a", "k1")));
        assert!(!shared.bare.contains(&ObjectKey::new("a", "k1")));
        assert_eq!(labelled(&shared).len(), 4);

        // A relist of scope a that misses k1 and k2 forgets them, and leaves scope b alone.
        shared.apply(&scopes, 0, watcher::Event::Init);
        shared.apply(&scopes, 0, watcher::Event::InitApply(secret("a", "k3")));
        shared.apply(&scopes, 0, watcher::Event::InitDone);
        assert!(shared.cached.is_empty());
        assert_eq!(
            labelled(&shared),
            BTreeSet::from([ObjectKey::new("a", "k3"), ObjectKey::new("b", "k1")])
        );
        let k1_missing = BTreeSet::from([ObjectKey::new("a", "k1")]);
        assert_eq!(shared.missing, k1_missing, "gone, still referenced: to look up");

        shared.apply(&scopes, 1, watcher::Event::Delete(secret("b", "k1")));
        assert_eq!(labelled(&shared), BTreeSet::from([ObjectKey::new("a", "k3")]));

        // A held Secret deleted is still referenced: missing, to look up.
        shared.refer_to(BTreeSet::from([ObjectKey::new("a", "k3")]));
        shared.apply(&scopes, 0, watcher::Event::Apply(secret("a", "k3")));
        assert!(shared.missing.is_empty());
        shared.apply(&scopes, 0, watcher::Event::Delete(secret("a", "k3")));
        assert!(shared.cached.is_empty() && labelled(&shared).is_empty());
        assert_eq!(shared.missing, BTreeSet::from([ObjectKey::new("a", "k3")]));
    }
}
