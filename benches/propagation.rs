//! Propagation latency (a benchmark, not a test): from the apply of a changed Stage to the
//! first request served by the new deployment, with N routes present.
//!
//! ```sh
//! cargo bench --bench propagation                        # 10, 1 000, 10 000 routes, 50 trials
//! cargo bench --bench propagation -- --routes 10000 --trials 100
//! cargo bench --bench propagation -- --kubectl           # apply with /usr/bin/kubectl
//! cargo bench --bench propagation -- --gap-ms 300        # applies 300 ms apart (held off)
//! ```
//!
//! Each size gets a fresh embedded API server and one in-process replica (controller + proxy,
//! default 100 ms hold-off). Filler APIs of 100 MOCK routes each, deployed to one stage each,
//! make up the route count. The measured API has two Deployments that answer `{"v":"a"}` and
//! `{"v":"b"}`; each trial points its Stage at the other one — server-side apply through the
//! client (what `kubectl apply --server-side` sends), or with `--kubectl` a real
//! `kubectl apply -f -` process, whose start-up is then part of the number — and polls the
//! stage over a keep-alive HTTP connection until the new deployment answers.

use std::{
    io::Write as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use turnpike_api::Deployment;
use turnpike_api::RestApi;
use turnpike_api::Stage;
use turnpike_controller::{
    Config, LeaseConfig, apply,
    node::{Node, NodeConfig},
};
use turnpike_core::routing::Listener;
use turnpike_proxy::{ListenerConfig, ProxyConfig};

const FILLER_ROUTES: usize = 100;

fn mock(v: &str) -> Value {
    json!({"integration": {
        "type": "MOCK",
        "requestTemplates": {"application/json": "{\"statusCode\": 200}"},
        "integrationResponses": [{"statusCode": "200", "responseTemplates": {"application/json": format!("{{\"v\":\"{v}\"}}")}}]
    }})
}

fn rest_api(name: &str, resources: Value) -> anyhow::Result<RestApi> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "turnpike.dev/v1alpha1", "kind": "RestApi",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"endpointConfiguration": {"types": ["REGIONAL"]}, "resources": resources}
    }))?)
}

fn deployment(name: &str, api: &str) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "turnpike.dev/v1alpha1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"restApiRef": {"name": api}}
    }))?)
}

fn stage_json(name: &str, api: &str, deployment: &str) -> Value {
    json!({
        "apiVersion": "turnpike.dev/v1alpha1", "kind": "Stage",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"restApiRef": {"name": api}, "stageName": "prod", "deploymentRef": {"name": deployment}}
    })
}

struct Args {
    routes: Vec<usize>,
    trials: usize,
    kubectl: bool,
    /// Pause between trials: ≥ 1 s makes each apply an isolated change (rebuilt at once);
    /// shorter gaps land inside the 100 ms hold-off of a burst.
    gap: Duration,
}

fn args() -> anyhow::Result<Args> {
    let mut out = Args {
        routes: vec![10, 1_000, 10_000],
        trials: 50,
        kubectl: false,
        gap: Duration::from_millis(1100),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--routes" => {
                out.routes = it
                    .next()
                    .context("--routes N[,N…]")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--trials" => out.trials = it.next().context("--trials N")?.parse()?,
            "--kubectl" => out.kubectl = true,
            "--gap-ms" => out.gap = Duration::from_millis(it.next().context("--gap-ms N")?.parse()?),
            _ => {} // cargo bench passes --bench
        }
    }
    Ok(out)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(routes: usize, args: &Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = turnpike_apiserver::ApiServer::start(
        turnpike_apiserver::ApiServerConfig::new(dir.path()).with_addr("127.0.0.1:0".parse()?),
    )
    .await?;
    let client = server.client().await?;
    apply::install_crds(&client).await?;
    let any = "127.0.0.1:0".parse()?;
    let node = Node::start(
        client.clone(),
        NodeConfig {
            controller: Config::new(LeaseConfig::new("default", "bench")),
            proxy: ProxyConfig {
                listeners: vec![ListenerConfig {
                    addr: any,
                    listener: Listener::Public,
                    tls: false,
                }],
                default_access_log: None,
                ..ProxyConfig::default()
            },
            admin_addr: any,
            invoke_base_from_public: false,
            count_replicas: false,
            usage_status_every: std::time::Duration::from_secs(30),
            admin_token_file: None,
        },
    )
    .await?;
    let plain = node
        .listeners
        .iter()
        .find(|l| l.listener == Listener::Public && !l.tls)
        .map(|l| l.addr)
        .context("no plain public listener")?;

    let apis: Api<RestApi> = Api::namespaced(client.clone(), "default");
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let stages: Api<Stage> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();

    // Filler: APIs of up to 100 routes, each deployed to a stage.
    let filler = routes.saturating_sub(1);
    let mut made = 0;
    let mut i = 0;
    while made < filler {
        let n = FILLER_ROUTES.min(filler - made);
        let resources: serde_json::Map<String, Value> = (0..n)
            .map(|r| (format!("/r{r}"), json!({"GET": mock("f")})))
            .collect();
        let name = format!("filler-{i}");
        apis.create(&pp, &rest_api(&name, Value::Object(resources))?)
            .await?;
        deps.create(&pp, &deployment(&format!("{name}-v1"), &name)?)
            .await?;
        stages
            .create(
                &pp,
                &serde_json::from_value(stage_json(&name, &name, &format!("{name}-v1")))?,
            )
            .await?;
        made += n;
        i += 1;
    }

    // The measured API: deployment a, then b, of two versions of the definition.
    apis.create(&pp, &rest_api("bench", json!({"/v": {"GET": mock("a")}}))?)
        .await?;
    deps.create(&pp, &deployment("bench-a", "bench")?).await?;
    wait_for(|| async {
        let d = deps.get("bench-a").await.ok()?;
        d.status?.deployment_id
    })
    .await?;
    apis.replace("bench", &pp, &{
        let mut a = apis.get("bench").await?;
        a.spec = rest_api("bench", json!({"/v": {"GET": mock("b")}}))?.spec;
        a
    })
    .await?;
    deps.create(&pp, &deployment("bench-b", "bench")?).await?;
    stages
        .create(
            &pp,
            &serde_json::from_value(stage_json("bench", "bench", "bench-a"))?,
        )
        .await?;
    let api_id = wait_for(|| async { apis.get("bench").await.ok()?.status?.api_id }).await?;
    wait_for(|| async {
        let ok = deps.get("bench-b").await.ok()?.status?.deployment_id.is_some();
        ok.then_some(())
    })
    .await?;

    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let url: hyper::Uri = format!("http://{plain}/restapis/{api_id}/prod/_user_request_/v").parse()?;
    let get_v = || {
        let http = http.clone();
        let url = url.clone();
        async move {
            let resp = http.get(url).await.ok()?;
            let body = resp.into_body().collect().await.ok()?.to_bytes();
            let v: Value = serde_json::from_slice(&body).ok()?;
            v["v"].as_str().map(str::to_string)
        }
    };
    wait_for(|| async { (get_v().await? == "a").then_some(()) }).await?;
    let present = node.table.load().route_count();

    let mut samples = Vec::with_capacity(args.trials);
    for t in 0..args.trials {
        let (target, dep) = if t % 2 == 0 {
            ("b", "bench-b")
        } else {
            ("a", "bench-a")
        };
        let start = Instant::now();
        if args.kubectl {
            let yaml = serde_yaml::to_string(&stage_json("bench", "bench", dep))?;
            let mut child = Command::new("/usr/bin/kubectl")
                .env("KUBECONFIG", &server.kubeconfig)
                .args(["apply", "-f", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()?;
            child.stdin.take().context("stdin")?.write_all(yaml.as_bytes())?;
            // Poll while kubectl runs: the clock stops at the first new answer either way.
            let mut child = Some(child);
            loop {
                if get_v().await.as_deref() == Some(target) {
                    break;
                }
                anyhow::ensure!(start.elapsed() < Duration::from_secs(30), "trial {t} timed out");
                if let Some(c) = child.as_mut()
                    && c.try_wait()?.is_some()
                {
                    child = None;
                }
            }
            samples.push(start.elapsed());
            if let Some(mut c) = child {
                c.wait()?;
            }
        } else {
            stages
                .patch(
                    "bench",
                    &PatchParams::apply("bench").force(),
                    &Patch::Apply(stage_json("bench", "bench", dep)),
                )
                .await?;
            loop {
                if get_v().await.as_deref() == Some(target) {
                    break;
                }
                anyhow::ensure!(start.elapsed() < Duration::from_secs(30), "trial {t} timed out");
            }
            samples.push(start.elapsed());
        }
        tokio::time::sleep(args.gap).await;
    }
    samples.sort();
    #[allow(clippy::print_stdout)]
    {
        println!(
            "routes={present:>6} trials={:>3} apply={:<8} gap={:>5?} p50={:>7.1?} p90={:>7.1?} p99={:>7.1?} max={:>7.1?}",
            samples.len(),
            if args.kubectl { "kubectl" } else { "ssa" },
            args.gap,
            percentile(&samples, 0.50),
            percentile(&samples, 0.90),
            percentile(&samples, 0.99),
            samples[samples.len() - 1],
        );
    }
    node.shutdown().await;
    drop(server);
    Ok(())
}

async fn wait_for<T, F, Fut>(mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        anyhow::ensure!(Instant::now() < end, "timed out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        for &routes in &args.routes {
            run(routes, &args).await?;
        }
        Ok(())
    })
}
