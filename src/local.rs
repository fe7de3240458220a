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
        "config/examples/authorizers.yaml",
        include_str!("../config/examples/authorizers.yaml"),
    ),
    (
        "config/examples/cache.yaml",
        include_str!("../config/examples/cache.yaml"),
    ),
    (
        "config/examples/cache-redis.yaml",
        include_str!("../config/examples/cache-redis.yaml"),
    ),
    (
        "config/examples/canary.yaml",
        include_str!("../config/examples/canary.yaml"),
    ),
    (
        "config/examples/cors.yaml",
        include_str!("../config/examples/cors.yaml"),
    ),
    (
        "config/examples/mock.yaml",
        include_str!("../config/examples/mock.yaml"),
    ),
    (
        "config/examples/openapi-import.yaml",
        include_str!("../config/examples/openapi-import.yaml"),
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
        "config/examples/soap.yaml",
        include_str!("../config/examples/soap.yaml"),
    ),
    (
        "config/examples/usage-plan.yaml",
        include_str!("../config/examples/usage-plan.yaml"),
    ),
    (
        "config/examples/validation.yaml",
        include_str!("../config/examples/validation.yaml"),
    ),
    (
        "config/examples/websocket.yaml",
        include_str!("../config/examples/websocket.yaml"),
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
        // Only a call that answers without more than a key or the demo authorizer's token: no
        // WebSocket API (curl does not speak it), no API without a GET, no method behind
        // another authorizer.
        let Some((path, auth)) = api.and_then(|a| {
            sample_path(&a.spec)
                .map(|p| (p, ""))
                .or_else(|| demo_path(&a.spec).map(|p| (p, " -H 'Authorization: Bearer allow'")))
        }) else {
            continue;
        };
        let stage_ref = (ns, s.spec.rest_api_ref.name.clone(), s.spec.stage_name.clone());
        match keys.get(&stage_ref) {
            Some(key) => out.push_str(&format!("  curl -k{auth} -H 'x-api-key: {key}' '{url}{path}'\n")),
            None => out.push_str(&format!("  curl -k{auth} '{url}{path}'\n")),
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

/// A GET path of the API to show in a curl command: the first GET (or ANY) resource that no
/// authorizer guards, its parameters filled with `1`, without the leading `/` (invoke URLs end
/// with one). `None` for a WebSocket API and an API without such a method.
fn sample_path(spec: &turnpike_api::RestApiSpec) -> Option<String> {
    let open = |m: &turnpike_api::v1alpha1::rest_api::MethodSpec| {
        m.authorization_type
            .is_none_or(|t| t == turnpike_api::v1alpha1::rest_api::AuthorizationType::None)
    };
    get_path(spec, open)
}

/// A GET path of the API guarded by the petstore's demo authorizer (a TOKEN authorizer on the
/// `Authorization` header invoking `demo-authorizer`, which allows `Bearer allow`), as
/// [`sample_path`] gives it.
fn demo_path(spec: &turnpike_api::RestApiSpec) -> Option<String> {
    use turnpike_api::v1alpha1::rest_api::{AuthorizationType, AuthorizerType};
    let demo = |m: &turnpike_api::v1alpha1::rest_api::MethodSpec| {
        m.authorization_type == Some(AuthorizationType::Custom)
            && m.authorizer_id
                .as_ref()
                .and_then(|id| spec.authorizers.get(id))
                .is_some_and(|a| {
                    a.type_ == AuthorizerType::Token
                        && a.identity_source
                            .as_deref()
                            .is_none_or(|s| s.eq_ignore_ascii_case("method.request.header.Authorization"))
                        && a.authorizer_uri.as_deref().is_some_and(|u| {
                            turnpike_core::model::function_name(u).is_ok_and(|n| n == "demo-authorizer")
                        })
                })
    };
    get_path(spec, demo)
}

/// The first GET (or ANY) resource whose method passes `wanted`, its parameters filled with
/// `1`, without the leading `/`; never of a WebSocket API.
fn get_path(
    spec: &turnpike_api::RestApiSpec,
    wanted: impl Fn(&turnpike_api::v1alpha1::rest_api::MethodSpec) -> bool,
) -> Option<String> {
    if !spec.protocol_type.is_rest() {
        return None;
    }
    let (path, _) = spec.resources.iter().find(|(_, methods)| {
        ["GET", "ANY"]
            .iter()
            .any(|verb| methods.get(*verb).is_some_and(&wanted))
    })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use turnpike_controller::ingest::world_from_yaml;
    use turnpike_core::compile::{CompileConfig, compile};

    /// The built-in examples with the petstore Service `turnpike local` writes: every object
    /// Ready with its references resolved, the Service's one endpoint the backend, and the
    /// PRIVATE stage's URL on the private listener.
    #[test]
    fn examples_and_the_petstore_service_compile_ready() {
        let backend: SocketAddr = "127.0.0.1:45678".parse().expect("addr");
        let mut yaml = String::new();
        for (_, text) in EXAMPLES {
            yaml.push_str(text);
            yaml.push_str("\n---\n");
        }
        for obj in petstore_objects(backend) {
            yaml.push_str(&serde_yaml::to_string(&obj).expect("yaml"));
            yaml.push_str("\n---\n");
        }
        let world = world_from_yaml(&yaml).expect("examples parse");
        let config = CompileConfig {
            invoke_base: Some("https://127.0.0.1:8443".into()),
            private_invoke_base: Some("https://127.0.0.1:9443".into()),
            ..CompileConfig::default()
        };
        let compiled = compile(&world, &config, 1);
        for s in &compiled.statuses {
            assert!(s.is_ready(), "{s:#?}");
            assert!(s.condition("ResolvedRefs").is_some_and(|c| c.status), "{s:#?}");
        }
        let url = |name: &str| {
            compiled
                .statuses
                .iter()
                .find(|s| *s.object().name == *name)
                .and_then(|s| s.update().fields.other.as_ref()?.invoke_url.clone())
                .unwrap_or_default()
        };
        assert!(
            url("ledger-prod").starts_with("https://127.0.0.1:9443/restapis/"),
            "{}",
            url("ledger-prod")
        );
        assert!(url("petstore-prod").starts_with("https://127.0.0.1:8443/restapis/"));
        let services: Vec<_> = compiled.table.services().collect();
        assert!(
            services.iter().any(|(_, endpoints)| endpoints.contains(&backend)),
            "{services:?}"
        );
    }

    #[test]
    fn curl_paths_fill_parameters_and_prefer_the_first_get() {
        let spec: turnpike_api::RestApiSpec = serde_yaml::from_str(
            "resources:\n  /pets/{id}/toys/{proxy+}: {GET: {integration: {type: MOCK}}}\n  /zzz: {GET: {integration: {type: MOCK}}}\n",
        )
        .expect("spec");
        assert_eq!(sample_path(&spec).as_deref(), Some("pets/1/toys/1"));
        let none: turnpike_api::RestApiSpec =
            serde_yaml::from_str("resources:\n  /a: {POST: {integration: {type: MOCK}}}\n").expect("spec");
        assert_eq!(sample_path(&none), None);
        let guarded: turnpike_api::RestApiSpec = serde_yaml::from_str(
            "resources:\n  /a: {GET: {authorizationType: JWT, authorizerId: j, integration: {type: MOCK}}}\n  /b: {GET: {integration: {type: MOCK}}}\n",
        )
        .expect("spec");
        assert_eq!(
            sample_path(&guarded).as_deref(),
            Some("b"),
            "skips the guarded method"
        );
        let websocket: turnpike_api::RestApiSpec = serde_yaml::from_str(
            "protocolType: WEBSOCKET\nrouteSelectionExpression: $request.body.action\nroutes:\n  $default: {integration: {type: MOCK}}\n",
        )
        .expect("spec");
        assert_eq!(sample_path(&websocket), None, "curl does not speak WebSocket");
    }

    #[test]
    fn the_demo_authorizers_get_is_shown_with_its_token() {
        let guarded = EXAMPLES
            .iter()
            .find(|(name, _)| name.ends_with("authorizers.yaml"))
            .map(|(_, text)| *text)
            .expect("the authorizers example");
        let api: RestApi = serde_yaml::Deserializer::from_str(guarded)
            .next()
            .map(|doc| serde::Deserialize::deserialize(doc).expect("a RestApi first"))
            .expect("a document");
        assert_eq!(sample_path(&api.spec), None, "every GET is guarded");
        assert_eq!(demo_path(&api.spec).as_deref(), Some("pets/1"));
        let other: turnpike_api::RestApiSpec = serde_yaml::from_str(
            "authorizers: {t: {type: TOKEN, authorizerUri: someone-else, functionHost: {url: 'http://f'}}}\nresources:\n  /a: {GET: {authorizationType: CUSTOM, authorizerId: t, integration: {type: MOCK}}}\n",
        )
        .expect("spec");
        assert_eq!(demo_path(&other), None, "another function's token is unknown");
    }

    #[test]
    fn ports_are_remembered_and_a_given_address_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            Ports::load(dir.path()),
            Ports::default(),
            "no file: nothing remembered"
        );
        // An OS-chosen port, free again once the listener is dropped.
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind");
        let mut ports = Ports::default();
        ports.set("public", free);
        ports.save(dir.path()).expect("save");
        let loaded = Ports::load(dir.path());
        assert_eq!(loaded, ports);
        assert_eq!(loaded.pick("public", None, Some(1)), free);
        let given = "127.0.0.1:0".parse().expect("addr");
        assert_eq!(loaded.pick("public", Some(given), None), given);
        assert_eq!(
            loaded.pick("other", None, None).port(),
            0,
            "nothing remembered: a free port"
        );
    }
}
