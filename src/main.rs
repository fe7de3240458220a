//! The `turnpike` binary: a thin command line over the library.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use turnpike::controller::{
    apply,
    node::{Node, NodeConfig},
};

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

/// Options shared by `run` and `local`: listeners, leader election, hold-off.
#[derive(Debug, Args)]
struct NodeArgs {
    /// Address of the public listener (REGIONAL and EDGE APIs).
    #[arg(long, env = "TURNPIKE_PUBLIC_ADDR", default_value = "0.0.0.0:8443")]
    public_addr: SocketAddr,
    /// Address of the private listener (PRIVATE APIs).
    #[arg(long, env = "TURNPIKE_PRIVATE_ADDR", default_value = "0.0.0.0:9443")]
    private_addr: SocketAddr,
    /// Address of the admin listener (/metrics, /healthz, /readyz).
    #[arg(long, env = "TURNPIKE_ADMIN_ADDR", default_value = "0.0.0.0:9090")]
    admin_addr: SocketAddr,
    /// Watch only this namespace (default: every namespace).
    #[arg(long, env = "TURNPIKE_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// The namespace of the leader-election Lease (the controller's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's identity in the Lease (default: the host name and a random suffix).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Quiet time after the last change before the routing table is rebuilt.
    #[arg(long, default_value_t = 100)]
    holdoff_ms: u64,
    /// Longest a burst of changes delays a rebuild.
    #[arg(long, default_value_t = 1000)]
    holdoff_max_ms: u64,
    /// The header that forces (`always`) or excludes (`never`) the canary.
    #[arg(long, default_value = "x-turnpike-canary")]
    canary_header: String,
    /// The region in `{apiId}.execute-api.{region}.{baseDomain}`.
    #[arg(long, default_value = "local")]
    region: String,
    /// The base domain in `{apiId}.execute-api.{region}.{baseDomain}`.
    #[arg(long, default_value = "turnpike.dev")]
    base_domain: String,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    node: NodeArgs,
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
    #[command(flatten)]
    node: NodeArgs,
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
        Command::Run(args) => run(args),
        Command::Local(args) => run_local(args),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the tokio runtime")
}

/// The replica's configuration from the command line.
fn node_config(args: &NodeArgs, local: bool) -> anyhow::Result<NodeConfig> {
    use turnpike::{
        controller::{Config, LeaseConfig},
        proxy::{ListenerConfig, ProxyConfig},
        routing::Listener,
    };
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "turnpike".into());
        format!("{host}-{:08x}", rand::random::<u32>())
    });
    let mut controller = Config::new(LeaseConfig::new(&args.lease_namespace, identity));
    controller.holdoff = Duration::from_millis(args.holdoff_ms);
    controller.holdoff_max = Duration::from_millis(args.holdoff_max_ms);
    controller.namespace = args.watch_namespace.clone();
    controller.compile.hosts.region = args.region.clone();
    controller.compile.hosts.base_domain = args.base_domain.clone();
    let proxy = ProxyConfig {
        listeners: vec![
            ListenerConfig {
                addr: args.public_addr,
                listener: Listener::Public,
                tls: true,
            },
            ListenerConfig {
                addr: args.private_addr,
                listener: Listener::Private,
                tls: true,
            },
        ],
        canary_header: http::HeaderName::from_bytes(args.canary_header.as_bytes())
            .context("--canary-header is not a header name")?,
        ..ProxyConfig::default()
    };
    Ok(NodeConfig {
        controller,
        proxy,
        admin_addr: args.admin_addr,
        invoke_base_from_public: local,
    })
}

/// Serves until SIGINT or SIGTERM, then releases the Lease and drains.
async fn serve(client: kube::Client, config: NodeConfig) -> anyhow::Result<()> {
    let node = Node::start(client, config)
        .await
        .context("starting the gateway")?;
    tracing::info!(
        public = ?node.public,
        private = ?node.private,
        admin = %node.admin,
        "turnpike is serving"
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping");
    node.shutdown().await;
    Ok(())
}

/// `turnpike run`: the controller and the proxy against KUBECONFIG or the in-cluster config.
fn run(args: RunArgs) -> anyhow::Result<()> {
    turnpike::telemetry::init().context("installing the log subscriber")?;
    let config = node_config(&args.node, false)?;
    runtime()?.block_on(async move {
        let client = kube::Client::try_default()
            .await
            .context("connecting to Kubernetes (KUBECONFIG or in-cluster)")?;
        serve(client, config).await
    })
}

/// `turnpike local`: the embedded API server, then the controller and the proxy, which reach
/// it only through the kubeconfig it wrote, as they would a real cluster.
fn run_local(args: LocalArgs) -> anyhow::Result<()> {
    turnpike::telemetry::init().context("installing the log subscriber")?;
    let config = node_config(&args.node, true)?;
    runtime()?.block_on(async move {
        let server_config =
            turnpike::apiserver::ApiServerConfig::new(&args.data_dir).with_addr(args.apiserver_addr);
        let server = turnpike::apiserver::ApiServer::start(server_config)
            .await
            .context("starting the API server")?;
        tracing::info!(
            kubeconfig = %server.kubeconfig.display(),
            "export KUBECONFIG={} to use kubectl",
            server.kubeconfig.display()
        );
        let kubeconfig =
            kube::config::Kubeconfig::read_from(&server.kubeconfig).context("reading the kubeconfig")?;
        let client_config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
                .await
                .context("loading the kubeconfig")?;
        let client = kube::Client::try_from(client_config).context("building the client")?;
        apply::install_crds(&client).await?;
        if !args.apply.is_empty() {
            let objects = apply::read_manifests(&args.apply)?;
            apply::apply_objects(&client, &objects).await?;
        }
        let served = serve(client, config).await;
        drop(server);
        served
    })
}
