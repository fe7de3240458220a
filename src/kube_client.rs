//! The Kubernetes client: kube's own stack (base URI, retries, auth, headers, TLS and
//! timeouts, all from the kubeconfig or the in-cluster config) over a connection pool that
//! keeps few idle connections.
//!
//! kube's client speaks HTTP/1.1, so each request in flight has a connection of its own, and
//! its pool keeps every one it opened, idle, for as long as the server does: the status and
//! summary writers' bursts (then 16 writes at a time each) left about 36 connections idle, with
//! about 23 KB of buffers each (0.83 MB). Here at most [`IDLE_CONNECTIONS`] are kept, each
//! for at most [`IDLE_TIMEOUT`]; a burst opens the others again.
//!
//! A config with a proxy or an exec credential plugin (whose client certificate expires)
//! gets kube's client as it builds it.

use std::time::Duration;

use anyhow::Context as _;
use hyper_timeout::TimeoutConnector;
use hyper_util::{
    client::legacy::{self, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use kube::{
    Client, Config,
    client::{Body, ClientBuilder, ConfigExt as _, retry::RetryPolicy},
};
use tower::{BoxError, ServiceBuilder, retry::RetryLayer};

/// Most idle connections kept to the API server.
const IDLE_CONNECTIONS: usize = 4;
/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The client of `config`.
pub fn client(config: Config) -> anyhow::Result<Client> {
    if config.proxy_url.is_some() || config.auth_info.exec.is_some() {
        return Client::try_from(config).context("building the Kubernetes client");
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let https = config
        .rustls_https_connector_with_connector(http)
        .context("the Kubernetes client's TLS")?;
    let mut connector = TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let pool: legacy::Client<_, Body> = legacy::Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(IDLE_TIMEOUT)
        .pool_max_idle_per_host(IDLE_CONNECTIONS)
        .build(connector);
    let retry = config
        .default_retry
        .then(|| RetryLayer::new(RetryPolicy::server_retry()));
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(
            config
                .auth_layer()
                .context("the Kubernetes client's credentials")?,
        )
        .layer(
            config
                .extra_headers_layer()
                .context("the Kubernetes client's headers")?,
        )
        .map_err(BoxError::from)
        .service(pool);
    Ok(ClientBuilder::new(service, config.default_namespace).build())
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        net::{TcpListener, TcpStream},
        sync::mpsc,
    };

    use super::*;

    /// Connections: opened so far, and open now.
    type Counts = Arc<(AtomicUsize, AtomicUsize)>;

    /// Answers every request on `stream` with `{}` after a moment, sending its head to `heads`,
    /// and counts the connection.
    async fn answer(mut stream: TcpStream, counts: Counts, heads: mpsc::UnboundedSender<String>) {
        counts.0.fetch_add(1, Ordering::SeqCst);
        counts.1.fetch_add(1, Ordering::SeqCst);
        let mut read = Vec::new();
        let mut buf = [0; 4096];
        while let Ok(n) = stream.read(&mut buf).await
            && n > 0
        {
            read.extend_from_slice(&buf[..n]);
            while let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = read.drain(..end + 4).collect();
                let _ = heads.send(String::from_utf8_lossy(&head).to_lowercase());
                tokio::time::sleep(Duration::from_millis(200)).await;
                let reply =
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                if stream.write_all(reply).await.is_err() {
                    break;
                }
            }
        }
        counts.1.fetch_sub(1, Ordering::SeqCst);
    }

    #[tokio::test]
    async fn requests_go_through_kubes_layers_and_few_connections_stay_idle() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Counts::default();
        let (tx, mut heads) = mpsc::unbounded_channel();
        let counted = counts.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, counted.clone(), tx.clone()));
            }
        });
        let mut config = Config::new(format!("http://{addr}").parse().unwrap());
        config.auth_info.token = Some("a-token".to_string().into());
        let client = client(config).unwrap();

        // Twice as many requests at once as there are idle connections kept: one connection
        // each, and the pool keeps only IDLE_CONNECTIONS of them once they are done.
        let get = || client.request_text(http::Request::get("/version").body(Vec::new()).unwrap());
        let answers = futures::future::join_all((0..2 * IDLE_CONNECTIONS).map(|_| get())).await;
        assert!(
            answers.iter().all(|a| a.as_deref().ok() == Some("{}")),
            "{answers:?}"
        );
        let head = heads.recv().await.unwrap();
        assert!(head.starts_with("get /version http/1.1\r\n"), "{head}");
        assert!(head.contains("\r\nauthorization: bearer a-token\r\n"), "{head}");
        assert_eq!(counts.0.load(Ordering::SeqCst), 2 * IDLE_CONNECTIONS);
        let open = || counts.1.load(Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while open() > IDLE_CONNECTIONS && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(open(), IDLE_CONNECTIONS);
    }
}
