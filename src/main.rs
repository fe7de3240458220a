//! The `turnpike` binary: a thin command line over the library.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use turnpike_controller::node::{ControlRuntime, Node, NodeConfig};
use turnpike_telemetry::LogFormat;

mod kube_client;
#[cfg(feature = "local")]
mod local;
mod openapi;
mod petstore;
mod soap;
mod test_invoke;

/// mimalloc: a request allocates and frees a few dozen small blocks (buffers, header maps,
/// ids) on one worker thread, which is mimalloc's fast path. In the proxy benchmark it took
/// about 950 instructions off each request against glibc's malloc.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turnpike: the AWS API Gateway model for any Kubernetes cluster.
#[derive(Debug, Parser)]
#[command(name = "turnpike", version, about)]
struct Cli {
    /// Log lines on stderr: `text` (coloured only on a terminal) or `json`.
    #[arg(long, global = true, env = "TURNPIKE_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller and the proxy against the cluster in KUBECONFIG (or in-cluster).
    Run(RunArgs),
    /// Run an embedded Kubernetes-compatible API server, the controller and the proxy on this
    /// machine, and write a kubeconfig for kubectl.
    #[cfg(feature = "local")]
    Local(LocalArgs),
    /// Serve the examples' petstore backend alone (config/backend runs it in a cluster).
    Petstore(PetstoreArgs),
    /// Import an OpenAPI document as a RestApi manifest, or export a RestApi manifest as one.
    #[command(subcommand)]
    Openapi(openapi::OpenapiCommand),
    /// Run one request through a stage on a gateway's admin listener (AWS TestInvokeMethod)
    /// and print its execution log and response.
    TestInvoke(test_invoke::TestInvokeArgs),
    /// Print every CustomResourceDefinition as multi-document YAML.
    Crds,
    /// Print the version.
    Version,
}

/// Options shared by `run` and `local`: listeners, leader election, hold-off.
#[derive(Debug, Args)]
struct NodeArgs {
    /// Address of the public listener (REGIONAL and EDGE APIs) [default: 0.0.0.0:8443; local:
    /// the port of the last start, else 127.0.0.1:8443, else a free port].
    #[arg(long, env = "TURNPIKE_PUBLIC_ADDR")]
    public_addr: Option<SocketAddr>,
    /// Address of the private listener (PRIVATE APIs) [default: 0.0.0.0:9443; local: the
    /// last start's port, else 127.0.0.1:9443, else a free port].
    #[arg(long, env = "TURNPIKE_PRIVATE_ADDR")]
    private_addr: Option<SocketAddr>,
    /// Address of the admin listener (/metrics, /healthz, /readyz) [default: 0.0.0.0:9090;
    /// local: the last start's port, else 127.0.0.1:9090, else a free port].
    #[arg(long, env = "TURNPIKE_ADMIN_ADDR")]
    admin_addr: Option<SocketAddr>,
    /// Write the bound listener addresses here as JSON (`{"public","private","admin"}`) once
    /// they are bound (`turnpike local` always writes `{data-dir}/gateway.json`).
    #[arg(long)]
    addresses_file: Option<PathBuf>,
    /// Watch only these namespaces, comma-separated (default: every namespace). With a list,
    /// the controller needs RBAC only there: the chart's `watchNamespaces` value.
    #[arg(
        long,
        alias = "watch-namespace",
        env = "TURNPIKE_WATCH_NAMESPACES",
        value_delimiter = ',',
        num_args = 1..
    )]
    watch_namespaces: Vec<String>,
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
    #[arg(long, env = "TURNPIKE_REGION", default_value = "local")]
    region: String,
    /// The base domain in `{apiId}.execute-api.{region}.{baseDomain}`.
    #[arg(long, env = "TURNPIKE_BASE_DOMAIN", default_value = "turnpike.dev")]
    base_domain: String,
    /// The listeners' default certificate chain (PEM), e.g. `tls.crt` of a mounted TLS
    /// Secret. Read again every 10 s, so a rotated Secret is served without a restart. Without
    /// it, a self-signed certificate for `*.execute-api.{region}.{baseDomain}` is generated.
    #[arg(long, env = "TURNPIKE_TLS_CERT_FILE", requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// The private key (PEM) of `--tls-cert-file`.
    #[arg(long, env = "TURNPIKE_TLS_KEY_FILE", requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// How often the certificate files are read again, in ms.
    #[arg(long, hide = true, default_value_t = 10_000)]
    tls_reload_interval_ms: u64,
    /// Forward request headers whose names contain `_` (dropped by default, as nginx does,
    /// so CGI-style backends cannot confuse `X_Foo` with `X-Foo`).
    #[arg(long, env = "TURNPIKE_ALLOW_UNDERSCORES_IN_HEADERS")]
    allow_underscores_in_headers: bool,
    /// Forward paths with `;`-parameter dot segments (`/..;/`), percent-encoded bytes that
    /// are not UTF-8, and full-width dot or slash look-alikes (refused with 400 by default).
    #[arg(long, env = "TURNPIKE_ALLOW_RAW_PATH_SEGMENTS")]
    allow_raw_path_segments: bool,
    /// Requests per second of the gateway default throttle (requests no usage plan or stage
    /// limits; AWS's account default).
    #[arg(long, env = "TURNPIKE_DEFAULT_RATE_LIMIT", default_value_t = 10_000.0)]
    default_rate_limit: f64,
    /// Burst of the gateway default throttle.
    #[arg(long, env = "TURNPIKE_DEFAULT_BURST_LIMIT", default_value_t = 5_000)]
    default_burst_limit: u64,
    /// How many gateway replicas share the limits when they are not shared through Redis
    /// (each enforces 1/N of every rate, burst and quota). Default: counted from the replicas'
    /// own Leases (`turnpike-replica-*`, labelled `turnpike.dev/replica`, in the Lease
    /// namespace); this fixes N instead.
    #[arg(long, env = "TURNPIKE_REPLICAS")]
    replicas: Option<u32>,
    /// How often the leader writes the usage summary (requests used and remaining in the
    /// current quota period) into UsagePlan and ApiKey status.
    #[arg(
        long,
        env = "TURNPIKE_USAGE_STATUS_INTERVAL_MS",
        default_value_t = 30_000,
        hide = true
    )]
    usage_status_interval_ms: u64,
    /// Share throttles and quotas across replicas through Redis: `redis://[user:pass@]host:port`
    /// or `rediss://…` for TLS. Repeat for the seed nodes of a Redis Cluster (with
    /// `--redis-cluster`).
    #[arg(long, env = "TURNPIKE_REDIS_URL", value_delimiter = ',')]
    redis_url: Vec<String>,
    /// The Redis URLs are nodes of a Redis Cluster.
    #[arg(long, env = "TURNPIKE_REDIS_CLUSTER")]
    redis_cluster: bool,
    /// While Redis is unreachable: `open` enforces local limits with this replica's share
    /// (1/N, N as for --replicas), `closed` answers 503.
    #[arg(long, env = "TURNPIKE_REDIS_FAILURE_MODE", default_value = "open")]
    redis_failure_mode: turnpike_proxy::usage::redis::FailureMode,
    /// Where stage caches are kept: `memory` (each replica its own) or `redis` (in memory, in
    /// front of the `--redis-url` Redis, shared by every replica; flushes reach them all).
    #[arg(long, env = "TURNPIKE_CACHE_BACKEND", default_value = "memory")]
    cache_backend: turnpike_proxy::cache::Backend,
    /// At most this many bytes per stage cache, whatever `cacheClusterSize` says (for tests and
    /// small machines).
    #[arg(long, env = "TURNPIKE_CACHE_BUDGET_CAP_BYTES", hide = true)]
    cache_budget_cap_bytes: Option<u64>,
    /// A WebSocket connection with no message either way for this long is closed (1001), in
    /// seconds (AWS: 10 minutes).
    #[arg(long, env = "TURNPIKE_WEBSOCKET_IDLE_TIMEOUT_SECS", default_value_t = 600)]
    websocket_idle_timeout_secs: u64,
    /// A WebSocket connection is closed (1001) after this long, in seconds (AWS: 2 hours).
    #[arg(long, env = "TURNPIKE_WEBSOCKET_MAX_LIFETIME_SECS", default_value_t = 7200)]
    websocket_max_lifetime_secs: u64,
    /// Larger WebSocket frames close the connection with 1009 (AWS: 32 KB).
    #[arg(long, env = "TURNPIKE_WEBSOCKET_MAX_FRAME_BYTES", default_value_t = 32 * 1024)]
    websocket_max_frame_bytes: usize,
    /// Larger WebSocket messages (all frames of one) close the connection with 1009 (AWS:
    /// 128 KB).
    #[arg(long, env = "TURNPIKE_WEBSOCKET_MAX_MESSAGE_BYTES", default_value_t = 128 * 1024)]
    websocket_max_message_bytes: usize,
    /// With --redis-url: how long a replica's record of a WebSocket connection it holds lives
    /// without a refresh, in seconds (refreshed every third of it). A dead replica's
    /// connections answer 410 on `@connections` after at most this long.
    #[arg(long, env = "TURNPIKE_WEBSOCKET_OWNER_TTL_SECS", default_value_t = 60)]
    websocket_owner_ttl_secs: u64,
    /// A file holding the admin token: `POST /cache/flush` on the admin listener then takes
    /// `Authorization: Bearer <token>` from any peer. Without it only loopback peers may flush.
    #[arg(long, env = "TURNPIKE_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Debug, Args)]
struct PetstoreArgs {
    /// Where to listen.
    #[arg(long, default_value = "0.0.0.0:8080")]
    addr: SocketAddr,
}

#[cfg(feature = "local")]
#[derive(Debug, Args)]
struct LocalArgs {
    /// Where the embedded API server keeps its database, certificates and kubeconfig, and
    /// `ports.json`, the ports a second start reuses.
    #[arg(long, default_value = ".turnpike")]
    data_dir: PathBuf,
    /// Address of the embedded API server [default: the last start's port, else
    /// 127.0.0.1:6443, else a free port].
    #[arg(long)]
    apiserver_addr: Option<SocketAddr>,
    /// Create the examples built into the binary (config/examples: petstore, MOCK, canary,
    /// usage plan, PRIVATE) where they do not exist yet, and serve their petstore backend.
    /// Edits made with kubectl survive a restart.
    #[arg(long)]
    examples: bool,
    /// Files or directories of manifests to server-side apply at start-up (e.g.
    /// `config/examples`); these win over edits made since.
    #[arg(long = "apply", short = 'f')]
    apply: Vec<PathBuf>,
    /// Run only the embedded API server: no CRDs installed, no controller, no proxy (for
    /// testing the API server itself, whose objects nothing else should touch).
    #[arg(long, env = "TURNPIKE_LOCAL_APISERVER_ONLY")]
    apiserver_only: bool,
    #[command(flatten)]
    node: NodeArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => {
            let yaml = turnpike_api::crds_yaml(&turnpike_api::crds()).context("rendering CRDs")?;
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
        Command::Petstore(args) => {
            turnpike_telemetry::init(cli.log_format).context("installing the log subscriber")?;
            runtime()?.block_on(async move {
                tokio::select! {
                    served = petstore::bind_and_serve(args.addr) => {
                        served.with_context(|| format!("serving the petstore on {}", args.addr))
                    }
                    stop = stopped() => stop,
                }
            })
        }
        Command::Openapi(command) => openapi::run(command),
        Command::TestInvoke(args) => runtime()?.block_on(test_invoke::run(args)),
        Command::Run(args) => run(args, cli.log_format),
        #[cfg(feature = "local")]
        Command::Local(args) => run_local(args, cli.log_format),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the tokio runtime")
}

/// The replica's configuration from the command line; `local` holds `turnpike local`'s
/// remembered ports (loopback listeners, the DNS-free invoke URLs).
fn node_config(args: &NodeArgs, local: Option<&local_ports::Ports>) -> anyhow::Result<NodeConfig> {
    use turnpike_controller::{Config, LeaseConfig};
    use turnpike_core::routing::Listener;
    use turnpike_proxy::{ListenerConfig, ProxyConfig};
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "turnpike".into());
        format!("{host}-{:08x}", rand::random::<u32>())
    });
    let mut controller = Config::new(LeaseConfig::new(&args.lease_namespace, identity));
    controller.holdoff = Duration::from_millis(args.holdoff_ms);
    controller.holdoff_max = Duration::from_millis(args.holdoff_max_ms);
    controller.namespaces = args
        .watch_namespaces
        .iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    controller.compile.hosts.region = args.region.clone();
    controller.compile.hosts.base_domain = args.base_domain.clone();
    let (public_addr, private_addr, admin_addr) = if let Some(ports) = local {
        (
            ports.pick("public", args.public_addr, Some(8443)),
            ports.pick("private", args.private_addr, Some(9443)),
            ports.pick("admin", args.admin_addr, Some(9090)),
        )
    } else {
        let any = |port| SocketAddr::from(([0, 0, 0, 0], port));
        (
            args.public_addr.unwrap_or(any(8443)),
            args.private_addr.unwrap_or(any(9443)),
            args.admin_addr.unwrap_or(any(9090)),
        )
    };
    let proxy = ProxyConfig {
        listeners: vec![
            ListenerConfig {
                addr: public_addr,
                listener: Listener::Public,
                tls: true,
            },
            ListenerConfig {
                addr: private_addr,
                listener: Listener::Private,
                tls: true,
            },
        ],
        canary_header: http::HeaderName::from_bytes(args.canary_header.as_bytes())
            .context("--canary-header is not a header name")?,
        cert_files: args.tls_cert_file.clone().zip(args.tls_key_file.clone()),
        cert_reload_interval: Duration::from_millis(args.tls_reload_interval_ms.max(100)),
        self_signed_names: vec![
            "localhost".into(),
            format!("*.execute-api.{}.{}", args.region, args.base_domain),
        ],
        allow_underscores_in_headers: args.allow_underscores_in_headers,
        allow_raw_path_segments: args.allow_raw_path_segments,
        usage: turnpike_proxy::usage::UsageConfig {
            default_throttle: turnpike_core::model::Throttle {
                rate: args.default_rate_limit,
                burst: args.default_burst_limit,
            },
            replicas: args.replicas.unwrap_or(1).max(1),
            redis: (!args.redis_url.is_empty()).then(|| turnpike_proxy::usage::redis::RedisConfig {
                urls: args.redis_url.clone(),
                cluster: args.redis_cluster,
                failure_mode: args.redis_failure_mode,
            }),
            ..Default::default()
        },
        cache: turnpike_proxy::cache::CacheConfig {
            backend: args.cache_backend,
            budget_cap: args.cache_budget_cap_bytes,
        },
        websocket: websocket_limits(args)?,
        ..ProxyConfig::default()
    };
    if args.cache_backend == turnpike_proxy::cache::Backend::Redis && args.redis_url.is_empty() {
        anyhow::bail!("--cache-backend redis needs --redis-url");
    }
    Ok(NodeConfig {
        invoke_base_from_public: local.is_some(),
        count_replicas: args.replicas.is_none(),
        usage_status_every: Duration::from_millis(args.usage_status_interval_ms.max(100)),
        admin_token_file: args.admin_token_file.clone(),
        ..NodeConfig::new(controller, proxy, admin_addr)
    })
}

/// The WebSocket limits of the command line (each at least one second or one byte; a frame no
/// larger than a message).
fn websocket_limits(args: &NodeArgs) -> anyhow::Result<turnpike_proxy::websocket::WebSocketLimits> {
    let secs = |s: u64| Duration::from_secs(s.max(1));
    if args.websocket_max_frame_bytes == 0
        || args.websocket_max_frame_bytes > args.websocket_max_message_bytes
    {
        anyhow::bail!("--websocket-max-frame-bytes must be between 1 and --websocket-max-message-bytes");
    }
    Ok(turnpike_proxy::websocket::WebSocketLimits {
        idle_timeout: secs(args.websocket_idle_timeout_secs),
        max_lifetime: secs(args.websocket_max_lifetime_secs),
        max_frame_bytes: args.websocket_max_frame_bytes,
        max_message_bytes: args.websocket_max_message_bytes,
        owner_ttl: secs(args.websocket_owner_ttl_secs),
        ..Default::default()
    })
}

/// Without the `local` feature there are no remembered ports: `node_config` gets `None`.
#[cfg(feature = "local")]
use local as local_ports;
#[cfg(not(feature = "local"))]
mod local_ports {
    pub enum Ports {}
    impl Ports {
        pub fn pick(&self, _: &str, _: Option<std::net::SocketAddr>, _: Option<u16>) -> std::net::SocketAddr {
            match *self {}
        }
    }
}

/// Resolves at SIGINT or SIGTERM.
async fn stopped() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

/// Starts the replica against the API server of `kube`, and writes the bound addresses to
/// `addresses_file`. Its client is made on the control plane's thread, so the client's
/// connections run there with the controller rather than on the proxy's workers.
async fn start_node(
    kube: kube::Config,
    config: NodeConfig,
    addresses_file: Option<PathBuf>,
) -> anyhow::Result<Node> {
    let control = ControlRuntime::new().context("starting the control plane's thread")?;
    let client = control
        .spawn(async move { kube_client::client(kube) })
        .await
        .context("building the Kubernetes client")??;
    let node = Node::start_on(control, client, config)
        .await
        .context("starting the gateway")?;
    tracing::info!(
        public = ?node.public,
        private = ?node.private,
        admin = %node.admin,
        "turnpike is serving"
    );
    if let Some(path) = addresses_file {
        let json = serde_json::json!({
            "public": node.public.map(|a| a.to_string()),
            "private": node.private.map(|a| a.to_string()),
            "admin": node.admin.to_string(),
        });
        // Written whole, then renamed: a reader never sees half a file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, json.to_string()).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(node)
}

/// Serves until SIGINT or SIGTERM, then releases the Lease and drains.
async fn serve(node: Node) -> anyhow::Result<()> {
    stopped().await?;
    tracing::info!("stopping");
    node.shutdown().await;
    Ok(())
}

/// `turnpike run`: the controller and the proxy against KUBECONFIG or the in-cluster config.
fn run(args: RunArgs, log_format: LogFormat) -> anyhow::Result<()> {
    turnpike_telemetry::init(log_format).context("installing the log subscriber")?;
    let config = node_config(&args.node, None)?;
    let addresses_file = args.node.addresses_file.clone();
    runtime()?.block_on(async move {
        let kube = kube::Config::infer()
            .await
            .context("connecting to Kubernetes (KUBECONFIG or in-cluster)")?;
        serve(start_node(kube, config, addresses_file).await?).await
    })
}

/// `turnpike local`: the embedded API server, then the controller and the proxy, which reach
/// it only through the kubeconfig it wrote, as they would a real cluster. Once every object is
/// Ready it prints, once, how to reach it (stdout; the logs go to stderr).
#[cfg(feature = "local")]
fn run_local(args: LocalArgs, log_format: LogFormat) -> anyhow::Result<()> {
    use turnpike_apiserver::manifests::{self, ApplyMode};

    turnpike_telemetry::init(log_format).context("installing the log subscriber")?;
    let mut ports = local::Ports::load(&args.data_dir);
    let config = node_config(&args.node, Some(&ports))?;
    let addresses_file = Some(
        args.node
            .addresses_file
            .clone()
            .unwrap_or_else(|| args.data_dir.join("gateway.json")),
    );
    runtime()?.block_on(async move {
        let apiserver_addr = ports.pick("apiserver", args.apiserver_addr, Some(6443));
        let server_config =
            turnpike_apiserver::ApiServerConfig::new(&args.data_dir).with_addr(apiserver_addr);
        let server = turnpike_apiserver::ApiServer::start(server_config)
            .await
            .context("starting the API server")?;
        ports.set("apiserver", server.addr);
        let client = server
            .client()
            .await
            .context("building a client from the kubeconfig")?;
        if args.apiserver_only {
            if !args.apply.is_empty() {
                manifests::apply(client.clone(), &args.apply)
                    .await
                    .context("applying --apply manifests")?;
            }
            tracing::info!(
                kubeconfig = %server.kubeconfig.display(),
                "export KUBECONFIG={} to use kubectl",
                server.kubeconfig.display()
            );
            stopped().await?;
            return Ok(());
        }
        turnpike_controller::apply::install_crds(&client)
            .await
            .context("installing the CRDs")?;
        let mut petstore = None;
        if args.examples {
            let addr = ports.pick("petstore", None, None);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the petstore backend on {addr}"))?;
            let addr = listener.local_addr().context("the petstore's address")?;
            ports.set("petstore", addr);
            petstore = Some(tokio::spawn(petstore::serve(listener)));
            let service = local::petstore_objects(addr)
                .into_iter()
                .map(|o| (PathBuf::from("(built-in petstore)"), o))
                .collect();
            manifests::apply_docs(client.clone(), service, ApplyMode::Apply)
                .await
                .context("pointing the Service petstore at the built-in backend")?;
            let mut docs = Vec::new();
            for (path, text) in local::EXAMPLES {
                docs.extend(manifests::read_str(std::path::Path::new(path), text)?);
            }
            manifests::apply_docs(client.clone(), docs, ApplyMode::CreateMissing)
                .await
                .context("creating the examples")?;
        }
        if !args.apply.is_empty() {
            manifests::apply(client.clone(), &args.apply)
                .await
                .context("applying --apply manifests")?;
        }
        let kube = server.config().await.context("reading the kubeconfig")?;
        let node = start_node(kube, config, addresses_file).await?;
        if let Some(addr) = node.public {
            ports.set("public", addr);
        }
        if let Some(addr) = node.private {
            ports.set("private", addr);
        }
        ports.set("admin", node.admin);
        ports.save(&args.data_dir)?;
        let summary = {
            let kubeconfig = server.kubeconfig.clone();
            let data_dir = args.data_dir.clone();
            tokio::spawn(async move {
                let pending = local::wait_ready(&client).await;
                let text = local::summary(&client, &kubeconfig, &data_dir, &pending).await;
                #[allow(clippy::print_stdout)]
                {
                    println!("{text}");
                }
            })
        };
        let served = serve(node).await;
        summary.abort();
        if let Some(petstore) = petstore {
            petstore.abort();
        }
        drop(server);
        served
    })
}
