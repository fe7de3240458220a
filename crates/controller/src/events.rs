//! Kubernetes Events for what users want to hear about: an object's `Ready` condition
//! changing (True→False with the reason, False→True), and a Deployment's snapshot being
//! recorded. Only the leader publishes, through [`Publisher`] (which folds repeats into a
//! series, as kube's `Recorder` does, remembering far less).

use k8s_openapi::{
    api::{
        core::v1::ObjectReference,
        events::v1::{Event as K8sEvent, EventSeries},
    },
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
    runtime::events::{Event, EventType, Reporter},
};
use serde_json::Value;

use turnpike_api::{GROUP, VERSION, conditions::types};
use turnpike_core::compile::{Kind, StatusUpdate};
use turnpike_core::model::ObjectKey;

/// The reference Events point at.
pub fn reference(kind: Kind, key: &ObjectKey, uid: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some(format!("{GROUP}/{VERSION}")),
        kind: Some(format!("{kind:?}")),
        name: Some(key.name.to_string()),
        namespace: Some(key.namespace.to_string()),
        uid: Some(uid.to_string()),
        ..Default::default()
    }
}

/// The Event for a change of `Ready` between the conditions an object had (`previous`, the
/// `status.conditions` array, or null) and the ones it gets, if any.
///
/// The first status an object gets counts as a change when it is not Ready, so a new object
/// that is not Ready says why in `kubectl describe` as well as in its conditions. A new
/// object that is Ready gets no Event: its condition says so, and a bulk apply (ten thousand
/// ApiKeys) would otherwise write as many Events, which the cluster keeps for an hour and
/// the recorder holds for its series.
pub fn ready_transition(previous: &Value, update: &StatusUpdate) -> Option<Event> {
    let new = update.condition(types::READY)?;
    let old = previous
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(types::READY));
    let old_status = old.and_then(|c| c.get("status")).and_then(Value::as_str);
    let new_status = if new.status { "True" } else { "False" };
    if old_status == Some(new_status) {
        return None;
    }
    let from = match old_status {
        Some(from) => from,
        None if new.status => return None,
        None => "Unknown",
    };
    Some(Event {
        type_: if new.status {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: new.reason.to_string(),
        note: Some(truncate(
            &format!("Ready {from}→{new_status}: {}", new.message),
            1000,
        )),
        action: "Reconcile".into(),
        secondary: None,
    })
}

/// The Event for a recorded snapshot.
pub fn snapshot_recorded(config_map: &str, digest: &str) -> Event {
    Event {
        type_: EventType::Normal,
        reason: "SnapshotRecorded".into(),
        note: Some(format!(
            "recorded the RestApi definition in ConfigMap {config_map:?} (sha256 {})",
            digest.get(..12).unwrap_or(digest)
        )),
        action: "RecordSnapshot".into(),
        secondary: None,
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use turnpike_core::compile::{Cond, StatusFields};

    fn update(ready: bool, reason: &'static str) -> StatusUpdate {
        StatusUpdate {
            kind: Kind::Stage,
            object: ObjectKey::new("shop", "prod"),
            observed_generation: 2,
            conditions: Arc::new([Cond {
                type_: types::READY,
                status: ready,
                reason,
                message: "because".into(),
            }]),
            fields: StatusFields::default(),
        }
    }

    #[test]
    fn a_drop_from_ready_is_a_warning_with_the_reason() {
        let prev = json!([{"type": "Ready", "status": "True", "reason": "Ready"}]);
        let ev = ready_transition(&prev, &update(false, "DeploymentNotFound")).expect("event");
        assert_eq!(ev.type_, EventType::Warning);
        assert_eq!(ev.reason, "DeploymentNotFound");
        assert_eq!(ev.note.as_deref(), Some("Ready True→False: because"));
    }

    #[test]
    fn no_change_no_event() {
        let prev = json!([{"type": "Ready", "status": "False", "reason": "X"}]);
        assert!(ready_transition(&prev, &update(false, "Y")).is_none());
    }

    #[test]
    fn a_first_status_is_an_event_only_when_not_ready() {
        let ev = ready_transition(&Value::Null, &update(false, "NotAccepted")).expect("event");
        assert_eq!(ev.type_, EventType::Warning);
        assert!(ev.note.unwrap().starts_with("Ready Unknown→False"));
        assert!(ready_transition(&Value::Null, &update(true, "Ready")).is_none());
        assert!(ready_transition(&json!([]), &update(true, "Ready")).is_none());
        // Recovering is news.
        let prev = json!([{"type": "Ready", "status": "False", "reason": "X"}]);
        let ev = ready_transition(&prev, &update(true, "Ready")).expect("event");
        assert_eq!(ev.type_, EventType::Normal);
        assert!(ev.note.unwrap().starts_with("Ready False→True"));
    }
}

/// Publishes Events as kube's `Recorder` does (`events.k8s.io/v1`, a repeat within
/// [`SERIES_TTL`] folded into the first one's series), remembering each series in 40 bytes
/// and at most [`MAX_SERIES`] of them.
///
/// Not kube's `Recorder` itself: it keeps every Event it published, whole (names, note,
/// references: several hundred bytes), for six minutes, with no bound. Ten thousand ApiKeys
/// created at once may each get two (not Ready while their Secret is not read yet, then
/// Ready): how many depends on how the creation races the Secret watch.
pub struct Publisher {
    client: kube::Client,
    reporter: Reporter,
    series: std::sync::RwLock<Series>,
}

/// How long a repeat joins the series of the first Event (kube's recorder: six minutes).
pub const SERIES_TTL: SignedDuration = SignedDuration::from_mins(6);
/// The most series remembered; past it, the oldest is forgotten (its next repeat starts a
/// new Event).
pub const MAX_SERIES: usize = 4096;

/// The series remembered, by a hash of what makes two Events the same (as kube's recorder
/// compares them: type, action, reason, reporter, the object and the related one).
#[derive(Debug, Default)]
pub struct Series(std::collections::HashMap<u64, Seen>);

/// One series: when its first Event was made (its name is the object's name and that time),
/// how many so far, and the last time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    first: Timestamp,
    count: i32,
    last: Timestamp,
}

impl Series {
    /// Notes an Event of key `key` at `now`: the series it joins (count and first time), or
    /// `None` for a new Event.
    pub fn note(&mut self, key: u64, now: Timestamp) -> Option<Seen> {
        let live = |s: &Seen| s.last + SERIES_TTL > now;
        if let Some(seen) = self.0.get_mut(&key).filter(|s| live(s)) {
            seen.count += 1;
            seen.last = now;
            return Some(*seen);
        }
        if self.0.len() >= MAX_SERIES {
            self.0.retain(|_, s| live(s));
        }
        if self.0.len() >= MAX_SERIES
            && let Some(oldest) = self.0.iter().min_by_key(|(_, s)| s.last).map(|(k, _)| *k)
        {
            self.0.remove(&oldest);
        }
        let first = Seen {
            first: now,
            count: 1,
            last: now,
        };
        self.0.insert(key, first);
        None
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Publisher {
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Publisher {
            client,
            reporter,
            series: Default::default(),
        }
    }

    /// What makes two Events one series.
    fn key(&self, ev: &Event, regarding: &ObjectReference) -> u64 {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (matches!(ev.type_, EventType::Warning), &ev.action, &ev.reason).hash(&mut h);
        (&self.reporter.controller, &self.reporter.instance).hash(&mut h);
        for r in std::iter::once(regarding).chain(&ev.secondary) {
            (&r.api_version, &r.kind, &r.namespace, &r.name, &r.uid).hash(&mut h);
            (&r.field_path, &r.resource_version).hash(&mut h);
        }
        h.finish()
    }

    /// The Event's name: the object's name and the time its series began, in hex nanoseconds.
    fn name(&self, regarding: &ObjectReference, first: Timestamp) -> String {
        let object = regarding.name.as_ref().unwrap_or(&self.reporter.controller);
        format!("{object}.{:x}", first.as_nanosecond())
    }

    /// Publishes `ev` about `regarding` (in its namespace, or `default`): a new Event, or the
    /// next of its series.
    pub async fn publish(&self, ev: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let seen = self
            .series
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .note(self.key(ev, regarding), now);
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        match seen {
            Some(seen) => {
                let patch = serde_json::json!({"series": EventSeries {
                    count: seen.count,
                    last_observed_time: MicroTime(now),
                }});
                let name = self.name(regarding, seen.first);
                events
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            None => {
                let event = K8sEvent {
                    action: Some(ev.action.clone()),
                    reason: Some(ev.reason.clone()),
                    event_time: Some(MicroTime(now)),
                    regarding: Some(regarding.clone()),
                    note: ev.note.clone(),
                    metadata: ObjectMeta {
                        namespace: regarding.namespace.clone(),
                        name: Some(self.name(regarding, now)),
                        ..Default::default()
                    },
                    reporting_controller: Some(self.reporter.controller.clone()),
                    reporting_instance: Some(
                        self.reporter
                            .instance
                            .clone()
                            .unwrap_or_else(|| self.reporter.controller.clone()),
                    ),
                    type_: Some(match ev.type_ {
                        EventType::Normal => "Normal".into(),
                        EventType::Warning => "Warning".into(),
                    }),
                    related: ev.secondary.clone(),
                    ..Default::default()
                };
                events.create(&PostParams::default(), &event).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod series_tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    /// A repeat within six minutes of the last joins the series; after, or for another key,
    /// an Event of its own.
    #[test]
    fn repeats_fold_into_a_series_for_six_minutes() {
        let mut series = Series::default();
        assert_eq!(series.note(1, at(0)), None);
        let second = series.note(1, at(300)).unwrap();
        assert_eq!((second.first, second.count, second.last), (at(0), 2, at(300)));
        assert_eq!(
            series.note(1, at(659)).unwrap().count,
            3,
            "six minutes after the last"
        );
        assert_eq!(series.note(2, at(660)), None);
        assert_eq!(series.note(1, at(659 + 360)), None, "too late: a new Event");
        assert_eq!(series.note(1, at(1020)).unwrap().first, at(659 + 360));
    }

    /// At most MAX_SERIES are remembered: expired ones go first, then the oldest.
    #[test]
    fn series_are_bounded() {
        let mut series = Series::default();
        let max = MAX_SERIES as i64;
        for k in 0..max {
            series.note(k as u64, at(k % 100));
        }
        assert_eq!(series.len(), MAX_SERIES);
        assert_eq!(series.note(u64::MAX, at(1000)), None);
        assert_eq!(series.len(), 1, "every other one had expired");

        // All live (a millisecond apart): the oldest goes.
        let mut series = Series::default();
        let ms = |k: i64| Timestamp::from_millisecond(1_800_002_000_000 + k).unwrap();
        for k in 0..max {
            series.note(k as u64, ms(k));
        }
        assert_eq!(series.len(), MAX_SERIES);
        assert_eq!(series.note(u64::MAX - 1, ms(max)), None);
        assert_eq!(series.len(), MAX_SERIES);
        assert_eq!(series.note(0, ms(max)), None, "the oldest was forgotten");
        assert_eq!(series.note(2, ms(max)).unwrap().count, 2);
    }
}
