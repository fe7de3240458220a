//! RBAC evaluation for the access-review endpoints, and only for them.
//!
//! The server authorizes every request as cluster-admin (one bearer token); what it adds here
//! is the answer to "may this user do this?" as `kubectl auth can-i` asks it, evaluated like
//! the real RBAC authorizer against the stored Role, ClusterRole, RoleBinding and
//! ClusterRoleBinding objects:
//!
//! - `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`: the subject is the caller,
//!   i.e. the `Impersonate-User` / `Impersonate-Group` headers (`kubectl --as`, `--as-group`)
//!   when present, else the admin (group `system:masters`, allowed everything);
//! - `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`: the subject is `spec.user`
//!   and `spec.groups`.
//!
//! A ServiceAccount user `system:serviceaccount:{ns}:{name}` is in the groups
//! `system:serviceaccounts` and `system:serviceaccounts:{ns}`; every user is in
//! `system:authenticated`. A ClusterRoleBinding grants its role everywhere; a RoleBinding
//! grants its Role or ClusterRole in its own namespace only, so a review without a namespace
//! (`can-i list secrets -A`) is allowed only through ClusterRoleBindings, as in Kubernetes.
//! Rules match on `apiGroups`, `resources` (`res/sub` for a subresource, `*`, `*/sub`),
//! `resourceNames` (a rule naming objects never allows an unnamed request, e.g. `list`) and
//! `verbs`; `nonResourceURLs` match exactly or by a trailing `*`. Not modelled: aggregated
//! ClusterRoles (`aggregationRule`), deny reasons beyond "no rule allows it".

use serde_json::{Value, json};

use super::registry::GroupResource;
use super::store::Store;

/// The group whose members are allowed everything (the admin token's user is in it).
pub const MASTERS: &str = "system:masters";

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The user name.
    pub user: String,
    /// Groups, with the implied ones added by [`Subject::new`].
    pub groups: Vec<String>,
}

/// What is asked: a resource request or a non-resource URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    /// A verb on a resource.
    Resource {
        /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, … or `*`.
        verb: String,
        /// The API group (`""` for the core group).
        group: String,
        /// The plural resource name.
        resource: String,
        /// The subresource, or `""`.
        subresource: String,
        /// The namespace, or `""` for all namespaces / cluster-scoped.
        namespace: String,
        /// The object's name, or `""`.
        name: String,
    },
    /// A verb on a path such as `/healthz`.
    NonResource {
        /// `get`, `post`, ….
        verb: String,
        /// The path.
        path: String,
    },
}

/// The RBAC objects a review is evaluated against.
#[derive(Debug, Default, Clone)]
pub struct Policy {
    /// Roles.
    pub roles: Vec<Value>,
    /// ClusterRoles.
    pub cluster_roles: Vec<Value>,
    /// RoleBindings.
    pub role_bindings: Vec<Value>,
    /// ClusterRoleBindings.
    pub cluster_role_bindings: Vec<Value>,
}

// === impl Subject ===

impl Subject {
    /// A user with its groups, plus the groups Kubernetes implies: `system:authenticated`, and
    /// for a ServiceAccount `system:serviceaccounts` and `system:serviceaccounts:{ns}`.
    pub fn new(user: impl Into<String>, groups: impl IntoIterator<Item = String>) -> Self {
        let user = user.into();
        let mut all: Vec<String> = groups.into_iter().collect();
        if let Some((ns, _)) = user
            .strip_prefix("system:serviceaccount:")
            .and_then(|r| r.split_once(':'))
        {
            all.push("system:serviceaccounts".into());
            all.push(format!("system:serviceaccounts:{ns}"));
        }
        all.push("system:authenticated".into());
        all.dedup();
        Subject { user, groups: all }
    }

    /// The admin the bearer token stands for.
    pub fn admin() -> Self {
        Subject::new("admin", [MASTERS.to_string()])
    }
}

// === impl Attributes ===

impl Attributes {
    /// Reads `spec.resourceAttributes` or `spec.nonResourceAttributes` of a review.
    pub fn from_spec(spec: &Value) -> Option<Self> {
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        if let Some(r) = spec.get("resourceAttributes") {
            return Some(Attributes::Resource {
                verb: s(r, "verb"),
                group: s(r, "group"),
                resource: s(r, "resource"),
                subresource: s(r, "subresource"),
                namespace: s(r, "namespace"),
                name: s(r, "name"),
            });
        }
        let n = spec.get("nonResourceAttributes")?;
        Some(Attributes::NonResource {
            verb: s(n, "verb"),
            path: s(n, "path"),
        })
    }
}

// === impl Policy ===

impl Policy {
    /// The RBAC objects in the store now.
    pub fn load(store: &Store) -> Self {
        let list = |resource: &str| {
            let gr = GroupResource {
                group: "rbac.authorization.k8s.io".into(),
                resource: resource.into(),
            };
            store.list(&gr, None).0.iter().map(|v| (**v).clone()).collect()
        };
        Policy {
            roles: list("roles"),
            cluster_roles: list("clusterroles"),
            role_bindings: list("rolebindings"),
            cluster_role_bindings: list("clusterrolebindings"),
        }
    }

    /// Whether `subject` may do `attrs`, and the reason given in the review's status.
    pub fn allows(&self, subject: &Subject, attrs: &Attributes) -> (bool, String) {
        if subject.groups.iter().any(|g| g == MASTERS) {
            return (true, format!("{MASTERS} is allowed everything"));
        }
        for b in &self.cluster_role_bindings {
            if binds(b, subject, "") && self.cluster_role(b).is_some_and(|r| role_allows(r, attrs)) {
                return (true, format!("allowed by ClusterRoleBinding {:?}", name(b)));
            }
        }
        if let Attributes::Resource { namespace, .. } = attrs
            && !namespace.is_empty()
        {
            for b in self.role_bindings.iter().filter(|b| ns_of(b) == namespace) {
                if !binds(b, subject, namespace) {
                    continue;
                }
                let role = match ref_kind(b) {
                    "Role" => self
                        .roles
                        .iter()
                        .find(|r| ns_of(r) == namespace && name(r) == ref_name(b)),
                    _ => self.cluster_role(b),
                };
                if role.is_some_and(|r| role_allows(r, attrs)) {
                    return (
                        true,
                        format!("allowed by RoleBinding {:?} in {namespace:?}", name(b)),
                    );
                }
            }
        }
        (false, String::new())
    }

    fn cluster_role(&self, binding: &Value) -> Option<&Value> {
        (ref_kind(binding) == "ClusterRole")
            .then(|| self.cluster_roles.iter().find(|r| name(r) == ref_name(binding)))
            .flatten()
    }
}

/// Answers a review: the request object with `status` filled in.
pub fn review(mut body: Value, subject: &Subject, policy: &Policy) -> Value {
    let spec = body.get("spec").cloned().unwrap_or(Value::Null);
    let status = match Attributes::from_spec(&spec) {
        Some(attrs) => {
            let (allowed, reason) = policy.allows(subject, &attrs);
            json!({"allowed": allowed, "reason": reason})
        }
        None => json!({
            "allowed": false,
            "evaluationError": "spec: one of resourceAttributes or nonResourceAttributes is required",
        }),
    };
    if let Some(o) = body.as_object_mut() {
        o.insert("status".into(), status);
    }
    body
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return "",
        }
    }
    cur.as_str().unwrap_or_default()
}

fn name(v: &Value) -> &str {
    str_at(v, &["metadata", "name"])
}

fn ns_of(v: &Value) -> &str {
    str_at(v, &["metadata", "namespace"])
}

fn ref_kind(binding: &Value) -> &str {
    str_at(binding, &["roleRef", "kind"])
}

fn ref_name(binding: &Value) -> &str {
    str_at(binding, &["roleRef", "name"])
}

/// Whether one of the binding's subjects is `subject`. `binding_ns` is the namespace a
/// ServiceAccount subject without one defaults to (a RoleBinding's own).
fn binds(binding: &Value, subject: &Subject, binding_ns: &str) -> bool {
    let subjects = binding.get("subjects").and_then(Value::as_array);
    subjects.into_iter().flatten().any(|s| {
        let n = str_at(s, &["name"]);
        match str_at(s, &["kind"]) {
            "User" => n == subject.user,
            "Group" => subject.groups.iter().any(|g| g == n),
            "ServiceAccount" => {
                let ns = match str_at(s, &["namespace"]) {
                    "" => binding_ns,
                    ns => ns,
                };
                subject.user == format!("system:serviceaccount:{ns}:{n}")
            }
            _ => false,
        }
    })
}

fn role_allows(role: &Value, attrs: &Attributes) -> bool {
    let rules = role.get("rules").and_then(Value::as_array);
    rules.into_iter().flatten().any(|r| rule_allows(r, attrs))
}

fn strings(rule: &Value, key: &str) -> Vec<String> {
    let items = rule.get(key).and_then(Value::as_array);
    items
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|v| v == "*" || v == want)
}

fn rule_allows(rule: &Value, attrs: &Attributes) -> bool {
    match attrs {
        Attributes::Resource {
            verb,
            group,
            resource,
            subresource,
            name,
            ..
        } => {
            let names = strings(rule, "resourceNames");
            let resources = strings(rule, "resources");
            let resource_ok = if subresource.is_empty() {
                has(&resources, resource)
            } else {
                let full = format!("{resource}/{subresource}");
                let any = format!("*/{subresource}");
                resources.iter().any(|r| r == "*" || *r == full || *r == any)
            };
            has(&strings(rule, "verbs"), verb)
                && has(&strings(rule, "apiGroups"), group)
                && resource_ok
                && (names.is_empty() || (!name.is_empty() && names.contains(name)))
        }
        Attributes::NonResource { verb, path } => {
            has(&strings(rule, "verbs"), verb)
                && strings(rule, "nonResourceURLs")
                    .iter()
                    .any(|u| match u.strip_suffix('*') {
                        Some(prefix) => path.starts_with(prefix),
                        None => u == path,
                    })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(verb: &str, group: &str, resource: &str, namespace: &str) -> Attributes {
        Attributes::Resource {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: String::new(),
            namespace: namespace.into(),
            name: String::new(),
        }
    }

    fn sa(ns: &str, name: &str) -> Subject {
        Subject::new(format!("system:serviceaccount:{ns}:{name}"), [])
    }

    fn policy() -> Policy {
        Policy {
            cluster_roles: vec![
                json!({"metadata": {"name": "reader"}, "rules": [
                    {"apiGroups": ["turnpike.dev"], "resources": ["apikeys"], "verbs": ["list", "watch"]},
                    {"apiGroups": ["turnpike.dev"], "resources": ["apikeys/status"], "verbs": ["patch"]},
                    {"nonResourceURLs": ["/metrics", "/debug/*"], "verbs": ["get"]},
                ]}),
                json!({"metadata": {"name": "secrets"}, "rules": [
                    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]},
                ]}),
            ],
            roles: vec![
                json!({"metadata": {"name": "one", "namespace": "shop"}, "rules": [
                    {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cfg"], "verbs": ["get"]},
                    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["delete"]},
                ]}),
            ],
            cluster_role_bindings: vec![json!({
                "metadata": {"name": "reader"},
                "roleRef": {"kind": "ClusterRole", "name": "reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "tp", "namespace": "sys"}],
            })],
            role_bindings: vec![
                json!({
                    "metadata": {"name": "secrets", "namespace": "shop"},
                    "roleRef": {"kind": "ClusterRole", "name": "secrets"},
                    "subjects": [{"kind": "ServiceAccount", "name": "tp", "namespace": "sys"}],
                }),
                json!({
                    "metadata": {"name": "one", "namespace": "shop"},
                    "roleRef": {"kind": "Role", "name": "one"},
                    "subjects": [{"kind": "Group", "name": "devs"}, {"kind": "ServiceAccount", "name": "local"}],
                }),
            ],
        }
    }

    #[test]
    fn cluster_role_binding_allows_everywhere() {
        let p = policy();
        assert!(
            p.allows(&sa("sys", "tp"), &res("list", "turnpike.dev", "apikeys", ""))
                .0
        );
        assert!(
            p.allows(&sa("sys", "tp"), &res("watch", "turnpike.dev", "apikeys", "any"))
                .0
        );
        assert!(
            !p.allows(&sa("sys", "tp"), &res("get", "turnpike.dev", "apikeys", "any"))
                .0
        );
        assert!(
            !p.allows(&sa("sys", "tp"), &res("list", "turnpike.dev", "restapis", ""))
                .0
        );
        assert!(
            !p.allows(&sa("other", "tp"), &res("list", "turnpike.dev", "apikeys", ""))
                .0
        );
    }

    #[test]
    fn role_binding_allows_only_in_its_namespace() {
        let p = policy();
        let tp = sa("sys", "tp");
        assert!(p.allows(&tp, &res("list", "", "secrets", "shop")).0);
        assert!(!p.allows(&tp, &res("list", "", "secrets", "kube-system")).0);
        assert!(
            !p.allows(&tp, &res("list", "", "secrets", "")).0,
            "all namespaces"
        );
        assert!(!p.allows(&tp, &res("create", "", "secrets", "shop")).0);
    }

    #[test]
    fn subresources_and_names() {
        let p = policy();
        let tp = sa("sys", "tp");
        let mut status = res("patch", "turnpike.dev", "apikeys", "shop");
        assert!(
            !p.allows(&tp, &status).0,
            "the main resource is not granted patch"
        );
        if let Attributes::Resource { subresource, .. } = &mut status {
            *subresource = "status".into();
        }
        assert!(p.allows(&tp, &status).0);

        let dev = Subject::new("alice", ["devs".to_string()]);
        let mut get = res("get", "", "configmaps", "shop");
        assert!(
            !p.allows(&dev, &get).0,
            "resourceNames never allow an unnamed request"
        );
        if let Attributes::Resource { name, .. } = &mut get {
            *name = "cfg".into();
        }
        assert!(p.allows(&dev, &get).0);
        assert!(
            p.allows(&dev, &res("delete", "apps", "deployments", "shop")).0,
            "* groups and resources"
        );
        assert!(!p.allows(&dev, &res("delete", "apps", "deployments", "other")).0);
    }

    #[test]
    fn service_account_subject_defaults_to_binding_namespace() {
        let p = policy();
        assert!(
            p.allows(&sa("shop", "local"), &res("delete", "", "pods", "shop"))
                .0
        );
        assert!(
            !p.allows(&sa("sys", "local"), &res("delete", "", "pods", "shop"))
                .0
        );
    }

    #[test]
    fn implied_groups_and_masters() {
        let s = sa("shop", "x");
        assert!(s.groups.contains(&"system:serviceaccounts:shop".to_string()));
        assert!(s.groups.contains(&"system:authenticated".to_string()));
        assert!(
            Policy::default()
                .allows(&Subject::admin(), &res("create", "", "secrets", ""))
                .0
        );
        assert!(!Policy::default().allows(&s, &res("get", "", "secrets", "shop")).0);
    }

    #[test]
    fn non_resource_urls() {
        let p = policy();
        let tp = sa("sys", "tp");
        let get = |path: &str| Attributes::NonResource {
            verb: "get".into(),
            path: path.into(),
        };
        assert!(p.allows(&tp, &get("/metrics")).0);
        assert!(p.allows(&tp, &get("/debug/pprof")).0);
        assert!(!p.allows(&tp, &get("/healthz")).0);
    }

    #[test]
    fn review_fills_status() {
        let body = json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": "list", "resource": "secrets", "namespace": "shop"}},
        });
        let out = review(body, &sa("sys", "tp"), &policy());
        assert_eq!(out["status"]["allowed"], true);
        let out = review(json!({"spec": {}}), &sa("sys", "tp"), &policy());
        assert_eq!(out["status"]["allowed"], false);
        assert!(out["status"]["evaluationError"].is_string());
    }
}
