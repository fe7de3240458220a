//! The pure core of Turnpike: what an API *is* and how requests find it, with no Kubernetes,
//! no I/O, no clock and no async runtime.
//!
//! ```text
//! model (validated domain) ─► compile (World → RoutingTable + statuses) ─► routing (table, matcher)
//! ```
//!
//! - [`model`]: the validated domain. Its types promise what AWS promises (a [`model::PathTemplate`]
//!   is well-formed, a [`model::StageName`] matches the AWS pattern); `turnpike-api` builds them
//!   from the custom resources, and is the only place that checks those rules.
//! - [`compile`]: a pure function from a [`compile::World`] of validated objects to a
//!   [`routing::RoutingTable`] and the status of every object. Golden files pin both.
//! - [`routing`]: the immutable routing table and its matcher, read by the proxy on every request.
//! - [`conditions`]: the closed set of condition types and reasons.
//! - [`template`]: mapping templates (the Velocity subset AWS runs), parsed here, rendered by
//!   the proxy.
//!
//! May depend on: plain data crates only (serde, http's types, hashes). It never names `kube`,
//! `k8s-openapi`, `tokio` or `hyper`; `tests/architecture.rs` fails the build's tests if it does.
//! Start reading at [`compile::compile`].

pub mod compile;
pub mod conditions;
pub mod model;
pub mod routing;
pub mod template;
