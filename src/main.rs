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
        // `turnpike local`: the embedded API server (the controller and proxy join it through
        // the kubeconfig it writes).
        Command::Local(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .init();
            let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            rt.block_on(async move {
                let config =
                    turnpike::apiserver::ApiServerConfig::new(&args.data_dir).with_addr(args.apiserver_addr);
                let handle = turnpike::apiserver::ApiServer::start(config)
                    .await
                    .context("starting the API server")?;
                if !args.apply.is_empty() {
                    let client = handle
                        .client()
                        .await
                        .context("building a client from the kubeconfig")?;
                    turnpike::apiserver::manifests::apply(client, &args.apply)
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
    }
}
