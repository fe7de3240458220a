//! The resource types the server serves: the built-in kinds, plus one entry per established
//! CustomResourceDefinition version.

use std::{collections::BTreeMap, sync::Arc};

use serde_json::Value;

/// `(group, plural)`: the version-agnostic identity of a resource, and the storage key prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    /// The API group, empty for the core group.
    pub group: String,
    /// The plural resource name.
    pub resource: String,
}

/// What the server knows about one served resource.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group (empty for core).
    pub group: String,
    /// Served version.
    pub version: String,
    /// Plural name, as in the URL.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names (`deploy`, `apideploy`).
    pub short_names: Vec<String>,
    /// Categories (`all`, `turnpike`).
    pub categories: Vec<String>,
    /// Whether a `/status` subresource is served.
    pub status_subresource: bool,
    /// The CRD version this type comes from, for custom resources.
    pub crd: Option<Arc<CrdVersion>>,
}

/// The parts of a CRD version the server acts on.
#[derive(Debug, Clone)]
pub struct CrdVersion {
    /// The CRD's name (`restapis.turnpike.dev`).
    pub crd_name: String,
    /// `openAPIV3Schema`.
    pub schema: Option<Value>,
    /// `additionalPrinterColumns`.
    pub printer_columns: Vec<Value>,
}

/// Every served resource, by group/version/plural.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    types: BTreeMap<(String, String, String), Arc<ResourceType>>,
    /// Group order for discovery: built-in groups first, then CRD groups by name.
    group_order: Vec<String>,
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

// === impl GroupResource ===

impl GroupResource {
    /// `deployments.apps`, or `configmaps` for core.
    pub fn to_display(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

// === impl ResourceType ===

impl ResourceType {
    /// `apps/v1`, or `v1` for core.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The storage identity.
    pub fn gr(&self) -> GroupResource {
        GroupResource {
            group: self.group.clone(),
            resource: self.plural.clone(),
        }
    }

    /// `restapis.turnpike.dev` as used in error messages.
    pub fn group_resource(&self) -> String {
        self.gr().to_display()
    }

    /// The verbs served on the main resource.
    pub fn verbs(&self) -> Vec<&'static str> {
        VERBS.to_vec()
    }

    /// The URL prefix of the collection, without namespace.
    pub fn api_prefix(&self) -> String {
        if self.group.is_empty() {
            "/api/v1".into()
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    categories: &[&str],
    status: bool,
) -> ResourceType {
    ResourceType {
        group: group.into(),
        version: version.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: categories.iter().map(|s| s.to_string()).collect(),
        status_subresource: status,
        crd: None,
    }
}

/// The built-in groups, in the order discovery lists them.
pub const BUILTIN_GROUPS: &[&str] = &[
    "",
    "apps",
    "events.k8s.io",
    "autoscaling",
    "policy",
    "rbac.authorization.k8s.io",
    "networking.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "apiextensions.k8s.io",
];

fn builtins() -> Vec<ResourceType> {
    let rbac = "rbac.authorization.k8s.io";
    vec![
        builtin("", "v1", "namespaces", "Namespace", false, &["ns"], &[], true),
        builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"], &[], false),
        builtin("", "v1", "secrets", "Secret", true, &[], &[], false),
        builtin("", "v1", "services", "Service", true, &["svc"], &["all"], true),
        builtin("", "v1", "endpoints", "Endpoints", true, &["ep"], &[], false),
        builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            &[],
            false,
        ),
        builtin("", "v1", "events", "Event", true, &["ev"], &[], false),
        builtin("", "v1", "pods", "Pod", true, &["po"], &["all"], true),
        builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            true,
            &["deploy"],
            &["all"],
            true,
        ),
        builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            &[],
            false,
        ),
        builtin(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
            true,
            &["hpa"],
            &["all"],
            true,
        ),
        builtin(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            true,
            &["pdb"],
            &[],
            true,
        ),
        builtin(rbac, "v1", "roles", "Role", true, &[], &[], false),
        builtin(rbac, "v1", "rolebindings", "RoleBinding", true, &[], &[], false),
        builtin(rbac, "v1", "clusterroles", "ClusterRole", false, &[], &[], false),
        builtin(
            rbac,
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
            &[],
            false,
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "ingresses",
            "Ingress",
            true,
            &["ing"],
            &[],
            true,
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "ingressclasses",
            "IngressClass",
            false,
            &[],
            &[],
            false,
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            &[],
            &[],
            false,
        ),
        builtin(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "EndpointSlice",
            true,
            &[],
            &[],
            false,
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            &["api-extensions"],
            true,
        ),
    ]
}

// === impl Registry ===

impl Registry {
    /// The built-in kinds only.
    pub fn with_builtins() -> Self {
        let mut r = Self::default();
        for t in builtins() {
            r.insert(t);
        }
        r.group_order = BUILTIN_GROUPS.iter().map(|g| g.to_string()).collect();
        r
    }

    fn insert(&mut self, t: ResourceType) {
        self.types.insert(
            (t.group.clone(), t.version.clone(), t.plural.clone()),
            Arc::new(t),
        );
    }

    /// The built-ins plus every served version of the given CRD objects.
    pub fn rebuild<'a>(crds: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut r = Self::with_builtins();
        let mut crd_groups = std::collections::BTreeSet::new();
        for crd in crds {
            if crd.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            for t in types_of_crd(crd) {
                if !BUILTIN_GROUPS.contains(&t.group.as_str()) {
                    crd_groups.insert(t.group.clone());
                }
                r.insert(t);
            }
        }
        r.group_order.extend(crd_groups);
        r
    }

    /// The type served at `group/version/plural`.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// Any served version of `group/plural`.
    pub fn by_gr(&self, gr: &GroupResource) -> Option<Arc<ResourceType>> {
        self.types
            .values()
            .find(|t| t.group == gr.group && t.plural == gr.resource)
            .cloned()
    }

    /// Groups in discovery order, each with its versions (preferred first).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        for g in &self.group_order {
            let mut versions: Vec<String> = self
                .types
                .values()
                .filter(|t| &t.group == g)
                .map(|t| t.version.clone())
                .collect();
            versions.dedup();
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
            if !versions.is_empty() {
                out.push((g.clone(), versions));
            }
        }
        out
    }

    /// The types of one group version.
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
        self.types
            .values()
            .filter(|t| t.group == group && t.version == version)
            .cloned()
            .collect()
    }

    /// Every type.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.values()
    }
}

/// Kubernetes version ordering: GA > beta > alpha, higher numbers first.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.trim_start_matches('v');
    let (major, tail) = rest.split_at(rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len()));
    let major = major.parse().unwrap_or(0);
    if tail.is_empty() {
        (3, major, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, major, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, major, n.parse().unwrap_or(0))
    } else {
        (0, major, 0)
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// The served types of one CRD object.
pub fn types_of_crd(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default().to_string();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default().to_string();
    let kind = names["kind"].as_str().unwrap_or_default().to_string();
    let singular = names["singular"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| kind.to_lowercase());
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let crd_name = crd["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let mut out = Vec::new();
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"].as_bool() == Some(false) {
            continue;
        }
        let version = v["name"].as_str().unwrap_or_default().to_string();
        out.push(ResourceType {
            group: group.clone(),
            version,
            plural: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            namespaced,
            short_names: strings(names.get("shortNames")),
            categories: strings(names.get("categories")),
            status_subresource: v.pointer("/subresources/status").is_some(),
            crd: Some(Arc::new(CrdVersion {
                crd_name: crd_name.clone(),
                schema: v.pointer("/schema/openAPIV3Schema").cloned(),
                printer_columns: v["additionalPrinterColumns"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            })),
        });
    }
    out
}
