//! Status that explains, written by the leader only (linkerd's status writer).
//!
//! Each rebuild hands the writer an [`Outcome`]: the statuses compile decided, the snapshot
//! ConfigMaps to record and the generated Secrets to create. While this replica holds the
//! Lease, the writer
//!
//! 1. creates the snapshot ConfigMaps (immutable, owned by their Deployment; an existing one
//!    wins, so a snapshot is recorded exactly once),
//! 2. creates generated API key Secrets that do not exist yet (random value; never logged),
//! 3. for every object whose status would change, applies it with server-side apply on the
//!    status subresource (field manager `turnpike`, force). Conditions keep their
//!    `lastTransitionTime` when their status did not change and carry `observedGeneration`;
//!    an object whose status is already what compile says is not written at all. An update
//!    found written before (the same `Arc`, which compile's cache hands back for an API key
//!    whose inputs stayed) of an object the reflector has not changed since ([`Changed`]) is
//!    not even looked at: a rebuild of 10,000 unchanged keys costs the writer no
//!    serialization and no allocation per key,
//! 4. publishes an Event when `Ready` changes.
//!
//! Followers drop outcomes. Outcomes computed while not leading are ignored even by a new
//! leader: the index rebuilds as soon as leadership changes, so the writer waits for an
//! outcome that includes the snapshots only a leader records.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    hash::{Hash, Hasher},
    sync::{Arc, RwLock},
    time::Duration,
};

use futures::{StreamExt as _, stream};
use k8s_openapi::{
    api::core::v1::{ConfigMap, Secret},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt as _,
    api::{Patch, PatchParams, PostParams},
    runtime::events::Reporter,
};
use rand::{Rng as _, distr::Alphanumeric};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;
use tracing::{debug, instrument, warn};

use crate::ingest::DIGEST_ANNOTATION;
use crate::{Error, FIELD_MANAGER, events, metrics::ControllerMetrics, slim::Unread};
use turnpike_api::{ApiKey, Deployment, GROUP, RestApi, Stage, UsagePlan, VERSION};
use turnpike_core::compile::{Kind, Status, StatusUpdate};
use turnpike_core::conditions::types;
use turnpike_core::model::{GENERATED_SECRET_KEY, ObjectKey};
use turnpike_core::routing::KeyEntry;

/// How many status patches are in flight at once: each holds a connection of its own (kube's
/// client speaks HTTP/1.1), with about 23 KB of buffers.
const CONCURRENT_WRITES: usize = 4;
/// The first retry of a failed write, and the longest.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// A Secret to generate for an ApiKey without `valueFrom`.
#[derive(Clone, Debug)]
pub struct GeneratedSecret {
    /// The ApiKey, which owns the Secret.
    pub api_key: ObjectKey,
    pub uid: String,
    pub secret: String,
}

/// What a rebuild asks the leader to write.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Computed while leading (only those are written).
    pub leader: bool,
    /// The version of the table published with these statuses.
    pub version: u64,
    pub statuses: Vec<Status>,
    /// Snapshot ConfigMaps recorded by this rebuild, to create.
    pub snapshots: Vec<ConfigMap>,
    /// Deployment → the name of its snapshot ConfigMap (existing or recorded now).
    pub snapshot_names: BTreeMap<ObjectKey, String>,
    pub generated: Vec<GeneratedSecret>,
}

/// An object's status as the store last saw it: what the writer compares and keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct Current {
    pub uid: String,
    /// `status.conditions` (or null): the writer reads each one's `type`, `status` and
    /// `lastTransitionTime`, which a condition that keeps its status keeps.
    pub conditions: Value,
    /// The whole status, as a digest: the writer writes only a status that differs.
    pub digest: StatusDigest,
}

impl Current {
    /// The status `status` (or null) of the object `uid`, without `usage` (the usage
    /// summaries' own field, which the writer leaves alone).
    pub fn of(uid: String, status: Value) -> Current {
        let (conditions, digest) = read_status(status);
        Current {
            uid,
            conditions,
            digest,
        }
    }
}

/// What the writer reads of `status` (or null): its conditions (or null), and the digest of
/// the whole status without `usage`.
pub(crate) fn read_status(mut status: Value) -> (Value, StatusDigest) {
    if let Value::Object(m) = &mut status {
        m.remove("usage");
    }
    let digest = StatusDigest::of(&status);
    let conditions = match status {
        Value::Object(mut m) => m.remove("conditions").unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (conditions, digest)
}

/// A digest of a JSON value (SHA-256 of its JSON text, 128 bits): equal for equal values, as
/// a `Value`'s objects are BTreeMaps that serialize in key order (the same canonical form as
/// [`ingest::spec_digest`](crate::ingest::spec_digest)). A store of 10,000 ApiKeys keeps this
/// of each status rather than the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusDigest([u8; 16]);

impl StatusDigest {
    pub fn of(value: &Value) -> StatusDigest {
        let json = serde_json::to_vec(value).unwrap_or_default();
        let mut out = [0; 16];
        out.copy_from_slice(&Sha256::digest(&json)[..16]);
        StatusDigest(out)
    }
}

/// An object's `status.conditions` as the writer reads them (`type`, `status`,
/// `lastTransitionTime`): what the key store keeps of each of 10,000 ApiKeys, and what the
/// writer keeps of a write in flight. The conditions the controller writes (a known type,
/// `True` or `False`, a transition time in whole seconds) take 8 bytes each; anything else
/// is kept as its JSON text. Either reads back as the same JSON.
#[derive(Debug)]
pub(crate) enum KeptConditions {
    Absent,
    /// Up to [`COMPACT`] conditions in place (an ApiKey has three), [`KeptCondition::VACANT`]
    /// after the last: a key's status takes no allocation of its own, and a status write
    /// (ours, on every key) replaces it where it is.
    Compact([KeptCondition; COMPACT]),
    Text(Box<str>),
}

/// How many conditions [`KeptConditions::Compact`] holds: one of each type.
const COMPACT: usize = TYPES.len();

/// One condition the controller wrote, in one word: its type (an index into [`TYPES`], the
/// low 3 bits), status (bit 3) and `lastTransitionTime` (seconds since the epoch, the bits
/// above; a time of years -9999 to 9999 takes 39 of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeptCondition(i64);

/// The condition types the controller writes.
const TYPES: [&str; 4] = [
    types::ACCEPTED,
    types::RESOLVED_REFS,
    types::READY,
    types::OPEN_API_IMPORTED,
];

impl KeptConditions {
    pub(crate) fn of(conditions: &Value) -> KeptConditions {
        let Some(all) = conditions.as_array() else {
            return KeptConditions::Absent;
        };
        let compact = (all.len() <= COMPACT)
            .then(|| {
                let mut compact = [KeptCondition::VACANT; COMPACT];
                for (slot, c) in compact.iter_mut().zip(all) {
                    *slot = KeptCondition::of(c)?;
                }
                Some(compact)
            })
            .flatten();
        compact.map(KeptConditions::Compact).unwrap_or_else(|| {
            let read: Vec<Value> = all
                .iter()
                .map(|c| {
                    let field = |f: &str| c.get(f).cloned().unwrap_or(Value::Null);
                    json!({
                        "type": field("type"),
                        "status": field("status"),
                        "lastTransitionTime": field("lastTransitionTime"),
                    })
                })
                .collect();
            KeptConditions::Text(Value::Array(read).to_string().into_boxed_str())
        })
    }

    pub(crate) fn value(&self) -> Value {
        match self {
            KeptConditions::Absent => Value::Null,
            KeptConditions::Compact(all) => all
                .iter()
                .take_while(|c| **c != KeptCondition::VACANT)
                .map(KeptCondition::value)
                .collect(),
            KeptConditions::Text(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        }
    }
}

impl KeptCondition {
    /// No condition: type 7, which [`TYPES`] does not have, so no condition packs to it.
    const VACANT: KeptCondition = KeptCondition(7);

    /// `c` in 8 bytes, when it reads back exactly.
    fn of(c: &Value) -> Option<KeptCondition> {
        let type_ = c.get("type")?.as_str()?;
        let type_ = TYPES.iter().position(|t| *t == type_)?;
        let status = match c.get("status")?.as_str()? {
            "True" => true,
            "False" => false,
            _ => return None,
        };
        let time = c.get("lastTransitionTime")?.as_str()?;
        let since: Timestamp = time.parse().ok()?;
        let kept = KeptCondition::new(type_, status, since.as_second())?;
        (kept.time()?.as_str() == time).then_some(kept)
    }

    /// The three packed, when the type is one of [`TYPES`] and the time fits.
    fn new(type_: usize, status: bool, since: i64) -> Option<KeptCondition> {
        let type_ = i64::try_from(type_).ok().filter(|t| *t < 8)?;
        let packed = since.checked_mul(16)? | i64::from(status) << 3 | type_;
        Some(KeptCondition(packed))
    }

    fn type_(self) -> &'static str {
        TYPES[(self.0 & 7) as usize]
    }

    fn status(self) -> bool {
        self.0 & 8 != 0
    }

    fn since(self) -> i64 {
        self.0 >> 4
    }

    fn time(&self) -> Option<String> {
        let t = Timestamp::from_second(self.since()).ok()?;
        Some(t.strftime(TIME_FORMAT).to_string())
    }

    fn value(&self) -> Value {
        json!({
            "type": self.type_(),
            "status": if self.status() { "True" } else { "False" },
            "lastTransitionTime": self.time(),
        })
    }
}

/// Where the writer reads the objects' current status (the reflector stores).
pub trait CurrentStatus: Send + Sync + 'static {
    fn current(&self, kind: Kind, key: &ObjectKey) -> Option<Current>;

    /// The objects whose entry changed since the last call (see [`Changed`]).
    fn take_changed(&self) -> ChangedSince;
}

/// The objects whose reflector entry changed since the status writer last asked: the reflector
/// tasks [`Changed::mark`] each object an event brings, after the store has it, and the writer
/// [`Changed::take`]s them on every outcome. Keys of every kind share one set (an ApiKey and a
/// Stage of the same name mark each other, which only costs a look).
#[derive(Debug, Default)]
pub struct Changed(RwLock<ChangedSince>);

/// What [`Changed::take`] returns.
#[derive(Debug, Default)]
pub struct ChangedSince {
    /// A watch listed again (its store may have dropped or replaced any object).
    everything: bool,
    objects: HashSet<ObjectKey>,
}

impl Changed {
    fn lock(&self) -> std::sync::RwLockWriteGuard<'_, ChangedSince> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The object `key` changed (or is gone).
    pub fn mark(&self, key: ObjectKey) {
        let mut c = self.lock();
        if !c.everything {
            c.objects.insert(key);
        }
    }

    /// Any object may have changed.
    pub fn mark_everything(&self) {
        let mut c = self.lock();
        c.everything = true;
        c.objects = HashSet::new();
    }

    /// What changed since the last call.
    pub fn take(&self) -> ChangedSince {
        std::mem::take(&mut *self.lock())
    }
}

impl ChangedSince {
    pub fn contains(&self, key: &ObjectKey) -> bool {
        self.everything || self.objects.contains(key)
    }
}

/// A compile outcome, compared and hashed by address: the same `Arc` is the same outcome.
#[derive(Debug)]
struct Same<T>(Arc<T>);

impl<T> PartialEq for Same<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T> Eq for Same<T> {}

impl<T> Hash for Same<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state);
    }
}

/// The statuses the last outcome found already written (the object's status in the store, or
/// our write of it not yet seen there), by address: the updates, and the table entries of
/// the served keys (which hold theirs). Holding the `Arc`s keeps an address from being
/// reused by another outcome. Two sets of single pointers rather than one of [`Status`]es:
/// half the room for 10,000 keys.
#[derive(Debug, Default)]
struct Settled {
    updates: HashSet<Same<StatusUpdate>>,
    keys: HashSet<Same<KeyEntry>>,
}

impl Settled {
    fn with_capacity(n: usize) -> Self {
        Settled {
            updates: HashSet::new(),
            keys: HashSet::with_capacity(n),
        }
    }

    fn contains(&self, status: &Status) -> bool {
        match status {
            Status::Update(u) => self.updates.contains(&Same(u.clone())),
            Status::Key(e) => self.keys.contains(&Same(e.clone())),
        }
    }

    fn insert(&mut self, status: &Status) {
        match status {
            Status::Update(u) => self.updates.insert(Same(u.clone())),
            Status::Key(e) => self.keys.insert(Same(e.clone())),
        };
    }

    fn clear(&mut self) {
        self.updates.clear();
        self.keys.clear();
    }
}

/// The status to apply: compile's fields and conditions, with `observedGeneration` and
/// `lastTransitionTime` (kept from `previous` — the object's `status.conditions` — for a
/// condition whose status did not change; `now` otherwise).
pub fn desired_status(update: &StatusUpdate, previous: &Value, now: &str, snapshot: Option<&str>) -> Value {
    let mut out = match serde_json::to_value(&update.fields) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if let Some(s) = snapshot {
        out.insert("snapshot".into(), Value::String(s.to_string()));
    }
    let conditions: Vec<Value> = update
        .conditions
        .iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let kept = previous
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p.get("type").and_then(Value::as_str) == Some(c.type_))
                .filter(|p| p.get("status").and_then(Value::as_str) == Some(status))
                .and_then(|p| p.get("lastTransitionTime"))
                .and_then(Value::as_str);
            json!({
                "type": c.type_,
                "status": status,
                "reason": c.reason,
                "message": c.message,
                "observedGeneration": update.observed_generation,
                "lastTransitionTime": kept.unwrap_or(now),
            })
        })
        .collect();
    out.insert("conditions".into(), Value::Array(conditions));
    Value::Object(out)
}

/// The server-side apply body for a status.
pub fn status_patch(kind: Kind, key: &ObjectKey, status: &Value) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": format!("{kind:?}"),
        "metadata": {"name": key.name, "namespace": key.namespace},
        "status": status,
    })
}

/// How Kubernetes writes `metav1.Time`: RFC 3339, whole seconds, UTC.
pub(crate) const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// Now, as Kubernetes writes `metav1.Time`.
pub fn now_rfc3339() -> String {
    Timestamp::now().strftime(TIME_FORMAT).to_string()
}

/// One status write to make.
struct Job {
    kind: Kind,
    key: ObjectKey,
    uid: String,
    desired: Compact,
    /// What is kept of the write once it is made.
    conditions: KeptConditions,
    digest: StatusDigest,
    event: Option<kube::runtime::events::Event>,
}

/// A status as JSON text: the writes of a rebuild that created 10,000 keys are held in a
/// fraction of the memory of their `Value`s (a map node per object). Read back into a `Value`
/// to be sent.
#[derive(Debug, Clone)]
struct Compact(Box<str>);

impl Compact {
    fn of(status: &Value) -> Self {
        Compact(status.to_string().into_boxed_str())
    }

    fn value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

/// The writes in flight the writer keeps room for without shrinking its map.
const WRITTEN_ROOM: usize = 64;

/// The leader's writer.
pub struct Writer<S> {
    client: Client,
    stores: S,
    metrics: Arc<ControllerMetrics>,
    recorder: events::Publisher,
    /// What we last wrote per object (uid, its conditions, the status's digest) until the
    /// store shows it: this
    /// keeps us from writing it twice or repeating its Event meanwhile.
    written: HashMap<(Kind, ObjectKey), (String, KeptConditions, StatusDigest)>,
    settled: Settled,
}

/// What [`Writer::plan`] found.
enum Plan {
    /// The status is what compile says (in the store, or as we wrote it).
    Settled,
    Write(Box<Job>),
    /// The object is not in the store.
    Unknown,
}

impl<S: CurrentStatus> Writer<S> {
    pub fn new(client: Client, stores: S, metrics: Arc<ControllerMetrics>, identity: &str) -> Self {
        let recorder = events::Publisher::new(
            client.clone(),
            Reporter {
                controller: "turnpike".into(),
                instance: Some(identity.to_string()),
            },
        );
        Writer {
            client,
            stores,
            metrics,
            recorder,
            written: HashMap::new(),
            settled: Settled::default(),
        }
    }

    /// Writes outcomes while leading, until the channels close.
    pub async fn run(
        mut self,
        mut outcomes: watch::Receiver<Arc<Outcome>>,
        mut leader: watch::Receiver<bool>,
    ) {
        // After a failed write, the same outcome is written again with a doubling backoff
        // (controller-rs' error policy), until it succeeds or a newer outcome replaces it.
        let mut retry: Option<Duration> = None;
        loop {
            let backoff = retry.unwrap_or(RETRY_MAX);
            tokio::select! {
                r = outcomes.changed() => {
                    if r.is_err() { return }
                    retry = None;
                }
                r = leader.changed() => {
                    if r.is_err() { return }
                    // A new term starts from what the cluster says, not from what we wrote
                    // in an earlier one.
                    self.forget();
                    retry = None;
                    continue;
                }
                _ = tokio::time::sleep(backoff), if retry.is_some() => {}
            }
            let outcome = outcomes.borrow_and_update().clone();
            if !*leader.borrow() || !outcome.leader {
                // What changed meanwhile is of no use to a writer that will start afresh.
                self.forget();
                continue;
            }
            retry = if self.write(&outcome, &leader).await {
                None
            } else {
                Some(retry.map_or(RETRY_FIRST, |d| (d * 2).min(RETRY_MAX)))
            };
        }
    }

    /// Writes an outcome; false when some write failed (to be retried).
    #[instrument(skip_all, fields(version = outcome.version))]
    async fn write(&mut self, outcome: &Outcome, leader: &watch::Receiver<bool>) -> bool {
        let mut ok = true;
        for cm in &outcome.snapshots {
            if let Err(e) = self.record_snapshot(cm).await {
                ok = false;
                self.metrics.failure(&e);
                warn!(error = %e, "recording a snapshot");
            }
        }
        for g in &outcome.generated {
            if let Err(e) = self.generate_secret(g).await {
                ok = false;
                self.metrics.failure(&e);
                warn!(error = %e, api_key = %g.api_key, "creating a generated API key Secret");
            }
        }
        let jobs = self.jobs(outcome, &now_rfc3339());
        if jobs.is_empty() {
            return ok;
        }
        debug!(writes = jobs.len(), "writing status");
        let client = self.client.clone();
        // Each write's job is done with (and dropped) as soon as the write is: a burst of
        // 10,000 holds no second copy of them while the last are in flight.
        let mut results = stream::iter(jobs)
            .map(|job| {
                let client = client.clone();
                let leading = *leader.borrow();
                async move {
                    if !leading {
                        return (job, Ok(()));
                    }
                    let r = patch_status(&client, job.kind, &job.key, &job.desired.value()).await;
                    (job, r)
                }
            })
            .buffer_unordered(CONCURRENT_WRITES);
        while let Some((job, result)) = results.next().await {
            match result {
                Ok(()) => {
                    self.metrics.status_written();
                    if let Some(ev) = &job.event {
                        let reference = events::reference(job.kind, &job.key, &job.uid);
                        if let Err(e) = self.recorder.publish(ev, &reference).await {
                            let e = Error::Event(e);
                            self.metrics.failure(&e);
                            debug!(error = %e, "publishing an event");
                        }
                    }
                    self.written
                        .insert((job.kind, job.key), (job.uid, job.conditions, job.digest));
                }
                Err(e) => {
                    ok = false;
                    self.metrics.failure(&e);
                    warn!(error = %e, "writing status");
                }
            }
        }
        ok
    }

    /// Forgets what this writer knows of the objects: the next outcome looks at every one.
    fn forget(&mut self) {
        self.written.clear();
        self.settled.clear();
        self.stores.take_changed();
    }

    /// The writes `outcome` needs. An update of the last outcome that was settled then, of an
    /// object the reflector has not changed since, is settled still: it is passed over
    /// without a look at the store.
    fn jobs(&mut self, outcome: &Outcome, now: &str) -> Vec<Job> {
        let changed = self.stores.take_changed();
        let last = std::mem::replace(&mut self.settled, Settled::with_capacity(outcome.statuses.len()));
        let mut jobs = Vec::new();
        for status in &outcome.statuses {
            let snapshot = match status.kind() {
                Kind::Deployment => outcome.snapshot_names.get(status.object()),
                _ => None,
            };
            let unchanged = snapshot.is_none() && !changed.contains(status.object());
            if unchanged && last.contains(status) {
                self.settled.insert(status);
                continue;
            }
            match self.plan(&status.update(), now, snapshot) {
                Plan::Settled if snapshot.is_none() => {
                    self.settled.insert(status);
                }
                Plan::Write(job) => jobs.push(*job),
                Plan::Settled | Plan::Unknown => {}
            }
        }
        // The writes of a burst (10,000 keys created) are forgotten once the store shows
        // them; the room the map grew for them goes with them.
        if self.written.capacity() > 2 * self.written.len() + WRITTEN_ROOM {
            self.written.shrink_to_fit();
        }
        jobs
    }

    /// The write an update needs, if any.
    fn plan(&mut self, update: &StatusUpdate, now: &str, snapshot: Option<&String>) -> Plan {
        // Without `usage`, which belongs to the usage summaries' own field manager.
        let Some(current) = self.stores.current(update.kind, &update.object) else {
            return Plan::Unknown;
        };
        let key = (update.kind, update.object.clone());
        // Once the store shows what we wrote (or the object was recreated), the store says
        // it all: forget our copy, so only writes in flight are held twice.
        let cached = match self.written.get(&key) {
            Some((uid, _, digest)) if *uid != current.uid || *digest == current.digest => {
                self.written.remove(&key);
                None
            }
            Some((_, conditions, digest)) => Some((conditions.value(), *digest)),
            None => None,
        };
        let previous = match &cached {
            Some((conditions, _)) => conditions,
            None => &current.conditions,
        };
        let desired = desired_status(update, previous, now, snapshot.map(String::as_str));
        let digest = StatusDigest::of(&desired);
        if digest == current.digest || cached.as_ref().is_some_and(|(_, d)| *d == digest) {
            return Plan::Settled;
        }
        let event = events::ready_transition(previous, update);
        Plan::Write(Box::new(Job {
            kind: update.kind,
            key: update.object.clone(),
            uid: current.uid,
            conditions: KeptConditions::of(&desired["conditions"]),
            desired: Compact::of(&desired),
            digest,
            event,
        }))
    }

    async fn record_snapshot(&self, cm: &ConfigMap) -> Result<(), Error> {
        let ns = cm.namespace().unwrap_or_default();
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
        match api.create(&PostParams::default(), cm).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_already_exists() => return Ok(()),
            Err(source) => {
                return Err(Error::Snapshot {
                    namespace: ns,
                    name: cm.name_any(),
                    source,
                });
            }
        }
        if let Some(owner) = cm.owner_references().first() {
            let key = ObjectKey::new(ns, owner.name.clone());
            let digest = cm
                .annotations()
                .get(DIGEST_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            let ev = events::snapshot_recorded(&cm.name_any(), &digest);
            let reference = events::reference(Kind::Deployment, &key, &owner.uid);
            if let Err(e) = self.recorder.publish(&ev, &reference).await {
                debug!(error = %e, "publishing an event");
            }
        }
        Ok(())
    }

    async fn generate_secret(&self, g: &GeneratedSecret) -> Result<(), Error> {
        let ns = g.api_key.namespace.to_string();
        let value: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(40)
            .map(char::from)
            .collect();
        // As `Resource::controller_owner_ref` makes it for the ApiKey.
        let owner = OwnerReference {
            api_version: ApiKey::api_version(&()).into_owned(),
            kind: ApiKey::kind(&()).into_owned(),
            name: g.api_key.name.to_string(),
            uid: g.uid.clone(),
            controller: Some(true),
            ..Default::default()
        };
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(g.secret.clone()),
                namespace: Some(ns.clone()),
                owner_references: Some(vec![owner]),
                labels: Some(BTreeMap::from([(
                    "turnpike.dev/api-key".to_string(),
                    g.api_key.name.to_string(),
                )])),
                ..Default::default()
            },
            string_data: Some(BTreeMap::from([(GENERATED_SECRET_KEY.to_string(), value)])),
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(()),
            Err(e) => Err(Error::Kube(e)),
        }
    }
}

/// Applies `status` to an object's status subresource.
pub async fn patch_status(client: &Client, kind: Kind, key: &ObjectKey, status: &Value) -> Result<(), Error> {
    patch_status_as(client, FIELD_MANAGER, kind, key, status).await
}

/// [`patch_status`] under another field manager (the usage summaries own `status.usage`).
pub async fn patch_status_as(
    client: &Client,
    manager: &str,
    kind: Kind,
    key: &ObjectKey,
    status: &Value,
) -> Result<(), Error> {
    let body = status_patch(kind, key, status);
    let r = match kind {
        Kind::RestApi => apply::<RestApi>(client, manager, key, &body).await,
        Kind::Deployment => apply::<Deployment>(client, manager, key, &body).await,
        Kind::Stage => apply::<Stage>(client, manager, key, &body).await,
        Kind::UsagePlan => apply::<UsagePlan>(client, manager, key, &body).await,
        Kind::ApiKey => apply::<ApiKey>(client, manager, key, &body).await,
    };
    r.map_err(|source| Error::Status {
        kind: kind_name(kind),
        namespace: key.namespace.to_string(),
        name: key.name.to_string(),
        source,
    })
}

async fn apply<K>(client: &Client, manager: &str, key: &ObjectKey, body: &Value) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    // The answer (the whole object) is not read.
    let api: Api<Unread<K>> = Api::namespaced(client.clone(), &key.namespace);
    let pp = PatchParams::apply(manager).force();
    match api.patch_status(&key.name, &pp, &Patch::Apply(body)).await {
        Ok(_) => Ok(()),
        // Deleted since the rebuild: nothing to say any more.
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::RestApi => "RestApi",
        Kind::Deployment => "Deployment",
        Kind::Stage => "Stage",
        Kind::UsagePlan => "UsagePlan",
        Kind::ApiKey => "ApiKey",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use turnpike_api::conditions::{reasons, types};
    use turnpike_core::compile::{Cond, OtherFields, StatusFields};

    fn update(ready: bool) -> StatusUpdate {
        StatusUpdate {
            kind: Kind::Stage,
            object: ObjectKey::new("shop", "prod"),
            observed_generation: 3,
            conditions: Arc::new([
                Cond::ok(types::ACCEPTED, reasons::ACCEPTED, "the spec is valid"),
                if ready {
                    Cond::ok(types::READY, reasons::READY, "ready")
                } else {
                    Cond::fail(
                        types::READY,
                        reasons::DEPLOYMENT_NOT_FOUND,
                        "spec.deploymentRef: gone",
                    )
                },
            ]),
            fields: StatusFields {
                other: Some(Box::new(OtherFields {
                    deployment_id: Some("abc123".into()),
                    invoke_url: Some("https://x/prod".into()),
                    ..Default::default()
                })),
                ..Default::default()
            },
        }
    }

    #[test]
    fn new_conditions_get_now_and_the_generation() {
        let s = desired_status(&update(true), &Value::Null, "2026-01-01T00:00:00Z", None);
        assert_eq!(s["deploymentId"], "abc123");
        assert_eq!(s["invokeUrl"], "https://x/prod");
        assert!(s.get("canaryDeploymentId").is_none());
        let c = &s["conditions"][1];
        assert_eq!(c["type"], "Ready");
        assert_eq!(c["status"], "True");
        assert_eq!(c["observedGeneration"], 3);
        assert_eq!(c["lastTransitionTime"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn transition_time_is_kept_while_the_status_holds_and_reset_when_it_flips() {
        let before = desired_status(&update(true), &Value::Null, "T1", None);
        let same = desired_status(&update(true), &before["conditions"], "T2", None);
        assert_eq!(same, before, "nothing changed, so nothing to write");
        let flipped = desired_status(&update(false), &before["conditions"], "T3", None);
        assert_eq!(flipped["conditions"][0]["lastTransitionTime"], "T1");
        assert_eq!(flipped["conditions"][1]["lastTransitionTime"], "T3");
        assert_eq!(flipped["conditions"][1]["reason"], "DeploymentNotFound");
    }

    #[test]
    fn a_message_change_keeps_the_transition_time() {
        let before = desired_status(&update(false), &Value::Null, "T1", None);
        let mut u = update(false);
        let mut conditions = u.conditions.to_vec();
        conditions[1].message = "spec.deploymentRef: still gone".into();
        u.conditions = conditions.into();
        let after = desired_status(&u, &before["conditions"], "T2", None);
        assert_eq!(after["conditions"][1]["lastTransitionTime"], "T1");
        assert_ne!(after, before);
    }

    #[test]
    fn the_patch_names_the_object_and_carries_only_status() {
        let s = desired_status(&update(true), &Value::Null, "T", Some("turnpike-snapshot-abc123"));
        let p = status_patch(Kind::Stage, &ObjectKey::new("shop", "prod"), &s);
        assert_eq!(p["apiVersion"], "turnpike.dev/v1alpha1");
        assert_eq!(p["kind"], "Stage");
        assert_eq!(p["metadata"], json!({"name": "prod", "namespace": "shop"}));
        assert_eq!(p["status"]["snapshot"], "turnpike-snapshot-abc123");
        assert!(p.get("spec").is_none());
    }

    /// A digest tells values apart, types included, and not the order of an object's keys;
    /// `usage` is no part of what the writer compares.
    #[test]
    fn a_status_digest_is_of_the_value() {
        let d = |v: Value| StatusDigest::of(&v);
        assert_eq!(
            d(json!({"a": 1, "b": [true, null]})),
            d(json!({"b": [true, null], "a": 1}))
        );
        assert_ne!(d(json!({"a": 1})), d(json!({"a": "1"})));
        assert_ne!(d(json!({"a": [1, 2]})), d(json!({"a": [2, 1]})));
        assert_ne!(d(json!(["ab", "c"])), d(json!(["a", "bc"])));
        assert_ne!(d(json!({"a": null})), d(json!({})));
        let with_usage = Current::of("u".into(), json!({"keyId": "k", "usage": [1], "conditions": [1]}));
        let without = Current::of("u".into(), json!({"keyId": "k", "conditions": [1]}));
        assert_eq!(with_usage, without);
        assert_eq!(without.conditions, json!([1]));
    }

    /// A store of statuses that counts its look-ups.
    #[derive(Default)]
    struct Fake {
        statuses: RwLock<HashMap<(Kind, ObjectKey), Value>>,
        changed: Changed,
        lookups: std::sync::atomic::AtomicUsize,
    }

    impl CurrentStatus for Fake {
        fn current(&self, kind: Kind, key: &ObjectKey) -> Option<Current> {
            self.lookups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let status = self.statuses.read().unwrap().get(&(kind, key.clone()))?.clone();
            Some(Current::of("uid".into(), status))
        }

        fn take_changed(&self) -> ChangedSince {
            self.changed.take()
        }
    }

    impl Fake {
        /// The object's status, as the store would show it.
        fn set(&self, kind: Kind, key: &ObjectKey, status: Value) {
            self.statuses.write().unwrap().insert((kind, key.clone()), status);
            self.changed.mark(key.clone());
        }

        fn lookups(&self) -> usize {
            self.lookups.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    fn writer() -> Writer<Fake> {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        Writer::new(
            client,
            Fake::default(),
            Arc::new(ControllerMetrics::default()),
            "test",
        )
    }

    fn key_update(name: &str) -> Arc<StatusUpdate> {
        Arc::new(StatusUpdate {
            kind: Kind::ApiKey,
            object: ObjectKey::new("shop", name),
            ..update(true)
        })
    }

    fn outcome(statuses: &[&Arc<StatusUpdate>]) -> Outcome {
        Outcome {
            leader: true,
            statuses: statuses.iter().map(|u| Status::Update(Arc::clone(u))).collect(),
            ..Default::default()
        }
    }

    /// An update settled by the last outcome, of an object that did not change since, is
    /// passed over without a look; any change of the object, another `Arc`, a relist or a new
    /// term looks again.
    #[tokio::test]
    async fn a_settled_update_of_an_unchanged_object_is_not_looked_at() {
        let mut w = writer();
        let (a, b) = (key_update("a"), key_update("b"));
        let written = |u: &StatusUpdate| desired_status(u, &Value::Null, "T0", None);
        w.stores.set(Kind::ApiKey, &a.object, written(&a));
        w.stores.set(Kind::ApiKey, &b.object, Value::Null);

        let jobs = w.jobs(&outcome(&[&a, &b]), "T1");
        assert_eq!(jobs.len(), 1, "b is written");
        assert_eq!(jobs[0].key, b.object);
        assert_eq!(w.stores.lookups(), 2);

        // Neither changed: a is passed over; b, not settled, is looked at again.
        let jobs = w.jobs(&outcome(&[&a, &b]), "T2");
        assert_eq!(jobs.len(), 1);
        assert_eq!(w.stores.lookups(), 3);

        // b's write shows in the store: both settled, then neither is looked at.
        w.stores.set(Kind::ApiKey, &b.object, written(&b));
        assert!(w.jobs(&outcome(&[&a, &b]), "T3").is_empty());
        assert_eq!(w.stores.lookups(), 4);
        assert!(w.jobs(&outcome(&[&a, &b]), "T4").is_empty());
        assert_eq!(w.stores.lookups(), 4, "nothing looked at");

        // Someone else changed a's status: looked at and written back.
        w.stores.set(Kind::ApiKey, &a.object, json!({"conditions": []}));
        let jobs = w.jobs(&outcome(&[&a, &b]), "T5");
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].key, a.object);
        assert_eq!(w.stores.lookups(), 5);
        w.stores.set(Kind::ApiKey, &a.object, written(&a));
        assert!(w.jobs(&outcome(&[&a, &b]), "T6").is_empty());
        let looked = w.stores.lookups();

        // An equal update in another `Arc` (compiled again): looked at, and found settled.
        let a2 = key_update("a");
        assert!(w.jobs(&outcome(&[&a2, &b]), "T7").is_empty());
        assert_eq!(w.stores.lookups(), looked + 1);

        // A relist may have changed anything.
        w.stores.changed.mark_everything();
        assert!(w.jobs(&outcome(&[&a2, &b]), "T8").is_empty());
        assert_eq!(w.stores.lookups(), looked + 3);
        w.stores.changed.mark(ObjectKey::new("shop", "b"));
        assert!(w.jobs(&outcome(&[&a2, &b]), "T9").is_empty());
        assert_eq!(w.stores.lookups(), looked + 4, "only b");

        // A new term starts afresh.
        w.forget();
        assert!(w.jobs(&outcome(&[&a2, &b]), "T10").is_empty());
        assert_eq!(w.stores.lookups(), looked + 6);
    }

    /// Conditions as the controller writes them are kept in 8 bytes each; any other
    /// condition (an unknown type or status, a time with a fraction or an offset, a missing
    /// field) keeps its JSON text; both read back as the JSON they were read from.
    #[test]
    fn kept_conditions_read_back_as_they_were() {
        assert_eq!(std::mem::size_of::<KeptCondition>(), 8);
        let written = json!([
            {"type": "Accepted", "status": "True", "lastTransitionTime": "2026-12-04T10:00:00Z"},
            {"type": "Ready", "status": "False", "lastTransitionTime": "1970-01-01T00:00:00Z"},
            {"type": "ResolvedRefs", "status": "True", "lastTransitionTime": "1969-12-31T23:59:59Z"},
            {"type": "OpenApiImported", "status": "False", "lastTransitionTime": "9999-12-30T00:00:00Z"},
        ]);
        let kept = KeptConditions::of(&written);
        assert!(matches!(kept, KeptConditions::Compact(_)), "{kept:?}");
        assert_eq!(kept.value(), written);
        for odd in [
            json!({"type": "Degraded", "status": "True", "lastTransitionTime": "2026-12-04T10:00:00Z"}),
            json!({"type": "Ready", "status": "Unknown", "lastTransitionTime": "2026-12-04T10:00:00Z"}),
            json!({"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-04T10:00:00.5Z"}),
            json!({"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-04T11:00:00+01:00"}),
            json!({"type": "Ready", "status": "True"}),
        ] {
            let all = json!([written[0].clone(), odd.clone()]);
            let kept = KeptConditions::of(&all);
            assert!(matches!(kept, KeptConditions::Text(_)), "{odd}");
            let mut expected = odd.clone();
            if expected.get("lastTransitionTime").is_none() {
                expected["lastTransitionTime"] = Value::Null;
            }
            assert_eq!(kept.value(), json!([written[0].clone(), expected]), "{odd}");
        }
        // In place: one of each type at most; more than that keeps the text.
        let five = json!([written[0], written[1], written[2], written[3], written[0]]);
        let kept = KeptConditions::of(&five);
        assert!(matches!(kept, KeptConditions::Text(_)));
        assert_eq!(kept.value(), five);
        let three = json!([written[0], written[2], written[1]]);
        assert_eq!(KeptConditions::of(&three).value(), three);
        assert_eq!(KeptConditions::of(&Value::Null).value(), Value::Null);
        assert_eq!(KeptConditions::of(&json!([])).value(), json!([]));
    }

    /// A write the reflector has not shown yet is held (its conditions and digest): it is not
    /// made twice, and it is forgotten once the store shows it.
    #[tokio::test]
    async fn a_write_in_flight_is_not_made_twice() {
        let mut w = writer();
        let a = key_update("a");
        w.stores.set(Kind::ApiKey, &a.object, Value::Null);
        let mut jobs = w.jobs(&outcome(&[&a]), "T1");
        assert_eq!(jobs.len(), 1);
        let job = jobs.remove(0);
        let desired = job.desired.value();
        assert_eq!(
            desired,
            desired_status(&a, &Value::Null, "T1", None),
            "read back whole"
        );
        w.written
            .insert((job.kind, job.key), (job.uid, job.conditions, job.digest));

        // Compiled again before the reflector shows the write: nothing to write, and the
        // transition time is the one written.
        let again = key_update("a");
        w.stores.changed.mark(a.object.clone());
        assert!(w.jobs(&outcome(&[&again]), "T2").is_empty());
        assert_eq!(w.written.len(), 1);

        w.stores.set(Kind::ApiKey, &a.object, desired);
        assert!(w.jobs(&outcome(&[&again]), "T3").is_empty());
        assert!(w.written.is_empty(), "the store says it all");
    }

    /// Once the store shows a burst of writes, the writer holds neither them nor the room
    /// they took.
    #[tokio::test]
    async fn a_burst_of_writes_leaves_no_room_behind() {
        let mut w = writer();
        let keys: Vec<Arc<StatusUpdate>> = (0..1000).map(|i| key_update(&format!("k{i}"))).collect();
        for k in &keys {
            w.stores.set(Kind::ApiKey, &k.object, Value::Null);
        }
        let all: Vec<&Arc<StatusUpdate>> = keys.iter().collect();
        let jobs = w.jobs(&outcome(&all), "T1");
        assert_eq!(jobs.len(), 1000);
        for job in jobs {
            w.stores.set(job.kind, &job.key, job.desired.value());
            w.written
                .insert((job.kind, job.key), (job.uid, job.conditions, job.digest));
        }
        assert!(w.written.capacity() >= 1000);
        assert!(w.jobs(&outcome(&all), "T2").is_empty(), "every write is seen");
        assert!(w.written.is_empty());
        assert!(w.written.capacity() <= WRITTEN_ROOM, "{}", w.written.capacity());
    }

    /// A Deployment's snapshot name is looked at on every outcome (it is not part of the
    /// update), and only a Deployment gets one.
    #[tokio::test]
    async fn a_snapshot_is_a_deployments_and_is_always_looked_at() {
        let mut w = writer();
        let deployment = Arc::new(StatusUpdate {
            kind: Kind::Deployment,
            ..update(true)
        });
        let key = key_update("prod");
        let name = "turnpike-snapshot-abc123".to_string();
        let snapshot = desired_status(&deployment, &Value::Null, "T0", Some(&name));
        w.stores.set(Kind::Deployment, &deployment.object, snapshot);
        let plain = desired_status(&key, &Value::Null, "T0", None);
        w.stores.set(Kind::ApiKey, &key.object, plain);
        let mut o = outcome(&[&deployment, &key]);
        o.snapshot_names.insert(deployment.object.clone(), name);
        assert!(
            w.jobs(&o, "T1").is_empty(),
            "the ApiKey of the same name has no snapshot"
        );
        assert!(w.jobs(&o, "T2").is_empty());
        assert_eq!(w.stores.lookups(), 3, "the Deployment twice, the ApiKey once");
    }

    #[test]
    fn now_is_whole_seconds_utc() {
        let n = now_rfc3339();
        assert_eq!(n.len(), 20, "{n}");
        assert!(n.ends_with('Z'));
    }
}
