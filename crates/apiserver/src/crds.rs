//! CustomResourceDefinition lifecycle: a stored CRD becomes served (the registry is rebuilt)
//! and gets its `NamesAccepted` and `Established` conditions; a deleted CRD takes its custom
//! objects with it.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{
    errors::Result,
    objects::{meta_str, now},
    registry::{GroupResource, ResourceType},
    server::State,
    store::Write,
};

fn condition(kind: &str, reason: &str, message: &str, time: &str) -> Value {
    json!({"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": time})
}

/// Serves a CRD that was just written and records its conditions. Returns the stored CRD.
pub fn established(st: &State, rt: &ResourceType, crd: &Arc<Value>) -> Result<Arc<Value>> {
    st.refresh_registry();
    let name = meta_str(crd, "name").unwrap_or_default().to_string();
    let (stored, _) = st.store.write(&rt.gr(), "", &name, false, |cur| {
        let Some(cur) = cur else { return Ok(Write::Unchanged(crd.clone())) };
        let mut next = (**cur).clone();
        let names = next["spec"]["names"].clone();
        let versions: Vec<Value> = next["spec"]["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["storage"].as_bool() == Some(true))
            .map(|v| v["name"].clone())
            .collect();
        let t = now();
        let keep_time = |kind: &str| {
            cur.pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
                .and_then(|c| c["lastTransitionTime"].as_str())
                .map(String::from)
                .unwrap_or_else(|| t.clone())
        };
        next["status"] = json!({
            "acceptedNames": names,
            "storedVersions": versions,
            "conditions": [
                condition("NamesAccepted", "NoConflicts", "no conflicts found", &keep_time("NamesAccepted")),
                condition("Established", "InitialNamesAccepted", "the initial names have been accepted", &keep_time("Established")),
            ],
        });
        if next == **cur { Ok(Write::Unchanged(cur.clone())) } else { Ok(Write::Put(next)) }
    })?;
    Ok(stored)
}

/// Removes every custom object of a deleted CRD and stops serving it.
pub fn removed(st: &State, crd: &Value) {
    let gr = GroupResource {
        group: crd["spec"]["group"].as_str().unwrap_or_default().to_string(),
        resource: crd["spec"]["names"]["plural"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    let (objs, _) = st.store.list(&gr, None);
    for o in objs {
        let ns = meta_str(&o, "namespace").unwrap_or_default().to_string();
        let name = meta_str(&o, "name").unwrap_or_default().to_string();
        let _ = st.store.write(&gr, &ns, &name, false, |cur| {
            Ok(if cur.is_some() {
                Write::Delete
            } else {
                Write::Unchanged(o.clone())
            })
        });
    }
    st.refresh_registry();
}
