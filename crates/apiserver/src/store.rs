//! Storage: every object as JSON in SQLite (the durable copy), an in-memory index (the copy
//! reads are served from), one global resourceVersion counter, and the watch fan-out.
//!
//! Durability: the database runs in WAL mode with `synchronous=FULL`, and a write is
//! acknowledged only after the transaction holding it has committed. With FULL, SQLite fsyncs
//! the WAL on every commit, so an acknowledged write survives `kill -9` and also a power cut;
//! NORMAL would survive `kill -9` only.
//!
//! Writes use group commit. Each write runs its read-modify-write closure under the `pending`
//! mutex (so optimistic concurrency checks see every earlier write, committed or not), gets the
//! next resourceVersion and joins the open batch. One writer at a time commits the open batch
//! as one transaction (one fsync for many writes), applies it to the index, publishes its
//! events in resourceVersion order, and wakes the writers of that batch. Readers use the index
//! behind a read-write lock and never wait for an fsync; they see a write once it is
//! acknowledged (the index is updated before the writer is woken).
//!
//! If a commit fails, the writes of that batch and every later write fail (500) until restart,
//! since later writes may have been computed on top of the lost ones.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    path::Path,
    sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use rusqlite::{Connection, params};
use serde_json::Value;
use tokio::sync::broadcast;

use super::{
    errors::{Result, StatusError},
    registry::GroupResource,
};

/// How many recent events are kept for watches that resume from a resourceVersion.
const WINDOW: usize = 50_000;
/// Capacity of the broadcast channel; a watcher that falls further behind is closed.
const FANOUT: usize = 65_536;

/// Failure opening or loading the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored row is not JSON.
    #[error("stored object {key} is not valid JSON: {source}")]
    Corrupt {
        /// The row key.
        key: String,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

/// One committed change.
#[derive(Debug)]
pub struct Event {
    /// What happened.
    pub kind: EventType,
    /// The resourceVersion of the change.
    pub rv: u64,
    /// Which resource.
    pub gr: GroupResource,
    /// Namespace ("" for cluster-scoped objects).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The object after the change (for deletes, the last state with the deletion's rv).
    pub object: Arc<Value>,
    /// The object before the change.
    pub prev: Option<Arc<Value>>,
}

/// The events after a resourceVersion, and a receiver for the ones to come.
pub type Replay = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

/// What a write closure decided.
#[derive(Debug)]
pub enum Write {
    /// Store this object (create or replace).
    Put(Value),
    /// Remove the object.
    Delete,
    /// Change nothing; answer with this object.
    Unchanged(Arc<Value>),
}

/// The embedded object store.
pub struct Store {
    /// Used by the one writer committing a batch.
    conn: Mutex<Connection>,
    pending: Mutex<Pending>,
    /// Signalled when a batch has been committed (or failed).
    committed: Condvar,
    index: RwLock<Index>,
    tx: broadcast::Sender<Arc<Event>>,
}

type Key = (GroupResource, String, String);

/// Writes accepted but not yet committed.
struct Pending {
    /// The last resourceVersion handed out.
    next_rv: u64,
    /// The latest uncommitted state of each key (None: deleted), with its rv.
    overlay: HashMap<Key, (u64, Option<Arc<Value>>)>,
    /// The open batch.
    batch: Vec<Arc<Event>>,
    /// The sequence number of the open batch.
    batch_seq: u64,
    /// Every batch up to this one is committed.
    committed_seq: u64,
    /// Whether a writer is committing a batch now.
    committing: bool,
    /// Set after a failed commit.
    failed: Option<String>,
}

type Objects = BTreeMap<(String, String), Arc<Value>>;

struct Index {
    rv: u64,
    objects: HashMap<GroupResource, Objects>,
    log: VecDeque<Arc<Event>>,
    /// Every event with an rv above this is in `log`.
    floor: u64,
}

fn row_key(gr: &GroupResource, ns: &str, name: &str) -> String {
    format!("{}/{}/{}/{}", gr.group, gr.resource, ns, name)
}

// === impl Store ===

impl Store {
    /// Opens (or creates) the database at `path` and loads every object.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, grp TEXT NOT NULL, resource TEXT NOT NULL, \
               namespace TEXT NOT NULL, name TEXT NOT NULL, json TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT OR IGNORE INTO meta(name, value) VALUES ('rv', 1);",
        )?;
        let mut rv: u64 = conn.query_row("SELECT value FROM meta WHERE name = 'rv'", [], |r| r.get(0))?;
        let mut objects: HashMap<GroupResource, Objects> = HashMap::new();
        {
            let mut stmt = conn.prepare("SELECT key, grp, resource, namespace, name, json FROM objects")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })?;
            for row in rows {
                let (key, group, resource, ns, name, json) = row?;
                let obj: Value =
                    serde_json::from_str(&json).map_err(|source| StoreError::Corrupt { key, source })?;
                rv = rv.max(object_rv(&obj));
                objects
                    .entry(GroupResource { group, resource })
                    .or_default()
                    .insert((ns, name), Arc::new(obj));
            }
        }
        let (tx, _) = broadcast::channel(FANOUT);
        Ok(Self {
            conn: Mutex::new(conn),
            pending: Mutex::new(Pending {
                next_rv: rv,
                overlay: HashMap::new(),
                batch: Vec::new(),
                batch_seq: 1,
                committed_seq: 0,
                committing: false,
                failed: None,
            }),
            committed: Condvar::new(),
            index: RwLock::new(Index {
                rv,
                objects,
                log: VecDeque::new(),
                floor: rv,
            }),
            tx,
        })
    }

    // A panic while holding a lock leaves the index consistent with SQLite (the index is only
    // touched after a successful commit), so poisoned locks are safe to reuse.
    fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn index_mut(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The latest resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.read().rv
    }

    /// One object.
    pub fn get(&self, gr: &GroupResource, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.read()
            .objects
            .get(gr)?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Objects of a resource, in `(namespace, name)` order, optionally of one namespace, and the
    /// resourceVersion the list is consistent with.
    pub fn list(&self, gr: &GroupResource, ns: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let inner = self.read();
        (list_locked(&inner, gr, ns), inner.rv)
    }

    /// Every `(resource, object)` pair.
    pub fn all(&self) -> Vec<(GroupResource, Arc<Value>)> {
        let inner = self.read();
        inner
            .objects
            .iter()
            .flat_map(|(gr, m)| m.values().map(move |o| (gr.clone(), o.clone())))
            .collect()
    }

    /// Atomically reads the current object (including accepted, not yet committed writes),
    /// lets `f` decide, and commits the decision with the next resourceVersion. Returns once the
    /// write is durable, with the stored object (for deletes, the removed object). With
    /// `dry_run`, nothing is stored or published.
    pub fn write(
        &self,
        gr: &GroupResource,
        ns: &str,
        name: &str,
        dry_run: bool,
        f: impl FnOnce(Option<&Arc<Value>>) -> Result<Write>,
    ) -> Result<(Arc<Value>, Option<EventType>)> {
        let mut p = self.pending();
        if let Some(e) = &p.failed {
            return Err(StatusError::internal(format!("storage failed earlier: {e}")));
        }
        let key: Key = (gr.clone(), ns.to_string(), name.to_string());
        let prev = match p.overlay.get(&key) {
            Some((_, state)) => state.clone(),
            None => self.get(gr, ns, name),
        };
        let decision = f(prev.as_ref())?;
        let rv = p.next_rv + 1;
        let (kind, mut obj) = match decision {
            Write::Unchanged(obj) => return Ok((obj, None)),
            Write::Put(obj) => (
                if prev.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                },
                obj,
            ),
            Write::Delete => match &prev {
                Some(pv) => (EventType::Deleted, (**pv).clone()),
                None => return Err(StatusError::internal("delete of a missing object")),
            },
        };
        set_rv(&mut obj, rv);
        let obj = Arc::new(obj);
        if dry_run {
            return Ok((obj, Some(kind)));
        }
        p.next_rv = rv;
        let state = (kind != EventType::Deleted).then(|| obj.clone());
        p.overlay.insert(key, (rv, state));
        p.batch.push(Arc::new(Event {
            kind,
            rv,
            gr: gr.clone(),
            namespace: ns.to_string(),
            name: name.to_string(),
            object: obj.clone(),
            prev,
        }));
        let my_seq = p.batch_seq;
        loop {
            if let Some(e) = &p.failed {
                return Err(StatusError::internal(format!("storage write failed: {e}")));
            }
            if p.committed_seq >= my_seq {
                return Ok((obj, Some(kind)));
            }
            if p.committing {
                p = self.committed.wait(p).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            // Commit the open batch (ours, or a later one that includes ours).
            p.committing = true;
            let events = std::mem::take(&mut p.batch);
            let seq = p.batch_seq;
            p.batch_seq += 1;
            drop(p);
            let res = self.commit(&events);
            p = self.pending();
            for e in &events {
                let k = (e.gr.clone(), e.namespace.clone(), e.name.clone());
                if p.overlay.get(&k).is_some_and(|(r, _)| *r == e.rv) {
                    p.overlay.remove(&k);
                }
            }
            if let Err(e) = res {
                tracing::error!(error = %e, "storage commit failed; writes fail until restart");
                p.failed = Some(e.to_string());
            }
            p.committed_seq = seq;
            p.committing = false;
            self.committed.notify_all();
        }
    }

    /// Commits a batch in one transaction, then applies it to the index and publishes it.
    fn commit(&self, events: &[Arc<Event>]) -> rusqlite::Result<()> {
        let Some(last) = events.last() else { return Ok(()) };
        {
            let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
            let tx = conn.transaction()?;
            for e in events {
                let rk = row_key(&e.gr, &e.namespace, &e.name);
                if e.kind == EventType::Deleted {
                    tx.execute("DELETE FROM objects WHERE key = ?1", params![rk])?;
                } else {
                    tx.execute(
                        "INSERT INTO objects(key, grp, resource, namespace, name, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                         ON CONFLICT(key) DO UPDATE SET json = excluded.json",
                        params![rk, e.gr.group, e.gr.resource, e.namespace, e.name, e.object.to_string()],
                    )?;
                }
            }
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE name = 'rv'",
                params![last.rv as i64],
            )?;
            tx.commit()?;
        }
        let mut inner = self.index_mut();
        for e in events {
            inner.rv = e.rv;
            let key = (e.namespace.clone(), e.name.clone());
            let m = inner.objects.entry(e.gr.clone()).or_default();
            if e.kind == EventType::Deleted {
                m.remove(&key);
            } else {
                m.insert(key, e.object.clone());
            }
            inner.log.push_back(e.clone());
            while inner.log.len() > WINDOW {
                if let Some(old) = inner.log.pop_front() {
                    inner.floor = old.rv;
                }
            }
            // Published under the index lock, so snapshots taken with `watch_snapshot` and
            // events are ordered. No receivers is fine.
            let _ = self.tx.send(e.clone());
        }
        Ok(())
    }

    /// For a watch from `rv`: the events after it, and a receiver for the ones to come.
    /// Fails with 410 Expired if `rv` is older than the kept window.
    pub fn watch_from(&self, rv: u64) -> Result<Replay> {
        let inner = self.read();
        if rv < inner.floor {
            return Err(StatusError::expired(format!(
                "too old resource version: {rv} ({})",
                inner.floor + 1
            )));
        }
        let past = inner.log.iter().filter(|e| e.rv > rv).cloned().collect();
        Ok((past, self.tx.subscribe()))
    }

    /// For a watch that starts with the current state: a snapshot, its rv, and a receiver.
    pub fn watch_snapshot(
        &self,
        gr: &GroupResource,
        ns: Option<&str>,
    ) -> (Vec<Arc<Value>>, u64, broadcast::Receiver<Arc<Event>>) {
        let inner = self.read();
        (list_locked(&inner, gr, ns), inner.rv, self.tx.subscribe())
    }

    /// A receiver of every future event (for the garbage collector).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}

fn list_locked(inner: &Index, gr: &GroupResource, ns: Option<&str>) -> Vec<Arc<Value>> {
    let Some(m) = inner.objects.get(gr) else {
        return Vec::new();
    };
    match ns {
        Some(ns) => m
            .range((ns.to_string(), String::new())..)
            .take_while(|((n, _), _)| n == ns)
            .map(|(_, v)| v.clone())
            .collect(),
        None => m.values().cloned().collect(),
    }
}

/// The resourceVersion of a stored object.
pub fn object_rv(obj: &Value) -> u64 {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}
