//! The least the controller needs from the API server, as a ClusterRole and a namespaced Role
//! for its Lease (the Helm chart renders the same rules; `config/rbac/controller.yaml` is this
//! text).
//!
//! - the five Turnpike kinds: read and watch; write only their `status`;
//! - ConfigMaps: read/watch (only those labelled `turnpike.dev/deployment` are listed) and
//!   create (snapshots are immutable: never updated, never deleted by us — the garbage
//!   collector removes them with their Deployment);
//! - Secrets: get/list/watch (one watch per referenced Secret, by name) and create (generated
//!   API key values);
//! - Services, EndpointSlices, Pods: read and watch (Pods only for IP → namespace);
//! - Events (`events.k8s.io`): create and patch (the recorder folds repeats into a series);
//! - Leases: get/create/update, in the controller's namespace only.

/// The RBAC manifest (ClusterRole, Role for the Lease).
pub const RBAC_YAML: &str = include_str!("../../../config/rbac/controller.yaml");
