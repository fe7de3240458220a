//! The least the controller needs from the API server. The one source is the Helm chart's
//! `templates/rbac.yaml` (each rule commented there with the calls it serves);
//! `config/rbac/controller.yaml` is that template rendered with the default values (a
//! ServiceAccount `default/turnpike`, a ClusterRole and its binding, the Lease Role and its
//! binding), kept equal by `tests/python/test_rbac.py`. In short:
//!
//! - the five Turnpike kinds: list and watch (reflectors); patch only their `status`;
//! - ConfigMaps: list/watch (only those labelled `turnpike.dev/deployment`, snapshots, and
//!   `turnpike.dev/openapi`, documents `RestApi.spec.openApi` imports, are watched) and
//!   create (snapshots are immutable: never updated, never deleted by us — the garbage
//!   collector removes them with their Deployment);
//! - Secrets: list/watch (one watch per scope, labelled `turnpike.dev/api-key`; a labelled
//!   Secret read by name is a `list` with a `fieldSelector`) and create (generated API key
//!   values); no get, update or delete;
//! - Services, EndpointSlices, Pods: list and watch (Pods only for IP → namespace);
//! - Events (`events.k8s.io`): create and patch (the recorder folds repeats into a series);
//! - Leases: get/create/update (leader election and each replica's own Lease), list (counting
//!   the replicas) and delete (a replica's own, at shutdown), in the controller's namespace only.
//!
//! With the chart's `watchNamespaces` (the controller's `--watch-namespaces`), the same rules
//! are Roles in the listed namespaces only, and no Secret elsewhere is readable.

/// The RBAC manifest (ServiceAccount, ClusterRole and binding, Role and binding for the Lease).
pub const RBAC_YAML: &str = include_str!("../../../config/rbac/controller.yaml");
