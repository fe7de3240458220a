//! The `turnpike` binary: a thin command line over the library.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

/// Turnpike: the AWS API Gateway model for any Kubernetes cluster.
#[derive(Debug, Parser)]
#[command(name = "turnpike", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller and the proxy against the cluster in KUBECONFIG (or in-cluster).
    Run(RunArgs),
    /// Run an embedded Kubernetes-compatible API server, the controller and the proxy on this
    /// machine, and write a kubeconfig for kubectl.
    Local(LocalArgs),
    /// Print every CustomResourceDefinition as multi-document YAML.
    Crds,
    /// Print the version.
    Version,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Address of the public listener (REGIONAL and EDGE APIs).
    #[arg(long, env = "TURNPIKE_PUBLIC_ADDR", default_value = "0.0.0.0:8443")]
    public_addr: SocketAddr,
    /// Address of the private listener (PRIVATE APIs).
    #[arg(long, env = "TURNPIKE_PRIVATE_ADDR", default_value = "0.0.0.0:9443")]
    private_addr: SocketAddr,
    /// Address of the admin listener (/metrics, /healthz, /readyz).
    #[arg(long, env = "TURNPIKE_ADMIN_ADDR", default_value = "0.0.0.0:9090")]
    admin_addr: SocketAddr,
}

#[derive(Debug, Args)]
struct LocalArgs {
    /// Where the embedded API server keeps its database, certificates and kubeconfig.
    #[arg(long, default_value = ".turnpike")]
    data_dir: PathBuf,
    /// Address of the embedded API server.
    #[arg(long, default_value = "127.0.0.1:6443")]
    apiserver_addr: SocketAddr,
    /// Files or directories of manifests to apply at start-up (e.g. `config/samples`).
    #[arg(long = "apply", short = 'f')]
    apply: Vec<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => {
            let yaml = turnpike::api::crds_yaml(&turnpike::api::crds()).context("rendering CRDs")?;
            #[allow(clippy::print_stdout)]
            {
                print!("{yaml}");
            }
            Ok(())
        }
        Command::Version => {
            #[allow(clippy::print_stdout)]
            {
                println!("turnpike {}", env!("CARGO_PKG_VERSION"));
            }
            Ok(())
        }
        Command::Run(args) => anyhow::bail!("`turnpike run` is not available yet ({args:?})"),
        Command::Local(args) => run_local(args),
    }
}

/// `turnpike local`: the embedded API server (the controller and proxy join it through the
/// kubeconfig it writes).
fn run_local(args: LocalArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    rt.block_on(async move {
        let config = turnpike::apiserver::ApiServerConfig::new(&args.data_dir).with_addr(args.apiserver_addr);
        let handle = turnpike::apiserver::ApiServer::start(config)
            .await
            .context("starting the API server")?;
        if !args.apply.is_empty() {
            let client = handle
                .client()
                .await
                .context("building a client from the kubeconfig")?;
            apply_manifests(client, &args.apply)
                .await
                .context("applying --apply manifests")?;
        }
        tracing::info!(
            kubeconfig = %handle.kubeconfig.display(),
            "export KUBECONFIG={} to use kubectl",
            handle.kubeconfig.display()
        );
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted, stopping"),
            _ = handle.wait() => {}
        }
        Ok(())
    })
}

/// Reads every YAML/JSON document of the given files and directories (directories: their
/// `.yaml`, `.yml` and `.json` files in name order), CRDs first.
fn read_manifests(paths: &[PathBuf]) -> anyhow::Result<Vec<serde_json::Value>> {
    use serde::Deserialize as _;
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.extension()
                        .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
                })
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(p.clone());
        }
    }
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v =
                serde_json::Value::deserialize(doc).with_context(|| format!("parsing {}", f.display()))?;
            if v.is_object() {
                docs.push(v);
            }
        }
    }
    docs.sort_by_key(|d| d["kind"] != "CustomResourceDefinition");
    Ok(docs)
}

/// `--apply`: server-side applies every manifest (field manager `turnpike-local`) through the
/// API, the same way `kubectl apply --server-side -f` would.
async fn apply_manifests(client: kube::Client, paths: &[PathBuf]) -> anyhow::Result<()> {
    use kube::{
        api::{Api, DynamicObject, Patch, PatchParams},
        core::GroupVersionKind,
        discovery::{Discovery, Scope},
    };
    let mut discovery = Discovery::new(client.clone()).run().await?;
    for doc in read_manifests(paths)? {
        let obj: DynamicObject = serde_json::from_value(doc)?;
        let types = obj.types.clone().context("a manifest without apiVersion/kind")?;
        let gvk = GroupVersionKind::try_from(&types)?;
        let name = obj
            .metadata
            .name
            .clone()
            .context("a manifest without metadata.name")?;
        let (ar, caps) = match discovery.resolve_gvk(&gvk) {
            Some(found) => found,
            None => {
                // A CRD applied just before: refresh discovery once.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                discovery = Discovery::new(client.clone()).run().await?;
                discovery
                    .resolve_gvk(&gvk)
                    .with_context(|| format!("unknown kind {gvk:?}"))?
            }
        };
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                obj.metadata.namespace.as_deref().unwrap_or("default"),
                &ar,
            ),
            Scope::Cluster => Api::all_with(client.clone(), &ar),
        };
        api.patch(
            &name,
            &PatchParams::apply("turnpike-local").force(),
            &Patch::Apply(&obj),
        )
        .await?;
        tracing::info!(kind = %gvk.kind, %name, "applied");
    }
    Ok(())
}
