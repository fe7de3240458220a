//! `@connections` across replicas, through the Redis of `--redis-url`.
//!
//! ```text
//! replica A holds connection c                      replica B gets POST …/@connections/c
//!   SET tp:{ws:c}:owner = A  PX ttl  (refreshed       GET tp:{ws:c}:owner → A
//!   every ttl/3 while c is open; DEL when it closes)  PUBLISH tp:ws:replica:A  "TPWS1 Q n B POST c\n<body>"
//!   SUBSCRIBE tp:ws:replica:A  ──────────────────────────────┘
//!   serves it as a local call, then
//!   PUBLISH tp:ws:replica:B  "TPWS1 A n 200 -\n<body>"  ──→  B answers the caller with it
//! ```
//!
//! A connection id is 96 random bits (see [`crate::ids::connection_id`]): it names nothing, and
//! the replica that holds it is read from Redis, never from the id. An id with no owner
//! record (unknown, closed, or held by a replica that died more than one TTL ago) answers 410
//! GoneException at once; so does an owner with no subscriber (a standalone Redis counts
//! them). An owner that does not answer within [`FORWARD_WAIT`] answers 500. While Redis is
//! down every replica serves only its own connections, as without Redis.
//!
//! The ownership records carry a hash tag per connection (`tp:{ws:<id>}:owner`), so they
//! spread over a Cluster's slots; the replica channels are classic pub/sub, which a Cluster
//! delivers to subscribers on every node (the subscription goes to the first URL's node).

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures::StreamExt as _;
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt as _;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::connections::{self, ERROR_TYPE};
use crate::{
    Shared,
    body::{ProxyBody, RequestBody},
    error::Reject,
    usage::redis::{RedisConfig, Shared as Redis},
};

/// How long a forwarded call waits for the owner's answer.
pub const FORWARD_WAIT: Duration = Duration::from_secs(5);

/// How long one Redis command of the relay may take.
const BOUND: Duration = Duration::from_millis(500);

/// The first word of every envelope.
const MAGIC: &str = "TPWS1";

/// The longest envelope head (everything before the first `\n`).
const MAX_HEAD: usize = 128;

/// Forwards `@connections` calls to the replica that holds the connection.
pub struct Relay {
    /// This replica's id on the relay: 16 random hex digits.
    replica: Box<str>,
    redis: Arc<Redis>,
    config: RedisConfig,
    /// How long an ownership record lives without a refresh.
    ttl: Duration,
    next: AtomicU64,
    pending: RwLock<HashMap<u64, oneshot::Sender<Answer>>>,
}

/// A management call carried to the owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub nonce: u64,
    /// The replica to answer.
    pub reply_to: String,
    pub method: Method,
    pub connection: String,
    pub body: Bytes,
}

/// The owner's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub nonce: u64,
    pub status: StatusCode,
    /// `x-amzn-ErrorType`, if any.
    pub error_type: Option<String>,
    pub body: Bytes,
}

/// One message on a replica channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Envelope {
    Call(Call),
    Answer(Answer),
}

impl Envelope {
    /// `TPWS1 Q <nonce> <reply-to> <METHOD> <connection>\n<body>` or
    /// `TPWS1 A <nonce> <status> <error type or ->\n<body>`.
    pub fn encode(&self) -> Vec<u8> {
        let (head, body) = match self {
            Envelope::Call(c) => (
                format!(
                    "{MAGIC} Q {} {} {} {}\n",
                    c.nonce, c.reply_to, c.method, c.connection
                ),
                &c.body,
            ),
            Envelope::Answer(a) => (
                format!(
                    "{MAGIC} A {} {} {}\n",
                    a.nonce,
                    a.status.as_u16(),
                    a.error_type.as_deref().unwrap_or("-")
                ),
                &a.body,
            ),
        };
        let mut out = Vec::with_capacity(head.len() + body.len());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(body);
        out
    }

    /// Reads an envelope strictly; `None` for anything [`Envelope::encode`] does not make.
    pub fn decode(bytes: &[u8]) -> Option<Envelope> {
        let end = bytes.iter().take(MAX_HEAD + 1).position(|&b| b == b'\n')?;
        let head = std::str::from_utf8(&bytes[..end]).ok()?;
        let body = Bytes::copy_from_slice(&bytes[end + 1..]);
        let mut words = head.split(' ');
        if words.next()? != MAGIC {
            return None;
        }
        let kind = words.next()?;
        let nonce = number(words.next()?)?;
        let envelope = match kind {
            "Q" => {
                let reply_to = words.next()?;
                let method = match words.next()? {
                    "POST" => Method::POST,
                    "GET" => Method::GET,
                    "DELETE" => Method::DELETE,
                    _ => return None,
                };
                let connection = words.next()?;
                if !is_replica_id(reply_to) || !connections::is_connection_id(connection) {
                    return None;
                }
                Envelope::Call(Call {
                    nonce,
                    reply_to: reply_to.to_string(),
                    method,
                    connection: connection.to_string(),
                    body,
                })
            }
            "A" => {
                let status = words.next()?;
                if status.len() != 3 {
                    return None;
                }
                let status = StatusCode::from_u16(u16::try_from(number(status)?).ok()?).ok()?;
                let error_type = match words.next()? {
                    "-" => None,
                    t if !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                        Some(t.to_string())
                    }
                    _ => return None,
                };
                Envelope::Answer(Answer {
                    nonce,
                    status,
                    error_type,
                    body,
                })
            }
            _ => return None,
        };
        words.next().is_none().then_some(envelope)
    }
}

/// A decimal `u64` with no sign, no leading zero (but `0`) and at most 20 digits.
fn number(word: &str) -> Option<u64> {
    let ok = !word.is_empty()
        && word.len() <= 20
        && word.bytes().all(|b| b.is_ascii_digit())
        && (word == "0" || !word.starts_with('0'));
    ok.then(|| word.parse().ok()).flatten()
}

/// A replica id: 16 lowercase hex digits.
pub fn is_replica_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn owner_key(connection: &str) -> String {
    format!("tp:{{ws:{connection}}}:owner")
}

fn channel(replica: &str) -> String {
    format!("tp:ws:replica:{replica}")
}

// === impl Relay ===

impl Relay {
    pub fn new(redis: Arc<Redis>, config: RedisConfig, ttl: Duration) -> Relay {
        Relay {
            replica: format!("{:016x}", rand::random::<u64>()).into(),
            redis,
            config,
            ttl: ttl.max(Duration::from_secs(1)),
            next: AtomicU64::new(1),
            pending: RwLock::default(),
        }
    }

    fn ttl_millis(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Records that this replica holds `connection` (bounded; a Redis that is down records
    /// nothing, and the next refresh tries again).
    pub async fn own(&self, connection: &str) {
        let cmd = redis::cmd("SET")
            .arg(owner_key(connection))
            .arg(&*self.replica)
            .arg("PX")
            .arg(self.ttl_millis())
            .clone();
        let _: Option<redis::Value> = self.redis.command(&cmd, BOUND).await;
    }

    /// Drops the record of a closed connection.
    pub async fn disown(&self, connection: &str) {
        let cmd = redis::cmd("DEL").arg(owner_key(connection)).clone();
        let _: Option<i64> = self.redis.command(&cmd, BOUND).await;
    }

    /// Serves a management call for a connection this replica does not hold: through its
    /// owner, or 410.
    pub async fn forward(
        &self,
        method: &Method,
        connection: &str,
        body: RequestBody,
    ) -> Result<Response<ProxyBody>, Reject> {
        if !matches!(*method, Method::POST | Method::GET | Method::DELETE) {
            return Err(Reject::NoRoute(turnpike_core::routing::Miss::Method));
        }
        let body = if *method == Method::POST {
            match crate::phase::validate::collect(body, connections::MAX_PUSH_BYTES).await {
                Ok(data) => data,
                Err(Reject::BodyTooLarge) => return Ok(connections::too_large()),
                Err(other) => return Err(other),
            }
        } else {
            Bytes::new()
        };
        let get = redis::cmd("GET").arg(owner_key(connection)).clone();
        let owner: Option<Option<String>> = self.redis.command(&get, BOUND).await;
        let Some(Some(owner)) = owner else {
            return Ok(connections::gone());
        };
        if owner == *self.replica || !is_replica_id(&owner) {
            return Ok(connections::gone());
        }
        let nonce = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut pending) = self.pending.write() {
            pending.insert(nonce, tx);
        }
        let call = Envelope::Call(Call {
            nonce,
            reply_to: self.replica.to_string(),
            method: method.clone(),
            connection: connection.to_string(),
            body,
        });
        let publish = redis::cmd("PUBLISH")
            .arg(channel(&owner))
            .arg(call.encode())
            .clone();
        let heard: Option<i64> = self.redis.command(&publish, BOUND).await;
        // A standalone Redis counts the subscribers; a Cluster counts only those of the node
        // that took the PUBLISH, so there only the wait tells.
        let nobody = heard.is_none() || (heard == Some(0) && !self.config.cluster);
        let answer = if nobody {
            None
        } else {
            tokio::time::timeout(FORWARD_WAIT, rx)
                .await
                .ok()
                .and_then(Result::ok)
        };
        if let Ok(mut pending) = self.pending.write() {
            pending.remove(&nonce);
        }
        match answer {
            Some(answer) => Ok(response_of(answer)),
            None if nobody => Ok(connections::gone()),
            None => Err(Reject::Internal(format!("replica {owner} did not answer").into())),
        }
    }

    /// Serves the calls other replicas forward here, refreshes this replica's ownership
    /// records, until `stop`.
    pub async fn run(self: Arc<Self>, shared: Arc<Shared>, stop: CancellationToken) {
        let refresh = {
            let (relay, shared, stop) = (self.clone(), shared.clone(), stop.clone());
            async move {
                let every = relay.ttl / 3;
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(every) => {}
                    }
                    let ids = shared.connections.ids();
                    futures::stream::iter(ids)
                        .for_each_concurrent(32, |id| {
                            let relay = &relay;
                            async move { relay.own(&id).await }
                        })
                        .await;
                }
            }
        };
        tokio::select! {
            () = stop.cancelled() => {}
            () = refresh => {}
            () = self.listen(&shared) => {}
        }
    }

    /// Subscribes to this replica's channel (again after each failure) and handles what
    /// arrives on it.
    async fn listen(&self, shared: &Arc<Shared>) {
        let url = self
            .config
            .urls
            .first()
            .map_or("redis://127.0.0.1", String::as_str);
        let name = channel(&self.replica);
        loop {
            match self.subscribe(url, &name).await {
                Ok(mut pubsub) => {
                    tracing::debug!(channel = %name, "relay subscribed");
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        self.handle(shared, msg.get_payload_bytes());
                    }
                    tracing::debug!("relay subscription lost");
                }
                Err(e) => tracing::debug!(error = %e, "relay subscription failed"),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn subscribe(&self, url: &str, name: &str) -> redis::RedisResult<redis::aio::PubSub> {
        let client = redis::Client::open(url)?;
        let connect = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(name).await?;
            Ok(pubsub)
        };
        match tokio::time::timeout(Duration::from_secs(2), connect).await {
            Ok(result) => result,
            Err(_) => Err(redis::RedisError::from((
                redis::ErrorKind::IoError,
                "subscribe timed out",
            ))),
        }
    }

    fn handle(&self, shared: &Arc<Shared>, payload: &[u8]) {
        match Envelope::decode(payload) {
            Some(Envelope::Answer(answer)) => {
                let waiter = self
                    .pending
                    .write()
                    .ok()
                    .and_then(|mut p| p.remove(&answer.nonce));
                if let Some(tx) = waiter {
                    let _ = tx.send(answer);
                }
            }
            Some(Envelope::Call(call)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let Some(relay) = shared.relay.clone() else {
                        return;
                    };
                    relay.serve(&shared, call).await;
                });
            }
            None => tracing::debug!(bytes = payload.len(), "relay: not an envelope"),
        }
    }

    /// Serves a call forwarded here as a local one and publishes the answer.
    async fn serve(&self, shared: &Shared, call: Call) {
        let result = connections::manage(
            &shared.connections,
            &call.method,
            &call.connection,
            RequestBody::full(call.body),
        )
        .await;
        let resp = result.unwrap_or_else(|_| {
            let mut r = Response::new(ProxyBody::empty());
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        });
        let status = resp.status();
        let error_type = resp
            .headers()
            .get(ERROR_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let answer = Envelope::Answer(Answer {
            nonce: call.nonce,
            status,
            error_type,
            body,
        });
        let publish = redis::cmd("PUBLISH")
            .arg(channel(&call.reply_to))
            .arg(answer.encode())
            .clone();
        let _: Option<i64> = self.redis.command(&publish, BOUND).await;
    }
}

/// The owner's answer as this replica's response.
fn response_of(answer: Answer) -> Response<ProxyBody> {
    let mut resp = if answer.body.is_empty() {
        Response::new(ProxyBody::empty())
    } else {
        Response::new(ProxyBody::full(answer.body))
    };
    *resp.status_mut() = answer.status;
    if answer.status != StatusCode::NO_CONTENT {
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if let Some(t) = answer.error_type.and_then(|t| HeaderValue::from_str(&t).ok()) {
        resp.headers_mut().insert(ERROR_TYPE, t);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_read_back() {
        let call = Envelope::Call(Call {
            nonce: 7,
            reply_to: "0123456789abcdef".into(),
            method: Method::POST,
            connection: "AbCdEfGhIjKlMnO=".into(),
            body: Bytes::from_static(b"hi\nthere"),
        });
        assert_eq!(Envelope::decode(&call.encode()), Some(call));
        let answer = Envelope::Answer(Answer {
            nonce: 0,
            status: StatusCode::GONE,
            error_type: Some("GoneException".into()),
            body: Bytes::from_static(b"{}"),
        });
        assert_eq!(Envelope::decode(&answer.encode()), Some(answer));
        for bad in [
            &b"TPWS1 Q 7 0123456789abcdef PUT AbCdEfGhIjKlMnO=\n"[..],
            b"TPWS1 Q 07 0123456789abcdef GET AbCdEfGhIjKlMnO=\n",
            b"TPWS1 Q 7 0123456789ABCDEF GET AbCdEfGhIjKlMnO=\n",
            b"TPWS1 Q 7 0123456789abcdef GET AbCdEfGhIjKlMnO=",
            b"TPWS1 A 7 200 -  \n",
            b"TPWS1 A 7 99 -\n",
            b"TPWS1 A 7 200 Gone-Exception\n",
            b"TPWS1 A 18446744073709551616 200 -\n",
            b"TPWS2 A 7 200 -\n",
        ] {
            assert_eq!(Envelope::decode(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_fuzz_seeds_hold() {
        for seed in [
            &b"TPWS1 Q 7 0123456789abcdef POST AbCdEfGhIjKlMnO=\nhello"[..],
            b"TPWS1 A 9 410 GoneException\n{}",
            b"\n",
            b"TPWS1 A 9 410 -\n\xff",
        ] {
            crate::fuzzing::relay_envelope(seed);
        }
    }
}
