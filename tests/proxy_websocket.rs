//! WebSocket APIs end to end: a real WebSocket client (tokio-tungstenite) against the gateway
//! on 127.0.0.1:0, and a real HTTP chat backend that answers `$connect`, `$disconnect` and
//! routed messages, and pushes to clients through the `@connections` API on the private
//! listener.

#[path = "support/proxy.rs"]
mod support;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, RwLock},
    time::Duration,
};

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::*;
use tokio::{net::TcpListener, sync::mpsc};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest as _, protocol::frame::coding::CloseCode},
};

type Client = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

const KEY: &str = "ChatKey0123456789abcdefXYZ";

/// What the chat backend saw.
#[derive(Debug)]
enum Seen {
    Connect(serde_json::Value),
    Disconnect(String),
}

/// A chat backend: `/connect` admits (and records) members unless the query says `deny`,
/// `/send` pushes the message's `data` to every member through `@connections`, `/echo`
/// answers the message body, `/disconnect` records the member's departure.
struct ChatBackend {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl ChatBackend {
    async fn start(private: Arc<RwLock<Option<SocketAddr>>>) -> ChatBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, seen) = mpsc::unbounded_channel();
        let members: Arc<RwLock<Vec<String>>> = Arc::default();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let (tx, members, private) = (tx.clone(), members.clone(), private.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (tx, members, private) = (tx.clone(), members.clone(), private.clone());
                        async move { Ok::<_, Infallible>(chat(req, tx, members, private).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(s), service)
                        .await;
                });
            }
        });
        ChatBackend { addr, seen }
    }

    async fn next(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(20), self.seen.recv())
            .await
            .expect("the backend saw an event")
            .expect("backend running")
    }
}

async fn chat(
    req: Request<Incoming>,
    tx: mpsc::UnboundedSender<Seen>,
    members: Arc<RwLock<Vec<String>>>,
    private: Arc<RwLock<Option<SocketAddr>>>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let header_id = req
        .headers()
        .get("connectionid")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = req.into_body().collect().await.expect("body").to_bytes();
    let event: serde_json::Value = serde_json::from_slice(&body).expect("event json");
    let id = event["requestContext"]["connectionId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(id, header_id, "the header names the event's connection");
    match path.as_str() {
        "/connect" => {
            if event["queryStringParameters"]["deny"].is_string() {
                return answer(StatusCode::FORBIDDEN, "no");
            }
            members.write().expect("lock").push(id);
            let _ = tx.send(Seen::Connect(event));
            answer(StatusCode::OK, "")
        }
        "/disconnect" => {
            members.write().expect("lock").retain(|m| *m != id);
            let _ = tx.send(Seen::Disconnect(id));
            answer(StatusCode::OK, "")
        }
        "/send" => {
            let message: serde_json::Value =
                serde_json::from_str(event["body"].as_str().unwrap_or("{}")).expect("message");
            let data = message["data"].as_str().unwrap_or_default().to_string();
            let gateway = private.read().expect("lock").expect("gateway address");
            let targets = members.read().expect("lock").clone();
            for member in targets {
                let url = format!("http://{gateway}/prod/@connections/{member}");
                let resp = post(&url, data.clone()).await;
                assert_eq!(resp, 200, "push to {member}");
            }
            answer(StatusCode::OK, "")
        }
        "/echo" => answer(StatusCode::OK, event["body"].as_str().unwrap_or_default()),
        _ => answer(StatusCode::NOT_FOUND, ""),
    }
}

fn answer(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp
}

/// A plain-HTTP request to the gateway's private listener; the status.
async fn request(method: &str, url: &str, body: String) -> (u16, String, Option<String>) {
    let client = client(false);
    let req = Request::builder()
        .method(method)
        .uri(url)
        .body(full(body))
        .expect("request");
    let a = send(&client, req).await;
    let error_type = a.header("x-amzn-errortype").map(str::to_string);
    (a.status, a.body, error_type)
}

async fn post(url: &str, body: String) -> u16 {
    request("POST", url, body).await.0
}

/// The chat API: `$connect` with a key, `sendmessage` (one-way, the backend broadcasts),
/// `echo` (two-way), `$disconnect`; `$default` only when `with_default`.
fn chat_yaml(backend: SocketAddr, with_default: bool) -> String {
    let default = if with_default {
        "    $default:\n      routeResponseSelectionExpression: $default\n      integration:\n        type: MOCK\n        integrationResponses:\n          - statusCode: \"200\"\n            responseTemplates:\n              application/json: '{\"error\":\"unknown action\"}'\n"
    } else {
        ""
    };
    let spec = format!(
        "  protocolType: WEBSOCKET\n  routeSelectionExpression: $request.body.action\n  routes:\n\
         \x20   $connect:\n      apiKeyRequired: true\n      integration: {{type: HTTP_PROXY, uri: 'http://{backend}/connect'}}\n\
         \x20   $disconnect:\n      integration: {{type: HTTP_PROXY, uri: 'http://{backend}/disconnect'}}\n\
         \x20   sendmessage:\n      integration: {{type: HTTP_PROXY, uri: 'http://{backend}/send'}}\n\
         \x20   echo:\n      routeResponseSelectionExpression: $default\n      integration: {{type: HTTP_PROXY, uri: 'http://{backend}/echo'}}\n\
         {default}"
    );
    [
        ApiSet::new(NS, "chat").spec(&spec).stage("prod").yaml(),
        usage_plan_yaml(NS, "members", &[("chat", "prod")], ""),
        api_key_yaml(NS, "member", KEY, &["members"], true),
    ]
    .concat()
}

/// The URL of the chat API's stage on the public plain listener (the local path form).
fn ws_url(gw: &Gateway, query: &str) -> String {
    format!(
        "ws://{}/restapis/{}/prod/_user_request_{query}",
        gw.public_plain,
        api_id(NS, "chat")
    )
}

async fn connect(url: &str, key: Option<&str>) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
    let mut req = url.into_client_request().expect("request");
    if let Some(key) = key {
        req.headers_mut().insert("x-api-key", key.parse().expect("key"));
    }
    tokio_tungstenite::connect_async(req).await.map(|(ws, _)| ws)
}

/// The next text message (at most 20 s away).
async fn next_text(ws: &mut Client) -> String {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("frame");
        match msg {
            Message::Text(t) => return t.to_string(),
            Message::Binary(b) => return String::from_utf8_lossy(&b).into_owned(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads until the gateway closes; the close code.
async fn close_code(ws: &mut Client) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

async fn gateway(
    with_default: bool,
    tweak: impl FnOnce(&mut turnpike_proxy::ProxyConfig),
) -> (Gateway, ChatBackend) {
    let private = Arc::new(RwLock::new(None));
    let backend = ChatBackend::start(private.clone()).await;
    let gw = Gateway::start_with(table(&chat_yaml(backend.addr, with_default), 1), tweak).await;
    *private.write().expect("lock") = Some(gw.private_plain);
    (gw, backend)
}

async fn connected(gw: &Gateway, backend: &mut ChatBackend) -> (Client, String) {
    let ws = connect(&ws_url(gw, ""), Some(KEY)).await.expect("connected");
    let Seen::Connect(event) = backend.next().await else {
        panic!("expected $connect");
    };
    let id = event["requestContext"]["connectionId"]
        .as_str()
        .expect("id")
        .to_string();
    (ws, id)
}

#[tokio::test]
async fn chat_connects_with_a_key_routes_by_action_and_broadcasts_through_connections() {
    let (gw, mut backend) = gateway(true, |_| {}).await;

    // $connect requires the key; the backend never hears of a refused upgrade.
    let refused = connect(&ws_url(&gw, ""), None).await.expect_err("no key");
    let tokio_tungstenite::tungstenite::Error::Http(resp) = refused else {
        panic!("expected an HTTP refusal, got {refused:?}");
    };
    assert_eq!(resp.status(), 403);
    let refused = connect(&ws_url(&gw, ""), Some("wrong"))
        .await
        .expect_err("bad key");
    assert!(matches!(refused, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 403));
    // $connect's own non-2xx answer refuses the upgrade with that status.
    let refused = connect(&ws_url(&gw, "?deny=1"), Some(KEY))
        .await
        .expect_err("denied");
    assert!(matches!(refused, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 403));

    let ws_url_seen = ws_url(&gw, "?room=lobby");
    let mut alice = connect(&ws_url_seen, Some(KEY)).await.expect("alice");
    let Seen::Connect(event) = backend.next().await else {
        panic!("expected $connect");
    };
    let ctx = &event["requestContext"];
    assert_eq!(ctx["routeKey"], "$connect");
    assert_eq!(ctx["eventType"], "CONNECT");
    assert_eq!(ctx["stage"], "prod");
    assert_eq!(ctx["apiId"], api_id(NS, "chat"));
    assert!(ctx["connectedAt"].as_u64().is_some());
    assert_eq!(event["queryStringParameters"]["room"], "lobby");
    assert!(
        event["headers"].get("x-api-key").is_none(),
        "keys are not handed to backends"
    );
    let (mut bob, bob_id) = connected(&gw, &mut backend).await;

    alice
        .send(Message::text(r#"{"action":"sendmessage","data":"hello all"}"#))
        .await
        .expect("send");
    assert_eq!(next_text(&mut alice).await, "hello all");
    assert_eq!(next_text(&mut bob).await, "hello all");

    // Two-way: the integration's answer comes back; $default answers what no route selects.
    bob.send(Message::text(r#"{"action":"echo","n":1}"#))
        .await
        .expect("send");
    assert_eq!(next_text(&mut bob).await, r#"{"action":"echo","n":1}"#);
    bob.send(Message::text("not json")).await.expect("send");
    assert_eq!(next_text(&mut bob).await, r#"{"error":"unknown action"}"#);

    // @connections: GET describes, DELETE closes (and $disconnect runs), then 410.
    let url = format!("http://{}/prod/@connections/{bob_id}", gw.private_plain);
    let (status, body, _) = request("GET", &url, String::new()).await;
    assert_eq!(status, 200);
    let info: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(info["identity"]["sourceIp"], "127.0.0.1");
    assert!(info["connectedAt"].as_str().is_some_and(|s| s.ends_with('Z')));
    assert!(info["lastActiveAt"].as_str().is_some());
    // Never on the public listener.
    let public = format!("http://{}/prod/@connections/{bob_id}", gw.public_plain);
    assert_eq!(request("GET", &public, String::new()).await.0, 403);

    let (status, _, _) = request("DELETE", &url, String::new()).await;
    assert_eq!(status, 204);
    assert_eq!(close_code(&mut bob).await, Some(CloseCode::Normal));
    let Seen::Disconnect(gone) = backend.next().await else {
        panic!("expected $disconnect");
    };
    assert_eq!(gone, bob_id);
    let (status, _, error_type) = request("POST", &url, "late".into()).await;
    assert_eq!(status, 410);
    assert_eq!(error_type.as_deref(), Some("GoneException"));

    // A client's own close runs $disconnect too.
    alice.close(None).await.expect("close");
    assert!(matches!(backend.next().await, Seen::Disconnect(_)));
    let metrics = gw.metrics_text();
    let labels = format!("{{api=\"{}\",stage=\"prod\"}}", api_id(NS, "chat"));
    assert!(
        metrics.contains(&format!("turnpike_ws_connect_count_total{labels} 2")),
        "{metrics}"
    );
    assert!(metrics.contains("turnpike_ws_connections 0"), "{metrics}");
}

#[tokio::test]
async fn a_message_no_route_selects_gets_a_forbidden_frame_without_default() {
    let (gw, mut backend) = gateway(false, |_| {}).await;
    let (mut ws, id) = connected(&gw, &mut backend).await;
    ws.send(Message::text(r#"{"action":"nope"}"#))
        .await
        .expect("send");
    let frame: serde_json::Value = serde_json::from_str(&next_text(&mut ws).await).expect("json");
    assert_eq!(frame["message"], "Forbidden");
    assert_eq!(frame["connectionId"], id);
    assert!(frame["requestId"].as_str().is_some());
}

#[tokio::test]
async fn oversized_frames_close_with_1009_and_idle_connections_close() {
    let (gw, mut backend) = gateway(true, |c| c.websocket.idle_timeout = Duration::from_secs(1)).await;

    let (mut big, _) = connected(&gw, &mut backend).await;
    big.send(Message::text("x".repeat(40 * 1024)))
        .await
        .expect("send");
    assert_eq!(close_code(&mut big).await, Some(CloseCode::Size));
    assert!(matches!(backend.next().await, Seen::Disconnect(_)));

    // Pings are answered by the gateway itself.
    let (mut idle, _) = connected(&gw, &mut backend).await;
    idle.send(Message::Ping(Bytes::from_static(b"hi")))
        .await
        .expect("ping");
    let pong = tokio::time::timeout(Duration::from_secs(20), idle.next())
        .await
        .expect("pong in time")
        .expect("open")
        .expect("frame");
    assert_eq!(pong, Message::Pong(Bytes::from_static(b"hi")));
    // Then, with nothing said either way, the idle timeout closes it with 1001.
    assert_eq!(close_code(&mut idle).await, Some(CloseCode::Away));
    assert!(matches!(backend.next().await, Seen::Disconnect(_)));
}

#[tokio::test]
async fn a_table_swap_keeps_every_open_connection_and_a_drain_closes_them_with_1001() {
    let (mut gw, mut backend) = gateway(true, |_| {}).await;
    const N: usize = 1000;
    let mut clients = Vec::with_capacity(N);
    for _ in 0..N {
        let (ws, _) = connected(&gw, &mut backend).await;
        clients.push(ws);
    }
    // A new table (another version of everything) is published under the open connections.
    let backend_addr = backend.addr;
    gw.store.publish(table(&chat_yaml(backend_addr, true), 2));
    for ws in &mut clients {
        ws.send(Message::text(r#"{"action":"echo"}"#))
            .await
            .expect("send");
    }
    for ws in &mut clients {
        assert_eq!(next_text(ws).await, r#"{"action":"echo"}"#);
    }
    assert_eq!(gw.shared.connections.len(), N);

    // Shutdown: every socket is closed with 1001 and $disconnect runs for each.
    let shutdown = {
        let mut clients = std::mem::take(&mut clients);
        tokio::spawn(async move {
            let mut codes = Vec::new();
            for ws in &mut clients {
                codes.push(close_code(ws).await);
            }
            codes
        })
    };
    gw.shutdown().await;
    let codes = shutdown.await.expect("clients");
    assert!(codes.iter().all(|c| *c == Some(CloseCode::Away)), "{codes:?}");
    let mut disconnected = 0;
    while disconnected < N {
        if let Seen::Disconnect(_) = backend.next().await {
            disconnected += 1;
        }
    }
}

/// The JSON access-log lines about connection `id`.
fn lines_of(lines: &Lines, id: &str) -> Vec<serde_json::Value> {
    lines
        .text()
        .lines()
        .filter_map(|l| l.find('{').map(|i| &l[i..]))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["connectionId"] == id)
        .collect()
}

#[tokio::test]
async fn connect_messages_and_disconnect_are_logged_and_counted_per_api_and_stage() {
    // The global subscriber (the only test of this binary that installs one): the lines of
    // other tests' connections are told apart by their connection id.
    let lines = capture_access_log();
    let (gw, mut backend) = gateway(true, |_| {}).await;
    let (mut ws, id) = connected(&gw, &mut backend).await;
    ws.send(Message::text(r#"{"action":"echo","n":1}"#))
        .await
        .expect("send");
    assert_eq!(next_text(&mut ws).await, r#"{"action":"echo","n":1}"#);
    ws.send(Message::text("not json")).await.expect("send");
    assert_eq!(next_text(&mut ws).await, r#"{"error":"unknown action"}"#);
    ws.close(None).await.expect("close");
    assert!(matches!(backend.next().await, Seen::Disconnect(_)));

    // The $disconnect line is written once its call returns: wait for it, bounded.
    let mut seen = Vec::new();
    for _ in 0..200 {
        seen = lines_of(&lines, &id);
        if seen.iter().any(|l| l["eventType"] == "DISCONNECT") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let events: Vec<(&str, &str)> = seen
        .iter()
        .map(|l| {
            (
                l["eventType"].as_str().expect("eventType"),
                l["routeKey"].as_str().expect("routeKey"),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("CONNECT", "$connect"),
            ("MESSAGE", "echo"),
            ("MESSAGE", "$default"),
            ("DISCONNECT", "$disconnect"),
        ],
        "{seen:?}"
    );
    for line in &seen {
        assert_eq!(line["status"], 200, "{line}");
        assert_eq!(line["apiId"], api_id(NS, "chat"));
        assert_eq!(line["stage"], "prod");
        let message_id = line["messageId"].as_str().expect("messageId");
        if line["eventType"] == "MESSAGE" {
            assert!(
                turnpike_proxy::websocket::connections::is_connection_id(message_id),
                "{line}"
            );
        } else {
            assert_eq!(message_id, "-");
        }
    }
    assert_ne!(seen[1]["messageId"], seen[2]["messageId"]);
    assert_eq!(seen[1]["integrationStatus"], "200");

    let metrics = gw.metrics_text();
    let labels = format!("{{api=\"{}\",stage=\"prod\"}}", api_id(NS, "chat"));
    for expected in [
        format!("turnpike_ws_connect_count_total{labels} 1"),
        format!("turnpike_ws_message_count_total{labels} 2"),
        format!("turnpike_ws_integration_latency_count{labels} 1"),
    ] {
        assert!(metrics.contains(&expected), "{expected} in {metrics}");
    }
    assert!(!metrics.contains("turnpike_ws_client_error_total{"), "{metrics}");
}
