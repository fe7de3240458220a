//! Watch streams: the initial state (synthetic ADDED events, or the replay of the event
//! window after a resourceVersion), then live events, periodic bookmarks, and the
//! `k8s.io/initial-events-end` bookmark of the streaming-list mode kube-rs uses.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::{
    errors::{Result, StatusError},
    registry::ResourceType,
    selectors::Selector,
    server::State,
    store::{Event, EventType},
    table,
};

/// How often bookmarks are sent when the client allows them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

/// The parameters of a watch request.
#[derive(Debug, Clone, Default)]
pub struct WatchParams {
    /// `resourceVersion`.
    pub rv: Option<String>,
    /// `sendInitialEvents=true`.
    pub send_initial: bool,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
    /// `labelSelector`.
    pub labels: Selector,
    /// `fieldSelector`.
    pub fields: Selector,
    /// `Some(includeObject)` when the client asked for Table events.
    pub table: Option<String>,
}

struct Filter {
    rt: Arc<ResourceType>,
    ns: Option<String>,
    p: WatchParams,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        self.p.labels.matches_labels(obj) && self.p.fields.matches_fields(obj)
    }

    fn encode(&self, kind: &str, obj: &Value) -> Bytes {
        let object = match (&self.p.table, kind) {
            (Some(include), "ADDED" | "MODIFIED" | "DELETED") => {
                let rv = super::store::object_rv(obj);
                table::table(&self.rt, &[obj], rv, None, include, true)
            }
            _ => obj.clone(),
        };
        let mut line = json!({"type": kind, "object": object}).to_string();
        line.push('\n');
        Bytes::from(line)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": meta});
        let mut line = json!({"type": "BOOKMARK", "object": obj}).to_string();
        line.push('\n');
        Bytes::from(line)
    }

    /// Maps a store event to what this watcher sees, given its selectors.
    fn translate(&self, e: &Event) -> Option<Bytes> {
        if e.gr.group != self.rt.group || e.gr.resource != self.rt.plural {
            return None;
        }
        if let Some(ns) = &self.ns
            && &e.namespace != ns
        {
            return None;
        }
        let now = self.matches(&e.object);
        let before = e.prev.as_ref().is_some_and(|p| self.matches(p));
        let kind = match e.kind {
            EventType::Added if now => "ADDED",
            EventType::Modified if now && before => "MODIFIED",
            EventType::Modified if now => "ADDED",
            EventType::Modified if before => "DELETED",
            EventType::Deleted if now || before => "DELETED",
            _ => return None,
        };
        Some(self.encode(kind, &e.object))
    }
}

/// Starts a watch; the returned receiver yields the response body chunks.
pub fn start(
    st: &Arc<State>,
    rt: Arc<ResourceType>,
    ns: Option<String>,
    p: WatchParams,
) -> Result<mpsc::Receiver<Bytes>> {
    let gr = rt.gr();
    let (initial, mut last_rv, rx, initial_end): (Vec<Bytes>, u64, broadcast::Receiver<Arc<Event>>, bool);
    let filter = Filter { rt, ns, p };
    let from_state = filter.p.send_initial || matches!(filter.p.rv.as_deref(), None | Some("") | Some("0"));
    if from_state {
        let (objs, rv, r) = st.store.watch_snapshot(&gr, filter.ns.as_deref());
        initial = objs
            .iter()
            .filter(|o| filter.matches(o))
            .map(|o| filter.encode("ADDED", o))
            .collect();
        last_rv = rv;
        rx = r;
        initial_end = filter.p.send_initial;
    } else {
        let raw = filter.p.rv.clone().unwrap_or_default();
        let rv: u64 = raw
            .parse()
            .map_err(|_| StatusError::bad_request(format!("invalid resource version: {raw}")))?;
        let (past, r) = st.store.watch_from(rv)?;
        initial = past.iter().filter_map(|e| filter.translate(e)).collect();
        last_rv = past.last().map_or(rv, |e| e.rv);
        rx = r;
        initial_end = false;
    }
    let (tx, out) = mpsc::channel::<Bytes>(1024);
    let mut rx = rx;
    tokio::spawn(async move {
        for chunk in initial {
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
        if initial_end && tx.send(filter.bookmark(last_rv, true)).await.is_err() {
            return;
        }
        let deadline = filter.p.timeout.map(|d| tokio::time::Instant::now() + d);
        let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
        ticker.tick().await;
        loop {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(e) => {
                        if e.rv <= last_rv {
                            continue;
                        }
                        last_rv = e.rv;
                        if let Some(chunk) = filter.translate(&e)
                            && tx.send(chunk).await.is_err() {
                                return;
                            }
                    }
                    // Fell too far behind, or the server is stopping: end the stream; the
                    // client resumes from the last resourceVersion it saw.
                    Err(_) => return,
                },
                _ = ticker.tick(), if filter.p.bookmarks => {
                    if tx.send(filter.bookmark(last_rv, false)).await.is_err() {
                        return;
                    }
                }
                _ = sleep => return,
                _ = tx.closed() => return,
            }
        }
    });
    Ok(out)
}
