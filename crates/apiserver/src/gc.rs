//! The garbage collector: deletes dependents whose owners are gone (background propagation),
//! finishes foreground deletions, and empties terminating namespaces before removing them.
//! It wakes on deletions (debounced) and sweeps every few seconds regardless.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use serde_json::Value;

use super::{
    handlers::deletion,
    objects::{meta_mut, meta_str},
    registry::{GroupResource, ResourceType},
    server::State,
    store::{EventType, Write},
};

const SWEEP_EVERY: Duration = Duration::from_secs(5);
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Runs until the task is aborted.
pub async fn run(st: Arc<State>) {
    let mut rx = st.store.subscribe();
    loop {
        tokio::select! {
            _ = st.gc.notified() => {}
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
            ev = rx.recv() => match ev {
                Ok(e) if e.kind == EventType::Deleted || e.object.pointer("/metadata/deletionTimestamp").is_some() => {}
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        }
        tokio::time::sleep(DEBOUNCE).await;
        while rx.try_recv().is_ok() {}
        // Deletes wait for their commit: keep that off the async workers.
        let st2 = st.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || sweep(&st2)).await {
            tracing::warn!(error = %e, "garbage collection sweep failed");
        }
    }
}

fn uid(o: &Value) -> &str {
    meta_str(o, "uid").unwrap_or_default()
}

fn owner_uids(o: &Value) -> Vec<&str> {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
        .collect()
}

fn deleting(o: &Value) -> bool {
    o.pointer("/metadata/deletionTimestamp").is_some()
}

fn has_finalizer(o: &Value, f: &str) -> bool {
    o.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x == f))
}

fn type_for(st: &State, gr: &GroupResource) -> Option<Arc<ResourceType>> {
    st.registry().by_gr(gr)
}

fn delete_one(st: &State, gr: &GroupResource, o: &Value) {
    let Some(rt) = type_for(st, gr) else { return };
    let ns = meta_str(o, "namespace").unwrap_or_default().to_string();
    let name = meta_str(o, "name").unwrap_or_default().to_string();
    let _ = st.store.write(gr, &ns, &name, false, |cur| match cur {
        Some(cur) => Ok(deletion(&rt, cur, false)),
        None => Ok(Write::Unchanged(Arc::new(o.clone()))),
    });
}

fn remove_finalizer(st: &State, gr: &GroupResource, o: &Value, f: &str, force_delete: bool) {
    let ns = meta_str(o, "namespace").unwrap_or_default().to_string();
    let name = meta_str(o, "name").unwrap_or_default().to_string();
    let _ = st.store.write(gr, &ns, &name, false, |cur| {
        let Some(cur) = cur else {
            return Ok(Write::Unchanged(Arc::new(o.clone())));
        };
        let mut n = (**cur).clone();
        let m = meta_mut(&mut n);
        if let Some(Value::Array(fs)) = m.get_mut("finalizers") {
            fs.retain(|x| x != f);
        }
        let empty = m
            .get("finalizers")
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty());
        Ok(if empty && (force_delete || deleting(&n)) {
            Write::Delete
        } else {
            Write::Put(n)
        })
    });
}

/// One pass over every object.
pub fn sweep(st: &State) {
    let all = st.store.all();
    let live: HashSet<&str> = all.iter().map(|(_, o)| uid(o)).collect();
    let foreground: HashSet<&str> = all
        .iter()
        .filter(|(_, o)| deleting(o) && has_finalizer(o, "foregroundDeletion"))
        .map(|(_, o)| uid(o))
        .collect();
    let ns_gr = GroupResource {
        group: String::new(),
        resource: "namespaces".into(),
    };
    let terminating: HashSet<&str> = all
        .iter()
        .filter(|(gr, o)| *gr == ns_gr && deleting(o))
        .filter_map(|(_, o)| meta_str(o, "name"))
        .collect();
    let mut with_dependents: HashSet<&str> = HashSet::new();
    let mut ns_contents: HashMap<&str, usize> = HashMap::new();
    for (gr, o) in &all {
        if let Some(ns) = meta_str(o, "namespace").filter(|n| !n.is_empty()) {
            *ns_contents.entry(ns).or_default() += 1;
            if terminating.contains(ns) && !deleting(o) {
                delete_one(st, gr, o);
                continue;
            }
        }
        let owners = owner_uids(o);
        if owners.is_empty() {
            continue;
        }
        let alive: Vec<&str> = owners.iter().copied().filter(|u| live.contains(u)).collect();
        with_dependents.extend(alive.iter().copied());
        if !deleting(o) && (alive.is_empty() || alive.iter().all(|u| foreground.contains(u))) {
            delete_one(st, gr, o);
        }
    }
    for (gr, o) in &all {
        if foreground.contains(uid(o)) && !with_dependents.contains(uid(o)) {
            remove_finalizer(st, gr, o, "foregroundDeletion", false);
        }
        if *gr == ns_gr && deleting(o) {
            let name = meta_str(o, "name").unwrap_or_default();
            if ns_contents.get(name).copied().unwrap_or(0) == 0 {
                remove_finalizer(st, gr, o, "kubernetes", true);
            }
        }
    }
}
