//! The connections this replica holds, and the `@connections` management API.
//!
//! ```text
//! POST   …/@connections/{id}   the body goes to the client as one message      200 / 410
//! GET    …/@connections/{id}   {"connectedAt", "identity", "lastActiveAt"}      200 / 410
//! DELETE …/@connections/{id}   the socket closes (1000) and $disconnect runs    204 / 410
//! ```
//!
//! Served only on the private listener (in-cluster backends), never on the public one, at any
//! path that ends in `/@connections/{id}`: the AWS form `/{stage}/@connections/{id}` on the
//! API's host and the local form `/restapis/{apiId}/{stage}/_user_request_/@connections/{id}`
//! both do. A connection lives on the replica that accepted it; with `--redis-url` a call that
//! lands on another replica is forwarded to it ([`super::relay`]); without Redis a management
//! call reaches only the connections of the replica it lands on (run one replica).

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Response, StatusCode, header};
use tokio::sync::{Mutex, Notify};

use crate::{body::ProxyBody, body::RequestBody, error::Reject};

/// What a connection's task is asked to do from outside.
#[derive(Debug)]
pub enum Command {
    /// Send one message (text when the bytes are UTF-8, else binary).
    Send(Bytes),
    /// Close with 1000 and run `$disconnect`.
    Close,
}

/// How many pushes may wait for a connection's task before a push is refused (429
/// LimitExceededException, as AWS answers when a client's buffer is full).
pub const PUSH_QUEUE: usize = 16;

/// A connection, as the registry and the management API see it.
#[derive(Debug)]
pub struct Handle {
    pub id: Box<str>,
    /// Milliseconds since the epoch.
    pub connected_at: u64,
    pub source_ip: IpAddr,
    pub user_agent: Option<Box<str>>,
    /// Milliseconds since the epoch of the last message either way.
    last_active: AtomicU64,
    /// The commands waiting for the connection's task. Not a channel: a bounded channel
    /// allocates room for a block of messages up front, and most connections never get a push.
    commands: Mutex<Queue>,
    /// Wakes the connection's task for a command (or the close).
    queued: Notify,
}

/// A connection's waiting commands: no allocation while there are none.
#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Command>,
    /// The connection's task has stopped taking commands.
    closed: bool,
}

/// Why a command was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The connection's task has ended.
    Closed,
    /// [`PUSH_QUEUE`] commands are already waiting.
    Full,
}

impl Handle {
    pub fn new(id: Box<str>, source_ip: IpAddr, user_agent: Option<Box<str>>) -> Arc<Handle> {
        let now = epoch_millis();
        Arc::new(Handle {
            id,
            connected_at: now,
            source_ip,
            user_agent,
            last_active: AtomicU64::new(now),
            commands: Mutex::default(),
            queued: Notify::new(),
        })
    }

    /// Queues a command for the connection's task.
    pub async fn send(&self, command: Command) -> Result<(), Refused> {
        {
            let mut queue = self.commands.lock().await;
            if queue.closed {
                return Err(Refused::Closed);
            }
            if queue.items.len() >= PUSH_QUEUE {
                return Err(Refused::Full);
            }
            queue.items.push_back(command);
        }
        self.queued.notify_one();
        Ok(())
    }

    /// The next command, in the order they were queued; `None` once [`Self::close_commands`]
    /// was called. For the connection's task only (one waiter). Cancel-safe: a command leaves
    /// the queue only in the poll that returns it.
    pub async fn next_command(&self) -> Option<Command> {
        loop {
            {
                let mut queue = self.commands.lock().await;
                if let Some(command) = queue.items.pop_front() {
                    if queue.items.is_empty() {
                        // An idle connection holds no room for commands.
                        queue.items = VecDeque::new();
                    }
                    return Some(command);
                }
                if queue.closed {
                    return None;
                }
            }
            // A command queued since the look above left a permit: this returns at once.
            self.queued.notified().await;
        }
    }

    /// Stops taking commands: later ones are refused as [`Refused::Closed`], waiting ones are
    /// dropped.
    pub async fn close_commands(&self) {
        {
            let mut queue = self.commands.lock().await;
            queue.closed = true;
            queue.items = VecDeque::new();
        }
        self.queued.notify_one();
    }

    /// Notes activity now.
    pub fn touch(&self) {
        self.last_active.store(epoch_millis(), Ordering::Relaxed);
    }

    pub fn last_active(&self) -> u64 {
        self.last_active.load(Ordering::Relaxed)
    }
}

/// The connections of this replica, by id.
#[derive(Debug, Default)]
pub struct Connections {
    // Held for a map operation only, never across an await.
    map: RwLock<HashMap<Box<str>, Arc<Handle>>>,
}

impl Connections {
    pub fn insert(&self, handle: Arc<Handle>) {
        if let Ok(mut map) = self.map.write() {
            map.insert(handle.id.clone(), handle);
        }
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut map) = self.map.write() {
            map.remove(id);
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Handle>> {
        self.map.read().ok()?.get(id).cloned()
    }

    /// How many connections are open.
    pub fn len(&self) -> usize {
        self.map.read().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids of the open connections.
    pub fn ids(&self) -> Vec<Box<str>> {
        self.map
            .read()
            .map_or_else(|_| Vec::new(), |m| m.keys().cloned().collect())
    }
}

/// The connection id of a management request's path: the last segment after
/// `/@connections/`, with `%3D` read as `=`. `None` for any other path.
pub fn target(path: &str) -> Option<String> {
    let at = path.rfind("/@connections/")?;
    let raw = &path[at + "/@connections/".len()..];
    let id = raw.replace("%3D", "=").replace("%3d", "=");
    is_connection_id(&id).then_some(id)
}

/// A connection id as [`crate::ids::connection_id`] makes them: 15 URL-safe base64 characters
/// and `=`.
pub fn is_connection_id(id: &str) -> bool {
    id.len() == 16
        && id.ends_with('=')
        && id[..15]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The largest message a push may carry (AWS: 128 KB).
pub const MAX_PUSH_BYTES: u64 = 128 * 1024;

/// Serves one management request for connection `id`: here when this replica holds it, else
/// through its owner when replicas share a Redis, else 410.
pub async fn route(
    shared: &crate::Shared,
    method: &Method,
    id: &str,
    body: RequestBody,
) -> Result<Response<ProxyBody>, Reject> {
    match &shared.relay {
        Some(relay) if shared.connections.get(id).is_none() => relay.forward(method, id, body).await,
        _ => manage(&shared.connections, method, id, body).await,
    }
}

/// Serves one management request for connection `id` of this replica's registry.
pub async fn manage(
    connections: &Connections,
    method: &Method,
    id: &str,
    body: RequestBody,
) -> Result<Response<ProxyBody>, Reject> {
    let Some(handle) = connections.get(id) else {
        return Ok(gone());
    };
    match *method {
        Method::POST => {
            let data = match crate::phase::validate::collect(body, MAX_PUSH_BYTES).await {
                Ok(data) => data,
                Err(Reject::BodyTooLarge) => return Ok(too_large()),
                Err(other) => return Err(other),
            };
            push(&handle, Command::Send(data)).await
        }
        Method::GET => {
            let mut identity = serde_json::json!({ "sourceIp": handle.source_ip.to_string() });
            if let Some(ua) = &handle.user_agent {
                identity["userAgent"] = serde_json::Value::from(&**ua);
            }
            let body = serde_json::json!({
                "connectedAt": iso8601(handle.connected_at),
                "identity": identity,
                "lastActiveAt": iso8601(handle.last_active()),
            });
            Ok(json(StatusCode::OK, body.to_string()))
        }
        Method::DELETE => {
            let resp = push(&handle, Command::Close).await?;
            if resp.status().is_success() {
                let mut resp = Response::new(ProxyBody::empty());
                *resp.status_mut() = StatusCode::NO_CONTENT;
                return Ok(resp);
            }
            Ok(resp)
        }
        _ => Err(Reject::NoRoute(turnpike_core::routing::Miss::Method)),
    }
}

/// Hands a command to the connection's task: 200, or 410 when its task has ended, or 429
/// when its queue is full.
async fn push(handle: &Handle, command: Command) -> Result<Response<ProxyBody>, Reject> {
    match handle.send(command).await {
        Ok(()) => Ok(json(StatusCode::OK, String::new())),
        Err(Refused::Closed) => Ok(gone()),
        Err(Refused::Full) => Ok(error(
            StatusCode::TOO_MANY_REQUESTS,
            "LimitExceededException",
            "Rate exceeded",
        )),
    }
}

/// 410 GoneException: the connection is closed, or unknown.
pub fn gone() -> Response<ProxyBody> {
    let mut resp = json(StatusCode::GONE, "{}".to_string());
    resp.headers_mut()
        .insert(ERROR_TYPE, HeaderValue::from_static("GoneException"));
    resp
}

/// 413 PayloadTooLargeException: a push over [`MAX_PUSH_BYTES`].
pub fn too_large() -> Response<ProxyBody> {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLargeException",
        "Message too long",
    )
}

/// `x-amzn-ErrorType`.
pub const ERROR_TYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");

fn error(status: StatusCode, kind: &'static str, message: &str) -> Response<ProxyBody> {
    let mut resp = json(status, serde_json::json!({ "message": message }).to_string());
    resp.headers_mut()
        .insert(ERROR_TYPE, HeaderValue::from_static(kind));
    resp
}

fn json(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut resp = Response::new(if body.is_empty() {
        ProxyBody::empty()
    } else {
        ProxyBody::full(Bytes::from(body))
    });
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Milliseconds since the epoch, now.
pub fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `2026-12-03T06:15:22.123Z`.
fn iso8601(millis: u64) -> String {
    let days = millis / 1000 / 86_400;
    let (y, m, d) = turnpike_telemetry::access_log::civil_from_days(i64::try_from(days).unwrap_or(0));
    let in_day = (millis / 1000) % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3600,
        (in_day / 60) % 60,
        in_day % 60,
        millis % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_paths() {
        assert_eq!(
            target("/prod/@connections/AbCdEfGhIjKlMnO=").as_deref(),
            Some("AbCdEfGhIjKlMnO=")
        );
        assert_eq!(
            target("/restapis/abcdefghij/prod/_user_request_/@connections/AbCdEfGhIjKlMnO%3D").as_deref(),
            Some("AbCdEfGhIjKlMnO=")
        );
        assert_eq!(target("/prod/@connections/short="), None);
        assert_eq!(target("/prod/@connections/AbCdEfGhIjKlMnO=/x"), None);
        assert_eq!(target("/prod/connections/AbCdEfGhIjKlMnO="), None);
        assert_eq!(target("/prod/@connections/AbCd.fGhIjKlMnO="), None);
    }

    #[test]
    fn the_fuzz_seeds_hold() {
        for seed in [
            &br#"{"action":"sendmessage","data":"hi"}"#[..],
            br#"{"meta":{"type":7}}"#,
            b"/restapis/abcdefghij/prod/_user_request_/@connections/AbCdEfGhIjKlMnO%3D",
            b"\xff{",
        ] {
            crate::fuzzing::websocket(seed);
        }
    }

    fn handle() -> Arc<Handle> {
        Handle::new("AbCdEfGhIjKlMnO=".into(), IpAddr::from([127, 0, 0, 1]), None)
    }

    fn sent(command: Option<Command>) -> Option<Bytes> {
        match command {
            Some(Command::Send(data)) => Some(data),
            _ => None,
        }
    }

    #[tokio::test]
    async fn commands_arrive_in_order_and_a_full_queue_refuses_the_next() {
        let handle = handle();
        for i in 0..PUSH_QUEUE {
            assert_eq!(
                handle.send(Command::Send(Bytes::from(i.to_string()))).await,
                Ok(())
            );
        }
        assert_eq!(handle.send(Command::Close).await, Err(Refused::Full));
        assert_eq!(sent(handle.next_command().await).as_deref(), Some(&b"0"[..]));
        // One taken: room for one more.
        assert_eq!(handle.send(Command::Close).await, Ok(()));
        for i in 1..PUSH_QUEUE {
            assert_eq!(
                sent(handle.next_command().await),
                Some(Bytes::from(i.to_string()))
            );
        }
        assert!(matches!(handle.next_command().await, Some(Command::Close)));
    }

    #[tokio::test]
    async fn an_empty_queue_holds_no_room() {
        let handle = handle();
        assert_eq!(handle.commands.lock().await.items.capacity(), 0);
        assert_eq!(handle.send(Command::Send(Bytes::from_static(b"a"))).await, Ok(()));
        assert!(handle.commands.lock().await.items.capacity() > 0);
        assert!(sent(handle.next_command().await).is_some());
        assert_eq!(handle.commands.lock().await.items.capacity(), 0);
    }

    #[tokio::test]
    async fn a_waiting_task_wakes_for_a_command_and_ends_at_close() {
        let handle = handle();
        let waiter = tokio::spawn({
            let handle = handle.clone();
            async move {
                let first = sent(handle.next_command().await);
                let second = handle.next_command().await.is_none();
                (first, second)
            }
        });
        tokio::task::yield_now().await;
        assert_eq!(
            handle.send(Command::Send(Bytes::from_static(b"hi"))).await,
            Ok(())
        );
        tokio::task::yield_now().await;
        handle.close_commands().await;
        let (first, ended) = waiter.await.expect("waiter");
        assert_eq!(first.as_deref(), Some(&b"hi"[..]));
        assert!(ended);
    }

    #[tokio::test]
    async fn a_closed_queue_refuses_and_drops_what_waited() {
        let handle = handle();
        assert_eq!(
            handle.send(Command::Send(Bytes::from_static(b"late"))).await,
            Ok(())
        );
        handle.close_commands().await;
        assert_eq!(handle.send(Command::Close).await, Err(Refused::Closed));
        assert!(handle.next_command().await.is_none());
        let resp = push(&handle, Command::Close).await.expect("answer");
        assert_eq!(resp.status(), StatusCode::GONE);
    }

    #[tokio::test]
    async fn pushes_answer_200_then_429_when_full() {
        let handle = handle();
        for _ in 0..PUSH_QUEUE {
            let resp = push(&handle, Command::Send(Bytes::from_static(b"x")))
                .await
                .expect("answer");
            assert_eq!(resp.status(), StatusCode::OK);
        }
        let resp = push(&handle, Command::Send(Bytes::from_static(b"x")))
            .await
            .expect("answer");
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[ERROR_TYPE], "LimitExceededException");
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_796_278_522_123), "2026-12-03T06:15:22.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
