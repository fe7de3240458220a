//! The immutable routing table and the pure matcher.
//!
//! A [`RoutingTable`] is built by [`crate::compile`] and published whole through
//! the proxy's `TableStore`; the proxy loads it once per request and keeps that `Arc` to the end,
//! so an in-flight request finishes on the snapshot it started with.
//!
//! Matching happens in two steps because a canary may serve a different deployment:
//! [`RoutingTable::locate`] finds the API and stage from (listener, Host, path); the proxy then
//! picks the stage variant (primary or canary) and calls [`RouteSet::find`] on its routes.
//! [`RoutingTable::find`] does both with the primary variant, for tools and tests.

pub mod describe;
mod matcher;
mod table;
mod trie;

pub use matcher::*;
pub use table::*;
