//! A hand-rolled HTTP/1.1 connection pool for plain-HTTP backends (the in-cluster case), the
//! proxy's hot path.
//!
//! Why not the hyper-util legacy client here: its pool sits behind a mutex and every checkout
//! goes through several boxed futures and channels; profiling the benchmark showed it as the
//! biggest user-space cost of a proxied request. This pool is per thread (no lock at all): idle
//! connections are kept in a thread-local map keyed by authority, checked out with a readiness
//! check, and given back when the response body ends (the [`Lease`] travels with the response).
//! A connection may end up in another thread's pool when a multi-thread runtime moves a task;
//! that is harmless.
//!
//! A request that could not be written on a pooled connection (it closed meanwhile) is retried
//! once on a new connection: nothing reached the backend, so this is safe for any method.

use std::{cell::RefCell, collections::HashMap, time::Instant};

use http::{
    HeaderValue, Request, Response, header,
    uri::{Authority, PathAndQuery},
};
use hyper::{
    body::Incoming,
    client::conn::http1::{self, SendRequest},
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::proxy::{
    body::{LimitExceeded, Limited},
    upstream::{SendError, UpstreamConfig, caused_by, error_chain},
};

struct Idle {
    sender: SendRequest<Limited>,
    since: Instant,
}

thread_local! {
    static IDLE: RefCell<HashMap<Box<str>, Vec<Idle>>> = RefCell::new(HashMap::new());
}

/// A connection in use; dropping it (when the response body ends) gives it back to the pool.
pub struct Lease {
    sender: Option<SendRequest<Limited>>,
    key: Authority,
    max_idle: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(sender) = self.sender.take() else { return };
        if sender.is_closed() {
            return;
        }
        let key = self.key.as_str();
        let max_idle = self.max_idle;
        let _ = IDLE.try_with(|idle| {
            if let Ok(mut idle) = idle.try_borrow_mut() {
                let entry = Idle {
                    sender,
                    since: Instant::now(),
                };
                match idle.get_mut(key) {
                    Some(list) if list.len() < max_idle => list.push(entry),
                    Some(_) => {}
                    None => {
                        idle.insert(key.into(), vec![entry]);
                    }
                }
            }
        });
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("key", &self.key).finish()
    }
}

/// Takes an idle connection to `key`, dropping closed and expired ones.
fn checkout(key: &str, config: &UpstreamConfig) -> Option<SendRequest<Limited>> {
    IDLE.try_with(|idle| {
        let mut idle = idle.try_borrow_mut().ok()?;
        let list = idle.get_mut(key)?;
        while let Some(c) = list.pop() {
            if c.sender.is_closed() || c.since.elapsed() > config.pool_idle_timeout {
                continue;
            }
            return Some(c.sender);
        }
        None
    })
    .ok()
    .flatten()
}

async fn connect(authority: &str, config: &UpstreamConfig) -> Result<SendRequest<Limited>, SendError> {
    let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(authority))
        .await
        .map_err(|_| SendError::Connect(format!("connect to {authority} timed out")))?
        .map_err(|e| SendError::Connect(format!("connect to {authority}: {e}")))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| SendError::Connect(format!("handshake with {authority}: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// Sends a request with an `http://` URI over a pooled HTTP/1.1 connection. The URI is turned
/// into origin form and Host is set from its authority. Returns the response head and the
/// lease that must live until the response body ends.
pub async fn send(
    mut req: Request<Limited>,
    config: &UpstreamConfig,
) -> Result<(Response<Incoming>, Lease), SendError> {
    let authority = req
        .uri()
        .authority()
        .ok_or_else(|| SendError::Failed("backend URL without a host".into()))?
        .clone();
    let key = authority.as_str();
    let with_port;
    let addr: &str = if authority.port().is_some() {
        key
    } else {
        with_port = format!("{}:80", authority.host());
        &with_port
    };
    if !req.headers().contains_key(header::HOST) {
        let host = HeaderValue::from_str(key).map_err(|e| SendError::Failed(format!("Host header: {e}")))?;
        req.headers_mut().insert(header::HOST, host);
    }
    let pq = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *req.uri_mut() = http::Uri::from(pq);
    *req.version_mut() = http::Version::HTTP_11;

    let mut req = Some(req);
    // A pooled connection first; if the request could not be written on it, a new one.
    for fresh in [false, true] {
        let mut sender = match (fresh, checkout(key, config)) {
            (false, Some(s)) => s,
            (false, None) => continue,
            (true, _) => connect(addr, config).await?,
        };
        if sender.ready().await.is_err() {
            continue;
        }
        let Some(r) = req.take() else { break };
        match sender.try_send_request(r).await {
            Ok(resp) => {
                let lease = Lease {
                    sender: Some(sender),
                    key: authority.clone(),
                    max_idle: config.pool_max_idle_per_host,
                };
                return Ok((resp, lease));
            }
            Err(mut e) => match e.take_message() {
                Some(r) if !fresh => req = Some(r),
                _ => {
                    let err = e.into_error();
                    return Err(if caused_by::<LimitExceeded>(&err) {
                        SendError::BodyTooLarge
                    } else {
                        SendError::Failed(error_chain(&err))
                    });
                }
            },
        }
    }
    Err(SendError::Failed("no usable connection".into()))
}
