//! Builders for the custom resources the end-to-end tests apply, as YAML: one RestApi, its
//! Deployment and its Stages, without repeating the boilerplate in every test file.
//!
//! ```ignore
//! let yaml = ApiSet::new("shop", "pets")
//!     .proxy("/pets/{id}", "GET", &format!("http://{up}/echo/pets/{{id}}"))
//!     .stage("prod")
//!     .yaml();
//! ```

use std::fmt::Write as _;

/// One RestApi (REGIONAL unless told otherwise), one Deployment of it and its Stages.
#[derive(Clone, Debug)]
pub struct ApiSet {
    namespace: String,
    name: String,
    endpoint: String,
    /// Extra YAML under `spec` (a policy, …), indented by two spaces.
    spec: String,
    /// (path, method, YAML of the method under the method key, indented by eight spaces).
    methods: Vec<(String, String, String)>,
    deployment: String,
    /// (stage name, extra YAML under the Stage's `spec`, indented by two spaces).
    stages: Vec<(String, String)>,
}

impl ApiSet {
    /// A REGIONAL RestApi `name` in `namespace`, deployed as `{name}-v1`, with no stages yet.
    pub fn new(namespace: &str, name: &str) -> Self {
        ApiSet {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            endpoint: "REGIONAL".to_owned(),
            spec: String::new(),
            methods: Vec::new(),
            deployment: format!("{name}-v1"),
            stages: Vec::new(),
        }
    }

    /// The endpoint type: `EDGE`, `REGIONAL` or `PRIVATE`.
    pub fn endpoint(mut self, endpoint: &str) -> Self {
        endpoint.clone_into(&mut self.endpoint);
        self
    }

    /// Extra lines under `spec` (e.g. a `policy:`), indented by two spaces.
    pub fn spec(mut self, yaml: &str) -> Self {
        self.spec.push_str(yaml.trim_end());
        self.spec.push('\n');
        self
    }

    /// A method whose body is `yaml` (the lines under `GET:` etc., indented by eight spaces).
    pub fn method(mut self, path: &str, method: &str, yaml: &str) -> Self {
        self.methods
            .push((path.to_owned(), method.to_owned(), yaml.trim_end().to_owned()));
        self
    }

    /// A method with an `HTTP_PROXY` integration to `uri`.
    pub fn proxy(self, path: &str, method: &str, uri: &str) -> Self {
        let body = format!("        integration: {{type: HTTP_PROXY, uri: \"{uri}\"}}");
        self.method(path, method, &body)
    }

    /// A method with `apiKeyRequired: true` and an `HTTP_PROXY` integration to `uri`.
    pub fn keyed_proxy(self, path: &str, method: &str, uri: &str) -> Self {
        let body = format!(
            "        apiKeyRequired: true\n        integration: {{type: HTTP_PROXY, uri: \"{uri}\"}}"
        );
        self.method(path, method, &body)
    }

    /// The Deployment's object name (default `{api}-v1`).
    pub fn deployment(mut self, name: &str) -> Self {
        name.clone_into(&mut self.deployment);
        self
    }

    /// A Stage `name` serving the Deployment.
    pub fn stage(self, name: &str) -> Self {
        self.stage_with(name, "")
    }

    /// A Stage `name` with extra lines under its `spec` (indented by two spaces).
    pub fn stage_with(mut self, name: &str, yaml: &str) -> Self {
        self.stages.push((name.to_owned(), yaml.trim_end().to_owned()));
        self
    }

    /// The RestApi, the Deployment and the Stages as one multi-document YAML.
    pub fn yaml(&self) -> String {
        let ApiSet {
            namespace: ns,
            name,
            endpoint,
            spec,
            methods,
            deployment,
            stages,
        } = self;
        let mut y = format!(
            "---\napiVersion: turnpike.dev/v1alpha1\nkind: RestApi\nmetadata: {{name: {name}, namespace: {ns}}}\n\
             spec:\n  endpointConfiguration: {{types: [{endpoint}]}}\n{spec}"
        );
        if !methods.is_empty() {
            y.push_str("  resources:\n");
            let mut paths: Vec<&str> = Vec::new();
            for (path, _, _) in methods {
                if !paths.contains(&path.as_str()) {
                    paths.push(path);
                }
            }
            for path in paths {
                let _ = writeln!(y, "    {path}:");
                for (_, method, body) in methods.iter().filter(|(p, _, _)| p == path) {
                    let _ = writeln!(y, "      {method}:\n{body}");
                }
            }
        }
        y.push_str(&deployment_yaml(ns, name, deployment));
        for (stage, extra) in stages {
            y.push_str(&stage_yaml(ns, name, stage, deployment, extra));
        }
        y
    }
}

/// A Deployment `name` of the RestApi `api`.
pub fn deployment_yaml(ns: &str, api: &str, name: &str) -> String {
    format!(
        "---\napiVersion: turnpike.dev/v1alpha1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}}}\n\
         spec:\n  restApiRef: {{name: {api}}}\n"
    )
}

/// A Stage `stage` of the RestApi `api` serving `deployment`; `extra` is YAML under `spec`,
/// indented by two spaces. The object is named `{api}-{stage}`.
pub fn stage_yaml(ns: &str, api: &str, stage: &str, deployment: &str, extra: &str) -> String {
    let mut y = format!(
        "---\napiVersion: turnpike.dev/v1alpha1\nkind: Stage\nmetadata: {{name: {api}-{stage}, namespace: {ns}}}\n\
         spec:\n  restApiRef: {{name: {api}}}\n  stageName: {stage}\n  deploymentRef: {{name: {deployment}}}\n"
    );
    if !extra.is_empty() {
        y.push_str(extra);
        y.push('\n');
    }
    y
}

/// A UsagePlan `name` on the stages `(api, stage)`; `extra` is YAML under `spec` (a
/// `throttle:`, a `quota:`), indented by two spaces.
pub fn usage_plan_yaml(ns: &str, name: &str, stages: &[(&str, &str)], extra: &str) -> String {
    let mut y = format!(
        "---\napiVersion: turnpike.dev/v1alpha1\nkind: UsagePlan\nmetadata: {{name: {name}, namespace: {ns}}}\n\
         spec:\n  apiStages:\n"
    );
    for (api, stage) in stages {
        let _ = writeln!(y, "    - restApiRef: {{name: {api}}}\n      stage: {stage}");
    }
    if !extra.is_empty() {
        y.push_str(extra.trim_end());
        y.push('\n');
    }
    y
}

/// An ApiKey `name` whose value is `value` (in a Secret `{name}-value`), in the usage plans
/// `plans`.
pub fn api_key_yaml(ns: &str, name: &str, value: &str, plans: &[&str], enabled: bool) -> String {
    let mut y = format!(
        "---\napiVersion: turnpike.dev/v1alpha1\nkind: ApiKey\nmetadata: {{name: {name}, namespace: {ns}}}\n\
         spec:\n  enabled: {enabled}\n  valueFrom: {{secretKeyRef: {{name: {name}-value, key: value}}}}\n  usagePlanRefs:\n"
    );
    for plan in plans {
        let _ = writeln!(y, "    - name: {plan}");
    }
    let _ = write!(
        y,
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}-value, namespace: {ns}, labels: {{turnpike.dev/api-key: \"true\"}}}}\n\
         stringData: {{value: {value}}}\n"
    );
    y
}
