//! The one place the live routing table is kept: an `ArcSwap`, replaced whole.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use turnpike_core::routing::RoutingTable;

/// The published routing table. Readers load it once per request; the controller publishes a
/// new table with one store. Clones share the same table.
#[derive(Clone, Debug)]
pub struct TableStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    table: ArcSwap<RoutingTable>,
    /// The version of the last published table; 0 until the first publication.
    published: watch::Sender<u64>,
}

impl Default for TableStore {
    fn default() -> Self {
        Self::new()
    }
}

impl TableStore {
    /// A store holding an empty table, not yet published.
    pub fn new() -> Self {
        TableStore {
            inner: Arc::new(Inner {
                table: ArcSwap::from_pointee(RoutingTable::default()),
                published: watch::Sender::new(0),
            }),
        }
    }

    /// The current table, to hold for the whole of a request.
    pub fn load(&self) -> Arc<RoutingTable> {
        self.inner.table.load_full()
    }

    /// A cheap guard for synchronous readers (e.g. the TLS certificate resolver).
    pub fn load_guard(&self) -> arc_swap::Guard<Arc<RoutingTable>> {
        self.inner.table.load()
    }

    /// Publishes a table. Its version must be above 0.
    pub fn publish(&self, table: RoutingTable) {
        let version = table.version;
        self.inner.table.store(Arc::new(table));
        self.inner.published.send_replace(version);
    }

    /// Whether a table has been published (what `/readyz` reports).
    pub fn is_published(&self) -> bool {
        *self.inner.published.borrow() > 0
    }

    /// Notified with the version of each publication.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.published.subscribe()
    }
}
