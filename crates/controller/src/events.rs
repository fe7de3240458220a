//! Kubernetes Events for what users want to hear about: an object's `Ready` condition
//! changing (True→False with the reason, False→True), and a Deployment's snapshot being
//! recorded. Only the leader publishes, through `kube::runtime::events::Recorder` (which
//! folds repeats into a series).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType};
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
