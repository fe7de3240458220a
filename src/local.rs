//! `turnpike local`'s own pieces: the examples built into the binary, the ports remembered in
//! the data directory, the petstore Service that points at the built-in backend, and the
//! short summary printed once everything is ready.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use kube::{
    Api, Client, ResourceExt as _,
    api::{ApiResource, DynamicObject, ListParams},
};
use serde_json::{Value, json};
use turnpike_api::{ApiKey, RestApi, Stage, UsagePlan};

/// config/examples, built into the binary so `--examples` works from any directory. Each
/// file's header says what to try.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "config/examples/canary.yaml",
        include_str!("../config/examples/canary.yaml"),
    ),
    (
        "config/examples/mock.yaml",
        include_str!("../config/examples/mock.yaml"),
    ),
    (
        "config/examples/petstore.yaml",
        include_str!("../config/examples/petstore.yaml"),
    ),
    (
        "config/examples/private.yaml",
        include_str!("../config/examples/private.yaml"),
    ),
    (
        "config/examples/usage-plan.yaml",
        include_str!("../config/examples/usage-plan.yaml"),
    ),
];

/// The Service the examples call (as config/backend/petstore.yaml defines it in a cluster).
const PETSTORE_SERVICE: &str = "petstore";
const PETSTORE_NAMESPACE: &str = "default";

/// How long the summary waits for every object to be Ready before printing what it has.
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// The ports of one `turnpike local` data directory, kept in `{data-dir}/ports.json` so a
/// second start serves on the same ones (the kubeconfig and the invoke URLs stay valid).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ports(BTreeMap<String, u16>);

// === impl Ports ===

impl Ports {
    fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("ports.json")
    }

    /// The remembered ports; none when the file is missing or unreadable.
    pub fn load(data_dir: &Path) -> Self {
        let text = std::fs::read_to_string(Self::path(data_dir)).unwrap_or_default();
        let map = serde_json::from_str::<BTreeMap<String, u16>>(&text).unwrap_or_default();
        Self(map)
    }

    /// Writes the ports, whole, then renamed: a reader never sees half a file.
    pub fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        let path = Self::path(data_dir);
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_string(&self.0).context("encoding ports")?;
        std::fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Records the port `name` is bound on.
    pub fn set(&mut self, name: &str, addr: SocketAddr) {
        self.0.insert(name.to_string(), addr.port());
    }

    /// The address for `name`: the one given on the command line; else the remembered port,
    /// else `default`, on 127.0.0.1 when it is free; else a free port (port 0).
    pub fn pick(&self, name: &str, given: Option<SocketAddr>, default: Option<u16>) -> SocketAddr {
        if let Some(addr) = given {
            return addr;
        }
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        for port in self.0.get(name).copied().into_iter().chain(default) {
            if std::net::TcpListener::bind(loopback(port)).is_ok() {
                return loopback(port);
            }
            tracing::warn!(listener = name, port, "port in use; trying another");
        }
        loopback(0)
    }
}

// === The petstore Service ===

/// The Service `petstore` and an EndpointSlice whose one ready endpoint is the built-in
/// backend at `addr`: what the endpoints controller would write for a pod in a cluster.
pub fn petstore_objects(addr: SocketAddr) -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": PETSTORE_SERVICE,
                "namespace": PETSTORE_NAMESPACE,
                "labels": {"app.kubernetes.io/name": "petstore"},
            },
            "spec": {
                "selector": {"app.kubernetes.io/name": "petstore"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        }),
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "petstore-turnpike-local",
                "namespace": PETSTORE_NAMESPACE,
                "labels": {
                    "kubernetes.io/service-name": PETSTORE_SERVICE,
                    "endpointslice.kubernetes.io/managed-by": "turnpike-local",
                },
            },
            "addressType": if addr.is_ipv4() { "IPv4" } else { "IPv6" },
            "ports": [{"name": "http", "port": addr.port(), "protocol": "TCP"}],
            "endpoints": [{"addresses": [addr.ip().to_string()], "conditions": {"ready": true}}],
        }),
    ]
}

// === The summary ===

/// Waits (bounded) until every Turnpike object reports Ready for its current generation;
/// returns the ones that did not, as `Kind name: message`.
pub async fn wait_ready(client: &Client) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + READY_DEADLINE;
    loop {
        let pending = not_ready(client).await;
        if pending.is_empty() || tokio::time::Instant::now() >= deadline {
            return pending;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn not_ready(client: &Client) -> Vec<String> {
    let kinds = [
        ApiResource::erase::<RestApi>(&()),
        ApiResource::erase::<turnpike_api::Deployment>(&()),
        ApiResource::erase::<Stage>(&()),
        ApiResource::erase::<UsagePlan>(&()),
        ApiResource::erase::<ApiKey>(&()),
    ];
    let mut pending = Vec::new();
    for ar in &kinds {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), ar);
        let list = match api.list(&ListParams::default()).await {
            Ok(list) => list,
            Err(e) => {
                pending.push(format!("{}: {e}", ar.plural));
                continue;
            }
        };
        for obj in list {
            let ready = obj.data["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready");
            let current = ready.is_some_and(|c| {
                c["status"] == "True"
                    && c["observedGeneration"].as_i64() == obj.metadata.generation.or(Some(0))
            });
            if !current {
                let message = ready
                    .and_then(|c| c["message"].as_str())
                    .unwrap_or("no status yet");
                pending.push(format!("{} {}: {message}", ar.kind, obj.name_any()));
            }
        }
    }
    pending
}

/// What `turnpike local` prints once ready: the kubeconfig line, each stage's invoke URL and
/// curl commands to paste (with the API key, read from its Secret, where a usage plan covers
/// the stage).
pub async fn summary(client: &Client, kubeconfig: &Path, data_dir: &Path, pending: &[String]) -> String {
    let kubeconfig = std::path::absolute(kubeconfig).unwrap_or_else(|_| kubeconfig.to_path_buf());
    let mut out = format!(
        "\nTurnpike is running (data in {}; Ctrl-C stops it, the next start resumes).\n\n  export KUBECONFIG={}\n  kubectl get turnpike\n",
        data_dir.display(),
        kubeconfig.display()
    );
    let stages = Api::<Stage>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    if stages.is_empty() {
        out.push_str(
            "\nNo stages yet: apply some (kubectl apply -f config/examples/) or start with --examples.\n",
        );
        return out;
    }
    let apis: BTreeMap<(String, String), RestApi> = Api::<RestApi>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .map(|a| ((a.namespace().unwrap_or_default(), a.name_any()), a))
        .collect();
    let keys = stage_keys(client).await;

    out.push_str("\nStages:\n");
    let width = stages.iter().map(|s| s.name_any().len()).max().unwrap_or(0);
    for s in &stages {
        let url = s
            .status
            .as_ref()
            .and_then(|st| st.invoke_url.as_deref())
            .unwrap_or("(not ready)");
        out.push_str(&format!("  {:width$}  {url}\n", s.name_any()));
    }
    out.push_str("\nTry:\n");
    for s in &stages {
        let Some(url) = s.status.as_ref().and_then(|st| st.invoke_url.as_deref()) else {
            continue;
        };
        let ns = s.namespace().unwrap_or_default();
        let api = apis.get(&(ns.clone(), s.spec.rest_api_ref.name.clone()));
        let path = api.and_then(|a| sample_path(&a.spec)).unwrap_or_default();
        let stage_ref = (ns, s.spec.rest_api_ref.name.clone(), s.spec.stage_name.clone());
        match keys.get(&stage_ref) {
            Some(key) => out.push_str(&format!("  curl -k -H 'x-api-key: {key}' '{url}{path}'\n")),
            None => out.push_str(&format!("  curl -k '{url}{path}'\n")),
        }
    }
    if !pending.is_empty() {
        out.push_str("\nNot ready yet (kubectl describe says why):\n");
        for p in pending {
            out.push_str(&format!("  {p}\n"));
        }
    }
    out
}

/// A GET path of the API to show in a curl command: the first GET resource, its parameters
/// filled with `1`, without the leading `/` (invoke URLs end with one).
fn sample_path(spec: &turnpike_api::RestApiSpec) -> Option<String> {
    let (path, _) = spec
        .resources
        .iter()
        .find(|(_, methods)| methods.contains_key("GET") || methods.contains_key("ANY"))?;
    let filled: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                "1".to_string()
            } else {
                seg.to_string()
            }
        })
        .collect();
    Some(filled.join("/"))
}

/// One API key value per stage a usage plan covers, keyed (namespace, RestApi, stage name):
/// the value of the first ApiKey of a plan on the stage whose value is in a readable Secret.
async fn stage_keys(client: &Client) -> BTreeMap<(String, String, String), String> {
    let mut out = BTreeMap::new();
    let list = |client: &Client| {
        let keys = Api::<ApiKey>::all(client.clone());
        async move {
            keys.list(&ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default()
        }
    };
    for key in list(client).await {
        let ns = key.namespace().unwrap_or_default();
        let Some(secret_ref) = key.spec.value_from.as_ref().map(|v| &v.secret_key_ref) else {
            continue;
        };
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
        let Ok(secret) = secrets.get(&secret_ref.name).await else {
            continue;
        };
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&secret_ref.key))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(&secret_ref.key).cloned())
            });
        let Some(value) = value else { continue };
        let plans: Api<UsagePlan> = Api::namespaced(client.clone(), &ns);
        for plan_ref in &key.spec.usage_plan_refs {
            let Ok(plan) = plans.get(&plan_ref.name).await else {
                continue;
            };
            for stage in &plan.spec.api_stages {
                out.entry((ns.clone(), stage.rest_api_ref.name.clone(), stage.stage.clone()))
                    .or_insert_with(|| value.clone());
            }
        }
    }
    out
}
