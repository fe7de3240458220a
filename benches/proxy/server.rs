//! The processes of the proxy benchmark (`benches/proxy/run.sh`), as one binary:
//!
//! - `upstream ADDR`: a tiny hyper HTTP/1.1 server answering every request with a fixed body.
//! - `turnpike PLAIN_ADDR TLS_ADDR UPSTREAM_ADDR CERT KEY`: the Turnpike proxy with one
//!   REGIONAL API whose `/{proxy+}` resource is an HTTP_PROXY to the upstream, served on a
//!   current-thread runtime (the script pins it to one core), access log off, metrics on.
//!
//! Build: `cargo build --release --bench proxy_server`.

use std::{convert::Infallible, net::SocketAddr, path::PathBuf, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use turnpike::{
    compile::{CompileConfig, compile},
    ingest::world_from_yaml,
    proxy::{ListenerConfig, Proxy, ProxyConfig},
    routing::{Listener, store::TableStore},
    telemetry::metrics::Metrics,
};

/// The API the benchmark calls: `/{stage}/anything` → `http://{upstream}/anything`.
fn api_yaml(upstream: SocketAddr) -> String {
    format!(
        r#"
apiVersion: turnpike.dev/v1alpha1
kind: RestApi
metadata: {{name: bench, namespace: bench}}
spec:
  endpointConfiguration: {{types: [REGIONAL]}}
  resources:
    /{{proxy+}}:
      ANY:
        integration: {{type: HTTP_PROXY, uri: "http://{upstream}/{{proxy}}"}}
---
apiVersion: turnpike.dev/v1alpha1
kind: Deployment
metadata: {{name: v1, namespace: bench}}
spec:
  restApiRef: {{name: bench}}
---
apiVersion: turnpike.dev/v1alpha1
kind: Stage
metadata: {{name: prod, namespace: bench}}
spec:
  restApiRef: {{name: bench}}
  stageName: prod
  deploymentRef: {{name: v1}}
"#
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match args.first().map(String::as_str) {
        Some("upstream") => rt.block_on(upstream(args[1].parse()?)),
        Some("turnpike") => rt.block_on(turnpike(
            args[1].parse()?,
            args[2].parse()?,
            args[3].parse()?,
            PathBuf::from(&args[4]),
            PathBuf::from(&args[5]),
        )),
        Some("host") => {
            // The Host of the benchmark API: `{apiId}.execute-api.local.turnpike.dev`.
            let id = turnpike::model::ApiId::from_uid("uid-RestApi-bench-bench");
            #[allow(clippy::print_stdout)]
            {
                println!("{id}.execute-api.local.turnpike.dev");
            }
            Ok(())
        }
        _ => {
            eprintln!("usage: proxy_server upstream ADDR | turnpike PLAIN TLS UPSTREAM CERT KEY | host");
            Ok(())
        }
    }
}

async fn upstream(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(addr).await?;
    let body = Bytes::from_static(b"hello from the upstream\n");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |_req| {
                let body = body.clone();
                async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn turnpike(
    plain: SocketAddr,
    tls: SocketAddr,
    upstream: SocketAddr,
    cert: PathBuf,
    key: PathBuf,
) -> Result<(), Box<dyn std::error::Error>> {
    let world = world_from_yaml(&api_yaml(upstream))?;
    let store = TableStore::new();
    store.publish(compile(&world, &CompileConfig::default(), 1).table);
    let config = ProxyConfig {
        listeners: vec![
            ListenerConfig {
                addr: plain,
                listener: Listener::Public,
                tls: false,
            },
            ListenerConfig {
                addr: tls,
                listener: Listener::Public,
                tls: true,
            },
        ],
        cert_files: Some((cert, key)),
        default_access_log: None,
        ..ProxyConfig::default()
    };
    let (_registry, metrics) = Metrics::registry();
    let proxy = Proxy::bind(config, store, Arc::new(metrics)).await?;
    proxy
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
