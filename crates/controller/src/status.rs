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
//!    an object whose status is already what compile says is not written at all,
//! 4. publishes an Event when `Ready` changes.
//!
//! Followers drop outcomes. Outcomes computed while not leading are ignored even by a new
//! leader: the index rebuilds as soon as leadership changes, so the writer waits for an
//! outcome that includes the snapshots only a leader records.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
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
    runtime::events::{Recorder, Reporter},
};
use rand::{Rng as _, distr::Alphanumeric};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tracing::{debug, instrument, warn};

use crate::ingest::DIGEST_ANNOTATION;
use crate::{Error, FIELD_MANAGER, events, metrics::ControllerMetrics};
use turnpike_api::{ApiKey, Deployment, GROUP, RestApi, Stage, UsagePlan, VERSION};
use turnpike_core::compile::{Kind, StatusUpdate};
use turnpike_core::model::{GENERATED_SECRET_KEY, ObjectKey};

/// How many status patches are in flight at once.
const CONCURRENT_WRITES: usize = 16;
/// The first retry of a failed write, and the longest.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// A Secret to generate for an ApiKey without `valueFrom`.
#[derive(Clone, Debug)]
pub struct GeneratedSecret {
    pub api_key: Arc<ApiKey>,
    pub secret: String,
}

/// What a rebuild asks the leader to write.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Computed while leading (only those are written).
    pub leader: bool,
    /// The version of the table published with these statuses.
    pub version: u64,
    pub statuses: Vec<Arc<StatusUpdate>>,
    /// Snapshot ConfigMaps recorded by this rebuild, to create.
    pub snapshots: Vec<ConfigMap>,
    /// Deployment → the name of its snapshot ConfigMap (existing or recorded now).
    pub snapshot_names: BTreeMap<ObjectKey, String>,
    pub generated: Vec<GeneratedSecret>,
}

/// An object as the reflector last saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Current {
    pub uid: String,
    /// `status`, or null.
    pub status: Value,
}

/// Where the writer reads the objects' current status (the reflector stores).
pub trait CurrentStatus: Send + Sync + 'static {
    fn current(&self, kind: Kind, key: &ObjectKey) -> Option<Current>;
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

/// Now, as Kubernetes writes `metav1.Time` (RFC 3339, whole seconds, UTC).
pub fn now_rfc3339() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// One status write to make.
struct Job {
    kind: Kind,
    key: ObjectKey,
    uid: String,
    desired: Value,
    event: Option<kube::runtime::events::Event>,
}

/// The leader's writer.
pub struct Writer<S> {
    client: Client,
    stores: S,
    metrics: Arc<ControllerMetrics>,
    recorder: Recorder,
    /// What we last wrote per object (uid, status) until the reflector shows it: this keeps
    /// us from writing it twice or repeating its Event meanwhile.
    written: HashMap<(Kind, ObjectKey), (String, Value)>,
}

impl<S: CurrentStatus> Writer<S> {
    pub fn new(client: Client, stores: S, metrics: Arc<ControllerMetrics>, identity: &str) -> Self {
        let recorder = Recorder::new(
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
                    self.written.clear();
                    retry = None;
                    continue;
                }
                _ = tokio::time::sleep(backoff), if retry.is_some() => {}
            }
            let outcome = outcomes.borrow_and_update().clone();
            if !*leader.borrow() || !outcome.leader {
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
                warn!(error = %e, api_key = %g.api_key.name_any(), "creating a generated API key Secret");
            }
        }
        let now = now_rfc3339();
        let jobs: Vec<Job> = outcome
            .statuses
            .iter()
            .filter_map(|u| self.plan(u, &now, outcome.snapshot_names.get(&u.object)))
            .collect();
        if jobs.is_empty() {
            return ok;
        }
        debug!(writes = jobs.len(), "writing status");
        let client = self.client.clone();
        let results: Vec<(Job, Result<(), Error>)> = stream::iter(jobs)
            .map(|job| {
                let client = client.clone();
                let leading = *leader.borrow();
                async move {
                    if !leading {
                        return (job, Ok(()));
                    }
                    let r = patch_status(&client, job.kind, &job.key, &job.desired).await;
                    (job, r)
                }
            })
            .buffer_unordered(CONCURRENT_WRITES)
            .collect()
            .await;
        for (job, result) in results {
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
                    self.written.insert((job.kind, job.key), (job.uid, job.desired));
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

    /// The write an update needs, if any.
    fn plan(&mut self, update: &StatusUpdate, now: &str, snapshot: Option<&String>) -> Option<Job> {
        let mut current = self.stores.current(update.kind, &update.object)?;
        // `usage` belongs to the usage summaries' own field manager.
        if let Value::Object(m) = &mut current.status {
            m.remove("usage");
        }
        let key = (update.kind, update.object.clone());
        // Once the reflector shows what we wrote (or the object was recreated), the store
        // says it all: forget our copy, so only writes in flight are held twice.
        if self
            .written
            .get(&key)
            .is_some_and(|(uid, s)| *uid != current.uid || *s == current.status)
        {
            self.written.remove(&key);
        }
        let cached = self.written.get(&key).map(|(_, s)| s);
        let previous = cached.unwrap_or(&current.status);
        let desired = desired_status(
            update,
            previous.get("conditions").unwrap_or(&Value::Null),
            now,
            snapshot.map(String::as_str),
        );
        if desired == current.status || Some(&desired) == cached {
            return None;
        }
        let event = events::ready_transition(previous.get("conditions").unwrap_or(&Value::Null), update);
        Some(Job {
            kind: update.kind,
            key: update.object.clone(),
            uid: current.uid,
            desired,
            event,
        })
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
        let ns = g.api_key.namespace().unwrap_or_default();
        let value: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(40)
            .map(char::from)
            .collect();
        let owner: Option<OwnerReference> = g.api_key.controller_owner_ref(&());
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(g.secret.clone()),
                namespace: Some(ns.clone()),
                owner_references: owner.map(|o| vec![o]),
                labels: Some(BTreeMap::from([(
                    "turnpike.dev/api-key".to_string(),
                    g.api_key.name_any(),
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
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        source,
    })
}

async fn apply<K>(client: &Client, manager: &str, key: &ObjectKey, body: &Value) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &key.namespace);
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
    use turnpike_core::compile::{Cond, StatusFields};

    fn update(ready: bool) -> StatusUpdate {
        StatusUpdate {
            kind: Kind::Stage,
            object: ObjectKey::new("shop", "prod"),
            observed_generation: 3,
            conditions: vec![
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
            ],
            fields: StatusFields {
                deployment_id: Some("abc123".into()),
                invoke_url: Some("https://x/prod".into()),
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
        u.conditions[1].message = "spec.deploymentRef: still gone".into();
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

    #[test]
    fn now_is_whole_seconds_utc() {
        let n = now_rfc3339();
        assert_eq!(n.len(), 20, "{n}");
        assert!(n.ends_with('Z'));
    }
}
