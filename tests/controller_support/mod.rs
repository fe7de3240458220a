//! Helpers for the controller's end-to-end tests: the embedded API server on 127.0.0.1:0,
//! real kubectl (`/usr/bin/kubectl`, or `$KUBECTL`) against the kubeconfig it wrote, and
//! Turnpike replicas (controller + proxy + admin, all on port 0) started in-process.
//!
//! Include with `mod controller_support;`, beside `#[path = "support/proxy.rs"] mod support;`
//! (whose manifest builders it uses).

#![allow(dead_code)]

use std::{
    future::Future,
    io::Write as _,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use crate::support::{deployment_yaml, stage_yaml};
use serde_json::Value;
use turnpike_apiserver::{ApiServer, ApiServerConfig, ApiServerHandle};
use turnpike_controller::{
    Config, LeaseConfig, apply,
    node::{Node, NodeConfig},
};
use turnpike_core::routing::Listener;
use turnpike_proxy::{ListenerConfig, ProxyConfig};

/// The bound of every wait in these tests.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// An embedded API server with the Turnpike CRDs installed.
pub struct Cluster {
    pub server: ApiServerHandle,
    pub kubeconfig: PathBuf,
    pub client: kube::Client,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ApiServerConfig::new(dir.path()).with_addr("127.0.0.1:0".parse().expect("addr"));
        let server = ApiServer::start(config).await.expect("api server starts");
        let client = server.client().await.expect("client");
        apply::install_crds(&client).await.expect("CRDs installed");
        Cluster {
            kubeconfig: server.kubeconfig.clone(),
            server,
            client,
            _dir: dir,
        }
    }

    fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "/usr/bin/kubectl".into());
        let mut cmd = Command::new(bin);
        cmd.env("KUBECONFIG", &self.kubeconfig).args(args);
        cmd
    }

    /// Runs kubectl; `Err(stderr)` when it fails.
    pub fn try_kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let mut cmd = self.kubectl_cmd(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl runs");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        } else {
            drop(child.stdin.take());
        }
        let out = child.wait_with_output().expect("kubectl output");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs kubectl and panics with its stderr when it fails.
    pub fn kubectl(&self, args: &[&str]) -> String {
        self.try_kubectl(args, None)
            .unwrap_or_else(|e| panic!("kubectl {args:?} failed: {e}"))
    }

    /// `kubectl apply -f -`.
    pub fn apply(&self, yaml: &str) -> String {
        self.try_kubectl(&["apply", "-f", "-"], Some(yaml))
            .unwrap_or_else(|e| panic!("kubectl apply failed: {e}\n{yaml}"))
    }

    /// `kubectl get {what} -o json` (namespace `default`), or None when it does not exist.
    pub fn get(&self, what: &str) -> Option<Value> {
        let (kind, name) = what.split_once('/').expect("kind/name");
        self.try_kubectl(&["get", kind, name, "-n", "default", "-o", "json"], None)
            .ok()
            .map(|s| serde_json::from_str(&s).expect("JSON"))
    }

    /// A condition of an object (`{"type","status","reason","message",…}`).
    pub fn condition(&self, what: &str, type_: &str) -> Option<Value> {
        let obj = self.get(what)?;
        obj["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)
            .cloned()
    }

    /// Starts a replica with identity `id`, every listener on 127.0.0.1:0.
    pub async fn node(&self, id: &str) -> Node {
        self.node_with(id, |_| {}).await
    }

    /// [`Cluster::node`] with the controller's configuration changed by `tweak`.
    pub async fn node_with(&self, id: &str, tweak: impl FnOnce(&mut Config)) -> Node {
        let mut controller = Config::new(LeaseConfig::new("default", id));
        controller.holdoff = Duration::from_millis(50);
        tweak(&mut controller);
        let any = "127.0.0.1:0".parse().expect("addr");
        let proxy = ProxyConfig {
            listeners: vec![
                ListenerConfig {
                    addr: any,
                    listener: Listener::Public,
                    tls: true,
                },
                ListenerConfig {
                    addr: any,
                    listener: Listener::Private,
                    tls: true,
                },
            ],
            default_access_log: None,
            ..ProxyConfig::default()
        };
        let client = self.server.client().await.expect("client");
        Node::start(
            client,
            NodeConfig {
                controller,
                proxy,
                admin_addr: any,
                invoke_base_from_public: true,
                count_replicas: false,
                usage_status_every: Duration::from_secs(30),
                admin_token_file: None,
            },
        )
        .await
        .expect("node starts")
    }
}

/// Polls `f` every 100 ms until it returns `Some`, at most `deadline`; panics with `what`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < end, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `https://{public}/restapis/{api}/{stage}/_user_request_{path}`.
pub fn url(addr: std::net::SocketAddr, api: &str, stage: &str, path: &str) -> String {
    format!("https://{addr}/restapis/{api}/{stage}/_user_request_{path}")
}

/// A RestApi `name` with one MOCK method `GET /v` answering `{"v": "<version>"}`, and the
/// given extra `spec` lines (indented two spaces).
pub fn mock_api(name: &str, version: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: turnpike.dev/v1alpha1
kind: RestApi
metadata: {{name: {name}, namespace: default}}
spec:
{extra}
  resources:
    /v:
      GET:
        integration:
          type: MOCK
          requestTemplates:
            application/json: '{{"statusCode": 200}}'
          integrationResponses:
            - statusCode: "200"
              responseTemplates:
                application/json: '{{"v": "{version}"}}'
"#
    )
}

/// A Deployment `name` of RestApi `api`.
pub fn deployment(name: &str, api: &str) -> String {
    deployment_yaml("default", api, name)
}

/// [`mock_api`], its Deployment `{name}-v1` and its `prod` Stage (`{name}-prod`).
pub fn mock_stack(name: &str, version: &str, extra: &str) -> String {
    let v1 = format!("{name}-v1");
    mock_api(name, version, extra)
        + &deployment_yaml("default", name, &v1)
        + &stage_yaml("default", name, "prod", &v1, "")
}

impl Cluster {
    /// The apiId of a RestApi, once the controller reported it.
    pub async fn api_id(&self, name: &str) -> String {
        eventually(&format!("apiId of {name}"), DEADLINE, || async {
            self.get(&format!("restapi/{name}"))?["status"]["apiId"]
                .as_str()
                .map(str::to_string)
        })
        .await
    }
}

/// A `turnpike run` process (controller + proxy + admin, every listener on port 0) against
/// the cluster's kubeconfig, its log in `dir/{id}.log`; killed when dropped.
pub struct Replica {
    pub id: String,
    pub child: std::process::Child,
    addresses: Value,
}

impl Replica {
    /// Starts one with `extra` arguments and waits until its listeners are bound.
    pub async fn start(c: &Cluster, dir: &std::path::Path, id: &str, extra: &[&str]) -> Replica {
        let file = dir.join(format!("{id}.json"));
        let log = std::fs::File::create(dir.join(format!("{id}.log"))).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_turnpike"))
            .args([
                "run",
                "--public-addr",
                "127.0.0.1:0",
                "--private-addr",
                "127.0.0.1:0",
            ])
            .args(["--admin-addr", "127.0.0.1:0", "--lease-namespace", "default"])
            .args(["--identity", id])
            .args(extra)
            .arg("--addresses-file")
            .arg(&file)
            .env("KUBECONFIG", &c.kubeconfig)
            .env("RUST_LOG", "info,turnpike::access_log=off")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("turnpike runs");
        let addresses = eventually(&format!("{id} bound its listeners"), DEADLINE, || async {
            let text = std::fs::read_to_string(&file).ok()?;
            serde_json::from_str::<Value>(&text).ok()
        })
        .await;
        Replica {
            id: id.to_string(),
            child,
            addresses,
        }
    }

    /// The address of a listener: `public`, `private` or `admin`.
    pub fn addr(&self, which: &str) -> String {
        self.addresses[which].as_str().expect("address").to_string()
    }

    /// VmRSS of the process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
